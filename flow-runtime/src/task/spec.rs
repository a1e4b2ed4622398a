//! [`TaskSpec`]: a task's name, typed parameters and output, options and function.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::context::TaskContext;
use super::error::TaskError;
use super::options::{TaskOptions, task_option_table};
use crate::ids::TaskId;
use crate::xcom::field::Field;
use crate::xcom::{StoredXCom, XComBlob, XComValue};

/// A boxed, sendable future, as async tasks return.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The outcome of one try: the encoded return value, or why it failed.
pub type TaskResult = Result<XComBlob, TaskError>;

/// A blocking task body.
pub type SyncTaskFn = dyn Fn(&TaskContext, Inputs) -> TaskResult + Send + Sync;
/// An async task body.
pub type AsyncTaskFn = dyn Fn(TaskContext, Inputs) -> BoxFuture<TaskResult> + Send + Sync;

/// The function behind a task, called once per try with its decoded context and inputs.
#[derive(Clone)]
pub enum TaskFn {
    /// A blocking function; the executor runs it off the async worker threads.
    Sync(Arc<SyncTaskFn>),
    /// An async function; the executor polls it on the runtime.
    Async(Arc<AsyncTaskFn>),
}

impl fmt::Debug for TaskFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TaskFn::Sync(_) => "TaskFn::Sync",
            TaskFn::Async(_) => "TaskFn::Async",
        })
    }
}

/// Converts a JSON value into an encoded XCom of one Rust type (for `--input` on the CLI).
pub type FromJsonFn = fn(serde_json::Value) -> Result<XComBlob, String>;
/// Renders an encoded XCom of one Rust type as JSON (for people: CLI, API, UI).
pub type ToJsonFn = fn(&XComBlob) -> Result<serde_json::Value, String>;

/// A typed parameter of a task.
#[derive(Clone, Debug)]
pub struct ParamSpec {
    name: Cow<'static, str>,
    type_name: &'static str,
    from_json: FromJsonFn,
    split_list: SplitListFn,
}

/// Splits an encoded `Vec` of a parameter's type into its encoded elements (to map the
/// parameter over an upstream task's list).
pub type SplitListFn = fn(&XComBlob) -> Result<Vec<XComBlob>, crate::xcom::codec::CodecError>;

impl ParamSpec {
    /// A parameter named `name` of type `T`.
    pub fn of<T: XComValue>(name: impl Into<Cow<'static, str>>) -> Self {
        Self {
            name: name.into(),
            type_name: std::any::type_name::<T>(),
            from_json: json_to_xcom::<T>,
            split_list: crate::xcom::list::split::<T>,
        }
    }

    /// Splits an encoded `Vec` of this parameter's type into encoded elements.
    pub fn split_list(
        &self,
        list: &XComBlob,
    ) -> Result<Vec<XComBlob>, crate::xcom::codec::CodecError> {
        (self.split_list)(list)
    }

    /// The parameter's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Rust type of the parameter.
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }

    /// Encodes a JSON value as this parameter's type.
    pub fn from_json(&self, value: serde_json::Value) -> Result<XComBlob, String> {
        (self.from_json)(value)
    }
}

/// The typed output of a task.
#[derive(Clone, Debug)]
pub struct OutputSpec {
    type_name: &'static str,
    to_json: ToJsonFn,
}

impl OutputSpec {
    /// An output of type `T`.
    pub fn of<T: XComValue>() -> Self {
        Self {
            type_name: std::any::type_name::<T>(),
            to_json: xcom_to_json::<T>,
        }
    }

    /// The Rust type of the output.
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }

    /// Renders an encoded output as JSON through the producing type.
    pub fn to_json(&self, blob: &XComBlob) -> Result<serde_json::Value, String> {
        (self.to_json)(blob)
    }
}

fn json_to_xcom<T: XComValue>(value: serde_json::Value) -> Result<XComBlob, String> {
    let typed: T = serde_json::from_value(value)
        .map_err(|e| format!("not a valid `{}`: {e}", std::any::type_name::<T>()))?;
    XComBlob::encode(&typed).map_err(|e| e.to_string())
}

fn xcom_to_json<T: XComValue>(blob: &XComBlob) -> Result<serde_json::Value, String> {
    let typed: T = blob.decode().map_err(|e| {
        format!(
            "stored as `{}`, does not decode as `{}`: {e}",
            blob.type_name(),
            std::any::type_name::<T>()
        )
    })?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

/// Makes a setter on [`TaskSpec`] for every row of the task option table named after
/// `spec`.
macro_rules! spec_setters {
    ($(
        $(#[doc = $doc:literal])*
        $field:ident: $ty:ty, $with:ident($arg:ident: $arg_ty:ty) => $value:expr
        $(, spec $spec:ident)?;
    )*) => {
        impl TaskSpec {
            $($(
                #[doc = concat!("Sets the task's [`TaskOptions::", stringify!($field), "`].")]
                pub fn $spec(mut self, $arg: $arg_ty) -> Self {
                    self.options = self.options.$with($arg);
                    self
                }
            )?)*
        }
    };
}

task_option_table!(spec_setters);

/// Airflow's default pause before a retry.
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(300);

/// A task definition: everything needed to add it to a DAG and call it.
#[derive(Clone, Debug)]
pub struct TaskSpec {
    name: TaskId,
    kind: crate::branch::TaskKind,
    callbacks: super::callbacks::Callbacks,
    doc: Option<Cow<'static, str>>,
    params: Vec<ParamSpec>,
    output: OutputSpec,
    options: TaskOptions,
    role: TaskRole,
    retry_policy: Option<Arc<super::retry::RetryPolicy>>,
    outlets: Vec<crate::assets::Asset>,
    function: TaskFn,
}

/// Whether a task sets up or tears down a resource for the tasks between them (Airflow's
/// setup and teardown tasks), or is ordinary work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TaskRole {
    /// An ordinary task.
    #[default]
    Work,
    /// Creates what the tasks after it use; the teardowns directly after it run only if
    /// it (or another of their setups) succeeded.
    Setup,
    /// Releases what its setups created: it runs once every upstream task is done, if one
    /// of its direct upstream setups succeeded (trigger rule `all_done_setup_success`,
    /// whatever the task sets), even when the work between them failed.
    Teardown {
        /// Whether its failure fails the run (Airflow's `on_failure_fail_dagrun`); by
        /// default a teardown's state does not decide the run's.
        on_failure_fail_dagrun: bool,
    },
}

impl TaskRole {
    /// Whether this is a setup task.
    pub fn is_setup(self) -> bool {
        self == TaskRole::Setup
    }

    /// Whether this is a teardown task.
    pub fn is_teardown(self) -> bool {
        matches!(self, TaskRole::Teardown { .. })
    }
}

impl TaskSpec {
    /// A task named `name` that calls `function`, returning `T`. Parameters are added with
    /// [`TaskSpec::param`], in the order `function` reads them from its [`Inputs`].
    pub fn new<T: XComValue>(name: impl Into<TaskId>, function: TaskFn) -> Self {
        Self {
            name: name.into(),
            kind: crate::branch::TaskKind::Normal,
            callbacks: super::callbacks::Callbacks::default(),
            doc: None,
            params: Vec::new(),
            output: OutputSpec::of::<T>(),
            options: TaskOptions::default(),
            role: TaskRole::Work,
            retry_policy: None,
            outlets: Vec::new(),
            function,
        }
    }

    /// A blocking task from a closure over the context and inputs.
    ///
    /// ```
    /// use flow_runtime::prelude::*;
    /// let double = TaskSpec::from_sync("double", |_ctx, inputs| Ok(inputs.get::<u64>(0)? * 2))
    ///     .param::<u64>("x");
    /// assert_eq!(double.params()[0].name(), "x");
    /// ```
    pub fn from_sync<T, F>(name: impl Into<TaskId>, f: F) -> Self
    where
        T: XComValue,
        F: Fn(&TaskContext, Inputs) -> Result<T, TaskError> + Send + Sync + 'static,
    {
        let function = TaskFn::Sync(Arc::new(move |ctx, inputs| encode_output(f(ctx, inputs)?)));
        Self::new::<T>(name, function)
    }

    /// An async task from a closure returning a future.
    pub fn from_async<T, F, Fut>(name: impl Into<TaskId>, f: F) -> Self
    where
        T: XComValue,
        F: Fn(TaskContext, Inputs) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, TaskError>> + Send + 'static,
    {
        let f = Arc::new(f);
        let function = TaskFn::Async(Arc::new(move |ctx, inputs| {
            let fut = f(ctx, inputs);
            Box::pin(async move { encode_output(fut.await?) })
        }));
        Self::new::<T>(name, function)
    }

    /// A shell task (Airflow's `@task.bash`): `f` builds the command; the runtime runs it
    /// and the task's output is the last line of its stdout.
    ///
    /// ```
    /// use flow_runtime::prelude::*;
    /// use flow_runtime::task::shell::ShellCommand;
    /// let count = TaskSpec::from_shell("count_lines", |_ctx, inputs| {
    ///     Ok(ShellCommand::bash(r#"wc -l < "$FILE""#).env("FILE", inputs.get::<String>(0)?))
    /// })
    /// .param::<String>("file");
    /// assert_eq!(count.output().type_name(), "alloc::string::String");
    /// ```
    pub fn from_shell<F>(name: impl Into<TaskId>, f: F) -> Self
    where
        F: Fn(&TaskContext, Inputs) -> Result<super::shell::ShellCommand, TaskError>
            + Send
            + Sync
            + 'static,
    {
        let f = Arc::new(f);
        let function = TaskFn::Async(Arc::new(move |ctx, inputs| {
            let command = f(&ctx, inputs);
            Box::pin(async move { encode_output(command?.run(&ctx).await?) })
        }));
        Self::new::<String>(name, function)
    }

    /// A container task (Airflow's `DockerOperator`): `f` describes the container; the
    /// runtime runs it (with the `docker` feature) and the task's output is the last line
    /// of its stdout, or its output file (see [`super::container`]).
    ///
    /// ```
    /// use flow_runtime::prelude::*;
    /// use flow_runtime::task::container::{ContainerSpec, Network};
    /// let count = TaskSpec::from_container("count_rows", |ctx, inputs| {
    ///     Ok(ContainerSpec::new("busybox:1.36")
    ///         .command(["wc", "-l"])
    ///         .arg(inputs.get::<String>(0)?)
    ///         .env("DS", ctx.ds())
    ///         .network(Network::None))
    /// })
    /// .param::<String>("file");
    /// assert_eq!(count.output().type_name(), "alloc::string::String");
    /// ```
    pub fn from_container<F>(name: impl Into<TaskId>, f: F) -> Self
    where
        F: Fn(&TaskContext, Inputs) -> Result<super::container::ContainerSpec, TaskError>
            + Send
            + Sync
            + 'static,
    {
        let f = Arc::new(f);
        let function = TaskFn::Async(Arc::new(move |ctx, inputs| {
            let spec = f(&ctx, inputs);
            Box::pin(async move { encode_output(super::container::run(&spec?, &ctx).await?) })
        }));
        Self::new::<String>(name, function)
    }

    /// The same task under another name (an override's `task_id`).
    pub(crate) fn renamed(mut self, name: TaskId) -> Self {
        self.name = name;
        self
    }

    /// The same task taking, for each parameter with `Some(field)`, that field of the
    /// value its upstream produced (multiple outputs): the fields are read out before the
    /// function sees its inputs.
    pub(crate) fn with_projections(mut self, fields: &[Option<Field>]) -> Self {
        let fields: Arc<[Option<Field>]> = fields.into();
        self.function = match self.function {
            TaskFn::Sync(f) => TaskFn::Sync(Arc::new(move |ctx, inputs| {
                f(ctx, inputs.project(&fields)?)
            })),
            TaskFn::Async(f) => {
                TaskFn::Async(Arc::new(move |ctx, inputs| match inputs.project(&fields) {
                    Ok(inputs) => f(ctx, inputs),
                    Err(error) => Box::pin(std::future::ready(Err(error))),
                }))
            }
        };
        self
    }

    /// The same task with these options.
    pub(crate) fn with_options(mut self, options: TaskOptions) -> Self {
        self.options = options;
        self
    }

    /// Appends a parameter of type `P`.
    pub fn param<P: XComValue>(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.params.push(ParamSpec::of::<P>(name));
        self
    }

    /// Sets the documentation shown by `tasks list`.
    pub fn doc(mut self, doc: impl Into<Cow<'static, str>>) -> Self {
        self.doc = Some(doc.into());
        self
    }

    /// Runs `f` when a try of this task succeeds.
    pub fn on_success(
        mut self,
        f: impl Fn(&super::callbacks::CallbackEvent) + Send + Sync + 'static,
    ) -> Self {
        self.callbacks.on_success.push(Arc::new(f));
        self
    }

    /// Runs `f` when this task fails for good (no retry left).
    pub fn on_failure(
        mut self,
        f: impl Fn(&super::callbacks::CallbackEvent) + Send + Sync + 'static,
    ) -> Self {
        self.callbacks.on_failure.push(Arc::new(f));
        self
    }

    /// Runs `f` when a try fails and another follows.
    pub fn on_retry(
        mut self,
        f: impl Fn(&super::callbacks::CallbackEvent) + Send + Sync + 'static,
    ) -> Self {
        self.callbacks.on_retry.push(Arc::new(f));
        self
    }

    /// The task's callbacks.
    pub fn callbacks(&self) -> &super::callbacks::Callbacks {
        &self.callbacks
    }

    /// Decides by the error a failed try returned whether it is retried, after how long,
    /// or failed at once (Airflow 3's `retry_policy`; see [`super::retry`]). The task's
    /// `retries` still bound how many tries it gets.
    pub fn retry_policy(mut self, policy: super::retry::RetryPolicy) -> Self {
        self.retry_policy = Some(Arc::new(policy));
        self
    }

    /// The assets the task updates (Airflow's `outlets`): each successful try records an
    /// update of each, which starts the DAGs scheduled on them.
    pub fn outlets(mut self, assets: impl IntoIterator<Item = crate::assets::Asset>) -> Self {
        self.outlets.extend(assets);
        self
    }

    /// The assets the task updates.
    pub fn outlet_assets(&self) -> &[crate::assets::Asset] {
        &self.outlets
    }

    /// The task's retry policy, if it has one.
    pub fn retry_policy_ref(&self) -> Option<&Arc<super::retry::RetryPolicy>> {
        self.retry_policy.as_ref()
    }

    /// Makes this a branch task; its output must be a [`crate::branch::Branch`].
    pub fn branch(mut self) -> Self {
        self.kind = crate::branch::TaskKind::Branch;
        self
    }

    /// Makes this a short-circuit task; its output must be `bool`, and `false` skips every
    /// task downstream, whatever its trigger rule.
    pub fn short_circuit(self) -> Self {
        self.short_circuit_with(true)
    }

    /// Makes this a short-circuit task with Airflow's `ignore_downstream_trigger_rules`:
    /// with `false`, a `false` output skips the direct downstream tasks only, and the tasks
    /// after them follow their own trigger rules.
    pub fn short_circuit_with(mut self, ignore_downstream_trigger_rules: bool) -> Self {
        self.kind = crate::branch::TaskKind::ShortCircuit {
            ignore_downstream_trigger_rules,
        };
        self
    }

    /// What the task's output means to the executor.
    pub fn kind(&self) -> crate::branch::TaskKind {
        self.kind
    }

    /// Makes this a setup task (Airflow's `as_setup()`).
    pub fn as_setup(mut self) -> Self {
        self.role = TaskRole::Setup;
        self
    }

    /// Makes this a teardown task (Airflow's `as_teardown()`): its setups are its direct
    /// upstream setup tasks, and its state does not decide the run's.
    pub fn as_teardown(self) -> Self {
        self.as_teardown_with(false)
    }

    /// Makes this a teardown task whose failure fails the run when
    /// `on_failure_fail_dagrun` (Airflow's `as_teardown(on_failure_fail_dagrun=True)`).
    pub fn as_teardown_with(mut self, on_failure_fail_dagrun: bool) -> Self {
        self.role = TaskRole::Teardown {
            on_failure_fail_dagrun,
        };
        self
    }

    /// Whether this sets up or tears down a resource, or is ordinary work.
    pub fn role(&self) -> TaskRole {
        self.role
    }

    /// Runs tries in `pool`, taking `slots` of it each.
    pub fn pool(mut self, pool: impl Into<String>, slots: u32) -> Self {
        self.options.pool = Some(pool.into());
        self.options.pool_slots = Some(slots);
        self
    }

    /// The task's name: the default task id in a DAG.
    pub fn name(&self) -> &TaskId {
        &self.name
    }

    /// The task's documentation, if any.
    pub fn documentation(&self) -> Option<&str> {
        self.doc.as_deref()
    }

    /// The parameters, in call order.
    pub fn params(&self) -> &[ParamSpec] {
        &self.params
    }

    /// The output.
    pub fn output(&self) -> &OutputSpec {
        &self.output
    }

    /// The options declared on the task itself.
    pub fn options(&self) -> &TaskOptions {
        &self.options
    }

    /// The function called for each try.
    pub fn function(&self) -> &TaskFn {
        &self.function
    }
}

/// Encodes a task's return value as its XCom.
pub fn encode_output<T: XComValue>(value: T) -> TaskResult {
    XComBlob::encode(&value).map_err(|e| TaskError::OutputEncode(e.to_string()))
}

/// A task's return type: `T`, or `Result<T, E>` whose error converts into `anyhow::Error`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a task result",
    label = "a task returns `T` or `Result<T, E>` where `E: Into<anyhow::Error>`"
)]
pub trait TaskReturn {
    /// The value stored as the task's XCom.
    type Output: XComValue;
    /// Splits the value into output or error.
    fn into_task_result(self) -> Result<Self::Output, TaskError>;
}

impl<T: XComValue, E: Into<anyhow::Error>> TaskReturn for Result<T, E> {
    type Output = T;
    fn into_task_result(self) -> Result<T, TaskError> {
        self.map_err(TaskError::from_error)
    }
}

/// The producer of one input, for error messages.
#[derive(Clone, Debug)]
pub(crate) enum InputSource {
    /// A literal in the DAG definition.
    Literal,
    /// The return value of an upstream task.
    Upstream(TaskId),
    /// Given on the command line.
    CommandLine,
}

/// An input as the store records it, before a value kept in the object store is fetched.
pub(crate) struct PendingInput {
    pub(crate) param: Cow<'static, str>,
    pub(crate) source: InputSource,
    pub(crate) value: PendingValue,
}

/// What an input is made of.
pub(crate) enum PendingValue {
    /// One value.
    One(StoredXCom),
    /// The results of a mapped task, in map order, passed as one `Vec` of them.
    Collected {
        elements: Vec<StoredXCom>,
        element_type: &'static str,
    },
}

/// The encoded arguments of one try, in parameter order.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    values: Vec<InputValue>,
}

#[derive(Clone, Debug)]
struct InputValue {
    param: Cow<'static, str>,
    source: InputSource,
    blob: XComBlob,
}

impl Inputs {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            values: Vec::with_capacity(n),
        }
    }

    pub(crate) fn push(&mut self, param: Cow<'static, str>, source: InputSource, blob: XComBlob) {
        self.values.push(InputValue {
            param,
            source,
            blob,
        });
    }

    /// The number of inputs.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are no inputs.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Replaces each upstream value whose parameter takes a field by that field; values
    /// given otherwise (on the command line) are the field's already.
    pub(crate) fn project(mut self, fields: &[Option<Field>]) -> Result<Inputs, TaskError> {
        for (input, field) in self.values.iter_mut().zip(fields) {
            let (Some(field), InputSource::Upstream(producer)) = (field, &input.source) else {
                continue;
            };
            input.blob = field
                .project(&input.blob)
                .map_err(|reason| TaskError::InputDecode {
                    param: input.param.to_string(),
                    producer: producer.to_string(),
                    stored: input.blob.type_name().to_string(),
                    expected: field.owner(),
                    reason: format!("reading its field `{}`: {reason}", field.name()),
                })?;
        }
        Ok(self)
    }

    /// Decodes input `index` as `T`; a value that does not decode names its producer and
    /// both types.
    pub fn get<T: XComValue>(&self, index: usize) -> Result<T, TaskError> {
        let Some(input) = self.values.get(index) else {
            return Err(TaskError::MissingInput {
                param: format!("#{index}"),
                hint: format!("the task received {} inputs", self.values.len()),
            });
        };
        input.blob.decode().map_err(|e| TaskError::InputDecode {
            param: input.param.to_string(),
            producer: match &input.source {
                InputSource::Literal => "<literal in the DAG definition>".to_string(),
                InputSource::Upstream(task) => task.to_string(),
                InputSource::CommandLine => "<command line>".to_string(),
            },
            stored: input.blob.type_name().to_string(),
            expected: std::any::type_name::<T>(),
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_returns_split_and_keep_the_error_message() {
        let ok: Result<u8, anyhow::Error> = Ok(3);
        assert_eq!(ok.into_task_result().unwrap(), 3);
        let err: Result<u8, std::io::Error> = Err(std::io::Error::other("no disk"));
        assert_eq!(
            err.into_task_result().unwrap_err(),
            TaskError::Failed("no disk".into())
        );
    }

    #[test]
    fn inputs_report_the_producer_and_both_types_on_drift() {
        let mut inputs = Inputs::default();
        inputs.push(
            "data".into(),
            InputSource::Upstream("load".into()),
            XComBlob::encode(&"text").unwrap(),
        );
        let err = inputs.get::<u64>(0).unwrap_err().to_string();
        assert!(err.contains("`data` from task `load`"), "{err}");
        assert!(
            err.contains("as `u64`") && err.contains("stored as `&str`"),
            "{err}"
        );
        assert!(matches!(
            inputs.get::<u64>(1),
            Err(TaskError::MissingInput { .. })
        ));
    }

    #[test]
    fn projections_read_fields_of_upstream_values_only_and_name_the_field_on_drift() {
        fn first(blob: &XComBlob) -> Result<XComBlob, String> {
            crate::xcom::field::project_field::<(u32, String), _>(blob, |pair| &pair.0)
        }
        let field = Field::new("first", "(u32, String)", first);
        let mut inputs = Inputs::default();
        inputs.push(
            "n".into(),
            InputSource::Upstream("pair".into()),
            XComBlob::encode(&(7u32, "x".to_string())).unwrap(),
        );
        inputs.push(
            "m".into(),
            InputSource::CommandLine,
            XComBlob::encode(&9u32).unwrap(),
        );
        let projected = inputs.project(&[Some(field), Some(field)]).unwrap();
        assert_eq!(projected.get::<u32>(0).unwrap(), 7);
        assert_eq!(
            projected.get::<u32>(1).unwrap(),
            9,
            "given values are the field already"
        );

        let mut drifted = Inputs::default();
        drifted.push(
            "n".into(),
            InputSource::Upstream("pair".into()),
            XComBlob::encode(&"not a pair").unwrap(),
        );
        let err = drifted.project(&[Some(field)]).unwrap_err().to_string();
        assert!(
            err.contains("`n` from task `pair`") && err.contains("field `first`"),
            "{err}"
        );
    }

    #[test]
    fn json_conversions_go_through_the_declared_type() {
        let param = ParamSpec::of::<(u32, String)>("pair");
        let blob = param.from_json(serde_json::json!([4, "four"])).unwrap();
        assert_eq!(
            blob.decode::<(u32, String)>().unwrap(),
            (4, "four".to_string())
        );
        assert!(
            param
                .from_json(serde_json::json!("x"))
                .unwrap_err()
                .contains("not a valid")
        );
        let out = OutputSpec::of::<(u32, String)>();
        assert_eq!(out.to_json(&blob).unwrap(), serde_json::json!([4, "four"]));
    }
}

//! The builder API that `#[dag]` expands to, and the validated [`Dag`] it produces.
//!
//! Everything the macros do can be written by hand, which is how DAGs are generated from
//! configuration at run time:
//!
//! ```
//! use flow_runtime::prelude::*;
//!
//! #[task]
//! fn extract(source: String) -> Vec<u64> { vec![source.len() as u64, 2, 3] }
//! #[task]
//! fn total(values: Vec<u64>) -> u64 { values.iter().sum() }
//! #[task]
//! fn notify() {}
//!
//! let mut dag = DagBuilder::new("etl").schedule("@daily").tags(["example"]);
//! for source in ["orders", "users"] {                  // one branch per configured source
//!     let values = extract::node(&mut dag, source);     // a literal argument
//!     let sum = total::node(&mut dag, values);           // a data edge
//!     let done = notify::node(&mut dag);
//!     dag.set_downstream(&[sum.any()], &[done.any()]);   // `sum >> done`
//! }
//! let dag = dag.build().unwrap();
//! let ids: Vec<&str> = dag.tasks().iter().map(|t| t.id().as_str()).collect();
//! assert_eq!(ids, ["extract", "total", "notify", "extract__1", "total__1", "notify__1"]);
//! ```

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::branch::TaskKind;
use crate::error::{DagDefinitionError, DagError};
use crate::graph;
use crate::ids::{DagId, StableHash, TaskId};
use crate::mapping::{IntoMapped, MapMode, MapSource, MappedNode};
use crate::params::{DagParam, Params};
use crate::task::{DEFAULT_RETRY_DELAY, TaskOptions, TaskSpec};
use crate::time::parse_date_in;
use crate::time::schedule::Schedule;
use crate::time::timetable::{Restriction, Timetable};
use crate::trigger::TriggerRule;
use crate::xcom::{XComBlob, XComValue};

static NEXT_BUILDER: AtomicU32 = AtomicU32::new(1);

/// A typed handle to a task added to a [`DagBuilder`]: passing it as another task's
/// argument makes the edge. `T` is the task's output type.
pub struct Node<T> {
    node: AnyNode,
    _output: PhantomData<fn() -> T>,
}

impl<T> Clone for Node<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Node<T> {}

impl<T> std::fmt::Debug for Node<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Node<{}>({})",
            std::any::type_name::<T>(),
            self.node.index
        )
    }
}

impl<T> Node<T> {
    /// The untyped handle, for ordering with [`DagBuilder::set_downstream`].
    pub fn any(self) -> AnyNode {
        self.node
    }
}

/// An untyped handle to a task in a [`DagBuilder`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AnyNode {
    builder: u32,
    index: u32,
}

impl AnyNode {
    /// The task's position in the DAG, in the order tasks were added.
    pub fn index(self) -> usize {
        self.index as usize
    }
}

/// Anything that names a task node; used by `a >> b` in a `#[dag]` body.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a task node",
    label = "`>>` and `<<` order task nodes: task calls, variables bound to them, or `[..]` lists of them"
)]
pub trait NodeRef {
    /// The untyped node.
    fn any_node(&self) -> AnyNode;
}

impl<T> NodeRef for Node<T> {
    fn any_node(&self) -> AnyNode {
        self.node
    }
}

impl NodeRef for AnyNode {
    fn any_node(&self) -> AnyNode {
        *self
    }
}

/// One argument of a task call: the output of an upstream task or a literal value.
#[derive(Clone, Debug)]
pub enum Input {
    /// The return value of the task at this node.
    Upstream(AnyNode),
    /// A value fixed in the DAG definition.
    Literal(XComBlob),
    /// A literal that failed to serialize (reported by [`DagBuilder::build`]).
    Invalid(String),
    /// A list the task is mapped over: one task instance per element.
    Mapped(MapSource),
    /// No argument (reported by [`DagBuilder::build`]).
    Missing,
}

/// A value that can be passed where a task parameter of type `T` is expected: a `T`, a
/// `Node<T>` (the output of a task returning `T`), or a `&str` for a `String`.
#[diagnostic::on_unimplemented(
    message = "this argument does not fit a task parameter of type `{T}`",
    label = "expected a `{T}` value or the output of a task returning `{T}`, found `{Self}`",
    note = "a task's output can only be passed to a parameter of the same type"
)]
pub trait IntoInput<T> {
    /// Converts the argument.
    fn into_input(self) -> Input;
}

impl<T> IntoInput<T> for Node<T> {
    fn into_input(self) -> Input {
        Input::Upstream(self.node)
    }
}

impl<T: XComValue> IntoInput<T> for T {
    fn into_input(self) -> Input {
        match XComBlob::encode(&self) {
            Ok(blob) => Input::Literal(blob),
            Err(e) => Input::Invalid(e.to_string()),
        }
    }
}

impl IntoInput<String> for &str {
    fn into_input(self) -> Input {
        IntoInput::<String>::into_input(self.to_string())
    }
}

/// A task being added to a DAG; returned by [`DagBuilder::add_task`].
pub struct TaskBuilder<'a> {
    dag: &'a mut DagBuilder,
    index: usize,
}

impl TaskBuilder<'_> {
    /// Binds the next parameter (in declaration order) to `value`.
    pub fn input<T>(&mut self, value: impl IntoInput<T>) -> &mut Self {
        let input = value.into_input();
        self.dag.tasks[self.index].inputs.push(input);
        self
    }

    pub(crate) fn push_input(&mut self, input: Input) {
        let draft = &mut self.dag.tasks[self.index];
        if matches!(input, Input::Mapped(_)) {
            draft.map_mode.get_or_insert(MapMode::Product);
        }
        draft.inputs.push(input);
    }

    /// Maps the next parameter (in declaration order) over `values`: the task runs once per
    /// element (Airflow's `.expand()`); finish with [`TaskBuilder::finish_mapped`].
    pub fn expand<T>(&mut self, values: impl IntoMapped<T>) -> &mut Self {
        let draft = &mut self.dag.tasks[self.index];
        draft.inputs.push(Input::Mapped(values.into_mapped()));
        draft.map_mode.get_or_insert(MapMode::Product);
        self
    }

    /// Combines several mapped parameters element by element instead of as a cross
    /// product (Airflow's `zip`): instance `i` takes the `i`-th element of each list, and
    /// there are as many instances as the shortest list has elements.
    pub fn zip(&mut self) -> &mut Self {
        self.dag.tasks[self.index].map_mode = Some(MapMode::Zip);
        self
    }

    /// The typed handle of a mapped task: downstream, the `Vec` of its instances'
    /// results in map order.
    pub fn finish_mapped<T>(&mut self) -> MappedNode<T> {
        self.dag.tasks[self.index]
            .map_mode
            .get_or_insert(MapMode::Product);
        MappedNode::new(self.dag.node(self.index))
    }

    /// Gives this node an explicit task id; using an id twice is an error at build time.
    pub fn task_id(&mut self, id: impl Into<TaskId>) -> &mut Self {
        let draft = &mut self.dag.tasks[self.index];
        draft.id = id.into();
        draft.explicit_id = true;
        self
    }

    /// The typed handle for this node.
    pub fn finish<T>(&self) -> Node<T> {
        Node {
            node: self.dag.node(self.index),
            _output: PhantomData,
        }
    }
}

struct TaskDraft {
    id: TaskId,
    explicit_id: bool,
    spec: TaskSpec,
    inputs: Vec<Input>,
    /// Set once the task is mapped.
    map_mode: Option<MapMode>,
}

/// Builds a [`Dag`]: DAG options, tasks, and the edges between them.
///
/// Option setters take plain strings and never fail; every problem is collected and
/// reported together by [`DagBuilder::build`].
pub struct DagBuilder {
    serial: u32,
    id: DagId,
    description: Option<String>,
    schedule: Option<String>,
    timezone: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
    catchup: bool,
    max_active_runs: u32,
    max_active_tasks: u32,
    callbacks: crate::task::callbacks::Callbacks,
    dagrun_timeout: Option<Duration>,
    params: Vec<DagParam>,
    tags: Vec<String>,
    default_args: TaskOptions,
    tasks: Vec<TaskDraft>,
    order_edges: Vec<(AnyNode, AnyNode)>,
    name_uses: HashMap<TaskId, usize>,
}

impl DagBuilder {
    /// A DAG with this id and no schedule (manual runs only).
    pub fn new(id: impl Into<DagId>) -> Self {
        Self {
            serial: NEXT_BUILDER.fetch_add(1, Ordering::Relaxed),
            id: id.into(),
            description: None,
            schedule: None,
            timezone: None,
            start_date: None,
            end_date: None,
            catchup: false,
            max_active_runs: DEFAULT_MAX_ACTIVE_RUNS,
            max_active_tasks: DEFAULT_MAX_ACTIVE_TASKS,
            callbacks: crate::task::callbacks::Callbacks::default(),
            dagrun_timeout: None,
            params: Vec::new(),
            tags: Vec::new(),
            default_args: TaskOptions::default(),
            tasks: Vec::new(),
            order_edges: Vec::new(),
            name_uses: HashMap::new(),
        }
    }

    /// A human description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// The schedule: a cron expression or preset such as `@daily` (see [`Schedule`]).
    pub fn schedule(mut self, schedule: impl Into<String>) -> Self {
        self.schedule = Some(schedule.into());
        self
    }

    /// The time zone the schedule is read in: an IANA name such as `Europe/Amsterdam`
    /// (default `UTC`). A day without a time in `start_date` or `end_date` is midnight in
    /// it.
    pub fn timezone(mut self, name: impl Into<String>) -> Self {
        self.timezone = Some(name.into());
        self
    }

    /// The first logical date: a day (`2025-01-01`, midnight in the DAG's time zone) or
    /// an RFC 3339 time (`2025-01-01T02:00:00Z`).
    pub fn start_date(mut self, date: impl Into<String>) -> Self {
        self.start_date = Some(date.into());
        self
    }

    /// The last logical date that gets a scheduled run, written like `start_date`; it may
    /// not be before `start_date`.
    pub fn end_date(mut self, date: impl Into<String>) -> Self {
        self.end_date = Some(date.into());
        self
    }

    /// How many runs of the DAG may be active at once (Airflow's default: 16); at least 1.
    pub fn max_active_runs(mut self, runs: u32) -> Self {
        self.max_active_runs = runs;
        self
    }

    /// Runs `f` when a run of this DAG succeeds.
    pub fn on_success(
        mut self,
        f: impl Fn(&crate::task::callbacks::CallbackEvent) + Send + Sync + 'static,
    ) -> Self {
        self.callbacks.on_success.push(std::sync::Arc::new(f));
        self
    }

    /// Runs `f` when a run of this DAG fails.
    pub fn on_failure(
        mut self,
        f: impl Fn(&crate::task::callbacks::CallbackEvent) + Send + Sync + 'static,
    ) -> Self {
        self.callbacks.on_failure.push(std::sync::Arc::new(f));
        self
    }

    /// How many of this DAG's task instances may run at once, across its runs (Airflow's
    /// default: 16).
    pub fn max_active_tasks(mut self, tasks: u32) -> Self {
        self.max_active_tasks = tasks;
        self
    }

    /// How long a run may take before it fails, unfinished tasks and all; no limit by
    /// default.
    pub fn dagrun_timeout(mut self, timeout: Duration) -> Self {
        self.dagrun_timeout = Some(timeout);
        self
    }

    /// Declares a param: a typed value a run's `conf` may set, such as
    /// `DagParam::new::<f64>("threshold").default(0.8)` (see [`crate::params`]). Each
    /// param needs its own name.
    pub fn param(mut self, param: impl Into<DagParam>) -> Self {
        self.params.push(param.into());
        self
    }

    /// Whether missed intervals since `start_date` each get a run.
    pub fn catchup(mut self, catchup: bool) -> Self {
        self.catchup = catchup;
        self
    }

    /// Tags, for filtering.
    pub fn tags<S: Into<String>>(mut self, tags: impl IntoIterator<Item = S>) -> Self {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }

    /// Options every task inherits unless it sets them itself.
    pub fn default_args(mut self, defaults: TaskOptions) -> Self {
        self.default_args = defaults;
        self
    }

    /// Adds a task. Its id is the spec's name; a name used again gets Airflow's suffix
    /// (`train`, `train__1`, `train__2`).
    pub fn add_task(&mut self, spec: TaskSpec) -> TaskBuilder<'_> {
        let uses = self.name_uses.entry(spec.name().clone()).or_insert(0);
        let id = match *uses {
            0 => spec.name().clone(),
            n => TaskId::new(format!("{}__{n}", spec.name())),
        };
        *uses += 1;
        self.tasks.push(TaskDraft {
            id,
            explicit_id: false,
            inputs: Vec::with_capacity(spec.params().len()),
            spec,
            map_mode: None,
        });
        let index = self.tasks.len() - 1;
        TaskBuilder { dag: self, index }
    }

    /// Orders every task of `upstream` before every task of `downstream` (`a >> b`).
    pub fn set_downstream(&mut self, upstream: &[AnyNode], downstream: &[AnyNode]) {
        for &u in upstream {
            for &d in downstream {
                self.order_edges.push((u, d));
            }
        }
    }

    /// Orders consecutive groups: `chain(&[&[a], &[b, c], &[d]])` is `a >> [b, c] >> d`.
    pub fn chain(&mut self, groups: &[&[AnyNode]]) {
        for pair in groups.windows(2) {
            self.set_downstream(pair[0], pair[1]);
        }
    }

    fn node(&self, index: usize) -> AnyNode {
        AnyNode {
            builder: self.serial,
            index: u32::try_from(index).unwrap_or(u32::MAX),
        }
    }

    fn resolve(
        &self,
        node: AnyNode,
        task: &TaskId,
        errors: &mut Vec<DagDefinitionError>,
    ) -> Option<usize> {
        if node.builder == self.serial && node.index() < self.tasks.len() {
            Some(node.index())
        } else {
            errors.push(DagDefinitionError::ForeignNode {
                task: task.to_string(),
                index: node.index(),
            });
            None
        }
    }

    /// Validates everything and produces the DAG, or every problem found.
    pub fn build(self) -> Result<Dag, DagError> {
        let mut errors = Vec::new();
        if !valid_id(self.id.as_str()) {
            errors.push(DagDefinitionError::InvalidId {
                what: "DAG",
                id: self.id.to_string(),
            });
        }
        let schedule = match self.schedule.as_deref().map(Schedule::parse) {
            None => Schedule::Manual,
            Some(Ok(schedule)) => schedule,
            Some(Err(reason)) => {
                errors.push(DagDefinitionError::InvalidSchedule {
                    schedule: self.schedule.clone().unwrap_or_default(),
                    reason,
                });
                Schedule::Manual
            }
        };
        let timezone = match self.timezone.as_deref().map(Timetable::parse_timezone) {
            None => Tz::UTC,
            Some(Ok(tz)) => tz,
            Some(Err(e)) => {
                errors.push(DagDefinitionError::Timezone(e));
                Tz::UTC
            }
        };
        let mut date = |field: &'static str, text: Option<&str>| {
            let text = text?;
            let parsed = parse_date_in(text, timezone);
            if parsed.is_none() {
                errors.push(DagDefinitionError::InvalidDate {
                    field,
                    value: text.to_string(),
                });
            }
            parsed
        };
        let start_date = date("start_date", self.start_date.as_deref());
        let end_date = date("end_date", self.end_date.as_deref());
        if let (Some(start), Some(end)) = (start_date, end_date)
            && end < start
        {
            errors.push(DagDefinitionError::EndBeforeStart {
                start_date: self.start_date.clone().unwrap_or_default(),
                end_date: self.end_date.clone().unwrap_or_default(),
            });
        }
        if self.max_active_runs == 0 {
            errors.push(DagDefinitionError::ZeroMaxActiveRuns);
        }
        if self.max_active_tasks == 0 {
            errors.push(DagDefinitionError::ZeroMaxActiveTasks);
        }
        let mut declared: HashMap<&str, usize> = HashMap::new();
        for param in &self.params {
            if !valid_id(param.name()) {
                errors.push(DagDefinitionError::InvalidId {
                    what: "param",
                    id: param.name().to_string(),
                });
            }
            let count = declared.entry(param.name()).or_insert(0);
            *count += 1;
            if *count == 2 {
                errors.push(DagDefinitionError::DuplicateParam(param.name().to_string()));
            }
            if let Some(reason) = param.invalid_default() {
                errors.push(DagDefinitionError::InvalidParamDefault {
                    param: param.name().to_string(),
                    reason: reason.to_string(),
                });
            }
        }
        if self.tasks.is_empty() {
            errors.push(DagDefinitionError::Empty);
        }

        let mut seen: HashMap<&TaskId, bool> = HashMap::new();
        for draft in &self.tasks {
            if !valid_id(draft.id.as_str()) {
                errors.push(DagDefinitionError::InvalidId {
                    what: "task",
                    id: draft.id.to_string(),
                });
            }
            if let Some(prev_explicit) = seen.insert(&draft.id, draft.explicit_id)
                && (prev_explicit || draft.explicit_id)
            {
                errors.push(DagDefinitionError::DuplicateTaskId(draft.id.to_string()));
            }
        }

        let n = self.tasks.len();
        let mut upstream: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut tasks = Vec::with_capacity(n);
        for (index, draft) in self.tasks.iter().enumerate() {
            let params = draft.spec.params();
            if draft.inputs.len() < params.len() {
                for param in &params[draft.inputs.len()..] {
                    errors.push(DagDefinitionError::MissingArgument {
                        task: draft.id.to_string(),
                        param: param.name().to_string(),
                    });
                }
            }
            let mut bound = Vec::with_capacity(draft.inputs.len());
            for (param, input) in params.iter().zip(&draft.inputs) {
                bound.push(match input {
                    Input::Upstream(node) => match self.resolve(*node, &draft.id, &mut errors) {
                        Some(producer) => {
                            upstream[index].push(producer);
                            BoundInput::Upstream(producer)
                        }
                        None => continue,
                    },
                    Input::Literal(blob) => BoundInput::Literal(blob.clone()),
                    Input::Mapped(MapSource::Upstream(node)) => {
                        match self.resolve(*node, &draft.id, &mut errors) {
                            Some(producer) => {
                                upstream[index].push(producer);
                                BoundInput::Mapped(MappedInput::Upstream(producer))
                            }
                            None => continue,
                        }
                    }
                    Input::Mapped(MapSource::Literal(blobs)) => {
                        BoundInput::Mapped(MappedInput::Literal(blobs.as_slice().into()))
                    }
                    Input::Missing => {
                        errors.push(DagDefinitionError::MissingArgument {
                            task: draft.id.to_string(),
                            param: param.name().to_string(),
                        });
                        continue;
                    }
                    Input::Invalid(reason) | Input::Mapped(MapSource::Invalid(reason)) => {
                        errors.push(DagDefinitionError::LiteralEncode {
                            task: draft.id.to_string(),
                            param: param.name().to_string(),
                            reason: reason.clone(),
                        });
                        continue;
                    }
                });
            }
            let found = draft.spec.output().type_name();
            let required = match draft.spec.kind() {
                TaskKind::Normal => None,
                TaskKind::Branch => {
                    Some(("branch", std::any::type_name::<crate::branch::Branch>()))
                }
                TaskKind::ShortCircuit => Some(("short-circuit", std::any::type_name::<bool>())),
            };
            let mapped = draft
                .inputs
                .iter()
                .any(|input| matches!(input, Input::Mapped(_)));
            if draft.map_mode.is_some() && !mapped {
                errors.push(DagDefinitionError::MappedWithoutList {
                    task: draft.id.to_string(),
                });
            }
            if let Some((kind, _)) = required
                && mapped
            {
                errors.push(DagDefinitionError::MappedKind {
                    task: draft.id.to_string(),
                    kind,
                });
            }
            if let Some((kind, expected)) = required
                && found != expected
            {
                errors.push(DagDefinitionError::KindOutput {
                    task: draft.id.to_string(),
                    kind,
                    expected,
                    found,
                });
            }
            let options = draft.spec.options().or(&self.default_args);
            if options.pool_slots == Some(0) {
                errors.push(DagDefinitionError::ZeroPoolSlots(draft.id.to_string()));
            }
            check_email(
                &draft.id,
                options.email.as_deref().unwrap_or(&[]),
                &mut errors,
            );
            tasks.push(Task {
                id: draft.id.clone(),
                spec: draft.spec.clone(),
                options,
                priority: 0,
                map_mode: mapped.then(|| draft.map_mode.unwrap_or_default()),
                inputs: bound,
                upstream: Vec::new(),
                downstream: Vec::new(),
            });
        }
        for &(u, d) in &self.order_edges {
            let target = self
                .tasks
                .get(d.index())
                .map_or_else(|| TaskId::new("?"), |t| t.id.clone());
            if let (Some(u), Some(d)) = (
                self.resolve(u, &target, &mut errors),
                self.resolve(d, &target, &mut errors),
            ) {
                upstream[d].push(u);
            }
        }
        for (index, ups) in upstream.iter_mut().enumerate() {
            ups.sort_unstable();
            ups.dedup();
            for &u in ups.iter() {
                tasks[u].downstream.push(index);
            }
            tasks[index].upstream = std::mem::take(ups);
        }

        let cycles = graph::cycles(
            &tasks
                .iter()
                .map(|t| t.downstream.as_slice())
                .collect::<Vec<_>>(),
        );
        if !cycles.is_empty() {
            errors.push(DagDefinitionError::Cycle(
                cycles
                    .into_iter()
                    .map(|cycle| cycle.into_iter().map(|i| tasks[i].id.clone()).collect())
                    .collect(),
            ));
        }
        if !errors.is_empty() {
            return Err(DagError::Invalid {
                dag: self.id,
                errors,
            });
        }
        let index = tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.clone(), i))
            .collect();
        let topological = graph::topological_order(
            &tasks
                .iter()
                .map(|t| t.upstream.as_slice())
                .collect::<Vec<_>>(),
        );
        compute_priorities(&mut tasks, &topological);
        let fingerprint = fingerprint(&tasks);
        Ok(Dag {
            fingerprint,
            id: self.id,
            description: self.description,
            schedule,
            timezone,
            start_date,
            end_date,
            catchup: self.catchup,
            max_active_runs: self.max_active_runs,
            max_active_tasks: self.max_active_tasks,
            callbacks: self.callbacks,
            dagrun_timeout: self.dagrun_timeout,
            params: Params::from_checked(self.params),
            tags: self.tags,
            tasks,
            index,
            topological,
        })
    }
}

/// Checks a task's email recipients, or that this build can send email at all.
fn check_email(task: &TaskId, email: &[String], errors: &mut Vec<DagDefinitionError>) {
    if email.is_empty() {
        return;
    }
    #[cfg(feature = "email")]
    for address in email {
        if let Err(crate::notify::NotifyError::InvalidAddress { reason, .. }) =
            crate::notify::check_address(address)
        {
            errors.push(DagDefinitionError::InvalidEmail {
                task: task.to_string(),
                address: address.clone(),
                reason,
            });
        }
    }
    #[cfg(not(feature = "email"))]
    errors.push(DagDefinitionError::EmailFeatureOff(task.to_string()));
}

/// Airflow's default `max_active_tasks`.
pub const DEFAULT_MAX_ACTIVE_TASKS: u32 = 16;

/// DAGs up to this many tasks get exact priorities; larger ones an approximation.
const EXACT_PRIORITY_TASKS: usize = 2048;

/// Airflow's `downstream` weight rule: a task's priority is its own weight plus the
/// weights of all tasks downstream of it, each counted once. That needs every task's set of
/// descendants, quadratic in the worst case, so above [`EXACT_PRIORITY_TASKS`] tasks a
/// descendant reached along several paths is counted once per path (the order of
/// priorities along a chain, and "more work downstream first", are kept).
fn compute_priorities(tasks: &mut [Task], topological: &[usize]) {
    let exact = tasks.len() <= EXACT_PRIORITY_TASKS;
    let mut below: Vec<Vec<usize>> = vec![Vec::new(); if exact { tasks.len() } else { 0 }];
    for &i in topological.iter().rev() {
        let own = i64::from(tasks[i].priority_weight());
        tasks[i].priority = if exact {
            let mut set: Vec<usize> = tasks[i].downstream.clone();
            for &d in &tasks[i].downstream {
                set.extend_from_slice(&below[d]);
            }
            set.sort_unstable();
            set.dedup();
            let sum = set
                .iter()
                .map(|&d| i64::from(tasks[d].priority_weight()))
                .sum::<i64>();
            below[i] = set;
            own.saturating_add(sum)
        } else {
            tasks[i]
                .downstream
                .iter()
                .fold(own, |acc, &d| acc.saturating_add(tasks[d].priority))
        };
    }
}

/// A stable hash (FNV-1a, 64 bits) of what a run depends on: task ids, their edges, and
/// their parameter and output types. Two builds with equal fingerprints can continue each
/// other's runs.
fn fingerprint(tasks: &[Task]) -> String {
    let mut hash = StableHash::default();
    for task in tasks {
        hash = hash.text(task.id.as_str());
        for param in task.spec.params() {
            hash = hash.text(param.type_name());
        }
        hash = hash.text(task.spec.output().type_name());
        // A mapped task stores instances by map index, an unmapped one does not.
        hash = hash.text(match task.map_mode {
            None => "",
            Some(MapMode::Product) => "mapped",
            Some(MapMode::Zip) => "zipped",
        });
        for &u in &task.upstream {
            hash = hash.text(tasks[u].id.as_str());
        }
    }
    format!("{:016x}", hash.finish())
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 250
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// How many runs of a DAG may be active at once unless it says otherwise (Airflow's
/// `max_active_runs_per_dag`).
pub const DEFAULT_MAX_ACTIVE_RUNS: u32 = 16;

/// A parameter's argument, resolved.
#[derive(Clone, Debug)]
pub enum BoundInput {
    /// The return value of the task at this index.
    Upstream(usize),
    /// A literal from the DAG definition.
    Literal(XComBlob),
    /// A list the task is mapped over.
    Mapped(MappedInput),
}

/// The list a mapped parameter takes its elements from.
#[derive(Clone, Debug)]
pub enum MappedInput {
    /// The output (a `Vec`) of the task at this index, or its results if it is mapped.
    Upstream(usize),
    /// Elements from the DAG definition.
    Literal(std::sync::Arc<[XComBlob]>),
}

/// One task of a built DAG.
#[derive(Clone, Debug)]
pub struct Task {
    id: TaskId,
    spec: TaskSpec,
    /// Its options after `default_args`; the accessors below say what an unset one means.
    options: TaskOptions,
    /// Its own weight plus every downstream task's (Airflow's `downstream` weight rule).
    priority: i64,
    /// How its mapped arguments combine, if it is mapped.
    map_mode: Option<MapMode>,
    inputs: Vec<BoundInput>,
    upstream: Vec<usize>,
    downstream: Vec<usize>,
}

impl Task {
    /// The pool a try takes slots of.
    pub fn pool(&self) -> &str {
        self.options
            .pool
            .as_deref()
            .unwrap_or(crate::pools::DEFAULT_POOL)
    }

    /// Slots of the pool a try takes.
    pub fn pool_slots(&self) -> u32 {
        self.options.pool_slots.unwrap_or(1)
    }

    /// The task's own priority weight.
    pub fn priority_weight(&self) -> i32 {
        self.options.priority_weight.unwrap_or(1)
    }

    /// Its effective priority: its weight plus all downstream tasks' weights.
    pub fn priority(&self) -> i64 {
        self.priority
    }

    /// Who is mailed when the task fails or is retried, after `default_args`.
    pub fn email(&self) -> &[String] {
        self.options.email.as_deref().unwrap_or(&[])
    }

    /// Whether reaching `state` mails [`Task::email`]: `failed` unless
    /// `email_on_failure = false`, `up_for_retry` unless `email_on_retry = false`.
    pub fn emails_on(&self, state: crate::state::TaskState) -> bool {
        use crate::state::TaskState;
        !self.email().is_empty()
            && match state {
                TaskState::Failed => self.options.email_on_failure.unwrap_or(true),
                TaskState::UpForRetry => self.options.email_on_retry.unwrap_or(true),
                _ => false,
            }
    }

    /// When the task runs, given its upstream tasks' states (default `all_success`).
    pub fn trigger_rule(&self) -> TriggerRule {
        self.options.trigger_rule.unwrap_or_default()
    }

    /// How long one try may run, if limited.
    pub fn execution_timeout(&self) -> Option<Duration> {
        self.options.execution_timeout
    }

    /// The pause before retry number `retry` (1 for the first retry), as Airflow
    /// computes it: `retry_delay`, or with exponential backoff
    /// `retry_delay * 2^(retry-1)` plus a jitter of up to as much again derived from
    /// `seed` (stable for one task instance and try), capped by `max_retry_delay`.
    pub fn retry_delay_for(&self, retry: u32, seed: u64) -> Duration {
        if !self.options.retry_exponential_backoff.unwrap_or(false) {
            return self.retry_delay();
        }
        let base_ms = u64::try_from(self.retry_delay().as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let min_ms = base_ms.saturating_mul(1_u64 << retry.saturating_sub(1).min(62));
        let delay = Duration::from_millis(min_ms.saturating_add(seed % min_ms));
        self.options
            .max_retry_delay
            .map_or(delay, |cap| delay.min(cap))
    }

    /// The task's id within its DAG.
    pub fn id(&self) -> &TaskId {
        &self.id
    }
    /// The task's definition.
    pub fn spec(&self) -> &TaskSpec {
        &self.spec
    }
    /// Retries, after `default_args`.
    pub fn retries(&self) -> u32 {
        self.options.retries.unwrap_or(0)
    }
    /// Pause before a retry, after `default_args` (Airflow's default: 5 minutes).
    pub fn retry_delay(&self) -> Duration {
        self.options.retry_delay.unwrap_or(DEFAULT_RETRY_DELAY)
    }
    /// Owner, after `default_args` (Airflow's default: `airflow`).
    pub fn owner(&self) -> &str {
        self.options.owner.as_deref().unwrap_or("airflow")
    }
    /// Whether the task is mapped: one instance per element of its mapped arguments.
    pub fn is_mapped(&self) -> bool {
        self.map_mode.is_some()
    }
    /// How its mapped arguments combine, if it is mapped.
    pub fn map_mode(&self) -> Option<MapMode> {
        self.map_mode
    }
    /// Arguments, in parameter order.
    pub fn inputs(&self) -> &[BoundInput] {
        &self.inputs
    }
    /// Indices of the tasks that must finish first (data and ordering edges).
    pub fn upstream(&self) -> &[usize] {
        &self.upstream
    }
    /// Indices of the tasks that wait for this one.
    pub fn downstream(&self) -> &[usize] {
        &self.downstream
    }
}

/// A validated DAG: acyclic, with unique task ids and resolved options. Immutable.
#[derive(Clone, Debug)]
pub struct Dag {
    id: DagId,
    fingerprint: String,
    description: Option<String>,
    schedule: Schedule,
    timezone: Tz,
    start_date: Option<DateTime<Utc>>,
    end_date: Option<DateTime<Utc>>,
    catchup: bool,
    max_active_runs: u32,
    max_active_tasks: u32,
    callbacks: crate::task::callbacks::Callbacks,
    dagrun_timeout: Option<Duration>,
    params: Params,
    tags: Vec<String>,
    tasks: Vec<Task>,
    index: HashMap<TaskId, usize>,
    topological: Vec<usize>,
}

impl Dag {
    /// The DAG's id.
    pub fn id(&self) -> &DagId {
        &self.id
    }
    /// A hash of the DAG's shape (task ids, edges, types), recorded with each run so a
    /// run started by another build is recognised.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
    /// The description, if any.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
    /// When the DAG runs on its own.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }
    /// The time zone the schedule is read in (`UTC` unless set).
    pub fn timezone(&self) -> Tz {
        self.timezone
    }
    /// The first logical date, if set.
    pub fn start_date(&self) -> Option<DateTime<Utc>> {
        self.start_date
    }
    /// The last logical date that gets a scheduled run, if set.
    pub fn end_date(&self) -> Option<DateTime<Utc>> {
        self.end_date
    }
    /// Whether missed intervals get runs.
    pub fn catchup(&self) -> bool {
        self.catchup
    }
    /// How many runs may be active at once (16 unless set).
    pub fn max_active_runs(&self) -> u32 {
        self.max_active_runs
    }
    /// How many of this DAG's task instances may run at once.
    pub fn max_active_tasks(&self) -> u32 {
        self.max_active_tasks
    }
    /// The callbacks run when a run ends.
    pub fn callbacks(&self) -> &crate::task::callbacks::Callbacks {
        &self.callbacks
    }
    /// How long a run may take, if limited.
    pub fn dagrun_timeout(&self) -> Option<Duration> {
        self.dagrun_timeout
    }
    /// The declared params, which a run's conf is resolved against.
    pub fn params(&self) -> &Params {
        &self.params
    }
    /// The schedule in the DAG's time zone: which intervals get runs, and when.
    pub fn timetable(&self) -> Timetable {
        Timetable::new(&self.schedule, self.timezone)
    }
    /// The bounds on the DAG's scheduled runs: start date, end date and catchup.
    pub fn restriction(&self) -> Restriction {
        Restriction {
            start_date: self.start_date,
            end_date: self.end_date,
            catchup: self.catchup,
        }
    }
    /// Tags.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }
    /// Tasks, in the order they were added (their indices).
    pub fn tasks(&self) -> &[Task] {
        &self.tasks
    }
    /// The index of the task with this id.
    pub fn task_index(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }
    /// The task with this id.
    pub fn task(&self, id: &str) -> Option<&Task> {
        self.task_index(id).map(|i| &self.tasks[i])
    }
    /// Task indices with every upstream before its downstream.
    pub fn topological_order(&self) -> &[usize] {
        &self.topological
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::TaskError;
    use crate::time::parse_date;

    fn source(name: &str) -> TaskSpec {
        TaskSpec::from_sync(name, |_, _| Ok::<u64, TaskError>(1))
    }
    fn sink(name: &str) -> TaskSpec {
        TaskSpec::from_sync(name, |_, inputs| {
            Ok::<u64, TaskError>(inputs.get::<u64>(0)? + 1)
        })
        .param::<u64>("x")
    }

    fn problems(builder: DagBuilder) -> Vec<DagDefinitionError> {
        builder.build().unwrap_err().errors().to_vec()
    }

    #[test]
    fn data_and_order_edges_become_upstreams() {
        let mut b = DagBuilder::new("d");
        let a = b.add_task(source("a")).finish::<u64>();
        let mut t = b.add_task(sink("b"));
        t.input(a);
        let bn = t.finish::<u64>();
        let c = b.add_task(source("c")).finish::<u64>();
        b.set_downstream(&[a.any(), c.any()], &[bn.any()]);
        let dag = b.build().unwrap();
        assert_eq!(dag.task("b").unwrap().upstream(), &[0, 2]);
        assert_eq!(dag.task("a").unwrap().downstream(), &[1]);
        let order = dag.topological_order();
        let pos = |i| order.iter().position(|&x| x == i).unwrap();
        assert!(pos(0) < pos(1) && pos(2) < pos(1));
    }

    #[test]
    fn reused_tasks_get_airflow_suffixes_and_explicit_duplicates_fail() {
        let mut b = DagBuilder::new("d");
        for _ in 0..3 {
            b.add_task(source("load"));
        }
        let dag = b.build().unwrap();
        let ids: Vec<_> = dag.tasks().iter().map(|t| t.id().to_string()).collect();
        assert_eq!(ids, ["load", "load__1", "load__2"]);

        let mut b = DagBuilder::new("d");
        b.add_task(source("x"));
        b.add_task(source("y")).task_id("x");
        assert_eq!(
            problems(b),
            [DagDefinitionError::DuplicateTaskId("x".into())]
        );
    }

    #[test]
    fn every_cycle_is_reported_with_all_other_problems() {
        let mut b = DagBuilder::new("bad id!")
            .schedule("every day")
            .start_date("yesterday");
        let nodes: Vec<AnyNode> = ["a", "b", "c", "d"]
            .iter()
            .map(|n| b.add_task(source(n)).finish::<u64>().any())
            .collect();
        b.chain(&[&[nodes[0]], &[nodes[1]], &[nodes[0]]]);
        b.chain(&[&[nodes[2]], &[nodes[3]], &[nodes[2]]]);
        let errs = problems(b);
        assert!(matches!(errs[0], DagDefinitionError::InvalidId { .. }));
        assert!(matches!(
            errs[1],
            DagDefinitionError::InvalidSchedule { .. }
        ));
        assert!(matches!(errs[2], DagDefinitionError::InvalidDate { .. }));
        let DagDefinitionError::Cycle(cycles) = &errs[3] else {
            panic!("{errs:?}")
        };
        assert_eq!(cycles.len(), 2);
    }

    #[test]
    fn missing_arguments_foreign_nodes_and_empty_dags_are_errors() {
        let mut other = DagBuilder::new("other");
        let foreign = other.add_task(source("a")).finish::<u64>();
        let mut b = DagBuilder::new("d");
        b.add_task(sink("no_arg"));
        b.add_task(sink("foreign")).input(foreign);
        let errs = problems(b);
        assert!(
            matches!(&errs[0], DagDefinitionError::MissingArgument { param, .. } if param == "x")
        );
        assert!(matches!(&errs[1], DagDefinitionError::ForeignNode { .. }));
        assert_eq!(
            problems(DagBuilder::new("empty")),
            [DagDefinitionError::Empty]
        );
    }

    #[test]
    fn priorities_sum_downstream_weights_once() {
        // a -> b -> d, a -> c -> d: d is below a along two paths but counts once.
        let mut b = DagBuilder::new("d");
        let n: Vec<AnyNode> = ["a", "b", "c", "d"]
            .iter()
            .zip([1, 2, 3, 10])
            .map(|(name, w)| {
                b.add_task(source(name).priority_weight(w))
                    .finish::<u64>()
                    .any()
            })
            .collect();
        b.set_downstream(&[n[0]], &[n[1], n[2]]);
        b.set_downstream(&[n[1], n[2]], &[n[3]]);
        let dag = b.build().unwrap();
        let p = |t: &str| dag.task(t).unwrap().priority();
        assert_eq!((p("a"), p("b"), p("c"), p("d")), (16, 12, 13, 10));
    }

    #[test]
    fn exponential_backoff_doubles_with_stable_jitter_and_a_cap() {
        let mut b = DagBuilder::new("d");
        b.add_task(source("plain").retry_delay(Duration::from_secs(10)));
        b.add_task(
            source("backoff")
                .retry_delay(Duration::from_secs(10))
                .retry_exponential_backoff(true),
        );
        b.add_task(
            source("capped")
                .retry_delay(Duration::from_secs(10))
                .retry_exponential_backoff(true)
                .max_retry_delay(Duration::from_secs(25)),
        );
        let dag = b.build().unwrap();
        let plain = dag.task("plain").unwrap();
        assert_eq!(plain.retry_delay_for(3, 12345), Duration::from_secs(10));
        let backoff = dag.task("backoff").unwrap();
        for (retry, low) in [(1, 10), (2, 20), (3, 40), (4, 80)] {
            let delay = backoff.retry_delay_for(retry, 987_654_321);
            assert!(
                delay >= Duration::from_secs(low) && delay < Duration::from_secs(2 * low),
                "retry {retry}: {delay:?}"
            );
            assert_eq!(
                delay,
                backoff.retry_delay_for(retry, 987_654_321),
                "stable for the same seed"
            );
        }
        assert_ne!(
            backoff.retry_delay_for(2, 1),
            backoff.retry_delay_for(2, 2),
            "jitter"
        );
        assert_eq!(
            dag.task("capped").unwrap().retry_delay_for(4, 7),
            Duration::from_secs(25)
        );
        assert!(
            backoff.retry_delay_for(200, u64::MAX) > Duration::ZERO,
            "no overflow"
        );
    }

    #[test]
    fn default_args_fill_unset_options_only() {
        let mut b = DagBuilder::new("d").default_args(
            TaskOptions::default()
                .with_retries(2)
                .with_retry_delay(Duration::from_secs(1))
                .with_owner("ml-team")
                .with_trigger_rule(TriggerRule::AllDone),
        );
        b.add_task(source("a"));
        b.add_task(source("b").retries(5));
        let dag = b.build().unwrap();
        assert_eq!(dag.task("a").unwrap().retries(), 2);
        assert_eq!(dag.task("b").unwrap().retries(), 5);
        assert_eq!(dag.task("b").unwrap().owner(), "ml-team");
        assert_eq!(dag.task("a").unwrap().retry_delay(), Duration::from_secs(1));
        assert_eq!(dag.task("a").unwrap().trigger_rule(), TriggerRule::AllDone);
    }

    #[test]
    fn email_options_default_like_airflow_and_a_task_can_opt_out() {
        let mut b = DagBuilder::new("d").default_args(
            TaskOptions::default()
                .with_email(["team@example.com"])
                .with_email_on_retry(false),
        );
        b.add_task(source("a"));
        b.add_task(source("b").email(Vec::<String>::new()));
        b.add_task(source("c").email_on_failure(false).email_on_retry(true));
        b.add_task(source("d").email(["ops@example.com"]));
        #[cfg(not(feature = "email"))]
        assert_eq!(
            problems(b),
            ["a", "c", "d"].map(|t| DagDefinitionError::EmailFeatureOff(t.into()))
        );
        #[cfg(feature = "email")]
        {
            use crate::state::TaskState;
            let dag = b.build().unwrap();
            let task = |id: &str| dag.task(id).unwrap();
            assert_eq!(task("a").email(), ["team@example.com"]);
            assert!(task("a").emails_on(TaskState::Failed));
            assert!(!task("a").emails_on(TaskState::UpForRetry));
            assert!(
                !task("b").emails_on(TaskState::Failed),
                "`email = []` opts out"
            );
            assert!(!task("c").emails_on(TaskState::Failed));
            assert!(task("c").emails_on(TaskState::UpForRetry));
            assert_eq!(task("d").email(), ["ops@example.com"]);
            assert!(!task("d").emails_on(TaskState::Success));
        }
    }

    #[test]
    fn fingerprints_change_with_the_shape_only() {
        let build = |extra_edge: bool, retries: u32| {
            let mut b = DagBuilder::new("d");
            let a = b
                .add_task(source("a").retries(retries))
                .finish::<u64>()
                .any();
            let c = b.add_task(source("c")).finish::<u64>().any();
            if extra_edge {
                b.set_downstream(&[a], &[c]);
            }
            b.build().unwrap().fingerprint().to_string()
        };
        assert_eq!(
            build(false, 0),
            build(false, 3),
            "options do not change the shape"
        );
        assert_ne!(build(false, 0), build(true, 0));
        assert_eq!(build(true, 0).len(), 16);
    }

    fn one_task(b: DagBuilder) -> DagBuilder {
        let mut b = b;
        b.add_task(source("a"));
        b
    }

    #[test]
    fn scheduling_options_have_airflows_defaults() {
        let dag = one_task(DagBuilder::new("d")).build().unwrap();
        assert_eq!(dag.timezone(), Tz::UTC);
        assert_eq!(dag.end_date(), None);
        assert_eq!(dag.max_active_runs(), 16);
        assert_eq!(dag.dagrun_timeout(), None);
        assert!(dag.params().is_empty());
        assert_eq!(dag.restriction(), Restriction::default());
        assert_eq!(dag.timetable().timezone(), Tz::UTC);
    }

    #[test]
    fn scheduling_options_reach_the_dag_its_timetable_and_restriction() {
        let dag = one_task(
            DagBuilder::new("d")
                .schedule("0 2 * * *")
                .timezone("Europe/Amsterdam")
                .start_date("2025-01-01")
                .end_date("2025-06-30T12:00:00Z")
                .catchup(true)
                .max_active_runs(1)
                .dagrun_timeout(Duration::from_secs(7200)),
        )
        .build()
        .unwrap();
        assert_eq!(dag.timezone(), Tz::Europe__Amsterdam);
        // A day without a time is midnight in the DAG's time zone (UTC+1 in winter).
        assert_eq!(
            dag.start_date().unwrap().to_rfc3339(),
            "2024-12-31T23:00:00+00:00"
        );
        assert_eq!(
            dag.end_date().unwrap().to_rfc3339(),
            "2025-06-30T12:00:00+00:00"
        );
        assert_eq!(dag.max_active_runs(), 1);
        assert_eq!(dag.dagrun_timeout(), Some(Duration::from_secs(7200)));
        let restriction = dag.restriction();
        assert_eq!(
            restriction,
            Restriction {
                start_date: dag.start_date(),
                end_date: dag.end_date(),
                catchup: true,
            }
        );
        // 02:00 in Amsterdam: 01:00 UTC in winter.
        let timetable = dag.timetable();
        assert_eq!(timetable.timezone(), Tz::Europe__Amsterdam);
        let now = parse_date("2025-01-03T12:00:00Z").unwrap();
        let due = timetable.due_intervals(None, &restriction, now);
        assert_eq!(due.len(), 2);
        assert_eq!(due[0].start.to_rfc3339(), "2025-01-01T01:00:00+00:00");
    }

    #[test]
    fn bad_scheduling_options_are_collected() {
        let errs = problems(one_task(
            DagBuilder::new("d")
                .timezone("Europe/Amsterdm")
                .start_date("2025-01-01")
                .end_date("2025-02-30")
                .max_active_runs(0),
        ));
        assert_eq!(errs.len(), 3, "{errs:?}");
        let message = errs[0].to_string();
        assert!(
            message.starts_with(
                "unknown time zone `Europe/Amsterdm`; did you mean `Europe/Amsterdam`"
            ),
            "{message}"
        );
        assert_eq!(
            errs[1],
            DagDefinitionError::InvalidDate {
                field: "end_date",
                value: "2025-02-30".into()
            }
        );
        assert_eq!(errs[2], DagDefinitionError::ZeroMaxActiveRuns);

        let errs = problems(one_task(
            DagBuilder::new("d")
                .start_date("2025-01-01")
                .end_date("2024-12-31"),
        ));
        assert_eq!(
            errs,
            [DagDefinitionError::EndBeforeStart {
                start_date: "2025-01-01".into(),
                end_date: "2024-12-31".into()
            }]
        );
        assert_eq!(
            errs[0].to_string(),
            "end_date `2024-12-31` is before start_date `2025-01-01`, so no run would ever be \
             scheduled; set an end_date at or after the start_date, or none"
        );
        // Equal dates are one run, not an error; so is an end date without a start date.
        assert!(
            one_task(
                DagBuilder::new("d")
                    .start_date("2025-01-01")
                    .end_date("2025-01-01")
            )
            .build()
            .is_ok()
        );
        assert!(
            one_task(DagBuilder::new("d").end_date("2025-01-01"))
                .build()
                .is_ok()
        );
    }

    #[test]
    fn params_are_declared_once_each_with_usable_defaults() {
        use crate::params::DagParam;
        let dag = one_task(
            DagBuilder::new("d")
                .param(DagParam::new::<f64>("threshold").default(0.8))
                .param(DagParam::new::<String>("models_dir").default("models"))
                .param(DagParam::new::<u32>("epochs")),
        )
        .build()
        .unwrap();
        let names: Vec<&str> = dag.params().iter().map(|p| p.name()).collect();
        assert_eq!(names, ["threshold", "models_dir", "epochs"]);
        assert_eq!(
            dag.params().get("models_dir").unwrap().default_value(),
            Some(&serde_json::json!("models"))
        );

        let errs = problems(one_task(
            DagBuilder::new("d")
                .param(DagParam::new::<f64>("x"))
                .param(DagParam::new::<u32>("x"))
                .param(DagParam::new::<u32>("x"))
                .param(DagParam::new::<f64>("nan").default(f64::NAN))
                .param(DagParam::new::<u32>("no spaces")),
        ));
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert_eq!(errs[0], DagDefinitionError::DuplicateParam("x".into()));
        assert_eq!(
            errs[0].to_string(),
            "param `x` is declared twice; give each param its own name"
        );
        assert!(
            matches!(&errs[1], DagDefinitionError::InvalidParamDefault { param, .. } if param == "nan")
        );
        assert!(
            matches!(&errs[2], DagDefinitionError::InvalidId { what: "param", id } if id == "no spaces")
        );
    }
}

//! The `#[task]` and `#[dag]` attribute macros of flow.
//!
//! Use them through `flow-runtime`, which re-exports them (`use flow_runtime::prelude::*;`):
//! the code they generate names `::flow_runtime` (or the path given with `crate = ".."`).
//! Both are sugar over flow-runtime's public builder API; each macro's documentation shows
//! the hand-written code it stands for.
//!
//! Inside, each macro runs in phases: the `attr` module parses the options into typed
//! values (shared by both macros; every task option is one row of `attr::table`), `task`
//! and `dag` check the item into a model, rewrite and generate code, `check` checks cron
//! expressions and time zones at compile time in the runtime's words, `dag::params` reads
//! a DAG's typed params, and `error` collects every problem so that all of them are
//! reported at once, next to the user's item. Generated code names the runtime only
//! through `flow_runtime::__private`.

mod attr;
mod check;
mod dag;
mod error;
mod group;
mod outputs;
mod spans;
mod syntax;
mod task;

use proc_macro::TokenStream;

/// Makes a function a task: a step of a DAG whose arguments and output travel between
/// tasks as XComs.
///
/// The function stays exactly as written, so unit tests call it like any function.
/// Beside it the macro adds a struct of the same name (structs and functions live in
/// different namespaces) with:
///
/// - `name::node(&mut dag, args..) -> Node<Output>`: adds the task to a `DagBuilder`; each
///   argument is a value or the `Node` of an upstream task with the parameter's type.
///   `#[dag]` bodies call it for you.
/// - `name::spec() -> TaskSpec`: the task's definition (name, typed parameters and
///   output, options, documentation, and the function the runtime calls).
///
/// and registers the task with the binary (`tasks list`).
///
/// # The function
///
/// - **Parameters** are owned values that can travel between tasks: types implementing
///   `Serialize + DeserializeOwned + Send + Sync + 'static` (derive `Serialize` and
///   `Deserialize`). Each receives the output of an upstream task or a literal written in
///   the DAG. A parameter's name is its name in the DAG, so it must be a plain name.
/// - One parameter may be **`&TaskContext`**, at any position; the runtime passes the
///   context of the running try (dates, run id, try number, XCom by key).
/// - It **returns** nothing, a value `T`, or a type whose name is `Result`
///   (`Result<T, E>`, `anyhow::Result<T>`, `std::io::Result<T>`, your own
///   `type Result<T> = ..`): `Ok(T)` is the output and `Err(e)` fails the try, which is
///   retried as `retries` allows. `E` must convert into `anyhow::Error` (every
///   `std::error::Error + Send + Sync + 'static` does). A return type named otherwise is
///   stored as a value, even if it is an alias of `Result`.
/// - It is **sync or `async`**: a sync task runs on a blocking thread, an async one on
///   the runtime (its future must be `Send`).
///
/// # Options
///
/// | Option | Value | Default |
/// |---|---|---|
/// | `task_id = "load"` | the task's id in its DAGs: letters, digits, `_`, `-`, `.` | the function's name |
/// | `retries = 3` | how many times a failed try is retried | the DAG's `default_args`, else 0 |
/// | `retry_delay = "5m"` | pause before a retry: `30s`, `5m`, `1h 30m` ([humantime]) | the DAG's `default_args`, else 5 minutes |
/// | `owner = "ml-team"` | who is responsible for the task | the DAG's `default_args`, else `airflow` |
/// | `trigger_rule = "all_done"` | when the task runs, given its upstream tasks' states: Airflow's `all_success`, `all_failed`, `all_done`, `all_skipped`, `one_success`, `one_failed`, `one_done`, `none_failed`, `none_failed_min_one_success`, `none_skipped`, `all_done_min_one_success`, `always`, `all_done_setup_success` | the DAG's `default_args`, else `all_success` |
/// | `retry_exponential_backoff = true` | each retry waits twice as long as the one before, with jitter | the DAG's `default_args`, else `false` |
/// | `max_retry_delay = "1h"` | the longest pause before a retry when backing off | the DAG's `default_args`, else no cap |
/// | `execution_timeout = "10m"` | how long one try may run before it fails; longer than `0s` | the DAG's `default_args`, else no limit |
/// | `branch` | a flag: the task returns a `Branch`, the downstream tasks to follow; the others are skipped | not a branch |
/// | `short_circuit` | a flag: the task returns `bool`; `false` skips every task downstream | not a short circuit |
/// | `ignore_downstream_trigger_rules = false` | with `short_circuit`: `false` skips only the direct downstream tasks, and the tasks after them follow their own trigger rules (Airflow's option) | `true`: everything downstream is skipped |
/// | `shell` | a flag: the task returns a `flow_runtime::shell::ShellCommand` (or a `Result` of one), which the runtime runs; the output is the last line of its stdout, a `String` (see below) | not a shell task |
/// | `sensor` | a flag: the task returns `flow_runtime::sensor::Poke<T>` (or a `Result` of one) and is poked until ready; its output is the `T` (see below) | not a sensor |
/// | `poke_interval = "30s"` | a sensor's pause between pokes; longer than `0s` | 60 seconds |
/// | `timeout = "1h"` | how long a sensor pokes, from its first poke, before it fails (not retried); longer than `0s` | 7 days |
/// | `mode = "reschedule"` | `"poke"`: one try sleeps between pokes, keeping its slot; `"reschedule"`: between pokes the instance is `up_for_reschedule` and holds no slot | `"poke"` |
/// | `soft_fail` | a flag: a sensor that times out is skipped instead of failed | fails |
/// | `exponential_backoff` | a flag: a sensor's pause doubles after each poke | a fixed pause |
/// | `multiple_outputs` | a flag: the task returns a struct deriving `MultipleOutputs`, whose fields downstream tasks take one by one (`split.train`; see `derive(MultipleOutputs)`) | one output |
/// | `setup` | a flag: the task sets a resource up for the tasks after it (Airflow's `@setup`); the teardowns directly after it run only if it (or another of their setups) succeeded | ordinary work |
/// | `teardown` | a flag: the task releases what its direct upstream setup tasks made (Airflow's `@teardown`): it runs once every upstream task is done if one of its setups succeeded, even when the work between failed; its trigger rule is `all_done_setup_success` and cannot be set; its state does not decide the run's | ordinary work |
/// | `on_failure_fail_dagrun = true` | with `teardown`: the teardown's failure fails the run | `false` |
/// | `pool = "gpu"` | the pool whose slots a try takes; written like a task id, and defined before a run (`pools set gpu 4`) | the DAG's `default_args`, else `default_pool` |
/// | `pool_slots = 2` | how many slots of the pool a try takes; at least 1 (alone, slots of `default_pool`) | 1 |
/// | `priority_weight = 10` | which waiting task starts first when slots are short (higher first; may be negative: `-5`) | the DAG's `default_args`, else 1 |
/// | `email = ["ops@example.com"]` | who is mailed when the task fails or a try is retried (needs flow-runtime's `email` feature; SMTP settings in `flow_runtime::notify`); `[]` mails no one | the DAG's `default_args`, else no one |
/// | `email_on_failure = false` | whether `email` is mailed when the task fails for good | the DAG's `default_args`, else `true` |
/// | `email_on_retry = false` | whether `email` is mailed when a try fails and another follows | the DAG's `default_args`, else `true` |
/// | `depends_on_past = true` | an instance starts only once the same instance of the run before (by logical date) succeeded or was skipped; it waits until then | the DAG's `default_args`, else `false` |
/// | `wait_for_downstream = true` | also waits for the run before's instances of the task's direct downstream tasks; implies `depends_on_past` | the DAG's `default_args`, else `false` |
/// | `on_success = notify` | a function `fn(&CallbackEvent)` (`flow_runtime::callbacks`) run when a try succeeds; a path, not a string | none |
/// | `on_failure = notify` | the same, run when the task fails for good | none |
/// | `on_retry = notify` | the same, run when a try fails and another follows | none |
/// | `outlets = [ORDERS]` | the assets (`flow_runtime::assets::Asset`, typically `const`s) each successful try updates; DAGs scheduled on them run after | none |
/// | `retry_policy = api_policy` | a function `fn() -> RetryPolicy` (`flow_runtime::task::retry`): rules on a failed try's error decide whether it is retried, after how long, or failed at once | none |
/// | `crate = "::flow_runtime"` | the path of the flow runtime, for crates that re-export it | `::flow_runtime` |
///
/// Values are literals, checked at compile time; callbacks are paths of functions.
/// `branch`, `short_circuit`, `shell`, `sensor`, `soft_fail` and `exponential_backoff` are
/// bare flags (`#[task(branch)]`, not `branch = true`); a task is at most one of `branch`,
/// `short_circuit`, `shell` and `sensor`, and the sensor options need `sensor`. A task used twice in one DAG gets
/// Airflow's suffixes: `load`, `load__1`, `load__2`.
///
/// [humantime]: https://docs.rs/humantime
///
/// # Shell tasks, pools and callbacks
///
/// A `#[task(shell)]` (Airflow's `@task.bash`) is a sync function that builds a
/// `ShellCommand`; the runtime runs it without blocking, logs its output and stores the
/// last line of stdout as the task's `String` output. Pass values as environment
/// variables, never spliced into the script. It stands for
/// `TaskSpec::from_shell("name", |ctx, inputs| Ok(name(inputs.get(0)?, ..)))`.
///
/// ```
/// use flow_runtime::callbacks::CallbackEvent;
/// use flow_runtime::prelude::*;
/// use flow_runtime::shell::ShellCommand;
///
/// fn page_on_call(event: &CallbackEvent) {
///     eprintln!("{:?} failed: {:?}", event.task_id, event.error);
/// }
///
/// #[task(shell)]
/// fn count_words(text: String) -> ShellCommand {
///     ShellCommand::bash(r#"echo "$TEXT" | wc -w"#).env("TEXT", text)
/// }
///
/// #[task(pool = "gpu", pool_slots = 2, priority_weight = 10, on_failure = page_on_call)]
/// fn train(words: String) -> u32 {
///     words.trim().parse().unwrap_or(0)
/// }
///
/// #[dag(max_active_tasks = 4)]
/// fn words() {
///     train(count_words("hello shell world"));
/// }
///
/// let dag = words().unwrap();
/// let train = dag.task("train").unwrap();
/// assert_eq!((train.pool(), train.pool_slots(), train.priority_weight()), ("gpu", 2, 10));
/// assert_eq!(train.spec().callbacks().on_failure.len(), 1);
/// assert_eq!(count_words::spec().output().type_name(), "alloc::string::String");
/// ```
///
/// The equivalent builder code: `TaskSpec::new::<u32>("train", ..).pool("gpu", 2)
/// .priority_weight(10).on_failure(page_on_call)`.
///
/// # Sensors
///
/// A `#[task(sensor)]` (Airflow's sensors, `@task.sensor`) answers one poke: sync or
/// async, taking `&TaskContext` and upstream inputs like any task, it returns
/// `Poke::Ready(value)` when its condition holds and `Poke::NotYet` to be poked again.
/// Downstream tasks receive the `value`. It stands for
/// `TaskSpec::sensor("name", options, |ctx, inputs| Ok(name(inputs.get(0)?, ..)))`
/// (`TaskSpec::async_sensor` for an `async fn`), `options` being
/// `SensorOptions::default().with_poke_interval(..).with_mode(SensorMode::Reschedule)..`.
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use flow_runtime::prelude::*;
///
/// static VOTES: AtomicU32 = AtomicU32::new(0);
///
/// #[task(sensor, poke_interval = "10ms", timeout = "1h", mode = "reschedule")]
/// fn quorum(needed: u32) -> Poke<u32> {
///     let votes = VOTES.fetch_add(1, Ordering::SeqCst) + 1; // a vote arrives per poke
///     if votes >= needed { Poke::Ready(votes) } else { Poke::NotYet }
/// }
///
/// #[task]
/// fn announce(votes: u32) -> String {
///     format!("{votes} votes")
/// }
///
/// #[dag]
/// fn election() {
///     announce(quorum(3));
/// }
///
/// let run = election().unwrap().test().unwrap();
/// assert_eq!(run.output::<String>("announce").unwrap(), "3 votes");
/// assert_eq!(run.task("quorum").unwrap().tries, 1); // three pokes, one try
/// ```
///
/// # Branching
///
/// A `#[task(branch)]` returns a `flow_runtime::Branch` (or a `Result` of one): the ids of the direct downstream tasks to follow. The others
/// are skipped, and the skip travels on through their trigger rules: a task after both
/// paths needs a rule such as `none_failed_min_one_success` to run. A
/// `#[task(short_circuit)]` returns `bool` instead: `false` skips everything downstream.
///
/// ```
/// use flow_runtime::branch::TaskKind;
/// use flow_runtime::prelude::*;
/// use flow_runtime::TriggerRule;
///
/// #[derive(Serialize, Deserialize)]
/// struct Metrics {
///     accuracy: f64,
/// }
///
/// #[task]
/// fn evaluate() -> Metrics {
///     Metrics { accuracy: 0.93 }
/// }
///
/// #[task(branch)]
/// fn choose(m: Metrics) -> Branch {
///     if m.accuracy > 0.9 { Branch::to("deploy_production") } else { Branch::to("deploy_staging") }
/// }
///
/// #[task(execution_timeout = "10m")]
/// fn deploy_production() {}
///
/// #[task(execution_timeout = "10m")]
/// fn deploy_staging() {}
///
/// #[task(trigger_rule = "none_failed_min_one_success")]
/// fn notify() {}
///
/// #[dag(default_args(retries = 2, retry_delay = "30s", retry_exponential_backoff = true,
///                    max_retry_delay = "10m"))]
/// fn deploy() {
///     choose(evaluate()) >> [deploy_production(), deploy_staging()] >> notify();
/// }
///
/// let dag = deploy().unwrap();
/// assert_eq!(dag.task("choose").unwrap().spec().kind(), TaskKind::Branch);
/// assert_eq!(dag.task("notify").unwrap().trigger_rule(), TriggerRule::NoneFailedMinOneSuccess);
/// assert_eq!(
///     dag.task("deploy_staging").unwrap().execution_timeout(),
///     Some(std::time::Duration::from_secs(600))
/// );
/// ```
///
/// # Example
///
/// ```
/// use flow_runtime::prelude::*;
///
/// #[derive(Serialize, Deserialize)]
/// struct Rows {
///     source: String,
///     count: u64,
/// }
///
/// /// Counts the rows of one source.
/// #[task(retries = 2, retry_delay = "30s")]
/// fn count(ctx: &TaskContext, source: String) -> anyhow::Result<Rows> {
///     anyhow::ensure!(!source.is_empty(), "no source (try {})", ctx.try_number());
///     Ok(Rows { count: source.len() as u64, source })
/// }
///
/// #[task]
/// async fn total(rows: Rows) -> u64 {
///     rows.count
/// }
///
/// // A task is still its function:
/// let ctx = TaskContext::for_test("example", "count");
/// assert_eq!(count(&ctx, "orders".into()).unwrap().count, 6);
/// assert!(count(&ctx, String::new()).is_err());
/// assert_eq!(block_on(total(Rows { source: "x".into(), count: 2 })), 2);
///
/// // Its struct describes it and adds it to DAGs:
/// let spec = count::spec();
/// assert_eq!(spec.name().as_str(), "count");
/// assert_eq!(spec.params()[0].name(), "source");
/// assert_eq!(spec.options().retries, Some(2));
/// assert_eq!(spec.documentation(), Some("Counts the rows of one source."));
///
/// let mut dag = DagBuilder::new("by_hand");
/// let rows = count::node(&mut dag, "orders");
/// total::node(&mut dag, rows);
/// let run = dag.build().unwrap().test().unwrap();
/// assert_eq!(run.output::<u64>("total").unwrap(), 6);
/// ```
///
/// # Equivalent code
///
/// This is what `#[task(retries = 2, retry_delay = "30s")]` adds for `count` above,
/// written by hand with the public API (the generated code also checks, at your types,
/// that they can travel between tasks, and for `branch` and `short_circuit` that the
/// output is a `Branch` or a `bool`). The other options are `TaskSpec` setters too:
/// `.trigger_rule(TriggerRule::AllDone)`, `.retry_exponential_backoff(true)`,
/// `.max_retry_delay(..)`, `.execution_timeout(..)`, `.branch()`, `.short_circuit()`.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// use flow_runtime::dag::IntoInput;
/// use flow_runtime::prelude::*;
/// use flow_runtime::task::encode_output;
/// use flow_runtime::TaskFn;
///
/// # #[derive(Serialize, Deserialize)]
/// # struct Rows { source: String, count: u64 }
/// fn count(ctx: &TaskContext, source: String) -> anyhow::Result<Rows> {
///     // ...
/// #   let _ = ctx;
/// #   Ok(Rows { count: source.len() as u64, source })
/// }
///
/// #[allow(non_camel_case_types)]
/// struct count {}
///
/// impl count {
///     fn node(dag: &mut DagBuilder, source: impl IntoInput<String>) -> Node<Rows> {
///         let mut task = dag.add_task(Self::spec());
///         task.input::<String>(source);
///         task.finish()
///     }
///
///     fn spec() -> TaskSpec {
///         let function = TaskFn::Sync(Arc::new(|ctx: &TaskContext, inputs: Inputs| {
///             let source = inputs.get::<String>(0)?;
///             let rows = count(ctx, source).map_err(TaskError::from_error)?;
///             encode_output::<Rows>(rows)
///         }));
///         TaskSpec::new::<Rows>("count", function)
///             .param::<String>("source")
///             .retries(2)
///             .retry_delay(Duration::from_secs(30))
///             .doc("Counts the rows of one source.")
///     }
/// }
///
/// let mut dag = DagBuilder::new("by_hand");
/// count::node(&mut dag, "orders");
/// # assert_eq!(dag.build().unwrap().test().unwrap().output::<Rows>("count").unwrap().count, 6);
/// ```
///
/// # Errors
///
/// Every mistake is a compile error at the offending tokens, with what to write instead;
/// all mistakes of one function are reported together. The function is kept as written,
/// so the rest of the crate still compiles against it.
///
/// - An unknown option (listing the valid ones, suggesting the closest), an option given
///   twice, a value of the wrong kind (`retries = "2"`, `retry_exponential_backoff =
///   "yes"`), a `retry_delay`, `max_retry_delay` or `execution_timeout` that is not a
///   duration, `execution_timeout = "0s"`, an unknown trigger rule (listing Airflow's,
///   suggesting the closest), a trigger rule that is not a string
///   (`TriggerRule::AllDone`: write `"all_done"`), `branch = true` (a bare flag), `branch`
///   together with `short_circuit`, `ignore_downstream_trigger_rules` without
///   `short_circuit`, an invalid `task_id` (or a function name that is not a valid id):
///
/// ```compile_fail
/// # use flow_runtime::prelude::*;
/// #[task(retires = 2)] // unknown option `retires` for `#[task]`: did you mean `retries`?
/// fn load() {}
/// ```
///
/// ```compile_fail
/// # use flow_runtime::prelude::*;
/// #[task(trigger_rule = "all_don")] // unknown trigger rule `all_don`: did you mean `all_done`? ..
/// fn notify() {}
/// ```
///
/// ```compile_fail
/// # use flow_runtime::prelude::*;
/// #[task(execution_timeout = "0s")] // execution_timeout must be longer than 0s: ..
/// fn train() {}
/// ```
///
/// ```compile_fail
/// # use flow_runtime::prelude::*;
/// #[task(retry_delay = "5 minutes please")] // invalid retry_delay `5 minutes please`
/// fn load() {}
/// ```
///
/// - A function a task cannot be: one taking `self`, generic (types, lifetimes, `where`),
///   `const`, `unsafe`, `extern`, variadic; a parameter that is a pattern rather than a
///   name, a reference (`&str`: take `String`), `impl Trait`, `&mut TaskContext`, a second
///   `&TaskContext`, `TaskContext` by value; a return type `impl Trait`; an item that is
///   not a function:
///
/// ```compile_fail
/// # use flow_runtime::prelude::*;
/// #[task] // a task parameter must be an owned value (..): take `String` instead of a reference
/// fn greet(name: &str) -> String {
///     format!("hello {name}")
/// }
/// ```
///
/// - A sensor option without `sensor` (`poke_interval`, `timeout`, `mode`, `soft_fail`,
///   `exponential_backoff`), an unknown `mode` (listing `poke` and `reschedule`), a
///   sensor that does not return `Poke<T>` (reported at the return type), `sensor`
///   together with `branch`, `short_circuit` or `shell`:
///
/// ```compile_fail
/// # use flow_runtime::prelude::*;
/// #[task(sensor, mode = "sometimes")] // unknown sensor mode `sometimes`; the modes are: `poke`, `reschedule` ..
/// fn ready() -> Poke<()> {
///     Poke::NotYet
/// }
/// ```
///
/// ```compile_fail
/// # use flow_runtime::prelude::*;
/// #[task(sensor)] // a `#[task(sensor)]` returns `Poke<T>` (..), not `bool`
/// fn ready() -> bool {
///     true
/// }
/// ```
///
/// - A `branch` task that does not return a `Branch`, or a `short_circuit` task that does
///   not return `bool`, reported at the return type:
///
/// ```compile_fail,E0277
/// # use flow_runtime::prelude::*;
/// #[task(branch)]
/// fn choose(accuracy: f64) -> String { // a `#[task(branch)]` returns `Branch`, not `String`
///     "deploy_production".into()
/// }
/// ```
///
/// - A parameter or output type that cannot travel between tasks, reported at the type
///   (`Model` cannot travel between tasks as an XCom), and an error type that does not
///   convert into `anyhow::Error` (`Result<T, String>`), reported at the error type:
///
/// ```compile_fail,E0277
/// # use flow_runtime::prelude::*;
/// struct Model; // no Serialize, Deserialize
///
/// #[task]
/// fn train() -> anyhow::Result<Model> {
///     Ok(Model)
/// }
/// ```
#[proc_macro_attribute]
pub fn task(args: TokenStream, item: TokenStream) -> TokenStream {
    task::expand(args.into(), item.into()).into()
}

/// Makes a function a DAG: its body wires `#[task]` functions together, and passing one
/// task's output to another task is the edge between them.
///
/// The function, which takes no parameters and returns nothing, becomes
/// `fn name() -> Result<Dag, DagError>`: it builds the DAG from the options and the
/// body, and the DAG registers itself with the binary (the CLI's `dags list`, the
/// scheduler). The DAG is built once, when the binary starts; the tasks run later, each
/// run, in the scheduler.
///
/// # Options
///
/// | Option | Value | Default |
/// |---|---|---|
/// | `id = "ml_pipeline"` | the DAG's id: letters, digits, `_`, `-`, `.` | the function's name |
/// | `description = ".."` | shown in listings and the UI | the first paragraph of the doc comment |
/// | `schedule = "0 2 * * *"` | a cron expression: 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first, read as Airflow reads them; or a preset: `@once`, `@hourly`, `@daily`, `@midnight`, `@weekly`, `@monthly`, `@quarterly`, `@yearly`, `@annually`; or a list of assets, `[ORDERS, ..]`: a run once each was updated since the last one; or `None` | `None`: manual runs only |
/// | `timezone = "Europe/Amsterdam"` | the IANA time zone the schedule is read in, DST included | `UTC` |
/// | `start_date = "2025-01-01"` | the first logical date: a day (midnight in the DAG's time zone) or an RFC 3339 time (`2025-01-01T02:00:00Z`) | none |
/// | `end_date = "2025-12-31"` | the last logical date that gets a scheduled run, written like `start_date`; not before it | none |
/// | `catchup = false` | whether each missed interval since `start_date` gets a run | `false` |
/// | `max_active_runs = 1` | how many runs may be active at once; at least 1 | 16 |
/// | `max_active_tasks = 8` | how many tasks of one run may run at once; at least 1 (Airflow's `concurrency`) | 16 |
/// | `dagrun_timeout = "2h"` | how long a run may take before it fails: `30m`, `2h`, `1h 30m` | no limit |
/// | `tags = ["ml", "daily"]` | tags, for filtering | none |
/// | `params(threshold: f64 = 0.8, epochs: u32)` | typed values a run's JSON conf may set (see below) | none |
/// | `default_args(owner = "..", retries = 2, retry_delay = "5m")` | options of every task that does not set them: `retries`, `retry_delay`, `owner`, `trigger_rule`, `retry_exponential_backoff`, `max_retry_delay`, `execution_timeout`, `pool`, `priority_weight`, `email`, `email_on_failure`, `email_on_retry`, `depends_on_past`, `wait_for_downstream`, written as in `#[task]` (not `pool_slots` or callbacks, which are each task's own) | none |
/// | `on_success = notify` | a function `fn(&CallbackEvent)` run when a run succeeds; a path, not a string | none |
/// | `on_failure = notify` | the same, run when a run fails | none |
/// | `crate = "::flow_runtime"` | the path of the flow runtime, for crates that re-export it | `::flow_runtime` |
///
/// Values are literals, checked at compile time: a schedule that does not parse, an
/// unknown time zone, a date that does not exist or an `end_date` before the
/// `start_date`, a bad id never reach a running binary.
///
/// # Params
///
/// `params(..)` declares Airflow's params, typed: each entry is `name: Type`, with an
/// optional `= default` (an expression of the param's type, evaluated when the DAG is
/// built; a string literal also fits a `String`) and optional `///` lines that describe
/// it. The type is any `Serialize + DeserializeOwned` type: numbers, `String`, `bool`,
/// `Vec<T>`, `Option<T>`, your own `#[derive(Serialize, Deserialize)]` structs. A run's
/// JSON conf (`dags trigger DAG --conf '{"epochs": 10}'`) is checked against them: a key
/// that is not a param, a value that does not deserialize into its param's type, or a
/// param without a default that conf leaves out is an error that lists the params
/// (`Option<T>` params without a default are `null` when left out).
///
/// ```
/// use flow_runtime::prelude::*;
/// # #[task] fn train() {}
///
/// #[dag(params(
///     /// Minimum accuracy to deploy.
///     threshold: f64 = 0.8,
///     models_dir: String = "models",
///     epochs: u32,
/// ))]
/// fn training() {
///     train();
/// }
///
/// let dag = training().unwrap();
/// let values = dag.params().resolve(Some(&serde_json::json!({"epochs": 10}))).unwrap();
/// assert_eq!(values["threshold"], 0.8);
/// assert_eq!(values["models_dir"], "models");
/// let missing = dag.params().resolve(None).unwrap_err();
/// assert!(missing.to_string().starts_with("param `epochs` (u32) has no default"));
/// ```
///
/// # The body
///
/// The body runs once, when the DAG is built. In it, a **task call** is a call whose
/// function is a path (`load(..)`, `steps::prep::clean(..)`) and that stands
///
/// 1. as a statement of its own: `notify();`
/// 2. as the whole initializer of a `let`: `let rows = load("orders");`
/// 3. as an operand of `>>` or `<<`, or an element of a `[..]` operand: `a >> [b(), c()];`
/// 4. as an argument of another task call: `report(total(rows));`
///
/// and the statements of `if`/`else`, `for`, `while`, `loop` and `{ .. }` blocks follow
/// the same rules, so loops over a literal list make one task per element. (Calls inside
/// macro invocations, closures and `match` arms are left as they are.) A task call
/// adds the task to the DAG and evaluates to its output's `Node`, which can be bound,
/// passed to several tasks, and ordered.
///
/// Any other expression is left as it is: an argument that is not a task call is a
/// literal (`5`, `"orders"` for a `String`, `vec![1, 2]`, a variable, a struct literal),
/// serialized into the DAG's definition, or a `Node` bound earlier. To pass the value of
/// an ordinary function call, wrap it in braces: `load({ default_source() })`; a call of a
/// path with a capitalised segment in a task position (`String::from(..)`, `Some(..)`) is
/// an error that says so, and any other function that is not a `#[task]` is reported by
/// the compiler as "expected type, found function".
///
/// **Ordering** without data: a statement `a >> b >> c` (or `a << b`) makes each operand
/// run before the next (`<<`: after). An operand is a task call, a variable bound to one,
/// or a list `[b, c]` of them; each operand is evaluated once, in source order. `>>`
/// anywhere else than as a whole statement is ordinary Rust.
///
/// A body cannot `return` (the function ends by building the DAG).
///
/// **Dynamic task mapping** (Airflow's `.expand()`): a mapped call runs the task once per
/// element of a list known only at run time, and stands wherever a task call can.
///
/// - `count.expand(path = files)`: one instance per element of `files`, the output of a
///   task returning `Vec<String>`, a mapped task returning `String`, or a literal list
///   (`vec!["a", "b"]`, `[1, 2]`);
/// - `scale.partial(factor = 10).expand(value = values)`: `partial` gives the arguments
///   every instance shares;
/// - `add.expand(left = xs, right = ys)`: several lists, every combination (the last
///   varies fastest, as in Airflow); `add.expand_zip(left = xs, right = ys)`: element by
///   element, as long as the shortest list;
/// - the result is a `MappedNode<T>`: passed to a parameter of type `Vec<T>` it is the
///   instances' results in map order; `.expand(x = mapped)` maps over them again.
///
/// Each instance is its own task instance with a map index (`ctx.map_index()`), its own
/// tries and logs; an empty list skips the task. A parameter name that does not exist, or
/// a list whose elements are not the parameter's type, is a compile error at the argument.
///
/// ```
/// use flow_runtime::prelude::*;
///
/// #[task]
/// fn partitions() -> Vec<u32> {
///     vec![1, 2, 3]
/// }
///
/// #[task]
/// fn train(learning_rate: f64, partition: u32) -> f64 {
///     learning_rate * f64::from(partition)
/// }
///
/// #[task]
/// fn best(scores: Vec<f64>) -> f64 {
///     scores.into_iter().fold(f64::MIN, f64::max)
/// }
///
/// #[dag]
/// fn sweep() {
///     let scores = train.partial(learning_rate = 0.5).expand(partition = partitions());
///     best(scores);
/// }
///
/// let run = sweep().unwrap().test().unwrap();
/// assert_eq!(run.output::<Vec<f64>>("train").unwrap(), [0.5, 1.0, 1.5]);
/// assert_eq!(run.output::<f64>("best").unwrap(), 1.5);
/// ```
///
/// # Example
///
/// ```
/// use flow_runtime::prelude::*;
///
/// #[task]
/// fn extract(source: String) -> Vec<u64> {
///     vec![source.len() as u64, 2, 3]
/// }
///
/// #[task(retries = 3)]
/// fn total(values: Vec<u64>) -> u64 {
///     values.iter().sum()
/// }
///
/// #[task]
/// fn notify() {}
///
/// /// Sums every source, every night.
/// #[dag(schedule = "0 2 * * *", timezone = "Europe/Amsterdam", start_date = "2025-01-01",
///       max_active_runs = 1, dagrun_timeout = "2h", tags = ["example"],
///       params(limit: u64 = 1000),
///       default_args(owner = "data", retries = 1, retry_delay = "5m"))]
/// fn nightly_totals() {
///     for source in ["orders", "users"] {
///         let values = extract(source);   // a literal argument
///         let sum = total(values);        // a data edge: extract -> total
///         sum >> notify();                // an ordering edge
///     }
/// }
///
/// let dag = nightly_totals().unwrap();
/// assert_eq!(dag.id().as_str(), "nightly_totals");
/// assert_eq!(dag.description(), Some("Sums every source, every night."));
/// let ids: Vec<&str> = dag.tasks().iter().map(|t| t.id().as_str()).collect();
/// assert_eq!(ids, ["extract", "total", "notify", "extract__1", "total__1", "notify__1"]);
/// assert_eq!(dag.task("total").unwrap().retries(), 3); // the task's own option wins
/// assert_eq!(dag.task("notify").unwrap().owner(), "data");
/// assert_eq!(dag.timezone().name(), "Europe/Amsterdam");
/// assert_eq!(dag.start_date().unwrap().to_rfc3339(), "2024-12-31T23:00:00+00:00"); // midnight there
/// assert_eq!(dag.max_active_runs(), 1);
/// assert_eq!(dag.dagrun_timeout(), Some(std::time::Duration::from_secs(2 * 3600)));
/// assert_eq!(dag.params().describe(), ["limit: u64 = 1000"]);
///
/// let run = dag.test().unwrap();
/// assert_eq!(run.output::<u64>("total__1").unwrap(), 5 + 2 + 3);
/// ```
///
/// # Equivalent code
///
/// This is what `#[dag]` makes of `nightly_totals` above, written by hand (it is also how
/// DAGs are generated from configuration at run time):
///
/// ```
/// # use flow_runtime::prelude::*;
/// # #[task] fn extract(source: String) -> Vec<u64> { vec![source.len() as u64, 2, 3] }
/// # #[task(retries = 3)] fn total(values: Vec<u64>) -> u64 { values.iter().sum() }
/// # #[task] fn notify() {}
/// use std::time::Duration;
///
/// use flow_runtime::DagError;
/// use flow_runtime::params::DagParam;
///
/// /// Sums every source, every night.
/// fn nightly_totals() -> Result<Dag, DagError> {
///     let mut dag = DagBuilder::new("nightly_totals")
///         .description("Sums every source, every night.")
///         .schedule("0 2 * * *")
///         .timezone("Europe/Amsterdam")
///         .start_date("2025-01-01")
///         .max_active_runs(1)
///         .dagrun_timeout(Duration::from_secs(7200))
///         .tags(["example"])
///         .param(DagParam::new::<u64>("limit").default(1000))
///         .default_args(
///             TaskOptions::default()
///                 .with_retries(1)
///                 .with_retry_delay(Duration::from_secs(300))
///                 .with_owner("data"),
///         );
///     for source in ["orders", "users"] {
///         let values = extract::node(&mut dag, source);
///         let sum = total::node(&mut dag, values);
///         let done = notify::node(&mut dag);
///         dag.set_downstream(&[sum.any()], &[done.any()]);
///     }
///     dag.build()
/// }
///
/// flow_runtime::register_dag!("nightly_totals", nightly_totals);
/// # assert_eq!(nightly_totals().unwrap().tasks().len(), 6);
/// ```
///
/// # Errors
///
/// Every mistake is a compile error at the offending tokens, with what to write instead;
/// all mistakes of one DAG are reported together.
///
/// - An unknown option (listing the valid ones, suggesting the closest; also inside
///   `default_args(..)`, where `branch` and `short_circuit` are not defaults but flags of
///   one task, and values are checked as in `#[task]`), an option given twice, a value of
///   the wrong kind, a schedule that does not parse (with the cron parser's reason and an
///   example), an unknown preset, an unknown time zone (with the three closest names), a
///   `start_date` or `end_date` that is not a date, an `end_date` before the `start_date`,
///   `max_active_runs = 0`, a `dagrun_timeout` that is not a duration, an invalid `id`:
///
/// ```compile_fail
/// # use flow_runtime::prelude::*;
/// # #[task] fn step() {}
/// #[dag(schedule = "0 2 * *")] // invalid schedule `0 2 * *`: expected 5 fields (..), found 4
/// fn nightly() {
///     step();
/// }
/// ```
///
/// ```compile_fail
/// # use flow_runtime::prelude::*;
/// # #[task] fn step() {}
/// #[dag(timezone = "Europe/Amsterdm")] // unknown time zone `Europe/Amsterdm`; did you mean `Europe/Amsterdam`, ..
/// fn nightly() {
///     step();
/// }
/// ```
///
/// - In `params(..)`: a param given twice, a param without a type (`threshold = 0.8`:
///   the message suggests `threshold: f64 = 0.8`), a reference type (`&str`: take
///   `String`), anything that is not `name: Type = default`; and, from the compiler at
///   your tokens, a type that cannot be a param and a default of another type than its
///   param's:
///
/// ```compile_fail,E0277
/// # use flow_runtime::prelude::*;
/// # #[task] fn step() {}
/// #[dag(params(threshold: f64 = "high"))] // this default does not fit a param of type `f64`
/// fn nightly() {
///     step();
/// }
/// ```
///
/// - A signature the macro cannot give its own to: parameters, a return type, `async`,
///   generics, `const`, `unsafe`, `extern`; an item that is not a function:
///
/// ```compile_fail
/// # use flow_runtime::prelude::*;
/// # #[task] fn step(limit: u32) {}
/// #[dag] // a `#[dag]` function takes no parameters: (..) pass values to tasks as literal arguments
/// fn nightly(limit: u32) {
///     step(limit);
/// }
/// ```
///
/// - In the body: a literal as an operand of `>>`, `return`, a mapped call without named
///   arguments (`.expand(files)`), with none, with a name given twice, `.partial(..)`
///   without `.expand(..)`, `.expand_kwargs(..)`, a call of a capitalised path in a task
///   position, and a body without any task call.
/// - From the compiler, at a mapped argument: a name that is not a parameter of the task
///   ("no method named `prat`", with the closest name), and a list whose elements are not
///   the parameter's type ("`Node<u32>` cannot be mapped over as `u32` values").
/// - From the compiler, at the argument: an argument whose type does not fit the
///   parameter ("this argument does not fit a task parameter of type `String`": here the
///   output of a task returning `u32`), a wrong number of arguments (counted as written),
///   a call of a function that is not a task ("expected type, found function"), and an
///   operand of `>>` that is not a task node:
///
/// ```compile_fail,E0277
/// # use flow_runtime::prelude::*;
/// #[task]
/// fn count() -> u32 {
///     1
/// }
///
/// #[task]
/// fn greet(name: String) -> String {
///     name
/// }
///
/// #[dag]
/// fn mismatched() {
///     greet(count()); // `Node<u32>` does not fit a parameter of type `String`
/// }
/// ```
#[proc_macro_attribute]
pub fn dag(args: TokenStream, item: TokenStream) -> TokenStream {
    dag::expand(args.into(), item.into()).into()
}

/// Makes a function a task group (Airflow's `@task_group`): its body is written like a
/// `#[dag]` body, and calling it in a `#[dag]` body (or another group's) adds its tasks
/// to the DAG inside the group.
///
/// - Task ids get the group id as a prefix: `prepare.clean`, and `outer.inner.clean` in
///   nested groups (Airflow's `prefix_group_id = True`). A group called twice gets
///   Airflow's suffixes: `prepare`, `prepare__1`.
/// - Its tasks inherit its `default_args(..)`, which override the enclosing group's and the
///   DAG's option by option; a task's own options win over all of them.
/// - Parameters are owned values without lifetimes: the nodes of upstream tasks
///   (`Node<T>`, `MappedNode<T>`) or values passed on to its tasks.
/// - A group function that returns nothing returns the group, a `GroupRef`: `>>` orders it
///   as a whole (`start >> group` puts `start` before every root of the group, the tasks
///   with nothing upstream inside it; `group >> end` every leaf before `end`). One that
///   returns a value (its body's tail: a task call, a variable, a tuple of them) returns
///   that value, so `>>` binds to the returned task, as in Airflow.
/// - `group.expand(rate = list)` / `group.partial(rows = r).expand(rate = list)` /
///   `.expand_zip(..)` in a `#[dag]` body maps the whole group (Airflow's mapped task
///   group): every task runs once per element, instance `i` of each task taking instance
///   `i` of its upstream tasks in the group. A mapped parameter is declared `Node<T>`; the
///   group's `Node<T>` becomes a `MappedNode<T>` of every pass's result.
///
/// # Options
///
/// | Option | Value | Default |
/// |---|---|---|
/// | `group_id = "prepare"` | the group's id: letters, digits, `_`, `-` | the function's name |
/// | `prefix_group_id = false` | whether its tasks' and inner groups' ids are prefixed with the group id | `true` |
/// | `tooltip = ".."` | a description for people | the doc comment |
/// | `default_args(retries = 2, ..)` | options its tasks inherit: those of `#[dag(default_args(..))]` | none |
/// | `crate = "::flow_runtime"` | the path of the flow runtime | `::flow_runtime` |
///
/// ```
/// use flow_runtime::prelude::*;
///
/// #[task]
/// fn extract() -> Vec<i64> { vec![3, -1, 4] }
/// #[task]
/// fn drop_negatives(rows: Vec<i64>) -> Vec<i64> { rows.into_iter().filter(|r| *r >= 0).collect() }
/// #[task]
/// fn check(rows: Vec<i64>) -> usize { rows.len() }
/// #[task]
/// fn total(rows: Vec<i64>) -> i64 { rows.iter().sum() }
/// #[task]
/// fn notify() {}
///
/// /// Cleans the raw rows.
/// #[task_group(default_args(retries = 3))]
/// fn prepare(raw: Node<Vec<i64>>) -> Node<Vec<i64>> {
///     let clean = drop_negatives(raw);
///     check(clean);
///     clean                                        // the group's value
/// }
///
/// #[task_group(group_id = "report")]
/// fn reporting(rows: Node<Vec<i64>>) {             // returns its `GroupRef`
///     total(rows);
/// }
///
/// #[dag]
/// fn cleaned() {
///     let rows = prepare(extract());
///     reporting(rows) >> notify();                 // every leaf of `report` before `notify`
/// }
///
/// let dag = cleaned().unwrap();
/// let ids: Vec<&str> = dag.tasks().iter().map(|t| t.id().as_str()).collect();
/// assert_eq!(ids, ["extract", "prepare.drop_negatives", "prepare.check", "report.total", "notify"]);
/// assert_eq!(dag.task("prepare.check").unwrap().retries(), 3);
/// assert_eq!(dag.groups()[0].tooltip(), Some("Cleans the raw rows."));
/// let run = dag.test().unwrap();
/// assert_eq!(run.output::<i64>("report.total").unwrap(), 7);
/// ```
///
/// The equivalent builder code of `prepare` is a function of the builder:
///
/// ```
/// # use flow_runtime::prelude::*;
/// # #[task] fn drop_negatives(rows: Vec<i64>) -> Vec<i64> { rows }
/// # #[task] fn check(rows: Vec<i64>) -> usize { rows.len() }
/// fn prepare(dag: &mut DagBuilder, raw: Node<Vec<i64>>) -> Node<Vec<i64>> {
///     let group = TaskGroup::new("prepare")
///         .add_suffix_on_collision(true)
///         .tooltip("Cleans the raw rows.")
///         .default_args(TaskOptions::default().with_retries(3));
///     dag.group(group, move |dag| {
///         let clean = drop_negatives::node(dag, raw);
///         check::node(dag, clean);
///         clean
///     })
///     .output
/// }
/// ```
///
/// `prepare::node(&mut builder, raw)` is that function, and `prepare(&mut builder, raw)`
/// too: the macro adds the builder as the first parameter.
///
/// # Errors
///
/// An unknown option, a group id that cannot prefix task ids, an `async`, generic or
/// borrowing signature, and a body without task calls are compile errors; a wrong
/// argument type in a call of the group is the compiler's, at the argument.
#[proc_macro_attribute]
pub fn task_group(args: TokenStream, item: TokenStream) -> TokenStream {
    group::expand(args.into(), item.into()).into()
}

/// Describes a struct whose fields downstream tasks take one by one (Airflow's
/// `multiple_outputs=True`): with `#[task(multiple_outputs)]` on a task returning it, the
/// task's node (a `MultiNode`) has a `Node` per field, named as the field.
///
/// ```
/// use flow_runtime::prelude::*;
///
/// #[derive(Serialize, Deserialize, MultipleOutputs)]
/// struct Split {
///     train: Vec<f64>,
///     test: Vec<f64>,
///     seed: u64,
/// }
///
/// #[task(multiple_outputs)]
/// fn split_data() -> Split {
///     Split { train: vec![1.0, 2.0, 3.0], test: vec![4.0], seed: 7 }
/// }
///
/// #[task]
/// fn fit(rows: Vec<f64>, seed: u64) -> f64 { rows.iter().sum::<f64>() + seed as f64 }
///
/// #[task]
/// fn describe(split: Split) -> usize { split.train.len() + split.test.len() }
///
/// #[dag]
/// fn training() {
///     let split = split_data();
///     fit(split.train, split.seed);  // `Node<Vec<f64>>`, `Node<u64>`: edges from split_data
///     describe(split);               // the whole value still fits a `Split` parameter
/// }
///
/// let run = training().unwrap().test().unwrap();
/// assert_eq!(run.output::<f64>("fit").unwrap(), 13.0);
/// assert_eq!(run.output::<usize>("describe").unwrap(), 4);
/// ```
///
/// The derive generates `struct SplitOutputs { train: Node<Vec<f64>>, test: .., seed: .. }`
/// (the struct's name and `Outputs`, with the fields' visibility and docs) and
/// `impl MultipleOutputs for Split`. A field name that does not exist, or a field of the
/// wrong type for the parameter it is passed to, is a compile error at that field:
///
/// ```compile_fail
/// # use flow_runtime::prelude::*;
/// # #[derive(Serialize, Deserialize, MultipleOutputs)]
/// # struct Split { train: Vec<f64>, seed: u64 }
/// # #[task(multiple_outputs)]
/// # fn split_data() -> Split { Split { train: vec![], seed: 1 } }
/// # #[task]
/// # fn fit(rows: Vec<f64>) -> f64 { rows.iter().sum() }
/// #[dag]
/// fn training() {
///     fit(split_data().seed);        // a `Node<u64>` for a `Vec<f64>` parameter
/// }
/// ```
///
/// Downstream, a task given a field reads the producer's stored value and takes that
/// field; the value is stored once (Airflow also stores each key as its own XCom; here
/// `xcom_pull(task, "train")` finds nothing). Mapping over a field (`.expand(x =
/// split.train)`) is not supported yet: it is an error when the DAG is built.
///
/// Only for structs with named fields and no generic parameters; `#[multiple_outputs(crate
/// = "..")]` names the runtime's path for crates that re-export it.
#[proc_macro_derive(MultipleOutputs, attributes(multiple_outputs))]
pub fn multiple_outputs(item: TokenStream) -> TokenStream {
    outputs::expand(item.into()).into()
}

//! Errors, one type per layer: building a DAG, running a task, running a DAG.

use crate::ids::{DagId, RunId, TaskId};
use crate::store::StoreError;

/// A DAG definition that cannot be built. [`crate::DagBuilder::build`] reports every problem
/// it found, not only the first.
#[derive(Debug, thiserror::Error)]
pub enum DagError {
    /// Several problems; each is listed on its own line.
    #[error("DAG `{dag}` is invalid:\n{}", .errors.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// The DAG whose definition failed.
        dag: DagId,
        /// Every problem found.
        errors: Vec<DagDefinitionError>,
    },
}

impl DagError {
    /// Every individual problem.
    pub fn errors(&self) -> &[DagDefinitionError] {
        match self {
            DagError::Invalid { errors, .. } => errors,
        }
    }
}

/// One problem in a DAG definition.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DagDefinitionError {
    /// An id that is empty or has characters other than letters, digits, `_`, `-` and `.`.
    #[error("invalid {what} id `{id}`: use letters, digits, `_`, `-` and `.` only")]
    InvalidId {
        /// `DAG` or `task`.
        what: &'static str,
        /// The offending id.
        id: String,
    },
    /// A schedule that is neither a cron expression nor a preset.
    #[error("invalid schedule `{schedule}`: {reason}")]
    InvalidSchedule {
        /// The schedule as written.
        schedule: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A date that does not parse.
    #[error(
        "invalid {field} `{value}`: expected a date like `2025-01-01` or `2025-01-01T02:00:00Z`"
    )]
    InvalidDate {
        /// The option (`start_date`).
        field: &'static str,
        /// The value as written.
        value: String,
    },
    /// A time zone that is not in the IANA database.
    #[error(transparent)]
    Timezone(crate::timetable::TimetableError),
    /// An `end_date` before the `start_date`.
    #[error(
        "end_date `{end_date}` is before start_date `{start_date}`, so no run would ever be scheduled; \
         set an end_date at or after the start_date, or none"
    )]
    EndBeforeStart {
        /// The start date as written.
        start_date: String,
        /// The end date as written.
        end_date: String,
    },
    /// `max_active_runs` of 0, which would never let a run start.
    #[error("max_active_runs must be at least 1 (Airflow's default is 16), found 0")]
    ZeroMaxActiveRuns,
    /// `max_active_tasks = 0`: no task could ever run.
    #[error("max_active_tasks must be at least 1 (Airflow's default is 16), found 0")]
    ZeroMaxActiveTasks,
    /// A task that takes no pool slot.
    #[error("task `{0}` takes 0 pool slots; a task takes at least 1 (the default)")]
    ZeroPoolSlots(String),
    /// A task's `email` with an address that does not parse.
    #[error("task `{task}` has an invalid email address `{address}`: {reason}")]
    InvalidEmail {
        /// The task.
        task: String,
        /// The address as written.
        address: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A task's `email` in a build of flow-runtime that cannot send email.
    #[error(
        "task `{0}` sets `email`, but flow-runtime was built without its `email` feature; \
         enable it (`flow-runtime = {{ version = \"0.1\", features = [\"email\"] }}`) or remove `email`"
    )]
    EmailFeatureOff(String),
    /// Two params with the same name.
    #[error("param `{0}` is declared twice; give each param its own name")]
    DuplicateParam(String),
    /// A param whose default cannot be stored as JSON or read back as its type.
    #[error("the default of param `{param}` cannot be used: {reason}")]
    InvalidParamDefault {
        /// The param.
        param: String,
        /// Why.
        reason: String,
    },
    /// A duration that does not parse.
    #[error(
        "invalid {field} `{value}` on task `{task}`: {reason} (write durations like `30s`, `5m`, `1h 30m`)"
    )]
    InvalidDuration {
        /// The task the option belongs to.
        task: String,
        /// The option (`retry_delay`).
        field: &'static str,
        /// The value as written.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// An explicit `task_id` used by two tasks.
    #[error("task id `{0}` is used twice; give one of the tasks another `task_id`")]
    DuplicateTaskId(String),
    /// A literal argument that could not be serialized into the DAG definition.
    #[error("the literal for parameter `{param}` of task `{task}` cannot be serialized: {reason}")]
    LiteralEncode {
        /// The consuming task.
        task: String,
        /// The parameter.
        param: String,
        /// The codec's reason.
        reason: String,
    },
    /// A task parameter that received no argument.
    #[error("parameter `{param}` of task `{task}` has no argument")]
    MissingArgument {
        /// The task.
        task: String,
        /// The parameter.
        param: String,
    },
    /// A node handle that belongs to another DAG builder.
    #[error("a task node passed to `{task}` belongs to another DAG (index {index} out of range)")]
    ForeignNode {
        /// The task that received the node.
        task: String,
        /// The out-of-range index.
        index: usize,
    },
    /// Dependencies that form one or more cycles; each cycle is listed by its task ids.
    #[error("dependency cycle: {}", render_cycles(.0))]
    Cycle(Vec<Vec<TaskId>>),
    /// A branch task that does not return `Branch`, or a short-circuit task that does not
    /// return `bool`.
    #[error("task `{task}` is a {kind} task, so it must return `{expected}`, not `{found}`")]
    KindOutput {
        /// The task.
        task: String,
        /// `branch` or `short-circuit`.
        kind: &'static str,
        /// The type it must return.
        expected: &'static str,
        /// The type it returns.
        found: &'static str,
    },
    /// The DAG has no task at all.
    #[error("the DAG has no tasks; call at least one #[task] function in its body")]
    Empty,
    /// A branch or short-circuit task given mapped arguments.
    #[error(
        "task `{task}` is a {kind} task and cannot be mapped: a branch decides for the whole run; \
         map the tasks it chooses between instead"
    )]
    MappedKind {
        /// The task.
        task: String,
        /// `branch` or `short-circuit`.
        kind: &'static str,
    },
    /// A task finished as mapped, or zipped, without a mapped argument.
    #[error(
        "task `{task}` is mapped but none of its arguments is: give at least one argument with \
         `.expand(name = list)`"
    )]
    MappedWithoutList {
        /// The task.
        task: String,
    },
}

fn render_cycles(cycles: &[Vec<TaskId>]) -> String {
    cycles
        .iter()
        .map(|cycle| {
            let mut names: Vec<&str> = cycle.iter().map(TaskId::as_str).collect();
            if let Some(first) = names.first().copied() {
                names.push(first);
            }
            names.join(" >> ")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why one try of a task failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TaskError {
    /// The task returned an error.
    #[error("{0}")]
    Failed(String),
    /// The task panicked; the run goes on.
    #[error("task panicked: {0}")]
    Panicked(String),
    /// An input is not available (its producer has not stored it).
    #[error("input `{param}` is missing: {hint}")]
    MissingInput {
        /// The parameter.
        param: String,
        /// How to provide it.
        hint: String,
    },
    /// A stored input no longer decodes into the parameter's type, typically because the
    /// producer's type changed between deploys.
    #[error(
        "input `{param}` from task `{producer}` does not decode as `{expected}` (it was stored as `{stored}`): {reason}; \
         clear and re-run `{producer}` so it stores the new type"
    )]
    InputDecode {
        /// The parameter.
        param: String,
        /// The task that produced the value.
        producer: String,
        /// The type name the producer stored.
        stored: String,
        /// The type the consumer expects.
        expected: &'static str,
        /// The codec's reason.
        reason: String,
    },
    /// The return value could not be serialized.
    #[error("the return value does not serialize: {0}")]
    OutputEncode(String),
    /// An XCom pushed or pulled by key could not be used.
    #[error("{0}")]
    XCom(String),
    /// The try ran longer than the task's `execution_timeout`. An async task is cancelled;
    /// a sync task's thread cannot be stopped, so its result is discarded.
    #[error("the try exceeded its execution_timeout of {}", humantime::format_duration(*.0))]
    TimedOut(std::time::Duration),
    /// A sensor's condition was not met in time: the task fails without retrying.
    #[error("{0}")]
    SensorTimeout(String),
    /// A `soft_fail` sensor's condition was not met in time: the task is skipped.
    #[error("{0}")]
    SoftFail(String),
    /// Not an error: a sensor in `reschedule` mode whose condition is not met yet asks to
    /// be poked again at `at` (Airflow's `AirflowRescheduleException`). The executor puts
    /// the instance `up_for_reschedule`, freeing its slot, and keeps its try number.
    #[error("sensor condition not met; poking again at {}", .at.to_rfc3339())]
    Reschedule {
        /// When the next poke is due.
        at: chrono::DateTime<chrono::Utc>,
    },
    /// The process running this try ended before the try finished.
    #[error("try {0} was interrupted: the process running it ended before it finished")]
    Interrupted(u32),
}

impl TaskError {
    /// Wraps any error a task returns, keeping its chain of causes in the message.
    pub fn from_error(err: impl Into<anyhow::Error>) -> Self {
        TaskError::Failed(format!("{:#}", err.into()))
    }
}

/// A DAG run that could not be carried out (as opposed to one whose tasks failed, which is
/// a finished run in state `failed`).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The store refused a write or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The object store refused an operation on the run's objects.
    #[error(transparent)]
    Objects(#[from] crate::objects::ObjectError),
    /// The runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(String),
    /// The trigger's conf does not fit the DAG's params.
    #[error(transparent)]
    Params(#[from] crate::params::ParamsError),
    /// A run with this id exists already.
    #[error("run `{run_id}` of DAG `{dag_id}` already exists")]
    RunExists {
        /// The DAG.
        dag_id: DagId,
        /// The run.
        run_id: RunId,
    },
    /// No run with this id.
    #[error("DAG `{dag_id}` has no run `{run_id}`")]
    NoSuchRun {
        /// The DAG.
        dag_id: DagId,
        /// The run.
        run_id: RunId,
    },
    /// The run is over; nothing to resume.
    #[error("run `{run_id}` already ended {state}")]
    RunFinished {
        /// The run.
        run_id: RunId,
        /// How it ended.
        state: crate::state::RunState,
    },
    /// The run was started by a build whose DAG had another shape.
    #[error(
        "run `{run_id}` was started by a build in which DAG `{dag_id}` had other tasks, edges or types; \
         this build cannot continue it safely: start a new run"
    )]
    ShapeChanged {
        /// The DAG.
        dag_id: DagId,
        /// The run.
        run_id: RunId,
    },
    /// Another process executes the run: it holds the run's lease.
    #[error(
        "run `{run_id}` of DAG `{dag_id}` is being executed by {owner} (its lease runs until {until})"
    )]
    RunOwned {
        /// The DAG.
        dag_id: DagId,
        /// The run.
        run_id: RunId,
        /// The process holding the lease (`host:pid:nonce`).
        owner: String,
        /// When the lease runs out unless renewed.
        until: chrono::DateTime<chrono::Utc>,
    },
    /// This process stopped holding the run's lease while it executed it (it could not
    /// renew it in time): another process may have taken the run over.
    #[error(
        "the lease on run `{run_id}` of DAG `{dag_id}` was lost; this process stopped executing it"
    )]
    LeaseLost {
        /// The DAG.
        dag_id: DagId,
        /// The run.
        run_id: RunId,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycle_lists_every_cycle_closed() {
        let err = DagDefinitionError::Cycle(vec![vec!["a".into(), "b".into()], vec!["c".into()]]);
        assert_eq!(err.to_string(), "dependency cycle: a >> b >> a; c >> c");
    }

    #[test]
    fn dag_error_lists_all_problems() {
        let err = DagError::Invalid {
            dag: "d".into(),
            errors: vec![
                DagDefinitionError::Empty,
                DagDefinitionError::DuplicateTaskId("x".into()),
            ],
        };
        let text = err.to_string();
        assert!(
            text.contains("no tasks") && text.contains("`x` is used twice"),
            "{text}"
        );
    }

    #[test]
    fn task_errors_keep_the_cause_chain() {
        let err = anyhow::anyhow!("disk full").context("writing parquet");
        assert_eq!(
            TaskError::from_error(err).to_string(),
            "writing parquet: disk full"
        );
    }
}

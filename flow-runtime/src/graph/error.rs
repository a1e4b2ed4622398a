//! Why a DAG definition cannot be built.

use crate::ids::{DagId, TaskId};

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
    /// An asset URI that cannot name an asset (in a schedule or a task's outlets).
    #[error("invalid asset `{uri}` in {place}: {reason}")]
    InvalidAsset {
        /// The URI as written.
        uri: String,
        /// Where it appears: `the schedule`, or a task's outlets.
        place: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A DAG scheduled both by time and on assets, or on an empty list of assets.
    #[error("invalid schedule: {0}")]
    AssetSchedule(&'static str),
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
    Timezone(crate::time::timetable::TimetableError),
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
    /// A task mapped over one field of a multiple-outputs task's output.
    #[error(
        "task `{task}` maps `{param}` over the field `{field}` of a multiple-outputs task, \
         which is not supported yet: return that list from a task of its own and map over it"
    )]
    MappedField {
        /// The mapped task.
        task: String,
        /// Its parameter.
        param: String,
        /// The field.
        field: String,
    },
    /// A task group's handle passed where a task's output is expected.
    #[error(
        "a task group was passed as an argument of `{task}`: a group has no output; pass the \
         node its body returned (`Grouped::output`)"
    )]
    GroupAsInput {
        /// The task that received the group.
        task: String,
    },
    /// The element of a mapped task group's list taken by a task outside the group, or
    /// ordered with `>>`.
    #[error(
        "task `{task}` takes an element of the lists mapped task group `{group}` is expanded \
         over, but is not in that group: only the group's tasks run once per element; pass \
         the list itself, or move the task into the group"
    )]
    GroupArgumentOutside {
        /// The task.
        task: String,
        /// The mapped group.
        group: String,
    },
    /// A task mapped with `.expand(..)` inside a mapped task group, or a mapped group inside
    /// another.
    #[error(
        "{what} is mapped inside mapped task group `{group}`: mapping within a mapped task \
         group is not supported (nor in Airflow); map the group over the combinations instead \
         (`.expand(a = .., b = ..)` crosses its lists)"
    )]
    NestedMapping {
        /// `task `x`` or `task group `x``.
        what: String,
        /// The enclosing mapped group.
        group: String,
    },
    /// A mapped task group without a list, without a task, or with a parameter given no
    /// value.
    #[error("mapped task group `{group}` {problem}")]
    MappedGroup {
        /// The group.
        group: String,
        /// What is wrong.
        problem: String,
    },
    /// A task group id that cannot be a prefix of task ids.
    #[error(
        "invalid task group id `{id}`: use letters, digits, `_` and `-` only (it prefixes its \
         tasks' ids, `{id}.task`), or turn `prefix_group_id` off"
    )]
    InvalidGroupId {
        /// The offending id.
        id: String,
    },
    /// A task group id used twice, or also used by a task.
    #[error(
        "task group id `{0}` is used twice in the DAG (by a group or a task); give each group its \
         own id, or let the builder add Airflow's suffix (`TaskGroup::add_suffix_on_collision`)"
    )]
    DuplicateGroupId(String),
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
}

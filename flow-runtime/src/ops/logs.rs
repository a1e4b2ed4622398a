//! Reading the log lines of a task instance's tries.

use crate::graph::Dag;
use crate::ids::{RunId, TaskId, TaskInstanceKey};
use crate::state::TaskState;
use crate::store::{LogLine, Store, StoreError};

use super::{InstanceError, instance_key};

/// The lines of one try.
#[derive(Clone, Debug, PartialEq)]
pub struct TryLog {
    /// Which try.
    pub try_number: u32,
    /// How it ended (`running` while it runs).
    pub state: TaskState,
    /// Its lines, in order.
    pub lines: Vec<LogLine>,
}

/// The logs of one task instance.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskLogs {
    /// The instance.
    pub key: TaskInstanceKey,
    /// Its tries, first first (only the one asked for, if one was).
    pub tries: Vec<TryLog>,
}

/// Why logs could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    /// The instance could not be named.
    #[error(transparent)]
    Instance(#[from] InstanceError),
    /// The try asked for was never made.
    #[error("task `{task_id}` has no try {try_number} in run {run_id}; tries made: {}", made_list(.made))]
    NoSuchTry {
        /// The task.
        task_id: TaskId,
        /// The try asked for.
        try_number: u32,
        /// The run.
        run_id: RunId,
        /// The tries made.
        made: Vec<u32>,
    },
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn made_list(made: &[u32]) -> String {
    if made.is_empty() {
        "none".to_string()
    } else {
        made.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The log lines of task `task_id` (instance `map_index` of a mapped task) in run
/// `run_id`: of try `try_number`, or of every try.
pub fn read(
    store: &dyn Store,
    dag: &Dag,
    run_id: &RunId,
    task_id: &str,
    map_index: Option<u32>,
    try_number: Option<u32>,
) -> Result<TaskLogs, LogsError> {
    let key = instance_key(store, dag, run_id, task_id, map_index)?;
    let tries = store.tries(&key)?;
    if let Some(n) = try_number
        && !tries.iter().any(|t| t.try_number == n)
    {
        return Err(LogsError::NoSuchTry {
            task_id: key.task_id.clone(),
            try_number: n,
            run_id: run_id.clone(),
            made: tries.iter().map(|t| t.try_number).collect(),
        });
    }
    let mut lines = store.logs(&key, try_number)?;
    let tries = tries
        .iter()
        .filter(|t| try_number.is_none_or(|n| n == t.try_number))
        .map(|attempt| TryLog {
            try_number: attempt.try_number,
            state: attempt.state,
            lines: lines
                .extract_if(.., |(t, _)| *t == attempt.try_number)
                .map(|(_, line)| line)
                .collect(),
        })
        .collect();
    Ok(TaskLogs { key, tries })
}

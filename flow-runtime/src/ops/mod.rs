//! The use cases, with typed results and typed errors: what the CLI does, and what an HTTP
//! API will do, each in one place. Nothing here prints; errors state facts and the caller
//! adds advice (the CLI names its commands and flags).
//!
//! Running a recorded run (resume, clear, delete, backfill) needs the run's lock
//! ([`crate::home::RunLock`]): the functions that do it take one, so a caller cannot forget.

pub mod backfill;
pub mod clear;
pub mod delete;
pub mod logs;
pub mod pools;
pub mod resolve;
pub mod resume;
pub mod test_task;
pub mod trigger;
pub mod xcoms;

#[cfg(test)]
mod tests;

use crate::graph::Dag;
use crate::ids::{DagId, MapIndex, RunId, TaskId, TaskIndex, TaskInstanceKey};
use crate::registry::closest;
use crate::store::{RunStore, StoreError};

/// A task id that is not one of the DAG's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no task `{task_id}` in DAG `{dag_id}`; its tasks: {}", .closest.join(", "))]
pub struct UnknownTask {
    /// The DAG.
    pub dag_id: DagId,
    /// The id asked for.
    pub task_id: String,
    /// The DAG's task ids, closest to the one asked for first.
    pub closest: Vec<String>,
}

/// The index of task `id` in `dag`.
pub fn find_task(dag: &Dag, id: &str) -> Result<TaskIndex, UnknownTask> {
    dag.task_index(id).ok_or_else(|| UnknownTask {
        dag_id: dag.id().clone(),
        task_id: id.to_string(),
        closest: closest(id, dag.tasks().iter().map(|t| t.id().as_str()))
            .into_iter()
            .map(str::to_string)
            .collect(),
    })
}

/// Why a task instance could not be named.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    /// No such task.
    #[error(transparent)]
    UnknownTask(#[from] UnknownTask),
    /// A mapped task's instance needs its map index.
    #[error("task `{task_id}` is mapped ({count} instances in run {run_id})")]
    NeedsMapIndex {
        /// The task.
        task_id: TaskId,
        /// How many instances it has in the run.
        count: usize,
        /// The run.
        run_id: RunId,
    },
    /// A map index was given for a task that is not mapped.
    #[error("task `{task_id}` is not mapped")]
    NotMapped {
        /// The task.
        task_id: TaskId,
    },
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The key of one instance of task `task_id` in a run: `map_index` is required for a
/// mapped task and refused for another.
pub fn instance_key(
    store: &dyn RunStore,
    dag: &Dag,
    run_id: &RunId,
    task_id: &str,
    map_index: Option<u32>,
) -> Result<TaskInstanceKey, InstanceError> {
    let task = &dag[find_task(dag, task_id)?];
    let map_index = match (task.is_mapped(), map_index) {
        (true, Some(i)) => MapIndex::mapped(i),
        (false, None) => MapIndex::UNMAPPED,
        (true, None) => {
            let count = store
                .task_instances(dag.id(), run_id)?
                .iter()
                .filter(|ti| ti.key.task_id == *task.id() && ti.key.map_index.get().is_some())
                .count();
            return Err(InstanceError::NeedsMapIndex {
                task_id: task.id().clone(),
                count,
                run_id: run_id.clone(),
            });
        }
        (false, Some(_)) => {
            return Err(InstanceError::NotMapped {
                task_id: task.id().clone(),
            });
        }
    };
    Ok(TaskInstanceKey {
        dag_id: dag.id().clone(),
        run_id: run_id.clone(),
        task_id: task.id().clone(),
        map_index,
    })
}

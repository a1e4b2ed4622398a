//! Clearing task instances of a run, so that resuming it runs them again.

use crate::graph::Dag;
use crate::home::RunLock;
use crate::ids::{RunId, TaskId};
use crate::plan::Plan;
use crate::store::{RunStore, StoreError};

use super::{UnknownTask, find_task};

/// The tasks to clear: `tasks` (every task when empty) and, with `downstream`, every task
/// downstream of them, in the DAG's task order.
pub fn task_set(dag: &Dag, tasks: &[String], downstream: bool) -> Result<Vec<TaskId>, UnknownTask> {
    let mut chosen = vec![tasks.is_empty(); dag.tasks().len()];
    let named = tasks
        .iter()
        .map(|task| find_task(dag, task))
        .collect::<Result<Vec<_>, _>>()?;
    for &index in &named {
        chosen[index.get()] = true;
    }
    if downstream {
        for index in Plan::compile(dag).descendants_of(named) {
            chosen[index.get()] = true;
        }
    }
    Ok(dag
        .tasks()
        .iter()
        .zip(chosen)
        .filter(|(_, chosen)| *chosen)
        .map(|(task, _)| task.id().clone())
        .collect())
}

/// Resets the instances of `tasks` in run `run_id` (earlier tries stay in the history),
/// under the run's lock; the run can then be resumed.
pub fn clear(
    store: &dyn RunStore,
    dag: &Dag,
    run_id: &RunId,
    tasks: &[TaskId],
    _lock: &RunLock,
) -> Result<(), StoreError> {
    store.clear(dag.id(), run_id, tasks)
}

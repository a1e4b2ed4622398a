//! Deleting a run's history.

use crate::error::RunError;
use crate::home::RunLock;
use crate::ids::{DagId, RunId};
use crate::runtime::Executor;

/// What a deletion removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deleted {
    /// The run.
    pub run_id: RunId,
    /// How many objects (offloaded XComs, artifacts) went with it.
    pub objects: usize,
}

/// Deletes run `run_id` of `dag_id`, its records and its objects in the executor's object
/// store, under the run's lock (so no process is executing it).
pub async fn delete_run(
    executor: &Executor,
    dag_id: &DagId,
    run_id: &RunId,
    _lock: &RunLock,
) -> Result<Deleted, RunError> {
    let objects = executor.delete_run(dag_id, run_id).await?;
    Ok(Deleted {
        run_id: run_id.clone(),
        objects,
    })
}

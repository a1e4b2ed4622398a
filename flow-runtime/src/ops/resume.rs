//! Continuing an unfinished run.

use crate::error::RunError;
use crate::graph::Dag;
use crate::home::RunLock;
use crate::ids::RunId;
use crate::runtime::{Executor, RunSummary};

/// Continues run `run_id` of `dag` to its end, under the run's lock: succeeded tasks are
/// kept, interrupted tries are retried under their policy, the rest runs.
pub async fn resume(
    executor: &Executor,
    dag: &Dag,
    run_id: &RunId,
    _lock: &RunLock,
) -> Result<RunSummary, RunError> {
    executor.resume(dag, run_id).await
}

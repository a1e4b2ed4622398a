//! Errors of carrying out a DAG run. Each layer has its own: building a DAG fails with
//! [`DagError`](crate::graph::DagError), a task's try with
//! [`TaskError`](crate::task::TaskError), a store operation with [`StoreError`]; the crate
//! root re-exports them all.

use crate::ids::{DagId, RunId};
use crate::store::StoreError;

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
    Params(#[from] crate::graph::params::ParamsError),
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

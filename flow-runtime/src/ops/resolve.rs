//! Naming a recorded run: by its id, or `latest` for the DAG's newest.

use crate::graph::Dag;
use crate::ids::{DagId, RunId};
use crate::registry::closest;
use crate::store::{RunStore, StoreError};

/// The reference that names a DAG's newest run.
pub const LATEST: &str = "latest";

/// A run reference that names no recorded run.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// `latest`, for a DAG without runs.
    #[error("DAG `{dag_id}` has no recorded runs yet")]
    NoRuns {
        /// The DAG.
        dag_id: DagId,
    },
    /// An id no run has.
    #[error("DAG `{dag_id}` has no run `{run}`; {}", known_runs(.closest))]
    UnknownRun {
        /// The DAG.
        dag_id: DagId,
        /// The reference given.
        run: String,
        /// Up to five of the DAG's run ids, closest to the reference first.
        closest: Vec<RunId>,
    },
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn known_runs(closest: &[RunId]) -> String {
    if closest.is_empty() {
        "it has no recorded runs".to_string()
    } else {
        let ids: Vec<&str> = closest.iter().map(RunId::as_str).collect();
        format!("its runs, closest first: {}", ids.join(", "))
    }
}

/// The run `reference` names: a run id of `dag`, or [`LATEST`] for its newest run.
pub fn resolve_run(
    store: &dyn RunStore,
    dag: &Dag,
    reference: &str,
) -> Result<RunId, ResolveError> {
    if reference == LATEST {
        return store
            .runs(Some(dag.id()))?
            .into_iter()
            .next()
            .map(|r| r.run_id)
            .ok_or_else(|| ResolveError::NoRuns {
                dag_id: dag.id().clone(),
            });
    }
    let run_id = RunId::new(reference);
    if store.run(dag.id(), &run_id)?.is_some() {
        return Ok(run_id);
    }
    let runs = store.runs(Some(dag.id()))?;
    Err(ResolveError::UnknownRun {
        dag_id: dag.id().clone(),
        run: reference.to_string(),
        closest: closest(reference, runs.iter().map(|r| r.run_id.as_str()))
            .into_iter()
            .take(5)
            .map(RunId::new)
            .collect(),
    })
}

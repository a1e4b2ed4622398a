//! The store behind [`RunTrigger`]: a task starts a run of another DAG of this binary
//! (Airflow's `TriggerDagRunOperator`) by recording it `queued`, as `dags trigger` does,
//! for a scheduler to run.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::RunRequest;
use crate::error::RunError;
use crate::ids::{DagId, RunId};
use crate::registry::Registry;
use crate::state::RunState;
use crate::store::Store;
use crate::xcom::ports::{ReadError, RunTrigger, TriggerFailure};

/// Triggers runs in the store an executor records into.
pub(crate) struct StoreTrigger {
    store: Arc<dyn Store>,
}

impl StoreTrigger {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }
}

impl RunTrigger for StoreTrigger {
    fn trigger(
        &self,
        dag_id: &DagId,
        logical_date: DateTime<Utc>,
        conf: Option<&serde_json::Value>,
    ) -> Result<RunId, TriggerFailure> {
        let registry = Registry::load().map_err(|e| TriggerFailure::Refused(e.to_string()))?;
        let dag = registry
            .get(dag_id.as_str())
            .ok_or_else(|| TriggerFailure::UnknownDag(dag_id.clone()))?;
        let refused = |e: RunError| match e {
            RunError::RunExists { dag_id, run_id } => TriggerFailure::Exists { dag_id, run_id },
            e => TriggerFailure::Refused(e.to_string()),
        };
        let request = RunRequest::manual(dag, logical_date, conf).map_err(refused)?;
        let fingerprint = crate::plan::fingerprint(dag);
        let run =
            super::record_run(self.store.as_ref(), dag, fingerprint, request).map_err(refused)?;
        Ok(run.run_id)
    }

    fn run_state(&self, dag_id: &DagId, run_id: &RunId) -> Result<Option<RunState>, ReadError> {
        self.store
            .run(dag_id, run_id)
            .map(|run| run.map(|run| run.state))
            .map_err(|e| ReadError(e.to_string()))
    }
}

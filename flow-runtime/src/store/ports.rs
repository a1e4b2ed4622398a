//! The store behind the task layer's read ports ([`crate::xcom::ports`]).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::ids::{DagId, TaskId, TaskInstanceKey};
use crate::store::{RunStore, XComStore};
use crate::xcom::StoredXCom;
use crate::xcom::ports::{ExternalTaskState, ReadError, RunRead, XComRead};

fn read_error(e: impl std::fmt::Display) -> ReadError {
    ReadError(e.to_string())
}

impl<S: XComStore + ?Sized> XComRead for Arc<S> {
    fn get_xcom(&self, key: &TaskInstanceKey, name: &str) -> Result<Option<StoredXCom>, ReadError> {
        XComStore::get_xcom(&**self, key, name).map_err(read_error)
    }
}

impl<S: RunStore + ?Sized> RunRead for Arc<S> {
    fn task_states_at(
        &self,
        dag_id: &DagId,
        task_id: &TaskId,
        logical_date: DateTime<Utc>,
    ) -> Result<Vec<ExternalTaskState>, ReadError> {
        let mut states = Vec::new();
        let runs = self.runs(Some(dag_id)).map_err(read_error)?;
        for run in runs.iter().filter(|run| run.logical_date == logical_date) {
            let instances = self
                .task_instances(dag_id, &run.run_id)
                .map_err(read_error)?;
            if let Some(instance) = instances.iter().find(|ti| &ti.key.task_id == task_id) {
                states.push(ExternalTaskState {
                    run_id: run.run_id.clone(),
                    state: instance.state,
                });
            }
        }
        Ok(states)
    }
}

//! Read ports: the few reads a running task makes of the store its executor records into,
//! as small traits. The store implements them (`store/ports.rs`), so the task layer reads
//! through these without depending on the store.

use chrono::{DateTime, Utc};

use crate::ids::{DagId, RunId, TaskId, TaskInstanceKey};
use crate::state::{RunState, TaskState};
use crate::xcom::StoredXCom;

/// A read that could not be answered, with the backend's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ReadError(pub String);

/// Reads the XComs of task instances: what [`TaskContext::xcom_pull`] reads through.
///
/// [`TaskContext::xcom_pull`]: crate::TaskContext::xcom_pull
pub trait XComRead: Send + Sync {
    /// The XCom `name` of the instance `key`, if it was stored.
    fn get_xcom(&self, key: &TaskInstanceKey, name: &str) -> Result<Option<StoredXCom>, ReadError>;
}

/// One run's instance of a task, as an external-task sensor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalTaskState {
    /// The run.
    pub run_id: RunId,
    /// The instance's state in that run.
    pub state: TaskState,
}

/// Reads the runs of other DAGs: what an external-task sensor waits on.
pub trait RunRead: Send + Sync {
    /// The state of `task_id` in each run of `dag_id` at `logical_date`, newest run first;
    /// runs that hold no instance of the task are left out.
    fn task_states_at(
        &self,
        dag_id: &DagId,
        task_id: &TaskId,
        logical_date: DateTime<Utc>,
    ) -> Result<Vec<ExternalTaskState>, ReadError>;
}

/// Why a task could not start a run of another DAG.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TriggerFailure {
    /// The binary has no DAG of that id.
    #[error(
        "DAG `{0}` is not in this binary (define it with #[dag], or register a built one with register_dag!)"
    )]
    UnknownDag(DagId),
    /// A run of that id exists already.
    #[error("run `{run_id}` of DAG `{dag_id}` exists already")]
    Exists {
        /// The DAG.
        dag_id: DagId,
        /// The run.
        run_id: RunId,
    },
    /// The conf does not fit the DAG's params, or the store failed.
    #[error("{0}")]
    Refused(String),
}

/// Starts and watches runs of other DAGs: what a task triggering a run goes through
/// (Airflow's `TriggerDagRunOperator`, [`crate::operators::TriggerDagRun`]).
pub trait RunTrigger: Send + Sync {
    /// Records a queued manual run of `dag_id` at `logical_date`, its `conf` checked
    /// against the DAG's params, for a scheduler to run; returns its id.
    fn trigger(
        &self,
        dag_id: &DagId,
        logical_date: DateTime<Utc>,
        conf: Option<&serde_json::Value>,
    ) -> Result<RunId, TriggerFailure>;
    /// The state of a run, if it exists.
    fn run_state(&self, dag_id: &DagId, run_id: &RunId) -> Result<Option<RunState>, ReadError>;
}

/// Nothing stored: the ports of a task context under test.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Nothing;

impl XComRead for Nothing {
    fn get_xcom(&self, _: &TaskInstanceKey, _: &str) -> Result<Option<StoredXCom>, ReadError> {
        Ok(None)
    }
}

impl RunTrigger for Nothing {
    fn trigger(
        &self,
        dag_id: &DagId,
        _: DateTime<Utc>,
        _: Option<&serde_json::Value>,
    ) -> Result<RunId, TriggerFailure> {
        Err(TriggerFailure::Refused(format!(
            "a task under test has no store to trigger DAG `{dag_id}` in"
        )))
    }

    fn run_state(&self, _: &DagId, _: &RunId) -> Result<Option<RunState>, ReadError> {
        Ok(None)
    }
}

impl RunRead for Nothing {
    fn task_states_at(
        &self,
        _: &DagId,
        _: &TaskId,
        _: DateTime<Utc>,
    ) -> Result<Vec<ExternalTaskState>, ReadError> {
        Ok(Vec::new())
    }
}

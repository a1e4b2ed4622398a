//! Where the runtime records what happens: runs, task instances and XCom.
//!
//! Every state change the executor makes goes through [`RunStore::apply`], in batches: a
//! batch is applied atomically and is durable when `apply` returns, so the executor can
//! group many changes into one commit and release downstream tasks only after it.
//! [`MemoryStore`] keeps everything in memory (tests, `dags test --in-memory`).

mod memory;

pub use memory::MemoryStore;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{DagId, RunId, TaskInstanceKey};
use crate::state::{RunState, TaskState};
use crate::xcom::XComBlob;

/// A store that could not do what was asked; nothing of the failed batch was applied.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A run with this id already exists.
    #[error("run `{run_id}` of DAG `{dag_id}` already exists")]
    RunExists {
        /// The DAG.
        dag_id: DagId,
        /// The run.
        run_id: RunId,
    },
    /// A change refers to a run that does not exist.
    #[error("run `{run_id}` of DAG `{dag_id}` does not exist")]
    NoSuchRun {
        /// The DAG.
        dag_id: DagId,
        /// The run.
        run_id: RunId,
    },
    /// A state change that the lifecycle does not allow; a bug in the caller.
    #[error("illegal state change for {key}: {from} -> {to}")]
    IllegalTransition {
        /// The instance.
        key: TaskInstanceKey,
        /// Its recorded state.
        from: TaskState,
        /// The requested state.
        to: TaskState,
    },
    /// The backend failed (I/O, database).
    #[error("store backend: {0}")]
    Backend(String),
}

/// How a run came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunType {
    /// Created by hand (`dags test`, `dags trigger`).
    Manual,
    /// Created by the scheduler.
    Scheduled,
    /// Created by a backfill.
    Backfill,
}

impl RunType {
    /// Airflow's name, also the run id's prefix.
    pub fn as_str(self) -> &'static str {
        match self {
            RunType::Manual => "manual",
            RunType::Scheduled => "scheduled",
            RunType::Backfill => "backfill",
        }
    }
}

/// One DAG run as recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct DagRunRecord {
    /// The DAG.
    pub dag_id: DagId,
    /// The run.
    pub run_id: RunId,
    /// How it was created.
    pub run_type: RunType,
    /// The logical date.
    pub logical_date: DateTime<Utc>,
    /// Its state.
    pub state: RunState,
    /// When it started running.
    pub start: Option<DateTime<Utc>>,
    /// When it finished.
    pub end: Option<DateTime<Utc>>,
}

/// One task instance as recorded: the latest facts about it.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskInstanceRecord {
    /// Which instance.
    pub key: TaskInstanceKey,
    /// Its state.
    pub state: TaskState,
    /// The number of the current (or last) try; 0 before the first.
    pub try_number: u32,
    /// When the current try started.
    pub start: Option<DateTime<Utc>>,
    /// When the last try ended.
    pub end: Option<DateTime<Utc>>,
    /// The error of the last failed try.
    pub error: Option<String>,
}

/// One change; a batch of them is applied atomically.
#[derive(Clone, Debug)]
pub enum Change {
    /// A task instance's new facts (inserted or replaced).
    Task(TaskInstanceRecord),
    /// An XCom the instance stored.
    XCom {
        /// The producing instance.
        key: TaskInstanceKey,
        /// The XCom key (`return_value` for a return value).
        name: String,
        /// The value.
        value: XComBlob,
    },
    /// The run's new state and times.
    Run {
        /// The DAG.
        dag_id: DagId,
        /// The run.
        run_id: RunId,
        /// The new state.
        state: RunState,
        /// When it started, if it has.
        start: Option<DateTime<Utc>>,
        /// When it ended, if it has.
        end: Option<DateTime<Utc>>,
    },
}

/// Runs and their task instances.
pub trait RunStore: Send + Sync {
    /// Records a new run; an existing id is [`StoreError::RunExists`].
    fn create_run(&self, run: &DagRunRecord) -> Result<(), StoreError>;
    /// Applies a batch atomically; it is durable when this returns.
    fn apply(&self, changes: &[Change]) -> Result<(), StoreError>;
    /// A run by id.
    fn run(&self, dag_id: &DagId, run_id: &RunId) -> Result<Option<DagRunRecord>, StoreError>;
    /// The runs of one DAG (or all), newest logical date first.
    fn runs(&self, dag_id: Option<&DagId>) -> Result<Vec<DagRunRecord>, StoreError>;
    /// The task instances of one run.
    fn task_instances(&self, dag_id: &DagId, run_id: &RunId) -> Result<Vec<TaskInstanceRecord>, StoreError>;
}

/// Reading XCom values.
pub trait XComStore: Send + Sync {
    /// The value `name` stored by an instance, if any.
    fn get_xcom(&self, key: &TaskInstanceKey, name: &str) -> Result<Option<XComBlob>, StoreError>;
}

/// Everything the executor needs from a store.
pub trait Store: RunStore + XComStore {}

impl<T: RunStore + XComStore> Store for T {}

//! Where the runtime records what happens: runs, task instances and XCom.
//!
//! Every state change the executor makes goes through [`RunStore::apply`], in batches: a
//! batch is applied atomically and is durable when `apply` returns, so the executor can
//! group many changes into one commit and release downstream tasks only after it.
//! [`MemoryStore`] keeps everything in memory (tests, `dags test --in-memory`).

mod memory;
mod sqlite;
#[cfg(test)]
mod tests;

pub use memory::MemoryStore;
pub use sqlite::{DEFAULT_BUSY_TIMEOUT, OpenMode, SCHEMA_VERSION, SqliteStore};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{DagId, RunId, TaskId, TaskInstanceKey};
use crate::state::{RunState, TaskState};
use crate::xcom::StoredXCom;

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
    /// The database is locked by another process for longer than the busy timeout.
    #[error(
        "the database {0} is locked by another process; wait for it to finish or stop it, then retry"
    )]
    Locked(String),
    /// The file exists but is not a flow database.
    #[error(
        "{0} is not a flow database; point FLOW_HOME at another directory or move the file away"
    )]
    NotFlowDatabase(String),
    /// The database was written by a newer flow.
    #[error(
        "the database {path} has schema version {found}, newer than this binary's {supported}; run a newer build"
    )]
    NewerSchema {
        /// The file.
        path: String,
        /// Its version.
        found: i64,
        /// This binary's version.
        supported: i64,
    },
    /// The database was written by an older flow and must be migrated first.
    #[error("the database {path} has schema version {found}; this binary needs {supported}")]
    OlderSchema {
        /// The file.
        path: String,
        /// Its version.
        found: i64,
        /// This binary's version.
        supported: i64,
    },
    /// The disk is full; the batch was rolled back.
    #[error(
        "the disk holding {0} is full; nothing of the last batch was written: free space and resume the run"
    )]
    DiskFull(String),
    /// The database or its directory cannot be written.
    #[error("cannot write {path}: {reason}; check the permissions of FLOW_HOME")]
    ReadOnly {
        /// The file or directory.
        path: String,
        /// The system's reason.
        reason: String,
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
    /// The fingerprint of the DAG's shape when the run was created.
    pub fingerprint: String,
    /// The start of the run's data interval (its logical date for scheduled runs).
    pub data_interval_start: DateTime<Utc>,
    /// The end of the run's data interval.
    pub data_interval_end: DateTime<Utc>,
    /// The run's params, resolved from the trigger's conf and the DAG's defaults (a JSON
    /// object).
    pub conf: serde_json::Value,
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
    /// The try number after which no retry is left (Airflow's `max_tries`); set when the
    /// instance is queued from `none`, so clearing a task grants it its retries again.
    pub max_tries: u32,
    /// When the current try started.
    pub start: Option<DateTime<Utc>>,
    /// When the last try ended.
    pub end: Option<DateTime<Utc>>,
    /// The error of the last failed try.
    pub error: Option<String>,
}

impl TaskInstanceRecord {
    /// An instance that has not run: state `none`, no try yet.
    pub fn fresh(key: TaskInstanceKey) -> Self {
        Self {
            key,
            state: TaskState::None,
            try_number: 0,
            max_tries: 0,
            start: None,
            end: None,
            error: None,
        }
    }

    /// The try this record describes, once it has started (`try_number > 0` and the
    /// instance is not waiting to be queued again).
    ///
    /// As in Airflow, the instance's own row holds its current try and the history
    /// holds the earlier ones: a try enters the history when it ends in `up_for_retry`
    /// (see [`TaskInstanceRecord::archived_try`]) or when the instance is cleared.
    pub fn current_try(&self) -> Option<TryRecord> {
        let started = !matches!(self.state, TaskState::None | TaskState::Queued);
        (started && self.try_number > 0).then(|| self.try_record())
    }

    /// The try to move into the history now: a try that ended in `up_for_retry`.
    pub fn archived_try(&self) -> Option<TryRecord> {
        (self.state == TaskState::UpForRetry && self.try_number > 0).then(|| self.try_record())
    }

    fn try_record(&self) -> TryRecord {
        TryRecord {
            try_number: self.try_number,
            state: self.state,
            start: self.start,
            end: self.end,
            error: self.error.clone(),
        }
    }
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
        /// The value, or the reference to the object holding it.
        value: StoredXCom,
    },
    /// Log lines a try wrote.
    Log {
        /// The instance.
        key: TaskInstanceKey,
        /// The try that wrote them.
        try_number: u32,
        /// The lines, in order.
        lines: Vec<LogLine>,
    },
    /// A mapped task instance that no longer exists: its task was cleared and its list
    /// is now shorter (Airflow marks such instances `removed`). Its past tries stay.
    RemoveInstance(TaskInstanceKey),
    /// A sensor in `reschedule` mode found its condition not met and waits for its next
    /// poke.
    Reschedule(RescheduleRecord),
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

/// One line a task logged during a try.
#[derive(Clone, Debug, PartialEq)]
pub struct LogLine {
    /// When it was logged.
    pub at: DateTime<Utc>,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`.
    pub level: String,
    /// The message with its fields.
    pub message: String,
}

/// One try of a task instance, as kept in the history.
#[derive(Clone, Debug, PartialEq)]
pub struct TryRecord {
    /// Which try (from 1).
    pub try_number: u32,
    /// How it ended (`running` while it runs).
    pub state: TaskState,
    /// When it started.
    pub start: Option<DateTime<Utc>>,
    /// When it ended.
    pub end: Option<DateTime<Utc>>,
    /// Its error, if it failed.
    pub error: Option<String>,
}

/// One poke of a sensor in `reschedule` mode that found its condition not met (a row of
/// Airflow's `task_reschedule` table). The first one of a try holds the time of the try's
/// first poke, from which the sensor's timeout counts, across restarts.
#[derive(Clone, Debug, PartialEq)]
pub struct RescheduleRecord {
    /// The sensor's instance.
    pub key: TaskInstanceKey,
    /// The try poking (it does not change between pokes).
    pub try_number: u32,
    /// When the poke started.
    pub start: DateTime<Utc>,
    /// When the poke ended.
    pub end: DateTime<Utc>,
    /// When the next poke is due.
    pub reschedule_at: DateTime<Utc>,
}

/// A DAG as last recorded by a binary that contains it.
#[derive(Clone, Debug, PartialEq)]
pub struct DagRecord {
    /// The DAG.
    pub dag_id: DagId,
    /// Whether scheduling is paused.
    pub paused: bool,
    /// The shape's fingerprint (tasks, edges, types).
    pub fingerprint: String,
}

/// Runs and their task instances.
pub trait RunStore: Send + Sync {
    /// Records a new run; an existing id is [`StoreError::RunExists`].
    fn create_run(&self, run: &DagRunRecord) -> Result<(), StoreError>;
    /// Applies a batch atomically; it is durable when this returns.
    fn apply(&self, changes: &[Change]) -> Result<(), StoreError>;
    /// Whether `apply` is slow enough (a disk commit) that the executor should call it on
    /// another thread while it keeps handling running tasks.
    fn commits_in_background(&self) -> bool {
        false
    }
    /// A run by id.
    fn run(&self, dag_id: &DagId, run_id: &RunId) -> Result<Option<DagRunRecord>, StoreError>;
    /// The runs of one DAG (or all), newest logical date first.
    fn runs(&self, dag_id: Option<&DagId>) -> Result<Vec<DagRunRecord>, StoreError>;
    /// Runs that are `queued` or `running`, oldest logical date first.
    fn unfinished_runs(&self) -> Result<Vec<DagRunRecord>, StoreError>;
    /// The newest run of one DAG of one type, by logical date.
    fn latest_run(
        &self,
        dag_id: &DagId,
        run_type: RunType,
    ) -> Result<Option<DagRunRecord>, StoreError>;
    /// The task instances of one run.
    fn task_instances(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
    ) -> Result<Vec<TaskInstanceRecord>, StoreError>;
    /// Every try of one instance, oldest first.
    fn tries(&self, key: &TaskInstanceKey) -> Result<Vec<TryRecord>, StoreError>;
    /// Resets instances to state `none` so they run again (their try history and try
    /// count are kept; their XComs and reschedules are removed) and puts the run back to `queued`.
    fn clear(&self, dag_id: &DagId, run_id: &RunId, tasks: &[TaskId]) -> Result<(), StoreError>;
    /// Deletes a run and everything recorded about it (task instances, tries, XCom, logs);
    /// an unknown run is [`StoreError::NoSuchRun`]. Objects the run's XComs refer to are
    /// not the store's: [`crate::Executor::delete_run`] removes both.
    fn delete_run(&self, dag_id: &DagId, run_id: &RunId) -> Result<(), StoreError>;
}

/// DAGs known to the store: their paused flag and recorded shape.
pub trait DagStore: Send + Sync {
    /// Records the DAG's current shape, keeping its paused flag (new DAGs are unpaused).
    fn record_dag(&self, dag_id: &DagId, fingerprint: &str) -> Result<(), StoreError>;
    /// The DAG's record.
    fn dag(&self, dag_id: &DagId) -> Result<Option<DagRecord>, StoreError>;
    /// Pauses or unpauses scheduling.
    fn set_paused(&self, dag_id: &DagId, paused: bool) -> Result<(), StoreError>;
}

/// A pool as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolRecord {
    /// Its name.
    pub name: String,
    /// Its slots.
    pub slots: u32,
    /// What it is for.
    pub description: String,
}

/// Named pools of slots.
pub trait PoolStore: Send + Sync {
    /// Creates or resizes a pool.
    fn set_pool(&self, pool: &PoolRecord) -> Result<(), StoreError>;
    /// Every pool, by name.
    fn pools(&self) -> Result<Vec<PoolRecord>, StoreError>;
    /// Deletes a pool; whether it existed.
    fn delete_pool(&self, name: &str) -> Result<bool, StoreError>;
}

/// Per-try task logs.
pub trait LogStore: Send + Sync {
    /// The lines of one try, or of every try when `try_number` is `None`, as
    /// `(try, line)` in order.
    fn logs(
        &self,
        key: &TaskInstanceKey,
        try_number: Option<u32>,
    ) -> Result<Vec<(u32, LogLine)>, StoreError>;
}

/// Reading the pokes of sensors in `reschedule` mode (written with
/// [`Change::Reschedule`]).
pub trait RescheduleStore: Send + Sync {
    /// The reschedules of one try of an instance, oldest first; clearing the instance
    /// removes them.
    fn reschedules(
        &self,
        key: &TaskInstanceKey,
        try_number: u32,
    ) -> Result<Vec<RescheduleRecord>, StoreError>;
}

/// Reading XCom values, as recorded: inline, or a reference to an object (see
/// [`crate::objects::Objects::load`]).
pub trait XComStore: Send + Sync {
    /// The value `name` stored by an instance, if any.
    fn get_xcom(&self, key: &TaskInstanceKey, name: &str)
    -> Result<Option<StoredXCom>, StoreError>;
    /// The newest value `name` that task `task_id` of `dag_id` stored in any run, with the
    /// run (by logical date).
    fn latest_xcom(
        &self,
        dag_id: &DagId,
        task_id: &TaskId,
        name: &str,
    ) -> Result<Option<(RunId, StoredXCom)>, StoreError>;
    /// Every value an instance stored, by name, in name order.
    fn xcoms(&self, key: &TaskInstanceKey) -> Result<Vec<(String, StoredXCom)>, StoreError>;
}

/// Everything the runtime needs from a store.
pub trait Store: RunStore + XComStore + DagStore + LogStore + PoolStore + RescheduleStore {}

impl<T: RunStore + XComStore + DagStore + LogStore + PoolStore + RescheduleStore> Store for T {}

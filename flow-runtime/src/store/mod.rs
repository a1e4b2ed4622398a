//! Where the runtime records what happens: runs, task instances and XCom.
//!
//! Every state change the executor makes goes through [`RunStore::apply`], in batches: a
//! batch is applied atomically and is durable when `apply` returns, so the executor can
//! group many changes into one commit and release downstream tasks only after it.
//! [`MemoryStore`] keeps everything in memory (tests, `dags test --in-memory`).

mod memory;
mod ports;
mod sqlite;
#[cfg(test)]
mod tests;

pub use memory::MemoryStore;
pub use sqlite::{DEFAULT_BUSY_TIMEOUT, OpenMode, SCHEMA_VERSION, SqliteStore};

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::assets::AssetEvent;
use crate::ids::{DagId, RunId, TaskId, TaskInstanceKey};
use crate::pools::{Claim, Grant};
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
    /// A task change expected the instance in a state it is no longer in: another writer
    /// changed it first. Nothing of the batch was applied.
    #[error("{key} changed under this writer: expected {expected}, found {found}")]
    Conflict {
        /// The instance.
        key: TaskInstanceKey,
        /// What the change expected.
        expected: Expect,
        /// What the store holds (`none`, try 0 for a missing row).
        found: Expect,
    },
    /// A batch took a run's lease ([`Change::TakeRunLease`]) that another process holds;
    /// nothing of the batch was applied.
    #[error(
        "run `{run_id}` of DAG `{dag_id}` is being executed by {owner} (its lease runs until {until})"
    )]
    RunLeaseHeld {
        /// The DAG.
        dag_id: DagId,
        /// The run.
        run_id: RunId,
        /// The process holding the lease.
        owner: String,
        /// When its lease runs out unless renewed.
        until: DateTime<Utc>,
    },
    /// A worker's claim on an instance no longer holds (its lease ran out, the instance
    /// moved on, or another try claimed it); its outcome was not recorded.
    #[error(
        "{key} try {try_number} is no longer claimed by worker `{worker}`: {reason}; its outcome was not recorded"
    )]
    ClaimLost {
        /// The instance.
        key: TaskInstanceKey,
        /// The claimed try.
        try_number: u32,
        /// The worker that claimed it.
        worker: WorkerId,
        /// What the store holds instead.
        reason: String,
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

pub use crate::ids::RunType;

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
    /// Airflow's `max_tries`: a failed try is retried while its number is at most this
    /// (the task's `retries` for a fresh instance); set when the instance is queued from
    /// `none`, so clearing a task grants it its retries again (try number + retries).
    pub max_tries: u32,
    /// When the current try started.
    pub start: Option<DateTime<Utc>>,
    /// When the last try ended.
    pub end: Option<DateTime<Utc>>,
    /// The error of the last failed try.
    pub error: Option<String>,
    /// Its priority among queued instances: a [`QueueStore::claim`] takes higher weights
    /// first. Written when the instance is queued and returned by its claim; the queue
    /// keeps it only while the instance waits or is claimed (a read of the instance
    /// otherwise may give 0).
    pub priority_weight: i64,
    /// The queue it waits in once queued (`None`: the default queue); a worker claims from
    /// one queue or from all. Kept like `priority_weight`.
    pub queue: Option<String>,
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
            priority_weight: 0,
            queue: None,
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

    /// The try to move into the history now: a try that ended in `up_for_retry`, recorded
    /// as `failed` (as Airflow's task instance history does: the retry is the instance's
    /// state, the try itself failed).
    pub fn archived_try(&self) -> Option<TryRecord> {
        (self.state == TaskState::UpForRetry && self.try_number > 0).then(|| TryRecord {
            state: TaskState::Failed,
            ..self.try_record()
        })
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

/// The state and try a task change expects the store to hold for its instance; a
/// missing row is [`Expect::FRESH`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Expect {
    /// The expected state.
    pub state: TaskState,
    /// The expected try number.
    pub try_number: u32,
}

impl Expect {
    /// What a missing row counts as: state `none`, no try yet.
    pub const FRESH: Expect = Expect {
        state: TaskState::None,
        try_number: 0,
    };

    /// The state and try `record` holds, as the expectation of the change that follows it.
    pub fn of(record: &TaskInstanceRecord) -> Self {
        Expect {
            state: record.state,
            try_number: record.try_number,
        }
    }

    /// Whether a change expecting `self` may write `to` (the rules of
    /// [`TaskState::can_reach`]; writing the same state again is allowed).
    pub fn allows(self, to: TaskState) -> bool {
        self.state == to || self.state.can_reach(to)
    }
}

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (try {})", self.state, self.try_number)
    }
}

/// One change; a batch of them is applied atomically.
#[derive(Clone, Debug)]
pub enum Change {
    /// A task instance's new facts (inserted or replaced), applied only if the store still
    /// holds what `expect` names ([`StoreError::Conflict`] otherwise) and the lifecycle
    /// allows the move ([`StoreError::IllegalTransition`] otherwise). A second change of
    /// the same instance in one batch expects what the first one wrote.
    Task {
        /// The new facts.
        record: TaskInstanceRecord,
        /// What the store holds before this change.
        expect: Expect,
    },
    /// A try that starts only if its pool slots are free: `ask` is answered at this point
    /// of the batch as [`SlotStore::acquire_slots`] answers a request (the batch's
    /// releases before it count), and [`RunStore::apply`] returns the answer. Granted,
    /// the slots are counted under `ask.owner` and `record` is applied as a
    /// [`Change::Task`] would be; refused, the instance keeps what the store holds and the
    /// rest of the batch is applied. A start is the last change of its instance in a
    /// batch. Starting a try and taking its slots so cost one commit, not two.
    Start {
        /// The instance's facts once started (`running`).
        record: TaskInstanceRecord,
        /// What the store holds before this change.
        expect: Expect,
        /// The slots the try takes.
        ask: SlotAsk,
    },
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
    /// Tries of one run ended: the pool slots they held under `owner`
    /// ([`SlotStore::acquire_slots`]) are free again, as durably as the outcomes committed
    /// with them.
    ReleaseSlots(SlotRelease),
    /// A sensor in `reschedule` mode found its condition not met and waits for its next
    /// poke.
    Reschedule(RescheduleRecord),
    /// An asset was updated: a try of a task naming it among its outlets succeeded (in
    /// the batch that records the success).
    AssetUpdated {
        /// The asset's URI.
        uri: String,
        /// The instance that updated it.
        source: TaskInstanceKey,
        /// When its try ended.
        timestamp: DateTime<Utc>,
    },
    /// An asset-scheduled DAG consumed the updates of each asset up to the event id given
    /// (with the batch creating the run they trigger).
    ConsumeAssets {
        /// The DAG.
        dag_id: DagId,
        /// Per asset URI, the last event consumed.
        upto: Vec<(String, i64)>,
    },
    /// A new run, recorded by the batch that holds its first decisions (so creating and
    /// starting it cost one commit). A run of that id already there refuses the whole
    /// batch with [`StoreError::RunExists`].
    CreateRun(DagRunRecord),
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
    /// `owner` gives up its lease on the run (nothing happens if another owner holds it):
    /// in the batch that records the run's end, so ending a run costs one commit.
    ReleaseRunLease {
        /// The DAG.
        dag_id: DagId,
        /// The run.
        run_id: RunId,
        /// The process that held the lease.
        owner: String,
    },
    /// `owner` takes the run's lease until `until`, in the batch that starts a new run,
    /// so starting it costs no commit of its own. If another owner's lease still holds at
    /// `now`, the whole batch is refused with [`StoreError::RunLeaseHeld`].
    TakeRunLease {
        /// The DAG.
        dag_id: DagId,
        /// The run.
        run_id: RunId,
        /// The process taking it.
        owner: String,
        /// When the lease is checked.
        now: DateTime<Utc>,
        /// When it runs out unless renewed.
        until: DateTime<Utc>,
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

/// Which runs a page of runs holds, and in what order: every condition left empty holds
/// for every run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunQuery {
    /// Only this DAG's runs.
    pub dag_id: Option<DagId>,
    /// Only runs in one of these states.
    pub states: Vec<RunState>,
    /// Only runs of one of these types.
    pub run_types: Vec<RunType>,
    /// Only runs with a logical date at or after this.
    pub logical_date_gte: Option<DateTime<Utc>>,
    /// Only runs with a logical date at or before this.
    pub logical_date_lte: Option<DateTime<Utc>>,
    /// The order (default: newest logical date first).
    pub order: RunOrder,
}

impl RunQuery {
    /// Every run of `dag_id` (or of every DAG), newest logical date first.
    pub fn of(dag_id: Option<&DagId>) -> Self {
        Self {
            dag_id: dag_id.cloned(),
            ..Self::default()
        }
    }

    /// Whether `run` meets the conditions.
    pub fn admits(&self, run: &DagRunRecord) -> bool {
        self.dag_id.as_ref().is_none_or(|d| *d == run.dag_id)
            && (self.states.is_empty() || self.states.contains(&run.state))
            && (self.run_types.is_empty() || self.run_types.contains(&run.run_type))
            && self.logical_date_gte.is_none_or(|d| run.logical_date >= d)
            && self.logical_date_lte.is_none_or(|d| run.logical_date <= d)
    }
}

/// What runs are ordered by; ties go by run id, in the same direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunOrder {
    /// The field.
    pub by: RunOrderBy,
    /// Largest first (runs that have no value for the field come last).
    pub descending: bool,
}

impl Default for RunOrder {
    fn default() -> Self {
        Self {
            by: RunOrderBy::LogicalDate,
            descending: true,
        }
    }
}

/// A field runs can be ordered by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunOrderBy {
    /// The logical date.
    LogicalDate,
    /// When it started (runs not started: none).
    StartDate,
    /// When it ended (runs not ended: none).
    EndDate,
    /// The run id.
    RunId,
}

impl RunOrder {
    /// Compares two runs in this order.
    pub fn compare(&self, a: &DagRunRecord, b: &DagRunRecord) -> std::cmp::Ordering {
        let by_field = match self.by {
            RunOrderBy::LogicalDate => a.logical_date.cmp(&b.logical_date),
            RunOrderBy::StartDate => a.start.cmp(&b.start),
            RunOrderBy::EndDate => a.end.cmp(&b.end),
            RunOrderBy::RunId => std::cmp::Ordering::Equal,
        };
        let ordering = by_field.then_with(|| a.run_id.as_str().cmp(b.run_id.as_str()));
        if self.descending {
            ordering.reverse()
        } else {
            ordering
        }
    }
}

/// Which part of a long list to read: `limit` items after the first `offset`, in the
/// list's stable order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    /// At most this many items.
    pub limit: usize,
    /// Items to skip.
    pub offset: usize,
}

impl Page {
    /// The first `limit` items.
    pub fn first(limit: usize) -> Self {
        Page { limit, offset: 0 }
    }

    /// The page after this one.
    pub fn next(self) -> Self {
        Page {
            offset: self.offset.saturating_add(self.limit),
            ..self
        }
    }
}

/// One page of a list, and the length of the whole list (read together).
#[derive(Clone, Debug, PartialEq)]
pub struct Paged<T> {
    /// The page's items, in order.
    pub items: Vec<T>,
    /// How many items the whole list has.
    pub total: usize,
}

/// Runs and their task instances.
pub trait RunStore: Send + Sync {
    /// Records a new run; an existing id is [`StoreError::RunExists`].
    fn create_run(&self, run: &DagRunRecord) -> Result<(), StoreError>;
    /// Applies a batch atomically; it is durable when this returns. Returns the answers to
    /// the batch's [`Change::Start`]s, in order.
    fn apply(&self, changes: &[Change]) -> Result<Vec<Grant>, StoreError>;
    /// Whether `apply` is slow enough (a disk commit) that the executor should call it on
    /// another thread while it keeps handling running tasks.
    fn commits_in_background(&self) -> bool {
        false
    }
    /// A run by id.
    fn run(&self, dag_id: &DagId, run_id: &RunId) -> Result<Option<DagRunRecord>, StoreError>;
    /// The runs of one DAG (or all), newest logical date first.
    fn runs(&self, dag_id: Option<&DagId>) -> Result<Vec<DagRunRecord>, StoreError>;
    /// One page of the runs `query` admits, in its order, with the number it admits in
    /// all.
    fn runs_page(&self, query: &RunQuery, page: Page) -> Result<Paged<DagRunRecord>, StoreError>;
    /// Runs that are `queued` or `running`, oldest logical date first.
    fn unfinished_runs(&self) -> Result<Vec<DagRunRecord>, StoreError>;
    /// How many runs each DAG has in each state (states with none left out), by DAG id
    /// then state.
    fn run_counts(&self) -> Result<Vec<(DagId, RunState, u64)>, StoreError> {
        let mut counts: std::collections::BTreeMap<(DagId, &'static str), (RunState, u64)> =
            std::collections::BTreeMap::new();
        for run in self.runs(None)? {
            counts
                .entry((run.dag_id, run.state.as_str()))
                .or_insert((run.state, 0))
                .1 += 1;
        }
        Ok(counts
            .into_iter()
            .map(|((dag_id, _), (state, count))| (dag_id, state, count))
            .collect())
    }
    /// The newest run of one DAG of one type, by logical date.
    fn latest_run(
        &self,
        dag_id: &DagId,
        run_type: RunType,
    ) -> Result<Option<DagRunRecord>, StoreError>;
    /// The run of one DAG right before `logical_date` (the newest with an earlier logical
    /// date, of any type): the run `depends_on_past` looks at.
    fn previous_run(
        &self,
        dag_id: &DagId,
        logical_date: DateTime<Utc>,
    ) -> Result<Option<DagRunRecord>, StoreError>;
    /// The task instances of one run.
    fn task_instances(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
    ) -> Result<Vec<TaskInstanceRecord>, StoreError>;
    /// One page of one run's task instances, by task id then map index, with the number
    /// of instances in all.
    fn task_instances_page(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
        page: Page,
    ) -> Result<Paged<TaskInstanceRecord>, StoreError>;
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

/// Who claims queued instances: one worker process (or thread) of any machine.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerId(String);

impl WorkerId {
    /// A worker's id; unique among the workers sharing a store (host name and process id,
    /// for example).
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for WorkerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A queued instance a worker claimed: it is `running` in the store, its try number
/// increased, and the worker holds it until `lease_until` (extended by heartbeats).
#[derive(Clone, Debug, PartialEq)]
pub struct Claimed {
    /// The instance as recorded by the claim (state `running`, the new try, its start).
    pub record: TaskInstanceRecord,
    /// The worker holding it.
    pub worker: WorkerId,
    /// When the claim runs out unless the worker heartbeats.
    pub lease_until: DateTime<Utc>,
}

/// How a claimed try ended, as its worker reports it; the deciding side turns it into the
/// instance's next state (a retry, for example) when it reads it back.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// How the try ended: `success`, `failed`, `up_for_retry`, `up_for_reschedule` or
    /// `skipped` (a state `running` may become).
    pub state: TaskState,
    /// The try's error, if it failed.
    pub error: Option<String>,
    /// When the try ended.
    pub end: DateTime<Utc>,
    /// For `up_for_reschedule`: when the sensor asks to be poked again.
    pub reschedule_at: Option<DateTime<Utc>>,
    /// The XComs the try stored (`return_value` for its return value).
    pub xcoms: Vec<(String, StoredXCom)>,
    /// The log lines the try wrote, in order.
    pub logs: Vec<LogLine>,
}

/// A position in the sequence of reported outcomes; [`OutcomeCursor::START`] is before the
/// first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OutcomeCursor(pub i64);

impl OutcomeCursor {
    /// Before every outcome.
    pub const START: OutcomeCursor = OutcomeCursor(0);
}

/// An outcome as recorded by [`QueueStore::report`], with its place in the sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportedOutcome {
    /// Its position: reading on from here returns the outcomes after it.
    pub cursor: OutcomeCursor,
    /// The instance.
    pub key: TaskInstanceKey,
    /// The try that ended.
    pub try_number: u32,
    /// The worker that ran it.
    pub worker: WorkerId,
    /// How it ended.
    pub state: TaskState,
    /// Its error, if it failed.
    pub error: Option<String>,
    /// When it ended.
    pub end: DateTime<Utc>,
    /// For `up_for_reschedule`: when the next poke is due.
    pub reschedule_at: Option<DateTime<Utc>>,
}

/// Queued instances as a durable queue: any process sharing the store claims them, runs
/// them, and reports how each try ended; the deciding side follows the reports.
pub trait QueueStore: Send + Sync {
    /// Takes up to `limit` queued instances (of `queue`, or of any queue), highest
    /// `priority_weight` first, then the longest queued; each becomes `running` with its
    /// next try, held by `worker` until `now + lease`. Atomic: two workers never get the
    /// same instance.
    fn claim(
        &self,
        worker: &WorkerId,
        queue: Option<&str>,
        limit: usize,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<Claimed>, StoreError>;
    /// Extends to `now + lease` the claims `worker` still holds (running, lease not run
    /// out); returns how many.
    fn heartbeat(
        &self,
        worker: &WorkerId,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<usize, StoreError>;
    /// Records how a claimed try ended (with its XComs and logs, in one transaction) and
    /// releases the claim, if the claim still holds at `now`: the same worker and try, the
    /// lease not run out, the instance still `running`. Otherwise
    /// [`StoreError::ClaimLost`] and nothing is recorded. The instance stays `running`
    /// until the deciding side commits its next state.
    fn report(
        &self,
        claimed: &Claimed,
        outcome: &Outcome,
        now: DateTime<Utc>,
    ) -> Result<OutcomeCursor, StoreError>;
    /// Up to `limit` reported outcomes after `cursor`, in the order they were reported,
    /// and the cursor to read on from.
    fn outcomes_since(
        &self,
        cursor: OutcomeCursor,
        limit: usize,
    ) -> Result<(Vec<ReportedOutcome>, OutcomeCursor), StoreError>;
    /// Running instances whose claim ran out before `now` (their worker stopped
    /// heartbeating): the deciding side counts those tries as interrupted.
    fn expired_claims(&self, now: DateTime<Utc>) -> Result<Vec<TaskInstanceKey>, StoreError>;
}

/// One instance's request for pool slots (and a place under its DAG's
/// `max_active_tasks`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotRequest {
    /// The run of the instance that would run (`claim.dag` is its DAG).
    pub run_id: RunId,
    /// Its pool, slots and DAG limit (`claim.dag` is the DAG counted for
    /// `max_active_tasks`).
    pub claim: Claim,
}

/// What a [`Change::Start`] asks of the pools for its try (the run is the record's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotAsk {
    /// Who holds the slots if they are granted.
    pub owner: String,
    /// The pool, slots and DAG limit.
    pub claim: Claim,
    /// When the pools are asked (holds whose lease ended by then do not count).
    pub now: DateTime<Utc>,
    /// When the hold runs out unless renewed.
    pub until: DateTime<Utc>,
}

/// Slots given back: what `tasks` ended tries of one run held in one pool under `owner`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotRelease {
    /// The run's DAG.
    pub dag_id: DagId,
    /// The run.
    pub run_id: RunId,
    /// Who held them.
    pub owner: String,
    /// The pool.
    pub pool: String,
    /// Slots of the pool given back.
    pub slots: u32,
    /// Tries given back (each counted once under the DAG's `max_active_tasks`).
    pub tasks: u32,
}

/// Asset updates ([`Change::AssetUpdated`]) and how far each asset-scheduled DAG has
/// consumed them ([`Change::ConsumeAssets`]).
pub trait AssetStore: Send + Sync {
    /// The updates of `uri` recorded after event `after` (0: all), oldest first.
    fn asset_events(&self, uri: &str, after: i64) -> Result<Vec<AssetEvent>, StoreError>;
    /// Per asset URI, the last event `dag_id` consumed.
    fn consumed_assets(&self, dag_id: &DagId) -> Result<Vec<(String, i64)>, StoreError>;
}

/// Pool slots and `max_active_tasks` counted in the store, so that processes sharing one
/// database never oversubscribe a pool.
///
/// The store keeps a count per run, pool and owner (a process), not a row per instance:
/// a try that ends hands its slots straight to the next instance of the same claim
/// without asking the store, and a batch gives back many tries at once. A count lasts
/// until released or until its lease runs out, so the holds of a process that died stop
/// counting once their lease ends; whoever takes a run over forgets what others held
/// for it ([`SlotStore::forget_run_slots`]), and deleting a run gives its slots back.
pub trait SlotStore: Send + Sync {
    /// Answers every request in one transaction, in order (earlier requests first take
    /// what is free), and counts each [`Grant::Granted`] under `owner`. Pool sizes are
    /// the store's pools (`default_pool` has [`crate::pools::DEFAULT_POOL_SLOTS`] unless
    /// redefined). A request for a run that does not exist fails the call, holding
    /// nothing.
    fn acquire_slots(
        &self,
        owner: &str,
        requests: &[SlotRequest],
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<Vec<Grant>, StoreError>;
    /// Gives back what `release` says (counts never go below zero).
    fn release_slots(&self, release: &SlotRelease) -> Result<(), StoreError>;
    /// Drops the holds of one run: those of `owner`, or of every owner when `None` (the
    /// caller has just taken the run over and started nothing yet, so none of its tries
    /// runs).
    fn forget_run_slots(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
        owner: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Extends to `now + ttl` the live holds of `owner`; returns how many counts it
    /// renewed. A hold whose lease ran out is not renewed: its slots may be someone
    /// else's by now.
    fn renew_slots(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<usize, StoreError>;
    /// Slots held (by live holds) per pool at `now`, by pool name.
    fn slots_in_use(&self, now: DateTime<Utc>) -> Result<Vec<(String, u32)>, StoreError>;
}

/// The live holds counted per pool and DAG, while one call decides its grants.
#[derive(Default)]
struct SlotTally {
    sizes: std::collections::HashMap<String, u32>,
    used: std::collections::HashMap<String, u32>,
    dag_running: std::collections::HashMap<DagId, u32>,
}

impl SlotTally {
    /// The grant for `claim`, counted in if granted (the order of checks is the
    /// in-process registry's).
    fn grant(&mut self, claim: &Claim) -> Grant {
        let Some(&size) = self.sizes.get(&claim.pool) else {
            return Grant::UnknownPool;
        };
        if claim.slots > size {
            return Grant::TooBig { size };
        }
        let used = self.used.get(&claim.pool).copied().unwrap_or(0);
        if self.dag_running.get(&claim.dag).copied().unwrap_or(0) >= claim.dag_limit {
            return Grant::DagFull;
        }
        if used.saturating_add(claim.slots) > size {
            return Grant::PoolFull;
        }
        *self.used.entry(claim.pool.clone()).or_default() += claim.slots;
        *self.dag_running.entry(claim.dag.clone()).or_default() += 1;
        Grant::Granted
    }
}

/// Adds a granted `claim` of `run_id` to `taken`, which holds one count per run, pool
/// and owner whatever the number of instances.
fn count_taken(taken: &mut Vec<SlotRelease>, owner: &str, run_id: &RunId, claim: &Claim) {
    match taken.iter_mut().find(|t| {
        t.pool == claim.pool && t.run_id == *run_id && t.dag_id == claim.dag && t.owner == owner
    }) {
        Some(t) => {
            t.slots += claim.slots;
            t.tasks += 1;
        }
        None => taken.push(SlotRelease {
            dag_id: claim.dag.clone(),
            run_id: run_id.clone(),
            owner: owner.to_string(),
            pool: claim.pool.clone(),
            slots: claim.slots,
            tasks: 1,
        }),
    }
}

/// The answer to [`RunLeaseStore::acquire_run_lease`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseGrant {
    /// The caller owns the run until `now + ttl`; renew before then.
    Granted,
    /// Another owner holds a live lease on the run.
    HeldBy {
        /// Who holds it.
        owner: String,
        /// Until when, unless renewed.
        until: DateTime<Utc>,
    },
    /// The DAG has `limit` runs with a live lease already (`max_active_runs`).
    TooManyActive {
        /// Runs of the DAG with a live lease.
        active: u32,
        /// The DAG's `max_active_runs`.
        limit: u32,
    },
}

/// Who executes a run: one owner at a time, under a lease that any process sharing the
/// store respects (and takes over once it runs out). Counting live leases per DAG makes
/// `max_active_runs` hold across processes.
pub trait RunLeaseStore: Send + Sync {
    /// Takes (or renews, for its owner) the run's lease until `now + ttl`. Refused while
    /// another owner's lease is live, or when `max_active_runs` other runs of the DAG have
    /// a live lease; an unknown run is [`StoreError::NoSuchRun`].
    fn acquire_run_lease(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
        owner: &str,
        ttl: Duration,
        now: DateTime<Utc>,
        max_active_runs: Option<u32>,
    ) -> Result<LeaseGrant, StoreError>;
    /// Extends `owner`'s live lease to `now + ttl`; `false` when the lease ran out or is
    /// someone else's (the run is no longer the caller's: stop executing it).
    fn renew_run_lease(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
        owner: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Gives up `owner`'s lease on the run; `false` if it held none.
    fn release_run_lease(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
        owner: &str,
    ) -> Result<bool, StoreError>;
}

/// `now + lease`, saturating.
pub(crate) fn lease_end(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    chrono::TimeDelta::from_std(lease)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Checks an outcome's state: one a running try may end in.
fn check_outcome(claimed: &Claimed, outcome: &Outcome) -> Result<(), StoreError> {
    if outcome.state != TaskState::Running && TaskState::Running.can_become(outcome.state) {
        Ok(())
    } else {
        Err(StoreError::IllegalTransition {
            key: claimed.record.key.clone(),
            from: TaskState::Running,
            to: outcome.state,
        })
    }
}

/// Everything the runtime needs from a store.
pub trait Store:
    RunStore
    + AssetStore
    + XComStore
    + DagStore
    + LogStore
    + PoolStore
    + RescheduleStore
    + QueueStore
    + SlotStore
    + RunLeaseStore
{
}

impl<T> Store for T where
    T: RunStore
        + AssetStore
        + XComStore
        + DagStore
        + LogStore
        + PoolStore
        + RescheduleStore
        + QueueStore
        + SlotStore
        + RunLeaseStore
{
}

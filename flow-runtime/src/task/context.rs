//! The context a task may take as `&TaskContext`: who and when it is, XCom by key, and the
//! run's artifacts.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use super::error::TaskError;
use crate::ids::{DagId, MapIndex, RunId, RunType, TaskId, TaskInstanceKey};
use crate::objects::{Artifacts, ObjectError, ObjectPath, Objects};
use crate::time::timetable::DataInterval;
use crate::xcom::ports::{ExternalTaskState, Nothing, ReadError, RunRead, RunTrigger, XComRead};
use crate::xcom::{RETURN_VALUE, StoredXCom, XComBlob, XComValue};

/// Facts shared by every task instance of one DAG run.
#[derive(Clone)]
pub(crate) struct RunScope {
    pub(crate) dag_id: DagId,
    pub(crate) run_id: RunId,
    pub(crate) run_type: RunType,
    pub(crate) logical_date: DateTime<Utc>,
    pub(crate) data_interval: DataInterval,
    /// The data interval of the run the DAG's schedule has after this one, if any.
    pub(crate) next_data_interval: Option<DataInterval>,
    pub(crate) params: Arc<serde_json::Map<String, serde_json::Value>>,
    pub(crate) xcoms: Arc<dyn XComRead>,
    pub(crate) runs: Arc<dyn RunRead>,
    /// Starts runs of other DAGs.
    pub(crate) triggers: Arc<dyn RunTrigger>,
    /// Where large XComs and artifacts live, if the executor has a store for them.
    pub(crate) objects: Option<Objects>,
}

/// What a running task knows about itself, and its door to XCom by key.
///
/// Values pushed with [`TaskContext::xcom_push`] are stored together with the try's success,
/// atomically: a try that fails leaves none of its pushes behind.
///
/// Cloning is cheap and shares the pushed values.
#[derive(Clone)]
pub struct TaskContext {
    run: Arc<RunScope>,
    task_id: TaskId,
    map_index: MapIndex,
    try_number: u32,
    pushed: Arc<Mutex<Vec<(String, XComBlob)>>>,
    pokes: PokeHistory,
}

impl TaskContext {
    pub(crate) fn new(
        run: Arc<RunScope>,
        task_id: TaskId,
        map_index: MapIndex,
        try_number: u32,
    ) -> Self {
        Self {
            run,
            task_id,
            map_index,
            try_number,
            pushed: Arc::default(),
            pokes: PokeHistory::default(),
        }
    }

    /// The context of a sensor's poke in `reschedule` mode, knowing the earlier pokes of
    /// its try.
    pub(crate) fn with_pokes(mut self, pokes: PokeHistory) -> Self {
        self.pokes = pokes;
        self
    }

    /// The earlier pokes of this try (none outside `reschedule` mode).
    pub(crate) fn pokes(&self) -> PokeHistory {
        self.pokes
    }

    /// Read access to the runs and task instances of the store the executor records
    /// into, for tasks that depend on other DAGs (see
    /// [`external_task`](super::sensor::external_task)).
    pub fn runs(&self) -> RunReader {
        RunReader(self.run.runs.clone())
    }

    /// Starts and watches runs of other DAGs (see
    /// [`TriggerDagRun`](crate::operators::TriggerDagRun)).
    pub(crate) fn triggers(&self) -> &dyn RunTrigger {
        self.run.triggers.as_ref()
    }

    /// The DAG's id.
    pub fn dag_id(&self) -> &DagId {
        &self.run.dag_id
    }

    /// This task's id.
    pub fn task_id(&self) -> &TaskId {
        &self.task_id
    }

    /// The run's id.
    pub fn run_id(&self) -> &RunId {
        &self.run.run_id
    }

    /// The run's logical date (the start of its data interval).
    pub fn logical_date(&self) -> DateTime<Utc> {
        self.run.logical_date
    }

    /// The logical date as `YYYY-MM-DD` (Airflow's `ds`).
    pub fn ds(&self) -> String {
        self.run.logical_date.format("%Y-%m-%d").to_string()
    }

    /// The logical date as `YYYYMMDD` (Airflow's `ds_nodash`).
    pub fn ds_nodash(&self) -> String {
        self.run.logical_date.format("%Y%m%d").to_string()
    }

    /// The start of the run's data interval.
    pub fn data_interval_start(&self) -> DateTime<Utc> {
        self.run.data_interval.start
    }

    /// The end of the run's data interval.
    pub fn data_interval_end(&self) -> DateTime<Utc> {
        self.run.data_interval.end
    }

    /// How the run came about: `manual`, `scheduled` or `backfill`.
    pub fn run_type(&self) -> RunType {
        self.run.run_type
    }

    /// The data interval of the run that the DAG's schedule has after this one (whether
    /// or not it has run), if the schedule has one: none for a manual schedule, after
    /// `@once`, or past `end_date`.
    pub fn next_data_interval(&self) -> Option<DataInterval> {
        self.run.next_data_interval
    }

    /// The run's params (the trigger's conf over the DAG's defaults), as JSON.
    pub fn params(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.run.params
    }

    /// The param `name`, decoded as `T`; an undeclared name or another type is an error
    /// naming both.
    pub fn param<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T, TaskError> {
        let value = self.run.params.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.run.params.keys().map(String::as_str).collect();
            TaskError::Failed(format!(
                "no param `{name}` in this run; its params: {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ))
        })?;
        serde_json::from_value(value.clone()).map_err(|e| {
            TaskError::Failed(format!(
                "param `{name}` = {value} is not a `{}`: {e}",
                std::any::type_name::<T>()
            ))
        })
    }

    /// The position of this mapped instance, or `None` when the task is not mapped.
    pub fn map_index(&self) -> Option<u32> {
        self.map_index.get()
    }

    /// The try being run, starting at 1.
    pub fn try_number(&self) -> u32 {
        self.try_number
    }

    /// The key addressing this task instance.
    pub fn key(&self) -> TaskInstanceKey {
        TaskInstanceKey {
            dag_id: self.run.dag_id.clone(),
            run_id: self.run.run_id.clone(),
            task_id: self.task_id.clone(),
            map_index: self.map_index,
        }
    }

    /// Stores `value` under `key` for other tasks of this run to pull; pushing a key twice
    /// keeps the last value. `return_value` is reserved for the task's return value.
    pub fn xcom_push<T: XComValue>(&self, key: &str, value: &T) -> Result<(), TaskError> {
        if key == RETURN_VALUE {
            return Err(TaskError::XCom(format!(
                "the XCom key `{RETURN_VALUE}` is reserved for the task's return value; push under another key"
            )));
        }
        let blob = XComBlob::encode(value)
            .map_err(|e| TaskError::XCom(format!("XCom `{key}` does not serialize: {e}")))?;
        let mut pushed = self
            .pushed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        pushed.retain(|(k, _)| k != key);
        pushed.push((key.to_string(), blob));
        Ok(())
    }

    /// The run's artifacts: bytes and files stored by key (models, parquet), shared by the
    /// run's tasks and deleted with the run. Sync tasks use its plain methods, async tasks
    /// its `_async` ones.
    ///
    /// ```
    /// use flow_runtime::prelude::*;
    /// let ctx = TaskContext::for_test("ml", "train");
    /// ctx.artifacts().put("model.bin", vec![1, 2, 3])?;
    /// assert_eq!(ctx.artifacts().get("model.bin")?, [1, 2, 3]);
    /// # Ok::<(), flow_runtime::objects::ObjectError>(())
    /// ```
    pub fn artifacts(&self) -> Artifacts {
        Artifacts::new(
            self.run.objects.clone(),
            self.run.dag_id.clone(),
            self.run.run_id.clone(),
        )
    }

    /// The object a URL or local path names (`s3://bucket/raw/digits.csv`,
    /// `/srv/raw/digits.csv`), to read and write wherever it lives. An S3 URL uses the
    /// settings of the run's object store when that is S3 too (endpoint, credentials),
    /// else the environment's.
    ///
    /// ```
    /// use flow_runtime::prelude::*;
    /// let dir = tempfile::tempdir().unwrap();
    /// let raw = dir.path().to_str().unwrap();
    /// let ctx = TaskContext::for_test("ml", "land").with_param("raw_dir", raw);
    /// let raw_dir: String = ctx.param("raw_dir")?;
    /// let csv = ctx.object_path(&raw_dir)?.join("digits.csv")?;
    /// csv.write(b"pixel_0,label\n".to_vec())?;
    /// assert!(csv.exists()?);
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn object_path(&self, url_or_path: &str) -> Result<ObjectPath, ObjectError> {
        ObjectPath::resolve(url_or_path, self.run.objects.as_ref())
    }

    /// Pulls the XCom `key` that task `task_id` pushed in this run (use
    /// [`RETURN_VALUE`] for its return value), failing clearly when there is none. A value
    /// kept in the object store is downloaded, blocking the calling thread meanwhile.
    pub fn xcom_pull<T: XComValue>(&self, task_id: &str, key: &str) -> Result<T, TaskError> {
        self.try_xcom_pull(task_id, key)?.ok_or_else(|| {
            TaskError::XCom(format!(
                "no XCom `{key}` from task `{task_id}` in run `{}`; check that `{task_id}` pushes it and runs before `{}` (order them with `>>`)",
                self.run.run_id, self.task_id
            ))
        })
    }

    /// Like [`TaskContext::xcom_pull`], but `Ok(None)` when the value does not exist.
    pub fn try_xcom_pull<T: XComValue>(
        &self,
        task_id: &str,
        key: &str,
    ) -> Result<Option<T>, TaskError> {
        let blob = if task_id == self.task_id.as_str() {
            let pushed = self
                .pushed
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            pushed
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, b)| b.clone())
        } else {
            let producer = TaskInstanceKey {
                dag_id: self.run.dag_id.clone(),
                run_id: self.run.run_id.clone(),
                task_id: TaskId::new(task_id),
                map_index: MapIndex::UNMAPPED,
            };
            let unreadable = |e: &dyn std::fmt::Display| {
                TaskError::XCom(format!("cannot read XCom `{key}` of `{task_id}`: {e}"))
            };
            match self
                .run
                .xcoms
                .get_xcom(&producer, key)
                .map_err(|e| unreadable(&e))?
            {
                Some(stored) => Some(
                    crate::objects::load_blocking(self.run.objects.as_ref(), &stored)
                        .map_err(|e| unreadable(&e))?,
                ),
                None => None,
            }
        };
        blob.map(|blob| {
            blob.decode().map_err(|e| {
                TaskError::XCom(format!(
                    "XCom `{key}` of task `{task_id}` was stored as `{}` and does not decode as `{}`: {e}",
                    blob.type_name(),
                    std::any::type_name::<T>()
                ))
            })
        })
        .transpose()
    }

    /// The run's object store, if the executor has one.
    pub(crate) fn objects(&self) -> Option<&Objects> {
        self.run.objects.as_ref()
    }

    /// Takes the values pushed during this try, to be stored with its outcome.
    pub(crate) fn take_pushed(&self) -> Vec<(String, XComBlob)> {
        std::mem::take(
            &mut *self
                .pushed
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }
}

impl TaskContext {
    /// A context for calling a task function in a unit test: logical date now, try 1, an
    /// empty in-memory XCom store and in-memory artifacts. Values the task pushes can be read back with
    /// [`TaskContext::try_xcom_pull`] under its own task id.
    ///
    /// ```
    /// use flow_runtime::prelude::*;
    /// let ctx = TaskContext::for_test("etl", "extract");
    /// ctx.xcom_push("rows", &42_u64).unwrap();
    /// assert_eq!(ctx.xcom_pull::<u64>("extract", "rows").unwrap(), 42);
    /// ```
    pub fn for_test(dag_id: &str, task_id: &str) -> Self {
        let now = Utc::now();
        let scope = RunScope {
            dag_id: DagId::new(dag_id),
            run_id: RunId::new("test"),
            run_type: RunType::Manual,
            logical_date: now,
            data_interval: DataInterval::exact(now),
            next_data_interval: None,
            params: Arc::default(),
            xcoms: Arc::new(Nothing),
            runs: Arc::new(Nothing),
            triggers: Arc::new(Nothing),
            objects: Some(Objects::in_memory()),
        };
        Self::new(Arc::new(scope), TaskId::new(task_id), MapIndex::UNMAPPED, 1)
    }
}

/// Reads runs and task instances of the store a task's executor records into; it cannot
/// change them.
#[derive(Clone)]
pub struct RunReader(Arc<dyn RunRead>);

impl RunReader {
    /// The state of `task_id` in each run of `dag_id` at `logical_date`, newest run first;
    /// runs that hold no instance of the task are left out.
    pub fn task_states_at(
        &self,
        dag_id: &DagId,
        task_id: &TaskId,
        logical_date: DateTime<Utc>,
    ) -> Result<Vec<ExternalTaskState>, ReadError> {
        self.0.task_states_at(dag_id, task_id, logical_date)
    }
}

/// Builders that give a test context what a real run would: params and upstream XComs.
impl TaskContext {
    /// Sets the run param `name`, as a trigger's conf would, so a task under test can read
    /// it with [`TaskContext::param`].
    ///
    /// ```
    /// use flow_runtime::prelude::*;
    /// let ctx = TaskContext::for_test("training", "evaluate").with_param("threshold", 0.95);
    /// assert_eq!(ctx.param::<f64>("threshold").unwrap(), 0.95);
    /// ```
    pub fn with_param(self, name: &str, value: impl Into<serde_json::Value>) -> Self {
        let mut run = RunScope::clone(&self.run);
        Arc::make_mut(&mut run.params).insert(name.to_string(), value.into());
        Self {
            run: Arc::new(run),
            ..self
        }
    }

    /// Makes `value` the XCom `key` that task `task_id` pushed in this run, so the task
    /// under test can [`xcom_pull`](TaskContext::xcom_pull) it; an error when the value
    /// does not serialize.
    ///
    /// ```
    /// use flow_runtime::prelude::*;
    /// let ctx = TaskContext::for_test("etl", "report")
    ///     .with_xcom("extract", "rows", &42_u64)
    ///     .unwrap();
    /// assert_eq!(ctx.xcom_pull::<u64>("extract", "rows").unwrap(), 42);
    /// ```
    pub fn with_xcom<T: XComValue>(
        self,
        task_id: &str,
        key: &str,
        value: &T,
    ) -> Result<Self, TaskError> {
        let blob = XComBlob::encode(value)
            .map_err(|e| TaskError::XCom(format!("XCom `{key}` does not serialize: {e}")))?;
        let mut run = RunScope::clone(&self.run);
        run.xcoms = Arc::new(SeededXCom {
            producer: TaskInstanceKey {
                dag_id: run.dag_id.clone(),
                run_id: run.run_id.clone(),
                task_id: TaskId::new(task_id),
                map_index: MapIndex::UNMAPPED,
            },
            key: key.to_string(),
            blob,
            rest: run.xcoms,
        });
        Ok(Self {
            run: Arc::new(run),
            ..self
        })
    }
}

/// One XCom set by [`TaskContext::with_xcom`], in front of the store that holds the rest.
struct SeededXCom {
    producer: TaskInstanceKey,
    key: String,
    blob: XComBlob,
    rest: Arc<dyn XComRead>,
}

impl XComRead for SeededXCom {
    fn get_xcom(&self, key: &TaskInstanceKey, name: &str) -> Result<Option<StoredXCom>, ReadError> {
        if *key == self.producer && name == self.key {
            Ok(Some(StoredXCom::Inline(self.blob.clone())))
        } else {
            self.rest.get_xcom(key, name)
        }
    }
}

/// What a sensor in reschedule mode knows of the earlier pokes of its try, from the
/// store's reschedule records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PokeHistory {
    /// When the try's first poke started, if one answered "not yet".
    pub(crate) first: Option<DateTime<Utc>>,
    /// How many pokes answered "not yet".
    pub(crate) not_yet: u32,
}

impl PokeHistory {
    /// The history after one more "not yet" from a poke that started at `start`.
    pub(crate) fn and_poke(self, start: DateTime<Utc>) -> Self {
        Self {
            first: self.first.or(Some(start)),
            not_yet: self.not_yet + 1,
        }
    }
}

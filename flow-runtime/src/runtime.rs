//! The public facade: an [`Executor`] runs DAG runs against a store (create, run, resume,
//! test one task, delete), with bounded parallelism, pools, an object store and events.
//!
//! Behind it, deciding and running are apart: the scheduler's coordinating loop
//! ([`crate::scheduler`]) feeds a pure per-run tracker, commits what it decides, and
//! offers the instances it starts to a [`TaskExecutor`](crate::executor) kind: a tokio
//! pool, or one try at a time ([`Executor::sequential`]).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::context::{RunScope, TaskContext};
use crate::dag::Dag;
use crate::error::{RunError, TaskError};
use crate::events::{Events, TaskEvent};
use crate::executor::{LocalPool, Sequential, TaskExecutor, call};
use crate::ids::{DagId, MapIndex, RunId, TaskId, TaskInstanceKey};
use crate::objects::Objects;
use crate::scheduler::run_loop::RunLoop;
use crate::state::{RunState, TaskState};
use crate::store::{DagRunRecord, MemoryStore, RunType, Store, XComStore};
use crate::task::{InputSource, Inputs};
use crate::timetable::DataInterval;
use crate::xcom::{RETURN_VALUE, XComBlob, XComValue};

/// What a new run is: its type, data interval and resolved params.
#[derive(Clone, Debug)]
pub struct RunRequest {
    /// How the run comes about.
    pub run_type: RunType,
    /// Its logical date: the interval's start for scheduled and backfill runs, the date
    /// asked for by a manual trigger (whose data interval is inferred, as in Airflow).
    pub logical_date: DateTime<Utc>,
    /// Its data interval; the logical date is the start.
    pub interval: DataInterval,
    /// Its params, resolved against the DAG's declarations.
    pub params: serde_json::Map<String, serde_json::Value>,
}

impl RunRequest {
    /// A manual run at `logical_date`, its data interval inferred from the DAG's
    /// timetable as Airflow does, and `conf` checked against the DAG's params.
    pub fn manual(
        dag: &Dag,
        logical_date: DateTime<Utc>,
        conf: Option<&serde_json::Value>,
    ) -> Result<Self, RunError> {
        Ok(Self {
            run_type: RunType::Manual,
            logical_date,
            interval: dag.timetable().manual_interval(logical_date),
            params: dag.params().resolve(conf)?,
        })
    }

    /// A run of `run_type` for a timetable interval, with the DAG's default params.
    pub fn for_interval(
        dag: &Dag,
        run_type: RunType,
        interval: DataInterval,
    ) -> Result<Self, RunError> {
        Ok(Self {
            run_type,
            logical_date: interval.start,
            interval,
            params: dag.params().resolve(None)?,
        })
    }
}

/// Runs DAG runs against a store, with bounded parallelism.
#[derive(Clone)]
pub struct Executor {
    store: Arc<dyn Store>,
    parallelism: usize,
    sequential: bool,
    events: Events,
    stop: Option<tokio::sync::watch::Receiver<bool>>,
    grace: Duration,
    pools: Arc<crate::pools::PoolRegistry>,
    max_map_length: usize,
    /// Where tasks' `email` alerts go; `None` reads `FLOW_SMTP_*` when one is sent.
    #[cfg(feature = "email")]
    smtp: Option<Arc<crate::notify::SmtpConfig>>,
    objects: Option<Objects>,
}

/// How one task instance ended.
#[derive(Clone, Debug)]
pub struct TaskSummary {
    /// The task.
    pub task_id: TaskId,
    /// The instance's map index, for an instance of a mapped task.
    pub map_index: Option<u32>,
    /// Its final state.
    pub state: TaskState,
    /// Tries made (0 if it never ran).
    pub tries: u32,
    /// Wall time of its last try in this process, if it ran here.
    pub duration: Option<Duration>,
    /// The error of its last failed try.
    pub error: Option<String>,
}

/// How a DAG run ended.
#[derive(Clone)]
pub struct RunSummary {
    /// The run's id.
    pub run_id: RunId,
    /// Its logical date.
    pub logical_date: DateTime<Utc>,
    /// Its final state.
    pub state: RunState,
    /// Wall time of this execution of the run.
    pub duration: Duration,
    /// Every task instance, in the DAG's task order.
    pub tasks: Vec<TaskSummary>,
    pub(crate) dag_id: DagId,
    xcoms: Arc<dyn XComStore>,
    objects: Option<Objects>,
}

impl std::fmt::Debug for RunSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunSummary")
            .field("run_id", &self.run_id)
            .field("state", &self.state)
            .field("tasks", &self.tasks)
            .finish_non_exhaustive()
    }
}

impl RunSummary {
    /// The summary of one task (of its first instance, for a mapped task).
    pub fn task(&self, task_id: &str) -> Option<&TaskSummary> {
        self.tasks.iter().find(|t| t.task_id.as_str() == task_id)
    }

    /// The instances of a mapped task, in map order (empty for an unmapped task).
    pub fn mapped(&self, task_id: &str) -> Vec<&TaskSummary> {
        self.tasks
            .iter()
            .filter(|t| t.task_id.as_str() == task_id && t.map_index.is_some())
            .collect()
    }

    /// The return value of a task, decoded from the store; for a mapped task, the `Vec`
    /// of its successful instances' results in map order (what a downstream task gets).
    pub fn output<T: XComValue>(&self, task_id: &str) -> Result<T, TaskError> {
        let instances = self.mapped(task_id);
        if instances.is_empty() {
            return self.xcom(task_id, RETURN_VALUE);
        }
        let mut outputs = Vec::with_capacity(instances.len());
        let mut element_type = String::new();
        for instance in instances.iter().filter(|t| t.state == TaskState::Success) {
            let key = self.key(task_id, MapIndex::mapped(instance.map_index.unwrap_or(0)));
            let blob = self.read(&key, RETURN_VALUE)?;
            element_type = blob.type_name().to_string();
            outputs.push(blob);
        }
        crate::mapping::collect(&outputs, &element_type)
            .and_then(|list| list.decode())
            .map_err(|e| TaskError::XCom(format!("the results of `{task_id}`: {e}")))
    }

    fn key(&self, task_id: &str, map_index: MapIndex) -> TaskInstanceKey {
        TaskInstanceKey {
            dag_id: self.dag_id.clone(),
            run_id: self.run_id.clone(),
            task_id: TaskId::new(task_id),
            map_index,
        }
    }

    /// An XCom of an instance, fetched from the object store when it is kept there.
    fn read(&self, key: &TaskInstanceKey, name: &str) -> Result<XComBlob, TaskError> {
        let stored = self
            .xcoms
            .get_xcom(key, name)
            .map_err(|e| TaskError::XCom(e.to_string()))?
            .ok_or_else(|| {
                TaskError::XCom(format!(
                    "no XCom `{name}` from `{}` in run `{}`",
                    key.task_id, self.run_id
                ))
            })?;
        crate::objects::load_blocking(self.objects.as_ref(), &stored)
            .map_err(|e| TaskError::XCom(format!("XCom `{name}` of `{}`: {e}", key.task_id)))
    }

    /// An XCom of a task by key, decoded from the store.
    pub fn xcom<T: XComValue>(&self, task_id: &str, key: &str) -> Result<T, TaskError> {
        let blob = self.read(&self.key(task_id, MapIndex::UNMAPPED), key)?;
        blob.decode()
            .map_err(|e| TaskError::XCom(format!("XCom `{key}` of `{task_id}`: {e}")))
    }
}

impl Executor {
    /// An executor over `store`, running as many tasks at once as there are cores. It has no
    /// object store: every XCom stays in `store` whatever its size, and artifacts are
    /// unavailable until [`Executor::object_store`] gives it one.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            parallelism: std::thread::available_parallelism().map_or(2, usize::from),
            sequential: false,
            events: Events::default(),
            stop: None,
            grace: Duration::from_secs(30),
            pools: Arc::default(),
            max_map_length: crate::mapping::DEFAULT_MAX_MAP_LENGTH,
            #[cfg(feature = "email")]
            smtp: None,
            objects: None,
        }
    }

    /// The most instances one mapped task may expand to (Airflow's `max_map_length`,
    /// default 100,000); a longer expansion fails the task, naming the length and the limit.
    pub fn max_map_length(mut self, limit: usize) -> Self {
        self.max_map_length = limit;
        self
    }

    /// Sends tasks' `email` alerts through `config` instead of the server named by the
    /// `FLOW_SMTP_*` variables (read when an alert is sent).
    #[cfg(feature = "email")]
    pub fn smtp(mut self, config: crate::notify::SmtpConfig) -> Self {
        self.smtp = Some(Arc::new(config));
        self
    }

    /// Keeps XCom values larger than the store's threshold, and the runs' artifacts, in
    /// `objects` (see [`crate::objects::ObjectStoreConfig`]).
    pub fn object_store(mut self, objects: Objects) -> Self {
        self.objects = Some(objects);
        self
    }

    /// The object store, if the executor has one.
    pub fn objects(&self) -> Option<&Objects> {
        self.objects.as_ref()
    }

    /// Deletes a run's history: its objects (offloaded XComs, artifacts) first, then its
    /// records (task instances, tries, XComs, logs), so a failure leaves the run listed and
    /// the deletion can be repeated. Returns how many objects were deleted. The caller must
    /// make sure the run is not being executed (the CLI holds the run's lock).
    pub async fn delete_run(&self, dag_id: &DagId, run_id: &RunId) -> Result<usize, RunError> {
        if self.store.run(dag_id, run_id)?.is_none() {
            return Err(RunError::NoSuchRun {
                dag_id: dag_id.clone(),
                run_id: run_id.clone(),
            });
        }
        let deleted = match &self.objects {
            Some(objects) => objects.delete_run(dag_id, run_id).await?,
            None => 0,
        };
        self.store.delete_run(dag_id, run_id)?;
        Ok(deleted)
    }

    /// Stops runs gracefully when `stop` turns true: no task starts any more, running
    /// tasks get `grace` to finish, then the run returns in state `running` (resumable).
    pub fn stop_on(mut self, stop: tokio::sync::watch::Receiver<bool>, grace: Duration) -> Self {
        self.stop = Some(stop);
        self.grace = grace;
        self
    }

    /// The most task instances running at once (at least 1; 1 runs tasks one by one, in
    /// topological order, which helps debugging).
    pub fn parallelism(mut self, parallelism: usize) -> Self {
        self.parallelism = parallelism.max(1);
        self
    }

    /// Runs one try at a time on the coordinating loop's own task (the sequential
    /// executor), in topological order: for debugging, and for tests that want one order.
    pub fn sequential(mut self) -> Self {
        self.sequential = true;
        self
    }

    /// Calls `observer` on every task state change, from the coordinating loop, in order
    /// and before the change is durable (see [`Events::observe`]).
    pub fn on_event(mut self, observer: impl Fn(&TaskEvent) + Send + Sync + 'static) -> Self {
        self.events.observe(observer);
        self
    }

    /// The events of the runs this executor runs: subscribe for a live stream.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// The executor kind a run uses.
    fn task_executor(&self) -> Box<dyn TaskExecutor> {
        if self.sequential || self.parallelism == 1 {
            Box::new(Sequential::new())
        } else {
            Box::new(LocalPool::new(self.parallelism))
        }
    }

    pub(crate) fn max_map_length_limit(&self) -> usize {
        self.max_map_length
    }

    #[cfg(feature = "email")]
    pub(crate) fn smtp_config(&self) -> Option<Arc<crate::notify::SmtpConfig>> {
        self.smtp.clone()
    }

    pub(crate) fn pool_registry(&self) -> &crate::pools::PoolRegistry {
        &self.pools
    }

    pub(crate) fn stop_signal(&self) -> Option<tokio::sync::watch::Receiver<bool>> {
        self.stop.clone()
    }

    pub(crate) fn grace(&self) -> Duration {
        self.grace
    }

    /// The summary of a run this executor ran.
    pub(crate) fn summary(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
        logical_date: DateTime<Utc>,
        state: RunState,
        duration: Duration,
        tasks: Vec<TaskSummary>,
    ) -> RunSummary {
        RunSummary {
            run_id: run_id.clone(),
            logical_date,
            state,
            duration,
            tasks,
            dag_id: dag_id.clone(),
            xcoms: self.store.clone() as Arc<dyn XComStore>,
            objects: self.objects.clone(),
        }
    }

    /// The store this executor records into.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The id of the manual run of a logical date, as Airflow names it.
    pub fn manual_run_id(logical_date: DateTime<Utc>) -> RunId {
        Self::run_id(RunType::Manual, logical_date)
    }

    /// Airflow's run id: `{run_type}__{logical date}`.
    pub fn run_id(run_type: RunType, logical_date: DateTime<Utc>) -> RunId {
        RunId::new(format!(
            "{}__{}",
            run_type.as_str(),
            logical_date.to_rfc3339()
        ))
    }

    /// Records a new run of `dag` (state `queued`) without running it; its id is
    /// [`Executor::run_id`] of its type and logical date.
    pub fn create_run(&self, dag: &Dag, request: RunRequest) -> Result<DagRunRecord, RunError> {
        self.store.record_dag(dag.id(), dag.fingerprint())?;
        let logical_date = request.logical_date;
        let run = DagRunRecord {
            dag_id: dag.id().clone(),
            run_id: Self::run_id(request.run_type, logical_date),
            run_type: request.run_type,
            logical_date,
            state: RunState::Queued,
            start: None,
            end: None,
            fingerprint: dag.fingerprint().to_string(),
            data_interval_start: request.interval.start,
            data_interval_end: request.interval.end,
            conf: serde_json::Value::Object(request.params),
        };
        self.store.create_run(&run).map_err(|e| match e {
            crate::store::StoreError::RunExists { dag_id, run_id } => {
                RunError::RunExists { dag_id, run_id }
            }
            e => RunError::Store(e),
        })?;
        Ok(run)
    }

    /// Creates a manual run of `dag` for `logical_date` (with the DAG's default params)
    /// and runs it to the end.
    pub async fn run(
        &self,
        dag: &Dag,
        logical_date: DateTime<Utc>,
    ) -> Result<RunSummary, RunError> {
        self.run_request(dag, RunRequest::manual(dag, logical_date, None)?)
            .await
    }

    /// Creates the run `request` describes and runs it to the end.
    pub async fn run_request(
        &self,
        dag: &Dag,
        request: RunRequest,
    ) -> Result<RunSummary, RunError> {
        let run = self.create_run(dag, request)?;
        RunLoop::new(self, dag, &run, self.task_executor())
            .start(Vec::new())
            .await
    }

    /// Continues a run that has not finished (after a crash, or after `tasks clear`):
    /// succeeded tasks are kept, tries that were running when their process died count
    /// as failed tries and are retried under their retry policy, and the rest runs.
    pub async fn resume(&self, dag: &Dag, run_id: &RunId) -> Result<RunSummary, RunError> {
        let run = self
            .store
            .run(dag.id(), run_id)?
            .ok_or_else(|| RunError::NoSuchRun {
                dag_id: dag.id().clone(),
                run_id: run_id.clone(),
            })?;
        if run.state.is_finished() {
            return Err(RunError::RunFinished {
                run_id: run_id.clone(),
                state: run.state,
            });
        }
        if run.fingerprint != dag.fingerprint() {
            return Err(RunError::ShapeChanged {
                dag_id: dag.id().clone(),
                run_id: run_id.clone(),
            });
        }
        let stored = self.store.task_instances(dag.id(), run_id)?;
        RunLoop::new(self, dag, &run, self.task_executor())
            .start(stored)
            .await
    }

    /// Runs one task by itself, outside any recorded run (`tasks test`): `inputs` holds one
    /// encoded value per parameter. Returns the return value and the values it pushed.
    pub async fn test_task(
        &self,
        dag: &Dag,
        task_index: usize,
        inputs: Vec<XComBlob>,
        logical_date: DateTime<Utc>,
    ) -> Result<(XComBlob, Vec<(String, XComBlob)>), TaskError> {
        let task = &dag.tasks()[task_index];
        let mut args = Inputs::with_capacity(inputs.len());
        for (param, blob) in task.spec().params().iter().zip(inputs) {
            args.push(
                param.name().to_string().into(),
                InputSource::CommandLine,
                blob,
            );
        }
        let request = RunRequest::manual(dag, logical_date, None)
            .map_err(|e| TaskError::Failed(e.to_string()))?;
        let scope = Arc::new(RunScope {
            dag_id: dag.id().clone(),
            run_id: RunId::new(format!("test__{}", logical_date.to_rfc3339())),
            run_type: RunType::Manual,
            logical_date,
            data_interval: request.interval,
            params: Arc::new(request.params),
            xcoms: self.store.clone() as Arc<dyn XComStore>,
            runs: self.store.clone() as Arc<dyn crate::store::RunStore>,
            objects: self.objects.clone(),
        });
        // A sensor in reschedule mode is poked again here, in the same try, until it is
        // ready or times out.
        let mut pokes = crate::sensor::PokeHistory::default();
        loop {
            let ctx = TaskContext::new(scope.clone(), task.id().clone(), MapIndex::UNMAPPED, 1)
                .with_pokes(pokes);
            let start = Utc::now();
            match call(task.spec().function().clone(), ctx.clone(), args.clone()).await {
                Err(TaskError::Reschedule { at }) => {
                    pokes = pokes.and_poke(start);
                    tokio::time::sleep((at - Utc::now()).to_std().unwrap_or_default()).await;
                }
                result => return Ok((result?, ctx.take_pushed())),
            }
        }
    }
}

impl Dag {
    /// Runs the DAG once in process with an in-memory store (and in-memory objects) and the
    /// current time as logical date, like Airflow's `dag.test()`; blocks until the run ends.
    pub fn test(&self) -> Result<RunSummary, RunError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| RunError::Runtime(e.to_string()))?;
        let executor =
            Executor::new(Arc::new(MemoryStore::new())).object_store(Objects::in_memory());
        runtime.block_on(executor.run(self, Utc::now()))
    }
}

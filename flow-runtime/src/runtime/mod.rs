//! The public facade: an [`Executor`] runs DAG runs against a store (create, run, resume,
//! test one task, delete), with bounded parallelism, pools, an object store and events.
//!
//! Behind it, deciding and running are apart: the scheduler's coordinating loop (the
//! crate's `scheduler` module) feeds a pure per-run tracker, commits what it decides, and
//! offers the instances it starts to an executor kind (the `executor` module): a tokio
//! pool, or one try at a time ([`Executor::sequential`]).

mod cron;
mod trigger;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::RunError;
use crate::events::{Events, TaskEvent};
use crate::executor::{LocalPool, Sequential, TaskExecutor, call};
use crate::graph::Dag;
use crate::ids::{DagId, MapIndex, RunId, TaskIndex};
use crate::metrics::Metrics;
use crate::objects::Objects;
use crate::plan::Plan;
use crate::scheduler::run_loop::{RunLoop, RunSettings};
use crate::state::RunState;
use crate::store::{DagRunRecord, MemoryStore, RunType, Store};
pub use crate::summary::{RunSummary, TaskSummary};
use crate::task::TaskError;
use crate::task::context::{RunScope, TaskContext};
use crate::task::{InputSource, Inputs};
use crate::time::timetable::DataInterval;
use crate::xcom::XComBlob;
pub use cron::{Clock, ManualClock, Scheduler, SystemClock};

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
    parallelism: usize,
    sequential: bool,
    settings: RunSettings,
}

impl Executor {
    /// An executor over `store`, running as many tasks at once as there are cores. It has no
    /// object store: every XCom stays in `store` whatever its size, and artifacts are
    /// unavailable until [`Executor::object_store`] gives it one.
    pub fn new(store: Arc<dyn Store>) -> Self {
        let triggers = Arc::new(trigger::StoreTrigger::new(store.clone()));
        Self {
            parallelism: std::thread::available_parallelism().map_or(2, usize::from),
            sequential: false,
            settings: RunSettings {
                store,
                objects: None,
                owner: crate::scheduler::lease::process_owner().into(),
                slots_freed: Arc::default(),
                events: Events::default(),
                metrics: None,
                stop: None,
                grace: Duration::from_secs(30),
                max_map_length: crate::graph::DEFAULT_MAX_MAP_LENGTH,
                triggers,
                #[cfg(feature = "email")]
                smtp: None,
            },
        }
    }

    /// The most instances one mapped task may expand to (Airflow's `max_map_length`,
    /// default 100,000); a longer expansion fails the task, naming the length and the limit.
    pub fn max_map_length(mut self, limit: usize) -> Self {
        self.settings.max_map_length = limit;
        self
    }

    /// Sends tasks' `email` alerts through `config` instead of the server named by the
    /// `FLOW_SMTP_*` variables (read when an alert is sent).
    #[cfg(feature = "email")]
    pub fn smtp(mut self, config: crate::notify::SmtpConfig) -> Self {
        self.settings.smtp = Some(Arc::new(config));
        self
    }

    /// Keeps XCom values larger than the store's threshold, and the runs' artifacts, in
    /// `objects` (see [`crate::objects::ObjectStoreConfig`]).
    pub fn object_store(mut self, objects: Objects) -> Self {
        self.settings.objects = Some(objects);
        self
    }

    /// The object store, if the executor has one.
    pub fn objects(&self) -> Option<&Objects> {
        self.settings.objects.as_ref()
    }

    /// Deletes a run's history: its objects (offloaded XComs, artifacts) first, then its
    /// records (task instances, tries, XComs, logs), so a failure leaves the run listed and
    /// the deletion can be repeated. Returns how many objects were deleted. The caller must
    /// make sure the run is not being executed (the CLI holds the run's lock).
    pub async fn delete_run(&self, dag_id: &DagId, run_id: &RunId) -> Result<usize, RunError> {
        if self.settings.store.run(dag_id, run_id)?.is_none() {
            return Err(RunError::NoSuchRun {
                dag_id: dag_id.clone(),
                run_id: run_id.clone(),
            });
        }
        let deleted = match &self.settings.objects {
            Some(objects) => objects.delete_run(dag_id, run_id).await?,
            None => 0,
        };
        self.settings.store.delete_run(dag_id, run_id)?;
        Ok(deleted)
    }

    /// Stops runs gracefully when `stop` turns true: no task starts any more, running
    /// tasks get `grace` to finish, then the run returns in state `running` (resumable).
    pub fn stop_on(mut self, stop: tokio::sync::watch::Receiver<bool>, grace: Duration) -> Self {
        self.settings.stop = Some(stop);
        self.settings.grace = grace;
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
        self.settings.events.observe(observer);
        self
    }

    /// Counts what the runs of this executor do into `metrics` (tries, durations, waits,
    /// loop turns, queue depth); serve them with [`crate::metrics::MetricsEndpoint`].
    pub fn metrics(mut self, metrics: Arc<Metrics>) -> Self {
        let observer = metrics.clone();
        self.settings
            .events
            .observe(move |event| observer.observe(event));
        self.settings.metrics = Some(metrics);
        self
    }

    /// The events of the runs this executor runs: subscribe for a live stream.
    pub fn events(&self) -> &Events {
        &self.settings.events
    }

    /// The executor kind a run uses.
    fn task_executor(&self) -> Box<dyn TaskExecutor> {
        if self.sequential || self.parallelism == 1 {
            Box::new(Sequential::new())
        } else {
            Box::new(LocalPool::new(self.parallelism))
        }
    }

    /// The store this executor records into.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.settings.store
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
        self.record_run(dag, crate::plan::fingerprint(dag), request)
    }

    /// [`Executor::create_run`] of `dag`, whose shape's fingerprint is known already.
    fn record_run(
        &self,
        dag: &Dag,
        fingerprint: String,
        request: RunRequest,
    ) -> Result<DagRunRecord, RunError> {
        record_run(self.settings.store.as_ref(), dag, fingerprint, request)
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
        let plan = Plan::compile(dag);
        let fingerprint = plan.fingerprint().to_string();
        self.settings.store.record_dag(dag.id(), &fingerprint)?;
        // The run is recorded by its first batch, with its first decisions.
        let run = new_run(dag, fingerprint, request);
        RunLoop::new(&self.settings, &plan, &run, self.task_executor())
            .creating(run.clone())
            .start(Vec::new())
            .await
    }

    /// Continues a run that has not finished (after a crash, or after `tasks clear`):
    /// succeeded tasks are kept, tries that were running when their process died count
    /// as failed tries and are retried under their retry policy, and the rest runs.
    pub async fn resume(&self, dag: &Dag, run_id: &RunId) -> Result<RunSummary, RunError> {
        let run =
            self.settings
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
        let plan = Plan::compile(dag);
        if run.fingerprint != plan.fingerprint() {
            return Err(RunError::ShapeChanged {
                dag_id: dag.id().clone(),
                run_id: run_id.clone(),
            });
        }
        let stored = self.settings.store.task_instances(dag.id(), run_id)?;
        RunLoop::new(&self.settings, &plan, &run, self.task_executor())
            .start(stored)
            .await
    }

    /// Runs one task by itself, outside any recorded run (`tasks test`): `inputs` holds one
    /// encoded value per parameter. Returns the return value and the values it pushed.
    pub async fn test_task(
        &self,
        dag: &Dag,
        task_index: TaskIndex,
        inputs: Vec<XComBlob>,
        logical_date: DateTime<Utc>,
    ) -> Result<(XComBlob, Vec<(String, XComBlob)>), TaskError> {
        let task = &dag[task_index];
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
            next_data_interval: dag
                .timetable()
                .following_interval(&request.interval, &dag.restriction()),
            params: Arc::new(request.params),
            xcoms: Arc::new(self.settings.store.clone()),
            runs: Arc::new(self.settings.store.clone()),
            triggers: self.settings.triggers.clone(),
            objects: self.settings.objects.clone(),
        });
        // A sensor in reschedule mode is poked again here, in the same try, until it is
        // ready or times out.
        let mut pokes = crate::task::PokeHistory::default();
        loop {
            let ctx = TaskContext::new(scope.clone(), task.id().clone(), MapIndex::UNMAPPED, 1)
                .with_pokes(pokes);
            let start = Utc::now();
            let policy = task.spec().retry_policy_ref().cloned();
            match call(
                task.spec().function().clone(),
                policy,
                ctx.clone(),
                args.clone(),
            )
            .await
            {
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

/// Records a new run of `dag` (state `queued`) in `store`; its id is [`Executor::run_id`]
/// of its type and logical date.
pub(crate) fn record_run(
    store: &dyn Store,
    dag: &Dag,
    fingerprint: String,
    request: RunRequest,
) -> Result<DagRunRecord, RunError> {
    store.record_dag(dag.id(), &fingerprint)?;
    let run = new_run(dag, fingerprint, request);
    store.create_run(&run).map_err(|e| match e {
        crate::store::StoreError::RunExists { dag_id, run_id } => {
            RunError::RunExists { dag_id, run_id }
        }
        e => RunError::Store(e),
    })?;
    Ok(run)
}

/// The record of a new run of `dag` (state `queued`) that `request` describes.
pub(crate) fn new_run(dag: &Dag, fingerprint: String, request: RunRequest) -> DagRunRecord {
    let logical_date = request.logical_date;
    DagRunRecord {
        dag_id: dag.id().clone(),
        run_id: Executor::run_id(request.run_type, logical_date),
        run_type: request.run_type,
        logical_date,
        state: RunState::Queued,
        start: None,
        end: None,
        fingerprint,
        data_interval_start: request.interval.start,
        data_interval_end: request.interval.end,
        conf: serde_json::Value::Object(request.params),
    }
}

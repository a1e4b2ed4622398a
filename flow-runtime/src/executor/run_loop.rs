//! The coordinating loop of one DAG run.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::reschedule::Reschedules;
use super::{Executor, RunSummary, TaskEvent, TaskSummary, call};
use crate::branch::{Branch, TaskKind};
use crate::callbacks::{self, Callback, CallbackEvent};
use crate::context::{RunScope, TaskContext};
use crate::dag::{BoundInput, Dag, MappedInput};
use crate::error::{RunError, TaskError};
use crate::ids::{MapIndex, StableHash, TaskId, TaskInstanceKey};
use crate::logs::TryLog;
use crate::objects::{self, StagedXComs};
use crate::pools::{Claim, Grant};
use crate::state::{RunState, TaskState};
use crate::store::{
    Change, DagRunRecord, Expect, LogLine, StoreError, TaskInstanceRecord, XComStore,
};
use crate::task::{InputSource, PendingInput, PendingValue};
use crate::timetable::DataInterval;
use crate::trigger::{self, Decision, TriggerRule, UpstreamCounts};
use crate::xcom::{RETURN_VALUE, StoredXCom, XComBlob};

mod mapped;

/// Return values up to this size stay in memory for the run's consumers, sparing a read
/// from the store; larger ones are read back when needed.
const CACHED_OUTPUT_BYTES: usize = 64 * 1024;

/// How many ready tasks a turn may find waiting for full pools before it stops looking.
const MAX_BLOCKED_SCAN: usize = 64;

/// Ready task instances, highest priority first, then in the order they became ready.
#[derive(Default)]
struct ReadyQueue {
    heap: BinaryHeap<(i64, Reverse<u64>, usize)>,
    next: u64,
}

impl ReadyQueue {
    fn push(&mut self, index: usize, priority: i64) {
        self.heap.push((priority, Reverse(self.next), index));
        self.next += 1;
    }

    fn pop(&mut self) -> Option<usize> {
        self.heap.pop().map(|(_, _, index)| index)
    }

    fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

/// A number stable for one task instance and try, for the retry jitter (Airflow hashes
/// the same facts).
fn retry_seed(key: &TaskInstanceKey, try_number: u32) -> u64 {
    StableHash::default()
        .text(key.dag_id.as_str())
        .text(key.run_id.as_str())
        .text(key.task_id.as_str())
        .bytes(&try_number.to_le_bytes())
        .finish()
}

/// A batch being committed on a blocking thread, and the tasks waiting for it.
struct InFlight {
    commit: tokio::task::JoinHandle<Result<(), StoreError>>,
    launches: Vec<Launch>,
    callbacks: Vec<(Callback, CallbackEvent)>,
}

/// What starts once the batch that prepared it is durable: a task instance, or the
/// expansion of a mapped task (which reads its upstream lists from the store).
enum Launch {
    Task(usize, TaskContext),
    Expand(usize),
}

/// What the loop hears back from spawned work.
enum Event {
    Finished {
        index: usize,
        result: Result<StagedXComs, TaskError>,
        logs: Vec<LogLine>,
        elapsed: Duration,
        end: DateTime<Utc>,
    },
    RetryDue(usize),
}

/// A mapped task, expanded into instances.
struct Expansion {
    /// Its instances (indices into the loop's instances), in map order.
    children: Range<usize>,
    /// How many of them have finished.
    finished: usize,
    /// The elements of each mapped argument; computed when first needed (after a restore
    /// the expansion is known from the store, the elements are not).
    elements: Option<mapped::Elements>,
}

/// Per-instance facts the loop keeps. The first instances are the DAG's tasks, at their
/// task index; the instances of mapped tasks follow, in the order they were expanded.
struct Instance {
    /// The task it is an instance of.
    task: usize,
    /// For an instance of a mapped task: the task-level instance it belongs to.
    parent: Option<usize>,
    /// For the task-level instance of a mapped task, once expanded.
    expansion: Option<Box<Expansion>>,
    record: TaskInstanceRecord,
    upstream: UpstreamCounts,
    elapsed: Option<Duration>,
    output: Option<XComBlob>,
    /// Whether its trigger rule has sent it to the ready queue: later upstream results
    /// (rules like `one_success` decide early) must not queue it twice.
    decided: bool,
    /// Where this instance's record sits in the batch being collected, if it does: a
    /// second change in the same batch replaces it, so the store writes one row.
    pending: Option<usize>,
    /// What the store holds for it now: the expectation of its next change.
    stored: Expect,
}

pub(super) struct RunLoop<'a> {
    executor: &'a Executor,
    dag: &'a Dag,
    scope: Arc<RunScope>,
    started: DateTime<Utc>,
    instances: Vec<Instance>,
    ready: ReadyQueue,
    /// The pool slots each running instance holds.
    held: Vec<Option<Claim>>,
    changes: Vec<Change>,
    /// Instances with a record in `changes`.
    batched: Vec<usize>,
    /// Callbacks to run once `changes` is durable.
    callbacks_due: Vec<(Callback, CallbackEvent)>,
    /// Callbacks running.
    callback_tasks: JoinSet<()>,
    running: usize,
    /// Instances waiting for a retry or a sensor's next poke.
    retrying: usize,
    /// Stored instances of mapped tasks that have not expanded in this process yet: an
    /// expansion reuses them (keeping their tries) and removes those past its length.
    unexpanded: HashMap<usize, Vec<TaskInstanceRecord>>,
    /// The pokes of sensors in reschedule mode.
    reschedules: Reschedules,
    /// Whether the executor was told to stop before the run ended.
    stopped: bool,
    /// Whether the run exceeded its `dagrun_timeout`.
    timed_out: bool,
    join: JoinSet<Event>,
}

impl<'a> RunLoop<'a> {
    pub(super) fn new(executor: &'a Executor, dag: &'a Dag, run: &DagRunRecord) -> Self {
        let instances = dag
            .tasks()
            .iter()
            .enumerate()
            .map(|(index, task)| Instance {
                task: index,
                parent: None,
                expansion: None,
                record: TaskInstanceRecord::fresh(TaskInstanceKey {
                    dag_id: dag.id().clone(),
                    run_id: run.run_id.clone(),
                    task_id: task.id().clone(),
                    map_index: MapIndex::UNMAPPED,
                }),
                upstream: UpstreamCounts {
                    total: u32::try_from(task.upstream().len()).unwrap_or(u32::MAX),
                    ..UpstreamCounts::default()
                },
                elapsed: None,
                output: None,
                pending: None,
                stored: Expect::FRESH,
                decided: false,
            })
            .collect();
        let params = match &run.conf {
            serde_json::Value::Object(map) => map.clone(),
            _ => serde_json::Map::new(),
        };
        let scope = Arc::new(RunScope {
            dag_id: dag.id().clone(),
            run_id: run.run_id.clone(),
            run_type: run.run_type,
            logical_date: run.logical_date,
            data_interval: DataInterval::new(run.data_interval_start, run.data_interval_end),
            params: Arc::new(params),
            xcoms: executor.store.clone() as Arc<dyn XComStore>,
            runs: executor.store.clone() as Arc<dyn crate::store::RunStore>,
            objects: executor.objects.clone(),
        });
        Self {
            executor,
            dag,
            scope,
            started: run.start.unwrap_or_else(Utc::now),
            instances,
            ready: ReadyQueue::default(),
            held: vec![None; dag.tasks().len()],
            changes: Vec::new(),
            batched: Vec::new(),
            callbacks_due: Vec::new(),
            callback_tasks: JoinSet::new(),
            running: 0,
            retrying: 0,
            unexpanded: HashMap::new(),
            reschedules: Reschedules::default(),
            stopped: false,
            timed_out: false,
            join: JoinSet::new(),
        }
    }

    /// The task `index` is an instance of.
    fn task(&self, index: usize) -> &'a crate::dag::Task {
        &self.dag.tasks()[self.instances[index].task]
    }

    /// Restores what `stored` records (empty for a new run), then runs to the end.
    pub(super) async fn start(
        mut self,
        stored: Vec<TaskInstanceRecord>,
    ) -> Result<RunSummary, RunError> {
        let clock = Instant::now();
        self.changes.push(self.run_change(RunState::Running, None));
        let pools = self.executor.store.pools()?;
        self.executor
            .pools
            .define(pools.into_iter().map(|p| (p.name, p.slots)));
        self.restore(stored)?;
        // Tasks prepared into the batch being collected; they start once it is durable.
        let mut launches: Vec<Launch> = Vec::new();
        let mut in_flight: Option<InFlight> = None;
        let mut stop = self.executor.stop.clone();
        let mut stop_deadline: Option<tokio::time::Instant> = None;
        // `dagrun_timeout` counts from the run's first start, across resumes.
        let timeout_at = self.dag.dagrun_timeout().map(|timeout| {
            let elapsed = (Utc::now() - self.started).to_std().unwrap_or_default();
            tokio::time::Instant::now() + timeout.saturating_sub(elapsed)
        });
        loop {
            let stopping = stop.as_ref().is_some_and(|rx| *rx.borrow());
            if stopping && stop_deadline.is_none() {
                stop_deadline = Some(tokio::time::Instant::now() + self.executor.grace);
                self.stopped = true;
            }
            let mut blocked = Vec::new();
            while !stopping && self.running < self.executor.parallelism {
                let Some(index) = self.ready.pop() else {
                    break;
                };
                // A mapped task takes no slot: it becomes instances that do, once its
                // upstream results are durable.
                if self.is_mapped_task(index) {
                    launches.push(Launch::Expand(index));
                    continue;
                }
                let claim = self.claim(index);
                match self.executor.pools.try_claim(&claim) {
                    Grant::Granted => {
                        self.held[index] = Some(claim);
                        let (index, ctx) = self.prepare(index);
                        launches.push(Launch::Task(index, ctx));
                        self.running += 1;
                    }
                    // No task of this DAG can start: stop looking this turn.
                    Grant::DagFull => {
                        blocked.push(index);
                        break;
                    }
                    // Other pools may have room, but bound the scan so a long queue
                    // behind a full pool costs little each turn.
                    Grant::PoolFull => {
                        blocked.push(index);
                        if blocked.len() >= MAX_BLOCKED_SCAN {
                            break;
                        }
                    }
                    Grant::UnknownPool => self.refuse(
                        index,
                        format!(
                            "pool `{}` does not exist; create it with `pools set {} SLOTS`",
                            claim.pool, claim.pool
                        ),
                    ),
                    Grant::TooBig { size } => self.refuse(
                        index,
                        format!(
                            "the task takes {} slots of pool `{}`, which has {size}",
                            claim.slots, claim.pool
                        ),
                    ),
                }
            }
            let slots_ran_out = !blocked.is_empty() || self.running >= self.executor.parallelism;
            // Tasks waiting for slots keep their place by priority.
            for index in blocked {
                self.ready.push(index, self.task(index).priority());
            }
            if in_flight.is_none() && (!self.changes.is_empty() || !launches.is_empty()) {
                if self.changes.is_empty() {
                    // Nothing new to make durable (an expansion whose inputs already are).
                    self.launch(std::mem::take(&mut launches));
                } else if self.executor.store.commits_in_background() && !self.join.is_empty() {
                    // Tasks are running: commit on another thread and keep handling them.
                    in_flight = Some(self.commit_in_background(std::mem::take(&mut launches)));
                } else {
                    self.commit()?;
                    self.launch(std::mem::take(&mut launches));
                }
            }
            // An expansion launched just now queued its instances: start them at once
            // rather than waiting for a slot to be released.
            if !stopping && !slots_ran_out && !self.ready.is_empty() {
                continue;
            }
            // Pending retries and pokes are durable (`up_for_retry`, `up_for_reschedule`)
            // and resume with the run.
            let waiting_for_slots = !stopping && !self.ready.is_empty();
            if self.running == 0
                && (self.retrying == 0 || stopping)
                && in_flight.is_none()
                && !waiting_for_slots
            {
                break;
            }
            tokio::select! {
                () = async { tokio::time::sleep_until(timeout_at.unwrap_or_else(tokio::time::Instant::now)).await },
                    if timeout_at.is_some() && in_flight.is_none() => {
                    self.time_out();
                    break;
                }
                Some(()) = async { stop.as_mut()?.changed().await.ok() }, if stop.is_some() && !stopping => {}
                // Slots held by other runs: wake on a release, or look again shortly (a
                // release between the claim and this wait would otherwise be missed).
                () = async {
                    tokio::select! {
                        () = self.executor.pools.released() => {}
                        () = tokio::time::sleep(Duration::from_millis(50)) => {}
                    }
                }, if waiting_for_slots && self.running == 0 => {}
                () = async { tokio::time::sleep_until(stop_deadline.unwrap_or_else(tokio::time::Instant::now)).await },
                    if stop_deadline.is_some() && in_flight.is_none() => {
                    tracing::warn!(
                        run = %self.scope.run_id,
                        "{} task(s) still running after the grace period; they are abandoned and retried on resume",
                        self.running
                    );
                    break;
                }
                committed = async { (&mut in_flight.as_mut()?.commit).await.ok() }, if in_flight.is_some() => {
                    let flight = in_flight.take();
                    match committed {
                        Some(Ok(())) => {}
                        Some(Err(e)) => return Err(e.into()),
                        None => return Err(RunError::Runtime("the commit thread was lost".into())),
                    }
                    if let Some(flight) = flight {
                        callbacks::dispatch(&mut self.callback_tasks, flight.callbacks);
                        self.launch(flight.launches);
                    }
                }
                Some(first) = self.join.join_next(), if !self.join.is_empty() => {
                    self.handle(first);
                    while let Some(next) = self.join.try_join_next() {
                        self.handle(next);
                    }
                }
            }
        }
        let summary = self.finish(clock.elapsed())?;
        while self.callback_tasks.join_next().await.is_some() {}
        Ok(summary)
    }

    /// Rebuilds the loop's state from a stored run: finished instances settle their
    /// downstream, queued ones go back to waiting, tries that were running when their
    /// process died count as failed, and pending retries and pokes keep their schedule.
    fn restore(&mut self, stored: Vec<TaskInstanceRecord>) -> Result<(), RunError> {
        let mut by_task: HashMap<TaskId, TaskInstanceRecord> = HashMap::new();
        let mut mapped: HashMap<TaskId, Vec<TaskInstanceRecord>> = HashMap::new();
        for record in stored {
            if record.key.map_index == MapIndex::UNMAPPED {
                by_task.insert(record.key.task_id.clone(), record);
            } else {
                mapped
                    .entry(record.key.task_id.clone())
                    .or_default()
                    .push(record);
            }
        }
        for index in 0..self.dag.tasks().len() {
            let task_id = self.dag.tasks()[index].id();
            if let Some(record) = by_task.remove(task_id) {
                self.instances[index].stored = Expect::of(&record);
                self.instances[index].record = record;
            }
            // An expanded mapped task: its instances are stored, their elements are read
            // again when an instance needs them. If none has started (its task was
            // cleared), it expands again once its upstream tasks are done, reusing them.
            if let Some(mut records) = mapped.remove(task_id) {
                records.sort_by_key(|r| r.key.map_index.get());
                if records.iter().all(|r| r.state == TaskState::None) {
                    self.unexpanded.insert(index, records);
                    continue;
                }
                let first = self.instances.len();
                for record in records {
                    self.add_child(index, record);
                }
                self.instances[index].decided = true;
                self.instances[index].expansion = Some(Box::new(Expansion {
                    children: first..self.instances.len(),
                    finished: 0,
                    elements: None,
                }));
            }
        }
        for index in 0..self.instances.len() {
            if self.instances[index].record.state == TaskState::Queued {
                self.set_state(index, TaskState::None, None);
            }
        }
        let now = Utc::now();
        for position in 0..self.dag.topological_order().len() {
            let index = self.dag.topological_order()[position];
            if let Some(expansion) = &self.instances[index].expansion {
                for child in expansion.children.clone() {
                    self.restore_instance(child, now)?;
                }
                continue;
            }
            self.restore_instance(index, now)?;
        }
        Ok(())
    }

    /// Picks up one stored instance where it was left.
    fn restore_instance(&mut self, index: usize, now: DateTime<Utc>) -> Result<(), RunError> {
        let record = &self.instances[index].record;
        match record.state {
            TaskState::None => {
                let task = self.task(index);
                // An instance of a mapped task was queued when its task expanded.
                let due = self.instances[index].parent.is_some()
                    || task.upstream().is_empty()
                    || task.trigger_rule() == TriggerRule::Always;
                if due {
                    self.instances[index].decided = true;
                    self.ready.push(index, task.priority());
                }
            }
            TaskState::Running => {
                let error = TaskError::Interrupted(record.try_number);
                self.fail_try(index, error);
            }
            TaskState::UpForRetry => {
                let seed = retry_seed(&record.key, record.try_number);
                let delay = self.task(index).retry_delay_for(record.try_number, seed);
                let due = record.end.unwrap_or(now) + delay;
                self.schedule_retry(index, (due - now).to_std().unwrap_or_default());
            }
            TaskState::UpForReschedule => {
                let due = self
                    .reschedules
                    .restore(self.executor.store.as_ref(), index, record)?
                    .unwrap_or(now);
                self.schedule_retry(index, (due - now).to_std().unwrap_or_default());
            }
            state => self.settle_downstream(index, state),
        }
        Ok(())
    }

    /// What a task instance asks of the pools before it starts.
    fn claim(&self, index: usize) -> Claim {
        let task = &self.task(index);
        Claim {
            pool: task.pool().to_string(),
            slots: task.pool_slots(),
            dag: self.dag.id().clone(),
            dag_limit: self.dag.max_active_tasks(),
        }
    }

    /// Fails a task that can never get its pool slots, without running it.
    fn refuse(&mut self, index: usize, message: String) {
        let _ = self.prepare(index);
        tracing::error!(task = %self.task(index).id(), "{message}");
        self.set_state(index, TaskState::Failed, Some(message));
        self.settle_downstream(index, TaskState::Failed);
    }

    /// Marks an instance queued then running and makes its context.
    fn prepare(&mut self, index: usize) -> (usize, TaskContext) {
        let retries = self.task(index).retries();
        let inst = &mut self.instances[index];
        if inst.record.state == TaskState::None {
            // A fresh (or cleared) instance gets its full retry budget from here.
            inst.record.max_tries = inst.record.try_number + retries + 1;
        }
        // A sensor's next poke in reschedule mode continues its try, as in Airflow.
        let next_poke = inst.record.state == TaskState::UpForReschedule;
        self.set_state(index, TaskState::Queued, None);
        if !next_poke {
            self.instances[index].record.try_number += 1;
            self.reschedules.forget(index);
        }
        let inst = &mut self.instances[index];
        inst.record.start = Some(Utc::now());
        inst.record.end = None;
        self.set_state(index, TaskState::Running, None);
        let record = &self.instances[index].record;
        let ctx = TaskContext::new(
            self.scope.clone(),
            self.task(index).id().clone(),
            record.key.map_index,
            record.try_number,
        )
        .with_pokes(self.reschedules.history(index));
        (index, ctx)
    }

    /// Reads the inputs of a task, after the batch holding its producers' XComs is durable.
    /// Values kept in the object store are fetched later, by the task's own future.
    fn gather_inputs(&mut self, index: usize) -> Result<Vec<PendingInput>, TaskError> {
        let task = self.task(index);
        let mut mapped = self
            .mapped_arguments(index)?
            .unwrap_or_default()
            .into_iter();
        let mut inputs = Vec::with_capacity(task.inputs().len());
        for (param, bound) in task.spec().params().iter().zip(task.inputs()) {
            let name = param.name().to_string().into();
            let (source, value) = match bound {
                BoundInput::Literal(blob) => (
                    InputSource::Literal,
                    PendingValue::One(StoredXCom::Inline(blob.clone())),
                ),
                BoundInput::Upstream(producer) => {
                    let task = &self.dag.tasks()[*producer];
                    let value = if task.is_mapped() {
                        PendingValue::Collected {
                            elements: self.mapped_outputs(*producer, param.name())?,
                            element_type: task.spec().output().type_name(),
                        }
                    } else {
                        PendingValue::One(self.output_of(*producer, param.name())?)
                    };
                    (InputSource::Upstream(task.id().clone()), value)
                }
                BoundInput::Mapped(source) => {
                    let element = mapped.next().ok_or_else(|| TaskError::MissingInput {
                        param: param.name().to_string(),
                        hint: "the task was not expanded".to_string(),
                    })?;
                    let source = match source {
                        MappedInput::Upstream(producer) => {
                            InputSource::Upstream(self.dag.tasks()[*producer].id().clone())
                        }
                        MappedInput::Literal(_) => InputSource::Literal,
                    };
                    (source, PendingValue::One(element))
                }
            };
            inputs.push(PendingInput {
                param: name,
                source,
                value,
            });
        }
        Ok(inputs)
    }

    /// The return value of the instance at `index`, for the parameter `param`, as stored:
    /// from memory when small, else from the store (possibly a reference to an object).
    fn output_of(&self, index: usize, param: &str) -> Result<StoredXCom, TaskError> {
        let inst = &self.instances[index];
        if let Some(blob) = &inst.output {
            return Ok(StoredXCom::Inline(blob.clone()));
        }
        let key = &inst.record.key;
        self.executor
            .store
            .get_xcom(key, RETURN_VALUE)
            .map_err(|e| TaskError::XCom(format!("cannot read input `{param}`: {e}")))?
            .ok_or_else(|| TaskError::MissingInput {
                param: param.to_string(),
                hint: match key.map_index.get() {
                    Some(i) => format!(
                        "`{}` (map index {i}) stored no return value in this run",
                        key.task_id
                    ),
                    None => format!("`{}` stored no return value in this run", key.task_id),
                },
            })
    }

    fn spawn(
        &mut self,
        index: usize,
        ctx: TaskContext,
        inputs: Result<Vec<PendingInput>, TaskError>,
    ) {
        let task = self.task(index);
        let objects = self.executor.objects.clone();
        let key = self.instances[index].record.key.clone();
        let function = task.spec().function().clone();
        let timeout = task.execution_timeout();
        let span = tracing::info_span!(
            "task",
            dag = %self.scope.dag_id,
            task = %task.id(),
            run = %self.scope.run_id,
            try_number = ctx.try_number(),
        );
        let log = TryLog::default();
        log.attach(&span);
        self.join.spawn(
            async move {
                let clock = Instant::now();
                let inputs = match inputs {
                    Ok(pending) => objects::resolve_inputs(objects.as_ref(), pending).await,
                    Err(e) => Err(e),
                };
                let result = match (inputs, timeout) {
                    (Ok(inputs), None) => call(function, ctx.clone(), inputs).await,
                    (Ok(inputs), Some(limit)) => {
                        tokio::time::timeout(limit, call(function, ctx.clone(), inputs))
                            .await
                            .unwrap_or(Err(TaskError::TimedOut(limit)))
                    }
                    (Err(e), _) => Err(e),
                };
                // Large values go to the object store here, off the coordinating loop.
                let result = match result {
                    Ok(output) => {
                        objects::stage(objects.as_ref(), &key, output, ctx.take_pushed()).await
                    }
                    Err(e) => Err(e),
                };
                // A sensor's "not yet" in reschedule mode ends the poke, not the try.
                if let Err(error) = &result
                    && !matches!(error, TaskError::Reschedule { .. })
                {
                    tracing::error!("try failed: {error}");
                }
                Event::Finished {
                    index,
                    result,
                    logs: log.take(),
                    elapsed: clock.elapsed(),
                    end: Utc::now(),
                }
            }
            .instrument(span),
        );
    }

    fn handle(&mut self, joined: Result<Event, tokio::task::JoinError>) {
        let event = match joined {
            Ok(event) => event,
            // Task futures catch their own panics, so only a runtime shutdown lands here.
            Err(e) => {
                tracing::error!("a task future was lost: {e}");
                return;
            }
        };
        match event {
            Event::RetryDue(index) => {
                self.retrying -= 1;
                self.ready.push(index, self.task(index).priority());
            }
            Event::Finished {
                index,
                result,
                logs,
                elapsed,
                end,
            } => {
                self.running -= 1;
                if let Some(claim) = self.held[index].take() {
                    self.executor.pools.release(&claim);
                }
                let inst = &mut self.instances[index];
                inst.record.end = Some(end);
                inst.elapsed = Some(elapsed);
                let key = inst.record.key.clone();
                if !logs.is_empty() {
                    self.changes.push(Change::Log {
                        key: key.clone(),
                        try_number: inst.record.try_number,
                        lines: logs,
                    });
                }
                // A branch or short-circuit decision is read before the success is recorded,
                // so a bad choice fails the try instead.
                let result = result.and_then(|staged| {
                    let skips = self.skips_for(index, &staged.output)?;
                    Ok((staged, skips))
                });
                let inst = &mut self.instances[index];
                match result {
                    Err(TaskError::Reschedule { at }) => self.reschedule(index, end, at),
                    Ok((staged, skips)) => {
                        if staged.output.bytes().len() <= CACHED_OUTPUT_BYTES {
                            inst.output = Some(staged.output);
                        }
                        for (name, value) in staged.records {
                            self.changes.push(Change::XCom {
                                key: key.clone(),
                                name,
                                value,
                            });
                        }
                        self.set_state(index, TaskState::Success, None);
                        // Mark every skip first, so settling one cannot queue another.
                        let skipped: Vec<usize> = skips
                            .into_iter()
                            .filter(|&i| {
                                self.instances[i].record.state == TaskState::None
                                    && !self.instances[i].decided
                            })
                            .collect();
                        for &i in &skipped {
                            self.set_state(i, TaskState::Skipped, None);
                        }
                        for &i in &skipped {
                            self.settle_downstream(i, TaskState::Skipped);
                        }
                        self.settle_downstream(index, TaskState::Success);
                    }
                    Err(error) => self.fail_try(index, error),
                }
            }
        }
    }

    /// The tasks a successful branch or short-circuit task skips: the direct downstream
    /// tasks a branch did not choose, or everything downstream of a short-circuit that
    /// returned `false`. A choice that is not a direct downstream task is an error.
    fn skips_for(&self, index: usize, output: &XComBlob) -> Result<Vec<usize>, TaskError> {
        let task = &self.task(index);
        match task.spec().kind() {
            TaskKind::Normal => Ok(Vec::new()),
            TaskKind::Branch => {
                let branch: Branch = output.decode().map_err(|e| {
                    TaskError::Failed(format!("a branch task must return a `Branch`: {e}"))
                })?;
                let downstream = task.downstream();
                let name = |i: &usize| self.dag.tasks()[*i].id().as_str();
                for chosen in branch.task_ids() {
                    if !downstream.iter().any(|d| name(d) == chosen) {
                        let ids: Vec<&str> = downstream.iter().map(name).collect();
                        return Err(TaskError::Failed(format!(
                            "branch `{}` chose `{chosen}`, which is not one of its downstream tasks: {}",
                            task.id(),
                            if ids.is_empty() {
                                "it has none".to_string()
                            } else {
                                ids.join(", ")
                            }
                        )));
                    }
                }
                Ok(downstream
                    .iter()
                    .copied()
                    .filter(|d| !branch.task_ids().iter().any(|c| c == name(d)))
                    .collect())
            }
            TaskKind::ShortCircuit => {
                let go_on: bool = output.decode().map_err(|e| {
                    TaskError::Failed(format!("a short-circuit task must return a `bool`: {e}"))
                })?;
                if go_on {
                    return Ok(Vec::new());
                }
                tracing::info!(task = %task.id(), "short-circuit: skipping every downstream task");
                let mut seen = vec![false; self.dag.tasks().len()];
                let mut stack: Vec<usize> = task.downstream().to_vec();
                let mut all = Vec::new();
                while let Some(d) = stack.pop() {
                    if !std::mem::replace(&mut seen[d], true) {
                        all.push(d);
                        stack.extend_from_slice(self.dag.tasks()[d].downstream());
                    }
                }
                all.sort_unstable();
                Ok(all)
            }
        }
    }

    /// Ends a run that exceeded `dagrun_timeout`, as Airflow does: running tries fail
    /// (they are abandoned), everything that has not run is skipped, and the run fails.
    fn time_out(&mut self) {
        let timeout = self.dag.dagrun_timeout().unwrap_or_default();
        tracing::error!(run = %self.scope.run_id, "dagrun_timeout of {timeout:?} exceeded");
        let message = format!(
            "the run exceeded its dagrun_timeout of {}",
            humantime::format_duration(timeout)
        );
        for index in 0..self.instances.len() {
            // An expanded mapped task is not stored; its instances are.
            if self.instances[index].expansion.is_some() {
                continue;
            }
            match self.instances[index].record.state {
                TaskState::Running | TaskState::UpForRetry | TaskState::UpForReschedule => {
                    self.instances[index].record.end = Some(Utc::now());
                    self.set_state(index, TaskState::Failed, Some(message.clone()));
                }
                TaskState::None | TaskState::Queued => {
                    self.set_state(index, TaskState::Skipped, None)
                }
                _ => {}
            }
        }
        self.running = 0;
        self.retrying = 0;
        self.timed_out = true;
        self.join.abort_all();
    }

    fn fail_try(&mut self, index: usize, error: TaskError) {
        let task = &self.task(index);
        let message = error.to_string();
        let record = &self.instances[index].record;
        if let TaskError::SoftFail(_) = error {
            tracing::warn!(task = %task.id(), "{message}; skipping (soft_fail)");
            self.set_state(index, TaskState::Skipped, Some(message));
            self.settle_downstream(index, TaskState::Skipped);
            return;
        }
        // A sensor that timed out is not retried, as in Airflow.
        let retryable = !matches!(error, TaskError::SensorTimeout(_));
        if retryable && record.try_number < record.max_tries {
            let try_number = record.try_number;
            let seed = retry_seed(&record.key, try_number);
            let delay = task.retry_delay_for(try_number, seed);
            tracing::warn!(task = %task.id(), try_number, "try failed, retrying in {}: {message}", humantime::format_duration(delay));
            self.set_state(index, TaskState::UpForRetry, Some(message));
            self.schedule_retry(index, delay);
        } else {
            tracing::error!(task = %task.id(), try_number = record.try_number, "task failed: {message}");
            self.set_state(index, TaskState::Failed, Some(message));
            self.settle_downstream(index, TaskState::Failed);
        }
    }

    /// A sensor in reschedule mode answered "not yet": it waits `up_for_reschedule`,
    /// holding no slot, and is queued again at `at`.
    fn reschedule(&mut self, index: usize, end: DateTime<Utc>, at: DateTime<Utc>) {
        let change = self
            .reschedules
            .not_yet(index, &self.instances[index].record, end, at);
        self.set_state(index, TaskState::UpForReschedule, None);
        self.changes.push(change);
        let now = Utc::now();
        self.schedule_retry(index, (at - now).to_std().unwrap_or_default());
    }

    /// Queues the instance again after `delay` (a retry or a sensor's next poke).
    fn schedule_retry(&mut self, index: usize, delay: Duration) {
        self.retrying += 1;
        self.join.spawn(async move {
            tokio::time::sleep(delay).await;
            Event::RetryDue(index)
        });
    }

    /// Tells downstream tasks that `index` finished in `state`, deciding each one whose
    /// trigger rule can now decide, and propagating skips and upstream failures.
    fn settle_downstream(&mut self, index: usize, state: TaskState) {
        if let Some(parent) = self.instances[index].parent {
            return self.child_finished(parent, state);
        }
        self.settle(index, UpstreamCounts::one(state));
    }

    /// Tells the downstream tasks of the task-level instance `index` that it finished with
    /// `finished` (one state, or one per instance of a mapped task).
    fn settle(&mut self, index: usize, finished: UpstreamCounts) {
        let mut settled = vec![(index, finished)];
        while let Some((done, finished)) = settled.pop() {
            for &d in self.dag.tasks()[done].downstream() {
                let inst = &mut self.instances[d];
                if inst.record.state != TaskState::None || inst.decided {
                    continue;
                }
                inst.upstream.add(&finished);
                match trigger::decide(self.dag.tasks()[d].trigger_rule(), &inst.upstream) {
                    Decision::Wait => {}
                    Decision::Run => {
                        self.instances[d].decided = true;
                        self.ready.push(d, self.dag.tasks()[d].priority());
                    }
                    Decision::UpstreamFailed => {
                        self.set_state(d, TaskState::UpstreamFailed, None);
                        settled.push((d, UpstreamCounts::one(TaskState::UpstreamFailed)));
                    }
                    Decision::Skip => {
                        self.set_state(d, TaskState::Skipped, None);
                        settled.push((d, UpstreamCounts::one(TaskState::Skipped)));
                    }
                }
            }
        }
    }

    fn set_state(&mut self, index: usize, state: TaskState, error: Option<String>) {
        let email = self
            .task(index)
            .emails_on(state)
            .then(|| self.email_alert(index))
            .flatten();
        let inst = &mut self.instances[index];
        debug_assert!(
            inst.record.state.can_become(state),
            "{} -> {state}",
            inst.record.state
        );
        inst.record.state = state;
        if error.is_some() || state == TaskState::Running {
            inst.record.error = error;
        }
        self.record_change(index);
        let inst = &self.instances[index];
        // Only states with callbacks pay for an event (the hot path has none).
        let callbacks = self
            .task(index)
            .spec()
            .callbacks()
            .for_state(state.as_str());
        if !callbacks.is_empty() || email.is_some() {
            let event = CallbackEvent {
                dag_id: self.scope.dag_id.clone(),
                run_id: self.scope.run_id.clone(),
                logical_date: self.scope.logical_date,
                task_id: Some(inst.record.key.task_id.clone()),
                map_index: inst.record.key.map_index.get(),
                try_number: inst.record.try_number,
                state: state.as_str(),
                error: inst.record.error.clone(),
            };
            self.callbacks_due.extend(
                callbacks
                    .iter()
                    .cloned()
                    .chain(email)
                    .map(|callback| (callback, event.clone())),
            );
        }
        if let Some(observer) = &self.executor.observer {
            let ends_try = state.is_finished() || state == TaskState::UpForRetry;
            observer(&TaskEvent {
                task_id: inst.record.key.task_id.clone(),
                map_index: inst.record.key.map_index.get(),
                state,
                try_number: inst.record.try_number,
                duration: if ends_try { inst.elapsed } else { None },
                error: inst.record.error.clone(),
            });
        }
    }

    /// Puts the instance's record in the batch being collected (once per batch).
    fn record_change(&mut self, index: usize) {
        let inst = &mut self.instances[index];
        let change = Change::Task {
            record: inst.record.clone(),
            expect: inst.stored,
        };
        match inst.pending {
            Some(at) => self.changes[at] = change,
            None => {
                inst.pending = Some(self.changes.len());
                self.changes.push(change);
                self.batched.push(index);
            }
        }
    }

    /// The callback that mails task `index`'s `email` recipients.
    #[cfg(feature = "email")]
    fn email_alert(&self, index: usize) -> Option<Callback> {
        let task = self.task(index);
        // The addresses were checked when the DAG was built.
        match crate::notify::EmailNotifier::new(task.email()) {
            Ok(notifier) => Some(Arc::new(
                notifier
                    .shared_smtp(self.executor.smtp.clone())
                    .into_callback(),
            )),
            Err(error) => {
                tracing::error!(task = %task.id(), "no email alert: {error}");
                None
            }
        }
    }

    /// Without the `email` feature a DAG whose tasks have `email` does not build.
    #[cfg(not(feature = "email"))]
    fn email_alert(&self, _index: usize) -> Option<Callback> {
        None
    }

    /// Applies the collected batch in one transaction.
    fn commit(&mut self) -> Result<(), RunError> {
        self.executor.store.apply(&self.changes)?;
        self.close_batch();
        self.changes.clear();
        callbacks::dispatch(
            &mut self.callback_tasks,
            std::mem::take(&mut self.callbacks_due),
        );
        Ok(())
    }

    /// Hands the collected batch to a blocking thread; `launches` start when it is
    /// durable. Later changes go to a new batch.
    fn commit_in_background(&mut self, launches: Vec<Launch>) -> InFlight {
        self.close_batch();
        let batch = std::mem::take(&mut self.changes);
        let store = self.executor.store.clone();
        InFlight {
            commit: tokio::task::spawn_blocking(move || store.apply(&batch)),
            launches,
            callbacks: std::mem::take(&mut self.callbacks_due),
        }
    }

    /// New changes of any instance start a new record in the next batch, expecting what
    /// this batch writes.
    fn close_batch(&mut self) {
        for index in self.batched.drain(..) {
            let inst = &mut self.instances[index];
            if let Some(Change::Task { record, .. }) =
                inst.pending.and_then(|at| self.changes.get(at))
            {
                inst.stored = Expect::of(record);
            }
            inst.pending = None;
        }
    }

    /// Starts tasks whose running state is durable.
    fn launch(&mut self, launches: Vec<Launch>) {
        for launch in launches {
            let (index, ctx) = match launch {
                Launch::Task(index, ctx) => (index, ctx),
                Launch::Expand(index) => {
                    self.expand(index);
                    continue;
                }
            };
            let inputs = self.gather_inputs(index);
            self.spawn(index, ctx, inputs);
        }
    }

    fn run_change(&self, state: RunState, end: Option<DateTime<Utc>>) -> Change {
        Change::Run {
            dag_id: self.scope.dag_id.clone(),
            run_id: self.scope.run_id.clone(),
            state,
            start: Some(self.started),
            end,
        }
    }

    fn finish(&mut self, duration: Duration) -> Result<RunSummary, RunError> {
        // Tries abandoned by a stop or a timeout give their slots back.
        for claim in self.held.iter_mut().filter_map(Option::take) {
            self.executor.pools.release(&claim);
        }
        if self.stopped && self.instances.iter().any(|i| !i.record.state.is_finished()) {
            // Stopped before the end: the run stays `running` and is resumed later.
            self.commit()?;
            return Ok(self.summary(RunState::Running, duration));
        }
        // A leaf that failed (or never ran because of a failure) fails the run, as in Airflow;
        // so does a timeout.
        let failed = self.timed_out
            || self
                .dag
                .tasks()
                .iter()
                .zip(&self.instances)
                .any(|(task, inst)| {
                    task.downstream().is_empty()
                        && matches!(
                            inst.record.state,
                            TaskState::Failed | TaskState::UpstreamFailed
                        )
                })
            || self.instances.iter().any(|i| !i.record.state.is_finished());
        let state = if failed {
            RunState::Failed
        } else {
            RunState::Success
        };
        self.changes.push(self.run_change(state, Some(Utc::now())));
        let event = CallbackEvent {
            dag_id: self.scope.dag_id.clone(),
            run_id: self.scope.run_id.clone(),
            logical_date: self.scope.logical_date,
            task_id: None,
            map_index: None,
            try_number: 0,
            state: state.as_str(),
            error: None,
        };
        for callback in self.dag.callbacks().for_state(state.as_str()) {
            self.callbacks_due.push((callback.clone(), event.clone()));
        }
        self.commit()?;
        Ok(self.summary(state, duration))
    }

    fn summary(&self, state: RunState, duration: Duration) -> RunSummary {
        // Each task in the DAG's order; a mapped task as its instances, in map order.
        let tasks = (0..self.dag.tasks().len())
            .flat_map(|index| match &self.instances[index].expansion {
                Some(expansion) => expansion.children.clone(),
                None => index..index + 1,
            })
            .map(|index| {
                let inst = &self.instances[index];
                TaskSummary {
                    task_id: inst.record.key.task_id.clone(),
                    map_index: inst.record.key.map_index.get(),
                    state: inst.record.state,
                    tries: inst.record.try_number,
                    duration: inst.elapsed,
                    error: inst.record.error.clone(),
                }
            })
            .collect();
        RunSummary {
            run_id: self.scope.run_id.clone(),
            logical_date: self.scope.logical_date,
            state,
            duration,
            tasks,
            dag_id: self.scope.dag_id.clone(),
            xcoms: self.executor.store.clone() as Arc<dyn XComStore>,
            objects: self.executor.objects.clone(),
        }
    }
}

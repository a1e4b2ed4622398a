//! The coordinating loop of one DAG run: it feeds the [`Tracker`] what happened, commits
//! what it decided, and only then offers the instances it started to a [`TaskExecutor`].
//!
//! Each turn applies the batch of changes collected since the last turn in one
//! [`RunStore::apply`] call (a group commit), so a task never starts before its inputs and
//! its upstreams' success are durable, and a try is counted durably before it begins. The
//! loop does the I/O the tracker must not: it reads inputs and mapped lists from the store,
//! admits instances to pools, arms timers, flushes the running tries' log lines with each
//! commit (and at least every [`LOG_FLUSH`]), and publishes events.
//!
//! [`RunStore::apply`]: crate::store::RunStore::apply

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::task::JoinSet;

use super::lease::{self, RunLease};
use super::tracker::{Ready, Started, Tracker, TrackerOptions, TryOutcome};
use crate::error::RunError;
use crate::events::Events;
use crate::events::RunEvent;
use crate::executor::{Finished, TaskExecutor, Work};
use crate::graph::{BoundInput, Dag, MappedInput};
use crate::ids::{MapIndex, RunId, TaskId, TaskInstanceKey};
use crate::logs::TryLog;
use crate::metrics::{LoopKind, Metrics, TurnTimer};
use crate::objects::Objects;
use crate::plan::Plan;
use crate::pools::{Claim, Grant};
use crate::state::{RunState, TaskState};
use crate::store::Store;
use crate::store::{
    Change, DagRunRecord, SlotAsk, SlotRelease, StoreError, TaskInstanceRecord, XComStore,
};
use crate::summary::{RunSummary, TaskSummary};
use crate::task::TaskError;
use crate::task::callbacks::{self, Callback, CallbackEvent};
use crate::task::context::{RunScope, TaskContext};
use crate::task::{InputSource, PendingInput, PendingValue};
use crate::time::timetable::DataInterval;
use crate::xcom::list as mapping;
use crate::xcom::{RETURN_VALUE, StoredXCom, XComBlob};

/// The most starts one batch asks the pools for.
const MAX_ASKED: usize = 256;

/// How many ready tasks a turn may find waiting for full pools before it stops looking.
const MAX_BLOCKED_SCAN: usize = 64;

/// The longest a running try's log lines wait before they are committed, when nothing
/// else commits meanwhile (a long task is readable while it runs, and survives a kill).
pub(crate) const LOG_FLUSH: Duration = Duration::from_millis(500);

/// How often an instance waiting for the run before (`depends_on_past`) looks again.
const PAST_RECHECK: Duration = Duration::from_secs(1);

/// The elements of each mapped argument of one mapped task, in parameter order (the
/// results of a mapped upstream task stay where they are stored until an instance runs).
type Elements = Arc<Vec<Arc<[StoredXCom]>>>;

/// A batch being committed on a blocking thread, and what waits for it.
struct InFlight {
    commit: tokio::task::JoinHandle<Result<Vec<Grant>, StoreError>>,
    launches: Vec<Launch>,
    /// The starts of the batch that asked for slots, in the order of their answers.
    asking: Vec<(usize, Claim)>,
    alerts: Vec<(Callback, CallbackEvent)>,
}

/// The run before a run (`depends_on_past`): its instances that did not succeed or skip.
struct PastView {
    read_at: Instant,
    /// `None`: there is no run before.
    run_id: Option<RunId>,
    /// The state of each such instance.
    states: HashMap<(TaskId, MapIndex), TaskState>,
    /// Per task, one such instance.
    unfinished: HashMap<TaskId, (TaskInstanceKey, TaskState)>,
}

/// What one turn's admission found: the instances that wait for slots, and those whose
/// start asks the store for them (with the claim each asks for).
#[derive(Default)]
struct Admitted {
    blocked: Vec<usize>,
    asking: Vec<(usize, Claim)>,
}

/// What starts once the batch that prepared it is durable: a task instance, or the
/// expansion of a mapped task (which reads its upstream lists from the store).
enum Launch {
    Task(usize, TaskContext),
    Expand(usize),
    /// A mapped task group (an index into `Dag::groups`).
    ExpandGroup(usize),
}

/// What every run of one executor shares: where it records, its object store, pools,
/// events, stop signal and limits.
#[derive(Clone)]
pub(crate) struct RunSettings {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) objects: Option<Objects>,
    /// This process as the owner of run leases and slot holds (`host:pid:nonce`).
    pub(crate) owner: Arc<str>,
    /// Woken when a run of this process gives slots back, so waiting runs look again.
    pub(crate) slots_freed: Arc<tokio::sync::Notify>,
    pub(crate) events: Events,
    /// Where loop turns, waits for a start and queue depth are counted, when metrics are
    /// on.
    pub(crate) metrics: Option<Arc<Metrics>>,
    /// Turns true when runs must stop (gracefully, within `grace`).
    pub(crate) stop: Option<tokio::sync::watch::Receiver<bool>>,
    pub(crate) grace: Duration,
    /// The most instances one mapped task may expand to.
    pub(crate) max_map_length: usize,
    /// How tasks start runs of other DAGs.
    pub(crate) triggers: Arc<dyn crate::xcom::ports::RunTrigger>,
    /// Where tasks' `email` alerts go; `None` reads `FLOW_SMTP_*` when one is sent.
    #[cfg(feature = "email")]
    pub(crate) smtp: Option<Arc<crate::notify::SmtpConfig>>,
}

pub(crate) struct RunLoop<'a> {
    runtime: &'a RunSettings,
    tracker: Tracker<'a>,
    executor: Box<dyn TaskExecutor>,
    scope: Arc<RunScope>,
    started: DateTime<Utc>,
    /// The instances holding pool slots in the store, with what they hold.
    held: HashMap<usize, Claim>,
    /// Claims of tries that ended this turn: the next instance with the same claim takes
    /// its slots over without asking the store; the rest are given back at the end of the
    /// turn.
    freed: Vec<Claim>,
    /// Starts in the batch being collected that ask the store for their slots
    /// ([`Change::Start`]), in batch order.
    asking: Vec<(usize, Claim)>,
    /// Whether the store refused slots in the last commit: asking again before the next
    /// commit (ours gives slots back) or a wait for others' releases only repeats the
    /// answer.
    refused_slots: bool,
    /// The most starts the next batch asks slots for: one after a refusal (behind a full
    /// pool a refused start is undone work), doubling while every ask is granted.
    ask_limit: usize,
    /// Instances started into a batch that is not durable yet (not offered yet).
    launching: usize,
    /// The log buffers of running tries whose lines are captured.
    logs: HashMap<usize, TryLog>,
    /// The elements of expanded mapped tasks, read once.
    elements: HashMap<usize, Elements>,
    /// The same for mapped task groups, by group.
    group_elements: HashMap<usize, Elements>,
    /// Retries and pokes waiting for their time.
    timers: BinaryHeap<Reverse<(tokio::time::Instant, usize)>>,
    /// Instances said to wait for the run before (`depends_on_past`), logged once.
    past_waits: HashSet<usize>,
    /// The run before, as last read for `depends_on_past`.
    past: Option<Arc<PastView>>,
    /// Callbacks running.
    callback_tasks: JoinSet<()>,
    /// Whether the executor was told to stop before the run ended.
    stopped: bool,
    /// The run to record with the first batch, when it is new ([`RunLoop::creating`]).
    create: Option<DagRunRecord>,
    /// The run's `running` event, published once the first batch is durable.
    announce: Option<RunEvent>,
    /// When each instance's start was decided, while metrics are on (for the wait
    /// between a claim and the start).
    claimed_at: HashMap<usize, Instant>,
    /// The ready instances this run last counted into the metrics' queue depth.
    queue_reported: i64,
    /// The run's span, the parent of its tries' spans (see [`crate::traces`]); it ends
    /// when the loop is dropped.
    span: tracing::Span,
}

impl<'a> RunLoop<'a> {
    pub(crate) fn new(
        runtime: &'a RunSettings,
        plan: &'a Plan<'a>,
        run: &DagRunRecord,
        executor: Box<dyn TaskExecutor>,
    ) -> Self {
        let dag = plan.dag();
        let params = match &run.conf {
            serde_json::Value::Object(map) => map.clone(),
            _ => serde_json::Map::new(),
        };
        let store = &runtime.store;
        let data_interval = DataInterval::new(run.data_interval_start, run.data_interval_end);
        let scope = Arc::new(RunScope {
            dag_id: dag.id().clone(),
            run_id: run.run_id.clone(),
            run_type: run.run_type,
            logical_date: run.logical_date,
            data_interval,
            next_data_interval: dag
                .timetable()
                .following_interval(&data_interval, &dag.restriction()),
            params: Arc::new(params),
            xcoms: Arc::new(store.clone()),
            runs: Arc::new(store.clone()),
            triggers: runtime.triggers.clone(),
            objects: runtime.objects.clone(),
        });
        let options = TrackerOptions {
            max_map_length: runtime.max_map_length,
            events: runtime.events.is_observed(),
            #[cfg(feature = "email")]
            smtp: runtime.smtp.clone(),
        };
        Self {
            runtime,
            tracker: Tracker::new(plan, run, options),
            executor,
            scope,
            started: run.start.unwrap_or_else(Utc::now),
            held: HashMap::new(),
            freed: Vec::new(),
            asking: Vec::new(),
            refused_slots: false,
            ask_limit: MAX_ASKED,
            launching: 0,
            logs: HashMap::new(),
            elements: HashMap::new(),
            group_elements: HashMap::new(),
            timers: BinaryHeap::new(),
            past_waits: HashSet::new(),
            past: None,
            callback_tasks: JoinSet::new(),
            stopped: false,
            create: None,
            announce: None,
            claimed_at: HashMap::new(),
            queue_reported: 0,
            span: crate::traces::run_span(dag.id(), &run.run_id),
        }
    }

    /// The run is new: its first batch records it (a run of that id already there is
    /// [`RunError::RunExists`], and nothing is written).
    pub(crate) fn creating(mut self, run: DagRunRecord) -> Self {
        self.create = Some(run);
        self
    }

    fn dag(&self) -> &'a Dag {
        self.tracker.dag()
    }

    /// Tries running or about to be offered.
    fn busy(&self) -> usize {
        self.executor.running() + self.launching
    }

    /// Restores what `stored` records (empty for a new run), then runs to the end.
    pub(crate) async fn start(
        mut self,
        stored: Vec<TaskInstanceRecord>,
    ) -> Result<RunSummary, RunError> {
        let result = self.drive(stored).await;
        if result.is_err() {
            self.give_back_slots();
        }
        // The run waits for nothing any more, however it ended.
        self.queue_reported_to(0);
        result
    }

    async fn drive(&mut self, stored: Vec<TaskInstanceRecord>) -> Result<RunSummary, RunError> {
        let clock = Instant::now();
        let store = self.runtime.store.clone();
        let begin = match self.create.take() {
            Some(mut run) => {
                run.state = RunState::Running;
                run.start = Some(self.started);
                Change::CreateRun(run)
            }
            None => self.run_change(RunState::Running, None),
        };
        self.tracker.push_change(begin);
        self.announce = Some(RunEvent {
            dag_id: self.scope.dag_id.clone(),
            run_id: self.scope.run_id.clone(),
            state: RunState::Running,
        });
        // A new run takes its lease in its first batch; a run with a past is taken over
        // first (a process of this host that died gives it up at once).
        let mut lease = if stored.is_empty() {
            let (lease, take) = RunLease::in_first_batch(
                store.clone(),
                &self.scope.dag_id,
                &self.scope.run_id,
                self.runtime.owner.clone(),
            );
            self.tracker.push_change(take);
            lease
        } else {
            RunLease::acquire(
                store.clone(),
                &self.scope.dag_id,
                &self.scope.run_id,
                self.runtime.owner.clone(),
            )?
        };
        // What tries of this run held before (a process that died) is no one's now: the
        // lease says this loop drives the run, and it has started nothing yet.
        if !stored.is_empty() {
            store.forget_run_slots(&self.scope.dag_id, &self.scope.run_id, None)?;
        }
        let mut reschedules = std::collections::HashMap::new();
        for record in stored
            .iter()
            .filter(|r| r.state == TaskState::UpForReschedule)
        {
            let pokes = store.reschedules(&record.key, record.try_number)?;
            reschedules.insert(record.key.clone(), pokes);
        }
        self.tracker.restore(stored, &reschedules, Utc::now());
        // Tasks prepared into the batch being collected; they start once it is durable.
        let mut launches: Vec<Launch> = Vec::new();
        let mut in_flight: Option<InFlight> = None;
        let mut stop = self.runtime.stop.clone();
        let mut stop_deadline: Option<tokio::time::Instant> = None;
        let capacity = self.executor.capacity();
        let mut renew = tokio::time::interval(lease::RENEW_EVERY);
        renew.reset();
        let mut log_flush = tokio::time::interval(LOG_FLUSH);
        log_flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // `dagrun_timeout` counts from the run's first start, across resumes.
        let timeout_at = self.dag().dagrun_timeout().map(|timeout| {
            let elapsed = (Utc::now() - self.started).to_std().unwrap_or_default();
            tokio::time::Instant::now() + timeout.saturating_sub(elapsed)
        });
        let metrics = self.runtime.metrics.clone();
        loop {
            let turn = TurnTimer::start(metrics.as_deref(), LoopKind::Run);
            self.absorb();
            let stopping = stop.as_ref().is_some_and(|rx| *rx.borrow());
            if stopping && stop_deadline.is_none() {
                stop_deadline = Some(tokio::time::Instant::now() + self.runtime.grace);
                self.stopped = true;
            }
            let Admitted { blocked, asking } = if stopping {
                Admitted::default()
            } else {
                self.admit(capacity, &mut launches)?
            };
            // Releases go first in the batch, so the starts after them may take the slots.
            self.release_freed();
            for (index, claim) in asking {
                self.start_asking(index, claim, &mut launches);
            }
            let slots_ran_out = !blocked.is_empty() || self.busy() >= capacity;
            // Tasks waiting for slots keep their place by priority.
            for index in blocked {
                self.tracker.push_back(index);
            }
            self.absorb();
            // Nothing runs, starts, waits or is being committed: the run ends, and its end
            // goes into the batch collected so far (one commit, not two).
            if in_flight.is_none()
                && launches.is_empty()
                && self.busy() == 0
                && (self.timers.is_empty() || stopping)
                && (stopping || !self.tracker.has_ready())
            {
                break;
            }
            if in_flight.is_none() && (self.tracker.has_changes() || !launches.is_empty()) {
                self.flush_logs();
                if !self.tracker.has_changes() {
                    // Nothing new to make durable (an expansion whose inputs already are).
                    self.launch(std::mem::take(&mut launches));
                } else if store.commits_in_background() && self.executor.running() > 0 {
                    // Tasks are running: commit on another thread and keep handling them.
                    in_flight = Some(self.commit_in_background(std::mem::take(&mut launches)));
                } else {
                    self.commit(&mut launches)?;
                    self.launch(std::mem::take(&mut launches));
                }
            }
            // An expansion launched just now queued its instances: start them at once
            // rather than waiting for a slot to be released.
            if !stopping && !slots_ran_out && self.tracker.has_ready() {
                continue;
            }
            self.absorb();
            // Pending retries and pokes are durable (`up_for_retry`, `up_for_reschedule`)
            // and resume with the run.
            let waiting_for_slots = !stopping && self.tracker.has_ready();
            if self.busy() == 0
                && (self.timers.is_empty() || stopping)
                && in_flight.is_none()
                && !waiting_for_slots
            {
                break;
            }
            if self.tracker.has_changes() && in_flight.is_none() {
                // Decided while launching (an expansion that failed): commit first.
                continue;
            }
            self.report_queue_depth();
            drop(turn);
            let next_timer = self.timers.peek().map(|Reverse((at, _))| *at);
            let running = self.executor.running();
            let has_logs = !self.logs.is_empty();
            tokio::select! {
                () = async { tokio::time::sleep_until(timeout_at.unwrap_or_else(tokio::time::Instant::now)).await },
                    if timeout_at.is_some() && in_flight.is_none() => {
                    self.tracker.time_out(Utc::now());
                    self.abandon();
                    break;
                }
                Some(()) = async { stop.as_mut()?.changed().await.ok() }, if stop.is_some() && !stopping => {}
                // Slots held by other runs: wake on a release, or look again shortly (a
                // release between the claim and this wait would otherwise be missed).
                () = async {
                    tokio::select! {
                        () = self.runtime.slots_freed.notified() => {}
                        () = tokio::time::sleep(Duration::from_millis(50)) => {}
                    }
                }, if waiting_for_slots && running == 0 => self.refused_slots = false,
                _ = renew.tick() => {
                    if !lease.renew()? {
                        return Err(RunError::LeaseLost {
                            dag_id: self.scope.dag_id.clone(),
                            run_id: self.scope.run_id.clone(),
                        });
                    }
                    store.renew_slots(&self.runtime.owner, Utc::now(), lease::LEASE)?;
                }
                () = async { tokio::time::sleep_until(next_timer.unwrap_or_else(tokio::time::Instant::now)).await },
                    if next_timer.is_some() && !stopping => {
                    let now = tokio::time::Instant::now();
                    while let Some(Reverse((at, index))) = self.timers.peek().copied() {
                        if at > now {
                            break;
                        }
                        self.timers.pop();
                        self.tracker.due(index);
                    }
                }
                _ = log_flush.tick(), if has_logs && in_flight.is_none() => self.flush_logs(),
                () = async { tokio::time::sleep_until(stop_deadline.unwrap_or_else(tokio::time::Instant::now)).await },
                    if stop_deadline.is_some() && in_flight.is_none() => {
                    tracing::warn!(
                        run = %self.scope.run_id,
                        "{} task(s) still running after the grace period; they are abandoned and retried on resume",
                        self.executor.running()
                    );
                    self.abandon();
                    break;
                }
                committed = async { (&mut in_flight.as_mut()?.commit).await.ok() }, if in_flight.is_some() => {
                    let flight = in_flight.take();
                    let grants = match committed {
                        Some(Ok(grants)) => grants,
                        Some(Err(e)) => return Err(lease::owned(e)),
                        None => return Err(RunError::Runtime("the commit thread was lost".into())),
                    };
                    self.committed();
                    if let Some(mut flight) = flight {
                        self.answer(flight.asking, grants, &mut flight.launches)?;
                        callbacks::dispatch(&mut self.callback_tasks, flight.alerts);
                        self.launch(flight.launches);
                    }
                }
                Some(first) = self.executor.next_finished(), if running > 0 => {
                    self.handle(first);
                    while let Some(next) = self.executor.try_next_finished() {
                        self.handle(next);
                    }
                }
            }
        }
        let summary = self.finish(clock.elapsed(), &mut lease)?;
        drop(lease);
        while self.callback_tasks.join_next().await.is_some() {}
        Ok(summary)
    }

    /// Starts what is ready while the executor has room: mapped tasks expand (they take no
    /// slot); a task instance takes over the slots of a try of this turn that ended with
    /// the same claim, or asks the store for them with the batch that starts it (see
    /// [`Change::Start`]), so processes sharing the store never oversubscribe a pool or a
    /// DAG's `max_active_tasks`. Returns the instances that must wait for slots, and those
    /// to ask for them.
    fn admit(&mut self, capacity: usize, launches: &mut Vec<Launch>) -> Result<Admitted, RunError> {
        let mut blocked = Vec::new();
        let mut asking = Vec::new();
        while self.busy() + asking.len() < capacity {
            let index = match self.tracker.pop_ready() {
                Some(Ready::Expand(index)) => {
                    launches.push(Launch::Expand(index));
                    continue;
                }
                Some(Ready::ExpandGroup(group)) => {
                    launches.push(Launch::ExpandGroup(group));
                    continue;
                }
                Some(Ready::Task(index)) => index,
                None => break,
            };
            if let Some(reason) = self.past_blocker(index)? {
                self.wait_for_past(index, &reason);
                continue;
            }
            let claim = self.claim(index);
            // Slots a try of this turn gave up pass straight on: no store round trip.
            match self.freed.iter().rposition(|c| *c == claim) {
                Some(at) => {
                    let claim = self.freed.swap_remove(at);
                    self.start_try(index, claim, launches);
                }
                // Not before something could have freed slots (the store would refuse),
                // nor more than the store is likely to grant.
                None if self.refused_slots || asking.len() >= self.ask_limit => {
                    blocked.push(index);
                    if blocked.len() >= MAX_BLOCKED_SCAN {
                        break;
                    }
                }
                None => asking.push((index, claim)),
            }
        }
        Ok(Admitted { blocked, asking })
    }

    /// Why the instance `index` must wait for the run before it (`depends_on_past`:
    /// its own instance there must have succeeded or been skipped; `wait_for_downstream`:
    /// the instances of its direct downstream tasks there too), or `None` when it may
    /// start. The first run, and an instance with no counterpart in the run before, start.
    fn past_blocker(&mut self, index: usize) -> Result<Option<String>, RunError> {
        let task = self.tracker.task(index);
        if !task.depends_on_past() {
            return Ok(None);
        }
        let key = self.tracker.instance(index).record.key.clone();
        let downstream: Vec<TaskId> = if task.wait_for_downstream() {
            task.downstream()
                .iter()
                .map(|&child| self.dag()[child].id().clone())
                .collect()
        } else {
            Vec::new()
        };
        let past = self.past_view()?;
        let Some(run_id) = &past.run_id else {
            return Ok(None);
        };
        if let Some(&state) = past.states.get(&(key.task_id.clone(), key.map_index)) {
            return Ok(Some(format!(
                "its instance in run `{run_id}` is {state} (depends_on_past)"
            )));
        }
        Ok(downstream.iter().find_map(|child| {
            let (key, state) = past.unfinished.get(child)?;
            Some(format!("{key} is {state} (wait_for_downstream)"))
        }))
    }

    /// The run before this one as `depends_on_past` sees it, read again once it is older
    /// than half of [`PAST_RECHECK`] (so many waiting instances share one read).
    fn past_view(&mut self) -> Result<Arc<PastView>, RunError> {
        if let Some(past) = self
            .past
            .as_ref()
            .filter(|past| past.read_at.elapsed() < PAST_RECHECK / 2)
        {
            return Ok(past.clone());
        }
        let store = &self.runtime.store;
        let previous = store.previous_run(&self.scope.dag_id, self.scope.logical_date)?;
        let mut view = PastView {
            read_at: Instant::now(),
            run_id: previous.as_ref().map(|run| run.run_id.clone()),
            states: HashMap::new(),
            unfinished: HashMap::new(),
        };
        if let Some(previous) = previous {
            for instance in store.task_instances(&self.scope.dag_id, &previous.run_id)? {
                if matches!(instance.state, TaskState::Success | TaskState::Skipped) {
                    continue;
                }
                let key = instance.key;
                view.states
                    .insert((key.task_id.clone(), key.map_index), instance.state);
                view.unfinished
                    .entry(key.task_id.clone())
                    .or_insert((key, instance.state));
            }
        }
        let view = Arc::new(view);
        self.past = Some(view.clone());
        Ok(view)
    }

    /// Looks again at the run before in [`PAST_RECHECK`]; says why the first time.
    fn wait_for_past(&mut self, index: usize, reason: &str) {
        if self.past_waits.insert(index) {
            tracing::info!(
                run = %self.scope.run_id,
                "{} waits for the run before: {reason}",
                self.tracker.instance(index).record.key
            );
        }
        self.timers
            .push(Reverse((tokio::time::Instant::now() + PAST_RECHECK, index)));
    }

    /// Starts an instance that holds its slots: it runs once the batch is durable.
    fn start_try(&mut self, index: usize, claim: Claim, launches: &mut Vec<Launch>) {
        self.held.insert(index, claim);
        let started = self.tracker.start(index, Utc::now());
        launches.push(Launch::Task(index, self.context(index, started)));
        self.launching += 1;
        self.note_claim(index);
    }

    /// Notes when the start of `index` was decided, for the metrics.
    fn note_claim(&mut self, index: usize) {
        if self.runtime.metrics.is_some() {
            self.claimed_at.insert(index, Instant::now());
        }
    }

    /// Counts this run's ready instances into the metrics' queue depth.
    fn report_queue_depth(&mut self) {
        if self.runtime.metrics.is_some() {
            let ready = i64::try_from(self.tracker.ready_len()).unwrap_or(i64::MAX);
            self.queue_reported_to(ready);
        }
    }

    fn queue_reported_to(&mut self, ready: i64) {
        if let Some(metrics) = &self.runtime.metrics
            && ready != self.queue_reported
        {
            metrics.queue_depth_change(ready - self.queue_reported);
            self.queue_reported = ready;
        }
    }

    /// Starts an instance whose slots the store grants or refuses with the batch: it runs
    /// once the batch is durable and granted it ([`RunLoop::answer`]).
    fn start_asking(&mut self, index: usize, claim: Claim, launches: &mut Vec<Launch>) {
        let now = Utc::now();
        let ask = SlotAsk {
            owner: self.runtime.owner.to_string(),
            claim: claim.clone(),
            now,
            until: crate::store::lease_end(now, lease::LEASE),
        };
        let started = self.tracker.start_asking(index, now, ask);
        launches.push(Launch::Task(index, self.context(index, started)));
        self.launching += 1;
        self.asking.push((index, claim));
        self.note_claim(index);
    }

    /// Takes in the store's answers to the starts of a committed batch: a granted start
    /// holds its slots and is announced; a refused one is undone and waits (or fails, if
    /// its pool cannot ever hold it), and does not launch.
    fn answer(
        &mut self,
        asking: Vec<(usize, Claim)>,
        grants: Vec<Grant>,
        launches: &mut Vec<Launch>,
    ) -> Result<(), RunError> {
        self.refused_slots = false;
        if asking.len() != grants.len() {
            return Err(RunError::Runtime(format!(
                "the store answered {} of {} requests for pool slots",
                grants.len(),
                asking.len()
            )));
        }
        let asked = asking.len();
        let mut undone = HashSet::new();
        for ((index, claim), grant) in asking.into_iter().zip(grants) {
            if grant == Grant::Granted {
                self.held.insert(index, claim);
                let (events, alerts) = self.tracker.confirm(index);
                for event in events {
                    self.runtime.events.task(event);
                }
                callbacks::dispatch(&mut self.callback_tasks, alerts);
                continue;
            }
            self.tracker.unstart(index);
            undone.insert(index);
            match grant {
                Grant::Granted => {}
                Grant::PoolFull | Grant::DagFull => {
                    self.refused_slots = true;
                    self.tracker.push_back(index);
                }
                Grant::UnknownPool => self.tracker.refuse(
                    index,
                    format!("pool `{}` does not exist", claim.pool),
                    Utc::now(),
                ),
                Grant::TooBig { size } => self.tracker.refuse(
                    index,
                    format!(
                        "the task takes {} slots of pool `{}`, which has {size}",
                        claim.slots, claim.pool
                    ),
                    Utc::now(),
                ),
            }
        }
        if self.refused_slots {
            self.ask_limit = 1;
        } else if asked >= self.ask_limit {
            self.ask_limit = (self.ask_limit * 2).min(MAX_ASKED);
        }
        if !undone.is_empty() {
            launches.retain(
                |launch| !matches!(launch, Launch::Task(index, _) if undone.contains(index)),
            );
            self.launching = self.launching.saturating_sub(undone.len());
        }
        Ok(())
    }

    /// Gives back the slots of this turn's ended tries that nothing took over, one change
    /// per pool.
    fn release_freed(&mut self) {
        let freed = std::mem::take(&mut self.freed);
        for release in self.releases(freed) {
            self.tracker.push_change(Change::ReleaseSlots(release));
        }
    }

    /// What giving back `claims` (all of this run) takes, one release per pool.
    fn releases(&self, claims: Vec<Claim>) -> Vec<SlotRelease> {
        let mut releases: Vec<SlotRelease> = Vec::new();
        for claim in claims {
            match releases.iter_mut().find(|r| r.pool == claim.pool) {
                Some(release) => {
                    release.slots += claim.slots;
                    release.tasks += 1;
                }
                None => releases.push(SlotRelease {
                    dag_id: self.scope.dag_id.clone(),
                    run_id: self.scope.run_id.clone(),
                    owner: self.runtime.owner.to_string(),
                    pool: claim.pool,
                    slots: claim.slots,
                    tasks: 1,
                }),
            }
        }
        releases
    }

    /// After a failure that ends the loop: gives back every slot this run holds, directly
    /// (the batch that would have carried it may be what failed).
    fn give_back_slots(&mut self) {
        self.held.clear();
        self.freed.clear();
        // Everything this process holds for the run, also what a failed batch was to
        // give back.
        let owner = Some(&*self.runtime.owner);
        let forgotten =
            self.runtime
                .store
                .forget_run_slots(&self.scope.dag_id, &self.scope.run_id, owner);
        if let Err(e) = forgotten {
            tracing::warn!(run = %self.scope.run_id, "could not give back pool slots: {e}");
        }
    }

    /// Takes in what the tracker decided that is not a change: timers to arm and events
    /// to publish.
    fn absorb(&mut self) {
        let now = tokio::time::Instant::now();
        for timer in self.tracker.take_timers() {
            self.timers.push(Reverse((now + timer.delay, timer.index)));
        }
        for event in self.tracker.take_events() {
            self.runtime.events.task(event);
        }
    }

    /// Forgets every running try (a timeout, or the end of a stop's grace period).
    fn abandon(&mut self) {
        self.executor.abandon();
        self.timers.clear();
        self.logs.clear();
        self.launching = 0;
    }

    /// The context of a try that starts.
    fn context(&self, index: usize, started: Started) -> TaskContext {
        TaskContext::new(
            self.scope.clone(),
            self.tracker.task(index).id().clone(),
            started.map_index,
            started.try_number,
        )
        .with_pokes(started.pokes)
    }

    /// What a task instance asks of the pools before it starts.
    fn claim(&self, index: usize) -> Claim {
        let task = self.tracker.task(index);
        Claim {
            pool: task.pool().to_string(),
            slots: task.pool_slots(),
            dag: self.dag().id().clone(),
            dag_limit: self.dag().max_active_tasks(),
        }
    }

    /// Moves the lines the running tries logged since the last commit into the batch.
    fn flush_logs(&mut self) {
        for (&index, log) in &self.logs {
            let lines = log.take();
            if !lines.is_empty() {
                let record = &self.tracker.instance(index).record;
                let change = Change::Log {
                    key: record.key.clone(),
                    try_number: record.try_number,
                    lines,
                };
                self.tracker.push_change(change);
            }
        }
    }

    /// Applies the collected batch in one transaction, takes in the answers to its starts
    /// (the refused ones leave `launches`), then sends its alerts.
    fn commit(&mut self, launches: &mut Vec<Launch>) -> Result<(), RunError> {
        let changes = self.tracker.take_changes();
        let alerts = self.tracker.take_alerts();
        let asking = std::mem::take(&mut self.asking);
        let grants = self.runtime.store.apply(&changes).map_err(lease::owned)?;
        self.committed();
        self.answer(asking, grants, launches)?;
        callbacks::dispatch(&mut self.callback_tasks, alerts);
        Ok(())
    }

    /// A batch is durable: runs waiting for slots look again (it may have given some
    /// back), and the run is announced after its first batch.
    fn committed(&mut self) {
        self.runtime.slots_freed.notify_waiters();
        if let Some(event) = self.announce.take() {
            self.runtime.events.run(event);
        }
    }

    /// Hands the collected batch to a blocking thread; `launches` start when it is
    /// durable (and, for starts that ask for slots, granted). Later changes go to a new
    /// batch.
    fn commit_in_background(&mut self, launches: Vec<Launch>) -> InFlight {
        let batch = self.tracker.take_changes();
        let store = self.runtime.store.clone();
        InFlight {
            commit: tokio::task::spawn_blocking(move || store.apply(&batch)),
            launches,
            asking: std::mem::take(&mut self.asking),
            alerts: self.tracker.take_alerts(),
        }
    }

    /// Starts tasks whose running state is durable, and expands mapped tasks whose inputs
    /// are.
    fn launch(&mut self, launches: Vec<Launch>) {
        for launch in launches {
            match launch {
                Launch::Task(index, ctx) => {
                    self.launching -= 1;
                    let inputs = self.gather_inputs(index);
                    self.offer(index, ctx, inputs);
                }
                Launch::Expand(index) => {
                    let lengths = self.compute_elements(index).map(|elements| {
                        let lengths = elements.iter().map(|list| list.len()).collect();
                        self.elements.insert(index, elements);
                        lengths
                    });
                    self.tracker.expand(index, lengths, Utc::now());
                }
                Launch::ExpandGroup(group) => {
                    let lengths = self.compute_group_elements(group).map(|elements| {
                        let lengths = elements.iter().map(|list| list.len()).collect();
                        self.group_elements.insert(group, elements);
                        lengths
                    });
                    self.tracker.expand_group(group, lengths, Utc::now());
                }
            }
        }
    }

    fn offer(
        &mut self,
        index: usize,
        ctx: TaskContext,
        inputs: Result<Vec<PendingInput>, TaskError>,
    ) {
        let task = self.tracker.task(index);
        let span = tracing::info_span!(
            parent: &self.span,
            "task",
            dag = %self.scope.dag_id,
            task = %task.id(),
            run = %self.scope.run_id,
            map_index = tracing::field::Empty,
            // Signed: trace exporters keep an unsigned number as text.
            try_number = i64::from(ctx.try_number()),
        );
        if let Some(map_index) = ctx.map_index() {
            span.record("map_index", i64::from(map_index));
        }
        let log = TryLog::default();
        if log.attach(&span) {
            self.logs.insert(index, log.clone());
        }
        self.executor.offer(Work {
            slot: index,
            key: self.tracker.instance(index).record.key.clone(),
            ctx,
            inputs,
            function: task.spec().function().clone(),
            retry_policy: task.spec().retry_policy_ref().cloned(),
            timeout: task.execution_timeout(),
            objects: self.runtime.objects.clone(),
            span,
            log,
            claimed: self
                .runtime
                .metrics
                .as_ref()
                .and_then(|metrics| Some((self.claimed_at.remove(&index)?, metrics.clone()))),
        });
    }

    fn handle(&mut self, finished: Finished) {
        let Finished {
            slot: index,
            result,
            logs,
            elapsed,
            end,
        } = finished;
        if let Some(claim) = self.held.remove(&index) {
            self.freed.push(claim);
        }
        // Lines drained earlier are in earlier batches; the rest goes with the outcome.
        self.logs.remove(&index);
        if !logs.is_empty() {
            let record = &self.tracker.instance(index).record;
            let change = Change::Log {
                key: record.key.clone(),
                try_number: record.try_number,
                lines: logs,
            };
            self.tracker.push_change(change);
        }
        let outcome = match result {
            Ok(staged) => TryOutcome::Success {
                output: staged.output,
                records: staged.records,
            },
            Err(error) => TryOutcome::Failed(error),
        };
        self.tracker.finished(index, outcome, elapsed, end);
    }

    // ---- inputs (reads of the store) ------------------------------------------------

    /// Reads the inputs of a task, after the batch holding its producers' XComs is durable.
    /// Values kept in the object store are fetched later, by the task's own future.
    fn gather_inputs(&mut self, index: usize) -> Result<Vec<PendingInput>, TaskError> {
        let task = self.tracker.task(index);
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
                    let task = &self.dag()[*producer];
                    let value = if task.is_mapped() {
                        PendingValue::Collected {
                            elements: self
                                .mapped_outputs(Tracker::level(*producer), param.name())?,
                            element_type: task.spec().output().type_name(),
                        }
                    } else {
                        PendingValue::One(self.output_of(Tracker::level(*producer), param.name())?)
                    };
                    (InputSource::Upstream(task.id().clone()), value)
                }
                BoundInput::Sibling(producer) => {
                    let sibling = self.tracker.sibling(index, *producer).ok_or_else(|| {
                        TaskError::MissingInput {
                            param: param.name().to_string(),
                            hint: format!(
                                "`{}` has no instance with this map index",
                                self.dag()[*producer].id()
                            ),
                        }
                    })?;
                    (
                        InputSource::Upstream(self.dag()[*producer].id().clone()),
                        PendingValue::One(self.output_of(sibling, param.name())?),
                    )
                }
                BoundInput::GroupArgument(position) => (
                    InputSource::Literal,
                    PendingValue::One(self.group_argument(index, *position)?),
                ),
                BoundInput::Mapped(source) => {
                    let element = mapped.next().ok_or_else(|| TaskError::MissingInput {
                        param: param.name().to_string(),
                        hint: "the task was not expanded".to_string(),
                    })?;
                    let source = match source {
                        MappedInput::Upstream(producer) => {
                            InputSource::Upstream(self.dag()[*producer].id().clone())
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
        let inst = self.tracker.instance(index);
        if let Some(blob) = &inst.output {
            return Ok(StoredXCom::Inline(blob.clone()));
        }
        if self.tracker.task(index).spec().output().type_name() == std::any::type_name::<()>() {
            // A task returning `()` stores no return value: there is nothing to read.
            return XComBlob::encode(&())
                .map(StoredXCom::Inline)
                .map_err(|e| TaskError::XCom(e.to_string()));
        }
        let key: &TaskInstanceKey = &inst.record.key;
        self.runtime
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

    /// The results of the mapped task at `index`, in map order: one per instance that
    /// succeeded (none if it was never expanded).
    fn mapped_outputs(&self, index: usize, param: &str) -> Result<Vec<StoredXCom>, TaskError> {
        self.tracker
            .successful_children(index)
            .into_iter()
            .map(|child| self.output_of(child, param))
            .collect()
    }

    /// The elements of the mapped task at `index`, read once (after a restore the
    /// expansion is known from the store, the elements are not).
    fn elements(&mut self, index: usize) -> Result<Elements, TaskError> {
        if let Some(elements) = self.elements.get(&index) {
            return Ok(elements.clone());
        }
        let elements = self.compute_elements(index)?;
        self.elements.insert(index, elements.clone());
        Ok(elements)
    }

    fn compute_elements(&self, index: usize) -> Result<Elements, TaskError> {
        let task = self.tracker.task(index);
        let mut lists = Vec::new();
        for (param, bound) in task.spec().params().iter().zip(task.inputs()) {
            if let BoundInput::Mapped(source) = bound {
                lists.push(self.read_list(source, param.name(), |list| param.split_list(list))?);
            }
        }
        Ok(Arc::new(lists))
    }

    /// The lists mapped task group `group` is expanded over.
    fn compute_group_elements(&self, group: usize) -> Result<Elements, TaskError> {
        let Some(mapping) = self.dag().group_mapping(group) else {
            return Ok(Arc::default());
        };
        let name = format!(
            "the lists of task group `{}`",
            self.dag().groups()[group].id()
        );
        let lists = mapping
            .sources()
            .iter()
            .enumerate()
            .map(|(position, source)| {
                self.read_list(source, &name, |list| mapping.split(position, list))
            })
            .collect::<Result<_, _>>()?;
        Ok(Arc::new(lists))
    }

    /// The elements of one list to map over: literal, the results of a mapped task, or a
    /// task's `Vec` split by `split` (fetched once if it is kept as an object). `what`
    /// names the list in errors.
    fn read_list(
        &self,
        source: &MappedInput,
        what: &str,
        split: impl Fn(&XComBlob) -> Result<Vec<XComBlob>, crate::xcom::codec::CodecError>,
    ) -> Result<Arc<[StoredXCom]>, TaskError> {
        Ok(match source {
            MappedInput::Literal(elements) => {
                elements.iter().cloned().map(StoredXCom::Inline).collect()
            }
            MappedInput::Upstream(producer) if self.dag()[*producer].is_mapped() => {
                self.mapped_outputs(Tracker::level(*producer), what)?.into()
            }
            MappedInput::Upstream(producer) => {
                let stored = self.output_of(Tracker::level(*producer), what)?;
                let list = crate::objects::load_blocking(self.runtime.objects.as_ref(), &stored)
                    .map_err(|e| TaskError::XCom(format!("cannot read input `{what}`: {e}")))?;
                split(&list)
                    .map_err(|e| {
                        TaskError::XCom(format!(
                            "cannot map `{what}` over the output of `{}` (a `{}`): {e}",
                            self.dag()[*producer].id(),
                            list.type_name()
                        ))
                    })?
                    .into_iter()
                    .map(StoredXCom::Inline)
                    .collect()
            }
        })
    }

    /// For an instance of a task in a mapped group: the element of the group's list
    /// `position` its map index takes.
    fn group_argument(&mut self, index: usize, position: usize) -> Result<StoredXCom, TaskError> {
        let task = self.tracker.task(index);
        let (Some(group), Some(map_index)) = (
            task.mapped_group(),
            self.tracker.instance(index).record.key.map_index.get(),
        ) else {
            return Err(TaskError::XCom(format!(
                "`{}` takes an element of a mapped task group's list but is not mapped",
                task.id()
            )));
        };
        let elements = match self.group_elements.get(&group) {
            Some(elements) => elements.clone(),
            None => {
                // After a restore the expansion is known from the store; the lists are
                // read again, once.
                let elements = self.compute_group_elements(group)?;
                self.group_elements.insert(group, elements.clone());
                elements
            }
        };
        let lengths: Vec<usize> = elements.iter().map(|list| list.len()).collect();
        let mode = self
            .dag()
            .group_mapping(group)
            .map(|m| m.mode())
            .unwrap_or_default();
        let map_index = map_index as usize;
        let count = mapping::expansion_length(&lengths, mode);
        if map_index >= count {
            return Err(TaskError::XCom(format!(
                "map index {map_index} is past the {count} elements the group's lists have now; \
                 the upstream output changed since the group was expanded"
            )));
        }
        let positions = mapping::element_positions(map_index, &lengths, mode);
        Ok(elements[position][positions[position]].clone())
    }

    /// For an instance of a mapped task: the element each mapped argument takes.
    fn mapped_arguments(&mut self, index: usize) -> Result<Option<Vec<StoredXCom>>, TaskError> {
        let Some(parent) = self.tracker.instance(index).parent else {
            return Ok(None);
        };
        if self.tracker.task(index).map_mode().is_none() {
            // An instance of a task in a mapped group: its elements are the group's.
            return Ok(None);
        }
        let elements = self.elements(parent)?;
        let lengths: Vec<usize> = elements.iter().map(|list| list.len()).collect();
        let mode = self.tracker.task(index).map_mode().unwrap_or_default();
        let map_index = self
            .tracker
            .instance(index)
            .record
            .key
            .map_index
            .get()
            .unwrap_or(0) as usize;
        let count = mapping::expansion_length(&lengths, mode);
        if map_index >= count {
            return Err(TaskError::XCom(format!(
                "map index {map_index} is past the {count} elements the mapped arguments have now; \
                 the upstream output changed since the task was expanded"
            )));
        }
        let positions = mapping::element_positions(map_index, &lengths, mode);
        Ok(Some(
            elements
                .iter()
                .zip(positions)
                .map(|(list, position)| list[position].clone())
                .collect(),
        ))
    }

    // ---- the end ----------------------------------------------------------------------

    fn run_change(&self, state: RunState, end: Option<DateTime<Utc>>) -> Change {
        Change::Run {
            dag_id: self.scope.dag_id.clone(),
            run_id: self.scope.run_id.clone(),
            state,
            start: Some(self.started),
            end,
        }
    }

    fn finish(&mut self, duration: Duration, lease: &mut RunLease) -> Result<RunSummary, RunError> {
        // Tries abandoned by a stop or a timeout give their slots back.
        self.freed.extend(self.held.drain().map(|(_, claim)| claim));
        self.release_freed();
        self.flush_logs();
        let state = self.tracker.final_state(self.stopped);
        if let Some(state) = state {
            self.tracker
                .push_change(self.run_change(state, Some(Utc::now())));
            self.tracker.run_ended(state);
        }
        self.absorb();
        // The lease goes with the last batch: ending a run costs one commit.
        self.tracker.push_change(lease.release_change());
        // Nothing starts any more: the batch asks for no slots.
        self.commit(&mut Vec::new())?;
        lease.released();
        // Stopped before the end: the run stays `running` and is resumed later.
        let state = state.unwrap_or(RunState::Running);
        self.runtime.events.run(RunEvent {
            dag_id: self.scope.dag_id.clone(),
            run_id: self.scope.run_id.clone(),
            state,
        });
        Ok(self.summary(state, duration))
    }

    fn summary(&self, state: RunState, duration: Duration) -> RunSummary {
        let tasks = self
            .tracker
            .summary()
            .map(|(record, elapsed)| TaskSummary {
                task_id: record.key.task_id.clone(),
                map_index: record.key.map_index.get(),
                state: record.state,
                tries: record.try_number,
                duration: elapsed,
                error: record.error.clone(),
            })
            .collect();
        RunSummary::new(
            self.scope.dag_id.clone(),
            self.scope.run_id.clone(),
            self.scope.logical_date,
            state,
            duration,
            tasks,
            self.runtime.store.clone() as Arc<dyn XComStore>,
            self.runtime.objects.clone(),
        )
    }
}

//! The deciding side of one DAG run, as a pure state machine: recorded outcomes go in
//! (a try ended in success, failure, a reschedule; a retry came due; the run timed out),
//! decisions come out (the state changes to commit, the instances now ready, the timers to
//! arm, the alerts to send once the changes are durable, the events to publish).
//!
//! The tracker does no I/O and knows no tokio: the coordinating loop
//! ([`super::run_loop`]) reads what it needs from the store and the object store, commits
//! [`Tracker::take_changes`], and offers the instances it starts to an executor. Its
//! decisions follow Airflow: trigger rules with skip and failure propagation, retries with
//! delay, branch and short-circuit skips, dynamic mapping, sensors in reschedule mode,
//! `dagrun_timeout`, and the run's final state from its leaves.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::ops::Range;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::reschedule::Reschedules;
use crate::branch::{Branch, SKIPMIXIN_KEY, SkipDecision, TaskKind};
use crate::events::TaskEvent;
use crate::graph::{Dag, Task};
use crate::ids::{DagId, MapIndex, RunId, StableHash, TaskId, TaskIndex, TaskInstanceKey};
use crate::plan::Plan;
use crate::state::{RunState, TaskState};
use crate::store::{Change, DagRunRecord, Expect, RescheduleRecord, SlotAsk, TaskInstanceRecord};
use crate::task::PokeHistory;
use crate::task::TaskError;
use crate::task::callbacks::{Callback, CallbackEvent};
use crate::trigger::{self, Decision, TriggerRule, UpstreamCounts};
use crate::xcom::list::{self as mapping, MapMode};
use crate::xcom::{StoredXCom, XComBlob};

/// Return values up to this size stay in memory for the run's consumers, sparing a read
/// from the store; larger ones are read back when needed.
const CACHED_OUTPUT_BYTES: usize = 64 * 1024;

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

/// The counts a task starts from: its upstream tasks that `counted` keeps, in total and
/// how many of them are setup tasks.
fn upstream_counts(dag: &Dag, task: &Task, counted: impl Fn(TaskIndex) -> bool) -> UpstreamCounts {
    let (mut total, mut setups) = (0u32, 0u32);
    for &up in task.upstream().iter().filter(|&&up| counted(up)) {
        total = total.saturating_add(1);
        if dag[up].role().is_setup() {
            setups = setups.saturating_add(1);
        }
    }
    UpstreamCounts {
        total,
        setups,
        ..UpstreamCounts::default()
    }
}

/// A mapped task, expanded into instances.
pub(crate) struct Expansion {
    /// Its instances (indices into the tracker's instances), in map order.
    pub(crate) children: Range<usize>,
    /// How many of them have finished.
    finished: usize,
}

/// A mapped task group, as this run stands with it.
struct GroupTrack {
    /// How many of the tasks whose outputs are its lists have not finished.
    pending: usize,
    /// Whether it expanded, or its tasks were settled without expanding.
    resolved: bool,
}

/// Per-instance facts. The first instances are the DAG's tasks, at their task index; the
/// instances of mapped tasks follow, in the order they were expanded.
pub(crate) struct Instance {
    /// The task it is an instance of.
    pub(crate) task: TaskIndex,
    /// For an instance of a mapped task: the task-level instance it belongs to.
    pub(crate) parent: Option<usize>,
    /// For the task-level instance of a mapped task, once expanded.
    pub(crate) expansion: Option<Box<Expansion>>,
    pub(crate) record: TaskInstanceRecord,
    upstream: UpstreamCounts,
    elapsed: Option<Duration>,
    /// Its return value, when small enough to keep for its consumers.
    pub(crate) output: Option<XComBlob>,
    /// Whether its trigger rule has sent it to the ready queue: later upstream results
    /// (rules like `one_success` decide early) must not queue it twice.
    decided: bool,
    /// Where this instance's record sits in the batch being collected, if it does: a
    /// second change in the same batch replaces it, so the store writes one row.
    pending: Option<usize>,
    /// What the store holds for it (or will, once the batches taken so far are
    /// committed): the expectation its next change names.
    stored: Expect,
}

/// What is ready to go next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ready {
    /// A task instance to start, once it has its pool slots.
    Task(usize),
    /// A mapped task to expand, once its upstream lists are read (it takes no slot).
    Expand(usize),
    /// A mapped task group to expand (an index into `Dag::groups`), once its lists are
    /// read: every task in it expands at once.
    ExpandGroup(usize),
}

/// A try that starts: what its context needs.
#[derive(Clone, Debug)]
pub(crate) struct Started {
    /// Its map index.
    pub(crate) map_index: MapIndex,
    /// Its try number.
    pub(crate) try_number: u32,
    /// The earlier pokes of its try (a sensor in reschedule mode).
    pub(crate) pokes: PokeHistory,
}

/// How a try ended, as the running side reported it.
pub(crate) enum TryOutcome {
    /// It returned: its value, and every XCom as the store records it (the return value
    /// first).
    Success {
        /// The return value.
        output: XComBlob,
        /// What the store records.
        records: Vec<(String, StoredXCom)>,
    },
    /// It failed (or a sensor asked to be poked again: [`TaskError::Reschedule`]).
    Failed(TaskError),
}

/// A wait the loop arms: the instance is ready again after `delay` (a retry, or a
/// sensor's next poke).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Timer {
    /// The instance.
    pub(crate) index: usize,
    /// How long from now.
    pub(crate) delay: Duration,
}

/// Settings of the tracker that are not the DAG's.
#[derive(Clone, Default)]
pub(crate) struct TrackerOptions {
    /// The most instances one mapped task may expand to.
    pub(crate) max_map_length: usize,
    /// Whether to produce [`TaskEvent`]s (somebody listens).
    pub(crate) events: bool,
    /// Where tasks' `email` alerts go; `None` reads `FLOW_SMTP_*` when one is sent.
    #[cfg(feature = "email")]
    pub(crate) smtp: Option<std::sync::Arc<crate::notify::SmtpConfig>>,
}

/// One run's deciding state.
pub(crate) struct Tracker<'a> {
    plan: &'a Plan<'a>,
    dag_id: DagId,
    run_id: RunId,
    logical_date: DateTime<Utc>,
    options: TrackerOptions,
    instances: Vec<Instance>,
    ready: ReadyQueue,
    changes: Vec<Change>,
    /// Instances with a record in `changes`.
    batched: Vec<usize>,
    /// Callbacks to run once `changes` is durable.
    alerts: Vec<(Callback, CallbackEvent)>,
    events: Vec<TaskEvent>,
    timers: Vec<Timer>,
    /// Stored instances of mapped tasks that have not expanded in this process yet: an
    /// expansion reuses them (keeping their tries) and removes those past its length.
    unexpanded: HashMap<usize, Vec<TaskInstanceRecord>>,
    /// The pokes of sensors in reschedule mode.
    reschedules: Reschedules,
    /// Whether the run exceeded its `dagrun_timeout`.
    timed_out: bool,
    /// Starts whose slots the store answers with their batch ([`Tracker::start_asking`]).
    unconfirmed: HashMap<usize, Unconfirmed>,
    /// Per task group of the DAG, how it stands if it is a mapped one (empty when the DAG
    /// has no mapped group).
    groups: Vec<Option<GroupTrack>>,
    /// Mapped task groups whose lists are final, to expand.
    ready_groups: Vec<usize>,
}

/// A start waiting for the store's answer: what the instance was before it, and what it
/// announces once granted.
struct Unconfirmed {
    before: TaskInstanceRecord,
    events: Vec<TaskEvent>,
    alerts: Vec<(Callback, CallbackEvent)>,
}

impl<'a> Tracker<'a> {
    /// A tracker of `run` of the DAG `plan` was compiled from, where nothing has happened
    /// yet (see [`Tracker::restore`]).
    pub(crate) fn new(plan: &'a Plan<'a>, run: &DagRunRecord, options: TrackerOptions) -> Self {
        let dag = plan.dag();
        let instances = dag
            .tasks()
            .iter()
            .zip(plan.indices())
            .map(|(task, index)| Instance {
                task: index,
                parent: None,
                expansion: None,
                record: TaskInstanceRecord::fresh(TaskInstanceKey {
                    dag_id: dag.id().clone(),
                    run_id: run.run_id.clone(),
                    task_id: task.id().clone(),
                    map_index: MapIndex::UNMAPPED,
                }),
                // A task in a mapped group counts its upstream tasks outside the group
                // here; its instances add those inside, instance by instance.
                upstream: upstream_counts(dag, task, |up| {
                    task.mapped_group().is_none() || dag[up].mapped_group() != task.mapped_group()
                }),
                elapsed: None,
                output: None,
                pending: None,
                stored: Expect::FRESH,
                decided: false,
            })
            .collect();
        let has_mapped_groups = dag.mapped_groups().next().is_some();
        Self {
            plan,
            dag_id: dag.id().clone(),
            run_id: run.run_id.clone(),
            logical_date: run.logical_date,
            options,
            instances,
            ready: ReadyQueue::default(),
            changes: Vec::new(),
            batched: Vec::new(),
            alerts: Vec::new(),
            events: Vec::new(),
            timers: Vec::new(),
            unexpanded: HashMap::new(),
            reschedules: Reschedules::default(),
            timed_out: false,
            unconfirmed: HashMap::new(),
            // Empty for a DAG without mapped groups: settling a task then looks no further.
            groups: (0..dag.groups().len())
                .take_while(|_| has_mapped_groups)
                .map(|group| {
                    let mapping = dag.group_mapping(group)?;
                    let mut producers: Vec<TaskIndex> = mapping.producers().collect();
                    producers.sort_unstable();
                    producers.dedup();
                    Some(GroupTrack {
                        pending: producers.len(),
                        resolved: false,
                    })
                })
                .collect(),
            ready_groups: Vec::new(),
        }
    }

    /// The DAG.
    pub(crate) fn dag(&self) -> &'a Dag {
        self.plan.dag()
    }

    /// The task `index` is an instance of.
    pub(crate) fn task(&self, index: usize) -> &'a Task {
        self.plan.task(self.instances[index].task)
    }

    /// The priority of the task `index` is an instance of.
    fn priority(&self, index: usize) -> i64 {
        self.plan.priority(self.instances[index].task)
    }

    /// The task-level instance of `task`: the first instances are the tasks'.
    pub(crate) fn level(task: TaskIndex) -> usize {
        task.get()
    }

    /// The instance at `index`.
    pub(crate) fn instance(&self, index: usize) -> &Instance {
        &self.instances[index]
    }

    /// Whether `index` is the task-level instance of a mapped task, which never runs
    /// itself: it expands into instances.
    pub(crate) fn is_mapped_task(&self, index: usize) -> bool {
        self.instances[index].parent.is_none() && self.task(index).is_mapped()
    }

    /// The instances of the expanded mapped task at `index` that succeeded, in map order.
    pub(crate) fn successful_children(&self, index: usize) -> Vec<usize> {
        match &self.instances[index].expansion {
            Some(expansion) => expansion
                .children
                .clone()
                .filter(|&child| self.instances[child].record.state == TaskState::Success)
                .collect(),
            None => Vec::new(),
        }
    }

    // ---- decisions out --------------------------------------------------------------

    /// The changes decided since the last call, to commit as one batch. A later change
    /// of an instance starts a new record in the next batch.
    pub(crate) fn take_changes(&mut self) -> Vec<Change> {
        for index in self.batched.drain(..) {
            let inst = &mut self.instances[index];
            inst.stored = Expect::of(&inst.record);
            inst.pending = None;
        }
        std::mem::take(&mut self.changes)
    }

    /// Whether changes wait to be committed.
    pub(crate) fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }

    /// Adds a change that is not a state decision (log lines) to the batch.
    pub(crate) fn push_change(&mut self, change: Change) {
        self.changes.push(change);
    }

    /// The alerts (callbacks with their events) to send once the changes taken so far are
    /// durable.
    pub(crate) fn take_alerts(&mut self) -> Vec<(Callback, CallbackEvent)> {
        std::mem::take(&mut self.alerts)
    }

    /// The task events decided since the last call (only with [`TrackerOptions::events`]).
    pub(crate) fn take_events(&mut self) -> Vec<TaskEvent> {
        std::mem::take(&mut self.events)
    }

    /// The timers to arm.
    pub(crate) fn take_timers(&mut self) -> Vec<Timer> {
        std::mem::take(&mut self.timers)
    }

    /// The next instance to start or expand, highest priority first.
    pub(crate) fn pop_ready(&mut self) -> Option<Ready> {
        if let Some(group) = self.ready_groups.pop() {
            return Some(Ready::ExpandGroup(group));
        }
        let index = self.ready.pop()?;
        Some(if self.is_mapped_task(index) {
            Ready::Expand(index)
        } else {
            Ready::Task(index)
        })
    }

    /// Puts back an instance that could not start now (its pool or DAG is full); it keeps
    /// its place by priority.
    pub(crate) fn push_back(&mut self, index: usize) {
        self.ready.push(index, self.priority(index));
    }

    /// Whether an instance is ready.
    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.is_empty() || !self.ready_groups.is_empty()
    }

    /// How many task instances are ready to start (waiting for a slot).
    pub(crate) fn ready_len(&self) -> usize {
        self.ready.heap.len()
    }

    // ---- outcomes in ----------------------------------------------------------------

    /// Rebuilds the state of a stored run: finished instances settle their downstream,
    /// queued ones go back to waiting, tries that were running when their process died
    /// count as failed, and pending retries and pokes keep their schedule (`reschedules`
    /// holds the recorded pokes of each instance left `up_for_reschedule`).
    pub(crate) fn restore(
        &mut self,
        stored: Vec<TaskInstanceRecord>,
        reschedules: &HashMap<TaskInstanceKey, Vec<RescheduleRecord>>,
        now: DateTime<Utc>,
    ) {
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
        // A mapped group expanded before (or was settled without expanding) once one of
        // its tasks' records has moved on.
        let started_groups: std::collections::HashSet<usize> = mapped
            .iter()
            .filter(|(_, records)| records.iter().any(|r| r.state != TaskState::None))
            .map(|(task_id, _)| task_id)
            .chain(
                by_task
                    .values()
                    .filter(|r| r.state != TaskState::None)
                    .map(|r| &r.key.task_id),
            )
            .filter_map(|task_id| self.dag().task(task_id.as_str())?.mapped_group())
            .collect();
        for &group in &started_groups {
            if let Some(track) = &mut self.groups[group] {
                track.resolved = true;
            }
        }
        for task in self.plan.indices() {
            let index = Self::level(task);
            let task_id = self.plan.task(task).id();
            if let Some(record) = by_task.remove(task_id) {
                self.instances[index].stored = Expect::of(&record);
                self.instances[index].record = record;
            }
            // An expanded mapped task: its instances are stored, their elements are read
            // again when an instance needs them. If none has started (its task was
            // cleared), it expands again once its upstream tasks are done, reusing them.
            if let Some(mut records) = mapped.remove(task_id) {
                records.sort_by_key(|r| r.key.map_index.get());
                // A mapped group expands as a whole: again, unless one of its instances
                // has started.
                let expand_again = match self.plan.task(task).mapped_group() {
                    Some(group) => !started_groups.contains(&group),
                    None => records.iter().all(|r| r.state == TaskState::None),
                };
                if expand_again {
                    self.unexpanded.insert(index, records);
                    continue;
                }
                let first = self.instances.len();
                for record in records {
                    self.add_child(index, record);
                }
                if self.plan.task(task).mapped_group().is_some() {
                    self.await_passes(index, first..self.instances.len());
                }
                self.instances[index].decided = true;
                self.instances[index].expansion = Some(Box::new(Expansion {
                    children: first..self.instances.len(),
                    finished: 0,
                }));
            }
        }
        for index in 0..self.instances.len() {
            if self.instances[index].record.state == TaskState::Queued {
                self.set_state(index, TaskState::None, None);
            }
        }
        for &task in self.plan.topological_order() {
            let index = Self::level(task);
            if let Some(expansion) = &self.instances[index].expansion {
                for child in expansion.children.clone() {
                    self.restore_instance(child, reschedules, now);
                }
                continue;
            }
            self.restore_instance(index, reschedules, now);
        }
        // Instances of mapped groups decide by their counts, now complete; groups over
        // literal lists wait for nothing.
        for &task in self.plan.topological_order() {
            if self.plan.task(task).mapped_group().is_none() {
                continue;
            }
            if let Some(expansion) = &self.instances[Self::level(task)].expansion {
                for child in expansion.children.clone() {
                    self.decide_pass(child);
                }
            }
        }
        for group in 0..self.groups.len() {
            if self.groups[group]
                .as_ref()
                .is_some_and(|track| track.pending == 0 && !track.resolved)
            {
                self.group_lists_final(group);
            }
        }
    }

    /// Picks up one stored instance where it was left.
    fn restore_instance(
        &mut self,
        index: usize,
        reschedules: &HashMap<TaskInstanceKey, Vec<RescheduleRecord>>,
        now: DateTime<Utc>,
    ) {
        let record = &self.instances[index].record;
        match record.state {
            // A task of a mapped group expands with its group, and its instances decide
            // by their counts.
            TaskState::None if self.task(index).mapped_group().is_some() => {}
            TaskState::None => {
                let inst = &self.instances[index];
                // An instance of a mapped task was queued when its task expanded.
                let due = inst.parent.is_some()
                    || self.plan.is_root(inst.task)
                    || self.task(index).trigger_rule() == TriggerRule::Always;
                if due {
                    self.instances[index].decided = true;
                    self.ready.push(index, self.priority(index));
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
                self.arm(index, (due - now).to_std().unwrap_or_default());
            }
            TaskState::UpForReschedule => {
                let recorded = reschedules
                    .get(&record.key)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let due = self.reschedules.restore(index, recorded).unwrap_or(now);
                self.arm(index, (due - now).to_std().unwrap_or_default());
            }
            state => self.settle_downstream(index, state),
        }
    }

    /// Marks an instance queued then running (one row in the batch) and returns what its
    /// context needs. A fresh (or cleared) instance gets its full retry budget here.
    pub(crate) fn start(&mut self, index: usize, now: DateTime<Utc>) -> Started {
        let retries = self.task(index).retries();
        let priority = self.priority(index);
        let inst = &mut self.instances[index];
        if inst.record.state == TaskState::None {
            inst.record.max_tries = inst.record.try_number + retries;
        }
        inst.record.priority_weight = priority;
        // A sensor's next poke in reschedule mode continues its try, as in Airflow.
        let next_poke = inst.record.state == TaskState::UpForReschedule;
        self.set_state(index, TaskState::Queued, None);
        if !next_poke {
            self.instances[index].record.try_number += 1;
            self.reschedules.forget(index);
        }
        let inst = &mut self.instances[index];
        inst.record.start = Some(now);
        inst.record.end = None;
        self.set_state(index, TaskState::Running, None);
        let record = &self.instances[index].record;
        Started {
            map_index: record.key.map_index,
            try_number: record.try_number,
            pokes: self.reschedules.history(index),
        }
    }

    /// Starts `index` as [`Tracker::start`] does, its change standing apart in the batch as
    /// a [`Change::Start`] that asks the pools for `ask`: the store grants the slots and
    /// records the start, or leaves it out. Its events and alerts wait for
    /// [`Tracker::confirm`]; [`Tracker::unstart`] undoes it.
    pub(crate) fn start_asking(
        &mut self,
        index: usize,
        now: DateTime<Utc>,
        ask: SlotAsk,
    ) -> Started {
        let before = self.instances[index].record.clone();
        let expect = Expect::of(&before);
        // An earlier change of the instance in this batch stays as it is; the start
        // follows it and expects what it writes.
        self.instances[index].pending = None;
        self.instances[index].stored = expect;
        let (events_at, alerts_at) = (self.events.len(), self.alerts.len());
        let started = self.start(index, now);
        let inst = &mut self.instances[index];
        if let Some(at) = inst.pending.take() {
            self.changes[at] = Change::Start {
                record: inst.record.clone(),
                expect,
                ask,
            };
        }
        let unconfirmed = Unconfirmed {
            before,
            events: self.events.split_off(events_at),
            alerts: self.alerts.split_off(alerts_at),
        };
        self.unconfirmed.insert(index, unconfirmed);
        started
    }

    /// The store granted the start of `index`: the events and alerts it announces.
    pub(crate) fn confirm(
        &mut self,
        index: usize,
    ) -> (Vec<TaskEvent>, Vec<(Callback, CallbackEvent)>) {
        self.unconfirmed
            .remove(&index)
            .map(|u| (u.events, u.alerts))
            .unwrap_or_default()
    }

    /// The store refused the start of `index` (its slots are taken): the instance is what
    /// it was before, and waits to be started again.
    pub(crate) fn unstart(&mut self, index: usize) {
        if let Some(unconfirmed) = self.unconfirmed.remove(&index) {
            let inst = &mut self.instances[index];
            inst.stored = Expect::of(&unconfirmed.before);
            inst.record = unconfirmed.before;
            inst.pending = None;
        }
    }

    /// Fails an instance that cannot run (its pool cannot hold it, its mapped lists cannot
    /// be read), counting a try without running it.
    pub(crate) fn refuse(&mut self, index: usize, message: String, now: DateTime<Utc>) {
        let _ = self.start(index, now);
        tracing::error!(task = %self.task(index).id(), "{message}");
        self.set_state(index, TaskState::Failed, Some(message));
        self.settle_downstream(index, TaskState::Failed);
    }

    /// A retry or a sensor's next poke came due.
    pub(crate) fn due(&mut self, index: usize) {
        self.ready.push(index, self.priority(index));
    }

    /// A try of `index` ended at `end` after `elapsed`.
    pub(crate) fn finished(
        &mut self,
        index: usize,
        outcome: TryOutcome,
        elapsed: Duration,
        end: DateTime<Utc>,
    ) {
        let inst = &mut self.instances[index];
        inst.record.end = Some(end);
        inst.elapsed = Some(elapsed);
        // A branch or short-circuit decision is read before the success is recorded, so
        // a bad choice fails the try instead.
        let outcome = match outcome {
            TryOutcome::Success {
                output,
                mut records,
            } => match self.skips_for(index, &output) {
                Ok((skips, decision)) => {
                    if let Some(decision) = decision {
                        match XComBlob::encode(&decision) {
                            Ok(blob) => {
                                records.push((SKIPMIXIN_KEY.to_string(), StoredXCom::Inline(blob)));
                            }
                            Err(e) => tracing::error!("cannot record {SKIPMIXIN_KEY}: {e}"),
                        }
                    }
                    Ok((output, records, skips))
                }
                Err(e) => Err(e),
            },
            TryOutcome::Failed(e) => Err(e),
        };
        match outcome {
            Err(TaskError::Reschedule { at }) => self.reschedule(index, end, at),
            Ok((output, records, skips)) => {
                let key = self.instances[index].record.key.clone();
                if output.bytes().len() <= CACHED_OUTPUT_BYTES {
                    self.instances[index].output = Some(output);
                }
                for (name, value) in records {
                    self.changes.push(Change::XCom {
                        key: key.clone(),
                        name,
                        value,
                    });
                }
                // Its outlets are updated as durably as its success.
                for asset in self.task(index).spec().outlet_assets() {
                    self.changes.push(Change::AssetUpdated {
                        uri: asset.uri().to_string(),
                        source: key.clone(),
                        timestamp: end,
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

    /// The mapped task at `index` expands over lists of `lengths` (one per mapped
    /// argument), or cannot read them: one instance per element (per combination), each
    /// ready to run; `skipped` for an empty list (Airflow's rule); failed if the lists
    /// cannot be read or are too long.
    pub(crate) fn expand(
        &mut self,
        index: usize,
        lengths: Result<Vec<usize>, TaskError>,
        now: DateTime<Utc>,
    ) {
        let task = self.task(index);
        let lengths = match lengths {
            Ok(lengths) => lengths,
            Err(error) => return self.refuse(index, error.to_string(), now),
        };
        let mode = task.map_mode().unwrap_or_default();
        let count = mapping::expansion_length(&lengths, mode);
        let limit = self.options.max_map_length;
        if count > limit {
            return self.refuse(
                index,
                format!(
                    "mapped task `{}` would expand to {count} instances, over the limit of \
                     {limit}; raise max_map_length (FLOW_MAX_MAP_LENGTH) or map over fewer elements",
                    task.id()
                ),
                now,
            );
        }
        if mode == MapMode::Zip && lengths.windows(2).any(|pair| pair[0] != pair[1]) {
            tracing::warn!(task = %task.id(), ?lengths, "zipped lists differ in length; the extra elements are not used");
        }
        if count == 0 {
            tracing::info!(task = %task.id(), "mapped over an empty list: skipped");
            self.set_state(index, TaskState::Skipped, None);
            self.settle_downstream(index, TaskState::Skipped);
            return;
        }
        tracing::info!(task = %task.id(), instances = count, "expanded");
        let priority = self.priority(index);
        for child in self.add_instances(index, count) {
            self.ready.push(child, priority);
        }
    }

    /// Gives the mapped task at `index` its `count` instances: the stored ones it had
    /// (keeping their tries), new ones recorded in the batch, and those past `count`
    /// removed.
    fn add_instances(&mut self, index: usize, count: usize) -> Range<usize> {
        let task = self.task(index);
        let first = self.instances.len();
        let key = self.instances[index].record.key.clone();
        let mut previous = self.unexpanded.remove(&index).unwrap_or_default();
        for surplus in previous.drain(count.min(previous.len())..) {
            tracing::info!(task = %task.id(), map_index = %surplus.key.map_index, "removed: the list is shorter now");
            self.changes.push(Change::RemoveInstance(surplus.key));
        }
        let mut previous = previous.into_iter();
        // Room for exactly this expansion: doubling past it would hold up to twice the
        // memory for the rest of the run (100,000 instances take tens of MiB).
        self.instances.reserve_exact(count);
        self.changes.reserve(count);
        self.batched.reserve(count);
        for map_index in 0..count {
            // A stored instance is already recorded; a new one goes into the batch.
            let (record, stored) = match previous.next() {
                Some(record) => (record, true),
                None => (
                    TaskInstanceRecord::fresh(TaskInstanceKey {
                        map_index: MapIndex::mapped(u32::try_from(map_index).unwrap_or(u32::MAX)),
                        ..key.clone()
                    }),
                    false,
                ),
            };
            let child = self.add_child(index, record);
            if !stored {
                self.record_change(child);
            }
        }
        self.instances[index].expansion = Some(Box::new(Expansion {
            children: first..first + count,
            finished: 0,
        }));
        first..first + count
    }

    /// Ends a run that exceeded `dagrun_timeout`, as Airflow does: running tries fail
    /// (they are abandoned), everything that has not run is skipped, and the run fails.
    pub(crate) fn time_out(&mut self, now: DateTime<Utc>) {
        let timeout = self.dag().dagrun_timeout().unwrap_or_default();
        tracing::error!(run = %self.run_id, "dagrun_timeout of {timeout:?} exceeded");
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
                    self.instances[index].record.end = Some(now);
                    self.set_state(index, TaskState::Failed, Some(message.clone()));
                }
                TaskState::None | TaskState::Queued => {
                    self.set_state(index, TaskState::Skipped, None)
                }
                _ => {}
            }
        }
        self.ready = ReadyQueue::default();
        self.timers.clear();
        self.timed_out = true;
    }

    /// The run's final state, if it has one: `None` while an instance is unfinished and
    /// the run was stopped (it stays `running`, to be resumed). A leaf that failed (or
    /// never ran because of a failure) fails the run, as in Airflow (a teardown leaf only
    /// with `on_failure_fail_dagrun`, the tasks before it counting as leaves instead); so
    /// does a timeout.
    pub(crate) fn final_state(&self, stopped: bool) -> Option<RunState> {
        let unfinished = self.instances.iter().any(|i| !i.record.state.is_finished());
        if stopped && unfinished {
            return None;
        }
        let failed = self.timed_out
            || unfinished
            || self
                .plan
                .indices()
                .zip(&self.instances)
                .any(|(task, inst)| {
                    self.plan.decides_run_state(task)
                        && matches!(
                            inst.record.state,
                            TaskState::Failed | TaskState::UpstreamFailed
                        )
                });
        Some(if failed {
            RunState::Failed
        } else {
            RunState::Success
        })
    }

    /// Each task in the DAG's order, a mapped task as its instances in map order: the
    /// record and the duration of its last try in this process.
    pub(crate) fn summary(&self) -> impl Iterator<Item = (&TaskInstanceRecord, Option<Duration>)> {
        self.plan
            .indices()
            .map(Self::level)
            .flat_map(|index| match &self.instances[index].expansion {
                Some(expansion) => expansion.children.clone(),
                None => index..index + 1,
            })
            .map(|index| (&self.instances[index].record, self.instances[index].elapsed))
    }

    // ---- the rules ------------------------------------------------------------------

    fn fail_try(&mut self, index: usize, error: TaskError) {
        let task = self.task(index);
        let message = error.to_string();
        let record = &self.instances[index].record;
        if let TaskError::SoftFail(_) | TaskError::Skip(_) = error {
            if matches!(error, TaskError::SoftFail(_)) {
                tracing::warn!(task = %task.id(), "{message}; skipping (soft_fail)");
            } else {
                tracing::info!(task = %task.id(), "{message}");
            }
            self.set_state(index, TaskState::Skipped, Some(message));
            self.settle_downstream(index, TaskState::Skipped);
            return;
        }
        // A sensor that timed out, or a task that asked for it, is not retried.
        if error.is_retryable() && record.try_number <= record.max_tries {
            let try_number = record.try_number;
            let delay = match error {
                TaskError::Backoff { delay, .. } => delay,
                _ => task.retry_delay_for(try_number, retry_seed(&record.key, try_number)),
            };
            tracing::warn!(task = %task.id(), try_number, "try failed, retrying in {}: {message}", humantime::format_duration(delay));
            self.set_state(index, TaskState::UpForRetry, Some(message));
            self.arm(index, delay);
        } else {
            tracing::error!(task = %task.id(), try_number = record.try_number, "task failed: {message}");
            self.set_state(index, TaskState::Failed, Some(message));
            self.settle_downstream(index, TaskState::Failed);
        }
    }

    /// A sensor in reschedule mode answered "not yet": it waits `up_for_reschedule`,
    /// holding no slot, and is ready again at `at`.
    fn reschedule(&mut self, index: usize, end: DateTime<Utc>, at: DateTime<Utc>) {
        let change = self
            .reschedules
            .not_yet(index, &self.instances[index].record, end, at);
        self.set_state(index, TaskState::UpForReschedule, None);
        self.changes.push(change);
        self.arm(index, (at - end).to_std().unwrap_or_default());
    }

    fn arm(&mut self, index: usize, delay: Duration) {
        self.timers.push(Timer { index, delay });
    }

    /// What a successful branch or short-circuit task decided: the instances it skips
    /// (the direct downstream tasks a branch did not choose; everything downstream of a
    /// short-circuit that returned `false`, or only its direct downstream tasks when it
    /// keeps their trigger rules) and its [`SkipDecision`] to record. As in Airflow, a
    /// branch's choice of a task that is not directly downstream of it is ignored, with a
    /// warning; a choice that is no task of the DAG fails the branch.
    fn skips_for(
        &self,
        index: usize,
        output: &XComBlob,
    ) -> Result<(Vec<usize>, Option<SkipDecision>), TaskError> {
        let task = self.task(index);
        let at = self.instances[index].task;
        let name = |i: &TaskIndex| self.plan.task(*i).id().as_str();
        match task.spec().kind() {
            TaskKind::Normal => Ok((Vec::new(), None)),
            TaskKind::Branch => {
                let branch: Branch = output.decode().map_err(|e| {
                    TaskError::Failed(format!("a branch task must return a `Branch`: {e}"))
                })?;
                let downstream = self.plan.dependents(at);
                let direct = |chosen: &String| downstream.iter().any(|d| name(d) == chosen);
                for chosen in branch.task_ids().iter().filter(|c| !direct(c)) {
                    let ids: Vec<&str> = downstream.iter().map(name).collect();
                    let ids = if ids.is_empty() {
                        "it has none".to_string()
                    } else {
                        ids.join(", ")
                    };
                    if self.dag().task(chosen).is_none() {
                        return Err(TaskError::Failed(format!(
                            "branch `{}` chose `{chosen}`, which is not one of its downstream tasks: {ids}",
                            task.id(),
                        )));
                    }
                    tracing::warn!(
                        task = %task.id(),
                        "branch chose `{chosen}`, which is not directly downstream of it; \
                         the choice is ignored, as in Airflow (its downstream tasks: {ids})"
                    );
                }
                let (followed, skipped): (Vec<TaskIndex>, Vec<TaskIndex>) = downstream
                    .iter()
                    .partition(|d| branch.task_ids().iter().any(|c| c == name(d)));
                let followed = followed.iter().map(|d| name(d).to_string()).collect();
                Ok((
                    skipped.into_iter().map(|t| self.target(index, t)).collect(),
                    Some(SkipDecision::Followed(followed)),
                ))
            }
            TaskKind::ShortCircuit {
                ignore_downstream_trigger_rules,
            } => {
                let go_on: bool = output.decode().map_err(|e| {
                    TaskError::Failed(format!("a short-circuit task must return a `bool`: {e}"))
                })?;
                if go_on {
                    return Ok((Vec::new(), None));
                }
                let skipped = if ignore_downstream_trigger_rules {
                    tracing::info!(task = %task.id(), "short-circuit: skipping every downstream task");
                    self.plan.descendants(at)
                } else {
                    tracing::info!(task = %task.id(), "short-circuit: skipping the direct downstream tasks");
                    self.plan.dependents(at).to_vec()
                };
                let ids = skipped.iter().map(|d| name(d).to_string()).collect();
                Ok((
                    skipped.into_iter().map(|t| self.target(index, t)).collect(),
                    Some(SkipDecision::Skipped(ids)),
                ))
            }
        }
    }

    /// The instance of `task` a decision of the instance `index` concerns: in one mapped
    /// group, the one with the same map index; else the task's own.
    fn target(&self, index: usize, task: TaskIndex) -> usize {
        let group = self.plan.task(task).mapped_group();
        let same_group = group.is_some() && self.task(index).mapped_group() == group;
        same_group
            .then(|| self.sibling(index, task))
            .flatten()
            .unwrap_or(Self::level(task))
    }

    /// Tells downstream tasks that `index` finished in `state`, deciding each one whose
    /// trigger rule can now decide, and propagating skips and upstream failures.
    fn settle_downstream(&mut self, index: usize, state: TaskState) {
        if let Some(parent) = self.instances[index].parent {
            if self.task(parent).mapped_group().is_some() {
                self.settle_pass(index, state);
            }
            return self.child_finished(parent, state);
        }
        self.settle(index, UpstreamCounts::one(state));
    }

    /// An instance of a task in a mapped group finished in `state`: the instances with
    /// the same map index of its downstream tasks in the group count it.
    fn settle_pass(&mut self, index: usize, state: TaskState) {
        let parent = self.instances[index].parent.unwrap_or(index);
        let at = self.instances[parent].task;
        let finished = if self.plan.task(at).role().is_setup() {
            UpstreamCounts::one(state).of_setup()
        } else {
            UpstreamCounts::one(state)
        };
        let group = self.plan.task(at).mapped_group();
        let plan = self.plan;
        for &task in plan.dependents(at) {
            if plan.task(task).mapped_group() != group {
                continue;
            }
            let Some(sibling) = self.sibling(index, task) else {
                continue;
            };
            let inst = &mut self.instances[sibling];
            if inst.record.state == TaskState::None && !inst.decided {
                inst.upstream.add(&finished);
                self.decide_pass(sibling);
            }
        }
    }

    /// The instance of `task` with the same map index as the instance `index`, when both
    /// tasks are in one expanded mapped group.
    pub(crate) fn sibling(&self, index: usize, task: TaskIndex) -> Option<usize> {
        let map_index = self.instances[index].record.key.map_index.get()? as usize;
        let expansion = self.instances[Self::level(task)].expansion.as_ref()?;
        let sibling = expansion.children.start + map_index;
        (sibling < expansion.children.end).then_some(sibling)
    }

    /// Decides an instance of a task in a mapped group by its trigger rule, once its counts
    /// allow.
    fn decide_pass(&mut self, index: usize) {
        let inst = &self.instances[index];
        if inst.record.state != TaskState::None || inst.decided {
            return;
        }
        let decision = trigger::decide(self.task(index).trigger_rule(), &inst.upstream);
        if let Some(state) = self.apply_decision(index, decision) {
            self.settle_downstream(index, state);
        }
    }

    /// Carries out a trigger rule's decision about the instance `index`: queued to run, or
    /// ended without running (the state returned, for its downstream tasks to count).
    fn apply_decision(&mut self, index: usize, decision: Decision) -> Option<TaskState> {
        let state = match decision {
            Decision::Wait => return None,
            Decision::Run => {
                self.instances[index].decided = true;
                self.ready.push(index, self.priority(index));
                return None;
            }
            Decision::UpstreamFailed => TaskState::UpstreamFailed,
            Decision::Skip => TaskState::Skipped,
        };
        self.set_state(index, state, None);
        Some(state)
    }

    /// Readies the instances `children` of the task in a mapped group at `parent`: each
    /// counts what the task's upstream tasks outside the group ended in so far, and waits
    /// for its own instances of those inside.
    fn await_passes(&mut self, parent: usize, children: Range<usize>) {
        let dag = self.dag();
        let task = self.task(parent);
        let inside = upstream_counts(dag, task, |up| {
            dag[up].mapped_group() == task.mapped_group()
        });
        let mut counts = self.instances[parent].upstream;
        counts.total = counts.total.saturating_add(inside.total);
        counts.setups = counts.setups.saturating_add(inside.setups);
        for child in children {
            let inst = &mut self.instances[child];
            inst.upstream = counts;
            inst.decided = false;
        }
    }

    /// A task outside the mapped group of the task at `index` (task level) finished with
    /// `finished`: counted now, or by each instance once it has expanded.
    fn member_upstream_finished(&mut self, index: usize, finished: &UpstreamCounts) {
        if self.instances[index].record.state != TaskState::None {
            return;
        }
        let Some(children) = self.instances[index]
            .expansion
            .as_ref()
            .map(|e| e.children.clone())
        else {
            self.instances[index].upstream.add(finished);
            return;
        };
        for child in children {
            let inst = &mut self.instances[child];
            if inst.record.state == TaskState::None && !inst.decided {
                inst.upstream.add(finished);
                self.decide_pass(child);
            }
        }
    }

    /// The task at `done` finished: the mapped groups that take their lists from it may
    /// now have them all.
    fn producer_finished(&mut self, done: TaskIndex) {
        let dag = self.dag();
        for (group, mapping) in dag.mapped_groups() {
            if !mapping.producers().any(|p| p == done) {
                continue;
            }
            let Some(track) = self.groups[group].as_mut() else {
                continue;
            };
            track.pending = track.pending.saturating_sub(1);
            if track.pending == 0 && !track.resolved {
                self.group_lists_final(group);
            }
        }
    }

    /// Every task whose output is a list of mapped group `group` finished: the group
    /// expands if they all succeeded; else its tasks end as a task taking those lists
    /// would (`upstream_failed` after a failure, `skipped` after a skip).
    fn group_lists_final(&mut self, group: usize) {
        let dag = self.dag();
        let Some(mapping) = dag.group_mapping(group) else {
            return;
        };
        let states: Vec<TaskState> = mapping
            .producers()
            .map(|p| self.instances[Self::level(p)].record.state)
            .collect();
        let state = if states.iter().all(|&s| s == TaskState::Success) {
            self.ready_groups.push(group);
            return;
        } else if states
            .iter()
            .any(|s| matches!(s, TaskState::Failed | TaskState::UpstreamFailed))
        {
            TaskState::UpstreamFailed
        } else {
            TaskState::Skipped
        };
        self.settle_group(group, state, None);
    }

    /// Ends every task of mapped group `group` in `state` without expanding it.
    fn settle_group(&mut self, group: usize, state: TaskState, error: Option<String>) {
        if let Some(track) = self.groups[group].as_mut() {
            track.resolved = true;
        }
        let dag = self.dag();
        let Some(mapping) = dag.group_mapping(group) else {
            return;
        };
        tracing::info!(group = %dag.groups()[group].id(), %state, "mapped task group did not expand");
        let members: Vec<usize> = mapping
            .members()
            .iter()
            .map(|&m| Self::level(m))
            .filter(|&m| self.instances[m].record.state == TaskState::None)
            .collect();
        for &member in &members {
            self.instances[member].decided = true;
            self.set_state(member, state, error.clone());
        }
        for &member in &members {
            self.settle(member, UpstreamCounts::one(state));
        }
    }

    /// Mapped group `group` expands over lists of `lengths` (one per list), or cannot read
    /// them: every task in it gets one instance per element (per combination), each
    /// waiting for its upstream instances with the same map index; an empty list skips the
    /// group's tasks (as Airflow does); lists that cannot be read, or are too long, fail
    /// them.
    pub(crate) fn expand_group(
        &mut self,
        group: usize,
        lengths: Result<Vec<usize>, TaskError>,
        now: DateTime<Utc>,
    ) {
        let dag = self.dag();
        let (Some(mapping), Some(track)) = (dag.group_mapping(group), self.groups[group].as_ref())
        else {
            return;
        };
        if track.resolved {
            return;
        }
        let id = dag.groups()[group].id();
        let count = lengths.and_then(|lengths| {
            let count = mapping::expansion_length(&lengths, mapping.mode());
            let limit = self.options.max_map_length;
            if count > limit {
                return Err(TaskError::Failed(format!(
                    "mapped task group `{id}` would expand to {count} instances per task, over \
                     the limit of {limit}; raise max_map_length (FLOW_MAX_MAP_LENGTH) or map \
                     over fewer elements"
                )));
            }
            Ok(count)
        });
        let count = match count {
            Ok(0) => {
                tracing::info!(group = %id, "mapped over an empty list: skipped");
                return self.settle_group(group, TaskState::Skipped, None);
            }
            Ok(count) => count,
            Err(error) => {
                for &member in mapping.members() {
                    self.instances[Self::level(member)].record.end = Some(now);
                }
                return self.settle_group(group, TaskState::Failed, Some(error.to_string()));
            }
        };
        if let Some(track) = self.groups[group].as_mut() {
            track.resolved = true;
        }
        tracing::info!(group = %id, instances = count, "mapped task group expanded");
        let members: Vec<TaskIndex> = self
            .plan
            .topological_order()
            .iter()
            .copied()
            .filter(|&t| self.plan.task(t).mapped_group() == Some(group))
            .collect();
        for &member in &members {
            let index = Self::level(member);
            let first = self.instances.len();
            self.add_instances(index, count);
            self.await_passes(index, first..first + count);
            self.instances[index].decided = true;
        }
        for &member in &members {
            let children = self.instances[Self::level(member)]
                .expansion
                .as_ref()
                .map(|e| e.children.clone())
                .unwrap_or_default();
            for child in children {
                self.decide_pass(child);
            }
        }
    }

    /// Tells the downstream tasks of the task-level instance `index` that it finished with
    /// `finished` (one state, or one per instance of a mapped task).
    fn settle(&mut self, index: usize, finished: UpstreamCounts) {
        let mut settled = vec![(index, finished)];
        while let Some((done, finished)) = settled.pop() {
            let plan = self.plan;
            // A teardown counts what its setups ended in apart.
            let finished = if plan.task(self.instances[done].task).role().is_setup() {
                finished.of_setup()
            } else {
                finished
            };
            let done_task = self.instances[done].task;
            let done_group = plan.task(done_task).mapped_group();
            for &task in plan.dependents(done_task) {
                let d = Self::level(task);
                if let Some(group) = plan.task(task).mapped_group() {
                    // Inside one mapped group, instances count each other by map index.
                    if done_group != Some(group) {
                        self.member_upstream_finished(d, &finished);
                    }
                    continue;
                }
                let inst = &mut self.instances[d];
                if inst.record.state != TaskState::None || inst.decided {
                    continue;
                }
                inst.upstream.add(&finished);
                let decision = trigger::decide(plan.task(task).trigger_rule(), &inst.upstream);
                if let Some(state) = self.apply_decision(d, decision) {
                    settled.push((d, UpstreamCounts::one(state)));
                }
            }
            if !self.groups.is_empty() {
                self.producer_finished(done_task);
            }
        }
    }

    /// Adds an instance of the mapped task at `parent`.
    fn add_child(&mut self, parent: usize, record: TaskInstanceRecord) -> usize {
        // A stored instance expects its row; a new one (`none`, no try) expects none.
        let stored = Expect::of(&record);
        self.instances.push(Instance {
            task: self.instances[parent].task,
            parent: Some(parent),
            expansion: None,
            stored,
            record,
            upstream: UpstreamCounts::default(),
            elapsed: None,
            output: None,
            decided: true,
            pending: None,
        });
        self.instances.len() - 1
    }

    /// One instance of the mapped task at `parent` finished in `state`; once all have,
    /// downstream tasks count each instance as one upstream result (as Airflow does).
    fn child_finished(&mut self, parent: usize, state: TaskState) {
        let Some(expansion) = self.instances[parent].expansion.as_mut() else {
            return;
        };
        expansion.finished += 1;
        if expansion.finished < expansion.children.len() {
            return;
        }
        let children = expansion.children.clone();
        let mut counts = UpstreamCounts {
            total: u32::try_from(children.len()).unwrap_or(u32::MAX),
            ..UpstreamCounts::default()
        };
        for child in children.clone() {
            counts.record(self.instances[child].record.state);
        }
        tracing::debug!(task = %self.task(parent).id(), last = %state, "every mapped instance finished");
        // The task-level instance is not stored (its instances are); its state sums them
        // up for the run's leaf rule.
        let end = children
            .filter_map(|child| self.instances[child].record.end)
            .max();
        let inst = &mut self.instances[parent];
        inst.record.state = if counts.failed + counts.upstream_failed > 0 {
            TaskState::Failed
        } else if counts.success > 0 {
            TaskState::Success
        } else {
            TaskState::Skipped
        };
        inst.record.end = end;
        self.settle(parent, counts);
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
                dag_id: self.dag_id.clone(),
                run_id: self.run_id.clone(),
                logical_date: self.logical_date,
                task_id: Some(inst.record.key.task_id.clone()),
                map_index: inst.record.key.map_index.get(),
                try_number: inst.record.try_number,
                state: state.as_str(),
                error: inst.record.error.clone(),
            };
            self.alerts.extend(
                callbacks
                    .iter()
                    .cloned()
                    .chain(email)
                    .map(|callback| (callback, event.clone())),
            );
        }
        if self.options.events {
            let ends_try = state.is_finished() || state == TaskState::UpForRetry;
            self.events.push(TaskEvent {
                dag_id: self.dag_id.clone(),
                run_id: self.run_id.clone(),
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

    /// The run-level alerts of a run that ended in `state`.
    pub(crate) fn run_ended(&mut self, state: RunState) {
        let event = CallbackEvent {
            dag_id: self.dag_id.clone(),
            run_id: self.run_id.clone(),
            logical_date: self.logical_date,
            task_id: None,
            map_index: None,
            try_number: 0,
            state: state.as_str(),
            error: None,
        };
        for callback in self.dag().callbacks().for_state(state.as_str()) {
            self.alerts.push((callback.clone(), event.clone()));
        }
    }

    /// The callback that mails task `index`'s `email` recipients.
    #[cfg(feature = "email")]
    fn email_alert(&self, index: usize) -> Option<Callback> {
        let task = self.task(index);
        // The addresses were checked when the DAG was built.
        match crate::notify::EmailNotifier::new(task.email()) {
            Ok(notifier) => Some(std::sync::Arc::new(
                notifier
                    .shared_smtp(self.options.smtp.clone())
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
}

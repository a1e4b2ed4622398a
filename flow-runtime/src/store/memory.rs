//! An in-memory store: fast, ephemeral, and strict about the task lifecycle.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use rustc_hash::FxHashMap as HashMap;
use std::sync::{Mutex, MutexGuard};

use super::{
    Change, Claimed, DagRecord, DagRunRecord, DagStore, Expect, LeaseGrant, LogLine, LogStore,
    Outcome, OutcomeCursor, Page, Paged, QueueStore, ReportedOutcome, RescheduleRecord,
    RescheduleStore, RunLeaseStore, RunQuery, RunStore, RunType, SlotRequest, SlotStore, SlotTally,
    StoreError, TaskInstanceRecord, TryRecord, WorkerId, XComStore,
};
use crate::assets::AssetEvent;
use crate::ids::{DagId, RunId, TaskId, TaskInstanceKey};
use crate::pools::{Claim, DEFAULT_POOL, DEFAULT_POOL_SLOTS, Grant};
use crate::state::{RunState, TaskState};
use crate::xcom::StoredXCom;

/// Keeps runs, task instances, tries, XCom and logs in memory; gone when the process ends.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

type RunKey = (DagId, RunId);

#[derive(Default)]
struct Inner {
    dags: BTreeMap<DagId, DagRecord>,
    runs: BTreeMap<RunKey, DagRunRecord>,
    /// Instances per run, in insertion order.
    tasks: HashMap<RunKey, Vec<TaskInstanceRecord>>,
    task_index: HashMap<TaskInstanceKey, usize>,
    tries: HashMap<TaskInstanceKey, Vec<TryRecord>>,
    xcoms: HashMap<(TaskInstanceKey, String), StoredXCom>,
    logs: HashMap<TaskInstanceKey, Vec<(u32, LogLine)>>,
    pools: BTreeMap<String, super::PoolRecord>,
    reschedules: HashMap<TaskInstanceKey, Vec<RescheduleRecord>>,
    /// Applied batches so far: the order in which queued instances joined the queue.
    batches: u64,
    /// When (which batch) each queued instance joined the queue.
    queued_at: HashMap<TaskInstanceKey, u64>,
    /// The worker holding each claimed instance, and until when.
    leases: HashMap<TaskInstanceKey, (WorkerId, DateTime<Utc>)>,
    outcomes: Vec<ReportedOutcome>,
    last_outcome: i64,
    /// Pool slots held, per instance.
    holds: Holds,
    /// The owner of each leased run, and until when.
    run_leases: HashMap<RunKey, (String, DateTime<Utc>)>,
    /// Asset updates, in the order recorded (an event's id is its place + 1).
    asset_events: Vec<AssetEvent>,
    /// Per DAG and asset URI, the last event consumed.
    asset_consumers: BTreeMap<(DagId, String), i64>,
}

/// What one owner holds of one pool for one run (the SQLite store's `slot_usage` row).
struct Usage {
    slots: u32,
    tasks: u32,
    until: DateTime<Utc>,
}

/// The slot counts, by run, pool and owner.
#[derive(Default)]
struct Holds {
    counts: HashMap<(RunKey, String, String), Usage>,
}

impl Holds {
    /// Drops the counts whose lease ran out by `now`.
    fn expire(&mut self, now: DateTime<Utc>) {
        self.counts.retain(|_, usage| usage.until >= now);
    }

    /// Counts a granted `claim` of `run` under `owner`, held until `until`.
    fn take(&mut self, run: RunKey, owner: &str, claim: &Claim, until: DateTime<Utc>) {
        let key = (run, claim.pool.clone(), owner.to_string());
        let usage = self.counts.entry(key).or_insert(Usage {
            slots: 0,
            tasks: 0,
            until,
        });
        usage.slots += claim.slots;
        usage.tasks += 1;
        usage.until = until;
    }

    fn release(&mut self, release: &super::SlotRelease) {
        let key = (
            (release.dag_id.clone(), release.run_id.clone()),
            release.pool.clone(),
            release.owner.clone(),
        );
        if let Some(usage) = self.counts.get_mut(&key) {
            usage.slots = usage.slots.saturating_sub(release.slots);
            usage.tasks = usage.tasks.saturating_sub(release.tasks);
            if usage.slots == 0 && usage.tasks == 0 {
                self.counts.remove(&key);
            }
        }
    }

    /// Drops the counts of `run`: those of `owner`, or of every owner when `None`.
    fn forget_run(&mut self, run: &RunKey, owner: Option<&str>) {
        self.counts
            .retain(|(of, _, by), _| of != run || owner.is_some_and(|owner| owner != by));
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Batches are validated before any change is made, so a panic elsewhere while the
        // lock was held cannot have left a half-applied batch behind.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn run_key(key: &TaskInstanceKey) -> RunKey {
    (key.dag_id.clone(), key.run_id.clone())
}

impl Inner {
    fn stored(&self, key: &TaskInstanceKey) -> Option<&TaskInstanceRecord> {
        let i = *self.task_index.get(key)?;
        self.tasks.get(&run_key(key))?.get(i)
    }

    /// The pool sizes and live counts at `now` (counts whose lease ran out are dropped).
    fn tally(&mut self, now: DateTime<Utc>) -> SlotTally {
        self.holds.expire(now);
        let mut tally = SlotTally::default();
        tally
            .sizes
            .insert(DEFAULT_POOL.to_string(), DEFAULT_POOL_SLOTS);
        for pool in self.pools.values() {
            tally.sizes.insert(pool.name.clone(), pool.slots);
        }
        for (((dag, _), pool, _), usage) in &self.holds.counts {
            *tally.used.entry(pool.clone()).or_default() += usage.slots;
            *tally.dag_running.entry(dag.clone()).or_default() += usage.tasks;
        }
        tally
    }

    fn check(&self, changes: &[Change]) -> Result<(), StoreError> {
        // What earlier changes of this batch wrote; `None` for a removed instance.
        let mut pending: HashMap<&TaskInstanceKey, Option<Expect>> = HashMap::default();
        let mut known_run: Option<(&DagId, &RunId)> = None;
        // Runs this batch creates.
        let mut created: Vec<(&DagId, &RunId)> = Vec::new();
        for change in changes {
            if let Change::CreateRun(run) = change {
                let id = (&run.dag_id, &run.run_id);
                if created.contains(&id)
                    || self
                        .runs
                        .contains_key(&(run.dag_id.clone(), run.run_id.clone()))
                {
                    return Err(StoreError::RunExists {
                        dag_id: run.dag_id.clone(),
                        run_id: run.run_id.clone(),
                    });
                }
                created.push(id);
            }
            let (dag_id, run_id) = match change {
                Change::Task {
                    record: TaskInstanceRecord { key, .. },
                    ..
                }
                | Change::Start {
                    record: TaskInstanceRecord { key, .. },
                    ..
                }
                | Change::RemoveInstance(key)
                | Change::XCom { key, .. }
                | Change::Log { key, .. }
                | Change::Reschedule(RescheduleRecord { key, .. })
                | Change::AssetUpdated { source: key, .. } => (&key.dag_id, &key.run_id),
                // About a DAG, not a run.
                Change::ConsumeAssets { .. } => continue,
                Change::CreateRun(DagRunRecord { dag_id, run_id, .. })
                | Change::Run { dag_id, run_id, .. }
                | Change::ReleaseRunLease { dag_id, run_id, .. }
                | Change::TakeRunLease { dag_id, run_id, .. }
                | Change::ReleaseSlots(super::SlotRelease { dag_id, run_id, .. }) => {
                    (dag_id, run_id)
                }
            };
            if known_run == Some((dag_id, run_id)) {
                // Checked already; batches are almost always about one run.
            } else if created.contains(&(dag_id, run_id))
                || self.runs.contains_key(&(dag_id.clone(), run_id.clone()))
            {
                known_run = Some((dag_id, run_id));
            } else {
                return Err(StoreError::NoSuchRun {
                    dag_id: dag_id.clone(),
                    run_id: run_id.clone(),
                });
            }
            match change {
                // A start is its instance's last change in the batch: whether the store
                // grants it or not, nothing after it expects what it wrote.
                Change::Task { record, expect } | Change::Start { record, expect, .. } => {
                    if !expect.allows(record.state) {
                        return Err(StoreError::IllegalTransition {
                            key: record.key.clone(),
                            from: expect.state,
                            to: record.state,
                        });
                    }
                    let found = match pending.get(&record.key) {
                        Some(written) => *written,
                        None => self.stored(&record.key).map(Expect::of),
                    }
                    .unwrap_or(Expect::FRESH);
                    if found != *expect {
                        return Err(StoreError::Conflict {
                            key: record.key.clone(),
                            expected: *expect,
                            found,
                        });
                    }
                    pending.insert(&record.key, Some(Expect::of(record)));
                }
                Change::RemoveInstance(key) => {
                    pending.insert(key, None);
                }
                Change::TakeRunLease {
                    dag_id,
                    run_id,
                    owner,
                    now,
                    ..
                } => {
                    let id = (dag_id.clone(), run_id.clone());
                    if let Some((by, until)) = self.run_leases.get(&id)
                        && by != owner
                        && until >= now
                    {
                        return Err(StoreError::RunLeaseHeld {
                            dag_id: dag_id.clone(),
                            run_id: run_id.clone(),
                            owner: by.clone(),
                            until: *until,
                        });
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn remove_task(&mut self, key: &TaskInstanceKey) {
        let Some(i) = self.task_index.remove(key) else {
            return;
        };
        if let Some(list) = self.tasks.get_mut(&run_key(key)) {
            list.swap_remove(i);
            if let Some(moved) = list.get(i) {
                self.task_index.insert(moved.key.clone(), i);
            }
        }
        self.xcoms.retain(|(k, _), _| k != key);
        self.reschedules.remove(key);
        self.leases.remove(key);
        self.queued_at.remove(key);
    }

    fn upsert_task(&mut self, ti: &TaskInstanceRecord) {
        if let Some(attempt) = ti.archived_try() {
            let tries = self.tries.entry(ti.key.clone()).or_default();
            match tries
                .iter_mut()
                .find(|t| t.try_number == attempt.try_number)
            {
                Some(existing) => *existing = attempt,
                None => tries.push(attempt),
            }
        }
        let was_queued = self.stored(&ti.key).map(|r| r.state) == Some(TaskState::Queued);
        if ti.state == TaskState::Queued && !was_queued {
            self.queued_at.insert(ti.key.clone(), self.batches);
        }
        if ti.state != TaskState::Running {
            self.leases.remove(&ti.key);
        }
        let list = self.tasks.entry(run_key(&ti.key)).or_default();
        match self.task_index.get(&ti.key) {
            Some(&i) => list[i] = ti.clone(),
            None => {
                list.push(ti.clone());
                self.task_index.insert(ti.key.clone(), list.len() - 1);
            }
        }
    }
}

/// The page `page` of `all`.
fn paged<T>(all: Vec<T>, page: Page) -> Paged<T> {
    let total = all.len();
    let items = all.into_iter().skip(page.offset).take(page.limit).collect();
    Paged { items, total }
}

impl RunStore for MemoryStore {
    fn create_run(&self, run: &DagRunRecord) -> Result<(), StoreError> {
        self.apply(&[Change::CreateRun(run.clone())]).map(drop)
    }

    fn apply(&self, changes: &[Change]) -> Result<Vec<Grant>, StoreError> {
        let mut inner = self.lock();
        inner.check(changes)?;
        inner.batches += 1;
        // Read at the first start of the batch, and kept up to date by it.
        let mut tally: Option<SlotTally> = None;
        let mut grants = Vec::new();
        for change in changes {
            match change {
                Change::Task { record, .. } => inner.upsert_task(record),
                Change::AssetUpdated {
                    uri,
                    source,
                    timestamp,
                } => {
                    let id = i64::try_from(inner.asset_events.len()).unwrap_or(i64::MAX) + 1;
                    inner.asset_events.push(AssetEvent {
                        id,
                        uri: uri.clone(),
                        source: source.clone(),
                        timestamp: *timestamp,
                    });
                }
                Change::ConsumeAssets { dag_id, upto } => {
                    for (uri, id) in upto {
                        inner
                            .asset_consumers
                            .insert((dag_id.clone(), uri.clone()), *id);
                    }
                }
                Change::CreateRun(run) => {
                    let id = (run.dag_id.clone(), run.run_id.clone());
                    inner.runs.insert(id.clone(), run.clone());
                    inner.tasks.insert(id, Vec::new());
                }
                Change::Start { record, ask, .. } => {
                    let tally = match &mut tally {
                        Some(tally) => tally,
                        None => tally.insert(inner.tally(ask.now)),
                    };
                    let grant = tally.grant(&ask.claim);
                    if grant == Grant::Granted {
                        let run = run_key(&record.key);
                        inner.holds.take(run, &ask.owner, &ask.claim, ask.until);
                        inner.upsert_task(record);
                    }
                    grants.push(grant);
                }
                Change::RemoveInstance(key) => inner.remove_task(key),
                Change::ReleaseSlots(release) => inner.holds.release(release),
                Change::XCom { key, name, value } => {
                    inner
                        .xcoms
                        .insert((key.clone(), name.clone()), value.clone());
                }
                Change::Log {
                    key,
                    try_number,
                    lines,
                } => {
                    let logs = inner.logs.entry(key.clone()).or_default();
                    logs.extend(lines.iter().map(|line| (*try_number, line.clone())));
                }
                Change::Reschedule(record) => {
                    let list = inner.reschedules.entry(record.key.clone()).or_default();
                    list.push(record.clone());
                }
                Change::Run {
                    dag_id,
                    run_id,
                    state,
                    start,
                    end,
                } => {
                    if let Some(run) = inner.runs.get_mut(&(dag_id.clone(), run_id.clone())) {
                        run.state = *state;
                        run.start = *start;
                        run.end = *end;
                    }
                }
                Change::ReleaseRunLease {
                    dag_id,
                    run_id,
                    owner,
                } => {
                    let id = (dag_id.clone(), run_id.clone());
                    if inner.run_leases.get(&id).is_some_and(|(by, _)| by == owner) {
                        inner.run_leases.remove(&id);
                    }
                }
                Change::TakeRunLease {
                    dag_id,
                    run_id,
                    owner,
                    until,
                    ..
                } => {
                    inner
                        .run_leases
                        .insert((dag_id.clone(), run_id.clone()), (owner.clone(), *until));
                }
            }
        }
        Ok(grants)
    }

    fn run(&self, dag_id: &DagId, run_id: &RunId) -> Result<Option<DagRunRecord>, StoreError> {
        Ok(self
            .lock()
            .runs
            .get(&(dag_id.clone(), run_id.clone()))
            .cloned())
    }

    fn runs(&self, dag_id: Option<&DagId>) -> Result<Vec<DagRunRecord>, StoreError> {
        let inner = self.lock();
        let mut runs: Vec<_> = inner
            .runs
            .values()
            .filter(|r| dag_id.is_none_or(|d| &r.dag_id == d))
            .cloned()
            .collect();
        runs.sort_by(|a, b| {
            b.logical_date
                .cmp(&a.logical_date)
                .then_with(|| b.run_id.cmp(&a.run_id))
        });
        Ok(runs)
    }

    fn runs_page(&self, query: &RunQuery, page: Page) -> Result<Paged<DagRunRecord>, StoreError> {
        let mut runs: Vec<DagRunRecord> = self
            .runs(query.dag_id.as_ref())?
            .into_iter()
            .filter(|run| query.admits(run))
            .collect();
        runs.sort_by(|a, b| query.order.compare(a, b));
        Ok(paged(runs, page))
    }

    fn task_instances_page(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
        page: Page,
    ) -> Result<Paged<TaskInstanceRecord>, StoreError> {
        let mut all = self.task_instances(dag_id, run_id)?;
        // The order SQLite reads them in.
        all.sort_by(|a, b| {
            (&a.key.task_id, a.key.map_index.as_i64())
                .cmp(&(&b.key.task_id, b.key.map_index.as_i64()))
        });
        Ok(paged(all, page))
    }

    fn unfinished_runs(&self) -> Result<Vec<DagRunRecord>, StoreError> {
        let mut runs: Vec<_> = self
            .lock()
            .runs
            .values()
            .filter(|r| !r.state.is_finished())
            .cloned()
            .collect();
        runs.sort_by(|a, b| {
            a.logical_date
                .cmp(&b.logical_date)
                .then_with(|| a.run_id.cmp(&b.run_id))
        });
        Ok(runs)
    }

    fn latest_run(
        &self,
        dag_id: &DagId,
        run_type: RunType,
    ) -> Result<Option<DagRunRecord>, StoreError> {
        Ok(self
            .lock()
            .runs
            .values()
            .filter(|r| &r.dag_id == dag_id && r.run_type == run_type)
            .max_by(|a, b| {
                a.logical_date
                    .cmp(&b.logical_date)
                    .then_with(|| a.run_id.cmp(&b.run_id))
            })
            .cloned())
    }

    fn previous_run(
        &self,
        dag_id: &DagId,
        logical_date: DateTime<Utc>,
    ) -> Result<Option<DagRunRecord>, StoreError> {
        Ok(self
            .lock()
            .runs
            .values()
            .filter(|r| &r.dag_id == dag_id && r.logical_date < logical_date)
            .max_by(|a, b| {
                a.logical_date
                    .cmp(&b.logical_date)
                    .then_with(|| a.run_id.cmp(&b.run_id))
            })
            .cloned())
    }

    fn task_instances(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
    ) -> Result<Vec<TaskInstanceRecord>, StoreError> {
        Ok(self
            .lock()
            .tasks
            .get(&(dag_id.clone(), run_id.clone()))
            .cloned()
            .unwrap_or_default())
    }

    fn tries(&self, key: &TaskInstanceKey) -> Result<Vec<TryRecord>, StoreError> {
        let inner = self.lock();
        let mut tries = inner.tries.get(key).cloned().unwrap_or_default();
        let current = inner
            .task_index
            .get(key)
            .and_then(|&i| inner.tasks.get(&run_key(key))?[i].current_try());
        if let Some(current) = current
            && !tries.iter().any(|t| t.try_number == current.try_number)
        {
            tries.push(current);
        }
        Ok(tries)
    }

    fn clear(&self, dag_id: &DagId, run_id: &RunId, tasks: &[TaskId]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let id = (dag_id.clone(), run_id.clone());
        let Some(run) = inner.runs.get_mut(&id) else {
            return Err(StoreError::NoSuchRun {
                dag_id: dag_id.clone(),
                run_id: run_id.clone(),
            });
        };
        run.state = RunState::Queued;
        run.end = None;
        let mut cleared = Vec::new();
        let mut archived = Vec::new();
        for ti in inner.tasks.get_mut(&id).into_iter().flatten() {
            if tasks.contains(&ti.key.task_id) {
                if let Some(attempt) = ti.current_try() {
                    archived.push((ti.key.clone(), attempt));
                }
                ti.state = TaskState::None;
                ti.start = None;
                ti.end = None;
                ti.error = None;
                cleared.push(ti.key.clone());
            }
        }
        for (key, attempt) in archived {
            let tries = inner.tries.entry(key).or_default();
            if !tries.iter().any(|t| t.try_number == attempt.try_number) {
                tries.push(attempt);
            }
        }
        inner.xcoms.retain(|(key, _), _| !cleared.contains(key));
        inner.reschedules.retain(|key, _| !cleared.contains(key));
        inner.leases.retain(|key, _| !cleared.contains(key));
        Ok(())
    }

    fn delete_run(&self, dag_id: &DagId, run_id: &RunId) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let id = (dag_id.clone(), run_id.clone());
        if inner.runs.remove(&id).is_none() {
            return Err(StoreError::NoSuchRun {
                dag_id: dag_id.clone(),
                run_id: run_id.clone(),
            });
        }
        inner.tasks.remove(&id);
        let other_run = |key: &TaskInstanceKey| key.dag_id != *dag_id || key.run_id != *run_id;
        inner.task_index.retain(|key, _| other_run(key));
        inner.tries.retain(|key, _| other_run(key));
        inner.logs.retain(|key, _| other_run(key));
        inner.xcoms.retain(|(key, _), _| other_run(key));
        inner.reschedules.retain(|key, _| other_run(key));
        inner.leases.retain(|key, _| other_run(key));
        inner.queued_at.retain(|key, _| other_run(key));
        inner.outcomes.retain(|o| other_run(&o.key));
        inner.holds.forget_run(&id, None);
        inner.run_leases.remove(&id);
        Ok(())
    }
}

impl super::AssetStore for MemoryStore {
    fn asset_events(&self, uri: &str, after: i64) -> Result<Vec<AssetEvent>, StoreError> {
        Ok(self
            .lock()
            .asset_events
            .iter()
            .filter(|e| e.uri == uri && e.id > after)
            .cloned()
            .collect())
    }

    fn consumed_assets(&self, dag_id: &DagId) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(self
            .lock()
            .asset_consumers
            .iter()
            .filter(|((dag, _), _)| dag == dag_id)
            .map(|((_, uri), id)| (uri.clone(), *id))
            .collect())
    }
}

impl RescheduleStore for MemoryStore {
    fn reschedules(
        &self,
        key: &TaskInstanceKey,
        try_number: u32,
    ) -> Result<Vec<RescheduleRecord>, StoreError> {
        Ok(self
            .lock()
            .reschedules
            .get(key)
            .into_iter()
            .flatten()
            .filter(|r| r.try_number == try_number)
            .cloned()
            .collect())
    }
}

impl XComStore for MemoryStore {
    fn get_xcom(
        &self,
        key: &TaskInstanceKey,
        name: &str,
    ) -> Result<Option<StoredXCom>, StoreError> {
        Ok(self
            .lock()
            .xcoms
            .get(&(key.clone(), name.to_string()))
            .cloned())
    }

    fn latest_xcom(
        &self,
        dag_id: &DagId,
        task_id: &TaskId,
        name: &str,
    ) -> Result<Option<(RunId, StoredXCom)>, StoreError> {
        let inner = self.lock();
        let newest = inner
            .xcoms
            .iter()
            .filter(|((key, n), _)| &key.dag_id == dag_id && &key.task_id == task_id && n == name)
            .filter_map(|((key, _), blob)| {
                let run = inner.runs.get(&run_key(key))?;
                Some(((run.logical_date, key.run_id.clone()), blob))
            })
            .max_by(|a, b| a.0.cmp(&b.0));
        Ok(newest.map(|((_, run_id), blob)| (run_id, blob.clone())))
    }

    fn xcoms(&self, key: &TaskInstanceKey) -> Result<Vec<(String, StoredXCom)>, StoreError> {
        let mut found: Vec<(String, StoredXCom)> = self
            .lock()
            .xcoms
            .iter()
            .filter(|((k, _), _)| k == key)
            .map(|((_, name), value)| (name.clone(), value.clone()))
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(found)
    }
}

impl DagStore for MemoryStore {
    fn record_dag(&self, dag_id: &DagId, fingerprint: &str) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let record = inner
            .dags
            .entry(dag_id.clone())
            .or_insert_with(|| DagRecord {
                dag_id: dag_id.clone(),
                paused: false,
                fingerprint: String::new(),
            });
        record.fingerprint = fingerprint.to_string();
        Ok(())
    }

    fn dag(&self, dag_id: &DagId) -> Result<Option<DagRecord>, StoreError> {
        Ok(self.lock().dags.get(dag_id).cloned())
    }

    fn set_paused(&self, dag_id: &DagId, paused: bool) -> Result<(), StoreError> {
        match self.lock().dags.get_mut(dag_id) {
            Some(record) => {
                record.paused = paused;
                Ok(())
            }
            None => Err(StoreError::Backend(format!(
                "DAG `{dag_id}` is not recorded"
            ))),
        }
    }
}

impl LogStore for MemoryStore {
    fn logs(
        &self,
        key: &TaskInstanceKey,
        try_number: Option<u32>,
    ) -> Result<Vec<(u32, LogLine)>, StoreError> {
        Ok(self
            .lock()
            .logs
            .get(key)
            .into_iter()
            .flatten()
            .filter(|(t, _)| try_number.is_none_or(|n| n == *t))
            .cloned()
            .collect())
    }
}

impl super::PoolStore for MemoryStore {
    fn set_pool(&self, pool: &super::PoolRecord) -> Result<(), StoreError> {
        self.lock().pools.insert(pool.name.clone(), pool.clone());
        Ok(())
    }

    fn pools(&self) -> Result<Vec<super::PoolRecord>, StoreError> {
        Ok(self.lock().pools.values().cloned().collect())
    }

    fn delete_pool(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.lock().pools.remove(name).is_some())
    }
}

impl QueueStore for MemoryStore {
    fn claim(
        &self,
        worker: &WorkerId,
        queue: Option<&str>,
        limit: usize,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<Claimed>, StoreError> {
        let mut inner = self.lock();
        let lease_until = super::lease_end(now, lease);
        let mut queued: Vec<(i64, u64, TaskInstanceKey)> = inner
            .tasks
            .values()
            .flatten()
            .filter(|ti| ti.state == TaskState::Queued)
            .filter(|ti| queue.is_none_or(|q| ti.queue.as_deref() == Some(q)))
            .map(|ti| {
                let at = inner.queued_at.get(&ti.key).copied().unwrap_or(0);
                (ti.priority_weight, at, ti.key.clone())
            })
            .collect();
        let order = |k: &TaskInstanceKey| {
            (
                k.dag_id.clone(),
                k.run_id.clone(),
                k.task_id.clone(),
                k.map_index.as_i64(),
            )
        };
        queued.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then(a.1.cmp(&b.1))
                .then_with(|| order(&a.2).cmp(&order(&b.2)))
        });
        let mut claimed = Vec::new();
        for (_, _, key) in queued.into_iter().take(limit) {
            let Some(&i) = inner.task_index.get(&key) else {
                continue;
            };
            let Some(ti) = inner
                .tasks
                .get_mut(&run_key(&key))
                .and_then(|l| l.get_mut(i))
            else {
                continue;
            };
            ti.state = TaskState::Running;
            ti.try_number += 1;
            ti.start = Some(now);
            ti.end = None;
            ti.error = None;
            let record = ti.clone();
            inner.queued_at.remove(&key);
            inner.leases.insert(key, (worker.clone(), lease_until));
            claimed.push(Claimed {
                record,
                worker: worker.clone(),
                lease_until,
            });
        }
        Ok(claimed)
    }

    fn heartbeat(
        &self,
        worker: &WorkerId,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<usize, StoreError> {
        let mut inner = self.lock();
        let Inner {
            leases,
            tasks,
            task_index,
            ..
        } = &mut *inner;
        let until = super::lease_end(now, lease);
        let mut extended = 0;
        for (key, (holder, lease_until)) in leases.iter_mut() {
            let running = task_index
                .get(key)
                .and_then(|&i| tasks.get(&run_key(key))?.get(i))
                .is_some_and(|ti| ti.state == TaskState::Running);
            if holder == worker && running && *lease_until >= now {
                *lease_until = until;
                extended += 1;
            }
        }
        Ok(extended)
    }

    fn report(
        &self,
        claimed: &Claimed,
        outcome: &Outcome,
        now: DateTime<Utc>,
    ) -> Result<OutcomeCursor, StoreError> {
        super::check_outcome(claimed, outcome)?;
        let mut inner = self.lock();
        let key = &claimed.record.key;
        let try_number = claimed.record.try_number;
        let reason = match (inner.stored(key), inner.leases.get(key)) {
            (None, _) => Some("the instance is gone".to_string()),
            (Some(ti), _) if ti.state != TaskState::Running => {
                Some(format!("the instance is {} now", ti.state))
            }
            (Some(ti), _) if ti.try_number != try_number => {
                Some(format!("the instance is at try {} now", ti.try_number))
            }
            (_, None) => Some("no worker holds it (reported or taken back)".to_string()),
            (_, Some((holder, _))) if holder != &claimed.worker => {
                Some(format!("worker `{holder}` holds it"))
            }
            (_, Some((_, until))) if *until < now => {
                Some(format!("its lease ran out at {}", until.to_rfc3339()))
            }
            _ => None,
        };
        if let Some(reason) = reason {
            return Err(StoreError::ClaimLost {
                key: key.clone(),
                try_number,
                worker: claimed.worker.clone(),
                reason,
            });
        }
        for (name, value) in &outcome.xcoms {
            inner
                .xcoms
                .insert((key.clone(), name.clone()), value.clone());
        }
        inner
            .logs
            .entry(key.clone())
            .or_default()
            .extend(outcome.logs.iter().map(|line| (try_number, line.clone())));
        inner.leases.remove(key);
        inner.last_outcome += 1;
        let cursor = OutcomeCursor(inner.last_outcome);
        inner.outcomes.push(ReportedOutcome {
            cursor,
            key: key.clone(),
            try_number,
            worker: claimed.worker.clone(),
            state: outcome.state,
            error: outcome.error.clone(),
            end: outcome.end,
            reschedule_at: outcome.reschedule_at,
        });
        Ok(cursor)
    }

    fn outcomes_since(
        &self,
        cursor: OutcomeCursor,
        limit: usize,
    ) -> Result<(Vec<ReportedOutcome>, OutcomeCursor), StoreError> {
        let inner = self.lock();
        // Cursors increase along the list.
        let first = inner.outcomes.partition_point(|o| o.cursor <= cursor);
        let outcomes: Vec<_> = inner.outcomes[first..]
            .iter()
            .take(limit)
            .cloned()
            .collect();
        let next = outcomes.last().map_or(cursor, |o| o.cursor);
        Ok((outcomes, next))
    }

    fn expired_claims(&self, now: DateTime<Utc>) -> Result<Vec<TaskInstanceKey>, StoreError> {
        let inner = self.lock();
        let mut expired: Vec<(DateTime<Utc>, TaskInstanceKey)> = inner
            .leases
            .iter()
            .filter(|(key, (_, until))| {
                *until < now
                    && inner
                        .stored(key)
                        .is_some_and(|ti| ti.state == TaskState::Running)
            })
            .map(|(key, (_, until))| (*until, key.clone()))
            .collect();
        let order = |k: &TaskInstanceKey| {
            (
                k.dag_id.clone(),
                k.run_id.clone(),
                k.task_id.clone(),
                k.map_index.as_i64(),
            )
        };
        expired.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| order(&a.1).cmp(&order(&b.1))));
        Ok(expired.into_iter().map(|(_, key)| key).collect())
    }
}

impl SlotStore for MemoryStore {
    fn acquire_slots(
        &self,
        owner: &str,
        requests: &[SlotRequest],
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<Vec<Grant>, StoreError> {
        let mut inner = self.lock();
        if let Some(request) = requests.iter().find(|r| {
            !inner
                .runs
                .contains_key(&(r.claim.dag.clone(), r.run_id.clone()))
        }) {
            return Err(StoreError::NoSuchRun {
                dag_id: request.claim.dag.clone(),
                run_id: request.run_id.clone(),
            });
        }
        let until = super::lease_end(now, ttl);
        let mut tally = inner.tally(now);
        let mut grants = Vec::with_capacity(requests.len());
        for request in requests {
            let grant = tally.grant(&request.claim);
            if grant == Grant::Granted {
                let run = (request.claim.dag.clone(), request.run_id.clone());
                inner.holds.take(run, owner, &request.claim, until);
            }
            grants.push(grant);
        }
        Ok(grants)
    }

    fn release_slots(&self, release: &super::SlotRelease) -> Result<(), StoreError> {
        self.lock().holds.release(release);
        Ok(())
    }

    fn forget_run_slots(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
        owner: Option<&str>,
    ) -> Result<(), StoreError> {
        self.lock()
            .holds
            .forget_run(&(dag_id.clone(), run_id.clone()), owner);
        Ok(())
    }

    fn renew_slots(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<usize, StoreError> {
        let until = super::lease_end(now, ttl);
        let mut renewed = 0;
        for ((_, _, by), usage) in self.lock().holds.counts.iter_mut() {
            if by == owner && usage.until >= now {
                usage.until = until;
                renewed += 1;
            }
        }
        Ok(renewed)
    }

    fn slots_in_use(&self, now: DateTime<Utc>) -> Result<Vec<(String, u32)>, StoreError> {
        let mut used: BTreeMap<String, u32> = BTreeMap::new();
        for ((_, pool, _), usage) in &self.lock().holds.counts {
            if usage.until >= now && usage.slots > 0 {
                *used.entry(pool.clone()).or_default() += usage.slots;
            }
        }
        Ok(used.into_iter().collect())
    }
}

impl RunLeaseStore for MemoryStore {
    fn acquire_run_lease(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
        owner: &str,
        ttl: Duration,
        now: DateTime<Utc>,
        max_active_runs: Option<u32>,
    ) -> Result<LeaseGrant, StoreError> {
        let mut inner = self.lock();
        let id = (dag_id.clone(), run_id.clone());
        if !inner.runs.contains_key(&id) {
            return Err(StoreError::NoSuchRun {
                dag_id: dag_id.clone(),
                run_id: run_id.clone(),
            });
        }
        match inner.run_leases.get(&id) {
            Some((by, until)) if by != owner && *until >= now => {
                return Ok(LeaseGrant::HeldBy {
                    owner: by.clone(),
                    until: *until,
                });
            }
            Some((by, until)) if by == owner && *until >= now => {}
            _ => {
                if let Some(limit) = max_active_runs {
                    let active = inner
                        .run_leases
                        .iter()
                        .filter(|((d, r), (_, until))| d == dag_id && r != run_id && *until >= now)
                        .count();
                    let active = u32::try_from(active).unwrap_or(u32::MAX);
                    if active >= limit {
                        return Ok(LeaseGrant::TooManyActive { active, limit });
                    }
                }
            }
        }
        inner
            .run_leases
            .insert(id, (owner.to_string(), super::lease_end(now, ttl)));
        Ok(LeaseGrant::Granted)
    }

    fn renew_run_lease(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
        owner: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        match inner.run_leases.get_mut(&(dag_id.clone(), run_id.clone())) {
            Some((by, until)) if by == owner && *until >= now => {
                *until = super::lease_end(now, ttl);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn release_run_lease(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
        owner: &str,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let id = (dag_id.clone(), run_id.clone());
        if inner.run_leases.get(&id).is_some_and(|(by, _)| by == owner) {
            inner.run_leases.remove(&id);
            return Ok(true);
        }
        Ok(false)
    }
}

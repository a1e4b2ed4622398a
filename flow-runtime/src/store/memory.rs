//! An in-memory store: fast, ephemeral, and strict about the task lifecycle.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap as HashMap;
use std::sync::{Mutex, MutexGuard};

use super::{
    Change, DagRecord, DagRunRecord, DagStore, LogLine, LogStore, RescheduleRecord,
    RescheduleStore, RunStore, RunType, StoreError, TaskInstanceRecord, TryRecord, XComStore,
};
use crate::ids::{DagId, RunId, TaskId, TaskInstanceKey};
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
    fn state_of(&self, key: &TaskInstanceKey) -> Option<TaskState> {
        let i = *self.task_index.get(key)?;
        Some(self.tasks.get(&run_key(key))?[i].state)
    }

    fn check(&self, changes: &[Change]) -> Result<(), StoreError> {
        let mut pending: HashMap<&TaskInstanceKey, TaskState> = HashMap::default();
        let mut known_run: Option<(&DagId, &RunId)> = None;
        for change in changes {
            let (dag_id, run_id) = match change {
                Change::Task(TaskInstanceRecord { key, .. })
                | Change::RemoveInstance(key)
                | Change::XCom { key, .. }
                | Change::Log { key, .. }
                | Change::Reschedule(RescheduleRecord { key, .. }) => (&key.dag_id, &key.run_id),
                Change::Run { dag_id, run_id, .. } => (dag_id, run_id),
            };
            if known_run == Some((dag_id, run_id)) {
                // Checked already; batches are almost always about one run.
            } else if self.runs.contains_key(&(dag_id.clone(), run_id.clone())) {
                known_run = Some((dag_id, run_id));
            } else {
                return Err(StoreError::NoSuchRun {
                    dag_id: dag_id.clone(),
                    run_id: run_id.clone(),
                });
            }
            if let Change::Task(ti) = change {
                let from = pending
                    .get(&ti.key)
                    .copied()
                    .or_else(|| self.state_of(&ti.key));
                if let Some(from) = from
                    && from != ti.state
                    && !from.can_reach(ti.state)
                {
                    return Err(StoreError::IllegalTransition {
                        key: ti.key.clone(),
                        from,
                        to: ti.state,
                    });
                }
                pending.insert(&ti.key, ti.state);
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

impl RunStore for MemoryStore {
    fn create_run(&self, run: &DagRunRecord) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let id = (run.dag_id.clone(), run.run_id.clone());
        if inner.runs.contains_key(&id) {
            return Err(StoreError::RunExists {
                dag_id: run.dag_id.clone(),
                run_id: run.run_id.clone(),
            });
        }
        inner.runs.insert(id.clone(), run.clone());
        inner.tasks.insert(id, Vec::new());
        Ok(())
    }

    fn apply(&self, changes: &[Change]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.check(changes)?;
        for change in changes {
            match change {
                Change::Task(ti) => inner.upsert_task(ti),
                Change::RemoveInstance(key) => inner.remove_task(key),
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
            }
        }
        Ok(())
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
        Ok(())
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

//! An in-memory store: fast, ephemeral, and strict about the task lifecycle.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use super::{Change, DagRunRecord, RunStore, StoreError, TaskInstanceRecord, XComStore};
use crate::ids::{DagId, RunId, TaskInstanceKey};
use crate::state::TaskState;
use crate::xcom::XComBlob;

/// Keeps runs, task instances and XCom in memory; gone when the process ends.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    runs: Vec<DagRunRecord>,
    run_index: HashMap<(DagId, RunId), usize>,
    tasks: HashMap<(DagId, RunId), Vec<TaskInstanceRecord>>,
    task_index: HashMap<TaskInstanceKey, usize>,
    xcoms: HashMap<(TaskInstanceKey, String), XComBlob>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied batch: batches are
        // validated before any change is made.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    fn check(&self, changes: &[Change]) -> Result<(), StoreError> {
        let mut pending: HashMap<&TaskInstanceKey, TaskState> = HashMap::new();
        for change in changes {
            let (dag_id, run_id) = match change {
                Change::Task(ti) => (&ti.key.dag_id, &ti.key.run_id),
                Change::XCom { key, .. } => (&key.dag_id, &key.run_id),
                Change::Run { dag_id, run_id, .. } => (dag_id, run_id),
            };
            if !self.run_index.contains_key(&(dag_id.clone(), run_id.clone())) {
                return Err(StoreError::NoSuchRun {
                    dag_id: dag_id.clone(),
                    run_id: run_id.clone(),
                });
            }
            if let Change::Task(ti) = change {
                let from = pending.get(&ti.key).copied().or_else(|| {
                    let i = *self.task_index.get(&ti.key)?;
                    Some(self.tasks[&(ti.key.dag_id.clone(), ti.key.run_id.clone())][i].state)
                });
                if let Some(from) = from
                    && from != ti.state
                    && !from.can_become(ti.state)
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
}

impl RunStore for MemoryStore {
    fn create_run(&self, run: &DagRunRecord) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let id = (run.dag_id.clone(), run.run_id.clone());
        if inner.run_index.contains_key(&id) {
            return Err(StoreError::RunExists {
                dag_id: run.dag_id.clone(),
                run_id: run.run_id.clone(),
            });
        }
        let index = inner.runs.len();
        inner.runs.push(run.clone());
        inner.run_index.insert(id.clone(), index);
        inner.tasks.insert(id, Vec::new());
        Ok(())
    }

    fn apply(&self, changes: &[Change]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.check(changes)?;
        for change in changes {
            match change {
                Change::Task(ti) => {
                    let run = (ti.key.dag_id.clone(), ti.key.run_id.clone());
                    match inner.task_index.get(&ti.key).copied() {
                        Some(i) => inner.tasks.entry(run).or_default()[i] = ti.clone(),
                        None => {
                            let list = inner.tasks.entry(run).or_default();
                            list.push(ti.clone());
                            let i = list.len() - 1;
                            inner.task_index.insert(ti.key.clone(), i);
                        }
                    }
                }
                Change::XCom { key, name, value } => {
                    inner.xcoms.insert((key.clone(), name.clone()), value.clone());
                }
                Change::Run {
                    dag_id,
                    run_id,
                    state,
                    start,
                    end,
                } => {
                    if let Some(&i) = inner.run_index.get(&(dag_id.clone(), run_id.clone())) {
                        let run = &mut inner.runs[i];
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
        let inner = self.lock();
        Ok(inner
            .run_index
            .get(&(dag_id.clone(), run_id.clone()))
            .map(|&i| inner.runs[i].clone()))
    }

    fn runs(&self, dag_id: Option<&DagId>) -> Result<Vec<DagRunRecord>, StoreError> {
        let inner = self.lock();
        let mut runs: Vec<_> = inner
            .runs
            .iter()
            .filter(|r| dag_id.is_none_or(|d| &r.dag_id == d))
            .cloned()
            .collect();
        runs.sort_by(|a, b| b.logical_date.cmp(&a.logical_date));
        Ok(runs)
    }

    fn task_instances(&self, dag_id: &DagId, run_id: &RunId) -> Result<Vec<TaskInstanceRecord>, StoreError> {
        Ok(self
            .lock()
            .tasks
            .get(&(dag_id.clone(), run_id.clone()))
            .cloned()
            .unwrap_or_default())
    }
}

impl XComStore for MemoryStore {
    fn get_xcom(&self, key: &TaskInstanceKey, name: &str) -> Result<Option<XComBlob>, StoreError> {
        Ok(self.lock().xcoms.get(&(key.clone(), name.to_string())).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::RunState;
    use crate::store::RunType;
    use crate::ids::MapIndex;

    fn run() -> DagRunRecord {
        DagRunRecord {
            dag_id: "d".into(),
            run_id: "r".into(),
            run_type: RunType::Manual,
            logical_date: chrono::Utc::now(),
            state: RunState::Queued,
            start: None,
            end: None,
        }
    }

    fn ti(state: TaskState) -> Change {
        Change::Task(TaskInstanceRecord {
            key: TaskInstanceKey {
                dag_id: "d".into(),
                run_id: "r".into(),
                task_id: "t".into(),
                map_index: MapIndex::UNMAPPED,
            },
            state,
            try_number: 1,
            start: None,
            end: None,
            error: None,
        })
    }

    #[test]
    fn duplicate_runs_and_unknown_runs_are_refused() {
        let store = MemoryStore::new();
        store.create_run(&run()).unwrap();
        assert!(matches!(store.create_run(&run()), Err(StoreError::RunExists { .. })));
        let mut other = run();
        other.run_id = "nope".into();
        let change = Change::Run {
            dag_id: other.dag_id,
            run_id: other.run_id,
            state: RunState::Running,
            start: None,
            end: None,
        };
        assert!(matches!(store.apply(&[change]), Err(StoreError::NoSuchRun { .. })));
    }

    #[test]
    fn an_illegal_transition_rejects_the_whole_batch() {
        let store = MemoryStore::new();
        store.create_run(&run()).unwrap();
        store.apply(&[ti(TaskState::Queued), ti(TaskState::Running)]).unwrap();
        let err = store.apply(&[ti(TaskState::Success), ti(TaskState::Running)]).unwrap_err();
        assert!(matches!(err, StoreError::IllegalTransition { from: TaskState::Success, to: TaskState::Running, .. }));
        let states: Vec<_> = store.task_instances(&"d".into(), &"r".into()).unwrap().iter().map(|t| t.state).collect();
        assert_eq!(states, [TaskState::Running]);
    }
}

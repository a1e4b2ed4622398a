//! Live updates for `GET /api/v2/events`: the state changes of runs and task instances,
//! whichever process makes them.
//!
//! The scheduler and the runs it executes are other processes, so the changes are read
//! from the store: one poller, shared by every subscriber and running only while there is
//! one, reads every half second the runs that are not finished, and those that ended in the
//! last few seconds (a run may start and end between two reads), with their task
//! instances, and broadcasts what differs from its last read. A subscriber that falls
//! behind by more than the channel holds is told so, and should read the lists again.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::broadcast;

use super::model::{DagRunJson, TaskInstanceJson};
use crate::ids::{DagId, RunId, TaskInstanceKey};
use crate::state::{RunState, TaskState};
use crate::store::{Page, RunOrder, RunOrderBy, RunQuery, Store, StoreError};

/// How often the poller reads the store.
const POLL: Duration = Duration::from_millis(500);
/// How long after its end a run is still read, so that a run that started and ended
/// between two reads (or whose end was written by a process whose clock is a little
/// behind) is seen.
const RECENT: chrono::Duration = chrono::Duration::seconds(5);
/// The most runs that ended recently that one read looks at.
const RECENT_RUNS: usize = 200;
/// How many updates a subscriber may fall behind by.
const BACKLOG: usize = 4096;

/// One change: a run's or a task instance's new state.
#[derive(Clone)]
pub(super) enum Update {
    /// A run appeared or changed state.
    DagRun(Arc<DagRunJson>, DagId),
    /// A task instance appeared, or changed state or try.
    TaskInstance(Arc<TaskInstanceJson>, DagId),
}

impl Update {
    /// The DAG it belongs to.
    pub(super) fn dag_id(&self) -> &DagId {
        match self {
            Update::DagRun(_, dag) | Update::TaskInstance(_, dag) => dag,
        }
    }
}

/// The shared poller's channel, while it runs.
#[derive(Clone, Default)]
pub(super) struct Feed(Arc<Mutex<Option<broadcast::Sender<Update>>>>);

impl Feed {
    /// A receiver of the updates from now on; starts the poller if none runs.
    pub(super) fn subscribe(&self, store: &Arc<dyn Store>) -> broadcast::Receiver<Update> {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = slot.as_ref() {
            return sender.subscribe();
        }
        let (sender, receiver) = broadcast::channel(BACKLOG);
        *slot = Some(sender.clone());
        tokio::spawn(poll(self.clone(), sender, store.clone()));
        receiver
    }

    /// Ends the poller's turn if nobody listens: clears the slot (under the lock, so a
    /// subscriber arriving now starts a new poller instead of joining a stopping one).
    fn stop_if_unheard(&self, sender: &broadcast::Sender<Update>) -> bool {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if sender.receiver_count() == 0 {
            *slot = None;
            return true;
        }
        false
    }
}

async fn poll(feed: Feed, sender: broadcast::Sender<Update>, store: Arc<dyn Store>) {
    let mut watcher = Watcher::default();
    let mut first = true;
    let mut every = tokio::time::interval(POLL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if feed.stop_if_unheard(&sender) {
            return;
        }
        let store = store.clone();
        let read = tokio::task::spawn_blocking(move || {
            let updates = watcher.read(store.as_ref());
            (watcher, updates)
        })
        .await;
        let updates;
        (watcher, updates) = match read {
            Ok(read) => read,
            Err(e) => {
                // Empty the slot whoever listens: a new subscriber starts a new poller, and
                // the streams of this one end (their clients reconnect) when its sender
                // is dropped here, instead of waiting on a poller that is gone.
                tracing::warn!("the events poller stopped: {e}");
                *feed.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
                return;
            }
        };
        match updates {
            // The first read is the baseline: what subscribers read from the lists.
            Ok(_) if first => first = false,
            Ok(updates) => {
                for update in updates {
                    let _ = sender.send(update);
                }
            }
            Err(e) => tracing::warn!("the events poller cannot read the store: {e}"),
        }
    }
}

/// What the poller saw at its last read.
#[derive(Default)]
struct Watcher {
    runs: HashMap<(DagId, RunId), RunState>,
    instances: HashMap<TaskInstanceKey, (TaskState, u32)>,
}

impl Watcher {
    /// Reads the runs worth watching and returns what changed since the last read.
    fn read(&mut self, store: &dyn Store) -> Result<Vec<Update>, StoreError> {
        let mut runs = store.unfinished_runs()?;
        let since = Utc::now() - RECENT;
        let recent = store.runs_page(
            &RunQuery {
                states: vec![RunState::Success, RunState::Failed],
                order: RunOrder {
                    by: RunOrderBy::EndDate,
                    descending: true,
                },
                ..RunQuery::default()
            },
            Page::first(RECENT_RUNS),
        )?;
        runs.extend(
            recent
                .items
                .into_iter()
                .take_while(|run| run.end.is_some_and(|end| end >= since)),
        );
        let mut updates = Vec::new();
        let mut runs_seen = HashSet::new();
        let mut instances_seen = HashSet::new();
        for run in runs {
            let id = (run.dag_id.clone(), run.run_id.clone());
            if !runs_seen.insert(id.clone()) {
                continue;
            }
            for ti in store.task_instances(&run.dag_id, &run.run_id)? {
                let now = (ti.state, ti.try_number);
                instances_seen.insert(ti.key.clone());
                if self.instances.insert(ti.key.clone(), now) != Some(now) {
                    updates.push(Update::TaskInstance(
                        Arc::new(TaskInstanceJson::from(ti)),
                        run.dag_id.clone(),
                    ));
                }
            }
            // After its instances: a run's end comes after theirs.
            if self.runs.insert(id, run.state) != Some(run.state) {
                let dag = run.dag_id.clone();
                updates.push(Update::DagRun(Arc::new(DagRunJson::from(run)), dag));
            }
        }
        // Runs no longer read (ended a while ago, or deleted) are forgotten.
        self.runs.retain(|id, _| runs_seen.contains(id));
        self.instances.retain(|key, _| instances_seen.contains(key));
        Ok(updates)
    }
}

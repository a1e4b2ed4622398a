//! The in-process pool: each try is a tokio task, as many at once as the capacity allows.

use rustc_hash::FxHashMap as HashMap;
use tokio::task::JoinSet;

use super::{BoxFuture, Finished, TaskExecutor, Work};
use crate::error::TaskError;

/// Runs tries as tokio tasks (sync task bodies go to tokio's blocking pool).
pub(crate) struct LocalPool {
    capacity: usize,
    join: JoinSet<Finished>,
    /// The scheduler's handle of each running try, to report one whose future was lost.
    slots: HashMap<tokio::task::Id, usize>,
}

impl LocalPool {
    /// A pool running up to `capacity` tries at once (at least 1).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            join: JoinSet::new(),
            slots: HashMap::default(),
        }
    }

    fn report(
        &mut self,
        joined: Result<(tokio::task::Id, Finished), tokio::task::JoinError>,
    ) -> Option<Finished> {
        match joined {
            Ok((id, finished)) => {
                self.slots.remove(&id);
                Some(finished)
            }
            // Task futures catch their own panics, so only an abort or a runtime
            // shutdown lands here: the try failed, and the scheduler hears of it.
            Err(e) => {
                let slot = self.slots.remove(&e.id())?;
                tracing::error!("a task future was lost: {e}");
                Some(Finished {
                    slot,
                    result: Err(TaskError::Failed(format!("the try's future was lost: {e}"))),
                    logs: Vec::new(),
                    elapsed: std::time::Duration::ZERO,
                    end: chrono::Utc::now(),
                })
            }
        }
    }
}

impl TaskExecutor for LocalPool {
    fn capacity(&self) -> usize {
        self.capacity
    }

    fn running(&self) -> usize {
        self.join.len()
    }

    fn offer(&mut self, work: Work) {
        let slot = work.slot;
        let handle = self.join.spawn(work.run());
        self.slots.insert(handle.id(), slot);
    }

    fn next_finished(&mut self) -> BoxFuture<'_, Option<Finished>> {
        Box::pin(async move {
            loop {
                let joined = self.join.join_next_with_id().await?;
                if let Some(finished) = self.report(joined) {
                    return Some(finished);
                }
            }
        })
    }

    fn try_next_finished(&mut self) -> Option<Finished> {
        loop {
            let joined = self.join.try_join_next_with_id()?;
            if let Some(finished) = self.report(joined) {
                return Some(finished);
            }
        }
    }

    fn abandon(&mut self) {
        self.join.abort_all();
        self.join.detach_all();
        self.slots.clear();
    }
}

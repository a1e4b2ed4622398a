//! Bookkeeping of sensors in `reschedule` mode for the tracker: the earlier pokes of each
//! waiting instance's try, restored from what the store recorded on resume and recorded
//! with each "not yet".

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap as HashMap;

use crate::sensor::PokeHistory;
use crate::store::{Change, RescheduleRecord, TaskInstanceRecord};

/// The pokes of the current try of every instance that has been rescheduled, by index.
#[derive(Default)]
pub(super) struct Reschedules {
    pokes: HashMap<usize, PokeHistory>,
}

impl Reschedules {
    /// Takes the recorded pokes (`stored`, oldest first) of the instance at `index`, which
    /// a stored run left `up_for_reschedule`; returns when its next poke is due, if any
    /// poke is recorded.
    pub(super) fn restore(
        &mut self,
        index: usize,
        stored: &[RescheduleRecord],
    ) -> Option<DateTime<Utc>> {
        let last = stored.last()?;
        let history = PokeHistory {
            first: stored.first().map(|r| r.start),
            not_yet: u32::try_from(stored.len()).unwrap_or(u32::MAX),
        };
        self.pokes.insert(index, history);
        Some(last.reschedule_at)
    }

    /// What the next poke of `index` knows of the earlier ones.
    pub(super) fn history(&self, index: usize) -> PokeHistory {
        self.pokes.get(&index).copied().unwrap_or_default()
    }

    /// Records that the poke `record` describes (its try, started at `record.start`)
    /// answered "not yet" and asks to be poked again at `at`: the change to store.
    pub(super) fn not_yet(
        &mut self,
        index: usize,
        record: &TaskInstanceRecord,
        end: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Change {
        let start = record.start.unwrap_or(end);
        let history = self.history(index).and_poke(start);
        self.pokes.insert(index, history);
        Change::Reschedule(RescheduleRecord {
            key: record.key.clone(),
            try_number: record.try_number,
            start,
            end,
            reschedule_at: at,
        })
    }

    /// Forgets the pokes of `index`: its try ended, so the next try starts afresh.
    pub(super) fn forget(&mut self, index: usize) {
        self.pokes.remove(&index);
    }
}

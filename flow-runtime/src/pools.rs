//! Pools: named sets of slots that bound how many task instances run at once, across
//! every run this process executes, plus each DAG's `max_active_tasks`.
//!
//! Pools are defined in the store (`pools set NAME SLOTS`); `default_pool` always exists
//! (128 slots, as in Airflow) unless redefined. A task takes `pool_slots` slots of its
//! pool while a try runs. Claims are all-or-nothing under one lock, so no pool is ever
//! oversubscribed, and releases wake every run waiting for slots.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::ids::DagId;

/// The pool every task uses unless it names another.
pub const DEFAULT_POOL: &str = "default_pool";
/// Slots of `default_pool` unless redefined (Airflow's default).
pub const DEFAULT_POOL_SLOTS: u32 = 128;

/// What a task instance asks for before it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The pool.
    pub pool: String,
    /// Slots of it.
    pub slots: u32,
    /// The DAG, for `max_active_tasks`.
    pub dag: DagId,
    /// The DAG's `max_active_tasks`.
    pub dag_limit: u32,
}

/// The answer to a claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grant {
    /// The slots are taken; release them when the try ends.
    Granted,
    /// Not now: the pool is full; wait for a release.
    PoolFull,
    /// Not now: the DAG runs `max_active_tasks` already; wait for a release.
    DagFull,
    /// The pool does not exist.
    UnknownPool,
    /// The task needs more slots than the pool has: it can never run.
    TooBig {
        /// The pool's size.
        size: u32,
    },
}

#[derive(Default)]
struct State {
    sizes: HashMap<String, u32>,
    used: HashMap<String, u32>,
    dag_running: HashMap<DagId, u32>,
}

/// Slot accounting shared by every run of an executor.
pub struct PoolRegistry {
    state: Mutex<State>,
    released: Notify,
}

impl Default for PoolRegistry {
    fn default() -> Self {
        let mut state = State::default();
        state
            .sizes
            .insert(DEFAULT_POOL.to_string(), DEFAULT_POOL_SLOTS);
        Self {
            state: Mutex::new(state),
            released: Notify::new(),
        }
    }
}

impl PoolRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Defines or resizes pools (as recorded in the store); `default_pool` stays unless
    /// redefined. Slots in use are kept: a shrunk pool admits nobody until enough end.
    pub fn define(&self, pools: impl IntoIterator<Item = (String, u32)>) {
        let mut state = self.lock();
        for (name, slots) in pools {
            state.sizes.insert(name, slots);
        }
        drop(state);
        self.released.notify_waiters();
    }

    /// Takes the slots of `claim` if they are all free now.
    pub fn try_claim(&self, claim: &Claim) -> Grant {
        let mut state = self.lock();
        let Some(&size) = state.sizes.get(&claim.pool) else {
            return Grant::UnknownPool;
        };
        if claim.slots > size {
            return Grant::TooBig { size };
        }
        let used = state.used.get(&claim.pool).copied().unwrap_or(0);
        let dag_running = state.dag_running.get(&claim.dag).copied().unwrap_or(0);
        if dag_running >= claim.dag_limit {
            return Grant::DagFull;
        }
        if used + claim.slots > size {
            return Grant::PoolFull;
        }
        *state.used.entry(claim.pool.clone()).or_default() += claim.slots;
        *state.dag_running.entry(claim.dag.clone()).or_default() += 1;
        Grant::Granted
    }

    /// Gives back what a granted claim took, and wakes runs waiting for slots.
    pub fn release(&self, claim: &Claim) {
        let mut state = self.lock();
        if let Some(used) = state.used.get_mut(&claim.pool) {
            *used = used.saturating_sub(claim.slots);
        }
        if let Some(running) = state.dag_running.get_mut(&claim.dag) {
            *running = running.saturating_sub(1);
        }
        drop(state);
        self.released.notify_waiters();
    }

    /// Resolves after the next release (or pool change).
    pub async fn released(&self) {
        self.released.notified().await;
    }

    /// Slots in use per pool, for display and tests.
    pub fn usage(&self) -> Vec<(String, u32, u32)> {
        let state = self.lock();
        let mut rows: Vec<_> = state
            .sizes
            .iter()
            .map(|(name, &size)| {
                (
                    name.clone(),
                    state.used.get(name).copied().unwrap_or(0),
                    size,
                )
            })
            .collect();
        rows.sort();
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(pool: &str, slots: u32, dag: &str, limit: u32) -> Claim {
        Claim {
            pool: pool.into(),
            slots,
            dag: dag.into(),
            dag_limit: limit,
        }
    }

    #[test]
    fn claims_respect_pool_sizes_and_dag_limits() {
        let pools = PoolRegistry::default();
        pools.define([("gpu".to_string(), 3)]);
        let two = claim("gpu", 2, "a", 16);
        assert_eq!(pools.try_claim(&two), Grant::Granted);
        assert_eq!(pools.try_claim(&two), Grant::PoolFull, "2 + 2 > 3");
        assert_eq!(pools.try_claim(&claim("gpu", 1, "a", 16)), Grant::Granted);
        pools.release(&two);
        assert_eq!(pools.try_claim(&two), Grant::Granted);
        assert_eq!(
            pools.try_claim(&claim("gpu", 4, "a", 16)),
            Grant::TooBig { size: 3 }
        );
        assert_eq!(
            pools.try_claim(&claim("tpu", 1, "a", 16)),
            Grant::UnknownPool
        );
        let limited = claim(DEFAULT_POOL, 1, "b", 2);
        assert_eq!(pools.try_claim(&limited), Grant::Granted);
        assert_eq!(pools.try_claim(&limited), Grant::Granted);
        assert_eq!(
            pools.try_claim(&limited),
            Grant::DagFull,
            "max_active_tasks = 2"
        );
        assert_eq!(
            pools.usage()[0],
            (DEFAULT_POOL.to_string(), 2, DEFAULT_POOL_SLOTS)
        );
    }
}

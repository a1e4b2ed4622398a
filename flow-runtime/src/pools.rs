//! Pools: named sets of slots that bound how many task instances run at once, across
//! every run of every process sharing a store, plus each DAG's `max_active_tasks`.
//!
//! Pools are defined in the store (`pools set NAME SLOTS`); `default_pool` always exists
//! (128 slots, as in Airflow) unless redefined. A task takes `pool_slots` slots of its
//! pool while a try runs. The store counts the slots held and grants a [`Claim`]
//! all-or-nothing (see `SlotStore` in [`crate::store`]), so no pool is ever
//! oversubscribed, whichever process asks.

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

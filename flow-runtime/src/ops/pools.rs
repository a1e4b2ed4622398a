//! Pausing DAGs and managing pools: the settings of scheduling kept in the store.

use crate::graph::Dag;
use crate::pools::{DEFAULT_POOL, DEFAULT_POOL_SLOTS};
use crate::store::{DagStore, PoolRecord, PoolStore, StoreError};

/// Why a pool could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// A name with characters pools may not have.
    #[error("invalid pool name `{name}`: use letters, digits, `_`, `-` and `.` only")]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// No pool of this name.
    #[error("no pool `{name}`; the pools: {}", if .known.is_empty() { "none".to_string() } else { .known.join(", ") })]
    Unknown {
        /// The name given.
        name: String,
        /// The pools there are.
        known: Vec<String>,
    },
    /// The store could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Stops (`paused`) or resumes scheduling `dag`'s runs.
pub fn set_paused(store: &dyn DagStore, dag: &Dag, paused: bool) -> Result<(), StoreError> {
    store.record_dag(dag.id(), &crate::plan::fingerprint(dag))?;
    store.set_paused(dag.id(), paused)
}

/// Creates pool `name` or changes it.
pub fn set_pool(store: &dyn PoolStore, pool: PoolRecord) -> Result<(), PoolError> {
    let valid = !pool.name.is_empty()
        && pool
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !valid {
        return Err(PoolError::InvalidName { name: pool.name });
    }
    Ok(store.set_pool(&pool)?)
}

/// The pools, with the default pool first when it is not stored.
pub fn pools(store: &dyn PoolStore) -> Result<Vec<PoolRecord>, StoreError> {
    let mut pools = store.pools()?;
    if !pools.iter().any(|p| p.name == DEFAULT_POOL) {
        pools.insert(
            0,
            PoolRecord {
                name: DEFAULT_POOL.into(),
                slots: DEFAULT_POOL_SLOTS,
                description: "default (not stored)".into(),
            },
        );
    }
    Ok(pools)
}

/// Deletes pool `name`.
pub fn delete_pool(store: &dyn PoolStore, name: &str) -> Result<(), PoolError> {
    if store.delete_pool(name)? {
        return Ok(());
    }
    Err(PoolError::Unknown {
        name: name.to_string(),
        known: store.pools()?.into_iter().map(|p| p.name).collect(),
    })
}

//! Who executes a run: the process that holds its lease in the store. A process names
//! itself by host, pid and a nonce; it renews its leases (the run's and its pool slots')
//! while it works, and a lease it stops renewing runs out, so a run and its slots are
//! never held forever by a process that died. A lease held by a process of this host
//! that no longer exists is taken over at once instead of waiting for it to run out.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::error::RunError;
use crate::ids::{DagId, RunId};
use crate::store::{Change, LeaseGrant, Store, StoreError};

/// How long a run's lease and its slot holds last unless renewed.
pub(crate) const LEASE: Duration = Duration::from_secs(30);
/// How often a working process renews them.
pub(crate) const RENEW_EVERY: Duration = Duration::from_secs(10);

/// A new owner name for this process: `host:pid:nonce`, unique for each executor (two
/// executors of one process are two owners, as two processes would be).
pub(crate) fn process_owner() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let host = hostname().unwrap_or_else(|| "localhost".to_string());
    let count = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nonce = Utc::now().timestamp_micros();
    format!("{host}:{}:{nonce:x}-{count}", std::process::id())
}

#[cfg(unix)]
fn hostname() -> Option<String> {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
}

#[cfg(not(unix))]
fn hostname() -> Option<String> {
    None
}

/// Whether `owner` names a process of this host that has ended.
fn ended_here(owner: &str) -> bool {
    let mut parts = owner.split(':');
    let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
        return false;
    };
    if hostname().as_deref() != Some(host) {
        return false;
    }
    let Ok(pid) = pid.parse::<i32>() else {
        return false;
    };
    if pid == std::process::id() as i32 {
        return false;
    }
    is_gone(pid)
}

#[cfg(unix)]
fn is_gone(pid: i32) -> bool {
    use nix::errno::Errno;
    matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(Errno::ESRCH)
    )
}

#[cfg(not(unix))]
fn is_gone(_pid: i32) -> bool {
    false
}

/// A run's lease, held while its loop runs; given back when dropped.
pub(crate) struct RunLease {
    store: Arc<dyn Store>,
    dag_id: DagId,
    run_id: RunId,
    owner: Arc<str>,
    /// Whether a committed batch gave the lease up already (see [`RunLease::release_change`]).
    released: bool,
}

impl RunLease {
    /// Takes the run's lease for `owner`, or says who holds it.
    pub(crate) fn acquire(
        store: Arc<dyn Store>,
        dag_id: &DagId,
        run_id: &RunId,
        owner: Arc<str>,
    ) -> Result<Self, RunError> {
        let take = |store: &dyn Store| {
            store.acquire_run_lease(dag_id, run_id, &owner, LEASE, Utc::now(), None)
        };
        let mut grant = take(store.as_ref())?;
        if let LeaseGrant::HeldBy { owner: holder, .. } = &grant
            && ended_here(holder)
        {
            tracing::info!(run = %run_id, "taking over the run from {holder}, which has ended");
            store.release_run_lease(dag_id, run_id, holder)?;
            grant = take(store.as_ref())?;
        }
        match grant {
            LeaseGrant::Granted => Ok(Self::held(store, dag_id, run_id, owner)),
            LeaseGrant::HeldBy { owner, until } => Err(RunError::RunOwned {
                dag_id: dag_id.clone(),
                run_id: run_id.clone(),
                owner,
                until,
            }),
            LeaseGrant::TooManyActive { active, limit } => Err(RunError::Runtime(format!(
                "DAG `{dag_id}` has {active} active runs, its max_active_runs is {limit}"
            ))),
        }
    }

    /// The lease of a run that has nothing recorded yet, taken by the change returned with
    /// it ([`Change::TakeRunLease`]), which goes in the run's first batch: if another
    /// process holds it, that batch is refused ([`owned`] says by whom) and nothing of
    /// the run is written.
    pub(crate) fn in_first_batch(
        store: Arc<dyn Store>,
        dag_id: &DagId,
        run_id: &RunId,
        owner: Arc<str>,
    ) -> (Self, Change) {
        let now = Utc::now();
        let change = Change::TakeRunLease {
            dag_id: dag_id.clone(),
            run_id: run_id.clone(),
            owner: owner.to_string(),
            now,
            until: crate::store::lease_end(now, LEASE),
        };
        (Self::held(store, dag_id, run_id, owner), change)
    }

    /// The lease `owner` holds (or is about to, with its first batch).
    fn held(store: Arc<dyn Store>, dag_id: &DagId, run_id: &RunId, owner: Arc<str>) -> Self {
        Self {
            store,
            dag_id: dag_id.clone(),
            run_id: run_id.clone(),
            owner,
            released: false,
        }
    }

    /// Extends the lease; `false` when it is no longer this process's.
    pub(crate) fn renew(&self) -> Result<bool, RunError> {
        Ok(self.store.renew_run_lease(
            &self.dag_id,
            &self.run_id,
            &self.owner,
            LEASE,
            Utc::now(),
        )?)
    }
}

/// A store error as the run loop reports it: a batch refused because another process
/// holds the run's lease means the run is that process's; one refused because the run it
/// creates exists means it was created before.
pub(crate) fn owned(error: StoreError) -> RunError {
    match error {
        StoreError::RunExists { dag_id, run_id } => RunError::RunExists { dag_id, run_id },
        StoreError::RunLeaseHeld {
            dag_id,
            run_id,
            owner,
            until,
        } => RunError::RunOwned {
            dag_id,
            run_id,
            owner,
            until,
        },
        other => other.into(),
    }
}

impl RunLease {
    /// The change that gives the lease up, to commit with the run's last batch.
    pub(crate) fn release_change(&self) -> Change {
        Change::ReleaseRunLease {
            dag_id: self.dag_id.clone(),
            run_id: self.run_id.clone(),
            owner: self.owner.to_string(),
        }
    }

    /// The batch holding [`RunLease::release_change`] is committed: nothing is left to
    /// release when the lease is dropped.
    pub(crate) fn released(&mut self) {
        self.released = true;
    }
}

impl Drop for RunLease {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        if let Err(e) = self
            .store
            .release_run_lease(&self.dag_id, &self.run_id, &self.owner)
        {
            tracing::warn!(run = %self.run_id, "could not release the run's lease: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_names_this_host_and_process() {
        let owner = process_owner();
        let parts: Vec<&str> = owner.split(':').collect();
        assert_eq!(parts.len(), 3, "{owner}");
        assert_eq!(parts[1], std::process::id().to_string());
        assert!(!ended_here(&owner), "this process is alive");
    }

    #[cfg(unix)]
    #[test]
    fn an_owner_whose_process_ended_is_recognised() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let host = hostname().unwrap();
        assert!(ended_here(&format!("{host}:{pid}:1")));
        assert!(!ended_here(&format!("elsewhere:{pid}:1")), "another host");
        assert!(!ended_here("not an owner"));
    }
}

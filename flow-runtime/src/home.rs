//! `FLOW_HOME`: the directory that holds the database (`flow.db`) and the run locks.
//!
//! It is `$FLOW_HOME` when set, else `$HOME/.flow` (see [`crate::settings`]). A run being executed holds an
//! exclusive lock on a file under `locks/`, so a second process cannot execute (resume,
//! clear) the same run at the same time; the operating system releases the lock when the
//! holder dies, even by SIGKILL, so a crash never leaves a run stuck.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use crate::ids::{DagId, RunId, StableHash};
use crate::store::{SqliteStore, StoreError};

/// The file name of the database inside `FLOW_HOME`.
pub const DATABASE_FILE: &str = "flow.db";

/// Errors about `FLOW_HOME` itself.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    /// Neither `FLOW_HOME` nor `HOME` is set.
    #[error(
        "set FLOW_HOME to the directory where flow keeps its database (HOME is not set either)"
    )]
    Unset,
    /// Another process holds the run's lock.
    #[error(
        "run `{run_id}` of DAG `{dag_id}` is being executed by another process ({holder}); \
         wait for it to finish or stop it, then retry"
    )]
    RunBusy {
        /// The DAG.
        dag_id: DagId,
        /// The run.
        run_id: RunId,
        /// Who holds it, as the holder wrote it.
        holder: String,
    },
    /// The lock file cannot be created.
    #[error("cannot create the run lock {path}: {reason}; check the permissions of FLOW_HOME")]
    Lock {
        /// The lock file.
        path: String,
        /// The system's reason.
        reason: String,
    },
    /// The database refused to open.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The flow home directory.
#[derive(Clone, Debug)]
pub struct FlowHome {
    dir: PathBuf,
}

/// An exclusive claim on executing one run; released when dropped or when the process
/// ends.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl FlowHome {
    /// A home at `dir`.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The database file.
    pub fn database(&self) -> PathBuf {
        self.dir.join(DATABASE_FILE)
    }

    /// Opens (creating if needed) the database.
    pub fn open_store(&self) -> Result<SqliteStore, HomeError> {
        Ok(SqliteStore::open(&self.database())?)
    }

    /// Claims the right to execute a run, or says who holds it.
    pub fn lock_run(&self, dag_id: &DagId, run_id: &RunId) -> Result<RunLock, HomeError> {
        let dir = self.dir.join("locks");
        let path = dir.join(format!("{}.lock", lock_name(dag_id, run_id)));
        let lock_error = |e: std::io::Error| HomeError::Lock {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        std::fs::create_dir_all(&dir).map_err(lock_error)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(lock_error)?;
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0).map_err(lock_error)?;
                let holder = format!("pid {}, run {dag_id}/{run_id}", std::process::id());
                file.write_all(holder.as_bytes()).map_err(lock_error)?;
                Ok(RunLock { _file: file })
            }
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                Err(HomeError::RunBusy {
                    dag_id: dag_id.clone(),
                    run_id: run_id.clone(),
                    holder: if holder.is_empty() {
                        "unknown process".into()
                    } else {
                        holder
                    },
                })
            }
            Err(TryLockError::Error(e)) => Err(lock_error(e)),
        }
    }
}

/// A file name for a run: readable, with a hash so that distinct ids never collide.
fn lock_name(dag_id: &DagId, run_id: &RunId) -> String {
    let hash = StableHash::default()
        .text(dag_id.as_str())
        .text(run_id.as_str())
        .finish();
    let readable: String = format!("{dag_id}__{run_id}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    format!("{readable}-{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_can_be_locked_once_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let home = FlowHome::at(dir.path());
        let (dag, run) = (
            DagId::new("d"),
            RunId::new("manual__2025-01-01T00:00:00+00:00"),
        );
        let held = home.lock_run(&dag, &run).unwrap();
        let err = home.lock_run(&dag, &run).unwrap_err().to_string();
        assert!(
            err.contains("being executed by another process (pid "),
            "{err}"
        );
        assert!(
            home.lock_run(&dag, &RunId::new("other")).is_ok(),
            "other runs are free"
        );
        drop(held);
        assert!(home.lock_run(&dag, &run).is_ok(), "released on drop");
    }

    #[test]
    fn lock_names_are_safe_and_distinct() {
        let a = lock_name(&"d".into(), &"a/b".into());
        let b = lock_name(&"d".into(), &"a_b".into());
        assert!(!a.contains('/'));
        assert_ne!(a, b);
    }
}

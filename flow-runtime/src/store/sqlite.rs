//! The embedded default store: one SQLite file (`$FLOW_HOME/flow.db`) in WAL mode.
//!
//! rusqlite with cached statements, because the write path decides the per-task
//! overhead: the executor hands over whole batches and each batch is one transaction. The
//! SQL (upserts with `ON CONFLICT`, integer timestamps in microseconds) is what PostgreSQL
//! also accepts, apart from `BLOB` in the schema, so a PostgreSQL backend reuses the
//! queries. The schema is versioned in `flow_meta`; a file that is not a flow database, or
//! that a newer build wrote, is refused before anything is written to it.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{
    Connection, ErrorCode, OpenFlags, OptionalExtension, Row, TransactionBehavior, params,
};

use super::{
    Change, DagRecord, DagRunRecord, DagStore, LogLine, LogStore, RescheduleRecord,
    RescheduleStore, RunStore, RunType, StoreError, TaskInstanceRecord, TryRecord, XComStore,
};
use crate::ids::{DagId, MapIndex, RunId, TaskId, TaskInstanceKey};
use crate::state::{RunState, TaskState};
use crate::xcom::{ObjectRef, StoredXCom, XComBlob};

/// The schema version this build reads and writes.
pub const SCHEMA_VERSION: i64 = 4;

/// Each migration takes the schema from version `i` to `i + 1`.
const MIGRATIONS: [&str; 4] = [
    "CREATE TABLE flow_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     INSERT INTO flow_meta (key, value) VALUES ('application', 'flow'), ('schema_version', '1');
     CREATE TABLE dags (
         dag_id TEXT PRIMARY KEY,
         is_paused BOOLEAN NOT NULL DEFAULT FALSE,
         fingerprint TEXT NOT NULL,
         updated_us BIGINT NOT NULL
     );
     CREATE TABLE dag_runs (
         dag_id TEXT NOT NULL,
         run_id TEXT NOT NULL,
         run_type TEXT NOT NULL,
         logical_date_us BIGINT NOT NULL,
         state TEXT NOT NULL,
         start_us BIGINT,
         end_us BIGINT,
         fingerprint TEXT NOT NULL,
         data_interval_start_us BIGINT NOT NULL,
         data_interval_end_us BIGINT NOT NULL,
         conf TEXT NOT NULL,
         PRIMARY KEY (dag_id, run_id)
     );
     CREATE INDEX dag_runs_by_date ON dag_runs (dag_id, logical_date_us);
     CREATE TABLE task_instances (
         dag_id TEXT NOT NULL,
         run_id TEXT NOT NULL,
         task_id TEXT NOT NULL,
         map_index BIGINT NOT NULL,
         state TEXT NOT NULL,
         try_number INTEGER NOT NULL,
         max_tries INTEGER NOT NULL,
         start_us BIGINT,
         end_us BIGINT,
         error TEXT,
         PRIMARY KEY (dag_id, run_id, task_id, map_index),
         FOREIGN KEY (dag_id, run_id) REFERENCES dag_runs (dag_id, run_id) ON DELETE CASCADE
     ) WITHOUT ROWID;
     CREATE TABLE task_tries (
         dag_id TEXT NOT NULL,
         run_id TEXT NOT NULL,
         task_id TEXT NOT NULL,
         map_index BIGINT NOT NULL,
         try_number INTEGER NOT NULL,
         state TEXT NOT NULL,
         start_us BIGINT,
         end_us BIGINT,
         error TEXT,
         PRIMARY KEY (dag_id, run_id, task_id, map_index, try_number),
         FOREIGN KEY (dag_id, run_id) REFERENCES dag_runs (dag_id, run_id) ON DELETE CASCADE
     ) WITHOUT ROWID;
     CREATE TABLE xcoms (
         dag_id TEXT NOT NULL,
         run_id TEXT NOT NULL,
         task_id TEXT NOT NULL,
         map_index BIGINT NOT NULL,
         key TEXT NOT NULL,
         type_name TEXT NOT NULL,
         value BLOB NOT NULL,
         PRIMARY KEY (dag_id, run_id, task_id, map_index, key),
         FOREIGN KEY (dag_id, run_id) REFERENCES dag_runs (dag_id, run_id) ON DELETE CASCADE
     ) WITHOUT ROWID;",
    "CREATE TABLE task_logs (
         dag_id TEXT NOT NULL,
         run_id TEXT NOT NULL,
         task_id TEXT NOT NULL,
         map_index BIGINT NOT NULL,
         try_number INTEGER NOT NULL,
         seq INTEGER NOT NULL,
         logged_us BIGINT NOT NULL,
         level TEXT NOT NULL,
         message TEXT NOT NULL,
         PRIMARY KEY (dag_id, run_id, task_id, map_index, try_number, seq),
         FOREIGN KEY (dag_id, run_id) REFERENCES dag_runs (dag_id, run_id) ON DELETE CASCADE
     ) WITHOUT ROWID;
     CREATE TABLE pools (
         name TEXT PRIMARY KEY,
         slots INTEGER NOT NULL,
         description TEXT NOT NULL
     );",
    // Sensors in reschedule mode: one row per poke that found the condition not met.
    "CREATE TABLE task_reschedules (
         id INTEGER PRIMARY KEY,
         dag_id TEXT NOT NULL,
         run_id TEXT NOT NULL,
         task_id TEXT NOT NULL,
         map_index BIGINT NOT NULL,
         try_number INTEGER NOT NULL,
         start_us BIGINT NOT NULL,
         end_us BIGINT NOT NULL,
         reschedule_us BIGINT NOT NULL,
         FOREIGN KEY (dag_id, run_id) REFERENCES dag_runs (dag_id, run_id) ON DELETE CASCADE
     );
     CREATE INDEX task_reschedules_by_instance
         ON task_reschedules (dag_id, run_id, task_id, map_index, try_number);",
    // An XCom too large for its row lives in the object store: `object_key` is its key
    // (relative to the store's root) and `value` is empty.
    "ALTER TABLE xcoms ADD COLUMN object_key TEXT;",
];

/// How [`SqliteStore::open_with`] treats an existing database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Require the current schema (create it in a new file).
    Current,
    /// Accept an older schema, for `db migrate`.
    ForMigration,
}

/// The SQLite store.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
}

/// How long a command waits for another process's write lock before giving up.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

impl SqliteStore {
    /// Opens the database at `path`, creating it (and its directory) if absent.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, OpenMode::Current, DEFAULT_BUSY_TIMEOUT)
    }

    /// Opens with an explicit mode and lock wait.
    pub fn open_with(
        path: &Path,
        mode: OpenMode,
        busy_timeout: Duration,
    ) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::ReadOnly {
                path: dir.display().to_string(),
                reason: e.to_string(),
            })?;
        }
        let existed = path.exists();
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| map_err(&shown, e))?;
        conn.busy_timeout(busy_timeout)
            .map_err(|e| map_err(&shown, e))?;
        let store = Self {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
        };
        let found = if existed { store.read_version()? } else { None };
        match found {
            None => store.migrate_from(0)?,
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::NewerSchema {
                    path: shown,
                    found: v,
                    supported: SCHEMA_VERSION,
                });
            }
            Some(v) if v < SCHEMA_VERSION && mode == OpenMode::Current => {
                return Err(StoreError::OlderSchema {
                    path: shown,
                    found: v,
                    supported: SCHEMA_VERSION,
                });
            }
            Some(_) => {}
        }
        store.tune()?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the file.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self.read_version()?.unwrap_or(0))
    }

    /// Upgrades the schema to [`SCHEMA_VERSION`]; returns the versions before and after.
    pub fn migrate(&self) -> Result<(i64, i64), StoreError> {
        let from = self.schema_version()?;
        self.migrate_from(from)?;
        Ok((from, SCHEMA_VERSION))
    }

    /// Creates a database at an older schema version (for testing `db migrate`).
    #[doc(hidden)]
    pub fn create_at_version(path: &Path, version: i64) -> Result<(), StoreError> {
        let shown = path.display().to_string();
        let mut conn = Connection::open(path).map_err(|e| map_err(&shown, e))?;
        let tx = conn.transaction().map_err(|e| map_err(&shown, e))?;
        for (i, sql) in MIGRATIONS
            .iter()
            .enumerate()
            .take(usize::try_from(version).unwrap_or(0))
        {
            tx.execute_batch(sql).map_err(|e| map_err(&shown, e))?;
            tx.execute(
                "UPDATE flow_meta SET value = ?1 WHERE key = 'schema_version'",
                params![(i + 1).to_string()],
            )
            .map_err(|e| map_err(&shown, e))?;
        }
        tx.commit().map_err(|e| map_err(&shown, e))
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // rusqlite rolls back an unfinished transaction when it is dropped, so a panic
        // while the lock was held leaves nothing half-written.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        map_err(&self.path.display().to_string(), e)
    }

    /// `None` for an empty file; an error for a file that is not a flow database.
    fn read_version(&self) -> Result<Option<i64>, StoreError> {
        let conn = self.lock();
        let tables: i64 = conn
            .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if tables == 0 {
            return Ok(None);
        }
        let not_flow = || StoreError::NotFlowDatabase(self.path.display().to_string());
        let meta: Option<(String, String)> = conn
            .query_row(
                "SELECT (SELECT value FROM flow_meta WHERE key = 'application'),
                        (SELECT value FROM flow_meta WHERE key = 'schema_version')",
                [],
                |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?,
                        r.get::<_, Option<String>>(1)?,
                    ))
                },
            )
            .map(|(a, v)| a.zip(v))
            .or_else(|e| match e {
                rusqlite::Error::SqliteFailure(_, Some(ref m)) if m.contains("no such table") => {
                    Ok(None)
                }
                e => Err(self.err(e)),
            })?;
        match meta {
            Some((app, version)) if app == "flow" => {
                version.parse().map(Some).map_err(|_| not_flow())
            }
            _ => Err(not_flow()),
        }
    }

    fn migrate_from(&self, from: i64) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        for (i, sql) in MIGRATIONS
            .iter()
            .enumerate()
            .skip(usize::try_from(from).unwrap_or(0))
        {
            tx.execute_batch(sql).map_err(|e| self.err(e))?;
            tx.execute(
                "UPDATE flow_meta SET value = ?1 WHERE key = 'schema_version'",
                params![(i + 1).to_string()],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    fn tune(&self) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| self.err(e))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| self.err(e))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(|e| self.err(e))?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn with_connection<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        f(&self.lock())
    }
}

fn map_err(path: &str, e: rusqlite::Error) -> StoreError {
    let code = e.sqlite_error_code();
    match code {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Locked(path.to_string())
        }
        Some(ErrorCode::DiskFull) => StoreError::DiskFull(path.to_string()),
        Some(ErrorCode::NotADatabase) => StoreError::NotFlowDatabase(path.to_string()),
        Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => {
            StoreError::ReadOnly {
                path: path.to_string(),
                reason: e.to_string(),
            }
        }
        _ => StoreError::Backend(e.to_string()),
    }
}

fn micros(t: Option<DateTime<Utc>>) -> Option<i64> {
    t.map(|t| t.timestamp_micros())
}

fn time(us: Option<i64>) -> Option<DateTime<Utc>> {
    us.and_then(DateTime::from_timestamp_micros)
}

fn corrupt(what: &str, value: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("unknown {what} `{value}` in the database").into(),
    )
}

fn task_state(text: &str) -> rusqlite::Result<TaskState> {
    text.parse().map_err(|_| corrupt("task state", text))
}

fn run_state(text: &str) -> rusqlite::Result<RunState> {
    match text {
        "queued" => Ok(RunState::Queued),
        "running" => Ok(RunState::Running),
        "success" => Ok(RunState::Success),
        "failed" => Ok(RunState::Failed),
        other => Err(corrupt("run state", other)),
    }
}

fn run_type(text: &str) -> rusqlite::Result<RunType> {
    match text {
        "manual" => Ok(RunType::Manual),
        "scheduled" => Ok(RunType::Scheduled),
        "backfill" => Ok(RunType::Backfill),
        other => Err(corrupt("run type", other)),
    }
}

fn map_index(i: i64) -> MapIndex {
    u32::try_from(i).map_or(MapIndex::UNMAPPED, MapIndex::mapped)
}

const RUN_COLUMNS: &str = "dag_id, run_id, run_type, logical_date_us, state, start_us, end_us, fingerprint, \
     data_interval_start_us, data_interval_end_us, conf";

fn run_row(r: &Row<'_>) -> rusqlite::Result<DagRunRecord> {
    Ok(DagRunRecord {
        dag_id: DagId::new(r.get::<_, String>(0)?),
        run_id: RunId::new(r.get::<_, String>(1)?),
        run_type: run_type(&r.get::<_, String>(2)?)?,
        logical_date: time(Some(r.get(3)?)).unwrap_or_default(),
        state: run_state(&r.get::<_, String>(4)?)?,
        start: time(r.get(5)?),
        end: time(r.get(6)?),
        fingerprint: r.get(7)?,
        data_interval_start: time(Some(r.get(8)?)).unwrap_or_default(),
        data_interval_end: time(Some(r.get(9)?)).unwrap_or_default(),
        conf: serde_json::from_str(&r.get::<_, String>(10)?)
            .map_err(|e| corrupt("run conf", &e.to_string()))?,
    })
}

impl RunStore for SqliteStore {
    fn create_run(&self, run: &DagRunRecord) -> Result<(), StoreError> {
        let conn = self.lock();
        let inserted = conn
            .prepare_cached(&format!(
                "INSERT INTO dag_runs ({RUN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT DO NOTHING"
            ))
            .and_then(|mut st| {
                st.execute(params![
                    run.dag_id.as_str(),
                    run.run_id.as_str(),
                    run.run_type.as_str(),
                    run.logical_date.timestamp_micros(),
                    run.state.as_str(),
                    micros(run.start),
                    micros(run.end),
                    run.fingerprint,
                    run.data_interval_start.timestamp_micros(),
                    run.data_interval_end.timestamp_micros(),
                    run.conf.to_string(),
                ])
            })
            .map_err(|e| self.err(e))?;
        if inserted == 0 {
            return Err(StoreError::RunExists {
                dag_id: run.dag_id.clone(),
                run_id: run.run_id.clone(),
            });
        }
        Ok(())
    }

    fn apply(&self, changes: &[Change]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        for change in changes {
            apply_one(&tx, change).map_err(|e| match e {
                ApplyError::Sql(e) => self.err(e),
                ApplyError::Store(e) => e,
            })?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    fn commits_in_background(&self) -> bool {
        true
    }

    fn run(&self, dag_id: &DagId, run_id: &RunId) -> Result<Option<DagRunRecord>, StoreError> {
        let conn = self.lock();
        conn.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM dag_runs WHERE dag_id = ?1 AND run_id = ?2"
        ))
        .and_then(|mut st| {
            st.query_row(params![dag_id.as_str(), run_id.as_str()], run_row)
                .optional()
        })
        .map_err(|e| self.err(e))
    }

    fn runs(&self, dag_id: Option<&DagId>) -> Result<Vec<DagRunRecord>, StoreError> {
        let conn = self.lock();
        conn.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM dag_runs WHERE ?1 IS NULL OR dag_id = ?1 \
             ORDER BY logical_date_us DESC, run_id DESC"
        ))
        .and_then(|mut st| {
            st.query_map(params![dag_id.map(DagId::as_str)], run_row)?
                .collect()
        })
        .map_err(|e| self.err(e))
    }

    fn unfinished_runs(&self) -> Result<Vec<DagRunRecord>, StoreError> {
        let conn = self.lock();
        conn.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM dag_runs WHERE state IN ('queued', 'running') \
             ORDER BY logical_date_us, run_id"
        ))
        .and_then(|mut st| st.query_map([], run_row)?.collect())
        .map_err(|e| self.err(e))
    }

    fn latest_run(
        &self,
        dag_id: &DagId,
        run_type: RunType,
    ) -> Result<Option<DagRunRecord>, StoreError> {
        let conn = self.lock();
        conn.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM dag_runs WHERE dag_id = ?1 AND run_type = ?2 \
             ORDER BY logical_date_us DESC, run_id DESC LIMIT 1"
        ))
        .and_then(|mut st| {
            st.query_row(params![dag_id.as_str(), run_type.as_str()], run_row)
                .optional()
        })
        .map_err(|e| self.err(e))
    }

    fn task_instances(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
    ) -> Result<Vec<TaskInstanceRecord>, StoreError> {
        let conn = self.lock();
        conn.prepare_cached(
            "SELECT task_id, map_index, state, try_number, max_tries, start_us, end_us, error FROM task_instances \
             WHERE dag_id = ?1 AND run_id = ?2 ORDER BY task_id, map_index",
        )
        .and_then(|mut st| {
            st.query_map(params![dag_id.as_str(), run_id.as_str()], |r| {
                Ok(TaskInstanceRecord {
                    key: TaskInstanceKey {
                        dag_id: dag_id.clone(),
                        run_id: run_id.clone(),
                        task_id: TaskId::new(r.get::<_, String>(0)?),
                        map_index: map_index(r.get(1)?),
                    },
                    state: task_state(&r.get::<_, String>(2)?)?,
                    try_number: r.get(3)?,
                    max_tries: r.get(4)?,
                    start: time(r.get(5)?),
                    end: time(r.get(6)?),
                    error: r.get(7)?,
                })
            })?
            .collect()
        })
        .map_err(|e| self.err(e))
    }

    fn tries(&self, key: &TaskInstanceKey) -> Result<Vec<TryRecord>, StoreError> {
        let conn = self.lock();
        // Earlier tries from the history, the current one from the instance's own row.
        conn.prepare_cached(
            "SELECT try_number, state, start_us, end_us, error FROM task_tries \
             WHERE dag_id = ?1 AND run_id = ?2 AND task_id = ?3 AND map_index = ?4 \
             UNION ALL \
             SELECT try_number, state, start_us, end_us, error FROM task_instances i \
             WHERE dag_id = ?1 AND run_id = ?2 AND task_id = ?3 AND map_index = ?4 \
             AND try_number > 0 AND state NOT IN ('none', 'queued') \
             AND NOT EXISTS (SELECT 1 FROM task_tries h WHERE h.dag_id = ?1 AND h.run_id = ?2 \
                 AND h.task_id = ?3 AND h.map_index = ?4 AND h.try_number = i.try_number) \
             ORDER BY try_number",
        )
        .and_then(|mut st| {
            st.query_map(key_params(key), |r| {
                Ok(TryRecord {
                    try_number: r.get(0)?,
                    state: task_state(&r.get::<_, String>(1)?)?,
                    start: time(r.get(2)?),
                    end: time(r.get(3)?),
                    error: r.get(4)?,
                })
            })?
            .collect()
        })
        .map_err(|e| self.err(e))
    }

    fn clear(&self, dag_id: &DagId, run_id: &RunId, tasks: &[TaskId]) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let updated = tx
            .execute(
                "UPDATE dag_runs SET state = 'queued', end_us = NULL WHERE dag_id = ?1 AND run_id = ?2",
                params![dag_id.as_str(), run_id.as_str()],
            )
            .map_err(|e| self.err(e))?;
        if updated == 0 {
            return Err(StoreError::NoSuchRun {
                dag_id: dag_id.clone(),
                run_id: run_id.clone(),
            });
        }
        for task in tasks {
            let args = params![dag_id.as_str(), run_id.as_str(), task.as_str()];
            tx.execute(
                "INSERT INTO task_tries (dag_id, run_id, task_id, map_index, try_number, state, start_us, end_us, error) \
                 SELECT dag_id, run_id, task_id, map_index, try_number, state, start_us, end_us, error \
                 FROM task_instances WHERE dag_id = ?1 AND run_id = ?2 AND task_id = ?3 \
                 AND try_number > 0 AND state NOT IN ('none', 'queued') \
                 ON CONFLICT DO NOTHING",
                args,
            )
            .map_err(|e| self.err(e))?;
            tx.execute(
                "UPDATE task_instances SET state = 'none', start_us = NULL, end_us = NULL, error = NULL \
                 WHERE dag_id = ?1 AND run_id = ?2 AND task_id = ?3",
                args,
            )
            .and_then(|_| tx.execute("DELETE FROM xcoms WHERE dag_id = ?1 AND run_id = ?2 AND task_id = ?3", args))
            .and_then(|_| tx.execute("DELETE FROM task_reschedules WHERE dag_id = ?1 AND run_id = ?2 AND task_id = ?3", args))
            .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    fn delete_run(&self, dag_id: &DagId, run_id: &RunId) -> Result<(), StoreError> {
        // Task instances, tries, XComs and logs go with the run (ON DELETE CASCADE).
        let conn = self.lock();
        let deleted = conn
            .execute(
                "DELETE FROM dag_runs WHERE dag_id = ?1 AND run_id = ?2",
                params![dag_id.as_str(), run_id.as_str()],
            )
            .map_err(|e| self.err(e))?;
        if deleted == 0 {
            return Err(StoreError::NoSuchRun {
                dag_id: dag_id.clone(),
                run_id: run_id.clone(),
            });
        }
        Ok(())
    }
}

fn key_params(key: &TaskInstanceKey) -> [Box<dyn rusqlite::ToSql + '_>; 4] {
    [
        Box::new(key.dag_id.as_str()),
        Box::new(key.run_id.as_str()),
        Box::new(key.task_id.as_str()),
        Box::new(key.map_index.as_i64()),
    ]
}

enum ApplyError {
    Sql(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for ApplyError {
    fn from(e: rusqlite::Error) -> Self {
        ApplyError::Sql(e)
    }
}

fn apply_one(tx: &rusqlite::Transaction<'_>, change: &Change) -> Result<(), ApplyError> {
    match change {
        Change::Task(ti) => {
            let k = &ti.key;
            let inserted = tx
                .prepare_cached(
                    "INSERT INTO task_instances (dag_id, run_id, task_id, map_index, state, try_number, max_tries, start_us, end_us, error) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
                     ON CONFLICT (dag_id, run_id, task_id, map_index) DO UPDATE SET state = excluded.state, \
                     try_number = excluded.try_number, max_tries = excluded.max_tries, start_us = excluded.start_us, end_us = excluded.end_us, \
                     error = excluded.error",
                )?
                .execute(params![
                    k.dag_id.as_str(),
                    k.run_id.as_str(),
                    k.task_id.as_str(),
                    k.map_index.as_i64(),
                    ti.state.as_str(),
                    ti.try_number,
                    ti.max_tries,
                    micros(ti.start),
                    micros(ti.end),
                    ti.error,
                ])
                .map_err(|e| no_such_run(e, &k.dag_id, &k.run_id))?;
            debug_assert_eq!(inserted, 1);
            if let Some(attempt) = ti.archived_try() {
                tx.prepare_cached(
                    "INSERT INTO task_tries (dag_id, run_id, task_id, map_index, try_number, state, start_us, end_us, error) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                     ON CONFLICT (dag_id, run_id, task_id, map_index, try_number) DO UPDATE SET state = excluded.state, \
                     start_us = excluded.start_us, end_us = excluded.end_us, error = excluded.error",
                )?
                .execute(params![
                    k.dag_id.as_str(),
                    k.run_id.as_str(),
                    k.task_id.as_str(),
                    k.map_index.as_i64(),
                    attempt.try_number,
                    attempt.state.as_str(),
                    micros(attempt.start),
                    micros(attempt.end),
                    attempt.error,
                ])?;
            }
        }
        Change::XCom { key, name, value } => {
            let (bytes, object_key): (&[u8], Option<&str>) = match value {
                StoredXCom::Inline(blob) => (blob.bytes(), None),
                StoredXCom::Object(object) => (&[], Some(object.key())),
            };
            tx.prepare_cached(
                "INSERT INTO xcoms (dag_id, run_id, task_id, map_index, key, type_name, value, object_key) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT (dag_id, run_id, task_id, map_index, key) DO UPDATE SET \
                 type_name = excluded.type_name, value = excluded.value, object_key = excluded.object_key",
            )?
            .execute(params![
                key.dag_id.as_str(),
                key.run_id.as_str(),
                key.task_id.as_str(),
                key.map_index.as_i64(),
                name,
                value.type_name(),
                bytes,
                object_key,
            ])
            .map_err(|e| no_such_run(e, &key.dag_id, &key.run_id))?;
        }
        Change::Log {
            key,
            try_number,
            lines,
        } => {
            let next: i64 = tx
                .prepare_cached(
                    "SELECT COALESCE(MAX(seq) + 1, 0) FROM task_logs \
                     WHERE dag_id = ?1 AND run_id = ?2 AND task_id = ?3 AND map_index = ?4 AND try_number = ?5",
                )?
                .query_row(
                    params![key.dag_id.as_str(), key.run_id.as_str(), key.task_id.as_str(), key.map_index.as_i64(), try_number],
                    |r| r.get(0),
                )?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO task_logs (dag_id, run_id, task_id, map_index, try_number, seq, logged_us, level, message) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for (seq, line) in (next..).zip(lines) {
                insert
                    .execute(params![
                        key.dag_id.as_str(),
                        key.run_id.as_str(),
                        key.task_id.as_str(),
                        key.map_index.as_i64(),
                        try_number,
                        seq,
                        line.at.timestamp_micros(),
                        line.level,
                        line.message,
                    ])
                    .map_err(|e| no_such_run(e, &key.dag_id, &key.run_id))?;
            }
        }
        Change::RemoveInstance(key) => {
            for table in ["xcoms", "task_reschedules"] {
                tx.prepare_cached(&format!(
                    "DELETE FROM {table} WHERE dag_id = ?1 AND run_id = ?2 AND task_id = ?3 AND map_index = ?4"
                ))?
                .execute(key_params(key))?;
            }
            tx.prepare_cached("DELETE FROM task_instances WHERE dag_id = ?1 AND run_id = ?2 AND task_id = ?3 AND map_index = ?4")?
                .execute(key_params(key))?;
        }
        Change::Reschedule(record) => {
            let key = &record.key;
            tx.prepare_cached(
                "INSERT INTO task_reschedules (dag_id, run_id, task_id, map_index, try_number, start_us, end_us, reschedule_us) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                key.dag_id.as_str(),
                key.run_id.as_str(),
                key.task_id.as_str(),
                key.map_index.as_i64(),
                record.try_number,
                record.start.timestamp_micros(),
                record.end.timestamp_micros(),
                record.reschedule_at.timestamp_micros(),
            ])
            .map_err(|e| no_such_run(e, &key.dag_id, &key.run_id))?;
        }
        Change::Run {
            dag_id,
            run_id,
            state,
            start,
            end,
        } => {
            let updated = tx
                .prepare_cached("UPDATE dag_runs SET state = ?3, start_us = ?4, end_us = ?5 WHERE dag_id = ?1 AND run_id = ?2")?
                .execute(params![dag_id.as_str(), run_id.as_str(), state.as_str(), micros(*start), micros(*end)])?;
            if updated == 0 {
                return Err(ApplyError::Store(StoreError::NoSuchRun {
                    dag_id: dag_id.clone(),
                    run_id: run_id.clone(),
                }));
            }
        }
    }
    Ok(())
}

/// A foreign-key failure means the run does not exist.
fn no_such_run(e: rusqlite::Error, dag_id: &DagId, run_id: &RunId) -> ApplyError {
    match e.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation) => ApplyError::Store(StoreError::NoSuchRun {
            dag_id: dag_id.clone(),
            run_id: run_id.clone(),
        }),
        _ => ApplyError::Sql(e),
    }
}

impl RescheduleStore for SqliteStore {
    fn reschedules(
        &self,
        key: &TaskInstanceKey,
        try_number: u32,
    ) -> Result<Vec<RescheduleRecord>, StoreError> {
        let conn = self.lock();
        conn.prepare_cached(
            "SELECT start_us, end_us, reschedule_us FROM task_reschedules \
             WHERE dag_id = ?1 AND run_id = ?2 AND task_id = ?3 AND map_index = ?4 AND try_number = ?5 \
             ORDER BY id",
        )
        .and_then(|mut st| {
            st.query_map(
                params![
                    key.dag_id.as_str(),
                    key.run_id.as_str(),
                    key.task_id.as_str(),
                    key.map_index.as_i64(),
                    try_number
                ],
                |r| {
                    let at = |i: usize| -> rusqlite::Result<DateTime<Utc>> {
                        let us: i64 = r.get(i)?;
                        time(Some(us)).ok_or_else(|| corrupt("time", &us.to_string()))
                    };
                    Ok(RescheduleRecord {
                        key: key.clone(),
                        try_number,
                        start: at(0)?,
                        end: at(1)?,
                        reschedule_at: at(2)?,
                    })
                },
            )?
            .collect()
        })
        .map_err(|e| self.err(e))
    }
}

/// Reads `value, type_name, object_key` starting at column `first`.
fn stored_xcom(r: &Row<'_>, first: usize) -> rusqlite::Result<StoredXCom> {
    let type_name = r.get::<_, String>(first + 1)?;
    Ok(match r.get::<_, Option<String>>(first + 2)? {
        Some(object_key) => StoredXCom::Object(ObjectRef::new(object_key, type_name)),
        None => StoredXCom::Inline(XComBlob::from_parts(r.get::<_, Vec<u8>>(first)?, type_name)),
    })
}

impl XComStore for SqliteStore {
    fn get_xcom(
        &self,
        key: &TaskInstanceKey,
        name: &str,
    ) -> Result<Option<StoredXCom>, StoreError> {
        let conn = self.lock();
        conn.prepare_cached(
            "SELECT value, type_name, object_key FROM xcoms \
             WHERE dag_id = ?1 AND run_id = ?2 AND task_id = ?3 AND map_index = ?4 AND key = ?5",
        )
        .and_then(|mut st| {
            st.query_row(
                params![
                    key.dag_id.as_str(),
                    key.run_id.as_str(),
                    key.task_id.as_str(),
                    key.map_index.as_i64(),
                    name
                ],
                |r| stored_xcom(r, 0),
            )
            .optional()
        })
        .map_err(|e| self.err(e))
    }

    fn latest_xcom(
        &self,
        dag_id: &DagId,
        task_id: &TaskId,
        name: &str,
    ) -> Result<Option<(RunId, StoredXCom)>, StoreError> {
        let conn = self.lock();
        conn.prepare_cached(
            "SELECT x.run_id, x.value, x.type_name, x.object_key FROM xcoms x \
             JOIN dag_runs r ON r.dag_id = x.dag_id AND r.run_id = x.run_id \
             WHERE x.dag_id = ?1 AND x.task_id = ?2 AND x.key = ?3 AND x.map_index = -1 \
             ORDER BY r.logical_date_us DESC, r.run_id DESC LIMIT 1",
        )
        .and_then(|mut st| {
            st.query_row(params![dag_id.as_str(), task_id.as_str(), name], |r| {
                Ok((RunId::new(r.get::<_, String>(0)?), stored_xcom(r, 1)?))
            })
            .optional()
        })
        .map_err(|e| self.err(e))
    }

    fn xcoms(&self, key: &TaskInstanceKey) -> Result<Vec<(String, StoredXCom)>, StoreError> {
        let conn = self.lock();
        conn.prepare_cached(
            "SELECT key, value, type_name, object_key FROM xcoms \
             WHERE dag_id = ?1 AND run_id = ?2 AND task_id = ?3 AND map_index = ?4 ORDER BY key",
        )
        .and_then(|mut st| {
            st.query_map(
                params![
                    key.dag_id.as_str(),
                    key.run_id.as_str(),
                    key.task_id.as_str(),
                    key.map_index.as_i64()
                ],
                |r| Ok((r.get::<_, String>(0)?, stored_xcom(r, 1)?)),
            )?
            .collect()
        })
        .map_err(|e| self.err(e))
    }
}

impl DagStore for SqliteStore {
    fn record_dag(&self, dag_id: &DagId, fingerprint: &str) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.prepare_cached(
            "INSERT INTO dags (dag_id, is_paused, fingerprint, updated_us) VALUES (?1, FALSE, ?2, ?3) \
             ON CONFLICT (dag_id) DO UPDATE SET fingerprint = excluded.fingerprint, updated_us = excluded.updated_us \
             WHERE dags.fingerprint <> excluded.fingerprint",
        )
        .and_then(|mut st| st.execute(params![dag_id.as_str(), fingerprint, Utc::now().timestamp_micros()]))
        .map(drop)
        .map_err(|e| self.err(e))
    }

    fn dag(&self, dag_id: &DagId) -> Result<Option<DagRecord>, StoreError> {
        let conn = self.lock();
        conn.prepare_cached("SELECT is_paused, fingerprint FROM dags WHERE dag_id = ?1")
            .and_then(|mut st| {
                st.query_row(params![dag_id.as_str()], |r| {
                    Ok(DagRecord {
                        dag_id: dag_id.clone(),
                        paused: r.get(0)?,
                        fingerprint: r.get(1)?,
                    })
                })
                .optional()
            })
            .map_err(|e| self.err(e))
    }

    fn set_paused(&self, dag_id: &DagId, paused: bool) -> Result<(), StoreError> {
        let conn = self.lock();
        let updated = conn
            .execute(
                "UPDATE dags SET is_paused = ?2 WHERE dag_id = ?1",
                params![dag_id.as_str(), paused],
            )
            .map_err(|e| self.err(e))?;
        if updated == 0 {
            return Err(StoreError::Backend(format!(
                "DAG `{dag_id}` is not recorded"
            )));
        }
        Ok(())
    }
}

impl LogStore for SqliteStore {
    fn logs(
        &self,
        key: &TaskInstanceKey,
        try_number: Option<u32>,
    ) -> Result<Vec<(u32, LogLine)>, StoreError> {
        let conn = self.lock();
        conn.prepare_cached(
            "SELECT try_number, logged_us, level, message FROM task_logs \
             WHERE dag_id = ?1 AND run_id = ?2 AND task_id = ?3 AND map_index = ?4 AND (?5 IS NULL OR try_number = ?5) \
             ORDER BY try_number, seq",
        )
        .and_then(|mut st| {
            st.query_map(
                params![key.dag_id.as_str(), key.run_id.as_str(), key.task_id.as_str(), key.map_index.as_i64(), try_number],
                |r| {
                    Ok((
                        r.get(0)?,
                        LogLine {
                            at: time(Some(r.get(1)?)).unwrap_or_default(),
                            level: r.get(2)?,
                            message: r.get(3)?,
                        },
                    ))
                },
            )?
            .collect()
        })
        .map_err(|e| self.err(e))
    }
}

impl super::PoolStore for SqliteStore {
    fn set_pool(&self, pool: &super::PoolRecord) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.execute(
            "INSERT INTO pools (name, slots, description) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET slots = excluded.slots, description = excluded.description",
            params![pool.name, pool.slots, pool.description],
        )
        .map(drop)
        .map_err(|e| self.err(e))
    }

    fn pools(&self) -> Result<Vec<super::PoolRecord>, StoreError> {
        let conn = self.lock();
        conn.prepare_cached("SELECT name, slots, description FROM pools ORDER BY name")
            .and_then(|mut st| {
                st.query_map([], |r| {
                    Ok(super::PoolRecord {
                        name: r.get(0)?,
                        slots: r.get(1)?,
                        description: r.get(2)?,
                    })
                })?
                .collect()
            })
            .map_err(|e| self.err(e))
    }

    fn delete_pool(&self, name: &str) -> Result<bool, StoreError> {
        let conn = self.lock();
        conn.execute("DELETE FROM pools WHERE name = ?1", params![name])
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }
}

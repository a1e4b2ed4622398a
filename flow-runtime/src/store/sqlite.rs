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
    Change, Claimed, DagRecord, DagRunRecord, DagStore, Expect, LeaseGrant, LogLine, LogStore,
    Outcome, OutcomeCursor, Page, Paged, QueueStore, ReportedOutcome, RescheduleRecord,
    RescheduleStore, RunLeaseStore, RunOrderBy, RunQuery, RunStore, RunType, SlotAsk, SlotRelease,
    SlotRequest, SlotStore, SlotTally, StoreError, TaskInstanceRecord, TryRecord, WorkerId,
    XComStore,
};
use crate::assets::AssetEvent;
use crate::ids::{DagId, MapIndex, RunId, TaskId, TaskInstanceKey};
use crate::pools::{DEFAULT_POOL, DEFAULT_POOL_SLOTS, Grant};
use crate::state::{RunState, TaskState};
use crate::xcom::{ObjectRef, StoredXCom, XComBlob};

/// The schema version this build reads and writes.
pub const SCHEMA_VERSION: i64 = 9;

/// Each migration takes the schema from version `i` to `i + 1`.
const MIGRATIONS: [&str; 9] = [
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
    // Sharing one database between processes: queued instances are claimed by workers
    // under a lease and their outcomes reported in order.
    "ALTER TABLE task_instances ADD COLUMN priority_weight BIGINT NOT NULL DEFAULT 0;
     ALTER TABLE task_instances ADD COLUMN queue TEXT;
     ALTER TABLE task_instances ADD COLUMN queued_us BIGINT;
     ALTER TABLE task_instances ADD COLUMN claimed_by TEXT;
     ALTER TABLE task_instances ADD COLUMN lease_until_us BIGINT;
     UPDATE task_instances SET queued_us = 0 WHERE state = 'queued';
     CREATE INDEX task_instances_queued ON task_instances (priority_weight DESC, queued_us)
         WHERE state = 'queued';
     CREATE INDEX task_instances_claimed ON task_instances (lease_until_us)
         WHERE claimed_by IS NOT NULL;
     CREATE TABLE task_outcomes (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         dag_id TEXT NOT NULL,
         run_id TEXT NOT NULL,
         task_id TEXT NOT NULL,
         map_index BIGINT NOT NULL,
         try_number INTEGER NOT NULL,
         worker TEXT NOT NULL,
         state TEXT NOT NULL,
         error TEXT,
         end_us BIGINT NOT NULL,
         reschedule_us BIGINT,
         FOREIGN KEY (dag_id, run_id) REFERENCES dag_runs (dag_id, run_id) ON DELETE CASCADE
     );
     CREATE TABLE slot_holds (
         dag_id TEXT NOT NULL,
         run_id TEXT NOT NULL,
         task_id TEXT NOT NULL,
         map_index BIGINT NOT NULL,
         owner TEXT NOT NULL,
         pool TEXT NOT NULL,
         slots INTEGER NOT NULL,
         lease_until_us BIGINT NOT NULL,
         PRIMARY KEY (dag_id, run_id, task_id, map_index),
         FOREIGN KEY (dag_id, run_id) REFERENCES dag_runs (dag_id, run_id) ON DELETE CASCADE
     ) WITHOUT ROWID;
     CREATE INDEX slot_holds_by_owner ON slot_holds (owner);
     CREATE TABLE run_leases (
         dag_id TEXT NOT NULL,
         run_id TEXT NOT NULL,
         owner TEXT NOT NULL,
         lease_until_us BIGINT NOT NULL,
         PRIMARY KEY (dag_id, run_id),
         FOREIGN KEY (dag_id, run_id) REFERENCES dag_runs (dag_id, run_id) ON DELETE CASCADE
     ) WITHOUT ROWID;",
    // Airflow's meanings: `max_tries` counts the retries allowed (it was one more), and a
    // try that was retried is `failed` in the history.
    "UPDATE task_instances SET max_tries = max_tries - 1 WHERE max_tries > 0;
     UPDATE task_tries SET state = 'failed' WHERE state = 'up_for_retry';",
    // Pool slots are counted per run, pool and owner rather than held per instance: a
    // try hands its slots to the next one without a write, and a batch releases many
    // at once. Holds of the old kind belong to processes of an older build.
    "DROP TABLE slot_holds;
     CREATE TABLE slot_usage (
         dag_id TEXT NOT NULL,
         run_id TEXT NOT NULL,
         pool TEXT NOT NULL,
         owner TEXT NOT NULL,
         slots INTEGER NOT NULL,
         tasks INTEGER NOT NULL,
         lease_until_us BIGINT NOT NULL,
         PRIMARY KEY (dag_id, run_id, pool, owner),
         FOREIGN KEY (dag_id, run_id) REFERENCES dag_runs (dag_id, run_id) ON DELETE CASCADE
     ) WITHOUT ROWID;
     CREATE TRIGGER slot_usage_emptied AFTER UPDATE OF slots, tasks ON slot_usage
         WHEN NEW.slots = 0 AND NEW.tasks = 0
     BEGIN
         DELETE FROM slot_usage WHERE dag_id = NEW.dag_id AND run_id = NEW.run_id
             AND pool = NEW.pool AND owner = NEW.owner;
     END;",
    // Assets: the updates tasks record, and how far each asset-scheduled DAG consumed them.
    // Events outlive the runs that recorded them, as in Airflow.
    "CREATE TABLE asset_events (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         uri TEXT NOT NULL,
         dag_id TEXT NOT NULL,
         run_id TEXT NOT NULL,
         task_id TEXT NOT NULL,
         map_index BIGINT NOT NULL,
         timestamp_us BIGINT NOT NULL
     );
     CREATE INDEX asset_events_by_uri ON asset_events (uri, id);
     CREATE TABLE asset_consumers (
         dag_id TEXT NOT NULL,
         uri TEXT NOT NULL,
         last_event_id INTEGER NOT NULL,
         PRIMARY KEY (dag_id, uri)
     ) WITHOUT ROWID;",
    // The queue gets a table of its own, holding only the instances that wait in it or
    // that a worker claimed: the task instances' rows, written for every change of every
    // task, carry no queue columns and no queue index. A claim names the try it is for.
    "CREATE TABLE task_queue (
         dag_id TEXT NOT NULL,
         run_id TEXT NOT NULL,
         task_id TEXT NOT NULL,
         map_index BIGINT NOT NULL,
         priority_weight BIGINT NOT NULL,
         queue TEXT,
         queued_us BIGINT NOT NULL,
         claimed_by TEXT,
         try_number INTEGER,
         lease_until_us BIGINT,
         PRIMARY KEY (dag_id, run_id, task_id, map_index),
         FOREIGN KEY (dag_id, run_id) REFERENCES dag_runs (dag_id, run_id) ON DELETE CASCADE
     ) WITHOUT ROWID;
     CREATE INDEX task_queue_waiting ON task_queue (priority_weight DESC, queued_us)
         WHERE claimed_by IS NULL;
     CREATE INDEX task_queue_claimed ON task_queue (lease_until_us)
         WHERE claimed_by IS NOT NULL;
     INSERT INTO task_queue (dag_id, run_id, task_id, map_index, priority_weight, queue, queued_us,
             claimed_by, try_number, lease_until_us)
         SELECT dag_id, run_id, task_id, map_index, priority_weight, queue, COALESCE(queued_us, 0),
             claimed_by, CASE WHEN claimed_by IS NOT NULL THEN try_number END, lease_until_us
         FROM task_instances
         WHERE state = 'queued' OR (state = 'running' AND claimed_by IS NOT NULL);
     DROP INDEX task_instances_queued;
     DROP INDEX task_instances_claimed;
     ALTER TABLE task_instances DROP COLUMN priority_weight;
     ALTER TABLE task_instances DROP COLUMN queue;
     ALTER TABLE task_instances DROP COLUMN queued_us;
     ALTER TABLE task_instances DROP COLUMN claimed_by;
     ALTER TABLE task_instances DROP COLUMN lease_until_us;
     DROP TRIGGER slot_usage_emptied;",
];

/// The schema the migrations lead to, made at once in a new database (replaying every
/// migration there would rewrite tables that are empty anyway). A test checks that both
/// ways give the same tables, columns, keys and indexes.
const SCHEMA: &str = "CREATE TABLE flow_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
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
         object_key TEXT,
         PRIMARY KEY (dag_id, run_id, task_id, map_index, key),
         FOREIGN KEY (dag_id, run_id) REFERENCES dag_runs (dag_id, run_id) ON DELETE CASCADE
     ) WITHOUT ROWID;
     CREATE TABLE task_logs (
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
     );
     CREATE TABLE task_reschedules (
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
         ON task_reschedules (dag_id, run_id, task_id, map_index, try_number);
     CREATE TABLE task_outcomes (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         dag_id TEXT NOT NULL,
         run_id TEXT NOT NULL,
         task_id TEXT NOT NULL,
         map_index BIGINT NOT NULL,
         try_number INTEGER NOT NULL,
         worker TEXT NOT NULL,
         state TEXT NOT NULL,
         error TEXT,
         end_us BIGINT NOT NULL,
         reschedule_us BIGINT,
         FOREIGN KEY (dag_id, run_id) REFERENCES dag_runs (dag_id, run_id) ON DELETE CASCADE
     );
     CREATE TABLE run_leases (
         dag_id TEXT NOT NULL,
         run_id TEXT NOT NULL,
         owner TEXT NOT NULL,
         lease_until_us BIGINT NOT NULL,
         PRIMARY KEY (dag_id, run_id),
         FOREIGN KEY (dag_id, run_id) REFERENCES dag_runs (dag_id, run_id) ON DELETE CASCADE
     ) WITHOUT ROWID;
     CREATE TABLE slot_usage (
         dag_id TEXT NOT NULL,
         run_id TEXT NOT NULL,
         pool TEXT NOT NULL,
         owner TEXT NOT NULL,
         slots INTEGER NOT NULL,
         tasks INTEGER NOT NULL,
         lease_until_us BIGINT NOT NULL,
         PRIMARY KEY (dag_id, run_id, pool, owner),
         FOREIGN KEY (dag_id, run_id) REFERENCES dag_runs (dag_id, run_id) ON DELETE CASCADE
     ) WITHOUT ROWID;
     CREATE TABLE asset_events (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         uri TEXT NOT NULL,
         dag_id TEXT NOT NULL,
         run_id TEXT NOT NULL,
         task_id TEXT NOT NULL,
         map_index BIGINT NOT NULL,
         timestamp_us BIGINT NOT NULL
     );
     CREATE INDEX asset_events_by_uri ON asset_events (uri, id);
     CREATE TABLE asset_consumers (
         dag_id TEXT NOT NULL,
         uri TEXT NOT NULL,
         last_event_id INTEGER NOT NULL,
         PRIMARY KEY (dag_id, uri)
     ) WITHOUT ROWID;
     CREATE TABLE task_queue (
         dag_id TEXT NOT NULL,
         run_id TEXT NOT NULL,
         task_id TEXT NOT NULL,
         map_index BIGINT NOT NULL,
         priority_weight BIGINT NOT NULL,
         queue TEXT,
         queued_us BIGINT NOT NULL,
         claimed_by TEXT,
         try_number INTEGER,
         lease_until_us BIGINT,
         PRIMARY KEY (dag_id, run_id, task_id, map_index),
         FOREIGN KEY (dag_id, run_id) REFERENCES dag_runs (dag_id, run_id) ON DELETE CASCADE
     ) WITHOUT ROWID;
     CREATE INDEX task_queue_waiting ON task_queue (priority_weight DESC, queued_us)
         WHERE claimed_by IS NULL;
     CREATE INDEX task_queue_claimed ON task_queue (lease_until_us)
         WHERE claimed_by IS NOT NULL;
     INSERT INTO flow_meta (key, value) VALUES ('application', 'flow'), ('schema_version', '9');";

/// How [`SqliteStore::open_with`] treats an existing database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Require the current schema (create it in a new file).
    Current,
    /// Accept an older schema, for `db migrate`.
    ForMigration,
}

/// The SQLite store.
///
/// Two connections: the writer applies batches; reads go through a read-only connection
/// with its own lock, so that (WAL mode) a reader never waits behind a batch being
/// written, in this process or another.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// Opened once the schema is known to be current; until then reads use the writer.
    reader: Option<Mutex<Connection>>,
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
        let mut store = Self {
            conn: Mutex::new(conn),
            reader: None,
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
        // After `tune`: the file is in WAL mode, which lets this connection read while
        // the writer holds a write transaction.
        let reader = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| map_err(&shown, e))?;
        reader
            .busy_timeout(busy_timeout)
            .map_err(|e| map_err(&shown, e))?;
        reader.set_prepared_statement_cache_capacity(64);
        store.reader = Some(Mutex::new(reader));
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

    /// The connection for reads: the read-only one once it is open.
    fn read(&self) -> MutexGuard<'_, Connection> {
        // A read leaves no transaction open, so a poisoned lock holds nothing half-done.
        self.reader
            .as_ref()
            .unwrap_or(&self.conn)
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
        // Two processes opening a new file at once both find it empty; the second to take
        // the write lock finds the schema made and leaves it.
        if from == 0 {
            let tables: i64 = tx
                .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))
                .map_err(|e| self.err(e))?;
            if tables > 0 {
                return Ok(());
            }
            tx.execute_batch(SCHEMA).map_err(|e| self.err(e))?;
            return tx.commit().map_err(|e| self.err(e));
        }
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

/// A count as SQLite's integer (counts beyond `i64` mean "all").
fn sql_count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
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
        "asset_triggered" => Ok(RunType::AssetTriggered),
        other => Err(corrupt("run type", other)),
    }
}

fn map_index(i: i64) -> MapIndex {
    u32::try_from(i).map_or(MapIndex::UNMAPPED, MapIndex::mapped)
}

const RUN_COLUMNS: &str = "dag_id, run_id, run_type, logical_date_us, state, start_us, end_us, fingerprint, \
     data_interval_start_us, data_interval_end_us, conf";

/// The columns [`ti_row`] reads.
/// The columns [`ti_row`] reads. An instance's place in the queue is in `task_queue`;
/// outside the queue it reads as weight 0 and the default queue.
const TI_COLUMNS: &str =
    "dag_id, run_id, task_id, map_index, state, try_number, max_tries, start_us, end_us, error";

fn ti_row(r: &Row<'_>) -> rusqlite::Result<TaskInstanceRecord> {
    Ok(TaskInstanceRecord {
        key: TaskInstanceKey {
            dag_id: DagId::new(r.get::<_, String>(0)?),
            run_id: RunId::new(r.get::<_, String>(1)?),
            task_id: TaskId::new(r.get::<_, String>(2)?),
            map_index: map_index(r.get(3)?),
        },
        state: task_state(&r.get::<_, String>(4)?)?,
        try_number: r.get(5)?,
        max_tries: r.get(6)?,
        start: time(r.get(7)?),
        end: time(r.get(8)?),
        error: r.get(9)?,
        priority_weight: 0,
        queue: None,
    })
}

fn key_row(r: &Row<'_>) -> rusqlite::Result<TaskInstanceKey> {
    Ok(TaskInstanceKey {
        dag_id: DagId::new(r.get::<_, String>(0)?),
        run_id: RunId::new(r.get::<_, String>(1)?),
        task_id: TaskId::new(r.get::<_, String>(2)?),
        map_index: map_index(r.get(3)?),
    })
}

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
        insert_run(&self.lock(), run).map_err(|e| match e {
            ApplyError::Sql(e) => self.err(e),
            ApplyError::Store(e) => e,
        })
    }

    fn apply(&self, changes: &[Change]) -> Result<Vec<Grant>, StoreError> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        // When instances queued by this batch joined the queue.
        let now = Utc::now().timestamp_micros();
        let mut starts = Starts::default();
        let unapplied = |e| match e {
            ApplyError::Sql(e) => self.err(e),
            ApplyError::Store(e) => e,
        };
        for change in changes {
            apply_one(&tx, change, now, &mut starts).map_err(unapplied)?;
        }
        let grants = starts.finish(&tx).map_err(unapplied)?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(grants)
    }

    fn commits_in_background(&self) -> bool {
        true
    }

    fn run(&self, dag_id: &DagId, run_id: &RunId) -> Result<Option<DagRunRecord>, StoreError> {
        let conn = self.read();
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
        let conn = self.read();
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

    fn runs_page(&self, query: &RunQuery, page: Page) -> Result<Paged<DagRunRecord>, StoreError> {
        // Each condition is one parameter, NULL when it holds for every run; the lists go
        // as JSON arrays.
        const CONDITIONS: &str = "(?1 IS NULL OR dag_id = ?1) \
             AND (?2 IS NULL OR state IN (SELECT value FROM json_each(?2))) \
             AND (?3 IS NULL OR run_type IN (SELECT value FROM json_each(?3))) \
             AND (?4 IS NULL OR logical_date_us >= ?4) \
             AND (?5 IS NULL OR logical_date_us <= ?5)";
        let list = |names: Vec<&str>| {
            (!names.is_empty()).then(|| serde_json::Value::from(names).to_string())
        };
        let states = list(query.states.iter().map(|s| s.as_str()).collect());
        let types = list(query.run_types.iter().map(|t| t.as_str()).collect());
        let conditions = params![
            query.dag_id.as_ref().map(DagId::as_str),
            states,
            types,
            query.logical_date_gte.map(|d| d.timestamp_micros()),
            query.logical_date_lte.map(|d| d.timestamp_micros()),
        ];
        // Ascending puts NULLs (not started, not ended) first and descending last, as
        // `Option`'s order does for the memory store.
        let column = match query.order.by {
            RunOrderBy::LogicalDate => "logical_date_us",
            RunOrderBy::StartDate => "start_us",
            RunOrderBy::EndDate => "end_us",
            RunOrderBy::RunId => "run_id",
        };
        let direction = if query.order.descending {
            "DESC"
        } else {
            "ASC"
        };
        let mut conn = self.read();
        // One read transaction: the count and the page see the same runs.
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let total: i64 = tx
            .prepare_cached(&format!("SELECT COUNT(*) FROM dag_runs WHERE {CONDITIONS}"))
            .and_then(|mut st| st.query_row(conditions, |r| r.get(0)))
            .map_err(|e| self.err(e))?;
        let items = tx
            .prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM dag_runs WHERE {CONDITIONS} \
                 ORDER BY {column} {direction}, run_id {direction} LIMIT ?6 OFFSET ?7"
            ))
            .and_then(|mut st| {
                let mut all: Vec<&dyn rusqlite::ToSql> = conditions.to_vec();
                let (limit, offset) = (sql_count(page.limit), sql_count(page.offset));
                all.extend([&limit as &dyn rusqlite::ToSql, &offset]);
                st.query_map(all.as_slice(), run_row)?.collect()
            })
            .map_err(|e| self.err(e))?;
        Ok(Paged {
            items,
            total: usize::try_from(total).unwrap_or(0),
        })
    }

    fn task_instances_page(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
        page: Page,
    ) -> Result<Paged<TaskInstanceRecord>, StoreError> {
        let mut conn = self.read();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let run = params![dag_id.as_str(), run_id.as_str()];
        let total: i64 = tx
            .prepare_cached("SELECT COUNT(*) FROM task_instances WHERE dag_id = ?1 AND run_id = ?2")
            .and_then(|mut st| st.query_row(run, |r| r.get(0)))
            .map_err(|e| self.err(e))?;
        let items = tx
            .prepare_cached(&format!(
                "SELECT {TI_COLUMNS} FROM task_instances WHERE dag_id = ?1 AND run_id = ?2 \
                 ORDER BY task_id, map_index LIMIT ?3 OFFSET ?4"
            ))
            .and_then(|mut st| {
                st.query_map(
                    params![
                        dag_id.as_str(),
                        run_id.as_str(),
                        sql_count(page.limit),
                        sql_count(page.offset)
                    ],
                    ti_row,
                )?
                .collect()
            })
            .map_err(|e| self.err(e))?;
        Ok(Paged {
            items,
            total: usize::try_from(total).unwrap_or(0),
        })
    }

    fn unfinished_runs(&self) -> Result<Vec<DagRunRecord>, StoreError> {
        let conn = self.read();
        conn.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM dag_runs WHERE state IN ('queued', 'running') \
             ORDER BY logical_date_us, run_id"
        ))
        .and_then(|mut st| st.query_map([], run_row)?.collect())
        .map_err(|e| self.err(e))
    }

    fn run_counts(&self) -> Result<Vec<(DagId, RunState, u64)>, StoreError> {
        let conn = self.read();
        conn.prepare_cached(
            "SELECT dag_id, state, COUNT(*) FROM dag_runs GROUP BY dag_id, state \
             ORDER BY dag_id, state",
        )
        .and_then(|mut st| {
            st.query_map([], |r| {
                Ok((
                    DagId::new(r.get::<_, String>(0)?),
                    run_state(&r.get::<_, String>(1)?)?,
                    r.get::<_, i64>(2)?.unsigned_abs(),
                ))
            })?
            .collect()
        })
        .map_err(|e| self.err(e))
    }

    fn latest_run(
        &self,
        dag_id: &DagId,
        run_type: RunType,
    ) -> Result<Option<DagRunRecord>, StoreError> {
        let conn = self.read();
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

    fn previous_run(
        &self,
        dag_id: &DagId,
        logical_date: DateTime<Utc>,
    ) -> Result<Option<DagRunRecord>, StoreError> {
        let conn = self.read();
        conn.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM dag_runs WHERE dag_id = ?1 AND logical_date_us < ?2 \
             ORDER BY logical_date_us DESC, run_id DESC LIMIT 1"
        ))
        .and_then(|mut st| {
            st.query_row(
                params![dag_id.as_str(), logical_date.timestamp_micros()],
                run_row,
            )
            .optional()
        })
        .map_err(|e| self.err(e))
    }

    fn task_instances(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
    ) -> Result<Vec<TaskInstanceRecord>, StoreError> {
        let conn = self.read();
        conn.prepare_cached(
            &format!("SELECT {TI_COLUMNS} FROM task_instances WHERE dag_id = ?1 AND run_id = ?2 ORDER BY task_id, map_index"),
        )
        .and_then(|mut st| {
            st.query_map(params![dag_id.as_str(), run_id.as_str()], ti_row)?
                .collect()
        })
        .map_err(|e| self.err(e))
    }

    fn tries(&self, key: &TaskInstanceKey) -> Result<Vec<TryRecord>, StoreError> {
        let conn = self.read();
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
            .and_then(|_| tx.execute("DELETE FROM task_queue WHERE dag_id = ?1 AND run_id = ?2 AND task_id = ?3", args))
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

/// Records a new run; an existing id is [`StoreError::RunExists`].
fn insert_run(conn: &Connection, run: &DagRunRecord) -> Result<(), ApplyError> {
    let inserted = conn
        .prepare_cached(&format!(
            "INSERT INTO dag_runs ({RUN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT DO NOTHING"
        ))?
        .execute(params![
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
        ])?;
    if inserted == 0 {
        return Err(ApplyError::Store(StoreError::RunExists {
            dag_id: run.dag_id.clone(),
            run_id: run.run_id.clone(),
        }));
    }
    Ok(())
}

/// Applies one task change: the expectation is the statement's condition.
fn apply_task(
    tx: &rusqlite::Transaction<'_>,
    ti: &TaskInstanceRecord,
    expect: Expect,
    now_us: i64,
) -> Result<(), ApplyError> {
    let k = &ti.key;
    if !expect.allows(ti.state) {
        return Err(ApplyError::Store(StoreError::IllegalTransition {
            key: k.clone(),
            from: expect.state,
            to: ti.state,
        }));
    }
    // One statement per change: the expectation is the statement's condition, and
    // only a refused change pays for reading what the row holds. `+?11`: a bare
    // parameter compared with `state` would make SQLite re-prepare the statement
    // whenever its value changes, which costs more than the statement itself.
    let sql = if expect == Expect::FRESH {
        "INSERT INTO task_instances (dag_id, run_id, task_id, map_index, state, try_number, max_tries, start_us, end_us, error) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
         ON CONFLICT (dag_id, run_id, task_id, map_index) DO UPDATE SET state = ?5, \
         try_number = ?6, max_tries = ?7, start_us = ?8, end_us = ?9, error = ?10 \
         WHERE task_instances.state = +?11 AND task_instances.try_number = ?12"
    } else {
        "UPDATE task_instances SET state = ?5, try_number = ?6, max_tries = ?7, start_us = ?8, end_us = ?9, error = ?10 \
         WHERE dag_id = ?1 AND run_id = ?2 AND task_id = ?3 AND map_index = ?4 \
         AND state = +?11 AND try_number = ?12"
    };
    let fields: [&dyn rusqlite::ToSql; 12] = [
        &k.dag_id.as_str(),
        &k.run_id.as_str(),
        &k.task_id.as_str(),
        &k.map_index.as_i64(),
        &ti.state.as_str(),
        &ti.try_number,
        &ti.max_tries,
        &micros(ti.start),
        &micros(ti.end),
        &ti.error,
        &expect.state.as_str(),
        &expect.try_number,
    ];
    let written = tx
        .prepare_cached(sql)?
        .execute(&fields[..])
        .map_err(|e| no_such_run(e, &k.dag_id, &k.run_id))?;
    if written == 0 {
        return Err(refused(tx, k, expect));
    }
    // The queue holds an instance from when it becomes `queued` until it leaves that
    // state: claimed by a worker (see `claim`), or changed by its scheduler. Changes of
    // instances that never wait in it (most: a local run starts them directly) touch it
    // not at all.
    if ti.state == TaskState::Queued && expect.state != TaskState::Queued {
        tx.prepare_cached(
            "INSERT INTO task_queue (dag_id, run_id, task_id, map_index, priority_weight, queue, queued_us) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
             ON CONFLICT (dag_id, run_id, task_id, map_index) DO UPDATE SET priority_weight = ?5, \
             queue = ?6, queued_us = ?7, claimed_by = NULL, try_number = NULL, lease_until_us = NULL",
        )?
        .execute(params![
            k.dag_id.as_str(),
            k.run_id.as_str(),
            k.task_id.as_str(),
            k.map_index.as_i64(),
            ti.priority_weight,
            ti.queue,
            now_us,
        ])?;
    } else if expect.state == TaskState::Queued && ti.state != TaskState::Queued {
        tx.prepare_cached(
            "DELETE FROM task_queue WHERE dag_id = ?1 AND run_id = ?2 AND task_id = ?3 AND map_index = ?4",
        )?
        .execute(key_params(k))?;
    }
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
    Ok(())
}

fn apply_one(
    tx: &rusqlite::Transaction<'_>,
    change: &Change,
    now_us: i64,
    starts: &mut Starts,
) -> Result<(), ApplyError> {
    match change {
        Change::Task { record, expect } => apply_task(tx, record, *expect, now_us)?,
        Change::Start {
            record,
            expect,
            ask,
        } => starts.start(tx, record, *expect, ask, now_us)?,
        Change::CreateRun(run) => insert_run(tx, run)?,
        Change::AssetUpdated {
            uri,
            source,
            timestamp,
        } => {
            // The run must exist now; its events outlive it (no foreign key).
            let inserted = tx
                .prepare_cached(
                    "INSERT INTO asset_events (uri, dag_id, run_id, task_id, map_index, timestamp_us) \
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6 \
                     WHERE EXISTS (SELECT 1 FROM dag_runs WHERE dag_id = ?2 AND run_id = ?3)",
                )?
                .execute(params![
                uri,
                source.dag_id.as_str(),
                source.run_id.as_str(),
                source.task_id.as_str(),
                source.map_index.as_i64(),
                timestamp.timestamp_micros(),
            ])?;
            if inserted == 0 {
                return Err(ApplyError::Store(StoreError::NoSuchRun {
                    dag_id: source.dag_id.clone(),
                    run_id: source.run_id.clone(),
                }));
            }
        }
        Change::ConsumeAssets { dag_id, upto } => {
            let mut consume = tx.prepare_cached(
                "INSERT INTO asset_consumers (dag_id, uri, last_event_id) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (dag_id, uri) DO UPDATE SET last_event_id = excluded.last_event_id",
            )?;
            for (uri, id) in upto {
                consume.execute(params![dag_id.as_str(), uri, id])?;
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
            for table in ["xcoms", "task_reschedules", "task_queue"] {
                tx.prepare_cached(&format!(
                    "DELETE FROM {table} WHERE dag_id = ?1 AND run_id = ?2 AND task_id = ?3 AND map_index = ?4"
                ))?
                .execute(key_params(key))?;
            }
            tx.prepare_cached("DELETE FROM task_instances WHERE dag_id = ?1 AND run_id = ?2 AND task_id = ?3 AND map_index = ?4")?
                .execute(key_params(key))?;
        }
        Change::ReleaseSlots(release) => release_usage(tx, release)?,
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
        Change::TakeRunLease {
            dag_id,
            run_id,
            owner,
            now,
            until,
        } => {
            // Taken unless another owner's lease still holds (then the batch is refused).
            let taken = tx
                .prepare_cached(
                    "INSERT INTO run_leases (dag_id, run_id, owner, lease_until_us) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (dag_id, run_id) DO UPDATE SET owner = excluded.owner, \
                     lease_until_us = excluded.lease_until_us \
                     WHERE run_leases.owner = excluded.owner OR run_leases.lease_until_us < ?5",
                )?
                .execute(params![
                    dag_id.as_str(),
                    run_id.as_str(),
                    owner,
                    until.timestamp_micros(),
                    now.timestamp_micros()
                ])
                .map_err(|e| no_such_run(e, dag_id, run_id))?;
            if taken == 0 {
                let (by, until_us): (String, i64) = tx
                    .prepare_cached(
                        "SELECT owner, lease_until_us FROM run_leases WHERE dag_id = ?1 AND run_id = ?2",
                    )?
                    .query_row(params![dag_id.as_str(), run_id.as_str()], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?;
                return Err(ApplyError::Store(StoreError::RunLeaseHeld {
                    dag_id: dag_id.clone(),
                    run_id: run_id.clone(),
                    owner: by,
                    until: time(Some(until_us)).unwrap_or_default(),
                }));
            }
        }
        Change::ReleaseRunLease {
            dag_id,
            run_id,
            owner,
        } => {
            tx.prepare_cached(
                "DELETE FROM run_leases WHERE dag_id = ?1 AND run_id = ?2 AND owner = ?3",
            )?
            .execute(params![dag_id.as_str(), run_id.as_str(), owner])?;
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

/// Why a task change wrote no row: its run is missing, or the row holds something other
/// than the change expected.
fn refused(tx: &rusqlite::Transaction<'_>, key: &TaskInstanceKey, expected: Expect) -> ApplyError {
    let found = tx
        .prepare_cached(
            "SELECT state, try_number FROM task_instances \
             WHERE dag_id = ?1 AND run_id = ?2 AND task_id = ?3 AND map_index = ?4",
        )
        .and_then(|mut st| {
            st.query_row(key_params(key), |r| {
                Ok(Expect {
                    state: task_state(&r.get::<_, String>(0)?)?,
                    try_number: r.get(1)?,
                })
            })
            .optional()
        });
    let found = match found {
        Ok(found) => found,
        Err(e) => return ApplyError::Sql(e),
    };
    if found.is_none() {
        let run: rusqlite::Result<Option<i64>> = tx
            .prepare_cached("SELECT 1 FROM dag_runs WHERE dag_id = ?1 AND run_id = ?2")
            .and_then(|mut st| {
                st.query_row(params![key.dag_id.as_str(), key.run_id.as_str()], |r| {
                    r.get(0)
                })
                .optional()
            });
        match run {
            Ok(Some(_)) => {}
            Ok(None) => {
                return ApplyError::Store(StoreError::NoSuchRun {
                    dag_id: key.dag_id.clone(),
                    run_id: key.run_id.clone(),
                });
            }
            Err(e) => return ApplyError::Sql(e),
        }
    }
    ApplyError::Store(StoreError::Conflict {
        key: key.clone(),
        expected,
        found: found.unwrap_or(Expect::FRESH),
    })
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

impl super::AssetStore for SqliteStore {
    fn asset_events(&self, uri: &str, after: i64) -> Result<Vec<AssetEvent>, StoreError> {
        let conn = self.read();
        conn.prepare_cached(
            "SELECT id, uri, dag_id, run_id, task_id, map_index, timestamp_us FROM asset_events \
             WHERE uri = ?1 AND id > ?2 ORDER BY id",
        )
        .and_then(|mut st| {
            st.query_map(params![uri, after], |r| {
                Ok(AssetEvent {
                    id: r.get(0)?,
                    uri: r.get(1)?,
                    source: TaskInstanceKey {
                        dag_id: DagId::new(r.get::<_, String>(2)?),
                        run_id: RunId::new(r.get::<_, String>(3)?),
                        task_id: TaskId::new(r.get::<_, String>(4)?),
                        map_index: map_index(r.get(5)?),
                    },
                    timestamp: time(Some(r.get(6)?)).unwrap_or_default(),
                })
            })?
            .collect()
        })
        .map_err(|e| self.err(e))
    }

    fn consumed_assets(&self, dag_id: &DagId) -> Result<Vec<(String, i64)>, StoreError> {
        let conn = self.read();
        conn.prepare_cached(
            "SELECT uri, last_event_id FROM asset_consumers WHERE dag_id = ?1 ORDER BY uri",
        )
        .and_then(|mut st| {
            st.query_map(params![dag_id.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .map_err(|e| self.err(e))
    }
}

impl RescheduleStore for SqliteStore {
    fn reschedules(
        &self,
        key: &TaskInstanceKey,
        try_number: u32,
    ) -> Result<Vec<RescheduleRecord>, StoreError> {
        let conn = self.read();
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
        let conn = self.read();
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
        let conn = self.read();
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
        let conn = self.read();
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
        let conn = self.read();
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
        let conn = self.read();
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

impl SqliteStore {
    /// Runs `f` in one write transaction (taken at once, so a concurrent writer waits for
    /// the busy timeout instead of failing mid-way); commits if it succeeds.
    fn write<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, ApplyError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let value = f(&tx).map_err(|e| match e {
            ApplyError::Sql(e) => self.err(e),
            ApplyError::Store(e) => e,
        })?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(value)
    }
}

impl QueueStore for SqliteStore {
    fn claim(
        &self,
        worker: &WorkerId,
        queue: Option<&str>,
        limit: usize,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<Claimed>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let lease_until = super::lease_end(now, lease);
        self.write(|tx| {
            let waiting: Vec<(TaskInstanceKey, i64, Option<String>)> = tx
                .prepare_cached(
                    "SELECT dag_id, run_id, task_id, map_index, priority_weight, queue FROM task_queue \
                     WHERE claimed_by IS NULL AND (?1 IS NULL OR queue = ?1) \
                     ORDER BY priority_weight DESC, queued_us, dag_id, run_id, task_id, map_index LIMIT ?2",
                )?
                .query_map(params![queue, sql_count(limit)], |r| {
                    Ok((key_row(r)?, r.get(4)?, r.get(5)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut start = tx.prepare_cached(&format!(
                "UPDATE task_instances SET state = 'running', try_number = try_number + 1, start_us = ?5, \
                 end_us = NULL, error = NULL \
                 WHERE dag_id = ?1 AND run_id = ?2 AND task_id = ?3 AND map_index = ?4 AND state = 'queued' \
                 RETURNING {TI_COLUMNS}"
            ))?;
            let mut hold = tx.prepare_cached(
                "UPDATE task_queue SET claimed_by = ?5, try_number = ?6, lease_until_us = ?7 \
                 WHERE dag_id = ?1 AND run_id = ?2 AND task_id = ?3 AND map_index = ?4",
            )?;
            let mut claimed = Vec::with_capacity(waiting.len());
            for (key, priority_weight, queue) in waiting {
                let [dag_id, run_id, task_id, map_index] = key_params(&key);
                let record = start
                    .query_row(
                        params![dag_id, run_id, task_id, map_index, now.timestamp_micros()],
                        ti_row,
                    )
                    .optional()?;
                let Some(record) = record else {
                    continue;
                };
                hold.execute(params![
                    dag_id,
                    run_id,
                    task_id,
                    map_index,
                    worker.as_str(),
                    record.try_number,
                    lease_until.timestamp_micros(),
                ])?;
                claimed.push(Claimed {
                    record: TaskInstanceRecord {
                        priority_weight,
                        queue,
                        ..record
                    },
                    worker: worker.clone(),
                    lease_until,
                });
            }
            Ok(claimed)
        })
    }

    fn heartbeat(
        &self,
        worker: &WorkerId,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<usize, StoreError> {
        let until = super::lease_end(now, lease).timestamp_micros();
        self.write(|tx| {
            Ok(tx
                .prepare_cached(
                    "UPDATE task_queue SET lease_until_us = ?2 \
                     WHERE claimed_by = ?1 AND lease_until_us >= ?3 AND EXISTS ( \
                         SELECT 1 FROM task_instances t WHERE t.dag_id = task_queue.dag_id \
                         AND t.run_id = task_queue.run_id AND t.task_id = task_queue.task_id \
                         AND t.map_index = task_queue.map_index AND t.state = 'running' \
                         AND t.try_number = task_queue.try_number)",
                )?
                .execute(params![worker.as_str(), until, now.timestamp_micros()])?)
        })
    }

    fn report(
        &self,
        claimed: &Claimed,
        outcome: &Outcome,
        now: DateTime<Utc>,
    ) -> Result<OutcomeCursor, StoreError> {
        super::check_outcome(claimed, outcome)?;
        let key = &claimed.record.key;
        let try_number = claimed.record.try_number;
        self.write(|tx| {
            let held: Option<(String, u32, Option<String>, Option<i64>)> = tx
                .prepare_cached(
                    "SELECT t.state, t.try_number, \
                     CASE WHEN q.try_number = t.try_number THEN q.claimed_by END, q.lease_until_us \
                     FROM task_instances t LEFT JOIN task_queue q ON q.dag_id = t.dag_id \
                     AND q.run_id = t.run_id AND q.task_id = t.task_id AND q.map_index = t.map_index \
                     WHERE t.dag_id = ?1 AND t.run_id = ?2 AND t.task_id = ?3 AND t.map_index = ?4",
                )?
                .query_row(key_params(key), |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()?;
            let reason = match held {
                None => Some("the instance is gone".to_string()),
                Some((state, _, _, _)) if state != "running" => {
                    Some(format!("the instance is {state} now"))
                }
                Some((_, found, _, _)) if found != try_number => {
                    Some(format!("the instance is at try {found} now"))
                }
                Some((_, _, by, _)) if by.as_deref() != Some(claimed.worker.as_str()) => {
                    Some(match by {
                        Some(other) => format!("worker `{other}` holds it"),
                        None => "no worker holds it (reported or taken back)".to_string(),
                    })
                }
                Some((_, _, _, until)) if until.is_none_or(|u| u < now.timestamp_micros()) => {
                    Some(format!(
                        "its lease ran out at {}",
                        time(until).map_or_else(|| "?".into(), |t| t.to_rfc3339())
                    ))
                }
                Some(_) => None,
            };
            if let Some(reason) = reason {
                return Err(ApplyError::Store(StoreError::ClaimLost {
                    key: key.clone(),
                    try_number,
                    worker: claimed.worker.clone(),
                    reason,
                }));
            }
            let now_us = now.timestamp_micros();
            // Neither change below is a start.
            let mut starts = Starts::default();
            for (name, value) in &outcome.xcoms {
                let change = Change::XCom {
                    key: key.clone(),
                    name: name.clone(),
                    value: value.clone(),
                };
                apply_one(tx, &change, now_us, &mut starts)?;
            }
            if !outcome.logs.is_empty() {
                let change = Change::Log {
                    key: key.clone(),
                    try_number,
                    lines: outcome.logs.clone(),
                };
                apply_one(tx, &change, now_us, &mut starts)?;
            }
            tx.prepare_cached(
                "DELETE FROM task_queue WHERE dag_id = ?1 AND run_id = ?2 AND task_id = ?3 AND map_index = ?4",
            )?
            .execute(key_params(key))?;
            tx.prepare_cached(
                "INSERT INTO task_outcomes (dag_id, run_id, task_id, map_index, try_number, worker, state, error, end_us, reschedule_us) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                key.dag_id.as_str(),
                key.run_id.as_str(),
                key.task_id.as_str(),
                key.map_index.as_i64(),
                try_number,
                claimed.worker.as_str(),
                outcome.state.as_str(),
                outcome.error,
                outcome.end.timestamp_micros(),
                micros(outcome.reschedule_at),
            ])?;
            Ok(OutcomeCursor(tx.last_insert_rowid()))
        })
    }

    fn outcomes_since(
        &self,
        cursor: OutcomeCursor,
        limit: usize,
    ) -> Result<(Vec<ReportedOutcome>, OutcomeCursor), StoreError> {
        let conn = self.read();
        let outcomes: Vec<ReportedOutcome> = conn
            .prepare_cached(
                "SELECT dag_id, run_id, task_id, map_index, id, try_number, worker, state, error, end_us, reschedule_us \
                 FROM task_outcomes WHERE id > ?1 ORDER BY id LIMIT ?2",
            )
            .and_then(|mut st| {
                st.query_map(
                    params![cursor.0, sql_count(limit)],
                    |r| {
                        Ok(ReportedOutcome {
                            key: key_row(r)?,
                            cursor: OutcomeCursor(r.get(4)?),
                            try_number: r.get(5)?,
                            worker: WorkerId::new(r.get::<_, String>(6)?),
                            state: task_state(&r.get::<_, String>(7)?)?,
                            error: r.get(8)?,
                            end: time(Some(r.get(9)?)).unwrap_or_default(),
                            reschedule_at: time(r.get(10)?),
                        })
                    },
                )?
                .collect()
            })
            .map_err(|e| self.err(e))?;
        let next = outcomes.last().map_or(cursor, |o| o.cursor);
        Ok((outcomes, next))
    }

    fn expired_claims(&self, now: DateTime<Utc>) -> Result<Vec<TaskInstanceKey>, StoreError> {
        let conn = self.read();
        conn.prepare_cached(
            "SELECT q.dag_id, q.run_id, q.task_id, q.map_index FROM task_queue q \
             JOIN task_instances t ON t.dag_id = q.dag_id AND t.run_id = q.run_id \
             AND t.task_id = q.task_id AND t.map_index = q.map_index \
             WHERE q.claimed_by IS NOT NULL AND q.lease_until_us < ?1 \
             AND t.state = 'running' AND t.try_number = q.try_number \
             ORDER BY q.lease_until_us, q.dag_id, q.run_id, q.task_id, q.map_index",
        )
        .and_then(|mut st| {
            st.query_map(params![now.timestamp_micros()], key_row)?
                .collect()
        })
        .map_err(|e| self.err(e))
    }
}

impl SlotStore for SqliteStore {
    fn acquire_slots(
        &self,
        owner: &str,
        requests: &[SlotRequest],
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<Vec<Grant>, StoreError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let now_us = now.timestamp_micros();
        let until = super::lease_end(now, ttl).timestamp_micros();
        self.write(|tx| {
            let mut tally = read_tally(tx, now_us)?;
            let mut taken = Vec::new();
            let grants: Vec<Grant> = requests
                .iter()
                .map(|request| {
                    let grant = tally.grant(&request.claim);
                    if grant == Grant::Granted {
                        super::count_taken(&mut taken, owner, &request.run_id, &request.claim);
                    }
                    grant
                })
                .collect();
            hold_usage(tx, &taken, until, now_us)?;
            #[cfg(test)]
            slot_check(tx, &tally, now_us)?;
            Ok(grants)
        })
    }

    fn release_slots(&self, release: &SlotRelease) -> Result<(), StoreError> {
        self.write(|tx| release_usage(tx, release))
    }

    fn forget_run_slots(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
        owner: Option<&str>,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.prepare_cached(
                "DELETE FROM slot_usage WHERE dag_id = ?1 AND run_id = ?2 AND (?3 IS NULL OR owner = ?3)",
            )?
            .execute(params![dag_id.as_str(), run_id.as_str(), owner])?;
            Ok(())
        })
    }

    fn renew_slots(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<usize, StoreError> {
        let until = super::lease_end(now, ttl).timestamp_micros();
        self.write(|tx| {
            // Counts that ran out go (acquisitions only skip them).
            tx.prepare_cached("DELETE FROM slot_usage WHERE lease_until_us < ?1")?
            .execute(params![now.timestamp_micros()])?;
            Ok(tx
                .prepare_cached(
                    "UPDATE slot_usage SET lease_until_us = ?2 WHERE owner = ?1 AND lease_until_us >= ?3",
                )?
                .execute(params![owner, until, now.timestamp_micros()])?)
        })
    }

    fn slots_in_use(&self, now: DateTime<Utc>) -> Result<Vec<(String, u32)>, StoreError> {
        let conn = self.read();
        conn.prepare_cached(
            "SELECT pool, SUM(slots) FROM slot_usage WHERE lease_until_us >= ?1 \
             GROUP BY pool HAVING SUM(slots) > 0 ORDER BY pool",
        )
        .and_then(|mut st| {
            st.query_map(params![now.timestamp_micros()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect()
        })
        .map_err(|e| self.err(e))
    }
}

/// The pool sizes and the live counts at `now_us`, read in one statement (holds whose
/// owner stopped renewing them no longer count; renewals delete them).
fn read_tally(tx: &rusqlite::Transaction<'_>, now_us: i64) -> rusqlite::Result<SlotTally> {
    let mut tally = SlotTally::default();
    tally
        .sizes
        .insert(DEFAULT_POOL.to_string(), DEFAULT_POOL_SLOTS);
    let mut read = tx.prepare_cached(
        "SELECT 0, name, slots FROM pools \
         UNION ALL SELECT 1, pool, SUM(slots) FROM slot_usage WHERE lease_until_us >= ?1 GROUP BY pool \
         UNION ALL SELECT 2, dag_id, SUM(tasks) FROM slot_usage WHERE lease_until_us >= ?1 GROUP BY dag_id",
    )?;
    let mut rows = read.query(params![now_us])?;
    while let Some(row) = rows.next()? {
        let (what, name, n): (u8, String, u32) = (row.get(0)?, row.get(1)?, row.get(2)?);
        match what {
            0 => tally.sizes.insert(name, n),
            1 => tally.used.insert(name, n),
            _ => tally.dag_running.insert(DagId::new(name), n),
        };
    }
    Ok(tally)
}

/// Adds `taken` to the owners' counts, held until `until_us` (a count whose lease ran out
/// by `now_us` starts again from zero).
fn hold_usage(
    tx: &rusqlite::Transaction<'_>,
    taken: &[SlotRelease],
    until_us: i64,
    now_us: i64,
) -> Result<(), ApplyError> {
    // Most batches start nothing that asks for slots: no statement to fetch.
    if taken.is_empty() {
        return Ok(());
    }
    let mut hold = tx.prepare_cached(
        "INSERT INTO slot_usage (dag_id, run_id, pool, owner, slots, tasks, lease_until_us) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT (dag_id, run_id, pool, owner) DO UPDATE SET \
         slots = excluded.slots + CASE WHEN lease_until_us < ?8 THEN 0 ELSE slots END, \
         tasks = excluded.tasks + CASE WHEN lease_until_us < ?8 THEN 0 ELSE tasks END, \
         lease_until_us = excluded.lease_until_us",
    )?;
    for t in taken {
        hold.execute(params![
            t.dag_id.as_str(),
            t.run_id.as_str(),
            t.pool,
            t.owner,
            t.slots,
            t.tasks,
            until_us,
            now_us
        ])
        .map_err(|e| no_such_run(e, &t.dag_id, &t.run_id))?;
    }
    Ok(())
}

/// The [`Change::Start`]s of one batch: their answers, and the slots they took (written
/// once, at the end of the batch, one count per run, pool and owner).
#[derive(Default)]
struct Starts {
    /// Read at the first start of the batch.
    tally: Option<SlotTally>,
    taken: Vec<SlotRelease>,
    grants: Vec<Grant>,
    until_us: i64,
    now_us: i64,
}

impl Starts {
    /// Answers `ask`; a granted start's record is applied.
    fn start(
        &mut self,
        tx: &rusqlite::Transaction<'_>,
        record: &TaskInstanceRecord,
        expect: Expect,
        ask: &SlotAsk,
        queued_us: i64,
    ) -> Result<(), ApplyError> {
        let now_us = ask.now.timestamp_micros();
        let tally = match &mut self.tally {
            Some(tally) => tally,
            None => self.tally.insert(read_tally(tx, now_us)?),
        };
        let grant = tally.grant(&ask.claim);
        if grant == Grant::Granted {
            apply_task(tx, record, expect, queued_us)?;
            super::count_taken(&mut self.taken, &ask.owner, &record.key.run_id, &ask.claim);
            self.until_us = self.until_us.max(ask.until.timestamp_micros());
            self.now_us = self.now_us.max(now_us);
        }
        self.grants.push(grant);
        Ok(())
    }

    /// Counts the slots taken; returns the answers, in order.
    fn finish(self, tx: &rusqlite::Transaction<'_>) -> Result<Vec<Grant>, ApplyError> {
        hold_usage(tx, &self.taken, self.until_us, self.now_us)?;
        #[cfg(test)]
        if let Some(tally) = &self.tally {
            slot_check(tx, tally, self.now_us)?;
        }
        Ok(self.grants)
    }
}

/// Takes `release` off its owner's count (never below zero; a count that empties is
/// deleted).
fn release_usage(tx: &rusqlite::Transaction<'_>, release: &SlotRelease) -> Result<(), ApplyError> {
    let key = params![
        release.dag_id.as_str(),
        release.run_id.as_str(),
        release.pool,
        release.owner,
        release.slots,
        release.tasks
    ];
    // A release that empties the count (a run ending) deletes it in one statement;
    // one that leaves slots or tasks counted lowers them.
    let emptied = tx
        .prepare_cached(
            "DELETE FROM slot_usage WHERE dag_id = ?1 AND run_id = ?2 AND pool = ?3 AND owner = ?4 \
             AND slots <= ?5 AND tasks <= ?6",
        )?
        .execute(key)?;
    if emptied == 0 {
        tx.prepare_cached(
            "UPDATE slot_usage SET slots = MAX(slots - ?5, 0), tasks = MAX(tasks - ?6, 0) \
             WHERE dag_id = ?1 AND run_id = ?2 AND pool = ?3 AND owner = ?4",
        )?
        .execute(key)?;
    }
    Ok(())
}

/// Tests only: inside the granting transaction, no pool holds more than its size.
#[cfg(test)]
fn slot_check(
    tx: &rusqlite::Transaction<'_>,
    tally: &SlotTally,
    now_us: i64,
) -> Result<(), ApplyError> {
    let mut st = tx.prepare_cached(
        "SELECT pool, SUM(slots) FROM slot_usage WHERE lease_until_us >= ?1 GROUP BY pool",
    )?;
    for row in st.query_map([now_us], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?))
    })? {
        let (pool, used) = row?;
        let size = tally.sizes.get(&pool).copied().unwrap_or(0);
        assert!(
            used <= size,
            "pool {pool} oversubscribed: {used} of {size} slots held"
        );
    }
    Ok(())
}

impl RunLeaseStore for SqliteStore {
    fn acquire_run_lease(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
        owner: &str,
        ttl: Duration,
        now: DateTime<Utc>,
        max_active_runs: Option<u32>,
    ) -> Result<LeaseGrant, StoreError> {
        let now_us = now.timestamp_micros();
        let until = super::lease_end(now, ttl).timestamp_micros();
        let run = params![dag_id.as_str(), run_id.as_str()];
        self.write(|tx| {
            let held: Option<(String, i64)> = tx
                .prepare_cached(
                    "SELECT owner, lease_until_us FROM run_leases WHERE dag_id = ?1 AND run_id = ?2",
                )?
                .query_row(run, |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            match held {
                Some((by, until_us)) if by != owner && until_us >= now_us => {
                    return Ok(LeaseGrant::HeldBy {
                        owner: by,
                        until: time(Some(until_us)).unwrap_or_default(),
                    });
                }
                Some((by, until_us)) if by == owner && until_us >= now_us => {}
                _ => {
                    if let Some(limit) = max_active_runs {
                        let active: u32 = tx
                            .prepare_cached(
                                "SELECT COUNT(*) FROM run_leases \
                                 WHERE dag_id = ?1 AND run_id <> ?2 AND lease_until_us >= ?3",
                            )?
                            .query_row(params![dag_id.as_str(), run_id.as_str(), now_us], |r| {
                                r.get(0)
                            })?;
                        if active >= limit {
                            return Ok(LeaseGrant::TooManyActive { active, limit });
                        }
                    }
                }
            }
            tx.prepare_cached(
                "INSERT INTO run_leases (dag_id, run_id, owner, lease_until_us) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (dag_id, run_id) DO UPDATE SET owner = excluded.owner, lease_until_us = excluded.lease_until_us",
            )?
            .execute(params![dag_id.as_str(), run_id.as_str(), owner, until])
            .map_err(|e| no_such_run(e, dag_id, run_id))?;
            Ok(LeaseGrant::Granted)
        })
    }

    fn renew_run_lease(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
        owner: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let until = super::lease_end(now, ttl).timestamp_micros();
        self.write(|tx| {
            Ok(tx
                .prepare_cached(
                    "UPDATE run_leases SET lease_until_us = ?4 \
                     WHERE dag_id = ?1 AND run_id = ?2 AND owner = ?3 AND lease_until_us >= ?5",
                )?
                .execute(params![
                    dag_id.as_str(),
                    run_id.as_str(),
                    owner,
                    until,
                    now.timestamp_micros()
                ])?
                > 0)
        })
    }

    fn release_run_lease(
        &self,
        dag_id: &DagId,
        run_id: &RunId,
        owner: &str,
    ) -> Result<bool, StoreError> {
        self.write(|tx| {
            Ok(tx
                .prepare_cached(
                    "DELETE FROM run_leases WHERE dag_id = ?1 AND run_id = ?2 AND owner = ?3",
                )?
                .execute(params![dag_id.as_str(), run_id.as_str(), owner])?
                > 0)
        })
    }
}

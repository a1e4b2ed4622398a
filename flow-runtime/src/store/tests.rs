//! One suite of behaviour every store must show, run against each implementation, plus
//! the SQLite file's own checks (foreign files, versions, locks, full disks).

use std::path::Path;
use std::time::Duration;

use chrono::{TimeZone, Utc};

use super::sqlite::OpenMode;
use super::*;
use crate::ids::MapIndex;
use crate::xcom::{ObjectRef, XComBlob};

fn run_record(run: &str, day: u32) -> DagRunRecord {
    DagRunRecord {
        dag_id: "d".into(),
        run_id: run.into(),
        run_type: RunType::Manual,
        logical_date: Utc.with_ymd_and_hms(2025, 1, day, 0, 0, 0).unwrap(),
        state: RunState::Queued,
        start: None,
        end: None,
        fingerprint: "f".into(),
        data_interval_start: Utc.with_ymd_and_hms(2025, 1, day, 0, 0, 0).unwrap(),
        data_interval_end: Utc.with_ymd_and_hms(2025, 1, day + 1, 0, 0, 0).unwrap(),
        conf: serde_json::json!({"threshold": 0.8}),
    }
}

fn key(run: &str, task: &str) -> TaskInstanceKey {
    TaskInstanceKey {
        dag_id: "d".into(),
        run_id: run.into(),
        task_id: task.into(),
        map_index: MapIndex::UNMAPPED,
    }
}

fn ti(run: &str, task: &str, state: TaskState, try_number: u32) -> Change {
    Change::Task(TaskInstanceRecord {
        key: key(run, task),
        state,
        try_number,
        max_tries: 3,
        start: Some(Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, try_number).unwrap()),
        end: None,
        error: (state == TaskState::UpForRetry).then(|| format!("try {try_number} failed")),
    })
}

fn xcom(run: &str, task: &str, name: &str, value: u64) -> Change {
    Change::XCom {
        key: key(run, task),
        name: name.into(),
        value: XComBlob::encode(&value).unwrap().into(),
    }
}

fn line(message: &str) -> LogLine {
    LogLine {
        at: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(),
        level: "INFO".into(),
        message: message.into(),
    }
}

fn conformance(store: &dyn Store) {
    store.create_run(&run_record("r1", 1)).unwrap();
    assert!(matches!(
        store.create_run(&run_record("r1", 1)),
        Err(StoreError::RunExists { .. })
    ));
    store.create_run(&run_record("r2", 2)).unwrap();

    // Tries, states and XCom.
    store
        .apply(&[
            ti("r1", "t", TaskState::Queued, 0),
            ti("r1", "t", TaskState::Running, 1),
            Change::Log {
                key: key("r1", "t"),
                try_number: 1,
                lines: vec![line("a"), line("b")],
            },
        ])
        .unwrap();
    store
        .apply(&[
            ti("r1", "t", TaskState::UpForRetry, 1),
            ti("r1", "t", TaskState::Queued, 1),
        ])
        .unwrap();
    store
        .apply(&[
            ti("r1", "t", TaskState::Running, 2),
            Change::Log {
                key: key("r1", "t"),
                try_number: 1,
                lines: vec![line("c")],
            },
            Change::Log {
                key: key("r1", "t"),
                try_number: 2,
                lines: vec![line("second")],
            },
        ])
        .unwrap();
    store
        .apply(&[
            ti("r1", "t", TaskState::Success, 2),
            xcom("r1", "t", "return_value", 7),
            xcom("r1", "t", "rows", 9),
        ])
        .unwrap();
    let instances = store.task_instances(&"d".into(), &"r1".into()).unwrap();
    assert_eq!(instances.len(), 1);
    assert_eq!(
        (
            instances[0].state,
            instances[0].try_number,
            instances[0].max_tries
        ),
        (TaskState::Success, 2, 3)
    );
    let tries = store.tries(&key("r1", "t")).unwrap();
    let summary: Vec<_> = tries
        .iter()
        .map(|t| (t.try_number, t.state, t.error.clone()))
        .collect();
    assert_eq!(
        summary,
        [
            (1, TaskState::UpForRetry, Some("try 1 failed".to_string())),
            (2, TaskState::Success, None)
        ]
    );
    let get = |run: &str, name: &str| {
        store
            .get_xcom(&key(run, "t"), name)
            .unwrap()
            .map(|b| b.as_inline().unwrap().decode::<u64>().unwrap())
    };
    assert_eq!(get("r1", "return_value"), Some(7));
    assert_eq!(get("r1", "rows"), Some(9));
    assert_eq!(get("r1", "missing"), None);
    let blob = store.get_xcom(&key("r1", "t"), "rows").unwrap().unwrap();
    assert_eq!(blob.type_name(), "u64");

    // Logs keep their order within a try, across batches.
    let logs: Vec<_> = store
        .logs(&key("r1", "t"), None)
        .unwrap()
        .into_iter()
        .map(|(t, l)| (t, l.message))
        .collect();
    assert_eq!(
        logs,
        [
            (1, "a".into()),
            (1, "b".into()),
            (1, "c".into()),
            (2, "second".into())
        ]
    );
    assert_eq!(store.logs(&key("r1", "t"), Some(2)).unwrap().len(), 1);

    // The newest run's value wins.
    store
        .apply(&[
            ti("r2", "t", TaskState::Queued, 0),
            xcom("r2", "t", "return_value", 8),
        ])
        .unwrap();
    let (run, blob) = store
        .latest_xcom(&"d".into(), &"t".into(), "return_value")
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            run.as_str(),
            blob.as_inline().unwrap().decode::<u64>().unwrap()
        ),
        ("r2", 8)
    );

    // A value kept in the object store is recorded as its reference, in place of an
    // inline value (and back).
    let object = StoredXCom::Object(ObjectRef::new(
        "d/r2/xcom/t/-1/return_value",
        "alloc::vec::Vec<u8>",
    ));
    let record = |value: StoredXCom| Change::XCom {
        key: key("r2", "t"),
        name: "return_value".into(),
        value,
    };
    store.apply(&[record(object.clone())]).unwrap();
    assert_eq!(
        store.get_xcom(&key("r2", "t"), "return_value").unwrap(),
        Some(object.clone())
    );
    assert_eq!(
        store
            .latest_xcom(&"d".into(), &"t".into(), "return_value")
            .unwrap(),
        Some(("r2".into(), object))
    );
    store.apply(&[xcom("r2", "t", "return_value", 8)]).unwrap();
    assert_eq!(
        store
            .get_xcom(&key("r2", "t"), "return_value")
            .unwrap()
            .and_then(|x| x.as_inline().cloned()),
        Some(XComBlob::encode(&8_u64).unwrap())
    );

    // Deleting a run removes everything recorded about it, and nothing else.
    store.create_run(&run_record("r3", 3)).unwrap();
    store
        .apply(&[
            ti("r3", "t", TaskState::Queued, 0),
            ti("r3", "t", TaskState::Running, 1),
            Change::Log {
                key: key("r3", "t"),
                try_number: 1,
                lines: vec![line("doomed")],
            },
        ])
        .unwrap();
    store
        .apply(&[
            ti("r3", "t", TaskState::UpForRetry, 1),
            xcom("r3", "t", "rows", 3),
        ])
        .unwrap();
    store.delete_run(&"d".into(), &"r3".into()).unwrap();
    assert_eq!(store.run(&"d".into(), &"r3".into()).unwrap(), None);
    assert!(
        store
            .task_instances(&"d".into(), &"r3".into())
            .unwrap()
            .is_empty()
    );
    assert!(store.tries(&key("r3", "t")).unwrap().is_empty());
    assert!(store.logs(&key("r3", "t"), None).unwrap().is_empty());
    assert_eq!(store.get_xcom(&key("r3", "t"), "rows").unwrap(), None);
    assert!(matches!(
        store.delete_run(&"d".into(), &"r3".into()),
        Err(StoreError::NoSuchRun { .. })
    ));
    assert_eq!(get("r1", "rows"), Some(9), "other runs keep their records");
    // The id can be used again, from scratch.
    store.create_run(&run_record("r3", 3)).unwrap();
    store.apply(&[ti("r3", "t", TaskState::Queued, 0)]).unwrap();
    assert_eq!(
        store
            .task_instances(&"d".into(), &"r3".into())
            .unwrap()
            .len(),
        1
    );
    store.delete_run(&"d".into(), &"r3".into()).unwrap();

    // Runs: newest first, state changes.
    store
        .apply(&[Change::Run {
            dag_id: "d".into(),
            run_id: "r1".into(),
            state: RunState::Success,
            start: Some(Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap()),
            end: Some(Utc.with_ymd_and_hms(2025, 1, 1, 0, 1, 0).unwrap()),
        }])
        .unwrap();
    let runs: Vec<_> = store
        .runs(Some(&"d".into()))
        .unwrap()
        .into_iter()
        .map(|r| (r.run_id.to_string(), r.state))
        .collect();
    assert_eq!(
        runs,
        [
            ("r2".to_string(), RunState::Queued),
            ("r1".to_string(), RunState::Success)
        ]
    );
    assert!(store.runs(Some(&"other".into())).unwrap().is_empty());
    let r1 = store.run(&"d".into(), &"r1".into()).unwrap().unwrap();
    assert_eq!(r1.fingerprint, "f");
    assert_eq!(r1.conf, serde_json::json!({"threshold": 0.8}));
    assert_eq!(
        r1.data_interval_end - r1.data_interval_start,
        chrono::Duration::days(1)
    );
    let unfinished: Vec<_> = store
        .unfinished_runs()
        .unwrap()
        .into_iter()
        .map(|r| r.run_id.to_string())
        .collect();
    assert_eq!(unfinished, ["r2"]);
    let mut scheduled = run_record("s3", 3);
    scheduled.run_type = RunType::Scheduled;
    store.create_run(&scheduled).unwrap();
    assert_eq!(
        store
            .latest_run(&"d".into(), RunType::Scheduled)
            .unwrap()
            .unwrap()
            .run_id
            .as_str(),
        "s3"
    );
    assert_eq!(
        store
            .latest_run(&"d".into(), RunType::Manual)
            .unwrap()
            .unwrap()
            .run_id
            .as_str(),
        "r2"
    );
    assert!(
        store
            .latest_run(&"d".into(), RunType::Backfill)
            .unwrap()
            .is_none()
    );

    // A batch is all or nothing.
    let bad = store.apply(&[
        ti("r2", "u", TaskState::Queued, 0),
        Change::Run {
            dag_id: "d".into(),
            run_id: "nope".into(),
            state: RunState::Running,
            start: None,
            end: None,
        },
    ]);
    assert!(matches!(bad, Err(StoreError::NoSuchRun { .. })), "{bad:?}");
    assert_eq!(
        store
            .task_instances(&"d".into(), &"r2".into())
            .unwrap()
            .len(),
        1
    );
    assert!(matches!(
        store.apply(&[xcom("nope", "t", "x", 1)]),
        Err(StoreError::NoSuchRun { .. })
    ));

    // Clearing keeps the history, resets the state and drops the XComs.
    store
        .clear(&"d".into(), &"r1".into(), &["t".into()])
        .unwrap();
    let cleared = &store.task_instances(&"d".into(), &"r1".into()).unwrap()[0];
    assert_eq!((cleared.state, cleared.try_number), (TaskState::None, 2));
    assert_eq!(store.tries(&key("r1", "t")).unwrap().len(), 2);
    assert_eq!(get("r1", "return_value"), None);
    assert_eq!(
        store.run(&"d".into(), &"r1".into()).unwrap().unwrap().state,
        RunState::Queued
    );
    assert!(matches!(
        store.clear(&"d".into(), &"zz".into(), &[]),
        Err(StoreError::NoSuchRun { .. })
    ));

    // Sensors in reschedule mode: every poke of a try is kept in order, the try number
    // stays, and clearing drops them.
    let poke = |second: u32| RescheduleRecord {
        key: key("r2", "s"),
        try_number: 1,
        start: Utc.with_ymd_and_hms(2025, 1, 2, 0, 0, second).unwrap(),
        end: Utc.with_ymd_and_hms(2025, 1, 2, 0, 0, second + 1).unwrap(),
        reschedule_at: Utc.with_ymd_and_hms(2025, 1, 2, 0, 1, second).unwrap(),
    };
    store
        .apply(&[
            ti("r2", "s", TaskState::Queued, 0),
            ti("r2", "s", TaskState::Running, 1),
        ])
        .unwrap();
    store
        .apply(&[
            ti("r2", "s", TaskState::UpForReschedule, 1),
            Change::Reschedule(poke(0)),
        ])
        .unwrap();
    store
        .apply(&[
            ti("r2", "s", TaskState::Queued, 1),
            ti("r2", "s", TaskState::Running, 1),
        ])
        .unwrap();
    store
        .apply(&[
            ti("r2", "s", TaskState::UpForReschedule, 1),
            Change::Reschedule(poke(30)),
        ])
        .unwrap();
    assert_eq!(
        store.reschedules(&key("r2", "s"), 1).unwrap(),
        [poke(0), poke(30)]
    );
    assert!(store.reschedules(&key("r2", "s"), 2).unwrap().is_empty());
    let sensor = store.tries(&key("r2", "s")).unwrap();
    assert_eq!(
        sensor
            .iter()
            .map(|t| (t.try_number, t.state))
            .collect::<Vec<_>>(),
        [(1, TaskState::UpForReschedule)]
    );
    assert!(matches!(
        store.apply(&[Change::Reschedule(RescheduleRecord {
            key: key("nope", "s"),
            ..poke(0)
        })]),
        Err(StoreError::NoSuchRun { .. })
    ));
    store
        .clear(&"d".into(), &"r2".into(), &["s".into()])
        .unwrap();
    assert!(store.reschedules(&key("r2", "s"), 1).unwrap().is_empty());

    // DAG records keep the paused flag across shape updates.
    assert!(store.dag(&"d".into()).unwrap().is_none());
    store.record_dag(&"d".into(), "f1").unwrap();
    store.set_paused(&"d".into(), true).unwrap();
    store.record_dag(&"d".into(), "f2").unwrap();
    let dag = store.dag(&"d".into()).unwrap().unwrap();
    assert_eq!((dag.paused, dag.fingerprint.as_str()), (true, "f2"));
    assert!(store.set_paused(&"unknown".into(), true).is_err());

    // Pools.
    let gpu = PoolRecord {
        name: "gpu".into(),
        slots: 2,
        description: "two cards".into(),
    };
    store.set_pool(&gpu).unwrap();
    store
        .set_pool(&PoolRecord {
            slots: 4,
            ..gpu.clone()
        })
        .unwrap();
    store
        .set_pool(&PoolRecord {
            name: "api".into(),
            slots: 1,
            description: String::new(),
        })
        .unwrap();
    let pools: Vec<_> = store
        .pools()
        .unwrap()
        .into_iter()
        .map(|p| (p.name, p.slots))
        .collect();
    assert_eq!(pools, [("api".to_string(), 1), ("gpu".to_string(), 4)]);
    assert!(store.delete_pool("api").unwrap());
    assert!(!store.delete_pool("api").unwrap());

    // Mapped instances: one row each; a removed one leaves with its XCom, the others stay.
    let mapped = |i: u32| TaskInstanceKey {
        map_index: MapIndex::mapped(i),
        ..key("r2", "m")
    };
    let changes: Vec<Change> = (0..3)
        .flat_map(|i| {
            [
                Change::Task(TaskInstanceRecord {
                    key: mapped(i),
                    state: TaskState::Success,
                    try_number: 1,
                    max_tries: 1,
                    start: None,
                    end: None,
                    error: None,
                }),
                Change::XCom {
                    key: mapped(i),
                    name: "return_value".into(),
                    value: XComBlob::encode(&u64::from(i)).unwrap().into(),
                },
            ]
        })
        .collect();
    store.apply(&changes).unwrap();
    store.apply(&[Change::RemoveInstance(mapped(2))]).unwrap();
    let mut left: Vec<i64> = store
        .task_instances(&"d".into(), &"r2".into())
        .unwrap()
        .into_iter()
        .filter(|ti| ti.key.task_id.as_str() == "m")
        .map(|ti| ti.key.map_index.as_i64())
        .collect();
    left.sort_unstable();
    assert_eq!(left, [0, 1]);
    assert!(
        store
            .get_xcom(&mapped(2), "return_value")
            .unwrap()
            .is_none()
    );
    let kept = store.get_xcom(&mapped(1), "return_value").unwrap().unwrap();
    assert_eq!(kept.as_inline().unwrap().decode::<u64>().unwrap(), 1);
}

/// The XComs of one instance, listed: only that instance's (not another run's, task's or
/// map index's), in name order, inline values and object references alike.
fn xcom_listing(store: &dyn Store) {
    store.create_run(&run_record("r1", 1)).unwrap();
    store.create_run(&run_record("r2", 2)).unwrap();
    let mapped = TaskInstanceKey {
        map_index: MapIndex::mapped(0),
        ..key("r1", "t")
    };
    store
        .apply(&[
            xcom("r1", "t", "rows", 9),
            xcom("r1", "t", "return_value", 7),
            Change::XCom {
                key: key("r1", "t"),
                name: "big".into(),
                value: StoredXCom::Object(ObjectRef::new("d/r1/xcom/t/-1/big", "Vec<u8>")),
            },
            xcom("r2", "t", "return_value", 8),
            xcom("r1", "other", "return_value", 1),
            Change::XCom {
                key: mapped.clone(),
                name: "return_value".into(),
                value: XComBlob::encode(&3u64).unwrap().into(),
            },
        ])
        .unwrap();
    let listed = store.xcoms(&key("r1", "t")).unwrap();
    let names: Vec<&str> = listed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["big", "return_value", "rows"]);
    assert_eq!(listed[0].1.type_name(), "Vec<u8>");
    assert!(listed[0].1.as_inline().is_none());
    assert_eq!(listed[2].1.as_inline().unwrap().decode::<u64>().unwrap(), 9);
    assert_eq!(store.xcoms(&mapped).unwrap().len(), 1);
    assert!(store.xcoms(&key("r1", "nothing")).unwrap().is_empty());
}

#[test]
fn memory_store_lists_the_xcoms_of_an_instance() {
    xcom_listing(&MemoryStore::new());
}

#[test]
fn sqlite_store_lists_the_xcoms_of_an_instance() {
    let dir = tempfile::tempdir().unwrap();
    xcom_listing(&SqliteStore::open(&dir.path().join("flow.db")).unwrap());
}

#[test]
fn memory_store_conforms() {
    conformance(&MemoryStore::new());
}

#[test]
fn sqlite_store_conforms_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("home/flow.db");
    conformance(&SqliteStore::open(&path).unwrap());
    let reopened = SqliteStore::open(&path).unwrap();
    assert_eq!(reopened.runs(None).unwrap().len(), 3);
    assert_eq!(reopened.schema_version().unwrap(), SCHEMA_VERSION);
    let mode: String = reopened.with_connection(|c| {
        c.query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap()
    });
    assert_eq!(mode, "wal");
}

fn unchanged_after(path: &Path, open: impl FnOnce() -> StoreError) -> StoreError {
    let before = std::fs::read(path).unwrap();
    let error = open();
    assert_eq!(
        std::fs::read(path).unwrap(),
        before,
        "the file was modified"
    );
    error
}

#[test]
fn foreign_files_are_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.db");
    std::fs::write(
        &text,
        "not a database at all, just some text that is long enough to have a header",
    )
    .unwrap();
    let err = unchanged_after(&text, || SqliteStore::open(&text).err().unwrap());
    assert!(matches!(err, StoreError::NotFlowDatabase(_)), "{err:?}");
    assert!(err.to_string().contains("is not a flow database"));

    let other = dir.path().join("other.db");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE users (id INTEGER)")
        .unwrap();
    let err = unchanged_after(&other, || SqliteStore::open(&other).err().unwrap());
    assert!(matches!(err, StoreError::NotFlowDatabase(_)), "{err:?}");
}

#[test]
fn a_newer_schema_is_refused_and_an_older_one_migrates() {
    let dir = tempfile::tempdir().unwrap();
    let newer = dir.path().join("newer.db");
    drop(SqliteStore::open(&newer).unwrap());
    rusqlite::Connection::open(&newer)
        .unwrap()
        .execute(
            "UPDATE flow_meta SET value = '99' WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
    let err = unchanged_after(&newer, || SqliteStore::open(&newer).err().unwrap());
    assert!(
        err.to_string().contains(&format!(
            "schema version 99, newer than this binary's {SCHEMA_VERSION}"
        )),
        "{err}"
    );

    let older = dir.path().join("older.db");
    SqliteStore::create_at_version(&older, 1).unwrap();
    let err = unchanged_after(&older, || SqliteStore::open(&older).err().unwrap());
    assert!(
        matches!(err, StoreError::OlderSchema { found: 1, .. })
            && err.to_string().ends_with(&format!(
                "has schema version 1; this binary needs {SCHEMA_VERSION}"
            )),
        "{err}"
    );
    let store =
        SqliteStore::open_with(&older, OpenMode::ForMigration, Duration::from_secs(1)).unwrap();
    assert_eq!(store.migrate().unwrap(), (1, SCHEMA_VERSION));
    drop(store);
    conformance(&SqliteStore::open(&older).unwrap());
}

#[test]
fn a_locked_database_is_reported_after_the_busy_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.db");
    drop(SqliteStore::open(&path).unwrap());
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder
        .execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;")
        .unwrap();
    let err = SqliteStore::open_with(&path, OpenMode::Current, Duration::from_millis(50))
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::Locked(_)), "{err:?}");
    assert!(err.to_string().contains("locked by another process"));
}

#[test]
fn a_full_disk_rolls_back_the_batch_and_keeps_earlier_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("flow.db")).unwrap();
    store.create_run(&run_record("r1", 1)).unwrap();
    store
        .apply(&[
            ti("r1", "t", TaskState::Queued, 0),
            xcom("r1", "t", "small", 1),
        ])
        .unwrap();
    let pages: i64 =
        store.with_connection(|c| c.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap());
    store.with_connection(|c| c.pragma_update(None, "max_page_count", pages + 2).unwrap());
    let big = Change::XCom {
        key: key("r1", "t"),
        name: "big".into(),
        value: XComBlob::encode(&vec![7_u8; 1 << 20]).unwrap().into(),
    };
    let err = store
        .apply(&[ti("r1", "t", TaskState::Running, 1), big])
        .unwrap_err();
    assert!(matches!(err, StoreError::DiskFull(_)), "{err:?}");
    assert!(err.to_string().contains("is full"));
    let kept = &store.task_instances(&"d".into(), &"r1".into()).unwrap()[0];
    assert_eq!(
        kept.state,
        TaskState::Queued,
        "the failed batch left nothing behind"
    );
    assert!(store.get_xcom(&key("r1", "t"), "small").unwrap().is_some());
}

#[test]
fn an_unwritable_home_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    // The home's parent is a file: the directory cannot be created (as root too).
    let err = SqliteStore::open(&file.join("home/flow.db")).err().unwrap();
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("check the permissions of FLOW_HOME")
    );
}

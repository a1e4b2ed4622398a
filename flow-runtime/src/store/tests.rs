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

const FRESH: Expect = Expect::FRESH;

fn was(state: TaskState, try_number: u32) -> Expect {
    Expect { state, try_number }
}

fn record(run: &str, task: &str, state: TaskState, try_number: u32) -> TaskInstanceRecord {
    TaskInstanceRecord {
        key: key(run, task),
        state,
        try_number,
        max_tries: 3,
        start: Some(Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, try_number).unwrap()),
        end: None,
        error: (state == TaskState::UpForRetry).then(|| format!("try {try_number} failed")),
        priority_weight: 0,
        queue: None,
    }
}

/// The change to `state` and `try_number`, expecting the store to hold `expect`.
fn ti(run: &str, task: &str, state: TaskState, try_number: u32, expect: Expect) -> Change {
    Change::Task {
        record: record(run, task, state, try_number),
        expect,
    }
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
    // A run created by the batch holding its first decisions; one that exists refuses
    // the whole batch.
    let created = store
        .apply(&[
            Change::CreateRun(run_record("r3", 3)),
            ti("r3", "t", TaskState::Running, 1, FRESH),
        ])
        .unwrap();
    assert!(created.is_empty());
    assert_eq!(
        store
            .task_instances(&"d".into(), &"r3".into())
            .unwrap()
            .len(),
        1
    );
    let err = store
        .apply(&[
            Change::CreateRun(run_record("r3", 3)),
            ti("r3", "u", TaskState::Running, 1, FRESH),
        ])
        .unwrap_err();
    assert!(matches!(err, StoreError::RunExists { .. }), "{err:?}");
    assert_eq!(
        store
            .task_instances(&"d".into(), &"r3".into())
            .unwrap()
            .len(),
        1
    );
    store.delete_run(&"d".into(), &"r3".into()).unwrap();

    // Tries, states and XCom.
    store
        .apply(&[
            ti("r1", "t", TaskState::Queued, 0, FRESH),
            ti("r1", "t", TaskState::Running, 1, was(TaskState::Queued, 0)),
            Change::Log {
                key: key("r1", "t"),
                try_number: 1,
                lines: vec![line("a"), line("b")],
            },
        ])
        .unwrap();
    store
        .apply(&[
            ti(
                "r1",
                "t",
                TaskState::UpForRetry,
                1,
                was(TaskState::Running, 1),
            ),
            ti(
                "r1",
                "t",
                TaskState::Queued,
                1,
                was(TaskState::UpForRetry, 1),
            ),
        ])
        .unwrap();
    store
        .apply(&[
            ti("r1", "t", TaskState::Running, 2, was(TaskState::Queued, 1)),
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
            ti("r1", "t", TaskState::Success, 2, was(TaskState::Running, 2)),
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
            (1, TaskState::Failed, Some("try 1 failed".to_string())),
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
            ti("r2", "t", TaskState::Queued, 0, FRESH),
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
            ti("r3", "t", TaskState::Queued, 0, FRESH),
            ti("r3", "t", TaskState::Running, 1, was(TaskState::Queued, 0)),
            Change::Log {
                key: key("r3", "t"),
                try_number: 1,
                lines: vec![line("doomed")],
            },
        ])
        .unwrap();
    store
        .apply(&[
            ti(
                "r3",
                "t",
                TaskState::UpForRetry,
                1,
                was(TaskState::Running, 1),
            ),
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
    store
        .apply(&[ti("r3", "t", TaskState::Queued, 0, FRESH)])
        .unwrap();
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
    // The run before a logical date, of any type, strictly earlier.
    let previous = |date| {
        store
            .previous_run(&"d".into(), date)
            .unwrap()
            .map(|r| r.run_id.to_string())
    };
    assert_eq!(previous(scheduled.logical_date).as_deref(), Some("r2"));
    assert_eq!(
        previous(scheduled.logical_date + chrono::Duration::days(9)).as_deref(),
        Some("s3")
    );
    assert_eq!(previous(r1.logical_date), None);
    assert!(
        store
            .previous_run(&"other".into(), scheduled.logical_date)
            .unwrap()
            .is_none()
    );

    // A batch is all or nothing.
    let bad = store.apply(&[
        ti("r2", "u", TaskState::Queued, 0, FRESH),
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
            ti("r2", "s", TaskState::Queued, 0, FRESH),
            ti("r2", "s", TaskState::Running, 1, was(TaskState::Queued, 0)),
        ])
        .unwrap();
    store
        .apply(&[
            ti(
                "r2",
                "s",
                TaskState::UpForReschedule,
                1,
                was(TaskState::Running, 1),
            ),
            Change::Reschedule(poke(0)),
        ])
        .unwrap();
    store
        .apply(&[
            ti(
                "r2",
                "s",
                TaskState::Queued,
                1,
                was(TaskState::UpForReschedule, 1),
            ),
            ti("r2", "s", TaskState::Running, 1, was(TaskState::Queued, 1)),
        ])
        .unwrap();
    store
        .apply(&[
            ti(
                "r2",
                "s",
                TaskState::UpForReschedule,
                1,
                was(TaskState::Running, 1),
            ),
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
                Change::Task {
                    record: TaskInstanceRecord {
                        key: mapped(i),
                        state: TaskState::Success,
                        try_number: 1,
                        max_tries: 1,
                        start: None,
                        end: None,
                        error: None,
                        priority_weight: 0,
                        queue: None,
                    },
                    expect: FRESH,
                },
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

/// Every task change names what it expects; a stale or illegal one fails its whole batch.
fn expectations(store: &dyn Store) {
    store.create_run(&run_record("e1", 1)).unwrap();
    let instances = || {
        let mut list: Vec<_> = store
            .task_instances(&"d".into(), &"e1".into())
            .unwrap()
            .into_iter()
            .map(|ti| (ti.key.task_id.to_string(), ti.state, ti.try_number))
            .collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list
    };
    store
        .apply(&[ti("e1", "t", TaskState::Queued, 0, FRESH)])
        .unwrap();

    // Another writer queued it first: a change expecting the missing row is refused.
    let err = store
        .apply(&[ti("e1", "t", TaskState::Running, 1, FRESH)])
        .unwrap_err();
    match err {
        StoreError::Conflict {
            key: k,
            expected,
            found,
        } => {
            assert_eq!(k, key("e1", "t"));
            assert_eq!(expected, FRESH);
            assert_eq!(found, was(TaskState::Queued, 0));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // The try number is part of the expectation.
    assert!(matches!(
        store.apply(&[ti("e1", "t", TaskState::Running, 2, was(TaskState::Queued, 1))]),
        Err(StoreError::Conflict { found, .. }) if found == was(TaskState::Queued, 0)
    ));
    // A missing row is `none`, try 0.
    let err = store
        .apply(&[ti(
            "e1",
            "gone",
            TaskState::Running,
            1,
            was(TaskState::Queued, 0),
        )])
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { found, .. } if found == FRESH),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("expected queued (try 0), found none (try 0)"),
        "{err}"
    );
    assert_eq!(instances(), [("t".to_string(), TaskState::Queued, 0)]);

    // A refused change fails the whole batch.
    let err = store
        .apply(&[
            ti("e1", "u", TaskState::Queued, 0, FRESH),
            xcom("e1", "u", "x", 1),
            ti("e1", "t", TaskState::Running, 1, FRESH),
        ])
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    assert_eq!(instances(), [("t".to_string(), TaskState::Queued, 0)]);
    assert_eq!(store.get_xcom(&key("e1", "u"), "x").unwrap(), None);

    // Within a batch, a second change of an instance expects what the first one wrote.
    assert!(matches!(
        store.apply(&[
            ti("e1", "t", TaskState::Running, 1, was(TaskState::Queued, 0)),
            ti("e1", "t", TaskState::Success, 1, was(TaskState::Queued, 0)),
        ]),
        Err(StoreError::Conflict { found, .. }) if found == was(TaskState::Running, 1)
    ));
    assert_eq!(instances(), [("t".to_string(), TaskState::Queued, 0)]);
    store
        .apply(&[
            ti("e1", "t", TaskState::Running, 1, was(TaskState::Queued, 0)),
            ti("e1", "t", TaskState::Success, 1, was(TaskState::Running, 1)),
        ])
        .unwrap();
    assert_eq!(instances(), [("t".to_string(), TaskState::Success, 1)]);

    // The lifecycle's rules hold for the expected state, even when it matches.
    let err = store
        .apply(&[ti(
            "e1",
            "t",
            TaskState::Running,
            2,
            was(TaskState::Success, 1),
        )])
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::IllegalTransition {
                from: TaskState::Success,
                to: TaskState::Running,
                ..
            }
        ),
        "{err:?}"
    );
    store
        .apply(&[ti("e1", "v", TaskState::Skipped, 0, FRESH)])
        .unwrap();
    assert!(matches!(
        store.apply(&[ti(
            "e1",
            "v",
            TaskState::Queued,
            0,
            was(TaskState::Skipped, 0)
        )]),
        Err(StoreError::IllegalTransition { .. })
    ));
    // Writing the same state again is allowed (a record's times or error change).
    store
        .apply(&[ti(
            "e1",
            "t",
            TaskState::Success,
            1,
            was(TaskState::Success, 1),
        )])
        .unwrap();

    // Clearing keeps the try count: the cleared row is not fresh.
    store
        .clear(&"d".into(), &"e1".into(), &["t".into()])
        .unwrap();
    assert!(matches!(
        store.apply(&[ti("e1", "t", TaskState::Queued, 1, FRESH)]),
        Err(StoreError::Conflict { found, .. }) if found == was(TaskState::None, 1)
    ));
    store
        .apply(&[ti("e1", "t", TaskState::Queued, 1, was(TaskState::None, 1))])
        .unwrap();

    // A removed instance is missing again: the next change of it expects a fresh row.
    let m = TaskInstanceKey {
        map_index: MapIndex::mapped(0),
        ..key("e1", "m")
    };
    let fresh_m = |state, try_number, expect| Change::Task {
        record: TaskInstanceRecord {
            key: m.clone(),
            ..record("e1", "m", state, try_number)
        },
        expect,
    };
    store
        .apply(&[fresh_m(TaskState::Queued, 0, FRESH)])
        .unwrap();
    store
        .apply(&[
            Change::RemoveInstance(m.clone()),
            fresh_m(TaskState::Queued, 0, FRESH),
        ])
        .unwrap();
    assert!(matches!(
        store.apply(&[
            Change::RemoveInstance(m.clone()),
            fresh_m(TaskState::Running, 1, was(TaskState::Queued, 0)),
        ]),
        Err(StoreError::Conflict { found, .. }) if found == FRESH
    ));
    // An unknown run is still an unknown run, whatever the change expects.
    assert!(matches!(
        store.apply(&[ti(
            "nope",
            "t",
            TaskState::Running,
            1,
            was(TaskState::Queued, 0)
        )]),
        Err(StoreError::NoSuchRun { .. })
    ));
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

/// Runs counted per DAG and state, as the metrics read them.
fn run_counting(store: &dyn Store) {
    assert!(store.run_counts().unwrap().is_empty());
    let mut running = run_record("r2", 2);
    running.state = RunState::Running;
    let mut other = run_record("r1", 1);
    other.dag_id = "c".into();
    for run in [run_record("r1", 1), running, run_record("r3", 3), other] {
        store.create_run(&run).unwrap();
    }
    let counts = store.run_counts().unwrap();
    assert_eq!(
        counts,
        [
            (DagId::new("c"), RunState::Queued, 1),
            (DagId::new("d"), RunState::Queued, 2),
            (DagId::new("d"), RunState::Running, 1),
        ]
    );
}

#[test]
fn memory_store_counts_runs_by_state() {
    run_counting(&MemoryStore::new());
}

#[test]
fn sqlite_store_counts_runs_by_state() {
    let dir = tempfile::tempdir().unwrap();
    run_counting(&SqliteStore::open(&dir.path().join("flow.db")).unwrap());
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
    expectations(&MemoryStore::new());
}

#[test]
fn sqlite_store_refuses_stale_changes() {
    let dir = tempfile::tempdir().unwrap();
    expectations(&SqliteStore::open(&dir.path().join("flow.db")).unwrap());
}

#[test]
fn two_sqlite_writers_cannot_both_move_one_instance() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.db");
    let first = SqliteStore::open(&path).unwrap();
    let second = SqliteStore::open(&path).unwrap();
    first.create_run(&run_record("r1", 1)).unwrap();
    first
        .apply(&[ti("r1", "t", TaskState::Queued, 0, FRESH)])
        .unwrap();
    // Both saw it queued; only one may start its first try.
    let start = || ti("r1", "t", TaskState::Running, 1, was(TaskState::Queued, 0));
    second.apply(&[start()]).unwrap();
    let err = first.apply(&[start()]).unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { found, .. } if found == was(TaskState::Running, 1)),
        "{err:?}"
    );
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

/// Every table of the database at `path`, described by what SQLite reports of it: its
/// columns, primary key, `WITHOUT ROWID`, foreign keys and indexes (with their columns and
/// conditions), the schema version, and its triggers.
fn schema_of(path: &std::path::Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let rows = |sql: &str| -> Vec<String> {
        let mut st = conn.prepare(sql).unwrap();
        let count = st.column_count();
        st.query_map([], |r| {
            let mut fields = Vec::with_capacity(count);
            for i in 0..count {
                let value: rusqlite::types::Value = r.get(i)?;
                fields.push(format!("{value:?}"));
            }
            Ok(fields.join(" "))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    };
    let mut described = rows(
        "SELECT name, type, tbl_name FROM sqlite_master WHERE name NOT LIKE 'sqlite_autoindex%' ORDER BY name",
    );
    described.extend(rows("SELECT key, value FROM flow_meta ORDER BY key"));
    for table in rows("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name") {
        let table = table.trim_start_matches("Text(\"").trim_end_matches("\")");
        for detail in [
            format!(
                "SELECT '{table}', name, type, \"notnull\", dflt_value, pk FROM pragma_table_xinfo('{table}')"
            ),
            format!("SELECT '{table}', wr, strict FROM pragma_table_list('{table}')"),
            format!(
                "SELECT '{table}', \"table\", \"from\", \"to\", on_delete FROM pragma_foreign_key_list('{table}')"
            ),
            format!(
                "SELECT '{table}', seq, \"unique\", origin, partial FROM pragma_index_list('{table}') ORDER BY seq"
            ),
        ] {
            described.extend(rows(&detail));
        }
    }
    for index in rows("SELECT name FROM sqlite_master WHERE type = 'index' ORDER BY name") {
        let index = index.trim_start_matches("Text(\"").trim_end_matches("\")");
        described.extend(rows(&format!(
            "SELECT '{index}', seqno, name, \"desc\", key FROM pragma_index_xinfo('{index}')"
        )));
        // A partial index's condition, spaces aside.
        described.extend(
            rows(&format!(
                "SELECT sql FROM sqlite_master WHERE name = '{index}'"
            ))
            .into_iter()
            .map(|sql| sql.split_whitespace().collect::<Vec<_>>().join(" ")),
        );
    }
    described
}

#[test]
fn a_new_database_gets_the_schema_the_migrations_lead_to() {
    let dir = tempfile::tempdir().unwrap();
    let migrated = dir.path().join("migrated.db");
    SqliteStore::create_at_version(&migrated, SCHEMA_VERSION).unwrap();
    let fresh = dir.path().join("fresh.db");
    drop(SqliteStore::open(&fresh).unwrap());
    let (migrated, fresh) = (schema_of(&migrated), schema_of(&fresh));
    assert!(fresh.len() > 100, "{fresh:?}");
    assert_eq!(fresh, migrated);
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
            ti("r1", "t", TaskState::Queued, 0, FRESH),
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
        .apply(&[
            ti("r1", "t", TaskState::Running, 1, was(TaskState::Queued, 0)),
            big,
        ])
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

#[test]
fn reads_do_not_wait_behind_a_write_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.db");
    let store = std::sync::Arc::new(SqliteStore::open(&path).unwrap());
    store.create_run(&run_record("r1", 1)).unwrap();
    store
        .apply(&[ti("r1", "t", TaskState::Queued, 0, FRESH)])
        .unwrap();
    let other = SqliteStore::open(&path).unwrap();
    // Hold the writer connection (its lock and an open write transaction) while another
    // thread reads; with one connection the read would wait for the lock.
    store.with_connection(|writer| {
        writer
            .execute_batch(
                "BEGIN IMMEDIATE; UPDATE task_instances SET state = 'running', try_number = 1;",
            )
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reading = store.clone();
        let reader = std::thread::spawn(move || {
            let instances = reading.task_instances(&"d".into(), &"r1".into());
            let runs = reading.runs(None).map(|r| r.len());
            tx.send((instances, runs)).unwrap();
        });
        let (instances, runs) = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the read waited for the writer");
        let instances = instances.unwrap();
        assert_eq!(
            (instances[0].state, runs.unwrap()),
            (TaskState::Queued, 1),
            "the reader sees what is committed, not the open transaction"
        );
        // Another process's store reads too, while this one's write lock is held.
        let seen = other.task_instances(&"d".into(), &"r1".into()).unwrap();
        assert_eq!(seen[0].state, TaskState::Queued);
        reader.join().unwrap();
        writer.execute_batch("ROLLBACK").unwrap();
    });
    // The writer still writes, and the reader follows its commits.
    store
        .apply(&[ti(
            "r1",
            "t",
            TaskState::Running,
            1,
            was(TaskState::Queued, 0),
        )])
        .unwrap();
    assert_eq!(
        store.task_instances(&"d".into(), &"r1".into()).unwrap()[0].state,
        TaskState::Running,
        "a read after a commit sees it"
    );
}

fn at(second: i64) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 12, 0, 0).unwrap() + chrono::Duration::seconds(second)
}

fn queued(run: &str, task: &str, priority_weight: i64, queue: Option<&str>) -> Change {
    Change::Task {
        record: TaskInstanceRecord {
            priority_weight,
            queue: queue.map(str::to_string),
            ..record(run, task, TaskState::Queued, 0)
        },
        expect: FRESH,
    }
}

fn done(state: TaskState, end: i64) -> Outcome {
    Outcome {
        state,
        error: (state == TaskState::Failed).then(|| "boom".to_string()),
        end: at(end),
        reschedule_at: None,
        xcoms: Vec::new(),
        logs: Vec::new(),
    }
}

/// Queued instances are claimed once each, by priority then age, under a lease; outcomes
/// count only while the claim holds, and are read back in order.
fn queue_conformance(store: &dyn Store) {
    store.create_run(&run_record("q1", 1)).unwrap();
    let (w1, w2, w3) = (
        WorkerId::new("w1"),
        WorkerId::new("w2"),
        WorkerId::new("w3"),
    );
    let lease = Duration::from_secs(30);
    store.apply(&[queued("q1", "a", 1, None)]).unwrap();
    store
        .apply(&[queued("q1", "b", 5, None), queued("q1", "d", 1, None)])
        .unwrap();
    store.apply(&[queued("q1", "c", 1, Some("gpu"))]).unwrap();
    let names = |claimed: &[Claimed]| -> Vec<String> {
        claimed
            .iter()
            .map(|c| c.record.key.task_id.to_string())
            .collect()
    };

    assert!(store.claim(&w1, None, 0, lease, at(0)).unwrap().is_empty());
    let first = store.claim(&w1, None, 2, lease, at(0)).unwrap();
    assert_eq!(
        names(&first),
        ["b", "a"],
        "highest weight, then longest queued"
    );
    assert_eq!(
        (
            first[0].record.state,
            first[0].record.try_number,
            first[0].record.start
        ),
        (TaskState::Running, 1, Some(at(0)))
    );
    assert_eq!(
        (first[0].worker.clone(), first[0].lease_until),
        (w1.clone(), at(30))
    );
    assert_eq!(first[0].record.priority_weight, 5);
    let gpu = store.claim(&w2, Some("gpu"), 10, lease, at(0)).unwrap();
    assert_eq!(names(&gpu), ["c"]);
    assert_eq!(gpu[0].record.queue.as_deref(), Some("gpu"));
    assert!(
        store
            .claim(&w2, Some("gpu"), 10, lease, at(0))
            .unwrap()
            .is_empty()
    );
    let short = store
        .claim(&w2, None, 10, Duration::from_secs(5), at(0))
        .unwrap();
    assert_eq!(names(&short), ["d"]);
    assert!(store.claim(&w3, None, 10, lease, at(0)).unwrap().is_empty());
    let states: Vec<_> = store
        .task_instances(&"d".into(), &"q1".into())
        .unwrap()
        .into_iter()
        .map(|ti| (ti.state, ti.try_number))
        .collect();
    assert_eq!(states, [(TaskState::Running, 1); 4], "claims are recorded");

    // Heartbeats extend live claims only; `d`'s ran out.
    assert_eq!(store.heartbeat(&w1, at(20), lease).unwrap(), 2);
    assert_eq!(store.heartbeat(&w2, at(20), lease).unwrap(), 1);
    assert_eq!(store.heartbeat(&w3, at(20), lease).unwrap(), 0);
    assert!(store.expired_claims(at(5)).unwrap().is_empty());
    assert_eq!(store.expired_claims(at(20)).unwrap(), [key("q1", "d")]);
    assert_eq!(store.expired_claims(at(51)).unwrap().len(), 4);

    // A claim whose lease ran out cannot report.
    let err = store
        .report(&short[0], &done(TaskState::Success, 21), at(21))
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::ClaimLost { key: k, try_number: 1, .. } if *k == key("q1", "d")),
        "{err:?}"
    );
    assert!(err.to_string().contains("lease ran out"), "{err}");

    // A live claim reports its try, with XComs and logs, once.
    let mut success = done(TaskState::Success, 25);
    success.xcoms = vec![(
        "return_value".to_string(),
        XComBlob::encode(&5_u64).unwrap().into(),
    )];
    success.logs = vec![line("ran")];
    let b = &first[0];
    let cursor = store.report(b, &success, at(25)).unwrap();
    assert!(cursor > OutcomeCursor::START);
    assert!(
        store
            .get_xcom(&key("q1", "b"), "return_value")
            .unwrap()
            .is_some()
    );
    assert_eq!(store.logs(&key("q1", "b"), Some(1)).unwrap().len(), 1);
    assert!(matches!(
        store.report(b, &success, at(26)),
        Err(StoreError::ClaimLost { .. })
    ));
    assert!(
        !store
            .expired_claims(at(1000))
            .unwrap()
            .contains(&key("q1", "b")),
        "a reported claim is released"
    );
    // Only the holder reports, and only a state a running try may end in.
    let a = &first[1];
    let impostor = Claimed {
        worker: w2.clone(),
        ..a.clone()
    };
    let err = store
        .report(&impostor, &done(TaskState::Success, 25), at(25))
        .unwrap_err();
    assert!(err.to_string().contains("worker `w1` holds it"), "{err}");
    assert!(matches!(
        store.report(a, &done(TaskState::Queued, 25), at(25)),
        Err(StoreError::IllegalTransition { .. })
    ));
    // The deciding side moves on: `a` is skipped (a run timeout), so its worker lost it.
    store
        .apply(&[
            ti("q1", "a", TaskState::Skipped, 1, was(TaskState::Running, 1)),
            ti("q1", "b", TaskState::Success, 1, was(TaskState::Running, 1)),
        ])
        .unwrap();
    let err = store
        .report(a, &done(TaskState::Success, 26), at(26))
        .unwrap_err();
    assert!(err.to_string().contains("is skipped now"), "{err}");

    // The interrupted try of `d` is counted and retried; the new try is claimed afresh.
    store
        .apply(&[
            ti(
                "q1",
                "d",
                TaskState::UpForRetry,
                1,
                was(TaskState::Running, 1),
            ),
            ti(
                "q1",
                "d",
                TaskState::Queued,
                1,
                was(TaskState::UpForRetry, 1),
            ),
        ])
        .unwrap();
    assert!(
        store
            .expired_claims(at(1000))
            .unwrap()
            .iter()
            .all(|k| *k != key("q1", "d"))
    );
    let retry = store.claim(&w3, None, 10, lease, at(30)).unwrap();
    assert_eq!(
        (names(&retry), retry[0].record.try_number),
        (vec!["d".to_string()], 2)
    );
    let err = store
        .report(&short[0], &done(TaskState::Success, 31), at(31))
        .unwrap_err();
    assert!(err.to_string().contains("at try 2 now"), "{err}");
    store
        .report(&retry[0], &done(TaskState::Success, 32), at(32))
        .unwrap();
    store
        .report(&gpu[0], &done(TaskState::Failed, 33), at(33))
        .unwrap();

    // Outcomes are read in the order they were reported, from a cursor.
    let (page, next) = store.outcomes_since(OutcomeCursor::START, 2).unwrap();
    let summary: Vec<_> = page
        .iter()
        .map(|o| {
            (
                o.key.task_id.to_string(),
                o.try_number,
                o.worker.to_string(),
                o.state,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("b".to_string(), 1, "w1".to_string(), TaskState::Success),
            ("d".to_string(), 2, "w3".to_string(), TaskState::Success),
        ]
    );
    assert_eq!(page[0].end, at(25));
    assert_eq!(next, page[1].cursor);
    let (rest, last) = store.outcomes_since(next, 10).unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(
        (
            rest[0].state,
            rest[0].error.as_deref(),
            rest[0].key.task_id.as_str()
        ),
        (TaskState::Failed, Some("boom"), "c")
    );
    assert_eq!(store.outcomes_since(last, 10).unwrap(), (Vec::new(), last));

    // Clearing an instance drops its claim.
    store
        .clear(&"d".into(), &"q1".into(), &["c".into()])
        .unwrap();
    assert!(
        store
            .expired_claims(at(1000))
            .unwrap()
            .iter()
            .all(|k| *k != key("q1", "c"))
    );

    // A claim taken back by the scheduler stays taken back, even once the instance runs
    // again elsewhere: its worker's heartbeat, report and lease no longer count.
    store.create_run(&run_record("q2", 2)).unwrap();
    store.apply(&[queued("q2", "e", 1, None)]).unwrap();
    let e = store.claim(&w1, None, 1, lease, at(100)).unwrap();
    assert_eq!(names(&e), ["e"]);
    assert_eq!(store.expired_claims(at(200)).unwrap(), [key("q2", "e")]);
    store
        .apply(&[
            ti(
                "q2",
                "e",
                TaskState::UpForRetry,
                1,
                was(TaskState::Running, 1),
            ),
            ti(
                "q2",
                "e",
                TaskState::Running,
                2,
                was(TaskState::UpForRetry, 1),
            ),
        ])
        .unwrap();
    assert!(store.expired_claims(at(200)).unwrap().is_empty());
    assert_eq!(store.heartbeat(&w1, at(110), lease).unwrap(), 0);
    let err = store
        .report(&e[0], &done(TaskState::Success, 120), at(120))
        .unwrap_err();
    assert!(err.to_string().contains("at try 2 now"), "{err}");
}

#[test]
fn memory_store_queues() {
    queue_conformance(&MemoryStore::new());
}

#[test]
fn sqlite_store_queues() {
    let dir = tempfile::tempdir().unwrap();
    queue_conformance(&SqliteStore::open(&dir.path().join("flow.db")).unwrap());
}

#[test]
fn workers_sharing_a_database_never_claim_one_instance_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.db");
    let store = SqliteStore::open(&path).unwrap();
    store.create_run(&run_record("r1", 1)).unwrap();
    let tasks: Vec<String> = (0..200).map(|i| format!("t{i:03}")).collect();
    let changes: Vec<Change> = tasks.iter().map(|t| queued("r1", t, 0, None)).collect();
    store.apply(&changes).unwrap();
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let path = path.clone();
            std::thread::spawn(move || {
                let store = SqliteStore::open(&path).unwrap();
                let worker = WorkerId::new(format!("w{w}"));
                let mut mine = Vec::new();
                loop {
                    let claimed = store
                        .claim(&worker, None, 3, Duration::from_secs(60), Utc::now())
                        .unwrap();
                    if claimed.is_empty() {
                        return mine;
                    }
                    mine.extend(
                        claimed
                            .into_iter()
                            .map(|c| c.record.key.task_id.to_string()),
                    );
                }
            })
        })
        .collect();
    let mut all: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    all.sort();
    assert_eq!(all, tasks, "every instance claimed exactly once");
}

#[test]
fn a_version_4_schema_migrates_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.db");
    SqliteStore::create_at_version(&path, 4).unwrap();
    let run = run_record("r1", 1);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(&format!(
            "INSERT INTO dag_runs VALUES ('d', 'r1', 'manual', {}, 'running', NULL, NULL, 'f', 0, 0, '{{}}');
             INSERT INTO task_instances VALUES ('d', 'r1', 'old', -1, 'queued', 0, 2, NULL, NULL, NULL);
             INSERT INTO task_instances VALUES ('d', 'r1', 'ran', -1, 'success', 1, 2, NULL, NULL, NULL);",
            run.logical_date.timestamp_micros()
        ))
        .unwrap();
    let store =
        SqliteStore::open_with(&path, OpenMode::ForMigration, Duration::from_secs(1)).unwrap();
    assert_eq!(store.migrate().unwrap(), (4, SCHEMA_VERSION));
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    let instances = store.task_instances(&"d".into(), &"r1".into()).unwrap();
    assert_eq!(instances.len(), 2);
    assert_eq!(instances[1].max_tries, 1, "two tries are one retry");
    assert_eq!(
        (instances[0].priority_weight, instances[0].queue.as_deref()),
        (0, None)
    );
    // An instance queued before the upgrade is claimable after it.
    let claimed = store
        .claim(
            &WorkerId::new("w"),
            None,
            10,
            Duration::from_secs(5),
            Utc::now(),
        )
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].record.key, key("r1", "old"));
    queue_conformance(&store);
}

#[test]
fn version_5_max_tries_and_retried_tries_take_airflows_meaning() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.db");
    SqliteStore::create_at_version(&path, 5).unwrap();
    let run = run_record("r1", 1);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(&format!(
            "INSERT INTO dag_runs VALUES ('d', 'r1', 'manual', {}, 'running', NULL, NULL, 'f', 0, 0, '{{}}');
             INSERT INTO task_instances (dag_id, run_id, task_id, map_index, state, try_number, max_tries)
                 VALUES ('d', 'r1', 't', -1, 'up_for_retry', 1, 3);
             INSERT INTO task_instances (dag_id, run_id, task_id, map_index, state, try_number, max_tries)
                 VALUES ('d', 'r1', 'fresh', -1, 'none', 0, 0);
             INSERT INTO task_tries (dag_id, run_id, task_id, map_index, try_number, state, error)
                 VALUES ('d', 'r1', 't', -1, 1, 'up_for_retry', 'boom');",
            run.logical_date.timestamp_micros()
        ))
        .unwrap();
    let store =
        SqliteStore::open_with(&path, OpenMode::ForMigration, Duration::from_secs(1)).unwrap();
    assert_eq!(store.migrate().unwrap(), (5, SCHEMA_VERSION));
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    let instances = store.task_instances(&"d".into(), &"r1".into()).unwrap();
    let max_tries = |task: &str| {
        instances
            .iter()
            .find(|i| i.key.task_id.as_str() == task)
            .unwrap()
            .max_tries
    };
    assert_eq!((max_tries("t"), max_tries("fresh")), (2, 0));
    let tries = store.tries(&key("r1", "t")).unwrap();
    assert_eq!(tries[0].state, TaskState::Failed);
}

fn slots(pool: &str, slots: u32, dag_limit: u32) -> SlotRequest {
    SlotRequest {
        run_id: "s1".into(),
        claim: crate::pools::Claim {
            pool: pool.into(),
            slots,
            dag: "d".into(),
            dag_limit,
        },
    }
}

fn release(owner: &str, pool: &str, slots: u32, tasks: u32) -> super::SlotRelease {
    super::SlotRelease {
        dag_id: "d".into(),
        run_id: "s1".into(),
        owner: owner.into(),
        pool: pool.into(),
        slots,
        tasks,
    }
}

/// Pool slots and `max_active_tasks` are counted in the store, across owners; the holds
/// of an owner that stopped renewing them stop counting, and a run taken over or deleted
/// gives back what was held for it.
fn slot_conformance(store: &dyn Store) {
    use crate::pools::Grant;
    store.create_run(&run_record("s1", 1)).unwrap();
    store
        .set_pool(&PoolRecord {
            name: "gpu".into(),
            slots: 3,
            description: String::new(),
        })
        .unwrap();
    let ttl = Duration::from_secs(30);
    let in_use = |t: i64| store.slots_in_use(at(t)).unwrap();
    let gpu = |n: u32| vec![("gpu".to_string(), n)];
    assert!(
        store
            .acquire_slots("p1", &[], at(0), ttl)
            .unwrap()
            .is_empty()
    );
    let grants = store
        .acquire_slots(
            "p1",
            &[
                slots("gpu", 2, 16),
                slots("gpu", 2, 16),
                slots("gpu", 1, 16),
                slots("tpu", 1, 16),
                slots("gpu", 4, 16),
            ],
            at(0),
            ttl,
        )
        .unwrap();
    assert_eq!(
        grants,
        [
            Grant::Granted,
            Grant::PoolFull,
            Grant::Granted,
            Grant::UnknownPool,
            Grant::TooBig { size: 3 }
        ]
    );
    assert_eq!(in_use(0), gpu(3));
    // Another process sees the same pool.
    assert_eq!(
        store
            .acquire_slots("p2", &[slots("gpu", 2, 16)], at(1), ttl)
            .unwrap(),
        [Grant::PoolFull]
    );
    // p1's first try ends; what an unknown owner gives back changes nothing.
    store.release_slots(&release("p1", "gpu", 2, 1)).unwrap();
    store.release_slots(&release("p9", "gpu", 5, 5)).unwrap();
    assert_eq!(in_use(1), gpu(1));
    assert_eq!(
        store
            .acquire_slots("p2", &[slots("gpu", 2, 16)], at(1), ttl)
            .unwrap(),
        [Grant::Granted]
    );
    assert_eq!(in_use(2), gpu(3));
    // `max_active_tasks` counts the DAG's tries of every owner (one of p1, one of p2).
    assert_eq!(
        store
            .acquire_slots("p2", &[slots(DEFAULT_POOL_NAME, 1, 2)], at(3), ttl)
            .unwrap(),
        [Grant::DagFull]
    );
    assert_eq!(
        store
            .acquire_slots(
                "p2",
                &[
                    slots(DEFAULT_POOL_NAME, 1, 3),
                    slots(DEFAULT_POOL_NAME, 1, 3)
                ],
                at(3),
                ttl
            )
            .unwrap(),
        [Grant::Granted, Grant::DagFull]
    );
    assert_eq!(
        store
            .acquire_slots("p3", &[slots(DEFAULT_POOL_NAME, 129, 99)], at(3), ttl)
            .unwrap(),
        [Grant::TooBig { size: 128 }],
        "default_pool has 128 slots unless redefined"
    );

    // p1 renews (its gpu count lasts until 50); p2 stops (its counts end at 31 and 33).
    assert_eq!(store.renew_slots("p1", at(20), ttl).unwrap(), 1);
    assert_eq!(store.renew_slots("p2", at(40), ttl).unwrap(), 0, "too late");
    assert_eq!(in_use(40), gpu(1), "expired holds do not count");
    assert_eq!(
        store
            .acquire_slots("p3", &[slots("gpu", 2, 16)], at(40), ttl)
            .unwrap(),
        [Grant::Granted],
        "the slots of an owner that stopped renewing are free again"
    );
    assert_eq!(
        store
            .acquire_slots("p3", &[slots("gpu", 1, 16)], at(40), ttl)
            .unwrap(),
        [Grant::PoolFull]
    );

    // A request for an unknown run fails the call, holding nothing.
    let err = store
        .acquire_slots(
            "p3",
            &[
                slots(DEFAULT_POOL_NAME, 1, 16),
                SlotRequest {
                    run_id: "nope".into(),
                    ..slots(DEFAULT_POOL_NAME, 1, 16)
                },
            ],
            at(41),
            ttl,
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::NoSuchRun { .. }), "{err:?}");
    assert_eq!(in_use(41), gpu(3));
    // Giving back more than one holds empties the count without going below zero.
    store.release_slots(&release("p3", "gpu", 9, 9)).unwrap();
    assert_eq!(in_use(41), gpu(1));
    assert_eq!(
        store
            .acquire_slots("p3", &[slots("gpu", 2, 16)], at(41), ttl)
            .unwrap(),
        [Grant::Granted]
    );
    assert_eq!(in_use(41), gpu(3));
    // A process gives back all it holds for a run; whoever takes the run over forgets
    // what every owner held for it.
    assert_eq!(
        store
            .acquire_slots("p4", &[slots(DEFAULT_POOL_NAME, 2, 16)], at(41), ttl)
            .unwrap(),
        [Grant::Granted]
    );
    store
        .forget_run_slots(&"d".into(), &"s1".into(), Some("p4"))
        .unwrap();
    assert_eq!(in_use(41), gpu(3), "only p4's count went");
    store
        .forget_run_slots(&"d".into(), &"s1".into(), None)
        .unwrap();
    assert!(in_use(41).is_empty());
    assert_eq!(
        store
            .acquire_slots("p4", &[slots("gpu", 3, 16)], at(42), ttl)
            .unwrap(),
        [Grant::Granted]
    );
    // Deleting a run gives back what its tries held.
    store.delete_run(&"d".into(), &"s1".into()).unwrap();
    assert!(in_use(42).is_empty());
}

const DEFAULT_POOL_NAME: &str = crate::pools::DEFAULT_POOL;

/// A try of `task` in run `s1` that starts (`running`, try 1) if `owner` gets `request`'s
/// slots.
fn start(task: &str, owner: &str, request: SlotRequest, now: i64) -> Change {
    Change::Start {
        record: record("s1", task, TaskState::Running, 1),
        expect: FRESH,
        ask: super::SlotAsk {
            owner: owner.into(),
            claim: request.claim,
            now: at(now),
            until: at(now + 30),
        },
    }
}

/// A start in a batch takes its slots with the batch: granted, the try is recorded and
/// its slots counted; refused, the instance keeps what it had and the rest of the batch
/// is applied. Releases earlier in the batch count; a stale start refuses the batch.
fn start_conformance(store: &dyn Store) {
    use crate::pools::Grant;
    store.create_run(&run_record("s1", 1)).unwrap();
    store
        .set_pool(&PoolRecord {
            name: "gpu".into(),
            slots: 2,
            description: String::new(),
        })
        .unwrap();
    let in_use = |t: i64| store.slots_in_use(at(t)).unwrap();
    let gpu = |n: u32| vec![("gpu".to_string(), n)];
    let state = |task: &str| {
        store
            .task_instances(&"d".into(), &"s1".into())
            .unwrap()
            .into_iter()
            .find(|r| r.key.task_id.as_str() == task)
            .map(|r| r.state)
    };
    // Another process holds one of the two slots.
    let held = store
        .acquire_slots("p0", &[slots("gpu", 1, 16)], at(0), Duration::from_secs(30))
        .unwrap();
    assert_eq!(held, [Grant::Granted]);
    let grants = store
        .apply(&[
            start("a", "p1", slots("gpu", 1, 16), 1),
            start("b", "p1", slots("gpu", 1, 16), 1),
            xcom("s1", "z", "return_value", 7),
            start("c", "p1", slots("tpu", 1, 16), 1),
            start("e", "p1", slots("gpu", 3, 16), 1),
        ])
        .unwrap();
    assert_eq!(
        grants,
        [
            Grant::Granted,
            Grant::PoolFull,
            Grant::UnknownPool,
            Grant::TooBig { size: 2 }
        ]
    );
    assert_eq!(state("a"), Some(TaskState::Running));
    assert_eq!((state("b"), state("c"), state("e")), (None, None, None));
    assert!(
        store
            .get_xcom(&key("s1", "z"), "return_value")
            .unwrap()
            .is_some(),
        "the rest of the batch is applied"
    );
    assert_eq!(in_use(1), gpu(2));
    // The holder gives back its slot earlier in the batch: the start after it takes it.
    let grants = store
        .apply(&[
            Change::ReleaseSlots(release("p0", "gpu", 1, 1)),
            start("b", "p1", slots("gpu", 1, 16), 2),
        ])
        .unwrap();
    assert_eq!(grants, [Grant::Granted]);
    assert_eq!(state("b"), Some(TaskState::Running));
    assert_eq!(in_use(2), gpu(2));
    // `max_active_tasks` counts the starts of the batch itself.
    let grants = store
        .apply(&[
            start("f", "p1", slots(DEFAULT_POOL_NAME, 1, 3), 3),
            start("g", "p1", slots(DEFAULT_POOL_NAME, 1, 3), 3),
        ])
        .unwrap();
    assert_eq!(grants, [Grant::Granted, Grant::DagFull]);
    assert_eq!(state("g"), None);
    // A start whose expectation is stale refuses the whole batch: nothing is written and
    // no slot is counted.
    let err = store
        .apply(&[
            xcom("s1", "y", "return_value", 1),
            start("h", "p1", slots(DEFAULT_POOL_NAME, 1, 16), 4),
            start("a", "p1", slots(DEFAULT_POOL_NAME, 1, 16), 4),
        ])
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    assert_eq!(state("h"), None);
    assert!(
        store
            .get_xcom(&key("s1", "y"), "return_value")
            .unwrap()
            .is_none()
    );
    assert_eq!(
        in_use(4),
        vec![(DEFAULT_POOL_NAME.to_string(), 1), ("gpu".to_string(), 2)]
    );
    // A start of a run that does not exist refuses the batch.
    let mut unknown = start("a", "p1", slots(DEFAULT_POOL_NAME, 1, 16), 5);
    if let Change::Start { record, .. } = &mut unknown {
        record.key.run_id = "nope".into();
    }
    let err = store.apply(&[unknown]).unwrap_err();
    assert!(matches!(err, StoreError::NoSuchRun { .. }), "{err:?}");
    // What the starts took is given back like any hold.
    store
        .apply(&[Change::ReleaseSlots(release("p1", "gpu", 2, 2))])
        .unwrap();
    assert_eq!(in_use(6), vec![(DEFAULT_POOL_NAME.to_string(), 1)]);
}

#[test]
fn memory_store_starts_tries_with_their_slots() {
    start_conformance(&MemoryStore::new());
}

#[test]
fn sqlite_store_starts_tries_with_their_slots() {
    let dir = tempfile::tempdir().unwrap();
    start_conformance(&SqliteStore::open(&dir.path().join("flow.db")).unwrap());
}

#[test]
fn memory_store_counts_slots() {
    slot_conformance(&MemoryStore::new());
}

#[test]
fn sqlite_store_counts_slots() {
    let dir = tempfile::tempdir().unwrap();
    slot_conformance(&SqliteStore::open(&dir.path().join("flow.db")).unwrap());
}

/// Threads, each with its own store handle, take and give back slots of one pool in a
/// loop; the slots held never exceed the pool's size.
fn hammer_one_pool(stores: Vec<std::sync::Arc<dyn Store>>, size: u32) {
    use std::sync::atomic::{AtomicU32, Ordering};
    let in_use = std::sync::Arc::new(AtomicU32::new(0));
    let granted = std::sync::Arc::new(AtomicU32::new(0));
    let refused = std::sync::Arc::new(AtomicU32::new(0));
    let threads: Vec<_> = stores
        .into_iter()
        .enumerate()
        .map(|(thread, store)| {
            let (in_use, granted, refused) = (in_use.clone(), granted.clone(), refused.clone());
            std::thread::spawn(move || {
                for i in 0..40_u32 {
                    let owner = format!("owner{thread}");
                    let request = SlotRequest {
                        run_id: "s1".into(),
                        claim: crate::pools::Claim {
                            pool: "p".into(),
                            slots: 1 + i % size.min(2),
                            dag: "d".into(),
                            dag_limit: 1000,
                        },
                    };
                    let grants = store
                        .acquire_slots(
                            &owner,
                            std::slice::from_ref(&request),
                            Utc::now(),
                            Duration::from_secs(60),
                        )
                        .unwrap();
                    match grants[0] {
                        crate::pools::Grant::Granted => {
                            granted.fetch_add(1, Ordering::SeqCst);
                            let now = in_use.fetch_add(request.claim.slots, Ordering::SeqCst)
                                + request.claim.slots;
                            assert!(now <= size, "{now} slots of {size} in use");
                            let held: u32 = store
                                .slots_in_use(Utc::now())
                                .unwrap()
                                .into_iter()
                                .map(|(_, n)| n)
                                .sum();
                            assert!(held <= size, "the store holds {held} slots of {size}");
                            std::thread::yield_now();
                            in_use.fetch_sub(request.claim.slots, Ordering::SeqCst);
                            store
                                .release_slots(&release(&owner, "p", request.claim.slots, 1))
                                .unwrap();
                        }
                        crate::pools::Grant::PoolFull => {
                            refused.fetch_add(1, Ordering::SeqCst);
                        }
                        ref other => panic!("unexpected grant {other:?}"),
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert!(granted.load(Ordering::SeqCst) > 0);
    assert_eq!(in_use.load(Ordering::SeqCst), 0);
}

fn pool_of(store: &dyn Store, size: u32) {
    store.create_run(&run_record("s1", 1)).unwrap();
    store
        .set_pool(&PoolRecord {
            name: "p".into(),
            slots: size,
            description: String::new(),
        })
        .unwrap();
}

#[test]
fn processes_sharing_a_database_never_oversubscribe_a_pool() {
    for size in [1, 2, 3, 5] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flow.db");
        pool_of(&SqliteStore::open(&path).unwrap(), size);
        let stores: Vec<std::sync::Arc<dyn Store>> = (0..4)
            .map(|_| std::sync::Arc::new(SqliteStore::open(&path).unwrap()) as _)
            .collect();
        hammer_one_pool(stores, size);
    }
}

#[test]
fn threads_sharing_a_memory_store_never_oversubscribe_a_pool() {
    for size in [1, 2, 3] {
        let store = std::sync::Arc::new(MemoryStore::new());
        pool_of(store.as_ref(), size);
        hammer_one_pool((0..4).map(|_| store.clone() as _).collect(), size);
    }
}

/// One owner per run at a time; an expired lease can be taken over; `max_active_runs`
/// counts the DAG's live leases.
fn lease_conformance(store: &dyn Store) {
    for (run, day) in [("l1", 1), ("l2", 2), ("l3", 3)] {
        store.create_run(&run_record(run, day)).unwrap();
    }
    let ttl = Duration::from_secs(30);
    let acquire = |run: &str, owner: &str, now: i64, limit: Option<u32>| {
        store
            .acquire_run_lease(&"d".into(), &run.into(), owner, ttl, at(now), limit)
            .unwrap()
    };
    assert_eq!(acquire("l1", "A", 0, Some(2)), LeaseGrant::Granted);
    assert_eq!(
        acquire("l1", "B", 10, Some(2)),
        LeaseGrant::HeldBy {
            owner: "A".into(),
            until: at(30)
        }
    );
    assert_eq!(
        acquire("l1", "A", 10, Some(1)),
        LeaseGrant::Granted,
        "its owner takes it again (the run itself does not count against the limit)"
    );
    assert_eq!(acquire("l2", "B", 10, Some(2)), LeaseGrant::Granted);
    assert_eq!(
        acquire("l3", "C", 10, Some(2)),
        LeaseGrant::TooManyActive {
            active: 2,
            limit: 2
        }
    );
    assert_eq!(acquire("l3", "C", 10, Some(3)), LeaseGrant::Granted);
    let release = |run: &str, owner: &str| {
        store
            .release_run_lease(&"d".into(), &run.into(), owner)
            .unwrap()
    };
    assert!(!release("l3", "B"), "only the owner releases");
    assert!(release("l3", "C"));
    assert!(!release("l3", "C"));
    // The same through a batch (a run's last commit): only the owner's change releases.
    assert_eq!(acquire("l3", "C", 10, None), LeaseGrant::Granted);
    let released_by = |owner: &str| Change::ReleaseRunLease {
        dag_id: "d".into(),
        run_id: "l3".into(),
        owner: owner.into(),
    };
    store.apply(&[released_by("B")]).unwrap();
    assert!(
        matches!(acquire("l3", "D", 10, None), LeaseGrant::HeldBy { owner, .. } if owner == "C")
    );
    store.apply(&[released_by("C")]).unwrap();
    assert_eq!(acquire("l3", "D", 10, None), LeaseGrant::Granted);
    assert!(release("l3", "D"));
    assert_eq!(acquire("l3", "C", 10, Some(3)), LeaseGrant::Granted);

    let renew = |run: &str, owner: &str, now: i64| {
        store
            .renew_run_lease(&"d".into(), &run.into(), owner, ttl, at(now))
            .unwrap()
    };
    assert!(renew("l1", "A", 20), "l1 now until 50");
    assert!(!renew("l1", "B", 20));
    // B's lease on l2 ran out at 40: it stops counting, cannot be renewed, is taken over.
    assert_eq!(acquire("l3", "C", 45, Some(2)), LeaseGrant::Granted);
    assert!(!renew("l2", "B", 45));
    assert_eq!(
        acquire("l2", "D", 45, Some(2)),
        LeaseGrant::TooManyActive {
            active: 2,
            limit: 2
        }
    );
    assert_eq!(acquire("l2", "D", 45, None), LeaseGrant::Granted);
    assert!(matches!(
        acquire("l2", "B", 46, None),
        LeaseGrant::HeldBy { owner, .. } if owner == "D"
    ));
    assert!(matches!(
        store.acquire_run_lease(&"d".into(), &"nope".into(), "A", ttl, at(0), None),
        Err(StoreError::NoSuchRun { .. })
    ));
    // A deleted run's lease goes with it.
    store.delete_run(&"d".into(), &"l1".into()).unwrap();
    store.create_run(&run_record("l1", 1)).unwrap();
    assert_eq!(acquire("l1", "B", 46, None), LeaseGrant::Granted);

    // A new run's first batch takes the lease with what it writes, or writes nothing.
    store.create_run(&run_record("l4", 4)).unwrap();
    let first_batch = |owner: &str, now: i64| {
        let task = TaskInstanceRecord::fresh(key("l4", "t"));
        vec![
            Change::TakeRunLease {
                dag_id: "d".into(),
                run_id: "l4".into(),
                owner: owner.into(),
                now: at(now),
                until: at(now + 30),
            },
            Change::Task {
                record: TaskInstanceRecord {
                    state: TaskState::Queued,
                    ..task
                },
                expect: Expect::FRESH,
            },
        ]
    };
    store.apply(&first_batch("E", 50)).unwrap();
    assert!(matches!(
        acquire("l4", "F", 60, None),
        LeaseGrant::HeldBy { owner, .. } if owner == "E"
    ));
    store.delete_run(&"d".into(), &"l4".into()).unwrap();
    store.create_run(&run_record("l4", 4)).unwrap();
    assert_eq!(acquire("l4", "E", 50, None), LeaseGrant::Granted);
    let err = store.apply(&first_batch("F", 60)).unwrap_err();
    assert!(
        matches!(&err, StoreError::RunLeaseHeld { owner, until, .. } if owner == "E" && *until == at(80)),
        "{err:?}"
    );
    assert!(
        store
            .task_instances(&"d".into(), &"l4".into())
            .unwrap()
            .is_empty(),
        "nothing of the refused batch was written"
    );
    store.apply(&first_batch("E", 60)).unwrap();
    assert!(renew("l4", "E", 70), "its owner takes it again");
    store.delete_run(&"d".into(), &"l4".into()).unwrap();
    store.create_run(&run_record("l4", 4)).unwrap();
    assert_eq!(acquire("l4", "E", 50, None), LeaseGrant::Granted);
    store.apply(&first_batch("F", 81)).unwrap();
    assert!(!renew("l4", "E", 82), "taken over once it ran out");
}

#[test]
fn memory_store_leases_runs() {
    lease_conformance(&MemoryStore::new());
}

#[test]
fn sqlite_store_leases_runs() {
    let dir = tempfile::tempdir().unwrap();
    lease_conformance(&SqliteStore::open(&dir.path().join("flow.db")).unwrap());
}

#[test]
fn processes_racing_for_one_run_get_one_lease() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.db");
    SqliteStore::open(&path)
        .unwrap()
        .create_run(&run_record("r1", 1))
        .unwrap();
    let racers: Vec<_> = (0..4)
        .map(|i| {
            let path = path.clone();
            std::thread::spawn(move || {
                SqliteStore::open(&path)
                    .unwrap()
                    .acquire_run_lease(
                        &"d".into(),
                        &"r1".into(),
                        &format!("p{i}"),
                        Duration::from_secs(60),
                        Utc::now(),
                        Some(1),
                    )
                    .unwrap()
            })
        })
        .collect();
    let grants: Vec<LeaseGrant> = racers.into_iter().map(|r| r.join().unwrap()).collect();
    let granted = grants.iter().filter(|g| **g == LeaseGrant::Granted).count();
    assert_eq!(granted, 1, "{grants:?}");
    assert!(
        grants
            .iter()
            .all(|g| matches!(g, LeaseGrant::Granted | LeaseGrant::HeldBy { .. }))
    );
}

/// Paged reads return the full lists' items, in their order, a page at a time.
fn paging_conformance(store: &dyn Store) {
    // Two runs share a logical date: the run id orders them.
    for (run, day) in [
        ("p1", 1),
        ("p2", 2),
        ("p3", 3),
        ("p4", 3),
        ("p5", 5),
        ("p6", 6),
        ("p7", 7),
    ] {
        store.create_run(&run_record(run, day)).unwrap();
    }
    store
        .create_run(&DagRunRecord {
            dag_id: "other".into(),
            ..run_record("o1", 4)
        })
        .unwrap();
    let d: DagId = "d".into();
    let all: Vec<_> = store
        .runs(Some(&d))
        .unwrap()
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    let mut paged = Vec::new();
    let mut page = Page::first(3);
    loop {
        let got = store.runs_page(&RunQuery::of(Some(&d)), page).unwrap();
        assert_eq!(got.total, 7);
        if got.items.is_empty() {
            break;
        }
        assert!(got.items.len() <= 3);
        paged.extend(got.items.into_iter().map(|r| r.run_id));
        page = page.next();
    }
    assert_eq!(paged, all);
    let ids: Vec<String> = paged.iter().map(ToString::to_string).collect();
    assert_eq!(ids, ["p7", "p6", "p5", "p4", "p3", "p2", "p1"]);
    let every = store
        .runs_page(
            &RunQuery::default(),
            Page {
                limit: 2,
                offset: 3,
            },
        )
        .unwrap();
    assert_eq!(every.total, 8);
    let ids: Vec<String> = every.items.iter().map(|r| r.run_id.to_string()).collect();
    assert_eq!(ids, ["o1", "p4"], "runs of every DAG, newest first");
    assert!(
        store
            .runs_page(
                &RunQuery::of(Some(&d)),
                Page {
                    limit: 0,
                    offset: 0
                }
            )
            .unwrap()
            .items
            .is_empty()
    );

    // Task instances: by task id, then map index, whatever the order they were written in.
    let mapped = |i: u32| Change::Task {
        record: TaskInstanceRecord {
            key: TaskInstanceKey {
                map_index: MapIndex::mapped(i),
                ..key("p1", "m")
            },
            ..record("p1", "m", TaskState::Queued, 0)
        },
        expect: FRESH,
    };
    store
        .apply(&[
            mapped(2),
            ti("p1", "b", TaskState::Queued, 0, FRESH),
            mapped(0),
            ti("p1", "a", TaskState::Queued, 0, FRESH),
            mapped(1),
        ])
        .unwrap();
    let names = |page: Page| {
        let got = store.task_instances_page(&d, &"p1".into(), page).unwrap();
        assert_eq!(got.total, 5);
        got.items
            .into_iter()
            .map(|ti| {
                format!(
                    "{}{}",
                    ti.key.task_id,
                    ti.key
                        .map_index
                        .get()
                        .map_or(String::new(), |i| i.to_string())
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(names(Page::first(2)), ["a", "b"]);
    assert_eq!(names(Page::first(2).next()), ["m0", "m1"]);
    assert_eq!(names(Page::first(2).next().next()), ["m2"]);
    assert!(
        names(Page {
            limit: 10,
            offset: 5
        })
        .is_empty()
    );
    assert_eq!(names(Page::first(usize::MAX)).len(), 5);
    let empty = store
        .task_instances_page(&d, &"p2".into(), Page::first(5))
        .unwrap();
    assert_eq!((empty.items.len(), empty.total), (0, 0));
}

/// Runs are filtered by state, type and logical date, and ordered by any field both
/// ways, with runs lacking the field last when descending and first when ascending.
fn run_query_conformance(store: &dyn Store) {
    let at = |hour: u32| Utc.with_ymd_and_hms(2025, 2, 1, hour, 0, 0).unwrap();
    let runs = [
        (
            "a",
            RunType::Scheduled,
            RunState::Success,
            Some(at(3)),
            Some(at(9)),
        ),
        (
            "b",
            RunType::Manual,
            RunState::Failed,
            Some(at(1)),
            Some(at(2)),
        ),
        (
            "c",
            RunType::Scheduled,
            RunState::Running,
            Some(at(5)),
            None,
        ),
        ("d", RunType::Backfill, RunState::Queued, None, None),
    ];
    for (day, (id, run_type, state, start, end)) in (1..).zip(runs) {
        store
            .create_run(&DagRunRecord {
                run_type,
                state,
                start,
                end,
                ..run_record(id, day)
            })
            .unwrap();
    }
    store
        .create_run(&DagRunRecord {
            dag_id: "other".into(),
            ..run_record("e", 9)
        })
        .unwrap();
    let ids = |query: RunQuery| -> (Vec<String>, usize) {
        let page = store.runs_page(&query, Page::first(10)).unwrap();
        let ids = page.items.iter().map(|r| r.run_id.to_string()).collect();
        (ids, page.total)
    };
    let of_d = RunQuery::of(Some(&"d".into()));
    assert_eq!(
        ids(of_d.clone()),
        (vec!["d".into(), "c".into(), "b".into(), "a".into()], 4)
    );
    let only = |states: Vec<RunState>, types: Vec<RunType>| RunQuery {
        states,
        run_types: types,
        ..of_d.clone()
    };
    assert_eq!(
        ids(only(vec![RunState::Success, RunState::Failed], vec![])).0,
        ["b", "a"]
    );
    assert_eq!(ids(only(vec![], vec![RunType::Scheduled])).0, ["c", "a"]);
    assert_eq!(
        ids(only(vec![RunState::Success], vec![RunType::Manual])),
        (vec![], 0)
    );
    let between = RunQuery {
        logical_date_gte: Some(Utc.with_ymd_and_hms(2025, 1, 2, 0, 0, 0).unwrap()),
        logical_date_lte: Some(Utc.with_ymd_and_hms(2025, 1, 3, 0, 0, 0).unwrap()),
        ..of_d.clone()
    };
    assert_eq!(ids(between).0, ["c", "b"], "both ends included");
    let ordered = |by: RunOrderBy, descending: bool| {
        ids(RunQuery {
            order: RunOrder { by, descending },
            ..of_d.clone()
        })
        .0
    };
    assert_eq!(ordered(RunOrderBy::StartDate, true), ["c", "a", "b", "d"]);
    assert_eq!(ordered(RunOrderBy::StartDate, false), ["d", "b", "a", "c"]);
    assert_eq!(ordered(RunOrderBy::EndDate, true), ["a", "b", "d", "c"]);
    assert_eq!(ordered(RunOrderBy::EndDate, false), ["c", "d", "b", "a"]);
    assert_eq!(ordered(RunOrderBy::RunId, false), ["a", "b", "c", "d"]);
    assert_eq!(
        ordered(RunOrderBy::LogicalDate, false),
        ["a", "b", "c", "d"]
    );
    let every = ids(RunQuery {
        states: vec![RunState::Queued],
        ..RunQuery::default()
    });
    assert_eq!(every, (vec!["e".into(), "d".into()], 2), "every DAG's runs");
}

#[test]
fn memory_store_pages() {
    paging_conformance(&MemoryStore::new());
    run_query_conformance(&MemoryStore::new());
}

#[test]
fn sqlite_store_pages() {
    let dir = tempfile::tempdir().unwrap();
    paging_conformance(&SqliteStore::open(&dir.path().join("flow.db")).unwrap());
    run_query_conformance(&SqliteStore::open(&dir.path().join("queries.db")).unwrap());
}

/// Asset updates are recorded with their batch, listed per asset after a cursor, and
/// each DAG's consumption is kept per asset.
fn asset_conformance(store: &dyn Store) {
    store.create_run(&run_record("a1", 1)).unwrap();
    let updated = |uri: &str, task: &str, second: u32| Change::AssetUpdated {
        uri: uri.into(),
        source: key("a1", task),
        timestamp: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, second).unwrap(),
    };
    store
        .apply(&[
            updated("s3://b/orders", "w", 1),
            updated("s3://b/users", "u", 2),
        ])
        .unwrap();
    store.apply(&[updated("s3://b/orders", "w", 3)]).unwrap();
    let orders = store.asset_events("s3://b/orders", 0).unwrap();
    assert_eq!(orders.len(), 2);
    assert!(orders[0].id < orders[1].id);
    assert_eq!(orders[0].source, key("a1", "w"));
    assert_eq!(
        orders[1].timestamp,
        Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 3).unwrap()
    );
    assert_eq!(
        store.asset_events("s3://b/orders", orders[0].id).unwrap(),
        [orders[1].clone()]
    );
    assert!(store.asset_events("s3://b/none", 0).unwrap().is_empty());
    // An update of an unknown run refuses the batch.
    let mut stray = updated("s3://b/orders", "w", 4);
    if let Change::AssetUpdated { source, .. } = &mut stray {
        source.run_id = "nope".into();
    }
    let err = store.apply(&[stray]).unwrap_err();
    assert!(matches!(err, StoreError::NoSuchRun { .. }), "{err:?}");
    assert_eq!(store.asset_events("s3://b/orders", 0).unwrap().len(), 2);
    assert!(store.consumed_assets(&"d".into()).unwrap().is_empty());
    store
        .apply(&[Change::ConsumeAssets {
            dag_id: "d".into(),
            upto: vec![("s3://b/orders".into(), orders[1].id)],
        }])
        .unwrap();
    store
        .apply(&[Change::ConsumeAssets {
            dag_id: "d".into(),
            upto: vec![
                ("s3://b/users".into(), 7),
                ("s3://b/orders".into(), orders[1].id),
            ],
        }])
        .unwrap();
    assert_eq!(
        store.consumed_assets(&"d".into()).unwrap(),
        [
            ("s3://b/orders".to_string(), orders[1].id),
            ("s3://b/users".to_string(), 7)
        ]
    );
    // Events outlive the run that recorded them.
    store.delete_run(&"d".into(), &"a1".into()).unwrap();
    assert_eq!(store.asset_events("s3://b/users", 0).unwrap().len(), 1);
}

#[test]
fn memory_store_records_asset_updates() {
    asset_conformance(&MemoryStore::new());
}

#[test]
fn sqlite_store_records_asset_updates() {
    let dir = tempfile::tempdir().unwrap();
    asset_conformance(&SqliteStore::open(&dir.path().join("flow.db")).unwrap());
}

//! The use cases against an in-memory store.

use chrono::{TimeZone, Utc};

use super::backfill::{Action, SkipReason};
use super::test_task::{InputSource, MissingFrom, Recorded, TestTaskError};
use super::*;
use crate::graph::{DagBuilder, Node};
use crate::objects::ObjectStoreConfig;
use crate::state::{RunState, TaskState};
use crate::store::{Change, DagRunRecord, LogLine, MemoryStore, RunType, TaskInstanceRecord};
use crate::task::TaskError;
use crate::task::TaskSpec;
use crate::xcom::XComBlob;

fn value(name: &str, v: u64) -> TaskSpec {
    TaskSpec::from_sync(name, move |_, _| Ok(v))
}

fn add_one(name: &str) -> TaskSpec {
    TaskSpec::from_sync(name, |_, inputs| Ok(inputs.get::<u64>(0)? + 1)).param::<u64>("x")
}

fn after(b: &mut DagBuilder, name: &str, input: Node<u64>) -> Node<u64> {
    let mut t = b.add_task(add_one(name));
    t.input(input);
    t.finish()
}

/// a -> b -> c, and d on its own; daily from 2025-01-01.
fn dag() -> Dag {
    let mut b = DagBuilder::new("d")
        .schedule("@daily")
        .start_date("2025-01-01");
    let a = b.add_task(value("a", 1)).finish::<u64>();
    let x = after(&mut b, "b", a);
    after(&mut b, "c", x);
    b.add_task(value("d", 2)).finish::<u64>();
    b.build().unwrap()
}

fn day(d: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, d, 0, 0, 0).unwrap()
}

fn record(store: &MemoryStore, run: &str, d: u32, state: RunState) -> RunId {
    store
        .create_run(&DagRunRecord {
            dag_id: "d".into(),
            run_id: run.into(),
            run_type: RunType::Manual,
            logical_date: day(d),
            state,
            start: None,
            end: None,
            fingerprint: crate::plan::fingerprint(&dag()),
            data_interval_start: day(d),
            data_interval_end: day(d + 1),
            conf: serde_json::json!({}),
        })
        .unwrap();
    RunId::new(run)
}

use crate::store::RunStore as _;

#[test]
fn latest_is_the_newest_run_and_unknown_ids_list_the_closest() {
    let store = MemoryStore::new();
    let dag = dag();
    let err = resolve::resolve_run(&store, &dag, "latest").unwrap_err();
    assert!(matches!(err, resolve::ResolveError::NoRuns { .. }), "{err}");
    record(&store, "manual__1", 1, RunState::Success);
    record(&store, "manual__3", 3, RunState::Success);
    record(&store, "manual__2", 2, RunState::Success);
    assert_eq!(
        resolve::resolve_run(&store, &dag, "latest")
            .unwrap()
            .as_str(),
        "manual__3"
    );
    assert_eq!(
        resolve::resolve_run(&store, &dag, "manual__2")
            .unwrap()
            .as_str(),
        "manual__2"
    );
    let err = resolve::resolve_run(&store, &dag, "manual__4").unwrap_err();
    match &err {
        resolve::ResolveError::UnknownRun { closest, .. } => assert_eq!(closest.len(), 3),
        other => panic!("{other}"),
    }
    assert!(
        err.to_string()
            .starts_with("DAG `d` has no run `manual__4`; its runs, closest first: manual__"),
        "{err}"
    );
}

#[test]
fn clearing_downstream_adds_every_descendant_in_task_order() {
    let dag = dag();
    let ids = |tasks: &[&str], downstream| -> Vec<String> {
        let tasks: Vec<String> = tasks.iter().map(|t| t.to_string()).collect();
        clear::task_set(&dag, &tasks, downstream)
            .unwrap()
            .iter()
            .map(|t| t.to_string())
            .collect()
    };
    assert_eq!(ids(&["b"], false), ["b"]);
    assert_eq!(ids(&["b"], true), ["b", "c"]);
    assert_eq!(ids(&["c", "a"], true), ["a", "b", "c"]);
    assert_eq!(ids(&["d"], true), ["d"]);
    assert_eq!(ids(&[], false), ["a", "b", "c", "d"]);
    let err = clear::task_set(&dag, &["bb".to_string()], true).unwrap_err();
    assert_eq!(err.task_id, "bb");
    assert_eq!(err.closest.first().map(String::as_str), Some("b"));
}

#[test]
fn a_backfill_plans_each_interval_by_its_recorded_run() {
    let store = MemoryStore::new();
    let dag = dag();
    record(&store, "done", 1, RunState::Success);
    let failed = record(&store, "failed", 2, RunState::Failed);
    let unfinished = record(&store, "unfinished", 3, RunState::Running);
    let actions = |rerun_failed| -> Vec<String> {
        backfill::plan(&dag, &store, day(1), day(4), rerun_failed)
            .unwrap()
            .runs
            .iter()
            .map(|r| match &r.action {
                Action::Skip(SkipReason::Succeeded) => "skip succeeded".to_string(),
                Action::Skip(SkipReason::Failed) => "skip failed".to_string(),
                Action::Create(request) => format!("create {}", request.logical_date.date_naive()),
                Action::Resume(id) => format!("resume {id}"),
                Action::Rerun(id) => format!("rerun {id}"),
            })
            .collect()
    };
    assert_eq!(
        actions(false),
        [
            "skip succeeded",
            "skip failed",
            "resume unfinished",
            "create 2025-01-04"
        ]
    );
    assert_eq!(actions(true)[1], format!("rerun {failed}"));
    assert_eq!(actions(true)[2], format!("resume {unfinished}"));

    let err = backfill::plan(&dag, &store, day(4), day(1), false).unwrap_err();
    assert!(
        matches!(err, backfill::BackfillError::Reversed { .. }),
        "{err}"
    );
    let manual = {
        let mut b = DagBuilder::new("m");
        b.add_task(value("a", 1)).finish::<u64>();
        b.build().unwrap()
    };
    let err = backfill::plan(&manual, &store, day(1), day(4), false).unwrap_err();
    assert!(
        matches!(err, backfill::BackfillError::NoIntervals { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn a_backfill_runs_its_plan_and_skips_what_succeeded() {
    let store = std::sync::Arc::new(MemoryStore::new());
    let dag = dag();
    record(&store, "done", 1, RunState::Success);
    let home = tempfile::tempdir().unwrap();
    let home = crate::home::FlowHome::at(home.path());
    let executor = crate::runtime::Executor::new(store.clone());
    let plan = backfill::plan(&dag, store.as_ref(), day(1), day(3), false).unwrap();
    let outcome = backfill::run(plan, &dag, &executor, &home).await.unwrap();
    assert_eq!(outcome.runs.len(), 2);
    assert_eq!(outcome.unsuccessful(), 0);
    let runs = store.runs(Some(dag.id())).unwrap();
    assert_eq!(runs.len(), 3);
    assert!(runs.iter().all(|r| r.state == RunState::Success));
}

fn instance(
    store: &MemoryStore,
    run: &RunId,
    task: &str,
    map_index: MapIndex,
    changes: Vec<Change>,
) {
    let key = TaskInstanceKey {
        dag_id: "d".into(),
        run_id: run.clone(),
        task_id: task.into(),
        map_index,
    };
    let mut batch = vec![
        Change::Task {
            record: TaskInstanceRecord {
                state: TaskState::Queued,
                ..TaskInstanceRecord::fresh(key.clone())
            },
            expect: crate::store::Expect::FRESH,
        },
        Change::Task {
            record: TaskInstanceRecord {
                state: TaskState::Running,
                try_number: 1,
                ..TaskInstanceRecord::fresh(key.clone())
            },
            expect: crate::store::Expect {
                state: TaskState::Queued,
                try_number: 0,
            },
        },
        Change::Log {
            key: key.clone(),
            try_number: 1,
            lines: vec![LogLine {
                at: day(1),
                level: "INFO".into(),
                message: format!("{task} try 1"),
            }],
        },
    ];
    batch.extend(changes);
    store.apply(&batch).unwrap();
}

#[test]
fn logs_are_read_per_try_and_a_missing_try_lists_the_tries_made() {
    let store = MemoryStore::new();
    let dag = dag();
    let run = record(&store, "r", 1, RunState::Running);
    instance(&store, &run, "a", MapIndex::UNMAPPED, vec![]);
    let logs = logs::read(&store, &dag, &run, "a", None, None).unwrap();
    assert_eq!(logs.tries.len(), 1);
    assert_eq!(logs.tries[0].lines[0].message, "a try 1");
    let err = logs::read(&store, &dag, &run, "a", None, Some(7)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "task `a` has no try 7 in run r; tries made: 1"
    );
    let err = logs::read(&store, &dag, &run, "a", Some(1), None).unwrap_err();
    assert_eq!(err.to_string(), "task `a` is not mapped");
    let err = logs::read(&store, &dag, &run, "zz", None, None).unwrap_err();
    assert!(
        err.to_string().starts_with("no task `zz` in DAG `d`"),
        "{err}"
    );
}

#[test]
fn the_xcoms_of_one_instance_are_listed() {
    let store = MemoryStore::new();
    let dag = dag();
    let run = record(&store, "r", 1, RunState::Running);
    let key = TaskInstanceKey {
        dag_id: "d".into(),
        run_id: run.clone(),
        task_id: "a".into(),
        map_index: MapIndex::UNMAPPED,
    };
    let xcom = |name: &str, v: u64| Change::XCom {
        key: key.clone(),
        name: name.into(),
        value: XComBlob::encode(&v).unwrap().into(),
    };
    instance(
        &store,
        &run,
        "a",
        MapIndex::UNMAPPED,
        vec![xcom("return_value", 1), xcom("extra", 2)],
    );
    let listed = xcoms::list(&store, &dag, &run, "a", None).unwrap();
    assert_eq!(listed.key, key);
    let names: Vec<&str> = listed.xcoms.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["extra", "return_value"]);
    assert!(
        xcoms::list(&store, &dag, &run, "b", None)
            .unwrap()
            .xcoms
            .is_empty()
    );
}

#[test]
fn tasks_test_inputs_are_decoded_checked_and_completed_from_the_latest_run() {
    let dag = dag();
    let given = |pairs: &[(&str, &str)]| {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        test_task::decode_inputs(&dag, "b", &pairs)
    };
    let err = given(&[("y", "1")]).unwrap_err();
    assert_eq!(err.to_string(), "task `b` has no input `y`; its inputs: x");
    assert!(matches!(
        given(&[("x", "{")]).unwrap_err(),
        TestTaskError::BadJson { .. }
    ));
    assert!(matches!(
        given(&[("x", "\"text\"")]).unwrap_err(),
        TestTaskError::BadValue { .. }
    ));
    assert!(!given(&[("x", "41")]).unwrap().needs_recorded(&dag));

    // Not given and not recorded: missing, naming the producer.
    let inputs = given(&[]).unwrap();
    assert!(inputs.needs_recorded(&dag));
    match test_task::resolve_inputs(&dag, inputs.clone(), None).unwrap_err() {
        TestTaskError::Missing { missing, .. } => {
            assert_eq!(missing[0].from, MissingFrom::Upstream("a".into()));
        }
        other => panic!("{other}"),
    }

    // Recorded: taken from the newest run that stored it.
    let store = MemoryStore::new();
    for (run, d, v) in [("old", 1, 10u64), ("new", 2, 20)] {
        let run = record(&store, run, d, RunState::Success);
        let key = TaskInstanceKey {
            dag_id: "d".into(),
            run_id: run.clone(),
            task_id: "a".into(),
            map_index: MapIndex::UNMAPPED,
        };
        instance(
            &store,
            &run,
            "a",
            MapIndex::UNMAPPED,
            vec![Change::XCom {
                key,
                name: "return_value".into(),
                value: XComBlob::encode(&v).unwrap().into(),
            }],
        );
    }
    let recorded = Recorded {
        xcoms: &store,
        objects: ObjectStoreConfig::in_memory(),
    };
    let resolved = test_task::resolve_inputs(&dag, inputs, Some(recorded)).unwrap();
    assert_eq!(
        resolved.sources,
        [(
            "x".to_string(),
            InputSource::Recorded {
                producer: "a".into(),
                run_id: "new".into()
            }
        )]
    );
    let output = crate::block_on(test_task::run(&dag, resolved, day(5))).unwrap();
    assert_eq!(output.output, serde_json::json!(21));
}

#[test]
fn a_failing_tested_task_is_a_typed_error() {
    let mut b = DagBuilder::new("f");
    b.add_task(TaskSpec::from_sync("boom", |_, _| {
        Err::<u64, _>(TaskError::Failed("no".into()))
    }))
    .finish::<u64>();
    let dag = b.build().unwrap();
    let inputs = test_task::decode_inputs(&dag, "boom", &[]).unwrap();
    let inputs = test_task::resolve_inputs(&dag, inputs, None).unwrap();
    let err = crate::block_on(test_task::run(&dag, inputs, day(1))).unwrap_err();
    assert_eq!(err.to_string(), "task `boom` failed: no");
}

#[test]
fn a_trigger_checks_its_conf_against_the_params_and_records_a_queued_run() {
    let mut b =
        DagBuilder::new("p").param(crate::graph::params::DagParam::new::<i64>("rows").default(3));
    b.add_task(value("a", 1)).finish::<u64>();
    let dag = b.build().unwrap();
    let err = trigger::parse_conf("{rows").unwrap_err();
    assert!(
        matches!(err, trigger::TriggerError::ConfNotJson { .. }),
        "{err}"
    );
    let bad = serde_json::json!({"rows": "many"});
    let err = trigger::request(&dag, day(1), Some(&bad)).unwrap_err();
    assert!(
        matches!(
            err,
            trigger::TriggerError::Run(crate::error::RunError::Params(_))
        ),
        "{err}"
    );
    let store = std::sync::Arc::new(MemoryStore::new());
    let executor = crate::runtime::Executor::new(store.clone());
    let conf = trigger::parse_conf(r#"{"rows": 5}"#).unwrap();
    let request = trigger::request(&dag, day(1), Some(&conf)).unwrap();
    let run = trigger::trigger(&executor, &dag, request).unwrap();
    assert_eq!(run.state, RunState::Queued);
    assert_eq!(run.conf, serde_json::json!({"rows": 5}));
    let again = trigger::request(&dag, day(1), None).unwrap();
    let err = trigger::trigger(&executor, &dag, again).unwrap_err();
    assert!(
        matches!(
            err,
            trigger::TriggerError::Run(crate::error::RunError::RunExists { .. })
        ),
        "{err}"
    );
}

#[test]
fn pools_are_named_checked_listed_with_the_default_and_deleted() {
    use crate::store::PoolRecord;
    let store = MemoryStore::new();
    let pool = |name: &str| PoolRecord {
        name: name.into(),
        slots: 2,
        description: String::new(),
    };
    let err = pools::set_pool(&store, pool("a b")).unwrap_err();
    assert!(matches!(err, pools::PoolError::InvalidName { .. }), "{err}");
    pools::set_pool(&store, pool("db.read-1")).unwrap();
    let names: Vec<String> = pools::pools(&store)
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, [crate::pools::DEFAULT_POOL, "db.read-1"]);
    let err = pools::delete_pool(&store, "db").unwrap_err();
    assert_eq!(err.to_string(), "no pool `db`; the pools: db.read-1");
    pools::delete_pool(&store, "db.read-1").unwrap();
    assert_eq!(pools::pools(&store).unwrap().len(), 1);
}

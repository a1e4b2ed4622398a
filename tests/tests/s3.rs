//! The object store on a real S3-compatible server: `moto`, which each test starts on a
//! free loopback port (installed from PyPI into a venv under the target directory once).

use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use assert_cmd::Command;
use chrono::{TimeZone, Utc};
use flow_runtime::events::TaskEvent;
use flow_runtime::prelude::*;
use flow_runtime::sensor::{self, SensorOptions};
use flow_runtime::store::{MemoryStore, RunStore, SqliteStore, XComStore};
use flow_runtime::{Executor, MapIndex, RunId, StoredXCom, TaskInstanceKey};
use flow_tests::big_bytes;
use flow_tests::moto::{BUCKET, MotoServer, free_port, s3_config};

fn moto() -> MotoServer {
    MotoServer::start(env!("CARGO_TARGET_TMPDIR"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn sqlite(dir: &tempfile::TempDir) -> Arc<SqliteStore> {
    Arc::new(SqliteStore::open(&dir.path().join("flow.db")).unwrap())
}

fn key(dag: &str, run: &RunId, task: &str) -> TaskInstanceKey {
    TaskInstanceKey {
        dag_id: dag.into(),
        run_id: run.clone(),
        task_id: task.into(),
        map_index: MapIndex::UNMAPPED,
    }
}

#[test]
fn large_xcoms_and_artifacts_go_through_s3_and_leave_with_the_run() {
    let server = moto();
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir);
    let objects = server.config("runs").connect().unwrap();
    assert_eq!(
        objects.location(),
        format!("s3://{BUCKET}/runs (endpoint {})", server.endpoint())
    );
    let executor = Executor::new(store.clone()).object_store(objects);
    let date = Utc.with_ymd_and_hms(2025, 1, 2, 0, 0, 0).unwrap();
    let rt = runtime();

    let dag = flow_tests::large_values().unwrap();
    let run = rt.block_on(executor.run(&dag, date)).unwrap();
    assert_eq!(run.state, RunState::Success, "{run:?}");
    assert_eq!(
        run.output::<String>("summarize").unwrap(),
        "100000 bytes, small 7"
    );
    let prefix = format!("runs/large_values/{}/", run.run_id);
    assert_eq!(
        server.keys(&prefix),
        [
            format!("{prefix}xcom/big_output/-1/return_value"),
            format!("{prefix}xcom/small_output/-1/pushed"),
        ]
    );
    assert!(matches!(
        store
            .get_xcom(
                &key("large_values", &run.run_id, "big_output"),
                "return_value"
            )
            .unwrap(),
        Some(StoredXCom::Object(_))
    ));
    assert_eq!(run.output::<Vec<u8>>("big_output").unwrap(), big_bytes());

    let artifacts = flow_tests::model_artifacts().unwrap();
    let made = rt.block_on(executor.run(&artifacts, date)).unwrap();
    assert_eq!(made.state, RunState::Success, "{made:?}");
    let artifact_prefix = format!("runs/model_artifacts/{}/artifacts/", made.run_id);
    assert_eq!(server.keys(&artifact_prefix).len(), 3);

    let deleted = rt
        .block_on(executor.delete_run(dag.id(), &run.run_id))
        .unwrap();
    assert_eq!(deleted, 2);
    assert!(server.keys(&prefix).is_empty());
    assert_eq!(store.run(dag.id(), &run.run_id).unwrap(), None);
    assert_eq!(
        server.keys(&artifact_prefix).len(),
        3,
        "other runs keep their objects"
    );
}

#[test]
fn the_cli_takes_the_s3_store_from_the_environment() {
    let server = moto();
    let home = tempfile::tempdir().unwrap();
    let fixture = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fixture"));
        cmd.env("FLOW_HOME", home.path())
            .env("FLOW_LOG", "warn")
            .envs(server.env("cli"));
        cmd
    };
    fixture()
        .args(["dags", "test", "large_values", "--date", "2025-01-02"])
        .assert()
        .success();
    assert_eq!(server.keys("cli/large_values/").len(), 2);
    assert!(!home.path().join("objects").exists());
    fixture()
        .args(["runs", "delete", "large_values", "latest"])
        .assert()
        .success();
    assert!(server.keys("cli/large_values/").is_empty());
}

#[test]
fn the_object_key_sensor_waits_until_the_key_appears() {
    let server = moto();
    let options = SensorOptions {
        poke_interval: Duration::from_millis(100),
        timeout: Duration::from_secs(60),
        ..Default::default()
    };
    let mut b = DagBuilder::new("landing");
    b.add_task(sensor::object_exists(
        "wait_for_key",
        "landing/{ds}/ready.csv",
        options,
    ))
    .finish::<String>();
    b.add_task(sensor::object_exists(
        "wait_for_url",
        format!("s3://{BUCKET}/exports/{{ds_nodash}}/orders.csv"),
        options,
    ))
    .finish::<String>();
    let dag = b.build().unwrap();

    // Both objects are written only once both sensors are poking.
    let (started, poking) = mpsc::channel::<String>();
    let started = Mutex::new(started);
    let server = &server;
    let writer = std::thread::scope(|scope| {
        let writer = scope.spawn(move || {
            let mut running = vec![poking.recv().unwrap(), poking.recv().unwrap()];
            running.sort();
            std::thread::sleep(Duration::from_millis(300));
            server.put("sensors/landing/2025-01-02/ready.csv", b"id\n1\n");
            server.put("exports/20250102/orders.csv", b"id\n1\n");
            running
        });
        let executor = Executor::new(Arc::new(MemoryStore::new()))
            .object_store(server.config("sensors").connect().unwrap())
            .on_event(move |event: &TaskEvent| {
                if event.state == TaskState::Running {
                    let _ = started.lock().unwrap().send(event.task_id.to_string());
                }
            });
        let date = Utc.with_ymd_and_hms(2025, 1, 2, 0, 0, 0).unwrap();
        let run = runtime().block_on(executor.run(&dag, date));
        // Ends the writer's wait should the sensors never have started.
        drop(executor);
        let run = run.unwrap();
        assert_eq!(run.state, RunState::Success, "{run:?}");
        assert_eq!(
            run.output::<String>("wait_for_key").unwrap(),
            "landing/2025-01-02/ready.csv"
        );
        assert_eq!(
            run.output::<String>("wait_for_url").unwrap(),
            format!("s3://{BUCKET}/exports/20250102/orders.csv")
        );
        writer.join().unwrap()
    });
    assert_eq!(writer, ["wait_for_key", "wait_for_url"]);
}

#[test]
fn an_unreachable_store_fails_the_try_clearly_and_the_run_completes_once_it_answers() {
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let config = s3_config(&endpoint, "down").retries(0, Duration::from_secs(5));
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir);
    let executor = Executor::new(store.clone()).object_store(config.connect().unwrap());
    let dag = flow_tests::large_values().unwrap();
    let date = Utc.with_ymd_and_hms(2025, 1, 2, 0, 0, 0).unwrap();
    let rt = runtime();

    let run = rt.block_on(executor.run(&dag, date)).unwrap();
    assert_eq!(run.state, RunState::Failed, "{run:?}");
    let big = run.task("big_output").unwrap();
    assert_eq!(
        (big.state, big.tries),
        (TaskState::Failed, 2),
        "retries apply"
    );
    let error = big.error.clone().unwrap();
    assert!(
        error.starts_with(&format!(
            "cannot store XCom `return_value` (100005 bytes) of `big_output`: the object store \
             s3://{BUCKET}/down (endpoint {endpoint}) failed to write `large_values/{}/xcom/big_output/-1/return_value`",
            run.run_id
        )) && error.contains("check that it is reachable"),
        "{error}"
    );
    assert_eq!(
        run.task("summarize").unwrap().state,
        TaskState::UpstreamFailed
    );
    assert_eq!(
        store
            .get_xcom(
                &key("large_values", &run.run_id, "big_output"),
                "return_value"
            )
            .unwrap(),
        None,
        "nothing refers to an object that was not written"
    );

    // The store comes up: the same run, cleared, completes.
    let server = MotoServer::start_on(env!("CARGO_TARGET_TMPDIR"), port);
    let tasks: Vec<_> = dag.tasks().iter().map(|t| t.id().clone()).collect();
    store.clear(dag.id(), &run.run_id, &tasks).unwrap();
    let resumed = rt.block_on(executor.resume(&dag, &run.run_id)).unwrap();
    assert_eq!(resumed.state, RunState::Success, "{resumed:?}");
    assert_eq!(
        resumed.output::<String>("summarize").unwrap(),
        "100000 bytes, small 7"
    );

    // It goes down again: a consumer cannot fetch its input, and says so.
    drop(server);
    store
        .clear(dag.id(), &run.run_id, &["summarize".into()])
        .unwrap();
    let again = rt.block_on(executor.resume(&dag, &run.run_id)).unwrap();
    let error = again.task("summarize").unwrap().error.clone().unwrap();
    assert!(
        error.starts_with(&format!(
            "cannot read input `data`: the object store s3://{BUCKET}/down (endpoint {endpoint}) failed to read"
        )),
        "{error}"
    );
}

#[test]
fn an_object_path_lands_data_by_s3_url_and_downstream_tasks_read_it_with_the_runs_settings() {
    let server = moto();
    let dir = tempfile::tempdir().unwrap();
    // The endpoint and credentials are given in code only: the path's downstream readers
    // (sync and async) can reach moto only through the run's store settings.
    let executor =
        Executor::new(sqlite(&dir)).object_store(server.config("runs").connect().unwrap());
    let date = Utc.with_ymd_and_hms(2025, 1, 2, 0, 0, 0).unwrap();
    let dag = flow_tests::landed_objects().unwrap();
    let run = runtime().block_on(executor.run(&dag, date)).unwrap();
    assert_eq!(run.state, RunState::Success, "{run:?}");
    assert_eq!(server.keys("landing/"), ["landing/data.csv"]);
    assert_eq!(
        run.output::<String>("check_landed").unwrap(),
        format!("2 rows at s3://{BUCKET}/landing/data.csv")
    );
    assert_eq!(
        run.output::<ObjectPath>("land_csv").unwrap().url(),
        format!("s3://{BUCKET}/landing/data.csv")
    );
}

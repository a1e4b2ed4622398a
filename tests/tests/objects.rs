//! Large XCom values and artifacts in the default object store (a directory in FLOW_HOME),
//! through the `fixture` binary's CLI and through the public API.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use flow_runtime::prelude::*;
use flow_runtime::store::{RunStore, SqliteStore, XComStore};
use flow_runtime::{MapIndex, StoredXCom, TaskInstanceKey};
use flow_tests::{MODEL, big_bytes};
use predicates::prelude::PredicateBooleanExt as _;
use predicates::str::contains;

/// A FLOW_HOME kept for several commands.
struct Home(tempfile::TempDir);

impl Home {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn cmd(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fixture"));
        cmd.env("FLOW_HOME", self.path())
            .env("FLOW_LOG", "warn")
            .env_remove("FLOW_OBJECT_STORE")
            .env_remove("FLOW_XCOM_OBJECT_THRESHOLD");
        cmd
    }

    fn stdout(&self, args: &[&str]) -> String {
        let output = self.cmd().args(args).assert().success();
        String::from_utf8_lossy(&output.get_output().stdout).to_string()
    }

    fn store(&self) -> SqliteStore {
        SqliteStore::open(&self.path().join("flow.db")).unwrap()
    }

    /// Where the objects of a run are, in the default store.
    fn run_objects(&self, dag: &str, run: &str) -> PathBuf {
        self.path().join("objects").join(dag).join(run)
    }
}

fn key(dag: &str, run: &str, task: &str) -> TaskInstanceKey {
    TaskInstanceKey {
        dag_id: dag.into(),
        run_id: run.into(),
        task_id: task.into(),
        map_index: MapIndex::UNMAPPED,
    }
}

/// Every file below `dir`, relative to it, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            if entry.path().is_dir() {
                stack.push(entry.path());
            } else {
                let relative = entry.path().strip_prefix(dir).unwrap().to_path_buf();
                found.push(relative.display().to_string());
            }
        }
    }
    found.sort();
    found
}

const RUN: &str = "manual__2025-01-02T00:00:00+00:00";

#[test]
fn large_values_go_to_files_in_flow_home_and_runs_delete_removes_them() {
    let home = Home::new();
    home.stdout(&["dags", "test", "large_values", "--date", "2025-01-02"]);
    let objects = home.run_objects("large_values", RUN);
    assert_eq!(
        files(&objects),
        [
            "xcom/big_output/-1/return_value",
            "xcom/small_output/-1/pushed"
        ]
    );
    assert_eq!(
        std::fs::read(objects.join("xcom/big_output/-1/return_value"))
            .unwrap()
            .len(),
        100_005,
        "the encoded value: 100,000 bytes and their length"
    );

    // The database holds references to the large values and the small ones themselves.
    let store = home.store();
    match store
        .get_xcom(&key("large_values", RUN, "big_output"), "return_value")
        .unwrap()
    {
        Some(StoredXCom::Object(object)) => assert_eq!(
            object.key(),
            format!("large_values/{RUN}/xcom/big_output/-1/return_value")
        ),
        other => panic!("expected a reference, found {other:?}"),
    }
    let small = store
        .get_xcom(&key("large_values", RUN, "small_output"), "return_value")
        .unwrap()
        .unwrap();
    assert_eq!(small.as_inline().unwrap().decode::<u32>().unwrap(), 7);
    let summary = store
        .get_xcom(&key("large_values", RUN, "summarize"), "return_value")
        .unwrap()
        .unwrap();
    assert_eq!(
        summary.as_inline().unwrap().decode::<String>().unwrap(),
        "100000 bytes, small 7"
    );
    drop(store);

    // `tasks test` reads a recorded input back from the object store.
    let tested = home.stdout(&["tasks", "test", "large_values", "summarize"]);
    assert!(
        tested.contains("input `data` from the return value of `big_output`")
            && tested.contains("\"100000 bytes, small 7\""),
        "{tested}"
    );

    let deleted = home.stdout(&["runs", "delete", "large_values", "latest"]);
    assert!(
        deleted.contains(&format!(
            "deleted run {RUN} of DAG `large_values` and its 2 object(s)"
        )),
        "{deleted}"
    );
    assert!(!objects.exists(), "the run's objects are gone");
    assert!(
        home.path().join("objects").is_dir(),
        "the store's root stays"
    );
    let store = home.store();
    assert_eq!(
        store.run(&"large_values".into(), &RUN.into()).unwrap(),
        None
    );
    assert_eq!(
        store
            .get_xcom(&key("large_values", RUN, "small_output"), "return_value")
            .unwrap(),
        None
    );
    assert!(!home.stdout(&["runs", "list"]).contains(RUN));
}

#[test]
fn runs_delete_names_an_unknown_run_or_dag() {
    let home = Home::new();
    home.stdout(&["dags", "test", "large_values", "--date", "2025-01-02"]);
    home.cmd()
        .args(["runs", "delete", "large_values", "manual__2025-01-03"])
        .assert()
        .code(2)
        .stderr(contains("DAG `large_values` has no run `manual__2025-01-03`").and(contains(RUN)));
    home.cmd()
        .args(["runs", "delete", "large_vals", RUN])
        .assert()
        .code(2)
        .stderr(contains("no DAG `large_vals` in this binary").and(contains("large_values")));
    home.cmd()
        .args(["runs", "delete", "chain", "latest"])
        .assert()
        .code(2)
        .stderr(contains("DAG `chain` has no recorded runs yet"));
    assert_eq!(
        files(&home.run_objects("large_values", RUN)).len(),
        2,
        "nothing was deleted"
    );
}

#[test]
fn the_store_and_the_threshold_come_from_the_environment() {
    let home = Home::new();
    let elsewhere = tempfile::tempdir().unwrap();
    home.cmd()
        .args(["dags", "test", "large_values", "--date", "2025-01-02"])
        .env(
            "FLOW_OBJECT_STORE",
            format!("file://{}", elsewhere.path().display()),
        )
        .env("FLOW_XCOM_OBJECT_THRESHOLD", "0")
        .assert()
        .success();
    assert!(!home.path().join("objects").exists());
    // With a threshold of 0 every value is an object, the small ones too.
    assert_eq!(
        files(&elsewhere.path().join("large_values").join(RUN)),
        [
            "xcom/big_output/-1/return_value",
            "xcom/pull_pushed/-1/return_value",
            "xcom/small_output/-1/pushed",
            "xcom/small_output/-1/return_value",
            "xcom/summarize/-1/return_value",
        ]
    );

    for (variable, value, message) in [
        (
            "FLOW_OBJECT_STORE",
            "ftp://host/objects",
            "invalid object store URL `ftp://host/objects`: flow does not support the scheme `ftp`; \
             supported: file:///absolute/directory, s3://bucket/prefix",
        ),
        (
            "FLOW_OBJECT_STORE",
            "file://objects",
            "a file URL takes an absolute path after three slashes",
        ),
        (
            "FLOW_OBJECT_STORE",
            "s3://",
            "invalid object store URL `s3://`",
        ),
        (
            "FLOW_XCOM_OBJECT_THRESHOLD",
            "lots",
            "invalid FLOW_XCOM_OBJECT_THRESHOLD `lots`: write bytes (65536) or a size like 64KiB",
        ),
    ] {
        home.cmd()
            .args(["dags", "test", "large_values", "--date", "2025-01-03"])
            .env(variable, value)
            .assert()
            .code(2)
            .stderr(contains(message));
    }
}

#[test]
fn artifacts_go_from_a_sync_task_to_an_async_one_and_leave_with_the_run() {
    let home = Home::new();
    home.stdout(&["dags", "test", "model_artifacts", "--date", "2025-01-02"]);
    let objects = home.run_objects("model_artifacts", RUN);
    assert_eq!(
        files(&objects.join("artifacts")),
        [
            "models/model.bin",
            "reports/summary.txt",
            "tables/date=2025-01-01/table.parquet"
        ]
    );
    assert_eq!(
        std::fs::read(objects.join("artifacts/models/model.bin")).unwrap(),
        MODEL
    );
    assert_eq!(
        std::fs::read(objects.join("artifacts/tables/date=2025-01-01/table.parquet")).unwrap(),
        big_bytes()
    );
    let listed = home
        .store()
        .get_xcom(&key("model_artifacts", RUN, "load_model"), "return_value")
        .unwrap()
        .unwrap();
    assert_eq!(
        listed.as_inline().unwrap().decode::<String>().unwrap(),
        "models/model.bin,reports/summary.txt,tables/date=2025-01-01/table.parquet"
    );
    let deleted = home.stdout(&["runs", "delete", "model_artifacts", RUN]);
    assert!(deleted.contains("and its 3 object(s)"), "{deleted}");
    assert!(!objects.exists());
}

#[test]
fn dag_test_keeps_large_values_and_artifacts_in_memory() {
    let run = flow_tests::large_values().unwrap().test().unwrap();
    assert_eq!(run.state, RunState::Success, "{run:?}");
    assert_eq!(run.output::<Vec<u8>>("big_output").unwrap(), big_bytes());
    assert_eq!(
        run.xcom::<Vec<u8>>("small_output", "pushed").unwrap(),
        big_bytes()
    );
    assert_eq!(run.output::<usize>("pull_pushed").unwrap(), 100_007);
    let run = flow_tests::model_artifacts().unwrap().test().unwrap();
    assert_eq!(run.state, RunState::Success, "{run:?}");
    assert_eq!(
        run.output::<String>("load_model").unwrap(),
        "models/model.bin,reports/summary.txt,tables/date=2025-01-01/table.parquet"
    );
}

#[test]
fn task_functions_use_artifacts_on_a_current_thread_runtime() {
    // `block_on` polls the async task on one thread, where a nested `Handle::block_on`
    // would panic; the blocking `exists` inside it must not.
    let ctx = TaskContext::for_test("model_artifacts", "load_model");
    let size = flow_tests::save_model(&ctx).unwrap();
    let listed = block_on(flow_tests::load_model(&ctx, size)).unwrap();
    assert_eq!(
        listed,
        "models/model.bin,reports/summary.txt,tables/date=2025-01-01/table.parquet"
    );
    let err = ctx.artifacts().get("models/absent.bin").unwrap_err();
    assert_eq!(
        err.to_string(),
        "no artifact `models/absent.bin` in run `test` of DAG `model_artifacts` (object store memory://); \
         put it first, or see the run's artifacts with `list()`"
    );
    let err = ctx.artifacts().put("../escape", vec![1]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid artifact key `../escape`: `..` segments are not allowed"),
        "{err}"
    );
}

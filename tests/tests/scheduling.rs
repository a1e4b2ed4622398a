//! Scheduling end to end: a real `scheduler` process, triggers with params, backfill,
//! pause.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command as AssertCommand;
use flow_runtime::store::{RunStore, RunType, SqliteStore};
use flow_runtime::{RunState, store::DagStore};
use predicates::prelude::*;
use predicates::str::contains;

struct Home(tempfile::TempDir);

impl Home {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }

    fn cmd(&self) -> AssertCommand {
        let mut cmd = AssertCommand::new(env!("CARGO_BIN_EXE_fixture"));
        cmd.env("FLOW_HOME", self.0.path()).env("FLOW_LOG", "warn");
        cmd
    }

    fn scheduler(&self) -> Child {
        Command::new(env!("CARGO_BIN_EXE_fixture"))
            .args(["scheduler", "--poll", "0.2", "--grace", "5"])
            .env("FLOW_HOME", self.0.path())
            .env("FLOW_LOG", "warn")
            .env("FLOW_TEST_SIDE_FILE", self.0.path().join("side.txt"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn store(&self) -> SqliteStore {
        SqliteStore::open(&self.0.path().join("flow.db")).unwrap()
    }

    fn successful_ticks(&self) -> usize {
        if !self.0.path().join("flow.db").exists() {
            return 0;
        }
        let runs = self.store().runs(Some(&"every_second".into())).unwrap();
        runs.iter().filter(|r| r.state == RunState::Success).count()
    }

    fn wait_for_ticks(&self, at_least: usize, child: &mut Child) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.successful_ticks() < at_least {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the scheduler exited early"
            );
            assert!(
                Instant::now() < deadline,
                "fewer than {at_least} runs after 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn a_scheduler_killed_and_restarted_continues_without_duplicates() {
    let home = Home::new();
    // Only `every_second` is scheduled here: pause the fixture's daily DAGs.
    for dag in ["chain", "with_params", "slow_daily"] {
        home.cmd().args(["dags", "pause", dag]).assert().success();
    }
    let mut first = home.scheduler();
    home.wait_for_ticks(2, &mut first);
    first.kill().unwrap();
    first.wait().unwrap();
    let before = home.successful_ticks();

    let mut second = home.scheduler();
    home.wait_for_ticks(before + 2, &mut second);
    // SIGTERM stops it gracefully.
    let pid = second.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let output = second.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let runs = home.store().runs(Some(&"every_second".into())).unwrap();
    let dates: HashSet<_> = runs.iter().map(|r| r.logical_date).collect();
    assert_eq!(dates.len(), runs.len(), "an interval got two runs");
    assert!(runs.iter().all(|r| r.run_type == RunType::Scheduled));
    let unfinished: Vec<_> = runs
        .iter()
        .filter(|r| r.state != RunState::Success)
        .collect();
    assert!(
        unfinished.len() <= 1,
        "only a run cut by the kill may be left: {unfinished:?}"
    );
    // Each run's task executed at most once per try: no run executed twice.
    let side = std::fs::read_to_string(home.0.path().join("side.txt")).unwrap();
    assert!(
        side.lines().count() >= runs.len() - unfinished.len(),
        "{side}"
    );
    assert!(
        home.store().runs(Some(&"chain".into())).unwrap().is_empty(),
        "paused DAGs get no runs"
    );
}

#[test]
fn triggers_validate_conf_against_params() {
    let home = Home::new();
    let listing = "the params are: threshold: f64 = 0.8, label: String (required)";
    for (conf, message) in [
        ("{not json", "invalid --conf `{not json`: not JSON"),
        (
            r#"{"label": "x", "treshold": 1}"#,
            "conf sets `treshold`, which is not a param of this DAG (did you mean `threshold`?)",
        ),
        (
            r#"{"label": "x", "threshold": "high"}"#,
            "param `threshold` must be a `f64`: invalid type: string \"high\"",
        ),
        (
            r#"{"threshold": 0.5}"#,
            "param `label` (String) has no default, so conf must set it",
        ),
        ("[1, 2]", "conf must be a JSON object of params"),
    ] {
        let assert = home
            .cmd()
            .args(["dags", "trigger", "with_params", "--conf", conf])
            .assert()
            .code(2);
        let assert = assert.stderr(contains(message));
        if conf != "{not json" {
            assert.stderr(contains(listing));
        }
    }
    assert!(
        !home.0.path().join("flow.db").exists() || home.store().runs(None).unwrap().is_empty(),
        "nothing was queued"
    );
    home.cmd()
        .args([
            "dags",
            "trigger",
            "with_params",
            "--date",
            "2025-03-04",
            "--conf",
            r#"{"label": "prod"}"#,
            "--run",
        ])
        .assert()
        .success();
    let run = home
        .store()
        .latest_run(&"with_params".into(), RunType::Manual)
        .unwrap()
        .unwrap();
    assert_eq!(run.state, RunState::Success);
    assert_eq!(
        run.conf,
        serde_json::json!({"threshold": 0.8, "label": "prod"})
    );
    // A queued trigger waits for a scheduler.
    home.cmd()
        .args([
            "dags",
            "trigger",
            "with_params",
            "--conf",
            r#"{"label": "later"}"#,
        ])
        .assert()
        .success()
        .stdout(contains("queued run manual__").and(contains("a running scheduler starts it")));
    let unfinished = home.store().unfinished_runs().unwrap();
    assert_eq!(unfinished.len(), 1);
}

#[test]
fn dags_test_reads_params_from_conf() {
    let home = Home::new();
    home.cmd()
        .args([
            "dags",
            "test",
            "with_params",
            "--date",
            "2025-01-05",
            "--conf",
            r#"{"label": "t", "threshold": 0.9}"#,
        ])
        .assert()
        .success();
    let run = home
        .store()
        .latest_run(&"with_params".into(), RunType::Manual)
        .unwrap()
        .unwrap();
    let key = flow_runtime::TaskInstanceKey {
        dag_id: "with_params".into(),
        run_id: run.run_id.clone(),
        task_id: "read_params".into(),
        map_index: flow_runtime::MapIndex::UNMAPPED,
    };
    let line: String =
        flow_runtime::store::XComStore::get_xcom(&home.store(), &key, "return_value")
            .unwrap()
            .unwrap()
            .as_inline()
            .unwrap()
            .decode()
            .unwrap();
    assert_eq!(line, "t:0.9:manual:20250105:2025-01-05");
}

#[test]
fn backfill_runs_each_interval_once_and_skips_what_succeeded() {
    let home = Home::new();
    home.cmd()
        .args([
            "dags",
            "backfill",
            "chain",
            "--from",
            "2025-01-01",
            "--to",
            "2025-01-03",
            "--dry-run",
        ])
        .assert()
        .success()
        .stdout(
            contains("2025-01-01T00:00:00+00:00 run")
                .and(contains("2025-01-03T00:00:00+00:00 run")),
        );
    assert!(!home.0.path().join("flow.db").exists() || home.store().runs(None).unwrap().is_empty());
    home.cmd()
        .args([
            "dags",
            "backfill",
            "chain",
            "--from",
            "2025-01-01",
            "--to",
            "2025-01-03",
        ])
        .assert()
        .success()
        .stdout(contains("backfill of 3 run(s)"));
    let runs = home.store().runs(Some(&"chain".into())).unwrap();
    assert_eq!(runs.len(), 3);
    assert!(
        runs.iter()
            .all(|r| r.run_type == RunType::Backfill && r.state == RunState::Success)
    );
    home.cmd()
        .args([
            "dags",
            "backfill",
            "chain",
            "--from",
            "2025-01-01",
            "--to",
            "2025-01-04",
        ])
        .assert()
        .success()
        .stdout(
            contains("2025-01-02T00:00:00+00:00 skip: succeeded already")
                .and(contains("backfill of 1 run(s)")),
        );
    for (args, message) in [
        (
            vec!["--from", "yesterday", "--to", "2025-01-02"],
            "invalid --from `yesterday`",
        ),
        (
            vec!["--from", "2025-02-01", "--to", "2025-01-01"],
            "is after --to",
        ),
    ] {
        home.cmd()
            .args(["dags", "backfill", "chain"])
            .args(&args)
            .assert()
            .code(2)
            .stderr(contains(message));
    }
    home.cmd()
        .args([
            "dags",
            "backfill",
            "failing",
            "--from",
            "2025-01-01",
            "--to",
            "2025-01-01",
        ])
        .assert()
        .code(2)
        .stderr(contains("has no intervals"));
}

#[test]
fn a_backfill_killed_midway_resumes_without_duplicate_runs() {
    let home = Home::new();
    let args = [
        "dags",
        "backfill",
        "slow_daily",
        "--from",
        "2025-01-01",
        "--to",
        "2025-01-04",
    ];
    let side = home.0.path().join("side.txt");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fixture"))
        .args(args)
        .env("FLOW_HOME", home.0.path())
        .env("FLOW_LOG", "warn")
        .env("FLOW_TEST_SIDE_FILE", &side)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&side)
        .unwrap_or_default()
        .contains("start")
    {
        assert!(
            Instant::now() < deadline,
            "the backfill never started a task"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let created = home.store().runs(Some(&"slow_daily".into())).unwrap().len();
    assert!(
        created >= 1,
        "the backfill created its runs before running them"
    );
    home.cmd()
        .args(args)
        .env("FLOW_TEST_SIDE_FILE", &side)
        .assert()
        .success()
        .stdout(contains("resume backfill__2025-01-01"));
    let runs = home.store().runs(Some(&"slow_daily".into())).unwrap();
    assert_eq!(runs.len(), 4, "one run per interval: {runs:?}");
    assert!(
        runs.iter()
            .all(|r| r.state == RunState::Success && r.run_type == RunType::Backfill)
    );
}

#[test]
fn a_running_scheduler_picks_up_a_trigger() {
    let home = Home::new();
    for dag in ["chain", "with_params", "every_second", "slow_daily"] {
        home.cmd().args(["dags", "pause", dag]).assert().success();
    }
    let mut scheduler = home.scheduler();
    home.cmd()
        .args(["dags", "trigger", "retrying"])
        .assert()
        .success();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let runs = home.store().runs(Some(&"retrying".into())).unwrap();
        if runs.iter().any(|r| r.state == RunState::Success) {
            break;
        }
        assert!(
            scheduler.try_wait().unwrap().is_none(),
            "the scheduler exited"
        );
        assert!(
            Instant::now() < deadline,
            "the triggered run never ran: {runs:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    scheduler.kill().unwrap();
    scheduler.wait().unwrap();
}

#[test]
fn pause_and_unpause_are_recorded() {
    let home = Home::new();
    home.cmd()
        .args(["dags", "pause", "chain"])
        .assert()
        .success()
        .stdout(contains("DAG `chain` is paused"));
    assert!(home.store().dag(&"chain".into()).unwrap().unwrap().paused);
    home.cmd()
        .args(["dags", "unpause", "chain"])
        .assert()
        .success();
    assert!(!home.store().dag(&"chain".into()).unwrap().unwrap().paused);
    home.cmd()
        .args(["dags", "pause", "nope"])
        .assert()
        .code(2)
        .stderr(contains("no DAG `nope`"));
}

#[test]
fn pools_are_set_listed_and_deleted() {
    let home = Home::new();
    home.cmd()
        .args(["pools", "set", "gpu", "2", "--description", "two cards"])
        .assert()
        .success()
        .stdout(contains("pool `gpu` has 2 slot(s)"));
    home.cmd()
        .args(["pools", "list"])
        .assert()
        .success()
        .stdout(contains("default_pool  128").and(contains("gpu           2      two cards")));
    home.cmd()
        .args(["pools", "set", "bad name", "1"])
        .assert()
        .code(2)
        .stderr(contains("invalid pool name `bad name`"));
    home.cmd()
        .args(["pools", "set", "gpu", "-1"])
        .assert()
        .code(2);
    home.cmd()
        .args(["pools", "delete", "gpu"])
        .assert()
        .success();
    home.cmd()
        .args(["pools", "delete", "gpu"])
        .assert()
        .code(2)
        .stderr(contains("no pool `gpu`; the pools: none"));
}

#[test]
fn backfill_reruns_failed_intervals_only_when_asked() {
    let home = Home::new();
    let args = [
        "dags",
        "backfill",
        "daily_failing",
        "--from",
        "2025-01-01",
        "--to",
        "2025-01-01",
    ];
    home.cmd()
        .args(args)
        .assert()
        .code(1)
        .stderr(contains("1 backfill run(s) did not succeed"));
    home.cmd().args(args).assert().success().stdout(contains(
        "skip: failed (use --rerun-failed to run it again)",
    ));
    home.cmd()
        .args(args)
        .arg("--rerun-failed")
        .assert()
        .code(1)
        .stdout(contains("rerun backfill__2025-01-01"));
    let runs = home.store().runs(Some(&"daily_failing".into())).unwrap();
    assert_eq!(runs.len(), 1, "rerun reuses the run");
    let key = flow_runtime::TaskInstanceKey {
        dag_id: "daily_failing".into(),
        run_id: runs[0].run_id.clone(),
        task_id: "always_fails".into(),
        map_index: flow_runtime::MapIndex::UNMAPPED,
    };
    assert_eq!(
        home.store().tries(&key).unwrap().len(),
        2,
        "the rerun is a second try, the first kept"
    );
}

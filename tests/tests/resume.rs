//! Durability end to end: a run killed with SIGKILL at several points resumes, every task
//! whose success was recorded runs exactly once, and no XCom is lost. A second process
//! cannot execute a run that one is executing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flow_runtime::store::{RunStore, SqliteStore, XComStore};
use flow_runtime::{MapIndex, RunState, TaskInstanceKey, TaskState};

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn side_file(&self) -> PathBuf {
        self.dir.path().join("side.txt")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fixture"));
        cmd.args(args)
            .env("FLOW_HOME", self.dir.path())
            .env("FLOW_TEST_SIDE_FILE", self.side_file())
            .env("FLOW_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.command(args).spawn().unwrap()
    }

    /// (event, task, try) of each complete line of the side file (a line being written
    /// while we read is skipped).
    fn side(&self) -> Vec<(String, String, u32)> {
        let text = std::fs::read_to_string(self.side_file()).unwrap_or_default();
        let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        complete
            .lines()
            .map(|line| {
                let parts: Vec<&str> = line.split(' ').collect();
                assert_eq!(parts.len(), 3, "malformed side line `{line}`");
                (
                    parts[0].to_string(),
                    parts[1].to_string(),
                    parts[2].parse().unwrap(),
                )
            })
            .collect()
    }

    /// Waits until a try of `task` has started and not ended, then kills the process.
    fn kill_during(&self, child: &mut Child, task: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let side = self.side();
            let started = side
                .iter()
                .filter(|(e, t, _)| e == "start" && t == task)
                .count();
            let ended = side
                .iter()
                .filter(|(e, t, _)| e == "end" && t == task)
                .count();
            if started > ended {
                child.kill().unwrap();
                child.wait().unwrap();
                return;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "the run ended before `{task}` started: {side:?}"
            );
            assert!(
                Instant::now() < deadline,
                "`{task}` never started: {side:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn store(&self) -> SqliteStore {
        SqliteStore::open(&self.dir.path().join("flow.db")).unwrap()
    }
}

fn key(run_id: &str, task: &str) -> TaskInstanceKey {
    TaskInstanceKey {
        dag_id: "resumable".into(),
        run_id: run_id.into(),
        task_id: task.into(),
        map_index: MapIndex::UNMAPPED,
    }
}

#[test]
fn a_killed_run_resumes_without_rerunning_succeeded_tasks() {
    let home = Home::new();
    let run_id = "manual__2025-01-01T00:00:00+00:00";
    let mut child = home.spawn(&["dags", "test", "resumable", "--date", "2025-01-01"]);
    home.kill_during(&mut child, "step_a");
    for task in ["step_b", "step_sum__1"] {
        let mut child = home.spawn(&["dags", "test", "resumable", "--resume", "latest"]);
        home.kill_during(&mut child, task);
    }
    let output = home
        .command(&["dags", "test", "resumable", "--resume", run_id])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let side = home.side();
    let tasks = [
        "step_a",
        "step_b",
        "step_c",
        "step_b__1",
        "step_sum",
        "step_sum__1",
    ];
    for task in tasks {
        let ends = side
            .iter()
            .filter(|(e, t, _)| e == "end" && t == task)
            .count();
        assert_eq!(ends, 1, "`{task}` completed {ends} times: {side:?}");
    }
    let store = home.store();
    assert_eq!(
        store
            .run(&"resumable".into(), &run_id.into())
            .unwrap()
            .unwrap()
            .state,
        RunState::Success
    );
    let instances = store
        .task_instances(&"resumable".into(), &run_id.into())
        .unwrap();
    assert!(
        instances.iter().all(|ti| ti.state == TaskState::Success),
        "{instances:?}"
    );
    // Killed tries count: each killed task succeeded on a later try, after an interrupted one.
    for task in ["step_a", "step_sum__1"] {
        let tries = store.tries(&key(run_id, task)).unwrap();
        assert_eq!(tries.len(), 2, "{task}: {tries:?}");
        // The interrupted try is `failed` in the history, as in Airflow's.
        assert_eq!(tries[0].state, TaskState::Failed);
        assert!(
            tries[0].error.as_deref().unwrap().contains("interrupted"),
            "{tries:?}"
        );
        assert_eq!(tries[1].state, TaskState::Success);
    }
    let total = store
        .get_xcom(&key(run_id, "step_sum__1"), "return_value")
        .unwrap()
        .unwrap();
    assert_eq!(
        total.as_inline().unwrap().decode::<u64>().unwrap(),
        223,
        "an XCom was lost"
    );
}

#[test]
fn a_second_process_cannot_execute_a_run_in_progress() {
    let home = Home::new();
    let mut child = home.spawn(&["dags", "test", "resumable", "--date", "2025-02-01"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !home.side().iter().any(|(e, _, _)| e == "start") {
        assert!(Instant::now() < deadline, "the run never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    for args in [
        vec!["dags", "test", "resumable", "--resume", "latest"],
        vec!["tasks", "clear", "resumable", "latest", "--task", "step_a"],
        vec!["dags", "test", "resumable", "--date", "2025-02-01"],
    ] {
        let output = home.command(&args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("is being executed by another process (pid "),
            "{args:?}: {stderr}"
        );
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(Path::new(&home.dir.path().join("flow.db")).exists());
}

#[test]
fn a_rescheduled_sensor_waits_across_a_kill_without_holding_a_try_open() {
    let home = Home::new();
    let ready = home.dir.path().join("ready.txt");
    let with_ready = |args: &[&str]| {
        let mut cmd = home.command(args);
        cmd.env("FLOW_TEST_READY_FILE", &ready);
        cmd
    };
    let mut child = with_ready(&["dags", "test", "rescheduled", "--date", "2025-04-01"])
        .spawn()
        .unwrap();
    // Kill the process once the sensor is recorded waiting for its next poke (looking only
    // after its first poke, so the run exists).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !home.side().iter().any(|(e, _, _)| e == "poke") {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before the sensor poked"
        );
        assert!(Instant::now() < deadline, "the sensor never poked");
        std::thread::sleep(Duration::from_millis(5));
    }
    let states = loop {
        let output = with_ready(&["tasks", "states", "rescheduled", "latest"])
            .stdout(Stdio::piped())
            .output()
            .unwrap();
        let states = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if states
            .lines()
            .any(|l| l.starts_with("ready_file") && l.contains("up_for_reschedule"))
        {
            break states;
        }
        assert!(
            Instant::now() < deadline,
            "the sensor never waited: {states}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        states
            .lines()
            .any(|l| l.starts_with("report_ready") && !l.contains("success")),
        "{states}"
    );

    std::fs::write(&ready, "the data\n").unwrap();
    let output = with_ready(&["dags", "test", "rescheduled", "--resume", "latest"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let store = home.store();
    let run_id = "manual__2025-04-01T00:00:00+00:00";
    let sensor = TaskInstanceKey {
        dag_id: "rescheduled".into(),
        run_id: run_id.into(),
        task_id: "ready_file".into(),
        map_index: MapIndex::UNMAPPED,
    };
    // Every poke, before and after the kill, was one try.
    let tries = store.tries(&sensor).unwrap();
    assert_eq!(tries.len(), 1, "{tries:?}");
    assert_eq!(tries[0].state, TaskState::Success);
    let pokes: Vec<u32> = home
        .side()
        .into_iter()
        .filter(|(e, t, _)| e == "poke" && t == "ready_file")
        .map(|(_, _, try_number)| try_number)
        .collect();
    assert!(
        pokes.len() >= 2 && pokes.iter().all(|&t| t == 1),
        "{pokes:?}"
    );
    let report = TaskInstanceKey {
        task_id: "report_ready".into(),
        ..sensor
    };
    let found = store.get_xcom(&report, "return_value").unwrap().unwrap();
    assert_eq!(
        found.as_inline().unwrap().decode::<String>().unwrap(),
        "found the data"
    );
}

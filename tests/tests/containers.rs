//! Container tasks against a real Docker daemon (`.ci/run` starts one and sets
//! `DOCKER_HOST`): the image is imported from a busybox root filesystem, never pulled, and
//! containers have no network. Without a daemon the tests say so and pass, except in CI,
//! where they fail.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use flow_runtime::Executor;
use flow_runtime::ids::{MapIndex, TaskInstanceKey};
use flow_runtime::prelude::*;
use flow_runtime::store::{LogStore, MemoryStore};
use flow_runtime::task::container::{ContainerSpec, Network, PullPolicy};
use flow_tests::TEST_IMAGE;
use flow_tests::docker::docker;

/// The ids of the containers (running or not) that carry `label`.
fn containers_with(label: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label={label}")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Removes the containers that carry `label` (left on a long-lived daemon by an earlier,
/// interrupted run of a test).
fn remove_all(label: &str) {
    for id in containers_with(label) {
        Command::new("docker")
            .args(["rm", "-f", &id])
            .output()
            .unwrap();
    }
}

/// A container of the test image running `script` under `sh -c`, with no network.
fn sh(script: &str) -> ContainerSpec {
    ContainerSpec::new(TEST_IMAGE)
        .command(["/bin/sh", "-c"])
        .arg(script)
        .network(Network::None)
        .pull(PullPolicy::Never)
}

async fn run(dag: &Dag) -> (RunSummary, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    let summary = Executor::new(store.clone())
        .run(dag, Utc::now())
        .await
        .unwrap();
    (summary, store)
}

#[tokio::test]
async fn a_container_gets_its_values_as_data_and_its_last_line_is_the_output() {
    if !docker() {
        return;
    }
    // Capture the task's log lines, as the CLI does.
    {
        use tracing_subscriber::layer::SubscriberExt as _;
        let _ = tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(flow_runtime::logs::CaptureLayer),
        );
    }
    let hostile = "world\"; echo INJECTED; echo \"";
    let mut b = DagBuilder::new("container_greeting");
    let greet = b
        .add_task(TaskSpec::from_container("greet", move |_, _| {
            Ok(
                sh(r#"echo first; echo "to stderr" >&2; echo "hello $NAME from $FLOW_TASK_ID""#)
                    .env("NAME", hostile),
            )
        }))
        .finish::<String>();
    let mut shout = b.add_task(
        TaskSpec::from_sync("shout", |_, inputs| {
            Ok(inputs.get::<String>(0)?.to_uppercase())
        })
        .param::<String>("line"),
    );
    shout.input(greet);
    let _ = shout.finish::<String>();
    let (summary, store) = run(&b.build().unwrap()).await;
    assert_eq!(summary.state, RunState::Success, "{:?}", summary.tasks);
    assert_eq!(
        summary.output::<String>("greet").unwrap(),
        format!("hello {hostile} from greet")
    );
    assert_eq!(
        summary.output::<String>("shout").unwrap(),
        format!("HELLO {} FROM GREET", hostile.to_uppercase())
    );
    let key = TaskInstanceKey {
        dag_id: "container_greeting".into(),
        run_id: summary.run_id.clone(),
        task_id: "greet".into(),
        map_index: MapIndex::UNMAPPED,
    };
    let logs: Vec<String> = store
        .logs(&key, Some(1))
        .unwrap()
        .into_iter()
        .map(|(_, line)| format!("{} {}", line.level, line.message))
        .collect();
    assert!(logs.contains(&"INFO first".to_string()), "{logs:?}");
    assert!(logs.contains(&"WARN to stderr".to_string()), "{logs:?}");
    assert!(containers_with("flow.dag_id=container_greeting").is_empty());
}

#[tokio::test]
async fn a_failing_container_fails_its_try_with_the_end_of_its_output_and_99_skips() {
    if !docker() {
        return;
    }
    let mut b = DagBuilder::new("container_failures");
    b.add_task(
        TaskSpec::from_container("broken", |_, _| {
            Ok(sh(
                "for i in 1 2 3 4 5 6 7; do echo line$i >&2; done; exit 3",
            ))
        })
        .retries(1)
        .retry_delay(Duration::ZERO),
    );
    b.add_task(TaskSpec::from_container("skipping", |_, _| {
        Ok(sh("exit 99"))
    }));
    b.add_task(TaskSpec::from_container("missing", |_, _| {
        Ok(ContainerSpec::new("flow-tests/no-such-image:1").pull(PullPolicy::Never))
    }));
    b.add_task(TaskSpec::from_container("invalid", |_, _| {
        Ok(sh("true").mount("relative/dir", "/data"))
    }));
    let (summary, _) = run(&b.build().unwrap()).await;
    assert_eq!(summary.state, RunState::Failed);
    let task = |id: &str| {
        summary
            .tasks
            .iter()
            .find(|t| t.task_id.as_str() == id)
            .unwrap()
    };
    let broken = task("broken");
    assert_eq!((broken.state, broken.tries), (TaskState::Failed, 2));
    let error = broken.error.as_deref().unwrap();
    assert!(
        error.starts_with("the container exited with code 3; its output ends with:\nline3\n"),
        "{error}"
    );
    assert!(error.ends_with("line7"), "{error}");
    assert_eq!(task("skipping").state, TaskState::Skipped);
    let missing = task("missing").error.as_deref().unwrap();
    assert!(
        missing.contains("`flow-tests/no-such-image:1` is not on the Docker host"),
        "{missing}"
    );
    let invalid = task("invalid").error.as_deref().unwrap();
    assert!(
        invalid.contains("mount source `relative/dir` must be an absolute path"),
        "{invalid}"
    );
    assert!(containers_with("flow.dag_id=container_failures").is_empty());
}

#[tokio::test]
async fn the_output_can_be_a_file_and_mounts_bring_host_files_in() {
    if !docker() {
        return;
    }
    let input = tempfile::tempdir().unwrap();
    std::fs::write(input.path().join("rows.csv"), "a\nb\nc\n").unwrap();
    let dir = input.path().to_path_buf();
    let mut b = DagBuilder::new("container_files");
    b.add_task(TaskSpec::from_container("count", move |_, _| {
        Ok(
            sh("wc -l < /input/rows.csv > /tmp/count.txt; echo not the output")
                .mount_read_only(dir.clone(), "/input")
                .output_file("/tmp/count.txt"),
        )
    }));
    let (summary, _) = run(&b.build().unwrap()).await;
    assert_eq!(summary.state, RunState::Success, "{:?}", summary.tasks);
    assert_eq!(summary.output::<String>("count").unwrap().trim(), "3");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timed_out_container_is_stopped_and_removed() {
    if !docker() {
        return;
    }
    remove_all("flow.dag_id=container_timeout");
    let mut b = DagBuilder::new("container_timeout");
    b.add_task(
        TaskSpec::from_container("slow", |_, _| Ok(sh("sleep 600")))
            .execution_timeout(Duration::from_secs(2)),
    );
    let (summary, _) = run(&b.build().unwrap()).await;
    assert_eq!(summary.state, RunState::Failed);
    let error = summary.tasks[0].error.as_deref().unwrap();
    assert!(error.contains("exceeded its execution_timeout"), "{error}");
    // Removed before the try was reported, not some time later.
    assert!(containers_with("flow.dag_id=container_timeout").is_empty());
}

#[test]
fn a_container_left_by_a_killed_process_is_removed_when_the_run_resumes() {
    if !docker() {
        return;
    }
    let label = "flow.dag_id=contained";
    remove_all(label);
    let home = tempfile::tempdir().unwrap();
    let fixture = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fixture"));
        cmd.env("FLOW_HOME", home.path()).env("FLOW_LOG", "warn");
        cmd
    };
    let mut first = fixture()
        .args(["dags", "test", "contained"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The first try's container sleeps for an hour; wait until it runs, then kill flow.
    let mut running = Vec::new();
    for _ in 0..300 {
        running = containers_with(label);
        if !running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(running.len(), 1, "the first try's container");
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(containers_with(label), running, "the orphan still runs");

    let resumed = fixture()
        .args(["dags", "test", "contained", "--resume", "latest"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    assert!(
        resumed.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    // The second try ran (it prints at once), and the orphan is gone, not merely done.
    assert!(containers_with(label).is_empty());
    let states = fixture()
        .args(["tasks", "states", "contained", "latest"])
        .output()
        .unwrap();
    let states = String::from_utf8_lossy(&states.stdout);
    let row = states
        .lines()
        .find(|l| l.contains("sleep_first_try"))
        .unwrap();
    assert!(row.contains("success") && row.contains(" 2 "), "{states}");
    let xcoms = fixture()
        .args(["tasks", "xcoms", "contained", "latest", "sleep_first_try"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&xcoms.stdout).contains("try 2"),
        "{}",
        String::from_utf8_lossy(&xcoms.stdout)
    );
}

//! Container tasks as Kubernetes pods. No cluster runs on the machines that test flow:
//! what needs none (refusals, an unreachable cluster) always runs; the rest runs against
//! the cluster `KUBECONFIG` names, and without one says so and passes. The pod objects
//! themselves are tested exactly in flow-runtime (`task::container::kubernetes::tests`).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use flow_runtime::Executor;
use flow_runtime::prelude::*;
use flow_runtime::store::MemoryStore;
use flow_runtime::task::container::{ContainerSpec, Network, PodOptions};
use flow_tests::POD_IMAGE;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

/// Whether a cluster is configured; if not, says why the test does not run.
fn cluster() -> bool {
    if std::env::var_os("KUBECONFIG").is_some() {
        return true;
    }
    eprintln!("skipped: no cluster (set KUBECONFIG to run the pod tests against one)");
    false
}

/// The names of the pods, in the configuration's namespace, that carry `label`.
async fn pods_with(label: &str) -> Vec<String> {
    let client = kube::Client::try_default().await.unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client);
    pods.list(&ListParams::default().labels(label))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|pod| pod.metadata.name)
        .collect()
}

/// A pod running `script` under `sh -c`.
fn sh(script: &str) -> ContainerSpec {
    ContainerSpec::new(POD_IMAGE)
        .command(["/bin/sh", "-c"])
        .arg(script)
        .pod(PodOptions::new())
}

async fn run(dag: &Dag) -> RunSummary {
    Executor::new(Arc::new(MemoryStore::new()))
        .run(dag, Utc::now())
        .await
        .unwrap()
}

#[tokio::test]
async fn what_a_pod_cannot_run_fails_its_try_before_any_cluster_is_asked() {
    let mut b = DagBuilder::new("pod_refusals");
    b.add_task(TaskSpec::from_container("isolated", |_, _| {
        Ok(sh("true").network(Network::None))
    }));
    b.add_task(TaskSpec::from_container("from_file", |_, _| {
        Ok(sh("true").output_file("/out.json"))
    }));
    b.add_task(TaskSpec::from_container("named_user", |_, _| {
        Ok(sh("true").user("nobody"))
    }));
    let summary = run(&b.build().unwrap()).await;
    assert_eq!(summary.state, RunState::Failed);
    let error = |task: &str| {
        summary
            .tasks
            .iter()
            .find(|t| t.task_id.as_str() == task)
            .and_then(|t| t.error.clone())
            .unwrap()
    };
    assert!(
        error("isolated").starts_with("invalid pod: a pod always has a network"),
        "{}",
        error("isolated")
    );
    assert!(
        error("from_file").contains("last line"),
        "{}",
        error("from_file")
    );
    assert!(
        error("named_user").contains("must be numeric"),
        "{}",
        error("named_user")
    );
}

/// Runs the fixture's `podded` DAG with `KUBECONFIG` set to `kubeconfig`: its output.
fn podded_with(kubeconfig: &std::path::Path) -> std::process::Output {
    let home = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_fixture"))
        .env("FLOW_HOME", home.path())
        .env("FLOW_LOG", "warn")
        .env("KUBECONFIG", kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .args(["dags", "test", "podded"])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_cluster_that_cannot_be_reached_fails_the_try_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    // No configuration at all.
    let missing = podded_with(&dir.path().join("no-such-kubeconfig"));
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&missing.stdout),
        String::from_utf8_lossy(&missing.stderr)
    );
    assert!(!missing.status.success(), "{out}");
    assert!(out.contains("cannot reach a Kubernetes cluster"), "{out}");
    assert!(out.contains("set KUBECONFIG"), "{out}");

    // A configuration whose API server does not answer (a closed loopback port).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: gone
  cluster:
    server: https://127.0.0.1:{port}
    insecure-skip-tls-verify: true
users:
- name: someone
  user:
    token: not-a-secret
contexts:
- name: gone
  context:
    cluster: gone
    user: someone
    namespace: ml
current-context: gone
"
        ),
    )
    .unwrap();
    let unanswered = podded_with(&kubeconfig);
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&unanswered.stdout),
        String::from_utf8_lossy(&unanswered.stderr)
    );
    assert!(!unanswered.status.success(), "{out}");
    assert!(
        out.contains("cannot list pods in namespace `ml` of https://127.0.0.1:"),
        "{out}"
    );
    assert!(out.contains("Connection refused"), "{out}");
    assert!(!out.contains("not-a-secret"), "{out}");
}

#[tokio::test]
async fn a_pod_runs_on_the_cluster_its_last_line_is_the_output_and_it_is_deleted() {
    if !cluster() {
        return;
    }
    let mut b = DagBuilder::new("pod_greeting");
    let hostile = "world\"; echo INJECTED; echo \"";
    b.add_task(TaskSpec::from_container("greet", move |_, _| {
        Ok(sh(r#"echo first; echo "hello $NAME from $FLOW_TASK_ID""#).env("NAME", hostile))
    }))
    .finish::<String>();
    let summary = run(&b.build().unwrap()).await;
    assert_eq!(summary.state, RunState::Success, "{:?}", summary.tasks);
    assert_eq!(
        summary.output::<String>("greet").unwrap(),
        format!("hello {hostile} from greet")
    );
    assert!(pods_with("flow.dag_id=pod_greeting").await.is_empty());
}

#[tokio::test]
async fn a_failing_pod_fails_with_its_output_99_skips_and_a_timeout_deletes_it() {
    if !cluster() {
        return;
    }
    let mut b = DagBuilder::new("pod_failures");
    b.add_task(TaskSpec::from_container("broken", |_, _| {
        Ok(sh("for i in 1 2 3 4 5 6 7; do echo line$i; done; exit 3"))
    }));
    b.add_task(TaskSpec::from_container("skipping", |_, _| {
        Ok(sh("exit 99"))
    }));
    b.add_task(TaskSpec::from_container("unpullable", |_, _| {
        Ok(ContainerSpec::new("Not A Valid Image").pod(PodOptions::new()))
    }));
    b.add_task(
        TaskSpec::from_container("slow", |_, _| Ok(sh("sleep 600")))
            .execution_timeout(Duration::from_secs(20)),
    );
    let summary = run(&b.build().unwrap()).await;
    let task = |id: &str| {
        summary
            .tasks
            .iter()
            .find(|t| t.task_id.as_str() == id)
            .unwrap()
            .clone()
    };
    let broken = task("broken").error.unwrap();
    assert!(broken.contains("exited with code 3"), "{broken}");
    assert!(
        broken.ends_with("line3\nline4\nline5\nline6\nline7"),
        "{broken}"
    );
    assert_eq!(task("skipping").state, TaskState::Skipped);
    let unpullable = task("unpullable").error.unwrap();
    assert!(unpullable.contains("InvalidImageName"), "{unpullable}");
    let slow = task("slow").error.unwrap();
    assert!(slow.contains("exceeded its execution_timeout"), "{slow}");
    // Deleting takes the pod's grace second; it is asked for before the try is reported.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(pods_with("flow.dag_id=pod_failures").await.is_empty());
}

#[tokio::test]
async fn a_pod_left_by_a_killed_process_is_deleted_when_the_run_resumes() {
    if !cluster() {
        return;
    }
    let label = "flow.dag_id=podded";
    let home = tempfile::tempdir().unwrap();
    let fixture = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fixture"));
        cmd.env("FLOW_HOME", home.path()).env("FLOW_LOG", "warn");
        cmd
    };
    let mut first = fixture()
        .args(["dags", "test", "podded"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The first try's pod sleeps for an hour; wait until it exists, then kill flow.
    let mut running = Vec::new();
    for _ in 0..600 {
        running = pods_with(label).await;
        if !running.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(running.len(), 1, "the first try's pod");
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(pods_with(label).await, running, "the orphan is still there");

    let resumed = fixture()
        .args(["dags", "test", "podded", "--resume", "latest"])
        .output()
        .unwrap();
    assert!(
        resumed.status.success(),
        "{}{}",
        String::from_utf8_lossy(&resumed.stdout),
        String::from_utf8_lossy(&resumed.stderr)
    );
    let xcoms = fixture()
        .args([
            "tasks",
            "xcoms",
            "podded",
            "latest",
            "sleep_first_try_in_a_pod",
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&xcoms.stdout).contains("try 2"),
        "{}",
        String::from_utf8_lossy(&xcoms.stdout)
    );
    // The orphan was deleted before the second try's pod was created.
    let left = pods_with(label).await;
    assert!(left.iter().all(|p| !running.contains(p)), "{left:?}");
}

//! Task groups run as Airflow's do: the group's `default_args` govern its tasks' tries and
//! trigger rules, and `>>` around a group waits for (or gates) the whole group.

use std::sync::atomic::{AtomicU32, Ordering};

use flow_runtime::prelude::*;

static FLAKY_TRIES: AtomicU32 = AtomicU32::new(0);

#[task(retry_delay = "0s")]
fn flaky() -> anyhow::Result<u32> {
    let tries = FLAKY_TRIES.fetch_add(1, Ordering::SeqCst) + 1;
    anyhow::ensure!(tries >= 3, "try {tries} fails");
    Ok(tries)
}

#[task]
fn fail() -> anyhow::Result<()> {
    anyhow::bail!("this one fails")
}

#[task]
fn cleanup() -> String {
    "cleaned".to_string()
}

#[task]
fn start() {}

#[task]
fn after() {}

/// Retries its tasks twice.
#[task_group(default_args(retries = 2))]
fn resilient() -> Node<u32> {
    flaky()
}

/// Runs its tasks whatever happened upstream.
#[task_group(default_args(trigger_rule = "all_done"))]
fn always() {
    cleanup();
}

#[dag(default_args(retries = 0))]
fn grouped_run() {
    let tries = resilient();
    let done = after();
    start() >> always();
    fail() >> always() >> done;
    tries >> done;
}

#[test]
fn group_default_args_and_group_edges_hold_at_run_time() {
    let dag = grouped_run().unwrap();
    let run = dag.test().unwrap();
    // Two retries from the group let the third try succeed.
    assert_eq!(run.output::<u32>("resilient.flaky").unwrap(), 3);
    assert_eq!(run.task("resilient.flaky").unwrap().tries, 3);
    // `always__1` runs after a failed upstream (its group's rule); `after` needs both
    // `always__1`'s leaf and `resilient.flaky`, and runs. As in Airflow, the run's state
    // is its leaves': `fail` has a downstream, so the run succeeds.
    assert_eq!(run.task("fail").unwrap().state, TaskState::Failed);
    assert_eq!(
        run.output::<String>("always__1.cleanup").unwrap(),
        "cleaned"
    );
    assert_eq!(
        run.task("always.cleanup").unwrap().state,
        TaskState::Success
    );
    assert_eq!(run.task("after").unwrap().state, TaskState::Success);
    assert_eq!(run.state, RunState::Success);
    let after = dag.task("after").unwrap();
    let upstream: Vec<&str> = after
        .upstream()
        .iter()
        .map(|&u| dag.tasks()[u].id().as_str())
        .collect();
    assert_eq!(upstream, ["resilient.flaky", "always__1.cleanup"]);
}

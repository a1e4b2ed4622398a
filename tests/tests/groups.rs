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
        .map(|&u| dag[u].id().as_str())
        .collect();
    assert_eq!(upstream, ["resilient.flaky", "always__1.cleanup"]);
}

// ---- mapped task groups ----------------------------------------------------------------

#[task]
fn learning_rates() -> Vec<f64> {
    vec![0.1, 0.01, 0.001]
}

#[task]
fn load_rows() -> Vec<u32> {
    vec![3, 1, 2]
}

#[task]
fn fit(rows: Vec<u32>, rate: f64, epochs: u32) -> anyhow::Result<f64> {
    anyhow::ensure!(rate > 0.005, "rate {rate} diverges");
    Ok(rows.iter().map(|&r| f64::from(r)).sum::<f64>() * rate * f64::from(epochs))
}

#[task]
fn score(model: f64) -> u32 {
    (model * 100.0).round() as u32
}

#[task(trigger_rule = "all_done")]
fn cleanup_pass(rate: f64) -> String {
    format!("cleaned {rate}")
}

#[task(trigger_rule = "all_done")]
fn pick(scores: Vec<u32>) -> u32 {
    scores.into_iter().max().unwrap_or(0)
}

/// One training pass per learning rate: `fit` then `score` on the same rate.
#[task_group]
fn train(rows: Node<Vec<u32>>, rate: Node<f64>, epochs: u32) -> Node<u32> {
    let model = fit(rows, rate, epochs);
    cleanup_pass(rate);
    score(model)
}

#[dag]
fn sweep() {
    let rows = load_rows();
    let scores = train
        .partial(rows = rows, epochs = 2)
        .expand(rate = learning_rates());
    pick(scores);
}

#[test]
fn a_mapped_task_group_runs_one_pass_per_element() {
    let dag = sweep().unwrap();
    assert!(dag.task("train.fit").unwrap().is_mapped());
    let run = dag.test().unwrap();
    // Pass 2 (rate 0.001) fails in `fit`; its `score` is upstream_failed, its cleanup runs.
    let states =
        |task: &str| -> Vec<TaskState> { run.mapped(task).iter().map(|t| t.state).collect() };
    use TaskState::*;
    assert_eq!(states("train.fit"), [Success, Success, Failed]);
    assert_eq!(states("train.score"), [Success, Success, UpstreamFailed]);
    assert_eq!(states("train.cleanup_pass"), [Success; 3]);
    assert_eq!(
        run.output::<Vec<String>>("train.cleanup_pass").unwrap(),
        ["cleaned 0.1", "cleaned 0.01", "cleaned 0.001"]
    );
    // rows sum to 6, two epochs: 6 * 0.1 * 2 = 1.2 -> 120; 6 * 0.01 * 2 -> 12.
    assert_eq!(run.output::<Vec<u32>>("train.score").unwrap(), [120, 12]);
    assert_eq!(run.output::<u32>("pick").unwrap(), 120);
}

/// A group over literal rates, zipped with epochs; returns nothing, so `>>` orders it.
#[task_group]
fn tune(rate: Node<f64>, epochs: Node<u32>) {
    let rows = load_rows();
    fit(rows, rate, epochs);
}

#[dag]
fn zipped_sweep() {
    tune.expand_zip(rate = vec![0.5, 0.25, 0.125], epochs = vec![1, 2]) >> after();
}

#[test]
fn a_mapped_group_zips_literal_lists_and_orders_as_a_whole() {
    let dag = zipped_sweep().unwrap();
    let run = dag.test().unwrap();
    assert_eq!(run.output::<Vec<f64>>("tune.fit").unwrap(), [3.0, 3.0]);
    assert_eq!(run.mapped("tune.load_rows").len(), 2);
    assert_eq!(run.task("after").unwrap().state, TaskState::Success);
}

//! Macro output is warning-free under strict lints, including `clippy::pedantic`
//! (`tests/ui.rs` also compiles this file as a module, so `cargo clippy` checks it).
#![deny(
    warnings,
    missing_docs,
    unused_qualifications,
    unused_results,
    unreachable_pub
)]
#![deny(clippy::all, clippy::pedantic)]

use flow_runtime::prelude::*;

/// A record.
#[derive(Serialize, Deserialize)]
pub struct Record {
    /// Its value.
    pub value: u64,
}

/// Produces records.
#[task(
    retries = 2,
    retry_delay = "10m",
    owner = "lint",
    email = ["lint@example.com"],
    email_on_retry = false
)]
#[must_use]
pub fn produce(count: u64) -> Vec<Record> {
    (0..count).map(|value| Record { value }).collect()
}

/// Sums records.
///
/// # Errors
///
/// Never; the `Result` is for the test.
#[task(email = [])]
pub fn sum(ctx: &TaskContext, records: Vec<Record>) -> anyhow::Result<u64> {
    let _ = ctx.try_number();
    Ok(records.into_iter().map(|r| r.value).sum())
}

/// Reports asynchronously.
#[task]
pub async fn report(total: u64, label: String) -> String {
    std::future::ready(()).await;
    format!("{label}: {total}")
}

/// Fetches asynchronously, and may fail.
///
/// # Errors
///
/// When `count` is zero.
#[task(retries = 1)]
pub async fn fetch(ctx: &TaskContext, count: u64) -> Result<u64, std::io::Error> {
    std::future::ready(()).await;
    if count == 0 {
        return Err(std::io::Error::other(format!(
            "nothing in {}",
            ctx.task_id()
        )));
    }
    Ok(count)
}

/// Does nothing.
#[task]
pub fn noop() {}

/// Chooses a branch.
#[task(branch, trigger_rule = "none_failed_min_one_success")]
#[must_use]
pub fn choose(total: u64) -> Branch {
    if total > 2 {
        Branch::to("noop")
    } else {
        Branch::none()
    }
}

/// Goes on or not.
///
/// # Errors
///
/// Never.
#[task(
    short_circuit,
    retry_exponential_backoff = true,
    max_retry_delay = "1h",
    execution_timeout = "10m"
)]
pub fn go_on(total: u64) -> anyhow::Result<bool> {
    Ok(total > 0)
}

/// Many parameters.
#[task]
#[allow(clippy::too_many_arguments, clippy::many_single_char_names)]
#[must_use]
pub fn wide(a: u8, b: u8, c: u8, d: u8, e: u8, f: u8, g: u8, h: u8) -> u8 {
    a ^ b ^ c ^ d ^ e ^ f ^ g ^ h
}

/// Tells someone.
pub fn tell(event: &flow_runtime::callbacks::CallbackEvent) {
    let _ = event.state;
}

/// Counts in a shell.
#[task(shell, pool = "shell", pool_slots = 2, priority_weight = -5, on_retry = tell)]
#[must_use]
pub fn count_in_shell(ctx: &TaskContext, total: u64) -> flow_runtime::shell::ShellCommand {
    flow_runtime::shell::ShellCommand::bash(r#"echo "$TOTAL""#)
        .env("TOTAL", total.to_string())
        .env("TASK", ctx.task_id().as_str())
}

/// Counts in a shell, fallibly.
///
/// # Errors
///
/// Never.
#[task(shell, pool_slots = 1, on_success = tell, on_failure = tell)]
pub fn count_fallibly(total: u64) -> anyhow::Result<flow_runtime::shell::ShellCommand> {
    Ok(flow_runtime::shell::ShellCommand::bash(format!(
        "echo {total}"
    )))
}

/// Waits for enough records.
#[task(
    sensor,
    poke_interval = "30s",
    timeout = "1h",
    mode = "reschedule",
    soft_fail
)]
#[must_use]
pub fn enough(ctx: &TaskContext, total: u64) -> Poke<u64> {
    if total > u64::from(ctx.try_number()) {
        Poke::Ready(total)
    } else {
        Poke::NotYet
    }
}

/// Waits asynchronously, and may fail.
///
/// # Errors
///
/// When `total` is zero.
#[task(sensor, exponential_backoff)]
pub async fn settled(total: u64) -> anyhow::Result<Poke<String>> {
    std::future::ready(()).await;
    anyhow::ensure!(total > 0, "nothing to wait for");
    Ok(Poke::Ready(total.to_string()))
}

/// Records split in two.
#[derive(Serialize, Deserialize, MultipleOutputs)]
pub struct Halves {
    /// The first half.
    pub first: Vec<Record>,
    /// The second half.
    pub second: Vec<Record>,
}

/// Splits records.
#[task(multiple_outputs)]
#[must_use]
pub fn halve(mut records: Vec<Record>) -> Halves {
    let second = records.split_off(records.len() / 2);
    Halves {
        first: records,
        second,
    }
}

/// Sums the halves in a group.
#[task_group(default_args(retries = 3), tooltip = "sums")]
#[must_use]
pub fn summed(records: Node<Vec<Record>>) -> Node<u64> {
    let halves = halve(records);
    sum(halves.second);
    sum(halves.first)
}

/// Reports in a group of its own.
#[task_group(prefix_group_id = false)]
pub fn reported(total: Node<u64>, label: &'static str) {
    report(total, label);
}

/// A pipeline.
///
/// With a longer description.
#[dag(
    schedule = "0 2 * * *",
    timezone = "Europe/Amsterdam",
    start_date = "2025-01-01",
    end_date = "2030-01-01T00:00:00Z",
    catchup = false,
    max_active_runs = 2,
    max_active_tasks = 4,
    on_success = tell,
    on_failure = tell,
    dagrun_timeout = "1h 30m",
    tags = ["lint"],
    params(
        /// A threshold.
        threshold: f64 = 0.8,
        label: String = "total",
        count: u64,
        limit: Option<u32>,
    ),
    default_args(
        owner = "team",
        retries = 1,
        retry_delay = "300s",
        trigger_rule = "all_done",
        retry_exponential_backoff = false,
        max_retry_delay = "2h",
        execution_timeout = "1h 30m",
        pool = "default_pool",
        priority_weight = 2
    )
)]
pub fn pipeline() {
    let records = produce(fetch(3));
    let total = sum(records);
    choose(total) >> go_on(total);
    let text = report(total, "total");
    report(enough(total), settled(total));
    count_in_shell(total) >> count_fallibly(total);
    text >> noop() >> [wide(1, 2, 3, 4, 5, 6, 7, 8), noop()];
    [noop(), noop()] << noop();
    for label in ["a", "b"] {
        report(total, label);
    }
    let grouped = summed(produce(2));
    reported(grouped, "grouped") >> noop();
    let delay = { std::time::Duration::from_secs(5) };
    sum.r#override(task_id = "sum_again", retries = 2, retry_delay = delay)(produce(1));
    if cfg!(debug_assertions) {
        noop();
    } else {
        produce(1)
    }
}

/// Runs the pipeline.
///
/// # Panics
///
/// If the DAG is invalid.
pub fn main() {
    let dag = pipeline().expect("valid DAG");
    assert_eq!(dag.description(), Some("A pipeline."));
    assert_eq!(dag.params().len(), 4);
}

//! DAGs used by the end-to-end tests, through the public API and through the `fixture`
//! binary's CLI.

use std::sync::atomic::{AtomicU32, Ordering};

use flow_runtime::prelude::*;

/// A small struct passed along the chain.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Batch {
    /// Values.
    pub values: Vec<i64>,
    /// Where they came from.
    pub source: String,
}

/// Produces a batch.
#[task]
pub fn produce() -> Batch {
    Batch {
        values: vec![3, 1, 2],
        source: "fixture".into(),
    }
}

/// Sorts it.
#[task]
pub fn sort(mut batch: Batch) -> Batch {
    tracing::info!(values = batch.values.len(), "sorting");
    batch.values.sort_unstable();
    batch
}

/// Scales it by a literal factor.
#[task(retries = 3)]
pub async fn scale(batch: Batch, factor: i64) -> Batch {
    Batch {
        values: batch.values.iter().map(|v| v * factor).collect(),
        ..batch
    }
}

/// Sums it, with the context's ids in the result.
#[task]
pub fn total(ctx: &TaskContext, batch: Batch) -> anyhow::Result<String> {
    Ok(format!(
        "{}/{}/try{}: {}",
        ctx.dag_id(),
        ctx.task_id(),
        ctx.try_number(),
        batch.values.iter().sum::<i64>()
    ))
}

/// The four-task chain: produce -> sort -> scale -> total.
#[dag(schedule = "@daily", start_date = "2025-01-01", tags = ["fixture"])]
pub fn chain() {
    let batch = produce();
    let sorted = sort(batch);
    total(scale(sorted, 10));
}

/// Fails with a clear message.
#[task]
pub fn explode(ctx: &TaskContext) -> anyhow::Result<u32> {
    anyhow::bail!("source unavailable on {}", ctx.ds())
}

/// Never runs in `failing`.
#[task]
pub fn after_explode(value: u32) -> u32 {
    value
}

/// Panics.
#[task]
pub fn panics() -> u32 {
    panic!("index out of range")
}

/// Runs independently of the failures.
#[task]
pub fn independent() -> u32 {
    7
}

/// One failing branch, one panicking task, one independent task.
#[dag]
pub fn failing() {
    after_explode(explode());
    panics();
    independent();
}

static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);

/// Fails on its first two calls in this process, then succeeds.
#[task(retries = 2, retry_delay = "10ms")]
pub fn flaky(ctx: &TaskContext) -> anyhow::Result<u32> {
    let call = FLAKY_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    anyhow::ensure!(call > 2, "transient failure on call {call}");
    Ok(ctx.try_number())
}

/// A retried task with `default_args`.
#[dag(default_args(retries = 5, owner = "qa"))]
pub fn retrying() {
    flaky();
}

/// Appends `event task try` to the file named by `$FLOW_TEST_SIDE_FILE`, so tests can see
/// what ran even when the process is killed.
fn side_record(ctx: &TaskContext, event: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let Some(path) = std::env::var_os("FLOW_TEST_SIDE_FILE") else {
        return Ok(());
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    // One write of the whole line: with O_APPEND, concurrent tasks never interleave.
    file.write_all(format!("{event} {} {}\n", ctx.task_id(), ctx.try_number()).as_bytes())?;
    file.sync_data()?;
    Ok(())
}

/// A slow step: records its start, works for `$FLOW_TEST_STEP_MS` (default 300 ms),
/// records its end and returns `input + add`.
fn slow_step(ctx: &TaskContext, input: u64, add: u64) -> anyhow::Result<u64> {
    side_record(ctx, "start")?;
    let ms = std::env::var("FLOW_TEST_STEP_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    std::thread::sleep(std::time::Duration::from_millis(ms));
    tracing::info!(input, add, "step computed");
    side_record(ctx, "end")?;
    Ok(input + add)
}

/// First step.
#[task(retries = 5, retry_delay = "0s")]
pub fn step_a(ctx: &TaskContext) -> anyhow::Result<u64> {
    slow_step(ctx, 0, 1)
}

/// Adds 10.
#[task(retries = 5, retry_delay = "0s")]
pub fn step_b(ctx: &TaskContext, x: u64) -> anyhow::Result<u64> {
    slow_step(ctx, x, 10)
}

/// Adds 100.
#[task(retries = 5, retry_delay = "0s")]
pub fn step_c(ctx: &TaskContext, x: u64) -> anyhow::Result<u64> {
    slow_step(ctx, x, 100)
}

/// Adds both inputs.
#[task(retries = 5, retry_delay = "0s")]
pub fn step_sum(ctx: &TaskContext, left: u64, right: u64) -> anyhow::Result<u64> {
    slow_step(ctx, left, right)
}

/// A diamond of slow steps for the kill-and-resume test: `total` is
/// (11 + 101) + 111 = 223 only if no XCom was lost.
#[dag]
pub fn resumable() {
    let a = step_a();
    let b = step_b(a);
    let c = step_c(a);
    let d = step_b(c);
    let partial = step_sum(b, c);
    step_sum(partial, d);
}

/// Returns the run's params and context facts as one line.
#[task]
pub fn read_params(ctx: &TaskContext) -> anyhow::Result<String> {
    let threshold: f64 = ctx.param("threshold")?;
    let label: String = ctx.param("label")?;
    Ok(format!(
        "{label}:{threshold}:{}:{}:{}",
        ctx.run_type().as_str(),
        ctx.ds_nodash(),
        ctx.data_interval_end().format("%Y-%m-%d")
    ))
}

/// A daily DAG with typed params, built by hand.
pub fn with_params() -> Result<Dag, flow_runtime::DagError> {
    use flow_runtime::params::DagParam;
    let mut dag = DagBuilder::new("with_params")
        .schedule("@daily")
        .start_date("2025-01-01")
        .param(DagParam::new::<f64>("threshold").default(0.8))
        .param(DagParam::new::<String>("label"));
    read_params::node(&mut dag);
    dag.build()
}

flow_runtime::register_dag!("with_params", with_params);

/// Records each execution in the side file.
#[task]
pub fn tick(ctx: &TaskContext) -> anyhow::Result<String> {
    side_record(ctx, "tick")?;
    Ok(ctx.logical_date().to_rfc3339())
}

/// A DAG due every second (seconds-level cron), for the scheduler's end-to-end test.
pub fn every_second() -> Result<Dag, flow_runtime::DagError> {
    let mut dag = DagBuilder::new("every_second")
        .schedule("* * * * * *")
        .start_date("2025-01-01")
        .catchup(false);
    tick::node(&mut dag);
    dag.build()
}

flow_runtime::register_dag!("every_second", every_second);

/// One slow step a day, for the restart-mid-backfill test.
#[task(retries = 2, retry_delay = "0s")]
pub fn daily_step(ctx: &TaskContext) -> anyhow::Result<u64> {
    slow_step(ctx, 0, 1)
}

/// A daily DAG of one slow step, two runs at a time.
#[dag(schedule = "@daily", start_date = "2025-01-01")]
pub fn slow_daily() {
    daily_step();
}

/// Always fails.
#[task]
pub fn always_fails() -> anyhow::Result<u8> {
    anyhow::bail!("the source is down")
}

/// A daily DAG whose only task fails, for backfill's `--rerun-failed`.
#[dag(schedule = "@daily", start_date = "2025-01-01")]
pub fn daily_failing() {
    always_fails();
}

/// The partitions to process, for the mapping fixture.
#[task]
pub fn partitions() -> Vec<u32> {
    vec![3, 1, 2]
}

/// One mapped instance per partition; logs which one it is.
#[task]
pub fn process_partition(ctx: &TaskContext, partition: u32) -> u32 {
    tracing::info!(
        "processing partition {partition} as map index {:?}",
        ctx.map_index()
    );
    partition * 10
}

/// Receives every instance's result, in map order.
#[task]
pub fn combine(results: Vec<u32>) -> String {
    format!("{results:?}")
}

/// A fan-out over a list known at run time, and a fan-in.
#[dag]
pub fn mapped() {
    let results = process_partition.expand(partition = partitions());
    combine(results);
}

/// Waits, in reschedule mode, for the file named by `$FLOW_TEST_READY_FILE`; records each
/// poke in the side file. Its output is the file's contents.
#[task(sensor, poke_interval = "1s", timeout = "1h", mode = "reschedule")]
pub fn ready_file(ctx: &TaskContext) -> anyhow::Result<Poke<String>> {
    side_record(ctx, "poke")?;
    let path = std::env::var("FLOW_TEST_READY_FILE")?;
    Ok(match std::fs::read_to_string(path) {
        Ok(text) => Poke::Ready(text.trim().to_string()),
        Err(_) => Poke::NotYet,
    })
}

/// Reports what the sensor found.
#[task]
pub fn report_ready(contents: String) -> String {
    format!("found {contents}")
}

/// A sensor in reschedule mode and its consumer, for the restart test.
#[dag]
pub fn rescheduled() {
    report_ready(ready_file());
}

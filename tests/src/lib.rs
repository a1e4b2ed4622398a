//! DAGs used by the end-to-end tests, through the public API and through the `fixture`
//! binary's CLI, and a real S3-compatible server for the object store tests ([`moto`]).

pub mod docker;
pub mod moto;

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

/// The bytes `big_output` returns: 100,000 of them, more than the default object store
/// threshold (64 KiB).
pub fn big_bytes() -> Vec<u8> {
    (0..100_000_u32).map(|i| (i % 251) as u8).collect()
}

/// Returns a value too large for a database row (retried once, at once).
#[task(retries = 1, retry_delay = "0s")]
pub fn big_output() -> Vec<u8> {
    big_bytes()
}

/// Returns a small value and pushes a large one under `pushed`.
#[task]
pub fn small_output(ctx: &TaskContext) -> anyhow::Result<u32> {
    ctx.xcom_push("pushed", &big_bytes())?;
    Ok(7)
}

/// Checks that the large return value arrived intact.
#[task]
pub fn summarize(data: Vec<u8>, small: u32) -> anyhow::Result<String> {
    anyhow::ensure!(
        data == big_bytes(),
        "the large return value arrived changed"
    );
    Ok(format!("{} bytes, small {small}", data.len()))
}

/// Pulls the large pushed value and checks it arrived intact.
#[task]
pub fn pull_pushed(ctx: &TaskContext, small: u32) -> anyhow::Result<usize> {
    let pushed: Vec<u8> = ctx.xcom_pull("small_output", "pushed")?;
    anyhow::ensure!(
        pushed == big_bytes(),
        "the large pushed value arrived changed"
    );
    Ok(pushed.len() + small as usize)
}

/// A large return value, a small one with a large push, and consumers of all three.
#[dag]
pub fn large_values() {
    let data = big_output();
    let small = small_output();
    summarize(data, small);
    pull_pushed(small);
}

/// What the artifact tasks store as their model.
pub const MODEL: &[u8] = b"weights: 0.25 0.5 0.25";

/// A sync task putting artifacts: bytes, and a file streamed from disk.
#[task]
pub fn save_model(ctx: &TaskContext) -> anyhow::Result<u64> {
    let artifacts = ctx.artifacts();
    artifacts.put("models/model.bin", MODEL)?;
    let dir = tempfile_dir(ctx)?;
    let file = dir.join("table.parquet");
    std::fs::write(&file, big_bytes())?;
    let size = artifacts.put_file("tables/date=2025-01-01/table.parquet", &file)?;
    std::fs::remove_dir_all(&dir)?;
    Ok(size)
}

/// An async task reading them back with the `_async` methods (and one blocking call,
/// which must not panic inside the runtime).
#[task]
pub async fn load_model(ctx: &TaskContext, size: u64) -> anyhow::Result<String> {
    let artifacts = ctx.artifacts();
    let model = artifacts.get_async("models/model.bin").await?;
    anyhow::ensure!(model == MODEL, "the model arrived changed");
    let dir = tempfile_dir(ctx)?;
    let copy = dir.join("copy.parquet");
    let copied = artifacts
        .get_file_async("tables/date=2025-01-01/table.parquet", &copy)
        .await?;
    anyhow::ensure!(
        copied == size && std::fs::read(&copy)? == big_bytes(),
        "the table arrived changed"
    );
    std::fs::remove_dir_all(&dir)?;
    artifacts
        .put_async("reports/summary.txt", b"ok".to_vec())
        .await?;
    anyhow::ensure!(
        artifacts.exists("reports/summary.txt")?,
        "a blocking call from async code"
    );
    Ok(artifacts.list_async().await?.join(","))
}

/// A scratch directory of this task instance.
fn tempfile_dir(ctx: &TaskContext) -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "flow-artifacts-{}-{}-{}",
        std::process::id(),
        ctx.task_id(),
        ctx.run_id().as_str().replace([':', '+'], "_")
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Artifacts put by a sync task and read by an async one.
#[dag]
pub fn model_artifacts() {
    load_model(save_model());
}

/// Lands a CSV at `data.csv` under the `landing` param's URL or directory and hands its
/// path on.
#[task]
pub fn land_csv(ctx: &TaskContext) -> anyhow::Result<ObjectPath> {
    let landing: String = ctx.param("landing")?;
    let csv = ctx.object_path(&landing)?.join("data.csv")?;
    csv.write(b"id,value\n1,10\n2,20\n".to_vec())?;
    Ok(csv)
}

/// Reads the landed CSV from async code through the path it received: the path carries
/// only its URL, and reaches the store with the run's settings.
#[task]
pub async fn count_rows(csv: ObjectPath) -> anyhow::Result<usize> {
    let text = String::from_utf8(csv.read_async().await?)?;
    Ok(text.lines().count() - 1)
}

/// Checks from sync code that the landed CSV is there.
#[task]
pub fn check_landed(csv: ObjectPath, rows: usize) -> anyhow::Result<String> {
    anyhow::ensure!(csv.exists()?, "{csv} is gone");
    Ok(format!("{rows} rows at {csv}"))
}

/// Data landed by URL (S3 or a local directory) and read downstream through the path.
#[dag(params(landing: String = "s3://flow-test/landing"))]
pub fn landed_objects() {
    let csv = land_csv();
    let rows = count_rows(csv);
    check_landed(csv, rows);
}

/// Logs a line, then waits (up to a minute) until the file named by
/// `$FLOW_TEST_RELEASE_FILE` exists, and logs another: a long task whose first line must
/// be readable from another process while it still runs.
#[task]
pub fn wait_for_release() -> anyhow::Result<u32> {
    let path = std::env::var("FLOW_TEST_RELEASE_FILE")?;
    tracing::info!("waiting for release");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !std::path::Path::new(&path).exists() {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "{path} did not appear"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    tracing::info!("released");
    Ok(1)
}

/// One long task, for reading its log while it runs.
#[dag]
pub fn long_logger() {
    wait_for_release();
}

/// Fails its first try and succeeds on the second (the try number decides, so a resumed
/// run agrees).
#[task(retries = 1, retry_delay = "0s")]
pub fn fails_first_try(ctx: &TaskContext) -> anyhow::Result<u32> {
    anyhow::ensure!(ctx.try_number() > 1, "the first try fails");
    Ok(ctx.try_number())
}

/// Opens a span of its own, then waits for `$FLOW_TEST_RELEASE_FILE` (see
/// [`wait_for_release()`]): a test looks at the process's metrics meanwhile, or at the
/// span's parent in a trace.
#[task]
pub fn hold(tries: u32, partitions: Vec<u32>) -> anyhow::Result<u32> {
    let _span = tracing::info_span!("holding", tries).entered();
    wait_for_release()?;
    Ok(tries + partitions.len() as u32)
}

/// What metrics and traces are tested on: a retried try, a mapped task, and a task that
/// waits for the test.
#[dag]
pub fn observed() {
    let tries = fails_first_try();
    let results = process_partition.expand(partition = partitions());
    hold(tries, results);
}

/// The image the container tests import: a root filesystem holding busybox only.
pub const TEST_IMAGE: &str = "flow-tests/busybox:1";

/// Runs in a container: its first try sleeps for an hour (a test kills the process
/// meanwhile, leaving the container behind), a later one prints its try number at once.
#[task(container, retries = 1, retry_delay = "0s")]
pub fn sleep_first_try() -> flow_runtime::task::container::ContainerSpec {
    use flow_runtime::task::container::{ContainerSpec, Network, PullPolicy};
    ContainerSpec::new(TEST_IMAGE)
        .command(["/bin/sh", "-c"])
        .arg(r#"if [ "$FLOW_TRY_NUMBER" = 1 ]; then sleep 3600; fi; echo "try $FLOW_TRY_NUMBER""#)
        .network(Network::None)
        .pull(PullPolicy::Never)
}

/// One container task, for killing the process while it runs.
#[dag]
pub fn contained() {
    sleep_first_try();
}

/// The image the pod tests run: pulled by the cluster from Docker Hub.
pub const POD_IMAGE: &str = "busybox:1.36";

/// As [`sleep_first_try()`], in a Kubernetes pod.
#[task(container, retries = 1, retry_delay = "0s")]
pub fn sleep_first_try_in_a_pod() -> flow_runtime::task::container::ContainerSpec {
    use flow_runtime::task::container::{ContainerSpec, PodOptions};
    ContainerSpec::new(POD_IMAGE)
        .command(["/bin/sh", "-c"])
        .arg(r#"if [ "$FLOW_TRY_NUMBER" = 1 ]; then sleep 3600; fi; echo "try $FLOW_TRY_NUMBER""#)
        .pod(PodOptions::new())
}

/// One pod task, for killing the process while it runs, and for a cluster that cannot be
/// reached.
#[dag]
pub fn podded() {
    sleep_first_try_in_a_pod();
}

/// Picks the `right` path and pushes how many rows it saw.
#[task(branch)]
pub fn choose(ctx: &TaskContext) -> anyhow::Result<Branch> {
    ctx.xcom_push("rows", &3_u64)?;
    Ok(Branch::to("right"))
}

/// A path a branch may follow.
#[task]
pub fn left() {}

/// A path a branch may follow.
#[task]
pub fn right() {}

/// A branch between two paths, for reading what it decided.
#[dag]
pub fn steering() {
    choose() >> [left(), right()];
}

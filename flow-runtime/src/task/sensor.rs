//! Sensors: tasks that wait for a condition, poking it every `poke_interval` until it
//! holds or `timeout` passes (Airflow's sensors).
//!
//! In [`SensorMode::Poke`] one try pokes in a loop, sleeping between pokes without
//! holding a thread. In [`SensorMode::Reschedule`] each poke is a short try of its own:
//! between pokes the instance is `up_for_reschedule`, holds no executor or pool slot, and
//! the executor queues it again at the next poke's time, keeping its try number. The
//! time of the first poke is stored, so the timeout counts from it across restarts.
//!
//! A sensor that times out fails without retrying, or ends `skipped` with `soft_fail`
//! (the skip then propagates like any other).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveTime, Utc};

use super::context::TaskContext;
use super::error::TaskError;
use super::spec::{BoxFuture, Inputs, TaskFn, TaskSpec, encode_output};
use crate::ids::{DagId, TaskId};
use crate::state::TaskState;
use crate::xcom::XComValue;

/// The answer of one poke.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Poke<T> {
    /// Not yet: poke again after the interval.
    NotYet,
    /// The condition holds; the value is the task's output.
    Ready(T),
}

/// How a sensor waits between pokes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SensorMode {
    /// One try pokes in a loop and keeps its slot while it sleeps (Airflow's default).
    #[default]
    Poke,
    /// Each poke is short; between pokes the instance is `up_for_reschedule` and holds no
    /// slot. For long waits.
    Reschedule,
}

impl SensorMode {
    /// Airflow's name of the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            SensorMode::Poke => "poke",
            SensorMode::Reschedule => "reschedule",
        }
    }
}

/// How a sensor pokes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SensorOptions {
    /// The pause between pokes (Airflow's default: 60 s).
    pub poke_interval: Duration,
    /// How long to keep poking, from the first poke, before giving up (Airflow's default:
    /// 7 days).
    pub timeout: Duration,
    /// Whether to keep the slot between pokes or give it back.
    pub mode: SensorMode,
    /// End `skipped` instead of `failed` on timeout.
    pub soft_fail: bool,
    /// Double the pause after each poke (up to the time left).
    pub exponential_backoff: bool,
}

impl Default for SensorOptions {
    fn default() -> Self {
        Self {
            poke_interval: Duration::from_secs(60),
            timeout: Duration::from_secs(7 * 24 * 3600),
            mode: SensorMode::Poke,
            soft_fail: false,
            exponential_backoff: false,
        }
    }
}

impl SensorOptions {
    /// Sets `poke_interval`.
    pub fn with_poke_interval(mut self, interval: Duration) -> Self {
        self.poke_interval = interval;
        self
    }

    /// Sets `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets `mode`.
    pub fn with_mode(mut self, mode: SensorMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets `soft_fail`.
    pub fn with_soft_fail(mut self, on: bool) -> Self {
        self.soft_fail = on;
        self
    }

    /// Sets `exponential_backoff`.
    pub fn with_exponential_backoff(mut self, on: bool) -> Self {
        self.exponential_backoff = on;
        self
    }

    /// The pause after the `not_yet`-th "not yet" answer (from 1), `elapsed` after the
    /// first poke; the timeout error when the next poke would come after the timeout.
    /// The same rule in both modes.
    fn next_pause(&self, not_yet: u32, elapsed: Duration) -> Result<Duration, TaskError> {
        let mut pause = self.poke_interval;
        if self.exponential_backoff {
            let doublings = not_yet.saturating_sub(1).min(31);
            let left = self
                .timeout
                .saturating_sub(elapsed)
                .max(Duration::from_millis(1));
            pause = pause.saturating_mul(1 << doublings).min(left);
        }
        if elapsed + pause <= self.timeout {
            return Ok(pause);
        }
        let message = format!(
            "sensor timed out after {} ({not_yet} pokes, timeout {})",
            humantime::format_duration(Duration::from_millis(
                u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
            )),
            humantime::format_duration(self.timeout)
        );
        Err(if self.soft_fail {
            TaskError::SoftFail(message)
        } else {
            TaskError::SensorTimeout(message)
        })
    }
}

/// One poke, as a future; what both sensor constructors reduce their functions to.
type PokeFn<T> =
    Arc<dyn Fn(TaskContext, Inputs) -> BoxFuture<Result<Poke<T>, TaskError>> + Send + Sync>;

impl TaskSpec {
    /// A sensor from a blocking poke function; each poke runs on the blocking pool.
    ///
    /// ```
    /// use std::time::Duration;
    /// use flow_runtime::prelude::*;
    /// use flow_runtime::task::sensor::{Poke, SensorMode, SensorOptions};
    /// let options = SensorOptions::default()
    ///     .with_poke_interval(Duration::from_secs(5))
    ///     .with_mode(SensorMode::Reschedule);
    /// let ready = TaskSpec::sensor("marker", options, |_ctx, _inputs| {
    ///     Ok(if std::path::Path::new("/tmp/ready").exists() { Poke::Ready(()) } else { Poke::NotYet })
    /// });
    /// assert_eq!(ready.name().as_str(), "marker");
    /// ```
    pub fn sensor<T, F>(name: impl Into<TaskId>, options: SensorOptions, poke: F) -> Self
    where
        T: XComValue,
        F: Fn(&TaskContext, &Inputs) -> Result<Poke<T>, TaskError> + Send + Sync + 'static,
    {
        let poke = Arc::new(poke);
        let poke: PokeFn<T> = Arc::new(move |ctx, inputs| {
            let poke = poke.clone();
            let span = tracing::Span::current();
            Box::pin(async move {
                let objects = ctx.objects().cloned();
                let call = move || {
                    crate::objects::with_run_objects_sync(objects, || {
                        span.in_scope(|| poke(&ctx, &inputs))
                    })
                };
                tokio::task::spawn_blocking(call)
                    .await
                    .map_err(|e| TaskError::Panicked(format!("the poke panicked: {e}")))?
            })
        });
        sensor_spec(name, options, poke)
    }

    /// A sensor from an async poke function, polled on the runtime.
    ///
    /// ```
    /// use flow_runtime::prelude::*;
    /// use flow_runtime::task::sensor::{Poke, SensorOptions};
    /// let ready = TaskSpec::async_sensor("ticket", SensorOptions::default(), |_ctx, _inputs| async {
    ///     Ok(Poke::Ready(42_u32))
    /// });
    /// assert_eq!(ready.output().type_name(), "u32");
    /// ```
    pub fn async_sensor<T, F, Fut>(name: impl Into<TaskId>, options: SensorOptions, poke: F) -> Self
    where
        T: XComValue,
        F: Fn(TaskContext, Inputs) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Poke<T>, TaskError>> + Send + 'static,
    {
        let poke: PokeFn<T> = Arc::new(move |ctx, inputs| Box::pin(poke(ctx, inputs)));
        sensor_spec(name, options, poke)
    }
}

fn sensor_spec<T: XComValue>(
    name: impl Into<TaskId>,
    options: SensorOptions,
    poke: PokeFn<T>,
) -> TaskSpec {
    let function = TaskFn::Async(Arc::new(move |ctx, inputs| {
        let poke = poke.clone();
        Box::pin(async move {
            let value = match options.mode {
                SensorMode::Poke => poke_until_ready(ctx, inputs, &options, &poke).await?,
                SensorMode::Reschedule => poke_once(ctx, inputs, &options, &poke).await?,
            };
            encode_output(value)
        })
    }));
    TaskSpec::new::<T>(name, function)
}

/// Poke mode: pokes in a loop within one try.
async fn poke_until_ready<T: XComValue>(
    ctx: TaskContext,
    inputs: Inputs,
    options: &SensorOptions,
    poke: &PokeFn<T>,
) -> Result<T, TaskError> {
    let started = Instant::now();
    let mut not_yet = 0_u32;
    loop {
        if let Poke::Ready(value) = poke(ctx.clone(), inputs.clone()).await? {
            tracing::info!(pokes = not_yet + 1, "sensor condition met");
            return Ok(value);
        }
        not_yet += 1;
        let pause = options.next_pause(not_yet, started.elapsed())?;
        tracing::info!(
            pokes = not_yet,
            "sensor condition not met; poking again in {}",
            humantime::format_duration(pause)
        );
        tokio::time::sleep(pause).await;
    }
}

/// Reschedule mode: one poke; "not yet" asks the executor to poke again later.
async fn poke_once<T: XComValue>(
    ctx: TaskContext,
    inputs: Inputs,
    options: &SensorOptions,
    poke: &PokeFn<T>,
) -> Result<T, TaskError> {
    let history = ctx.pokes();
    let started = Utc::now();
    if let Poke::Ready(value) = poke(ctx, inputs).await? {
        tracing::info!(pokes = history.not_yet + 1, "sensor condition met");
        return Ok(value);
    }
    let now = Utc::now();
    let first = history.first.unwrap_or(started);
    let elapsed = (now - first).to_std().unwrap_or_default();
    let pause = options.next_pause(history.not_yet + 1, elapsed)?;
    tracing::info!(
        pokes = history.not_yet + 1,
        "sensor condition not met; rescheduled in {}",
        humantime::format_duration(pause)
    );
    Err(TaskError::Reschedule {
        at: now + chrono::Duration::from_std(pause).unwrap_or(chrono::TimeDelta::MAX),
    })
}

/// Ready when `path` exists; its output is the path.
pub fn file_exists(
    name: impl Into<TaskId>,
    path: impl Into<PathBuf>,
    options: SensorOptions,
) -> TaskSpec {
    let path = path.into();
    TaskSpec::sensor(name, options, move |_, _| {
        Ok(if path.exists() {
            Poke::Ready(path.display().to_string())
        } else {
            Poke::NotYet
        })
    })
}

/// Ready when at least one path matches the glob `pattern` (`/data/*.csv`,
/// `/in/**/done`); its output is the matching paths, sorted. A pattern that is not a valid
/// glob fails the task, saying where.
pub fn glob_exists(
    name: impl Into<TaskId>,
    pattern: impl Into<String>,
    options: SensorOptions,
) -> TaskSpec {
    let pattern = pattern.into();
    TaskSpec::sensor(name, options, move |_, _| {
        let paths = glob::glob(&pattern).map_err(|e| {
            TaskError::Failed(format!(
                "`{pattern}` is not a valid glob pattern: {e}; write patterns like `/data/*.csv`"
            ))
        })?;
        let mut found: Vec<String> = paths
            .filter_map(Result::ok)
            .map(|path| path.display().to_string())
            .collect();
        found.sort();
        Ok(if found.is_empty() {
            Poke::NotYet
        } else {
            Poke::Ready(found)
        })
    })
}

/// Ready when an object exists (Airflow's `S3KeySensor`); its output is `key_or_url` as
/// poked. `key_or_url` is a URL (`s3://bucket/landing/data.csv`, `file:///srv/data.csv`)
/// or a key below the root of the run's object store (`landing/data.csv`); `{ds}` and
/// `{ds_nodash}` in it become the run's logical date. A URL on the same kind of store as
/// the run's uses that store's settings (endpoint, credentials), else the environment's
/// (`AWS_*`). A store that cannot be reached fails the try (retries apply).
///
/// ```
/// use std::time::Duration;
/// use flow_runtime::task::sensor::{self, SensorOptions};
/// let options = SensorOptions { poke_interval: Duration::from_secs(30), ..Default::default() };
/// let landed = sensor::object_exists("wait_for_export", "s3://exports/{ds}/orders.parquet", options);
/// assert_eq!(landed.name().as_str(), "wait_for_export");
/// ```
pub fn object_exists(
    name: impl Into<TaskId>,
    key_or_url: impl Into<String>,
    options: SensorOptions,
) -> TaskSpec {
    let template = key_or_url.into();
    TaskSpec::sensor(name, options, move |ctx, _| {
        let target = template
            .replace("{ds}", &ctx.ds())
            .replace("{ds_nodash}", &ctx.ds_nodash());
        let found = crate::objects::object_exists_blocking(ctx.objects(), &target)
            .map_err(|e| TaskError::Failed(e.to_string()))?;
        Ok(if found {
            Poke::Ready(target)
        } else {
            Poke::NotYet
        })
    })
}

/// Ready once `delta` has passed after the end of the run's data interval (Airflow's
/// `TimeDeltaSensor`).
pub fn time_delta(name: impl Into<TaskId>, delta: Duration, options: SensorOptions) -> TaskSpec {
    TaskSpec::sensor(name, options, move |ctx, _| {
        let due = ctx.data_interval_end()
            + chrono::Duration::from_std(delta).unwrap_or(chrono::TimeDelta::MAX);
        Ok(if Utc::now() >= due {
            Poke::Ready(())
        } else {
            Poke::NotYet
        })
    })
}

/// The moment a [`date_time`] sensor waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetTime {
    /// A fixed UTC time.
    At(DateTime<Utc>),
    /// A time of day (UTC) on the run's logical date.
    OnLogicalDate(NaiveTime),
}

/// Ready once the target time has come (Airflow's `DateTimeSensor`); its output is the
/// target time.
pub fn date_time(name: impl Into<TaskId>, target: TargetTime, options: SensorOptions) -> TaskSpec {
    TaskSpec::sensor(name, options, move |ctx, _| {
        let due = match target {
            TargetTime::At(at) => at,
            TargetTime::OnLogicalDate(time) => {
                ctx.logical_date().date_naive().and_time(time).and_utc()
            }
        };
        Ok(if Utc::now() >= due {
            Poke::Ready(due)
        } else {
            Poke::NotYet
        })
    })
}

/// What an [`external_task`] sensor waits for, besides the DAG and task.
#[derive(Clone, Debug, PartialEq)]
pub struct ExternalTaskOptions {
    /// The states that make the sensor ready (default `success`).
    pub allowed_states: Vec<TaskState>,
    /// The states that fail the sensor at once (default `failed`, `upstream_failed`).
    pub failed_states: Vec<TaskState>,
    /// How far before this run's logical date the other run's logical date is (default
    /// 0: the same logical date).
    pub execution_delta: Duration,
}

impl Default for ExternalTaskOptions {
    fn default() -> Self {
        Self {
            allowed_states: vec![TaskState::Success],
            failed_states: vec![TaskState::Failed, TaskState::UpstreamFailed],
            execution_delta: Duration::ZERO,
        }
    }
}

/// Ready when task `external_task_id` of DAG `external_dag_id`, in its run for the same
/// logical date (less `wait.execution_delta`), is in one of `wait.allowed_states`; fails as
/// soon as it is in one of `wait.failed_states` (Airflow's `ExternalTaskSensor`). It reads
/// the store the executor records into, so both DAGs must share it.
///
/// ```
/// use flow_runtime::task::sensor::{ExternalTaskOptions, SensorOptions, external_task};
/// let upstream = external_task(
///     "wait_for_ingest",
///     "ingest",
///     "load",
///     ExternalTaskOptions::default(),
///     SensorOptions::default(),
/// );
/// assert_eq!(upstream.name().as_str(), "wait_for_ingest");
/// ```
pub fn external_task(
    name: impl Into<TaskId>,
    external_dag_id: impl Into<DagId>,
    external_task_id: impl Into<TaskId>,
    wait: ExternalTaskOptions,
    options: SensorOptions,
) -> TaskSpec {
    let (dag_id, task_id) = (external_dag_id.into(), external_task_id.into());
    TaskSpec::sensor(name, options, move |ctx, _| {
        poke_external(ctx, &dag_id, &task_id, &wait)
    })
}

fn poke_external(
    ctx: &TaskContext,
    dag_id: &DagId,
    task_id: &TaskId,
    wait: &ExternalTaskOptions,
) -> Result<Poke<()>, TaskError> {
    if let Some(both) = wait
        .allowed_states
        .iter()
        .find(|state| wait.failed_states.contains(state))
    {
        return Err(TaskError::Failed(format!(
            "state `{both}` is both allowed and failed for the external task `{task_id}` of DAG `{dag_id}`; \
             list each state in one of allowed_states and failed_states"
        )));
    }
    let delta = chrono::Duration::from_std(wait.execution_delta).unwrap_or(chrono::TimeDelta::MAX);
    let logical_date = ctx.logical_date() - delta;
    let states = ctx
        .runs()
        .task_states_at(dag_id, task_id, logical_date)
        .map_err(|e| TaskError::Failed(format!("cannot read the runs of DAG `{dag_id}`: {e}")))?;
    for instance in &states {
        let run = &instance.run_id;
        if wait.allowed_states.contains(&instance.state) {
            tracing::info!(run = %run, state = %instance.state, "external task `{task_id}` of DAG `{dag_id}` is done");
            return Ok(Poke::Ready(()));
        }
        if wait.failed_states.contains(&instance.state) {
            return Err(TaskError::Failed(format!(
                "the external task `{task_id}` of DAG `{dag_id}` is `{}` in run `{}` (logical date {})",
                instance.state,
                run,
                logical_date.to_rfc3339()
            )));
        }
    }
    tracing::info!(
        "waiting for task `{task_id}` of DAG `{dag_id}` at logical date {}",
        logical_date.to_rfc3339()
    );
    Ok(Poke::NotYet)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_back_off_up_to_the_time_left_and_time_out_alike_in_both_modes() {
        let options = SensorOptions::default()
            .with_poke_interval(Duration::from_secs(10))
            .with_timeout(Duration::from_secs(100));
        assert_eq!(
            options.next_pause(5, Duration::from_secs(50)),
            Ok(Duration::from_secs(10))
        );
        assert!(matches!(
            options.next_pause(10, Duration::from_secs(95)),
            Err(TaskError::SensorTimeout(m)) if m.contains("10 pokes")
        ));
        let backoff = options.with_exponential_backoff(true).with_soft_fail(true);
        assert_eq!(
            backoff.next_pause(1, Duration::ZERO),
            Ok(Duration::from_secs(10))
        );
        assert_eq!(
            backoff.next_pause(3, Duration::from_secs(30)),
            Ok(Duration::from_secs(40))
        );
        assert_eq!(
            backoff.next_pause(4, Duration::from_secs(70)),
            Ok(Duration::from_secs(30))
        );
        assert!(matches!(
            backoff.next_pause(5, Duration::from_secs(100)),
            Err(TaskError::SoftFail(_))
        ));
    }
}

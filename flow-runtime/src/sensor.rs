//! Sensors: tasks that wait for a condition, poking it every `poke_interval` until it
//! holds or `timeout` passes (Airflow's sensors in `poke` mode).
//!
//! A sensor that times out fails without retrying, or ends `skipped` with `soft_fail`
//! (the skip then propagates like any other). Between pokes a sensor sleeps without
//! holding a thread; each poke runs on the blocking pool.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::context::TaskContext;
use crate::error::TaskError;
use crate::ids::TaskId;
use crate::task::{Inputs, TaskFn, TaskSpec, encode_output};
use crate::xcom::XComValue;

/// The answer of one poke.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Poke<T> {
    /// Not yet: poke again after the interval.
    NotYet,
    /// The condition holds; the value is the task's output.
    Ready(T),
}

/// How a sensor pokes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SensorOptions {
    /// The pause between pokes (Airflow's default: 60 s).
    pub poke_interval: Duration,
    /// How long to keep poking before giving up (Airflow's default: 7 days).
    pub timeout: Duration,
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
            soft_fail: false,
            exponential_backoff: false,
        }
    }
}

impl TaskSpec {
    /// A sensor from a blocking poke function.
    ///
    /// ```
    /// use std::time::Duration;
    /// use flow_runtime::prelude::*;
    /// use flow_runtime::sensor::{Poke, SensorOptions};
    /// let options = SensorOptions { poke_interval: Duration::from_secs(5), ..Default::default() };
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
        let function = TaskFn::Async(Arc::new(move |ctx, inputs| {
            let poke = poke.clone();
            Box::pin(async move {
                encode_output(poke_until_ready(&ctx, &inputs, &options, poke).await?)
            })
        }));
        Self::new::<T>(name, function)
    }
}

async fn poke_until_ready<T, F>(
    ctx: &TaskContext,
    inputs: &Inputs,
    options: &SensorOptions,
    poke: Arc<F>,
) -> Result<T, TaskError>
where
    T: XComValue,
    F: Fn(&TaskContext, &Inputs) -> Result<Poke<T>, TaskError> + Send + Sync + 'static,
{
    let started = Instant::now();
    let mut interval = options.poke_interval;
    let mut pokes = 0_u32;
    loop {
        pokes += 1;
        let (ctx_c, inputs_c, poke_c) = (ctx.clone(), inputs.clone(), poke.clone());
        let answer = tokio::task::spawn_blocking(move || poke_c(&ctx_c, &inputs_c))
            .await
            .map_err(|e| TaskError::Panicked(format!("the poke panicked: {e}")))??;
        if let Poke::Ready(value) = answer {
            tracing::info!(pokes, "sensor condition met");
            return Ok(value);
        }
        let elapsed = started.elapsed();
        if elapsed + interval > options.timeout {
            let message = format!(
                "sensor timed out after {} ({pokes} pokes, timeout {})",
                humantime::format_duration(Duration::from_millis(
                    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
                )),
                humantime::format_duration(options.timeout)
            );
            return Err(if options.soft_fail {
                TaskError::SoftFail(message)
            } else {
                TaskError::SensorTimeout(message)
            });
        }
        tracing::info!(
            pokes,
            "sensor condition not met; poking again in {}",
            humantime::format_duration(interval)
        );
        tokio::time::sleep(interval).await;
        if options.exponential_backoff {
            interval = (interval * 2).min(
                options
                    .timeout
                    .saturating_sub(started.elapsed())
                    .max(Duration::from_millis(1)),
            );
        }
    }
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

/// Ready when an object exists (Airflow's `S3KeySensor`); its output is `key_or_url` as
/// poked. `key_or_url` is a URL (`s3://bucket/landing/data.csv`, `file:///srv/data.csv`)
/// or a key below the root of the run's object store (`landing/data.csv`); `{ds}` and
/// `{ds_nodash}` in it become the run's logical date. A URL on the same kind of store as
/// the run's uses that store's settings (endpoint, credentials), else the environment's
/// (`AWS_*`). A store that cannot be reached fails the try (retries apply).
///
/// ```
/// use std::time::Duration;
/// use flow_runtime::sensor::{self, SensorOptions};
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
        Ok(if chrono::Utc::now() >= due {
            Poke::Ready(())
        } else {
            Poke::NotYet
        })
    })
}

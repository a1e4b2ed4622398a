//! Airflow's standard operators: built-in tasks called in a `#[dag]` body like any
//! `#[task]` (`use flow_runtime::operators::latest_only;` then `latest_only() >> work()`),
//! or added with their `node` in the builder API; and calls a task makes
//! ([`TriggerDagRun`]).

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::graph::{DagBuilder, Node};
use crate::ids::{DagId, RunId, RunType};
use crate::state::RunState;
use crate::task::{TaskContext, TaskError, TaskOverride, TaskSpec};
use crate::xcom::ports::TriggerFailure;

/// Airflow's `LatestOnlyOperator`: the tasks directly downstream of it run only in the
/// run of the latest schedule interval, and are skipped in older ones (a catch-up, a
/// backfill); the tasks after those follow their own trigger rules. A manual run, and a
/// run after which the schedule has no other, always go on.
///
/// "Latest" is Airflow's window: the current time is after the start of the run's data
/// interval and no later than the end of the next run's.
///
/// ```
/// use flow_runtime::prelude::*;
/// use flow_runtime::operators::latest_only;
///
/// #[task]
/// fn refresh_dashboard() {}
///
/// #[dag(schedule = "@daily", start_date = "2025-01-01")]
/// fn dashboards() {
///     latest_only() >> refresh_dashboard();
/// }
/// # let dag = dashboards().unwrap();
/// # assert_eq!(dag.task("refresh_dashboard").unwrap().upstream().len(), 1);
/// ```
#[allow(non_camel_case_types)]
pub struct latest_only {}

impl latest_only {
    /// The task, with id `latest_only`.
    pub fn spec() -> TaskSpec {
        TaskSpec::from_sync("latest_only", |ctx, _| {
            Ok::<bool, TaskError>(is_latest_run(ctx, Utc::now()))
        })
        .short_circuit_with(false)
    }

    /// Adds the task to a DAG.
    pub fn node(dag: &mut DagBuilder) -> Node<bool> {
        dag.add_task(Self::spec()).finish()
    }

    /// Adds the task to a DAG with another id or other options.
    pub fn node_with(dag: &mut DagBuilder, over: TaskOverride) -> Node<bool> {
        dag.add_task(Self::spec().overridden(&over)).finish()
    }

    /// What a `#[dag]` body calls for `latest_only()`, as for a `#[task]`.
    #[doc(hidden)]
    pub fn __flow_call() -> DagCall<'static> {
        Box::new(Self::node)
    }

    /// What a `#[dag]` body calls for `latest_only.r#override(..)()`.
    #[doc(hidden)]
    pub fn __flow_call_with(over: TaskOverride) -> DagCall<'static> {
        Box::new(move |dag: &mut DagBuilder| Self::node_with(dag, over))
    }
}

/// A task added once the DAG body hands over its builder.
type DagCall<'a> = Box<dyn FnOnce(&mut DagBuilder) -> Node<bool> + 'a>;

/// Whether the run of `ctx` is the one of the latest schedule interval at `now`.
pub fn is_latest_run(ctx: &TaskContext, now: DateTime<Utc>) -> bool {
    if ctx.run_type() == RunType::Manual {
        tracing::info!("a manual run: the tasks downstream go on");
        return true;
    }
    let Some(next) = ctx.next_data_interval() else {
        tracing::info!("the last scheduled run: the tasks downstream go on");
        return true;
    };
    let latest = ctx.data_interval_start() < now && now <= next.end;
    if latest {
        tracing::info!("the latest run: the tasks downstream go on");
    } else {
        tracing::info!(
            window_start = %ctx.data_interval_start(),
            window_end = %next.end,
            "not the latest run: skipping the tasks directly downstream"
        );
    }
    latest
}

/// Airflow's `TriggerDagRunOperator`, as a call a task makes: records a manual run of
/// another DAG of this binary (`queued`, for a scheduler to run, as `dags trigger` does)
/// with a conf checked against that DAG's params, and optionally waits for it to end.
/// Returns the new run's id (so the task's return value names it, as Airflow's
/// `trigger_run_id` XCom does).
///
/// ```
/// use flow_runtime::prelude::*;
/// use flow_runtime::operators::TriggerDagRun;
/// use std::time::Duration;
///
/// #[task]
/// async fn start_report(ctx: &TaskContext, day: String) -> Result<String, TaskError> {
///     let run = TriggerDagRun::new("daily_report")
///         .conf(serde_json::json!({ "day": day }))
///         .wait_for_completion(Duration::from_secs(30))
///         .run(ctx)
///         .await?;
///     Ok(run.to_string())
/// }
/// ```
///
/// Failing cases, as in Airflow: an unknown DAG or a conf that does not fit its params
/// fails the task; a run that exists already (same logical date) fails it too, or skips
/// it with [`TriggerDagRun::skip_when_already_exists`]; when waiting, a run that ends in
/// one of `failed_states` (default `failed`) fails the task at once, without retries.
#[derive(Clone, Debug)]
pub struct TriggerDagRun {
    dag_id: DagId,
    conf: Option<serde_json::Value>,
    logical_date: Option<DateTime<Utc>>,
    wait: Option<Duration>,
    allowed_states: Vec<RunState>,
    failed_states: Vec<RunState>,
    skip_when_already_exists: bool,
}

impl TriggerDagRun {
    /// Triggers a run of `dag_id`, with its default params, at the current time.
    pub fn new(dag_id: impl Into<DagId>) -> Self {
        Self {
            dag_id: dag_id.into(),
            conf: None,
            logical_date: None,
            wait: None,
            allowed_states: vec![RunState::Success],
            failed_states: vec![RunState::Failed],
            skip_when_already_exists: false,
        }
    }

    /// The run's conf (a JSON object), checked against the DAG's params.
    #[must_use]
    pub fn conf(mut self, conf: serde_json::Value) -> Self {
        self.conf = Some(conf);
        self
    }

    /// The run's logical date (default: now).
    #[must_use]
    pub fn logical_date(mut self, date: DateTime<Utc>) -> Self {
        self.logical_date = Some(date);
        self
    }

    /// Waits until the run ends, looking every `poke_interval` (Airflow's
    /// `wait_for_completion=True`, default interval 60 s).
    #[must_use]
    pub fn wait_for_completion(mut self, poke_interval: Duration) -> Self {
        self.wait = Some(poke_interval);
        self
    }

    /// The end states that let the task succeed when waiting (default `success`).
    #[must_use]
    pub fn allowed_states(mut self, states: impl IntoIterator<Item = RunState>) -> Self {
        self.allowed_states = states.into_iter().collect();
        self
    }

    /// The end states that fail the task when waiting (default `failed`).
    #[must_use]
    pub fn failed_states(mut self, states: impl IntoIterator<Item = RunState>) -> Self {
        self.failed_states = states.into_iter().collect();
        self
    }

    /// Skips the task instead of failing it when the run exists already.
    #[must_use]
    pub fn skip_when_already_exists(mut self) -> Self {
        self.skip_when_already_exists = true;
        self
    }

    /// Triggers the run (and waits for it if asked); returns its id.
    ///
    /// # Errors
    ///
    /// As the type's documentation says.
    pub async fn run(self, ctx: &TaskContext) -> Result<RunId, TaskError> {
        let date = self.logical_date.unwrap_or_else(Utc::now);
        let run_id = match ctx
            .triggers()
            .trigger(&self.dag_id, date, self.conf.as_ref())
        {
            Ok(run_id) => run_id,
            Err(TriggerFailure::Exists { run_id, .. }) if self.skip_when_already_exists => {
                return Err(TaskError::Skip(format!(
                    "run `{run_id}` of DAG `{}` exists already",
                    self.dag_id
                )));
            }
            Err(e) => return Err(TaskError::Failed(format!("cannot trigger: {e}"))),
        };
        tracing::info!(dag = %self.dag_id, run = %run_id, "triggered a run");
        let Some(interval) = self.wait else {
            return Ok(run_id);
        };
        loop {
            tokio::time::sleep(interval).await;
            let state = ctx
                .triggers()
                .run_state(&self.dag_id, &run_id)
                .map_err(|e| TaskError::Failed(e.to_string()))?;
            let Some(state) = state else {
                return Err(TaskError::FailNow(format!(
                    "run `{run_id}` of DAG `{}` was deleted while waiting for it",
                    self.dag_id
                )));
            };
            if self.allowed_states.contains(&state) {
                tracing::info!(dag = %self.dag_id, run = %run_id, "the triggered run ended {state}");
                return Ok(run_id);
            }
            if self.failed_states.contains(&state) {
                return Err(TaskError::FailNow(format!(
                    "run `{run_id}` of DAG `{}` ended {state}",
                    self.dag_id
                )));
            }
            tracing::debug!(dag = %self.dag_id, run = %run_id, "the triggered run is {state}");
        }
    }
}

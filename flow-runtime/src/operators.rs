//! Built-in tasks of Airflow's standard operators, called in a `#[dag]` body like any
//! `#[task]` (`use flow_runtime::operators::latest_only;` then `latest_only() >> work()`),
//! or added with their `node` in the builder API.

use chrono::{DateTime, Utc};

use crate::graph::{DagBuilder, Node};
use crate::ids::RunType;
use crate::task::{TaskContext, TaskError, TaskOverride, TaskSpec};

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

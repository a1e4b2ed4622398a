//! Backfilling: a plan of the runs of every interval between two dates, and running it
//! with at most the DAG's `max_active_runs` at once.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::task::JoinSet;

use crate::error::RunError;
use crate::graph::Dag;
use crate::home::{FlowHome, HomeError};
use crate::ids::{DagId, RunId};
use crate::runtime::{Executor, RunRequest, RunSummary};
use crate::state::RunState;
use crate::store::{RunStore, RunType, StoreError};
use crate::time::timetable::DataInterval;

/// Why an interval is left alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// Its run succeeded.
    Succeeded,
    /// Its run failed, and failed runs are not run again.
    Failed,
}

/// What a backfill does with one interval.
#[derive(Clone, Debug)]
pub enum Action {
    /// Nothing.
    Skip(SkipReason),
    /// Create its run and run it.
    Create(RunRequest),
    /// Its run is unfinished: continue it.
    Resume(RunId),
    /// Its run failed: clear every task and run it again.
    Rerun(RunId),
}

/// One interval of a backfill.
#[derive(Clone, Debug)]
pub struct PlannedRun {
    /// The interval's logical date.
    pub logical_date: DateTime<Utc>,
    /// What is done with it.
    pub action: Action,
}

/// What a backfill will do, interval by interval, in date order.
#[derive(Clone, Debug)]
pub struct BackfillPlan {
    /// The DAG.
    pub dag_id: DagId,
    /// Every interval between the two dates.
    pub runs: Vec<PlannedRun>,
}

/// Why a backfill could not be planned or started.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    /// The start is after the end.
    #[error("the start {from} is after the end {to}")]
    Reversed {
        /// The first date.
        from: DateTime<Utc>,
        /// The last date.
        to: DateTime<Utc>,
    },
    /// The DAG's timetable has no interval between the dates.
    #[error("DAG `{dag_id}` (schedule {schedule}) has no intervals between {from} and {to}")]
    NoIntervals {
        /// The DAG.
        dag_id: DagId,
        /// Its schedule.
        schedule: String,
        /// The first date.
        from: DateTime<Utc>,
        /// The last date.
        to: DateTime<Utc>,
    },
    /// A run could not be created.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The store could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The intervals of `dag`'s timetable from `from` to `to` (both included): at least one.
pub fn intervals(
    dag: &Dag,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<DataInterval>, BackfillError> {
    if from > to {
        return Err(BackfillError::Reversed { from, to });
    }
    let intervals = dag.timetable().intervals_between(from, to);
    if intervals.is_empty() {
        return Err(BackfillError::NoIntervals {
            dag_id: dag.id().clone(),
            schedule: dag.schedule().to_string(),
            from,
            to,
        });
    }
    Ok(intervals)
}

/// Plans a backfill of `dag` from `from` to `to` (both included) against the runs
/// recorded in `store`: intervals without a run get one, unfinished runs are resumed,
/// succeeded ones skipped, failed ones skipped unless `rerun_failed`.
pub fn plan(
    dag: &Dag,
    store: &dyn RunStore,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    rerun_failed: bool,
) -> Result<BackfillPlan, BackfillError> {
    let intervals = intervals(dag, from, to)?;
    let existing = store.runs(Some(dag.id()))?;
    let mut runs = Vec::with_capacity(intervals.len());
    for interval in intervals {
        let logical_date = interval.start;
        let found = existing.iter().find(|r| r.logical_date == logical_date);
        let action = match found {
            None => Action::Create(RunRequest::for_interval(dag, RunType::Backfill, interval)?),
            Some(run) => match run.state {
                RunState::Success => Action::Skip(SkipReason::Succeeded),
                RunState::Failed if rerun_failed => Action::Rerun(run.run_id.clone()),
                RunState::Failed => Action::Skip(SkipReason::Failed),
                RunState::Queued | RunState::Running => Action::Resume(run.run_id.clone()),
            },
        };
        runs.push(PlannedRun {
            logical_date,
            action,
        });
    }
    Ok(BackfillPlan {
        dag_id: dag.id().clone(),
        runs,
    })
}

/// Why one run of a backfill did not end.
#[derive(Debug, thiserror::Error)]
pub enum RunFailure {
    /// Its lock is held by another process, or cannot be taken.
    #[error(transparent)]
    Lock(#[from] HomeError),
    /// It could not be carried out.
    #[error(transparent)]
    Run(#[from] RunError),
    /// Its task was lost (panicked or cancelled).
    #[error("a backfill run was lost: {0}")]
    Lost(String),
}

/// How a backfill went: each run's outcome, in the order they ended.
#[derive(Debug)]
pub struct BackfillOutcome {
    /// Each run that was started: its summary, or why it did not end.
    pub runs: Vec<Result<RunSummary, RunFailure>>,
    /// The wall time of the whole backfill.
    pub duration: Duration,
}

impl BackfillOutcome {
    /// How many runs did not end in success.
    pub fn unsuccessful(&self) -> usize {
        self.runs
            .iter()
            .filter(|r| !matches!(r, Ok(s) if s.state == RunState::Success))
            .count()
    }
}

/// Carries out `plan`: creates the missing runs, clears the ones to rerun, then runs them
/// all, at most `max_active_runs` of the DAG at once, each under its lock in `home`.
pub async fn run(
    plan: BackfillPlan,
    dag: &Dag,
    executor: &Executor,
    home: &FlowHome,
) -> Result<BackfillOutcome, BackfillError> {
    let started = Instant::now();
    let store = executor.store().clone();
    let mut to_run = Vec::new();
    for planned in plan.runs {
        match planned.action {
            Action::Skip(_) => {}
            Action::Create(request) => to_run.push(executor.create_run(dag, request)?.run_id),
            Action::Resume(id) => to_run.push(id),
            Action::Rerun(id) => {
                let ids: Vec<_> = dag.tasks().iter().map(|t| t.id().clone()).collect();
                store.clear(dag.id(), &id, &ids)?;
                to_run.push(id);
            }
        }
    }
    let limit = (dag.max_active_runs() as usize).max(1);
    let mut pending = to_run.into_iter();
    let mut running = JoinSet::new();
    let mut runs = Vec::new();
    loop {
        while running.len() < limit {
            let Some(run_id) = pending.next() else { break };
            let lock = home.lock_run(dag.id(), &run_id);
            let (dag, executor) = (dag.clone(), executor.clone());
            running.spawn(async move {
                let lock = lock?;
                Ok(super::resume::resume(&executor, &dag, &run_id, &lock).await?)
            });
        }
        match running.join_next().await {
            Some(Ok(outcome)) => runs.push(outcome),
            Some(Err(e)) => runs.push(Err(RunFailure::Lost(e.to_string()))),
            None => break,
        }
    }
    Ok(BackfillOutcome {
        runs,
        duration: started.elapsed(),
    })
}

//! The scheduling commands: `scheduler`, `dags trigger`, `dags backfill`,
//! `dags pause|unpause`.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{Failure, configured, live_executor, logical_date, objects, render, runtime};
use crate::graph::Dag;
use crate::home::FlowHome;
use crate::ids::RunId;
use crate::registry::Registry;
use crate::runtime::{Executor, RunRequest, RunSummary};
use crate::runtime::{Scheduler, SystemClock};
use crate::state::RunState;
use crate::store::{RunType, Store};
use crate::time::parse_date;

fn open() -> Result<(FlowHome, Arc<dyn Store>), Failure> {
    let home = FlowHome::from_env()?;
    let store = home.open_store()?;
    Ok((home, Arc::new(store)))
}

/// Parses `--conf` as a JSON object.
pub(super) fn parse_conf(conf: Option<&str>) -> Result<Option<serde_json::Value>, Failure> {
    conf.map(|text| {
        serde_json::from_str::<serde_json::Value>(text)
            .map_err(|e| Failure::usage(format!("invalid --conf `{text}`: not JSON: {e}")))
    })
    .transpose()
}

pub(super) fn scheduler(
    registry: &Registry,
    poll: Duration,
    grace: Duration,
) -> Result<(), Failure> {
    let (home, store) = open()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let executor = configured(Executor::new(store))?
        .object_store(objects(&home)?)
        .stop_on(stop_rx.clone(), grace);
    let scheduler = Scheduler::new(
        registry.dags().cloned(),
        executor,
        Arc::new(SystemClock),
        Some(home.clone()),
    );
    println!(
        "scheduler started with {} DAG(s), recording in {}",
        registry.dags().count(),
        home.database().display()
    );
    runtime()?.block_on(async {
        tokio::spawn(async move {
            wait_for_stop_signal().await;
            tracing::info!("stop requested");
            let _ = stop_tx.send(true);
        });
        scheduler.run(stop_rx, poll).await
    })?;
    println!("scheduler stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub(super) fn trigger(
    dag: &Dag,
    conf: Option<&str>,
    date: Option<&str>,
    run_now: bool,
) -> Result<(), Failure> {
    let conf = parse_conf(conf)?;
    let request = RunRequest::manual(dag, logical_date(date)?, conf.as_ref())?;
    let (home, store) = open()?;
    let executor = live_executor(store, objects(&home)?, None)?;
    let run = executor.create_run(dag, request)?;
    if !run_now {
        println!(
            "queued run {} of DAG `{}`; a running scheduler starts it",
            run.run_id,
            dag.id()
        );
        return Ok(());
    }
    let _lock = home.lock_run(dag.id(), &run.run_id)?;
    println!("running {} of DAG `{}`", run.run_id, dag.id());
    let summary = runtime()?.block_on(executor.resume(dag, &run.run_id))?;
    super::report(&summary)
}

/// What a backfill does with one interval.
enum Plan {
    Skip(&'static str),
    Create(RunRequest),
    Resume(RunId),
    Rerun(RunId),
}

pub(super) fn backfill(
    dag: &Dag,
    from: &str,
    to: &str,
    rerun_failed: bool,
    dry_run: bool,
) -> Result<(), Failure> {
    let parse = |flag: &str, text: &str| {
        parse_date(text).ok_or_else(|| {
            Failure::usage(format!(
                "invalid {flag} `{text}`: expected a date like 2025-01-01 or 2025-01-01T02:00:00Z"
            ))
        })
    };
    let (from, to) = (parse("--from", from)?, parse("--to", to)?);
    if from > to {
        return Err(Failure::usage(format!("--from {from} is after --to {to}")));
    }
    let intervals = dag.timetable().intervals_between(from, to);
    if intervals.is_empty() {
        return Err(Failure::usage(format!(
            "DAG `{}` (schedule {}) has no intervals between {from} and {to}",
            dag.id(),
            dag.schedule()
        )));
    }
    let (home, store) = open()?;
    let existing = store.runs(Some(dag.id()))?;
    let mut plans = Vec::with_capacity(intervals.len());
    for interval in intervals {
        let found = existing.iter().find(|r| r.logical_date == interval.start);
        let plan = match found {
            None => Plan::Create(RunRequest::for_interval(dag, RunType::Backfill, interval)?),
            Some(run) => match run.state {
                RunState::Success => Plan::Skip("succeeded already"),
                RunState::Failed if rerun_failed => Plan::Rerun(run.run_id.clone()),
                RunState::Failed => Plan::Skip("failed (use --rerun-failed to run it again)"),
                RunState::Queued | RunState::Running => Plan::Resume(run.run_id.clone()),
            },
        };
        println!(
            "{} {}",
            interval.start.to_rfc3339(),
            match &plan {
                Plan::Skip(why) => format!("skip: {why}"),
                Plan::Create(_) => "run".to_string(),
                Plan::Resume(id) => format!("resume {id}"),
                Plan::Rerun(id) => format!("rerun {id}"),
            }
        );
        plans.push(plan);
    }
    if dry_run {
        return Ok(());
    }
    let executor = configured(Executor::new(store.clone()))?.object_store(objects(&home)?);
    let mut to_run = Vec::new();
    for plan in plans {
        match plan {
            Plan::Skip(_) => {}
            Plan::Create(request) => to_run.push(executor.create_run(dag, request)?.run_id),
            Plan::Resume(id) => to_run.push(id),
            Plan::Rerun(id) => {
                let ids: Vec<_> = dag.tasks().iter().map(|t| t.id().clone()).collect();
                store.clear(dag.id(), &id, &ids)?;
                to_run.push(id);
            }
        }
    }
    let limit = dag.max_active_runs() as usize;
    let started = Utc::now();
    let summaries: Vec<Result<RunSummary, Failure>> = runtime()?.block_on(async {
        let mut pending = to_run.into_iter();
        let mut running = JoinSet::new();
        let mut done = Vec::new();
        loop {
            while running.len() < limit {
                let Some(run_id) = pending.next() else { break };
                let lock = home.lock_run(dag.id(), &run_id);
                let (dag, executor) = (dag.clone(), executor.clone());
                running.spawn(async move {
                    let _lock = lock?;
                    executor.resume(&dag, &run_id).await.map_err(Failure::from)
                });
            }
            match running.join_next().await {
                Some(Ok(outcome)) => done.push(outcome),
                Some(Err(e)) => done.push(Err(Failure::failed(format!(
                    "a backfill run was lost: {e}"
                )))),
                None => break,
            }
        }
        done
    });
    let mut failed = 0;
    for outcome in &summaries {
        match outcome {
            Ok(summary) => {
                println!("{}", render::run_line(summary));
                if summary.state != RunState::Success {
                    failed += 1;
                }
            }
            Err(e) => {
                eprintln!("error: {}", e.message);
                failed += 1;
            }
        }
    }
    println!(
        "backfill of {} run(s) done in {:.1}s, {failed} not successful",
        summaries.len(),
        (Utc::now() - started).num_milliseconds() as f64 / 1000.0
    );
    if failed > 0 {
        return Err(Failure::failed(format!(
            "{failed} backfill run(s) did not succeed"
        )));
    }
    Ok(())
}

pub(super) fn pause(dag: &Dag, paused: bool) -> Result<(), Failure> {
    let (_, store) = open()?;
    store.record_dag(dag.id(), dag.fingerprint())?;
    store.set_paused(dag.id(), paused)?;
    println!(
        "DAG `{}` is {}",
        dag.id(),
        if paused { "paused" } else { "unpaused" }
    );
    Ok(())
}

pub(super) fn pools(command: super::PoolsCommand) -> Result<(), Failure> {
    use crate::store::PoolRecord;
    let (_, store) = open()?;
    match command {
        super::PoolsCommand::Set {
            name,
            slots,
            description,
        } => {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            {
                return Err(Failure::usage(format!(
                    "invalid pool name `{name}`: use letters, digits, `_`, `-` and `.` only"
                )));
            }
            store.set_pool(&PoolRecord {
                name: name.clone(),
                slots,
                description,
            })?;
            println!("pool `{name}` has {slots} slot(s)");
        }
        super::PoolsCommand::List => {
            let mut pools = store.pools()?;
            if !pools.iter().any(|p| p.name == crate::pools::DEFAULT_POOL) {
                pools.insert(
                    0,
                    PoolRecord {
                        name: crate::pools::DEFAULT_POOL.into(),
                        slots: crate::pools::DEFAULT_POOL_SLOTS,
                        description: "default (not stored)".into(),
                    },
                );
            }
            print!("{}", render::pool_table(&pools));
        }
        super::PoolsCommand::Delete { name } => {
            if !store.delete_pool(&name)? {
                let known: Vec<String> = store.pools()?.into_iter().map(|p| p.name).collect();
                return Err(Failure::usage(format!(
                    "no pool `{name}`; the pools: {}",
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                )));
            }
            println!("pool `{name}` deleted");
        }
    }
    Ok(())
}

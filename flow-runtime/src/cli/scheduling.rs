//! The scheduling commands: `scheduler`, `dags trigger`, `dags backfill`,
//! `dags pause|unpause`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{Failure, Observe, live_executor, logical_date, open, render, runtime};
use crate::graph::Dag;
use crate::ops;
use crate::ops::backfill::{Action, SkipReason};
use crate::registry::Registry;
use crate::runtime::{Scheduler, SystemClock};
use crate::settings::Settings;
use crate::time::parse_date;

pub(super) fn scheduler(
    settings: &Settings,
    registry: &Registry,
    poll: Duration,
    grace: Duration,
    observe: Observe,
) -> Result<(), Failure> {
    let (home, store) = open(settings)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let executor = settings
        .executor(store.clone())
        .object_store(settings.connect_objects()?)
        .stop_on(stop_rx.clone(), grace);
    let (executor, _metrics) = observe.start(executor, &store)?;
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
pub(super) async fn wait_for_stop_signal() {
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
    settings: &Settings,
    dag: &Dag,
    conf: Option<&str>,
    date: Option<&str>,
    run_now: bool,
) -> Result<(), Failure> {
    let conf = conf.map(ops::trigger::parse_conf).transpose()?;
    // The conf is checked before anything is opened.
    let request = ops::trigger::request(dag, logical_date(date)?, conf.as_ref())?;
    let (home, store) = open(settings)?;
    let objects = settings.connect_objects()?;
    let (executor, progress) = live_executor(settings, dag, store, objects, None);
    let run = ops::trigger::trigger(&executor, dag, request)?;
    if !run_now {
        progress.finish();
        println!(
            "queued run {} of DAG `{}`; a running scheduler starts it",
            run.run_id,
            dag.id()
        );
        return Ok(());
    }
    let lock = home.lock_run(dag.id(), &run.run_id)?;
    println!("running {} of DAG `{}`", run.run_id, dag.id());
    let summary = runtime()?.block_on(ops::resume::resume(&executor, dag, &run.run_id, &lock))?;
    progress.finish();
    super::report(&summary)
}

pub(super) fn backfill(
    settings: &Settings,
    dag: &Dag,
    (from, to): (&str, &str),
    rerun_failed: bool,
    dry_run: bool,
    observe: Observe,
) -> Result<(), Failure> {
    let parse = |flag: &str, text: &str| {
        parse_date(text).ok_or_else(|| {
            Failure::usage(format!(
                "invalid {flag} `{text}`: expected a date like 2025-01-01 or 2025-01-01T02:00:00Z"
            ))
        })
    };
    let (from, to) = (parse("--from", from)?, parse("--to", to)?);
    // Dates that cannot work are refused before the store is opened.
    ops::backfill::intervals(dag, from, to)?;
    let (home, store) = open(settings)?;
    let plan = ops::backfill::plan(dag, store.as_ref(), from, to, rerun_failed)?;
    for planned in &plan.runs {
        println!(
            "{} {}",
            planned.logical_date.to_rfc3339(),
            match &planned.action {
                Action::Skip(SkipReason::Succeeded) => "skip: succeeded already".to_string(),
                Action::Skip(SkipReason::Failed) =>
                    "skip: failed (use --rerun-failed to run it again)".to_string(),
                Action::Create(_) => "run".to_string(),
                Action::Resume(id) => format!("resume {id}"),
                Action::Rerun(id) => format!("rerun {id}"),
            }
        );
    }
    if dry_run {
        return Ok(());
    }
    let runs = plan
        .runs
        .iter()
        .filter(|planned| !matches!(planned.action, Action::Skip(_)))
        .count();
    // On a terminal, the instances done of every run; no line per state change.
    let progress = super::progress::Progress::start(dag, runs, false);
    let events = progress.clone();
    let executor = settings
        .executor(store.clone())
        .object_store(settings.connect_objects()?)
        .on_event(move |event| events.on_event(event));
    let (executor, _metrics) = observe.start(executor, &store)?;
    let outcome = runtime()?.block_on(ops::backfill::run(plan, dag, &executor, &home))?;
    progress.finish();
    let failed = outcome.unsuccessful();
    let total = outcome.runs.len();
    let seconds = outcome.duration.as_secs_f64();
    for run in outcome.runs {
        match run {
            Ok(summary) => println!("{}", render::run_line(&summary)),
            Err(e) => eprintln!("error: {}", Failure::from(e).message),
        }
    }
    println!("backfill of {total} run(s) done in {seconds:.1}s, {failed} not successful");
    if failed > 0 {
        return Err(Failure::failed(format!(
            "{failed} backfill run(s) did not succeed"
        )));
    }
    Ok(())
}

pub(super) fn pause(settings: &Settings, dag: &Dag, paused: bool) -> Result<(), Failure> {
    let (_, store) = open(settings)?;
    ops::pools::set_paused(store.as_ref(), dag, paused)?;
    println!(
        "DAG `{}` is {}",
        dag.id(),
        if paused { "paused" } else { "unpaused" }
    );
    Ok(())
}

pub(super) fn pools(settings: &Settings, command: super::PoolsCommand) -> Result<(), Failure> {
    let (_, store) = open(settings)?;
    match command {
        super::PoolsCommand::Set {
            name,
            slots,
            description,
        } => {
            let pool = crate::store::PoolRecord {
                name: name.clone(),
                slots,
                description,
            };
            ops::pools::set_pool(store.as_ref(), pool)?;
            println!("pool `{name}` has {slots} slot(s)");
        }
        super::PoolsCommand::List => {
            print!(
                "{}",
                render::pool_table(&ops::pools::pools(store.as_ref())?)
            );
        }
        super::PoolsCommand::Delete { name } => {
            ops::pools::delete_pool(store.as_ref(), &name)?;
            println!("pool `{name}` deleted");
        }
    }
    Ok(())
}

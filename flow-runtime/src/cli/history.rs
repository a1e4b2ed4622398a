//! The commands over recorded history: runs, task states, clearing, logs, resuming,
//! deleting.

use std::sync::Arc;

use super::{Failure, live_executor, open, render, report, runtime};
use crate::graph::Dag;
use crate::ids::TaskId;
use crate::ops;
use crate::settings::Settings;
use crate::store::{MemoryStore, Store};

/// The store to read history from; a home without a database has none, and reading it
/// creates none (so a reader never races a writer creating the database).
fn open_for_reading(settings: &Settings) -> Result<Arc<dyn Store>, Failure> {
    Ok(settings
        .open_existing_store()?
        .unwrap_or_else(|| Arc::new(MemoryStore::new())))
}

pub(super) fn runs(settings: &Settings, dag_id: Option<&str>) -> Result<(), Failure> {
    let store = open_for_reading(settings)?;
    let runs = store.runs(dag_id.map(Into::into).as_ref())?;
    print!("{}", render::run_table(&runs));
    Ok(())
}

pub(super) fn states(settings: &Settings, dag: &Dag, run: &str) -> Result<(), Failure> {
    let store = open_for_reading(settings)?;
    let run_id = ops::resolve::resolve_run(store.as_ref(), dag, run)?;
    let instances = store.task_instances(dag.id(), &run_id)?;
    print!("{}", render::instance_table(dag, &instances));
    Ok(())
}

pub(super) fn resume(
    settings: &Settings,
    dag: &Dag,
    run: &str,
    parallelism: Option<usize>,
    observe: super::Observe,
) -> Result<(), Failure> {
    let (home, store) = open(settings)?;
    let run_id = ops::resolve::resolve_run(store.as_ref(), dag, run)?;
    let lock = home.lock_run(dag.id(), &run_id)?;
    println!("Resuming run {run_id} of DAG `{}`", dag.id());
    let objects = settings.connect_objects()?;
    let (executor, progress) = live_executor(settings, dag, store.clone(), objects, parallelism);
    let (executor, _metrics) = observe.start(executor, &store)?;
    let summary = runtime()?.block_on(ops::resume::resume(&executor, dag, &run_id, &lock))?;
    progress.finish();
    report(&summary)
}

pub(super) fn delete(settings: &Settings, dag: &Dag, run: &str) -> Result<(), Failure> {
    let (home, store) = open(settings)?;
    let run_id = ops::resolve::resolve_run(store.as_ref(), dag, run)?;
    let lock = home.lock_run(dag.id(), &run_id)?;
    let executor = settings
        .executor(store)
        .object_store(settings.connect_objects()?);
    let deleted =
        runtime()?.block_on(ops::delete::delete_run(&executor, dag.id(), &run_id, &lock))?;
    println!(
        "deleted run {run_id} of DAG `{}` and its {} object(s)",
        dag.id(),
        deleted.objects
    );
    Ok(())
}

pub(super) fn clear(
    settings: &Settings,
    dag: &Dag,
    run: &str,
    tasks: &[String],
    downstream: bool,
    no_run: bool,
) -> Result<(), Failure> {
    let (home, store) = open(settings)?;
    let run_id = ops::resolve::resolve_run(store.as_ref(), dag, run)?;
    let ids = ops::clear::task_set(dag, tasks, downstream)?;
    let lock = home.lock_run(dag.id(), &run_id)?;
    ops::clear::clear(store.as_ref(), dag, &run_id, &ids, &lock)?;
    let names: Vec<&str> = ids.iter().map(TaskId::as_str).collect();
    println!(
        "cleared {} task instance(s) of run {run_id}: {}",
        ids.len(),
        names.join(", ")
    );
    if no_run {
        println!("run them with `dags test {} --resume {run_id}`", dag.id());
        return Ok(());
    }
    let objects = settings.connect_objects()?;
    let (executor, progress) = live_executor(settings, dag, store, objects, None);
    let summary = runtime()?.block_on(ops::resume::resume(&executor, dag, &run_id, &lock))?;
    progress.finish();
    drop(lock);
    report(&summary)
}

pub(super) fn logs(
    settings: &Settings,
    dag: &Dag,
    run: &str,
    task_id: &str,
    try_number: Option<u32>,
    map_index: Option<u32>,
) -> Result<(), Failure> {
    let store = open_for_reading(settings)?;
    let run_id = ops::resolve::resolve_run(store.as_ref(), dag, run)?;
    let logs = ops::logs::read(store.as_ref(), dag, &run_id, task_id, map_index, try_number)?;
    for attempt in &logs.tries {
        println!("--- try {} ({}) ---", attempt.try_number, attempt.state);
        for line in &attempt.lines {
            println!(
                "{} {:<5} {}",
                line.at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                line.level,
                line.message
            );
        }
    }
    Ok(())
}

pub(super) fn xcoms(
    settings: &Settings,
    dag: &Dag,
    run: &str,
    task_id: &str,
    map_index: Option<u32>,
) -> Result<(), Failure> {
    let store = open_for_reading(settings)?;
    let run_id = ops::resolve::resolve_run(store.as_ref(), dag, run)?;
    let listed = ops::xcoms::list(store.as_ref(), dag, &run_id, task_id, map_index)?;
    for (name, stored) in &listed.xcoms {
        let shown = match ops::xcoms::view(dag, task_id, name, stored) {
            ops::xcoms::XComView::Json(value) => value.to_string(),
            ops::xcoms::XComView::Opaque { type_name, bytes } => {
                format!("<{type_name}, {bytes} bytes>")
            }
            ops::xcoms::XComView::Object { key, type_name } => {
                format!("<{type_name} in the object store at {key}>")
            }
        };
        println!("{name} {shown}");
    }
    Ok(())
}

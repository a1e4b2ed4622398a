//! The commands over recorded history: runs, task states, clearing, logs, resuming,
//! deleting.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{Failure, find_task, live_executor, objects, render, report, resolve_run, runtime};
use crate::graph::Dag;
use crate::home::FlowHome;
use crate::ids::{MapIndex, TaskId, TaskInstanceKey};
use crate::runtime::Executor;
use crate::store::Store;

fn open() -> Result<(FlowHome, Arc<dyn Store>), Failure> {
    let home = FlowHome::from_env()?;
    let store = home.open_store()?;
    Ok((home, Arc::new(store)))
}

pub(super) fn runs(dag_id: Option<&str>) -> Result<(), Failure> {
    let (_, store) = open()?;
    let runs = store.runs(dag_id.map(Into::into).as_ref())?;
    print!("{}", render::run_table(&runs));
    Ok(())
}

pub(super) fn states(dag: &Dag, run: &str) -> Result<(), Failure> {
    let (_, store) = open()?;
    let run_id = resolve_run(store.as_ref(), dag, run)?;
    let instances = store.task_instances(dag.id(), &run_id)?;
    print!("{}", render::instance_table(dag, &instances));
    Ok(())
}

pub(super) fn resume(dag: &Dag, run: &str, parallelism: Option<usize>) -> Result<(), Failure> {
    let (home, store) = open()?;
    let run_id = resolve_run(store.as_ref(), dag, run)?;
    let _lock = home.lock_run(dag.id(), &run_id)?;
    println!("Resuming run {run_id} of DAG `{}`", dag.id());
    let executor = live_executor(store, objects(&home)?, parallelism)?;
    let summary = runtime()?.block_on(executor.resume(dag, &run_id))?;
    report(&summary)
}

pub(super) fn delete(dag: &Dag, run: &str) -> Result<(), Failure> {
    let (home, store) = open()?;
    let run_id = resolve_run(store.as_ref(), dag, run)?;
    let _lock = home.lock_run(dag.id(), &run_id)?;
    let executor = Executor::new(store).object_store(objects(&home)?);
    let deleted = runtime()?.block_on(executor.delete_run(dag.id(), &run_id))?;
    println!(
        "deleted run {run_id} of DAG `{}` and its {deleted} object(s)",
        dag.id()
    );
    Ok(())
}

pub(super) fn clear(
    dag: &Dag,
    run: &str,
    tasks: &[String],
    downstream: bool,
    no_run: bool,
) -> Result<(), Failure> {
    let (home, store) = open()?;
    let run_id = resolve_run(store.as_ref(), dag, run)?;
    let mut chosen: BTreeSet<usize> = if tasks.is_empty() {
        (0..dag.tasks().len()).collect()
    } else {
        tasks
            .iter()
            .map(|t| find_task(dag, t))
            .collect::<Result<_, _>>()?
    };
    if downstream {
        let mut stack: Vec<usize> = chosen.iter().copied().collect();
        while let Some(i) = stack.pop() {
            for &d in dag.tasks()[i].downstream() {
                if chosen.insert(d) {
                    stack.push(d);
                }
            }
        }
    }
    let ids: Vec<TaskId> = chosen
        .iter()
        .map(|&i| dag.tasks()[i].id().clone())
        .collect();
    let lock = home.lock_run(dag.id(), &run_id)?;
    store.clear(dag.id(), &run_id, &ids)?;
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
    let executor = live_executor(store, objects(&home)?, None)?;
    let summary = runtime()?.block_on(executor.resume(dag, &run_id))?;
    drop(lock);
    report(&summary)
}

pub(super) fn logs(
    dag: &Dag,
    run: &str,
    task_id: &str,
    try_number: Option<u32>,
    map_index: Option<u32>,
) -> Result<(), Failure> {
    let (_, store) = open()?;
    let run_id = resolve_run(store.as_ref(), dag, run)?;
    let task = &dag.tasks()[find_task(dag, task_id)?];
    let map_index = match (task.is_mapped(), map_index) {
        (true, Some(i)) => MapIndex::mapped(i),
        (false, None) => MapIndex::UNMAPPED,
        (true, None) => {
            let count = store
                .task_instances(dag.id(), &run_id)?
                .iter()
                .filter(|ti| ti.key.task_id.as_str() == task_id && ti.key.map_index.get().is_some())
                .count();
            return Err(Failure::usage(format!(
                "task `{task_id}` is mapped ({count} instances in run {run_id}): choose one with --map-index I"
            )));
        }
        (false, Some(_)) => {
            return Err(Failure::usage(format!(
                "task `{task_id}` is not mapped: leave out --map-index"
            )));
        }
    };
    let key = TaskInstanceKey {
        dag_id: dag.id().clone(),
        run_id: run_id.clone(),
        task_id: TaskId::new(task_id),
        map_index,
    };
    let tries = store.tries(&key)?;
    if let Some(n) = try_number
        && !tries.iter().any(|t| t.try_number == n)
    {
        let made: Vec<String> = tries.iter().map(|t| t.try_number.to_string()).collect();
        return Err(Failure::usage(format!(
            "task `{task_id}` has no try {n} in run {run_id}; tries made: {}",
            if made.is_empty() {
                "none".to_string()
            } else {
                made.join(", ")
            }
        )));
    }
    let lines = store.logs(&key, try_number)?;
    for attempt in tries
        .iter()
        .filter(|t| try_number.is_none_or(|n| n == t.try_number))
    {
        println!("--- try {} ({}) ---", attempt.try_number, attempt.state);
        for (_, line) in lines.iter().filter(|(t, _)| *t == attempt.try_number) {
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

//! Clearing task instances of a run, so that resuming it runs them again.

use crate::graph::Dag;
use crate::home::RunLock;
use crate::ids::{RunId, TaskId, TaskIndex};
use crate::plan::Plan;
use crate::store::{RunStore, StoreError};

use super::{UnknownTask, find_task};

/// The tasks to clear: `tasks` (every task when empty) and, with `downstream`, every task
/// downstream of them, with the setups they rely on and those setups' teardowns (as in
/// Airflow), in the DAG's task order.
pub fn task_set(dag: &Dag, tasks: &[String], downstream: bool) -> Result<Vec<TaskId>, UnknownTask> {
    let mut chosen = vec![tasks.is_empty(); dag.tasks().len()];
    let named = tasks
        .iter()
        .map(|task| find_task(dag, task))
        .collect::<Result<Vec<_>, _>>()?;
    for &index in &named {
        chosen[index.get()] = true;
    }
    let plan = Plan::compile(dag);
    if downstream {
        for index in plan.descendants_of(named) {
            chosen[index.get()] = true;
        }
    }
    // Clearing every task needs no walk for their setups and teardowns.
    let cleared: Vec<TaskIndex> = if tasks.is_empty() {
        Vec::new()
    } else {
        plan.indices().filter(|i| chosen[i.get()]).collect()
    };
    for task in cleared {
        for index in setups_and_teardowns(&plan, task) {
            chosen[index.get()] = true;
        }
    }
    Ok(dag
        .tasks()
        .iter()
        .zip(chosen)
        .filter(|(_, chosen)| *chosen)
        .map(|(task, _)| task.id().clone())
        .collect())
}

/// The setups a cleared `task` relies on, and their teardowns (Airflow's "relevant"
/// setups): every setup upstream of it that has no teardown, or a teardown downstream of
/// the task; and a teardown's own setups.
fn setups_and_teardowns(plan: &Plan<'_>, task: TaskIndex) -> Vec<TaskIndex> {
    let dag = plan.dag();
    let mut found: Vec<TaskIndex> = Vec::new();
    if dag[task].role().is_teardown() {
        found.extend(
            dag[task]
                .upstream()
                .iter()
                .filter(|&&up| dag[up].role().is_setup()),
        );
    }
    let teardowns_after: Vec<TaskIndex> = plan
        .descendants(task)
        .into_iter()
        .filter(|&i| dag[i].role().is_teardown())
        .collect();
    let mut seen = vec![false; plan.len()];
    let mut stack: Vec<TaskIndex> = dag[task].upstream().to_vec();
    while let Some(up) = stack.pop() {
        if std::mem::replace(&mut seen[up.get()], true) {
            continue;
        }
        stack.extend_from_slice(dag[up].upstream());
        if !dag[up].role().is_setup() {
            continue;
        }
        let teardowns: Vec<TaskIndex> = dag[up]
            .downstream()
            .iter()
            .copied()
            .filter(|&d| dag[d].role().is_teardown())
            .collect();
        if teardowns.is_empty() || teardowns.iter().any(|t| teardowns_after.contains(t)) {
            found.push(up);
            found.extend(teardowns);
        }
    }
    found
}

/// Resets the instances of `tasks` in run `run_id` (earlier tries stay in the history),
/// under the run's lock; the run can then be resumed.
pub fn clear(
    store: &dyn RunStore,
    dag: &Dag,
    run_id: &RunId,
    tasks: &[TaskId],
    _lock: &RunLock,
) -> Result<(), StoreError> {
    store.clear(dag.id(), run_id, tasks)
}

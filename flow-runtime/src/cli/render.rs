//! Text the CLI prints: tables, the DAG tree, live state lines (pictures: [`super::draw`]).

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::events::TaskEvent;
use crate::graph::Dag;
use crate::ids::TaskIndex;
use crate::plan::Plan;
use crate::runtime::RunSummary;
use crate::store::{DagRunRecord, TaskInstanceRecord};

/// Left-aligned columns sized to their widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let parts: Vec<String> = cells
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", parts.join("  ").trim_end());
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

pub(super) fn dag_table<'a>(dags: impl Iterator<Item = &'a Dag>) -> String {
    let rows: Vec<Vec<String>> = dags
        .map(|dag| {
            vec![
                dag.id().to_string(),
                dag.schedule().to_string(),
                dag.tasks().len().to_string(),
                dag.tags().join(","),
                dag.description().unwrap_or("").to_string(),
            ]
        })
        .collect();
    table(&["DAG", "SCHEDULE", "TASKS", "TAGS", "DESCRIPTION"], &rows)
}

pub(super) fn task_table(dag: &Dag) -> String {
    let rows: Vec<Vec<String>> = Plan::compile(dag)
        .topological_order()
        .iter()
        .map(|&i| {
            let task = &dag[i];
            let inputs: Vec<String> = task
                .spec()
                .params()
                .iter()
                .map(|p| format!("{}: {}", p.name(), short_type(p.type_name())))
                .collect();
            let upstream: Vec<&str> = task
                .upstream()
                .iter()
                .map(|&u| dag[u].id().as_str())
                .collect();
            vec![
                task.id().to_string(),
                inputs.join(", "),
                short_type(task.spec().output().type_name()),
                task.retries().to_string(),
                upstream.join(","),
            ]
        })
        .collect();
    table(&["TASK", "INPUTS", "OUTPUT", "RETRIES", "UPSTREAM"], &rows)
}

/// `alloc::vec::Vec<my_crate::Dataset>` -> `Vec<Dataset>`.
fn short_type(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut segment = String::new();
    for c in name.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            segment.push(c);
        } else {
            out.push_str(segment.rsplit("::").next().unwrap_or(""));
            segment.clear();
            out.push(c);
        }
    }
    out.push_str(segment.rsplit("::").next().unwrap_or(""));
    out
}

/// Every root with its downstream tasks indented below it; a task reached again is
/// named with `(see above)` instead of being expanded twice.
pub(super) fn tree(dag: &Dag) -> String {
    let mut out = format!("{} (schedule: {})\n", dag.id(), dag.schedule());
    let plan = Plan::compile(dag);
    let mut expanded = vec![false; plan.len()];
    let roots: Vec<TaskIndex> = plan
        .topological_order()
        .iter()
        .copied()
        .filter(|&i| plan.is_root(i))
        .collect();
    // (task, prefix for its children, is last sibling)
    let mut stack: Vec<(TaskIndex, String, bool)> = roots
        .iter()
        .rev()
        .enumerate()
        .map(|(k, &r)| (r, String::new(), k == 0))
        .collect();
    while let Some((task, prefix, last)) = stack.pop() {
        let branch = if last { "└── " } else { "├── " };
        let id = dag[task].id();
        if std::mem::replace(&mut expanded[task.get()], true) {
            let _ = writeln!(out, "{prefix}{branch}{id} (see above)");
            continue;
        }
        let _ = writeln!(out, "{prefix}{branch}{id}");
        let child_prefix = format!("{prefix}{}", if last { "    " } else { "│   " });
        let children = plan.dependents(task);
        for (k, &child) in children.iter().enumerate().rev() {
            stack.push((child, child_prefix.clone(), k + 1 == children.len()));
        }
    }
    out
}

fn duration(d: Option<Duration>) -> String {
    match d {
        None => "-".to_string(),
        Some(d) if d < Duration::from_millis(1) => format!("{}us", d.as_micros()),
        Some(d) if d < Duration::from_secs(10) => format!("{}ms", d.as_millis()),
        Some(d) => format!("{:.1}s", d.as_secs_f64()),
    }
}

fn elapsed(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> String {
    match (start, end) {
        (Some(start), Some(end)) => duration((end - start).to_std().ok()),
        _ => "-".to_string(),
    }
}

fn timestamp(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "-".to_string(),
        |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}

pub(super) fn run_table(runs: &[DagRunRecord]) -> String {
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.dag_id.to_string(),
                r.run_id.to_string(),
                r.run_type.as_str().to_string(),
                r.logical_date.to_rfc3339(),
                r.state.to_string(),
                timestamp(r.start),
                elapsed(r.start, r.end),
            ]
        })
        .collect();
    table(
        &[
            "DAG",
            "RUN",
            "TYPE",
            "LOGICAL DATE",
            "STATE",
            "STARTED",
            "DURATION",
        ],
        &rows,
    )
}

/// Task instances in the DAG's topological order (a mapped task's in map order, as
/// `task[3]`); tasks never recorded show `none`.
pub(super) fn instance_table(dag: &Dag, instances: &[TaskInstanceRecord]) -> String {
    let mut by_task: std::collections::HashMap<&str, Vec<&TaskInstanceRecord>> =
        std::collections::HashMap::new();
    for ti in instances {
        by_task.entry(ti.key.task_id.as_str()).or_default().push(ti);
    }
    let rows: Vec<Vec<String>> = Plan::compile(dag)
        .topological_order()
        .iter()
        .flat_map(|&i| {
            let id = dag[i].id().as_str();
            let Some(mut recorded) = by_task.remove(id) else {
                let never = ["none", "0", "-", "-", ""].map(String::from);
                return vec![std::iter::once(id.to_string()).chain(never).collect()];
            };
            recorded.sort_by_key(|ti| ti.key.map_index.get());
            recorded
                .into_iter()
                .map(|ti| {
                    vec![
                        instance_name(id, ti.key.map_index.get()),
                        ti.state.to_string(),
                        ti.try_number.to_string(),
                        timestamp(ti.start),
                        elapsed(ti.start, ti.end),
                        ti.error.clone().unwrap_or_default(),
                    ]
                })
                .collect()
        })
        .collect();
    table(
        &["TASK", "STATE", "TRIES", "STARTED", "DURATION", "ERROR"],
        &rows,
    )
}

pub(super) fn event_line(event: &TaskEvent) -> String {
    let mut line = format!(
        "{} {:<16} {} (try {})",
        chrono::Utc::now().format("%H:%M:%S%.3f"),
        event.state.as_str(),
        instance_name(event.task_id.as_str(), event.map_index),
        event.try_number
    );
    if event.duration.is_some() {
        let _ = write!(line, " after {}", duration(event.duration));
    }
    if let Some(error) = &event.error {
        let _ = write!(line, ": {error}");
    }
    line
}

pub(super) fn pool_table(pools: &[crate::store::PoolRecord]) -> String {
    let rows: Vec<Vec<String>> = pools
        .iter()
        .map(|p| vec![p.name.clone(), p.slots.to_string(), p.description.clone()])
        .collect();
    table(&["POOL", "SLOTS", "DESCRIPTION"], &rows)
}

pub(super) fn run_line(run: &RunSummary) -> String {
    format!(
        "run {} {} in {}",
        run.run_id,
        run.state,
        duration(Some(run.duration))
    )
}

/// `task`, or `task[3]` for an instance of a mapped task.
fn instance_name(task_id: &str, map_index: Option<u32>) -> String {
    match map_index {
        Some(i) => format!("{task_id}[{i}]"),
        None => task_id.to_string(),
    }
}

/// A row per task; a mapped task's instances in one row (`train [12 mapped]`, with the
/// count per state, the most tries, the longest try and the first error).
pub(super) fn summary(run: &RunSummary) -> String {
    let rows: Vec<Vec<String>> = run
        .tasks
        .chunk_by(|a, b| a.task_id == b.task_id && a.map_index.is_some() && b.map_index.is_some())
        .map(|group| match group {
            [t] if t.map_index.is_none() => vec![
                t.task_id.to_string(),
                t.state.to_string(),
                t.tries.to_string(),
                duration(t.duration),
                t.error.clone().unwrap_or_default(),
            ],
            instances => {
                let mut states: Vec<(crate::state::TaskState, usize)> = Vec::new();
                for t in instances {
                    match states.iter_mut().find(|(s, _)| *s == t.state) {
                        Some((_, n)) => *n += 1,
                        None => states.push((t.state, 1)),
                    }
                }
                let error = instances
                    .iter()
                    .find_map(|t| Some(format!("[{}] {}", t.map_index?, t.error.as_ref()?)));
                vec![
                    format!("{} [{} mapped]", instances[0].task_id, instances.len()),
                    states
                        .iter()
                        .map(|(state, n)| format!("{n} {state}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    instances
                        .iter()
                        .map(|t| t.tries)
                        .max()
                        .unwrap_or(0)
                        .to_string(),
                    duration(instances.iter().filter_map(|t| t.duration).max()),
                    error.unwrap_or_default(),
                ]
            }
        })
        .collect();
    format!(
        "\n{}\nRun {} {} in {}\n",
        table(&["TASK", "STATE", "TRIES", "DURATION", "ERROR"], &rows),
        run.run_id,
        run.state,
        duration(Some(run.duration))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_types_drop_module_paths() {
        assert_eq!(
            short_type("alloc::vec::Vec<my_crate::data::Dataset>"),
            "Vec<Dataset>"
        );
        assert_eq!(short_type("(u32, alloc::string::String)"), "(u32, String)");
    }

    #[test]
    fn tables_align_columns() {
        let out = table(&["A", "BB"], &[vec!["long".into(), "x".into()]]);
        assert_eq!(out, "A     BB\nlong  x\n");
    }
}

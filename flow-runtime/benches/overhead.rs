//! Per-task overhead of flow against a hand-wired tokio baseline of the same graphs.
//!
//! ```text
//! cargo bench -p flow-runtime --bench overhead            # every workload
//! cargo bench -p flow-runtime --bench overhead -- --quick # N up to 10,000
//! ```
//!
//! Workloads:
//! - W1: a 4-task chain passing a small struct, run 1,000 times (one DAG run each);
//! - W2: one source, N independent trivial tasks reading its output, one sink after all;
//! - W3: a chain of 1,000 tasks passing an integer;
//! - W4: mapped fan-out: a source returning N integers, one task mapped over them (N
//!   instances, `.expand()`), a sink receiving their N results as one `Vec`.
//!
//! Each runs in its own child process (so peak RSS is that workload's alone) with the
//! in-memory store, with the SQLite store (a fresh file, WAL), and as plain tokio tasks
//! joined by channels. Per-task overhead is wall time divided by task instances.
//!
//! One workload alone, for side-by-side timings: `--child W4 10000 sqlite` (modes `tokio`,
//! `memory`, `sqlite`; `memory+metrics` and `sqlite+metrics` count Prometheus metrics as
//! `--metrics` does).

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use flow_runtime::Executor;
use flow_runtime::prelude::*;
use flow_runtime::store::{MemoryStore, SqliteStore, Store};
use tokio::sync::{mpsc, oneshot, watch};

/// The most tasks in flight, for flow and (implicitly unbounded) the baseline.
const PARALLELISM: usize = 1024;
const W1_RUNS: usize = 1_000;
const W3_LENGTH: usize = 1_000;

#[derive(Serialize, Deserialize, Clone, Debug)]
struct Dataset {
    path: String,
    rows: u64,
}

fn w1_dag() -> Dag {
    let mut b = DagBuilder::new("w1").max_active_tasks(PARALLELISM as u32);
    let load = b
        .add_task(TaskSpec::from_async("load", |_, _| async {
            Ok(Dataset {
                path: "raw.csv".into(),
                rows: 1797,
            })
        }))
        .finish::<Dataset>();
    let mut prev = load;
    for name in ["train", "evaluate", "deploy"] {
        let mut t = b.add_task(
            TaskSpec::from_async(name, |_, inputs| async move {
                let mut d: Dataset = inputs.get(0)?;
                d.rows += 1;
                Ok(d)
            })
            .param::<Dataset>("data"),
        );
        t.input(prev);
        prev = t.finish();
    }
    b.build().expect("w1 builds")
}

fn w2_dag(n: usize) -> Dag {
    let mut b = DagBuilder::new("w2").max_active_tasks(PARALLELISM as u32);
    let source = b
        .add_task(TaskSpec::from_async("source", |_, _| async { Ok(1_u64) }))
        .finish::<u64>();
    let sink = b
        .add_task(TaskSpec::from_async("sink", |_, _| async { Ok(()) }))
        .finish::<()>();
    let work = TaskSpec::from_async(
        "work",
        |_, inputs| async move { Ok(inputs.get::<u64>(0)? + 1) },
    )
    .param::<u64>("x");
    let mut middle = Vec::with_capacity(n);
    for i in 0..n {
        let mut t = b.add_task(work.clone());
        t.task_id(format!("work_{i}")).input(source);
        middle.push(t.finish::<u64>().any());
    }
    b.set_downstream(&middle, &[sink.any()]);
    b.build().expect("w2 builds")
}

fn w3_dag(n: usize) -> Dag {
    let mut b = DagBuilder::new("w3").max_active_tasks(PARALLELISM as u32);
    let mut prev = b
        .add_task(TaskSpec::from_async("step", |_, _| async { Ok(0_u64) }))
        .finish::<u64>();
    let step = TaskSpec::from_async(
        "step",
        |_, inputs| async move { Ok(inputs.get::<u64>(0)? + 1) },
    )
    .param::<u64>("x");
    for _ in 1..n {
        let mut t = b.add_task(step.clone());
        t.input(prev);
        prev = t.finish();
    }
    b.build().expect("w3 builds")
}

fn w4_dag(n: usize) -> Dag {
    let mut b = DagBuilder::new("w4").max_active_tasks(PARALLELISM as u32);
    let count = n as u64;
    let source = b
        .add_task(TaskSpec::from_async("source", move |_, _| async move {
            Ok((0..count).collect::<Vec<u64>>())
        }))
        .finish::<Vec<u64>>();
    let mut work = b.add_task(
        TaskSpec::from_async(
            "work",
            |_, inputs| async move { Ok(inputs.get::<u64>(0)? + 1) },
        )
        .param::<u64>("x"),
    );
    work.expand(source);
    let results = work.finish_mapped::<u64>();
    let mut sink = b.add_task(
        TaskSpec::from_async("sink", |_, inputs| async move {
            Ok(inputs.get::<Vec<u64>>(0)?.iter().sum::<u64>())
        })
        .param::<Vec<u64>>("results"),
    );
    sink.input(results);
    let _ = sink.finish::<u64>();
    b.build().expect("w4 builds")
}

async fn flow_runs(dag: &Dag, store: Arc<dyn Store>, runs: usize, metered: bool) {
    let executor = Executor::new(store).parallelism(PARALLELISM);
    let executor = if metered {
        executor.metrics(Arc::new(flow_runtime::metrics::Metrics::new()))
    } else {
        executor
    };
    let start = Utc::now();
    for i in 0..runs {
        let date = start + chrono::Duration::seconds(i64::try_from(i).unwrap_or(0));
        let summary = executor.run(dag, date).await.expect("run executes");
        let failed: Vec<_> = summary
            .tasks
            .iter()
            .filter(|t| t.error.is_some())
            .take(3)
            .collect();
        assert_eq!(summary.state, RunState::Success, "{failed:?}");
    }
}

async fn baseline_w1() {
    for _ in 0..W1_RUNS {
        let (tx, mut rx) = oneshot::channel();
        tokio::spawn(async move {
            let _ = tx.send(Dataset {
                path: "raw.csv".into(),
                rows: 1797,
            });
        });
        for _ in 0..3 {
            let (next_tx, next_rx) = oneshot::channel();
            tokio::spawn(async move {
                let mut d = rx.await.expect("upstream");
                d.rows += 1;
                let _ = next_tx.send(d);
            });
            rx = next_rx;
        }
        assert_eq!(rx.await.expect("chain").rows, 1800);
    }
}

async fn baseline_w2(n: usize) {
    let (source_tx, source_rx) = watch::channel(None::<u64>);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    for _ in 0..n {
        let mut rx = source_rx.clone();
        let done = done_tx.clone();
        tokio::spawn(async move {
            let value = loop {
                if let Some(v) = *rx.borrow_and_update() {
                    break v;
                }
                rx.changed().await.expect("source");
            };
            let _ = done.send(value + 1);
        });
    }
    tokio::spawn(async move {
        let _ = source_tx.send(Some(1));
    });
    drop(done_tx);
    let sink = tokio::spawn(async move {
        let mut count = 0;
        while done_rx.recv().await.is_some() {
            count += 1;
        }
        count
    });
    assert_eq!(sink.await.expect("sink"), n);
}

async fn baseline_w3(n: usize) {
    let (tx, mut rx) = oneshot::channel();
    tokio::spawn(async move {
        let _ = tx.send(0_u64);
    });
    for _ in 1..n {
        let (next_tx, next_rx) = oneshot::channel();
        tokio::spawn(async move {
            let v = rx.await.expect("upstream");
            let _ = next_tx.send(v + 1);
        });
        rx = next_rx;
    }
    assert_eq!(rx.await.expect("chain"), (n - 1) as u64);
}

async fn baseline_w4(n: usize) {
    let count = n as u64;
    let source = tokio::spawn(async move { (0..count).collect::<Vec<u64>>() });
    let values = source.await.expect("source");
    let handles: Vec<_> = values
        .into_iter()
        .map(|x| tokio::spawn(async move { x + 1 }))
        .collect();
    let mut results = Vec::with_capacity(n);
    for handle in handles {
        results.push(handle.await.expect("work"));
    }
    let sink = tokio::spawn(async move { results.iter().sum::<u64>() });
    assert_eq!(sink.await.expect("sink"), count * (count + 1) / 2);
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Runs one workload in this process and prints `wall_seconds instances peak_rss_mb`.
fn child(workload: &str, n: usize, mode: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let (mode, metered) = match mode.strip_suffix("+metrics") {
        Some(mode) => (mode, true),
        None => (mode, false),
    };
    let store = || -> Arc<dyn Store> {
        match mode {
            "sqlite" => {
                Arc::new(SqliteStore::open(&dir.path().join("flow.db")).expect("sqlite opens"))
            }
            _ => Arc::new(MemoryStore::new()),
        }
    };
    let (dag, runs, instances) = match workload {
        "W1" => (Some(w1_dag()), W1_RUNS, 4 * W1_RUNS),
        "W2" => (Some(w2_dag(n)), 1, n + 2),
        "W4" => (Some(w4_dag(n)), 1, n + 2),
        _ => (Some(w3_dag(n)), 1, n),
    };
    let dag = if mode == "tokio" { None } else { dag };
    let clock = Instant::now();
    runtime.block_on(async {
        match (&dag, workload) {
            (Some(dag), _) => flow_runs(dag, store(), runs, metered).await,
            (None, "W1") => baseline_w1().await,
            (None, "W2") => baseline_w2(n).await,
            (None, "W4") => baseline_w4(n).await,
            (None, _) => baseline_w3(n).await,
        }
    });
    let wall = clock.elapsed().as_secs_f64();
    println!("{wall} {instances} {}", peak_rss_mb());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let n = args[i + 2].parse().expect("n");
        return child(&args[i + 1], n, &args[i + 3]);
    }
    let quick = args.iter().any(|a| a == "--quick");
    let mut cases = vec![("W1", 4)];
    for n in [1_000, 10_000, 100_000] {
        if !(quick && n > 10_000) {
            cases.push(("W2", n));
        }
    }
    cases.push(("W3", W3_LENGTH));
    for n in [1_000, 10_000, 100_000] {
        if !(quick && n > 10_000) {
            cases.push(("W4", n));
        }
    }
    let exe = std::env::current_exe().expect("own path");
    println!(
        "flow overhead benchmark: parallelism {PARALLELISM}, {} cores",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    println!("| workload | tasks | mode | wall | per task | vs tokio | peak RSS |");
    println!("|---|---:|---|---:|---:|---:|---:|");
    for (workload, n) in cases {
        let mut baseline_per_task = f64::NAN;
        for mode in ["tokio", "memory", "sqlite"] {
            let out = Command::new(&exe)
                .args(["--child", workload, &n.to_string(), mode])
                .output()
                .expect("child runs");
            let text = String::from_utf8_lossy(&out.stdout);
            let fields: Vec<f64> = text
                .split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect();
            let [wall, instances, rss] = fields[..] else {
                eprintln!(
                    "{workload} {mode} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                continue;
            };
            let per_task_us = wall / instances * 1e6;
            if mode == "tokio" {
                baseline_per_task = per_task_us;
            }
            println!(
                "| {workload} | {instances} | {mode} | {:.3} s | {per_task_us:.2} us | {:.2}x | {rss:.0} MB |",
                wall,
                per_task_us / baseline_per_task
            );
        }
    }
}

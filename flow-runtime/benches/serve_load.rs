//! Load on the `serve` REST API: concurrent clients on loopback against a SQLite store
//! holding 1,000 runs, while a run executes in the same store.
//!
//! ```text
//! cargo bench -p flow-runtime --bench serve_load                   # 100 clients, 30 s
//! cargo bench -p flow-runtime --bench serve_load -- --clients 20 --seconds 5
//! ```
//!
//! Each client repeats a mix of reads (DAGs, a page of runs at a random offset, a run,
//! its task instances, a log, XComs) for the duration; the bench prints, per endpoint
//! and in all, how many requests were answered, how many were not 200, and the p50, p99
//! and largest latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use flow_runtime::Executor;
use flow_runtime::prelude::*;
use flow_runtime::registry::Registry;
use flow_runtime::serve::{self, Api};
use flow_runtime::settings::Settings;
use flow_runtime::store::{SqliteStore, Store};

const RUNS: usize = 1_000;

/// Four tasks: a source, two steps, a sink; each logs a line. `pause` makes each take
/// that long (the run that executes during the load).
fn dag(id: &str, pause: Duration) -> Dag {
    let mut b = DagBuilder::new(id).max_active_tasks(64);
    let source = b
        .add_task(TaskSpec::from_async("extract", move |_, _| async move {
            tokio::time::sleep(pause).await;
            tracing::info!("extracted 1797 rows");
            Ok(1797_u64)
        }))
        .finish::<u64>();
    let mut prev = source;
    for name in ["clean", "train", "publish"] {
        let mut t = b.add_task(
            TaskSpec::from_async(name, move |_, inputs| async move {
                tokio::time::sleep(pause).await;
                let rows: u64 = inputs.get(0)?;
                tracing::info!("{rows} rows in");
                Ok(rows + 1)
            })
            .param::<u64>("rows"),
        );
        t.input(prev);
        prev = t.finish::<u64>();
    }
    b.build().expect("the bench DAG builds")
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a whole number"))
}

/// One request's path, and the endpoint it counts under.
fn request(client: usize, n: usize, run_ids: &[String]) -> (&'static str, String) {
    let run = &run_ids[(client * 7919 + n * 104_729) % run_ids.len()];
    let run = run.replace('+', "%2B").replace(':', "%3A");
    match n % 6 {
        0 => ("dags", "/api/v2/dags".into()),
        1 => (
            "dagRuns page",
            format!(
                "/api/v2/dags/history/dagRuns?limit=50&offset={}",
                (client * 31 + n) % RUNS
            ),
        ),
        2 => ("dagRun", format!("/api/v2/dags/history/dagRuns/{run}")),
        3 => (
            "taskInstances",
            format!("/api/v2/dags/history/dagRuns/{run}/taskInstances"),
        ),
        4 => (
            "logs",
            format!("/api/v2/dags/history/dagRuns/{run}/taskInstances/train/logs/1"),
        ),
        _ => (
            "xcomEntries",
            format!("/api/v2/dags/history/dagRuns/{run}/taskInstances/publish/xcomEntries"),
        ),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let clients = arg("--clients", 100) as usize;
    let seconds = arg("--seconds", 30);
    let home = tempfile::tempdir().unwrap();
    let settings = Settings::from_vars(|name| {
        (name == "FLOW_HOME").then(|| home.path().as_os_str().to_owned())
    })
    .unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&home.path().join("flow.db")).unwrap());
    let history = dag("history", Duration::ZERO);
    let live = dag("live", Duration::from_millis(200));
    let runtime = tokio::runtime::Runtime::new().unwrap();

    let started = Instant::now();
    let executor = Executor::new(store.clone());
    let mut run_ids = Vec::with_capacity(RUNS);
    runtime.block_on(async {
        for i in 0..RUNS {
            let date = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
                + chrono::Duration::hours(i as i64);
            let summary = executor.run(&history, date).await.unwrap();
            run_ids.push(summary.run_id.to_string());
        }
    });
    println!(
        "recorded {RUNS} runs of `history` in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let registry = Arc::new(Registry::from_dags([history.clone(), live.clone()]));
    let api = Api::new(registry, store.clone(), settings);
    let listener = runtime
        .block_on(serve::listen("127.0.0.1:0".parse().unwrap(), None))
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(serve::serve(listener, api, None, async move {
        let _ = stop_rx.await;
    }));
    // A run executes in the same store while the clients read: runs of `live`, one after
    // the other, four 200 ms tasks each.
    let live_runs = runtime.spawn(async move {
        let mut done = 0_u32;
        let until = Instant::now() + Duration::from_secs(seconds);
        while Instant::now() < until {
            executor.run(&live, Utc::now()).await.unwrap();
            done += 1;
        }
        done
    });

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let run_ids = Arc::new(run_ids);
    let threads: Vec<_> = (0..clients)
        .map(|client| {
            let (base, run_ids) = (base.clone(), run_ids.clone());
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                let mut seen: Vec<(&'static str, Duration, bool)> = Vec::new();
                let mut n = 0;
                while Instant::now() < deadline {
                    let (endpoint, path) = request(client, n, &run_ids);
                    let sent = Instant::now();
                    let ok = match agent.get(&format!("{base}{path}")).call() {
                        Ok(mut response) => {
                            let _ = response.body_mut().read_to_vec();
                            response.status() == 200
                        }
                        Err(_) => false,
                    };
                    seen.push((endpoint, sent.elapsed(), ok));
                    n += 1;
                }
                seen
            })
        })
        .collect();
    let mut all: Vec<(&'static str, Duration, bool)> = Vec::new();
    for thread in threads {
        all.extend(thread.join().unwrap());
    }
    let live_done = runtime.block_on(live_runs).unwrap();
    let _ = stop_tx.send(());
    runtime.block_on(server).unwrap().unwrap();

    println!(
        "{clients} clients for {seconds} s on loopback; {live_done} runs of `live` executed meanwhile\n"
    );
    println!("| endpoint | requests | not 200 | p50 | p99 | max |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut endpoints: Vec<&str> = all.iter().map(|(e, _, _)| *e).collect();
    endpoints.sort_unstable();
    endpoints.dedup();
    let row = |name: &str, seen: Vec<&(&str, Duration, bool)>| {
        let mut times: Vec<Duration> = seen.iter().map(|(_, t, _)| *t).collect();
        times.sort_unstable();
        let failed = seen.iter().filter(|(_, _, ok)| !ok).count();
        let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
        println!(
            "| {name} | {} | {failed} | {} | {} | {} |",
            times.len(),
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99)),
            ms(times.last().copied().unwrap_or_default()),
        );
    };
    for endpoint in endpoints {
        row(
            endpoint,
            all.iter().filter(|(e, _, _)| *e == endpoint).collect(),
        );
    }
    row("all", all.iter().collect());
    println!(
        "\n{:.0} requests a second",
        all.len() as f64 / seconds as f64
    );
}

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::*;
use crate::graph::DagBuilder;
use crate::runtime::Executor;
use crate::state::RunState;
use crate::store::{MemoryStore, PoolRecord, PoolStore};
use crate::task::{TaskError, TaskSpec};

/// The value of the sample `name{labels}` in `text`, if there is one.
fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test]
async fn a_run_is_counted_and_the_store_is_read_at_each_scrape() {
    let store = Arc::new(MemoryStore::new());
    store
        .set_pool(&PoolRecord {
            name: "gpu".into(),
            slots: 4,
            description: String::new(),
        })
        .unwrap();
    let mut b = DagBuilder::new("metered");
    let first = b
        .add_task(TaskSpec::from_sync("first", |_, _| Ok(1_u64)).pool("gpu", 3))
        .finish::<u64>();
    let flaky = b
        .add_task(
            TaskSpec::from_sync("flaky", |ctx, _| {
                if ctx.try_number() == 1 {
                    return Err(TaskError::Failed("first try fails".into()));
                }
                Ok(())
            })
            .retries(1)
            .retry_delay(Duration::ZERO),
        )
        .finish::<()>();
    b.set_downstream(&[first.any()], &[flaky.any()]);
    let dag = b.build().unwrap();

    let metrics = Arc::new(Metrics::new());
    let before = metrics.render(store.as_ref()).unwrap();
    assert_eq!(
        sample(&before, "flow_pool_slots{pool=\"gpu\",state=\"open\"}"),
        Some(4.0)
    );
    assert_eq!(
        sample(
            &before,
            "flow_pool_slots{pool=\"default_pool\",state=\"used\"}"
        ),
        Some(0.0)
    );
    assert_eq!(sample(&before, "flow_queue_depth"), Some(0.0));
    assert!(!before.contains("flow_dag_runs{"), "{before}");

    let executor = Executor::new(store.clone()).metrics(metrics.clone());
    let summary = executor.run(&dag, Utc::now()).await.unwrap();
    assert_eq!(summary.state, RunState::Success);

    let text = metrics.render(store.as_ref()).unwrap();
    let tries = |task: &str, state: &str| {
        sample(
            &text,
            &format!(
                "flow_task_tries_total{{dag_id=\"metered\",task_id=\"{task}\",state=\"{state}\"}}"
            ),
        )
    };
    assert_eq!(tries("first", "success"), Some(1.0), "{text}");
    assert_eq!(tries("flaky", "up_for_retry"), Some(1.0), "{text}");
    assert_eq!(tries("flaky", "success"), Some(1.0), "{text}");
    assert_eq!(tries("flaky", "failed"), None, "{text}");
    assert_eq!(
        sample(
            &text,
            "flow_task_duration_seconds_count{dag_id=\"metered\",task_id=\"flaky\"}"
        ),
        Some(2.0),
        "{text}"
    );
    // Three tries started, each after its start was decided.
    assert_eq!(
        sample(
            &text,
            "flow_task_claim_to_start_seconds_count{dag_id=\"metered\"}"
        ),
        Some(3.0),
        "{text}"
    );
    assert!(
        sample(&text, "flow_scheduler_loop_seconds_count{kind=\"run\"}")
            .is_some_and(|turns| turns >= 3.0),
        "{text}"
    );
    // The run ended: nothing waits, no slot is held, and the store has one successful run.
    assert_eq!(sample(&text, "flow_queue_depth"), Some(0.0), "{text}");
    assert_eq!(
        sample(&text, "flow_pool_slots{pool=\"gpu\",state=\"used\"}"),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, "flow_dag_runs{dag_id=\"metered\",state=\"success\"}"),
        Some(1.0),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"), "OpenMetrics text ends with EOF");
}

#[tokio::test]
async fn instances_waiting_for_a_slot_are_the_queue_depth() {
    // Four ready tasks and room for one: while the first runs, three wait.
    let store = Arc::new(MemoryStore::new());
    let mut b = DagBuilder::new("narrow");
    let (entered_tx, entered_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let gate = Arc::new(std::sync::Mutex::new((entered_tx, release_rx)));
    for name in ["a", "b", "c", "d"] {
        let gate = gate.clone();
        b.add_task(TaskSpec::from_sync(name, move |_, _| {
            let gate = gate.lock().unwrap_or_else(|p| p.into_inner());
            let _ = gate.0.send(());
            let _ = gate.1.recv_timeout(Duration::from_secs(10));
            Ok(())
        }));
    }
    let dag = b.build().unwrap();
    let metrics = Arc::new(Metrics::new());
    let executor = Executor::new(store.clone())
        .parallelism(2)
        .metrics(metrics.clone());
    // Pool of one: only one task runs at a time.
    store
        .set_pool(&PoolRecord {
            name: crate::pools::DEFAULT_POOL.into(),
            slots: 1,
            description: String::new(),
        })
        .unwrap();
    let run = tokio::spawn(async move { executor.run(&dag, Utc::now()).await });
    tokio::task::spawn_blocking(move || {
        entered_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        // The loop counts what waits at the end of its turn, which may come just after
        // the first task began: look until it has (or give up after 10 s).
        let mut text = String::new();
        for _ in 0..200 {
            text = metrics.render(store.as_ref()).unwrap();
            if sample(&text, "flow_queue_depth") == Some(3.0) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(
            sample(
                &text,
                "flow_pool_slots{pool=\"default_pool\",state=\"used\"}"
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, "flow_dag_runs{dag_id=\"narrow\",state=\"running\"}"),
            Some(1.0),
            "{text}"
        );
        assert_eq!(sample(&text, "flow_queue_depth"), Some(3.0), "{text}");
        for _ in 0..4 {
            release_tx.send(()).unwrap();
        }
        for _ in 0..3 {
            let _ = entered_rx.recv_timeout(Duration::from_secs(10));
        }
    })
    .await
    .unwrap();
    let summary = run.await.unwrap().unwrap();
    assert_eq!(summary.state, RunState::Success);
}

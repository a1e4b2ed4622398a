use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Instant;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use crate::error::RunError;
use crate::graph::Dag;
use crate::graph::{DagBuilder, Node};
use crate::ids::{MapIndex, RunId, TaskIndex, TaskInstanceKey};
use crate::runtime::*;
use crate::state::{RunState, TaskState};
use crate::store::{Change, PoolStore, RescheduleStore, RunStore};
use crate::store::{MemoryStore, XComStore};
use crate::task::TaskError;
use crate::task::TaskSpec;
use crate::xcom::{RETURN_VALUE, XComBlob};

fn value(name: &str, v: u64) -> TaskSpec {
    TaskSpec::from_sync(name, move |_, _| Ok(v))
}

fn add_one(name: &str) -> TaskSpec {
    TaskSpec::from_async(
        name,
        |_, inputs| async move { Ok(inputs.get::<u64>(0)? + 1) },
    )
    .param::<u64>("x")
}

fn fails(name: &str, message: &'static str) -> TaskSpec {
    TaskSpec::from_sync(name, move |_, _| {
        Err::<u64, _>(TaskError::Failed(message.into()))
    })
}

fn with_input(b: &mut DagBuilder, spec: TaskSpec, input: Node<u64>) -> Node<u64> {
    let mut t = b.add_task(spec);
    t.input(input);
    t.finish()
}

async fn run(dag: &Dag) -> (RunSummary, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    let summary = Executor::new(store.clone())
        .run(dag, Utc::now())
        .await
        .unwrap();
    (summary, store)
}

#[tokio::test]
async fn a_second_run_of_one_date_is_refused_and_writes_nothing() {
    let mut b = DagBuilder::new("twice");
    b.add_task(value("a", 1));
    let dag = b.build().unwrap();
    let store = Arc::new(MemoryStore::new());
    let executor = Executor::new(store.clone());
    let mut events = executor.events().subscribe();
    let date = Utc::now();
    let first = executor.run(&dag, date).await.unwrap();
    assert_eq!(first.state, RunState::Success);
    let err = executor.run(&dag, date).await.unwrap_err();
    assert!(matches!(err, RunError::RunExists { .. }), "{err:?}");
    let runs = store.runs(Some(dag.id())).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0].state,
        RunState::Success,
        "the first run is untouched"
    );
    let mut announced = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let crate::events::Event::Run(run) = event {
            announced.push(run.state);
        }
    }
    assert_eq!(
        announced,
        [RunState::Running, RunState::Success],
        "the refused run is never announced"
    );
}

fn states(summary: &RunSummary) -> Vec<(String, TaskState)> {
    summary
        .tasks
        .iter()
        .map(|t| (t.task_id.to_string(), t.state))
        .collect()
}

#[tokio::test]
async fn outputs_flow_through_the_store_as_xcom() {
    let mut b = DagBuilder::new("chain");
    let a = b.add_task(value("a", 40)).finish::<u64>();
    let x = with_input(&mut b, add_one("b"), a);
    with_input(&mut b, add_one("c"), x);
    let literal = b.add_task(add_one("d")).input(7_u64).finish::<u64>();
    let _ = literal;
    let (summary, store) = run(&b.build().unwrap()).await;
    assert_eq!(summary.state, RunState::Success);
    assert_eq!(summary.output::<u64>("c").unwrap(), 42);
    assert_eq!(summary.output::<u64>("d").unwrap(), 8);
    let run = store
        .run(&"chain".into(), &summary.run_id)
        .unwrap()
        .unwrap();
    assert_eq!(run.state, RunState::Success);
    assert!(run.end.is_some());
    let recorded = store
        .task_instances(&"chain".into(), &summary.run_id)
        .unwrap();
    assert!(
        recorded
            .iter()
            .all(|ti| ti.state == TaskState::Success && ti.try_number == 1)
    );
}

#[tokio::test]
async fn a_failure_fails_its_downstream_and_the_run_but_not_other_branches() {
    let mut b = DagBuilder::new("fail");
    let bad = b.add_task(fails("bad", "no data")).finish::<u64>();
    let after = with_input(&mut b, add_one("after"), bad);
    with_input(&mut b, add_one("after_after"), after);
    let good = b.add_task(value("good", 1)).finish::<u64>();
    with_input(&mut b, add_one("good_after"), good);
    let (summary, _) = run(&b.build().unwrap()).await;
    assert_eq!(summary.state, RunState::Failed);
    assert_eq!(
        states(&summary),
        [
            ("bad".into(), TaskState::Failed),
            ("after".into(), TaskState::UpstreamFailed),
            ("after_after".into(), TaskState::UpstreamFailed),
            ("good".into(), TaskState::Success),
            ("good_after".into(), TaskState::Success),
        ]
    );
    assert_eq!(
        summary.task("bad").unwrap().error.as_deref(),
        Some("no data")
    );
    assert_eq!(summary.task("after").unwrap().tries, 0);
}

#[tokio::test]
async fn retries_wait_the_delay_and_count_tries() {
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    let flaky = TaskSpec::from_sync("flaky", move |ctx, _| {
        let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
        assert_eq!(ctx.try_number(), n);
        if n < 3 {
            Err(TaskError::Failed(format!("try {n} failed")))
        } else {
            Ok(n)
        }
    })
    .retries(2)
    .retry_delay(Duration::from_millis(20));
    let mut b = DagBuilder::new("retry");
    b.add_task(flaky);
    b.add_task(
        fails("hopeless", "always")
            .retries(1)
            .retry_delay(Duration::from_millis(1)),
    );
    let clock = Instant::now();
    let (summary, _) = run(&b.build().unwrap()).await;
    assert!(
        clock.elapsed() >= Duration::from_millis(40),
        "two retry delays of 20ms"
    );
    let flaky = summary.task("flaky").unwrap();
    assert_eq!((flaky.state, flaky.tries), (TaskState::Success, 3));
    assert_eq!(summary.output::<u32>("flaky").unwrap(), 3);
    let hopeless = summary.task("hopeless").unwrap();
    assert_eq!((hopeless.state, hopeless.tries), (TaskState::Failed, 2));
}

#[tokio::test]
async fn panics_fail_the_try_and_leave_the_run_going() {
    let mut b = DagBuilder::new("panics");
    b.add_task(TaskSpec::from_sync(
        "sync_panic",
        |_, _| -> Result<u8, TaskError> { panic!("sync boom") },
    ));
    b.add_task(TaskSpec::from_async("async_panic", |_, _| async {
        if true {
            panic!("async boom");
        }
        Ok(1_u8)
    }));
    b.add_task(value("fine", 1));
    let (summary, _) = run(&b.build().unwrap()).await;
    assert_eq!(
        summary.task("sync_panic").unwrap().error.as_deref(),
        Some("task panicked: sync boom")
    );
    assert_eq!(
        summary.task("async_panic").unwrap().error.as_deref(),
        Some("task panicked: async boom")
    );
    assert_eq!(summary.task("fine").unwrap().state, TaskState::Success);
    assert_eq!(summary.state, RunState::Failed);
}

#[tokio::test]
async fn parallelism_bounds_running_tasks() {
    let active = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let mut b = DagBuilder::new("wide");
    for i in 0..8 {
        let (active, peak) = (active.clone(), peak.clone());
        b.add_task(TaskSpec::from_async(format!("t{i}"), move |_, _| {
            let (active, peak) = (active.clone(), peak.clone());
            async move {
                let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                active.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            }
        }));
    }
    let dag = b.build().unwrap();
    let summary = Executor::new(Arc::new(MemoryStore::new()))
        .parallelism(3)
        .run(&dag, Utc::now())
        .await
        .unwrap();
    assert_eq!(summary.state, RunState::Success);
    assert_eq!(peak.load(Ordering::SeqCst), 3);
}

#[test]
fn sync_tasks_run_off_the_async_threads() {
    // One async thread: if the blocking task ran on it, the async task could never send.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let rx = Arc::new(Mutex::new(rx));
    let mut b = DagBuilder::new("blocking");
    b.add_task(TaskSpec::from_sync("waits", move |_, _| {
        let rx = rx.lock().unwrap();
        rx.recv_timeout(Duration::from_secs(10))
            .map_err(|_| TaskError::Failed("the async task never ran".into()))
    }));
    b.add_task(TaskSpec::from_async("signals", move |_, _| {
        let tx = tx.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            tx.send(()).map_err(|e| TaskError::Failed(e.to_string()))
        }
    }));
    let dag = b.build().unwrap();
    let summary = runtime
        .block_on(
            Executor::new(Arc::new(MemoryStore::new()))
                .parallelism(2)
                .run(&dag, Utc::now()),
        )
        .unwrap();
    assert_eq!(summary.state, RunState::Success, "{:?}", summary.tasks);
}

#[tokio::test]
async fn pushed_xcoms_are_kept_only_for_successful_tries() {
    let mut b = DagBuilder::new("xcom");
    let push = b
        .add_task(
            TaskSpec::from_sync("push", |ctx, _| {
                ctx.xcom_push("rows", &1797_u64)?;
                if ctx.try_number() == 1 {
                    ctx.xcom_push("first_try_only", &true)?;
                    return Err(TaskError::Failed("first try fails".into()));
                }
                Ok(())
            })
            .retries(1)
            .retry_delay(Duration::ZERO),
        )
        .finish::<()>();
    let pull = b
        .add_task(TaskSpec::from_sync("pull", |ctx, _| {
            let first: Option<bool> = ctx.try_xcom_pull("push", "first_try_only")?;
            Ok((ctx.xcom_pull::<u64>("push", "rows")?, first))
        }))
        .finish::<(u64, Option<bool>)>();
    b.set_downstream(&[push.any()], &[pull.any()]);
    let (summary, _) = run(&b.build().unwrap()).await;
    assert_eq!(
        summary.output::<(u64, Option<bool>)>("pull").unwrap(),
        (1797, None)
    );
    assert_eq!(summary.xcom::<u64>("push", "rows").unwrap(), 1797);
}

#[tokio::test]
async fn a_value_that_no_longer_decodes_names_producer_and_types() {
    let mut b = DagBuilder::new("drift");
    let text = b
        .add_task(TaskSpec::from_sync("producer", |_, _| {
            Ok("text".to_string())
        }))
        .finish::<u64>();
    with_input(&mut b, add_one("consumer"), text);
    let (summary, _) = run(&b.build().unwrap()).await;
    let error = summary.task("consumer").unwrap().error.clone().unwrap();
    assert!(error.contains("from task `producer`"), "{error}");
    assert!(
        error.contains("alloc::string::String") && error.contains("`u64`"),
        "{error}"
    );
}

#[tokio::test]
async fn observers_see_every_state_in_order() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let mut b = DagBuilder::new("events");
    b.add_task(fails("f", "x").retries(1).retry_delay(Duration::ZERO));
    let executor = Executor::new(Arc::new(MemoryStore::new()))
        .on_event(move |e| sink.lock().unwrap().push((e.state, e.try_number)));
    executor.run(&b.build().unwrap(), Utc::now()).await.unwrap();
    use TaskState::*;
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (Queued, 0),
            (Running, 1),
            (UpForRetry, 1),
            (Queued, 1),
            (Running, 2),
            (Failed, 2)
        ]
    );
}

#[tokio::test]
async fn test_task_runs_one_task_with_given_inputs() {
    let mut b = DagBuilder::new("single");
    let a = b.add_task(value("a", 1)).finish::<u64>();
    with_input(&mut b, add_one("b"), a);
    let dag = b.build().unwrap();
    let executor = Executor::new(Arc::new(MemoryStore::new()));
    let (out, pushed) = executor
        .test_task(
            &dag,
            TaskIndex::new(1),
            vec![XComBlob::encode(&41_u64).unwrap()],
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(out.decode::<u64>().unwrap(), 42);
    assert!(pushed.is_empty());
}

#[tokio::test]
async fn resume_refuses_finished_unknown_and_reshaped_runs() {
    let store = Arc::new(MemoryStore::new());
    let executor = Executor::new(store.clone());
    let mut b = DagBuilder::new("shape");
    let a = b.add_task(value("a", 1)).finish::<u64>();
    with_input(&mut b, add_one("b"), a);
    let dag = b.build().unwrap();
    let finished = executor.run(&dag, Utc::now()).await.unwrap();
    let err = executor.resume(&dag, &finished.run_id).await.unwrap_err();
    assert!(matches!(err, RunError::RunFinished { .. }), "{err}");
    let err = executor.resume(&dag, &"nope".into()).await.unwrap_err();
    assert!(err.to_string().contains("has no run `nope`"), "{err}");

    // A run created by a build whose DAG had other edges is not continued.
    let run = executor
        .create_run(
            &dag,
            RunRequest::for_interval(
                &dag,
                crate::store::RunType::Backfill,
                crate::time::timetable::DataInterval::exact(Utc::now()),
            )
            .unwrap(),
        )
        .unwrap();
    let mut b = DagBuilder::new("shape");
    b.add_task(value("a", 1));
    b.add_task(value("b", 1));
    let reshaped = b.build().unwrap();
    let err = executor.resume(&reshaped, &run.run_id).await.unwrap_err();
    assert!(matches!(err, RunError::ShapeChanged { .. }), "{err}");
    assert!(err.to_string().contains("start a new run"), "{err}");
    // The same build continues it.
    assert_eq!(
        executor.resume(&dag, &run.run_id).await.unwrap().state,
        RunState::Success
    );
}

#[tokio::test]
async fn resume_counts_interrupted_tries_and_keeps_successes() {
    let store = Arc::new(MemoryStore::new());
    let executor = Executor::new(store.clone());
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let mut b = DagBuilder::new("crash");
    let a = b
        .add_task(TaskSpec::from_sync("a", move |_, _| {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(1_u64)
        }))
        .finish::<u64>();
    with_input(
        &mut b,
        add_one("b").retries(1).retry_delay(Duration::ZERO),
        a,
    );
    with_input(&mut b, add_one("c"), a);
    let dag = b.build().unwrap();
    // Record what a process killed mid-run leaves: `a` succeeded, `b` running its first
    // try, `c` queued.
    let run = executor
        .create_run(
            &dag,
            RunRequest::for_interval(
                &dag,
                crate::store::RunType::Backfill,
                crate::time::timetable::DataInterval::exact(Utc::now()),
            )
            .unwrap(),
        )
        .unwrap();
    let record = |task: &str, state, try_number, expect| Change::Task {
        record: crate::store::TaskInstanceRecord {
            key: TaskInstanceKey {
                dag_id: "crash".into(),
                run_id: run.run_id.clone(),
                task_id: task.into(),
                map_index: MapIndex::UNMAPPED,
            },
            state,
            try_number,
            max_tries: 1, // `b`'s one retry
            start: Some(Utc::now()),
            end: None,
            error: None,
            priority_weight: 0,
            queue: None,
        },
        expect,
    };
    let fresh = crate::store::Expect::FRESH;
    let was = |state, try_number| crate::store::Expect { state, try_number };
    store
        .apply(&[
            record("a", TaskState::Running, 1, fresh),
            record("b", TaskState::Queued, 0, fresh),
            record("c", TaskState::Queued, 0, fresh),
        ])
        .unwrap();
    store
        .apply(&[
            record("a", TaskState::Success, 1, was(TaskState::Running, 1)),
            Change::XCom {
                key: TaskInstanceKey {
                    dag_id: "crash".into(),
                    run_id: run.run_id.clone(),
                    task_id: "a".into(),
                    map_index: MapIndex::UNMAPPED,
                },
                name: RETURN_VALUE.into(),
                value: XComBlob::encode(&41_u64).unwrap().into(),
            },
            record("b", TaskState::Running, 1, was(TaskState::Queued, 0)),
        ])
        .unwrap();
    let summary = executor.resume(&dag, &run.run_id).await.unwrap();
    assert_eq!(summary.state, RunState::Success, "{summary:?}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "a succeeded before the crash and does not run again"
    );
    assert_eq!(
        summary.task("b").unwrap().tries,
        2,
        "the interrupted try counts"
    );
    assert_eq!(summary.task("c").unwrap().tries, 1);
    assert_eq!(
        summary.output::<u64>("b").unwrap(),
        42,
        "the stored XCom of `a` was used"
    );
    let tries = store.tries(&summary_key(&summary, "b")).unwrap();
    assert!(
        tries[0]
            .error
            .as_deref()
            .unwrap()
            .contains("try 1 was interrupted"),
        "{tries:?}"
    );
}

fn summary_key(summary: &RunSummary, task: &str) -> TaskInstanceKey {
    TaskInstanceKey {
        dag_id: summary.dag_id().clone(),
        run_id: summary.run_id.clone(),
        task_id: task.into(),
        map_index: MapIndex::UNMAPPED,
    }
}

#[test]
fn with_sqlite_a_task_starts_only_after_its_inputs_and_its_try_are_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.db");
    let store = Arc::new(crate::store::SqliteStore::open(&path).unwrap());
    let mut b = DagBuilder::new("durable");
    let width = 40;
    for i in 0..width {
        let producer = b.add_task(value(&format!("p{i}"), i)).finish::<u64>();
        let path = path.clone();
        let check = TaskSpec::from_async(format!("c{i}"), move |ctx, inputs| {
            let path = path.clone();
            async move {
                // Another connection sees only what was committed.
                let other = crate::store::SqliteStore::open(&path)
                    .map_err(|e| TaskError::Failed(e.to_string()))?;
                let mut producer = ctx.key();
                producer.task_id = format!("p{i}").into();
                let stored = other
                    .get_xcom(&producer, RETURN_VALUE)
                    .map_err(|e| TaskError::Failed(e.to_string()))?;
                let mine = other
                    .task_instances(ctx.dag_id(), ctx.run_id())
                    .map_err(|e| TaskError::Failed(e.to_string()))?
                    .into_iter()
                    .find(|ti| ti.key.task_id == *ctx.task_id());
                let try_recorded =
                    mine.is_some_and(|ti| ti.state == TaskState::Running && ti.try_number == 1);
                Ok((stored.is_some(), try_recorded, inputs.get::<u64>(0)?))
            }
        })
        .param::<u64>("x");
        let mut t = b.add_task(check);
        t.input(producer);
    }
    let dag = b.build().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let summary = runtime
        .block_on(Executor::new(store).parallelism(8).run(&dag, Utc::now()))
        .unwrap();
    assert_eq!(summary.state, RunState::Success, "{summary:?}");
    for i in 0..width {
        let seen: (bool, bool, u64) = summary.output(&format!("c{i}")).unwrap();
        assert_eq!(
            seen,
            (true, true, i),
            "c{i}: input durable, try recorded, value"
        );
    }
}

#[tokio::test]
async fn a_run_past_its_dagrun_timeout_fails_and_skips_the_rest() {
    let mut b = DagBuilder::new("slow").dagrun_timeout(Duration::from_millis(200));
    let slow = b
        .add_task(TaskSpec::from_async("slow", |_, _| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(1_u64)
        }))
        .finish::<u64>();
    with_input(&mut b, add_one("after"), slow);
    b.add_task(value("quick", 1));
    let clock = Instant::now();
    let (summary, store) = run(&b.build().unwrap()).await;
    assert!(
        clock.elapsed() < Duration::from_secs(10),
        "the slow task was abandoned"
    );
    assert_eq!(summary.state, RunState::Failed);
    let slow = summary.task("slow").unwrap();
    assert_eq!(slow.state, TaskState::Failed);
    assert!(
        slow.error
            .as_deref()
            .unwrap()
            .contains("exceeded its dagrun_timeout of 200ms"),
        "{slow:?}"
    );
    assert_eq!(summary.task("after").unwrap().state, TaskState::Skipped);
    assert_eq!(summary.task("quick").unwrap().state, TaskState::Success);
    let recorded = store.run(&"slow".into(), &summary.run_id).unwrap().unwrap();
    assert_eq!(recorded.state, RunState::Failed);
}

#[tokio::test]
async fn a_stop_lets_running_tasks_finish_starts_nothing_new_and_the_run_resumes() {
    let store = Arc::new(MemoryStore::new());
    let mut b = DagBuilder::new("stoppable");
    let first = b
        .add_task(TaskSpec::from_async("first", |_, _| async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(1_u64)
        }))
        .finish::<u64>();
    with_input(&mut b, add_one("second"), first);
    let dag = b.build().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let executor = Executor::new(store.clone()).stop_on(stop_rx, Duration::from_secs(10));
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop_tx.send(true).unwrap();
    });
    let stopped = executor.run(&dag, Utc::now()).await.unwrap();
    stopper.await.unwrap();
    assert_eq!(stopped.state, RunState::Running, "{stopped:?}");
    assert_eq!(
        stopped.task("first").unwrap().state,
        TaskState::Success,
        "the running task got its grace"
    );
    assert_eq!(
        stopped.task("second").unwrap().state,
        TaskState::None,
        "nothing new started"
    );
    let recorded = store
        .run(&"stoppable".into(), &stopped.run_id)
        .unwrap()
        .unwrap();
    assert_eq!(recorded.state, RunState::Running);
    let resumed = Executor::new(store.clone())
        .resume(&dag, &stopped.run_id)
        .await
        .unwrap();
    assert_eq!(resumed.state, RunState::Success);
    assert_eq!(resumed.output::<u64>("second").unwrap(), 2);
}

#[tokio::test]
async fn tasks_still_running_after_the_grace_period_are_retried_on_resume() {
    let store = Arc::new(MemoryStore::new());
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let mut b = DagBuilder::new("abandoned");
    b.add_task(
        TaskSpec::from_async("long", move |ctx, _| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if ctx.try_number() == 1 {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                Ok(ctx.try_number())
            }
        })
        .retries(1)
        .retry_delay(Duration::ZERO),
    );
    let dag = b.build().unwrap();
    let clock = Instant::now();
    // Stopped 50 ms in, with a 100 ms grace: the first try is abandoned.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let executor = Executor::new(store.clone()).stop_on(stop_rx, Duration::from_millis(100));
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop_tx.send(true).unwrap();
    });
    let stopped = executor.run(&dag, Utc::now()).await.unwrap();
    stopper.await.unwrap();
    assert!(clock.elapsed() < Duration::from_secs(10));
    assert_eq!(stopped.state, RunState::Running);
    assert_eq!(stopped.task("long").unwrap().state, TaskState::Running);
    let resumed = Executor::new(store.clone())
        .resume(&dag, &stopped.run_id)
        .await
        .unwrap();
    assert_eq!(resumed.state, RunState::Success);
    assert_eq!(
        resumed.output::<u32>("long").unwrap(),
        2,
        "the abandoned try counted"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn trigger_rules_decide_in_a_real_run() {
    use crate::trigger::TriggerRule;
    let mut b = DagBuilder::new("rules");
    let ok = b.add_task(value("ok", 1)).finish::<u64>().any();
    let bad = b.add_task(fails("bad", "boom")).finish::<u64>().any();
    let rule =
        |b: &mut DagBuilder, name: &str, rule: TriggerRule, ups: &[crate::graph::AnyNode]| {
            let node = b
                .add_task(value(name, 0).trigger_rule(rule))
                .finish::<u64>()
                .any();
            b.set_downstream(ups, &[node]);
            node
        };
    rule(&mut b, "cleanup", TriggerRule::AllDone, &[ok, bad]);
    rule(&mut b, "alert", TriggerRule::OneFailed, &[ok, bad]);
    rule(&mut b, "happy_path", TriggerRule::AllSuccess, &[ok, bad]);
    let skipped = rule(&mut b, "never", TriggerRule::AllFailed, &[ok]);
    rule(
        &mut b,
        "after_skip",
        TriggerRule::NoneFailedMinOneSuccess,
        &[ok, skipped],
    );
    rule(
        &mut b,
        "only_skips",
        TriggerRule::NoneFailedMinOneSuccess,
        &[skipped],
    );
    rule(&mut b, "first_success", TriggerRule::OneSuccess, &[ok, bad]);
    let (summary, _) = run(&b.build().unwrap()).await;
    let state = |t: &str| summary.task(t).unwrap().state;
    assert_eq!(state("cleanup"), TaskState::Success);
    assert_eq!(state("alert"), TaskState::Success);
    assert_eq!(state("happy_path"), TaskState::UpstreamFailed);
    assert_eq!(state("never"), TaskState::Skipped);
    assert_eq!(state("after_skip"), TaskState::Success);
    assert_eq!(state("only_skips"), TaskState::Skipped);
    assert_eq!(state("first_success"), TaskState::Success);
    // `happy_path` is a leaf that did not run because of a failure: the run fails.
    assert_eq!(summary.state, RunState::Failed);
}

#[tokio::test]
async fn an_always_task_runs_without_waiting_for_its_upstream() {
    use crate::trigger::TriggerRule;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let rx = Arc::new(Mutex::new(rx));
    let mut b = DagBuilder::new("always");
    let slow = b
        .add_task(TaskSpec::from_sync("slow", move |_, _| {
            // Waits for `always`, which would deadlock if `always` waited for it.
            rx.lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(10))
                .map_err(|_| TaskError::Failed("always never ran".into()))
        }))
        .finish::<()>()
        .any();
    let always = b
        .add_task(
            TaskSpec::from_sync("always", move |_, _| {
                tx.send(()).map_err(|e| TaskError::Failed(e.to_string()))
            })
            .trigger_rule(TriggerRule::Always),
        )
        .finish::<()>()
        .any();
    b.set_downstream(&[slow], &[always]);
    let (summary, _) = run(&b.build().unwrap()).await;
    assert_eq!(summary.state, RunState::Success, "{summary:?}");
}

#[tokio::test]
async fn execution_timeout_fails_slow_tries_and_retries_them() {
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let mut b = DagBuilder::new("timeouts");
    b.add_task(
        TaskSpec::from_async("slow_async", move |ctx, _| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if ctx.try_number() == 1 {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                Ok(ctx.try_number())
            }
        })
        .execution_timeout(Duration::from_millis(100))
        .retries(1)
        .retry_delay(Duration::ZERO),
    );
    b.add_task(
        TaskSpec::from_sync("slow_sync", |_, _| {
            std::thread::sleep(Duration::from_millis(400));
            Ok(1_u8)
        })
        .execution_timeout(Duration::from_millis(100)),
    );
    let clock = Instant::now();
    let (summary, _) = run(&b.build().unwrap()).await;
    assert!(clock.elapsed() < Duration::from_secs(10));
    let slow_async = summary.task("slow_async").unwrap();
    assert_eq!(
        (slow_async.state, slow_async.tries),
        (TaskState::Success, 2)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let slow_sync = summary.task("slow_sync").unwrap();
    assert_eq!(slow_sync.state, TaskState::Failed);
    assert_eq!(
        slow_sync.error.as_deref(),
        Some("the try exceeded its execution_timeout of 100ms")
    );
}

#[tokio::test]
async fn a_branch_follows_its_choice_and_skips_the_rest() {
    use crate::branch::Branch;
    use crate::trigger::TriggerRule;
    let build = |accuracy: f64| {
        let mut b = DagBuilder::new("branching");
        let choose = b
            .add_task(
                TaskSpec::from_sync("choose", move |_, _| {
                    Ok(if accuracy > 0.9 {
                        Branch::to("deploy_production")
                    } else {
                        Branch::to("deploy_staging")
                    })
                })
                .branch(),
            )
            .finish::<Branch>()
            .any();
        let production = b
            .add_task(value("deploy_production", 1))
            .finish::<u64>()
            .any();
        let staging = b.add_task(value("deploy_staging", 2)).finish::<u64>().any();
        let after_production = b.add_task(value("announce", 3)).finish::<u64>().any();
        let join = b
            .add_task(value("join", 4).trigger_rule(TriggerRule::NoneFailedMinOneSuccess))
            .finish::<u64>()
            .any();
        b.set_downstream(&[choose], &[production, staging]);
        b.set_downstream(&[production], &[after_production]);
        b.set_downstream(&[after_production, staging], &[join]);
        b.build().unwrap()
    };
    let (summary, _) = run(&build(0.95)).await;
    let state = |s: &RunSummary, t: &str| s.task(t).unwrap().state;
    assert_eq!(summary.state, RunState::Success);
    assert_eq!(state(&summary, "deploy_production"), TaskState::Success);
    assert_eq!(state(&summary, "announce"), TaskState::Success);
    assert_eq!(state(&summary, "deploy_staging"), TaskState::Skipped);
    assert_eq!(
        state(&summary, "join"),
        TaskState::Success,
        "none_failed_min_one_success joins the branches"
    );
    let (summary, _) = run(&build(0.85)).await;
    assert_eq!(state(&summary, "deploy_production"), TaskState::Skipped);
    assert_eq!(
        state(&summary, "announce"),
        TaskState::Skipped,
        "the skip propagates"
    );
    assert_eq!(state(&summary, "deploy_staging"), TaskState::Success);
    assert_eq!(state(&summary, "join"), TaskState::Success);
}

#[tokio::test]
async fn a_branch_choosing_an_unknown_task_fails_clearly() {
    use crate::branch::Branch;
    let mut b = DagBuilder::new("bad_branch");
    let choose = b
        .add_task(TaskSpec::from_sync("choose", |_, _| Ok(Branch::to("deploy_prod"))).branch())
        .finish::<Branch>()
        .any();
    let production = b
        .add_task(value("deploy_production", 1))
        .finish::<u64>()
        .any();
    b.set_downstream(&[choose], &[production]);
    let (summary, _) = run(&b.build().unwrap()).await;
    let choose = summary.task("choose").unwrap();
    assert_eq!(choose.state, TaskState::Failed);
    assert_eq!(
        choose.error.as_deref(),
        Some(
            "branch `choose` chose `deploy_prod`, which is not one of its downstream tasks: deploy_production"
        )
    );
    assert_eq!(
        summary.task("deploy_production").unwrap().state,
        TaskState::UpstreamFailed
    );
}

#[tokio::test]
async fn a_false_short_circuit_skips_everything_downstream_whatever_the_rules() {
    use crate::trigger::TriggerRule;
    let build = |go_on: bool| {
        let mut b = DagBuilder::new("short");
        let check = b
            .add_task(TaskSpec::from_sync("check", move |_, _| Ok(go_on)).short_circuit())
            .finish::<bool>()
            .any();
        let next = b.add_task(value("next", 1)).finish::<u64>().any();
        let cleanup = b
            .add_task(value("cleanup", 2).trigger_rule(TriggerRule::AllDone))
            .finish::<u64>()
            .any();
        let other = b.add_task(value("other", 3)).finish::<u64>().any();
        b.set_downstream(&[check], &[next]);
        b.set_downstream(&[next], &[cleanup]);
        let _ = other;
        b.build().unwrap()
    };
    let (summary, _) = run(&build(false)).await;
    let state = |s: &RunSummary, t: &str| s.task(t).unwrap().state;
    assert_eq!(state(&summary, "next"), TaskState::Skipped);
    assert_eq!(
        state(&summary, "cleanup"),
        TaskState::Skipped,
        "even all_done is skipped"
    );
    assert_eq!(state(&summary, "other"), TaskState::Success);
    assert_eq!(summary.state, RunState::Success);
    let (summary, _) = run(&build(true)).await;
    assert_eq!(state(&summary, "cleanup"), TaskState::Success);
}

#[test]
fn branch_and_short_circuit_tasks_must_return_their_types() {
    let mut b = DagBuilder::new("kinds");
    b.add_task(value("not_a_branch", 1).branch());
    b.add_task(value("not_a_bool", 1).short_circuit());
    let errors = b.build().unwrap_err().to_string();
    assert!(errors.contains("task `not_a_branch` is a branch task, so it must return `flow_runtime::branch::Branch`, not `u64`"), "{errors}");
    assert!(
        errors.contains("task `not_a_bool` is a short-circuit task, so it must return `bool`"),
        "{errors}"
    );
}

#[test]
fn no_pool_is_ever_oversubscribed_across_concurrent_runs() {
    use crate::store::{PoolRecord, PoolStore};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let store = Arc::new(MemoryStore::new());
    for (name, slots) in [("gpu", 3), ("api", 2)] {
        store
            .set_pool(&PoolRecord {
                name: name.into(),
                slots,
                description: String::new(),
            })
            .unwrap();
    }
    // Slots in use per pool, as the tasks themselves see them.
    let used: Arc<[AtomicUsize; 2]> = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let peak: Arc<[AtomicUsize; 2]> = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let build = |id: &str, seed: u64| {
        let mut b = DagBuilder::new(id).max_active_tasks(64);
        let mut rng = seed;
        for i in 0..40 {
            rng = rng
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let (pool, which) = if i % 2 == 0 { ("gpu", 0) } else { ("api", 1) };
            let slots = 1 + (rng >> 60) as usize % 2;
            let millis = 1 + (rng >> 33) % 15;
            let (used, peak) = (used.clone(), peak.clone());
            b.add_task(
                TaskSpec::from_async(format!("t{i}"), move |_, _| {
                    let (used, peak) = (used.clone(), peak.clone());
                    async move {
                        let now = used[which].fetch_add(slots, Ordering::SeqCst) + slots;
                        peak[which].fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(millis)).await;
                        used[which].fetch_sub(slots, Ordering::SeqCst);
                        Ok(())
                    }
                })
                .pool(pool, u32::try_from(slots).unwrap()),
            );
        }
        b.build().unwrap()
    };
    let (a, b) = (build("pools_a", 1), build("pools_b", 2));
    let executor = Executor::new(store.clone()).parallelism(64);
    let (ra, rb) = runtime.block_on(async {
        tokio::join!(executor.run(&a, Utc::now()), executor.run(&b, Utc::now()))
    });
    assert_eq!(ra.unwrap().state, RunState::Success);
    assert_eq!(rb.unwrap().state, RunState::Success);
    assert!(
        peak[0].load(Ordering::SeqCst) <= 3,
        "gpu peak {}",
        peak[0].load(Ordering::SeqCst)
    );
    assert!(
        peak[1].load(Ordering::SeqCst) <= 2,
        "api peak {}",
        peak[1].load(Ordering::SeqCst)
    );
    assert!(
        peak[0].load(Ordering::SeqCst) >= 2,
        "the pool was actually shared"
    );
}

#[tokio::test]
async fn higher_priority_starts_first_and_impossible_pools_fail_clearly() {
    use crate::store::{PoolRecord, PoolStore};
    let store = Arc::new(MemoryStore::new());
    store
        .set_pool(&PoolRecord {
            name: "one".into(),
            slots: 1,
            description: String::new(),
        })
        .unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut b = DagBuilder::new("priorities");
    for (name, weight) in [("low", 1), ("high", 10), ("mid", 5)] {
        let order = order.clone();
        b.add_task(
            TaskSpec::from_sync(name, move |ctx, _| {
                order.lock().unwrap().push(ctx.task_id().to_string());
                Ok(())
            })
            .pool("one", 1)
            .priority_weight(weight),
        );
    }
    b.add_task(value("unknown_pool", 1).pool("nope", 1));
    b.add_task(value("too_big", 1).pool("one", 2));
    let summary = Executor::new(store.clone())
        .run(&b.build().unwrap(), Utc::now())
        .await
        .unwrap();
    assert_eq!(*order.lock().unwrap(), ["high", "mid", "low"]);
    assert_eq!(
        summary.task("unknown_pool").unwrap().error.as_deref(),
        Some("pool `nope` does not exist")
    );
    assert_eq!(
        summary.task("too_big").unwrap().error.as_deref(),
        Some("the task takes 2 slots of pool `one`, which has 1")
    );
}

#[test]
fn max_active_tasks_bounds_one_dags_running_tasks() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let active = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let mut b = DagBuilder::new("limited").max_active_tasks(2);
    for i in 0..10 {
        let (active, peak) = (active.clone(), peak.clone());
        b.add_task(TaskSpec::from_async(format!("t{i}"), move |_, _| {
            let (active, peak) = (active.clone(), peak.clone());
            async move {
                peak.fetch_max(active.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
                active.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            }
        }));
    }
    let dag = b.build().unwrap();
    let summary = runtime
        .block_on(
            Executor::new(Arc::new(MemoryStore::new()))
                .parallelism(8)
                .run(&dag, Utc::now()),
        )
        .unwrap();
    assert_eq!(summary.state, RunState::Success);
    assert_eq!(peak.load(Ordering::SeqCst), 2);
}

/// Two executors with their own store handles on one SQLite file, as two processes
/// sharing a FLOW_HOME would be, run a DAG each whose 6 tasks use a 3-slot pool, and a DAG
/// with `max_active_tasks = 2` twice: the store counts the slots, so neither limit is
/// ever exceeded across them.
#[test]
fn executors_sharing_a_database_never_oversubscribe_a_pool_or_a_dags_limit() {
    use crate::store::{PoolRecord, SqliteStore};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.db");
    let first: Arc<SqliteStore> = Arc::new(SqliteStore::open(&path).unwrap());
    let second: Arc<SqliteStore> = Arc::new(SqliteStore::open(&path).unwrap());
    first
        .set_pool(&PoolRecord {
            name: "three".into(),
            slots: 3,
            description: String::new(),
        })
        .unwrap();
    let counter = |active: &Arc<AtomicUsize>, peak: &Arc<AtomicUsize>| {
        let (active, peak) = (active.clone(), peak.clone());
        move |_: &crate::task::context::TaskContext, _| {
            peak.fetch_max(active.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(40));
            active.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        }
    };
    let (pooled, pool_peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (limited, dag_peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut b = DagBuilder::new("pooled");
    for i in 0..6 {
        b.add_task(
            TaskSpec::from_sync(format!("t{i}"), counter(&pooled, &pool_peak)).pool("three", 1),
        );
    }
    let pooled_dag = b.build().unwrap();
    let mut b = DagBuilder::new("limited_twice").max_active_tasks(2);
    for i in 0..6 {
        b.add_task(TaskSpec::from_sync(
            format!("t{i}"),
            counter(&limited, &dag_peak),
        ));
    }
    let limited_dag = b.build().unwrap();
    let a = Executor::new(first).parallelism(8);
    let b = Executor::new(second).parallelism(8);
    let day = |d: u32| Utc.with_ymd_and_hms(2025, 1, d, 0, 0, 0).unwrap();
    let summaries = runtime.block_on(async {
        tokio::join!(
            a.run(&pooled_dag, day(1)),
            b.run(&pooled_dag, day(2)),
            a.run(&limited_dag, day(1)),
            b.run(&limited_dag, day(2)),
        )
    });
    for summary in [summaries.0, summaries.1, summaries.2, summaries.3] {
        assert_eq!(summary.unwrap().state, RunState::Success);
    }
    assert!(
        pool_peak.load(Ordering::SeqCst) <= 3,
        "{pool_peak:?} in a 3-slot pool"
    );
    assert!(
        dag_peak.load(Ordering::SeqCst) <= 2,
        "{dag_peak:?} with max_active_tasks 2"
    );
    // The limits were reached, so the test would see an oversubscription.
    assert_eq!(pool_peak.load(Ordering::SeqCst), 3);
    assert_eq!(dag_peak.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn shell_tasks_feed_their_last_line_downstream_and_fail_with_the_exit_code() {
    use crate::task::shell::ShellCommand;
    let mut b = DagBuilder::new("shell");
    let count = b
        .add_task(TaskSpec::from_shell("count", |ctx, _| {
            Ok(ShellCommand::bash(
                r#"printf 'a\nb\nc\n' | wc -l | tr -d ' '; echo "$FLOW_TASK_ID" >&2"#,
            )
            .env("UNUSED", ctx.ds()))
        }))
        .finish::<String>();
    let mut t = b.add_task(
        TaskSpec::from_sync("parse", |_, inputs| {
            inputs
                .get::<String>(0)?
                .parse::<u64>()
                .map_err(|e| TaskError::Failed(e.to_string()))
        })
        .param::<String>("text"),
    );
    t.input(count);
    b.add_task(TaskSpec::from_shell("broken", |_, _| {
        Ok(ShellCommand::bash("echo oops >&2; exit 7"))
    }));
    let (summary, _) = run(&b.build().unwrap()).await;
    assert_eq!(summary.output::<u64>("parse").unwrap(), 3);
    assert_eq!(
        summary.task("broken").unwrap().error.as_deref(),
        Some("the command failed with exit code 7; stderr ends with:\noops")
    );
}

#[tokio::test]
async fn callbacks_run_after_the_state_is_recorded_and_never_change_it() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = |seen: &Arc<Mutex<Vec<String>>>| {
        let seen = seen.clone();
        move |e: &crate::task::callbacks::CallbackEvent| {
            let task = e
                .task_id
                .as_ref()
                .map_or("<run>".to_string(), ToString::to_string);
            seen.lock()
                .unwrap()
                .push(format!("{task} {} {}", e.state, e.try_number));
        }
    };
    let mut b = DagBuilder::new("callbacks")
        .on_failure(record(&seen))
        .on_success(|_| panic!("not for a failed run"));
    b.add_task(
        value("ok", 1)
            .on_success(record(&seen))
            .on_success(|_| panic!("a callback that panics")),
    );
    b.add_task(
        fails("flaky", "boom")
            .retries(1)
            .retry_delay(Duration::ZERO)
            .on_retry(record(&seen))
            .on_failure(record(&seen))
            .on_success(record(&seen)),
    );
    let (summary, _) = run(&b.build().unwrap()).await;
    assert_eq!(
        summary.task("ok").unwrap().state,
        TaskState::Success,
        "a panicking callback changes nothing"
    );
    assert_eq!(summary.state, RunState::Failed);
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        [
            "<run> failed 0",
            "flaky failed 2",
            "flaky up_for_retry 1",
            "ok success 1"
        ]
    );
}

#[tokio::test]
async fn sensors_poke_until_ready_and_time_out_as_airflow_does() {
    use crate::task::sensor::{self, Poke, SensorOptions};
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ready");
    let fast = SensorOptions {
        poke_interval: Duration::from_millis(20),
        timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let pokes = Arc::new(AtomicU32::new(0));
    let counted = pokes.clone();
    let mut b = DagBuilder::new("sensors");
    let waits = b
        .add_task(sensor::file_exists("wait_for_file", &marker, fast))
        .finish::<String>();
    b.add_task(
        TaskSpec::from_sync("after_file", |_, inputs| {
            Ok(inputs.get::<String>(0)?.len() as u64)
        })
        .param::<String>("path"),
    )
    .input(waits);
    b.add_task(
        TaskSpec::sensor(
            "never",
            SensorOptions {
                exponential_backoff: true,
                ..fast
            },
            move |_, _| {
                counted.fetch_add(1, Ordering::SeqCst);
                Ok(Poke::<()>::NotYet)
            },
        )
        .retries(3),
    );
    let soft = b
        .add_task(TaskSpec::sensor(
            "soft",
            SensorOptions {
                soft_fail: true,
                ..fast
            },
            |_, _| Ok(Poke::<u8>::NotYet),
        ))
        .finish::<u8>();
    let after_soft = b.add_task(value("after_soft", 1)).finish::<u64>().any();
    b.set_downstream(&[soft.any()], &[after_soft]);
    let writer = marker.clone();
    let dag = b.build().unwrap();
    let creator = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(60)).await;
        std::fs::write(writer, "x").unwrap();
    });
    let (summary, _) = run(&dag).await;
    creator.await.unwrap();
    assert_eq!(
        summary.task("wait_for_file").unwrap().state,
        TaskState::Success
    );
    assert_eq!(
        summary.output::<String>("wait_for_file").unwrap(),
        marker.display().to_string()
    );
    let never = summary.task("never").unwrap();
    assert_eq!(
        (never.state, never.tries),
        (TaskState::Failed, 1),
        "a sensor timeout is not retried"
    );
    assert!(
        never
            .error
            .as_deref()
            .unwrap()
            .starts_with("sensor timed out after"),
        "{never:?}"
    );
    assert!(
        pokes.load(Ordering::SeqCst) < 10,
        "backoff spaced the pokes: {}",
        pokes.load(Ordering::SeqCst)
    );
    assert_eq!(summary.task("soft").unwrap().state, TaskState::Skipped);
    assert_eq!(
        summary.task("after_soft").unwrap().state,
        TaskState::Skipped
    );
}

/// A DAG whose sensor (added first, so it starts first) is ready only once `worker`, an
/// independent task, has run, with `limit` as its `max_active_tasks`; and the count of
/// the sensor's pokes.
fn sensor_waiting_for_a_worker(
    mode: crate::task::sensor::SensorMode,
    timeout: Duration,
    pool: Option<&str>,
    limit: u32,
) -> (Dag, Arc<AtomicU32>) {
    use crate::task::sensor::{Poke, SensorOptions};
    let worked = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pokes = Arc::new(AtomicU32::new(0));
    let (seen, counted) = (worked.clone(), pokes.clone());
    let options = SensorOptions::default()
        .with_poke_interval(Duration::from_millis(20))
        .with_timeout(timeout)
        .with_mode(mode);
    let mut b = DagBuilder::new("slots").max_active_tasks(limit);
    let mut sensor = TaskSpec::sensor("wait", options, move |_, _| {
        counted.fetch_add(1, Ordering::SeqCst);
        Ok(if seen.load(Ordering::SeqCst) {
            Poke::Ready(7_u32)
        } else {
            Poke::NotYet
        })
    });
    let mut worker = TaskSpec::from_sync("worker", move |_, _| {
        worked.store(true, Ordering::SeqCst);
        Ok(())
    });
    if let Some(pool) = pool {
        sensor = sensor.pool(pool, 1);
        worker = worker.pool(pool, 1);
    }
    b.add_task(sensor).finish::<u32>();
    b.add_task(worker).finish::<()>();
    (b.build().unwrap(), pokes)
}

#[tokio::test]
async fn a_rescheduled_sensor_frees_its_slot_and_keeps_its_try() {
    use crate::task::sensor::SensorMode;
    // One executor slot, one pool slot, or one active task for the DAG: only a sensor that
    // gives its slot back between pokes lets the worker it waits for run.
    for (parallelism, pool, limit) in [(1, None, 16), (4, Some("single"), 16), (4, None, 1)] {
        let store = Arc::new(MemoryStore::new());
        if let Some(pool) = pool {
            store
                .set_pool(&crate::store::PoolRecord {
                    name: pool.into(),
                    slots: 1,
                    description: String::new(),
                })
                .unwrap();
        }
        let states = Arc::new(Mutex::new(Vec::new()));
        let seen = states.clone();
        let executor = Executor::new(store.clone())
            .parallelism(parallelism)
            .on_event(move |e| {
                if e.task_id.as_str() == "wait" {
                    seen.lock().unwrap().push((e.state, e.try_number));
                }
            });
        let (dag, pokes) = sensor_waiting_for_a_worker(
            SensorMode::Reschedule,
            Duration::from_secs(60),
            pool,
            limit,
        );
        let summary = executor.run(&dag, Utc::now()).await.unwrap();
        assert_eq!(summary.state, RunState::Success, "{summary:?}");
        assert_eq!(summary.output::<u32>("wait").unwrap(), 7);
        assert_eq!(summary.task("wait").unwrap().tries, 1, "pokes keep the try");
        let pokes = pokes.load(Ordering::SeqCst);
        assert!(pokes >= 2, "the first poke came before the worker: {pokes}");
        let states = states.lock().unwrap().clone();
        let waits = states
            .iter()
            .filter(|(s, _)| *s == TaskState::UpForReschedule)
            .count();
        assert_eq!(waits as u32, pokes - 1, "{states:?}");
        // Only the first queueing comes before try 1.
        assert!(
            states
                .iter()
                .skip(1)
                .all(|(_, try_number)| *try_number == 1),
            "{states:?}"
        );
        let key = summary_key(&summary, "wait");
        let stored = store.reschedules(&key, 1).unwrap();
        assert_eq!(stored.len() as u32, pokes - 1);
        assert!(stored.windows(2).all(|w| w[0].reschedule_at <= w[1].start));

        // The same sensor in poke mode keeps the slot, so the worker never runs.
        let (dag, _) =
            sensor_waiting_for_a_worker(SensorMode::Poke, Duration::from_millis(200), pool, limit);
        let summary = Executor::new(store.clone())
            .parallelism(parallelism)
            .run(&dag, Utc::now())
            .await
            .unwrap();
        assert_eq!(summary.task("wait").unwrap().state, TaskState::Failed);
        assert_eq!(summary.task("worker").unwrap().state, TaskState::Success);
    }
}

#[tokio::test]
async fn a_rescheduled_sensor_resumes_at_its_stored_time_and_times_out_from_its_first_poke() {
    use crate::store::SqliteStore;
    use crate::task::sensor::{Poke, SensorMode, SensorOptions};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.db");
    let pokes: Arc<Mutex<Vec<DateTime<Utc>>>> = Arc::default();
    let recorded = pokes.clone();
    let mut b = DagBuilder::new("patient");
    b.add_task(
        TaskSpec::sensor(
            "wait",
            SensorOptions::default()
                .with_poke_interval(Duration::from_millis(300))
                .with_timeout(Duration::from_secs(1))
                .with_mode(SensorMode::Reschedule),
            move |_, _| {
                recorded.lock().unwrap().push(Utc::now());
                Ok(Poke::<()>::NotYet)
            },
        )
        .retries(2),
    );
    let dag = b.build().unwrap();
    // Stops each execution 100 ms in, once the sensor waits for its next poke.
    let stopped_run = |store: Arc<SqliteStore>, resume: Option<RunId>| {
        let dag = dag.clone();
        async move {
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let executor = Executor::new(store).stop_on(stop_rx, Duration::from_secs(10));
            let stopper = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                stop_tx.send(true).unwrap();
            });
            let summary = match resume {
                None => executor.run(&dag, Utc::now()).await,
                Some(run_id) => executor.resume(&dag, &run_id).await,
            };
            stopper.await.unwrap();
            summary.unwrap()
        }
    };
    let stopped = stopped_run(Arc::new(SqliteStore::open(&path).unwrap()), None).await;
    assert_eq!(stopped.state, RunState::Running);
    let waiting = stopped.task("wait").unwrap();
    assert_eq!(
        (waiting.state, waiting.tries),
        (TaskState::UpForReschedule, 1)
    );

    // A new process: the next poke comes at the stored time, not before.
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let key = summary_key(&stopped, "wait");
    let stored = store.reschedules(&key, 1).unwrap();
    assert_eq!(stored.len(), 1);
    let first_poke = stored[0].start;
    let due = stored[0].reschedule_at;
    let before = pokes.lock().unwrap().len();
    let stopped = stopped_run(store, Some(stopped.run_id.clone())).await;
    assert_eq!(
        stopped.task("wait").unwrap().state,
        TaskState::UpForReschedule
    );
    let resumed_pokes = pokes.lock().unwrap()[before..].to_vec();
    assert!(
        resumed_pokes.iter().all(|&at| at >= due),
        "poked before the stored time {due}: {resumed_pokes:?}"
    );

    // Restarted after the timeout has passed since the first poke: one more poke, then
    // the sensor fails without a retry, still in its first try.
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let past_timeout = first_poke + chrono::Duration::milliseconds(1100) - Utc::now();
    tokio::time::sleep(past_timeout.to_std().unwrap_or_default()).await;
    let before = pokes.lock().unwrap().len();
    let summary = Executor::new(store.clone())
        .resume(&dag, &stopped.run_id)
        .await
        .unwrap();
    assert_eq!(pokes.lock().unwrap().len(), before + 1);
    let wait = summary.task("wait").unwrap();
    assert_eq!((wait.state, wait.tries), (TaskState::Failed, 1), "{wait:?}");
    assert!(
        wait.error
            .as_deref()
            .unwrap()
            .starts_with("sensor timed out after"),
        "{wait:?}"
    );
    assert_eq!(summary.state, RunState::Failed);
    assert_eq!(store.tries(&key).unwrap().len(), 1);
}

#[tokio::test]
async fn a_rescheduled_sensor_soft_fails_and_backs_off_as_in_poke_mode() {
    use crate::task::sensor::{Poke, SensorMode, SensorOptions};
    let pokes = Arc::new(AtomicU32::new(0));
    let counted = pokes.clone();
    let mut b = DagBuilder::new("soft");
    let soft = b
        .add_task(TaskSpec::sensor(
            "soft",
            SensorOptions::default()
                .with_poke_interval(Duration::from_millis(20))
                .with_timeout(Duration::from_millis(300))
                .with_mode(SensorMode::Reschedule)
                .with_exponential_backoff(true)
                .with_soft_fail(true),
            move |_, _| {
                counted.fetch_add(1, Ordering::SeqCst);
                Ok(Poke::<u8>::NotYet)
            },
        ))
        .finish::<u8>();
    let after = b.add_task(value("after", 1)).finish::<u64>().any();
    b.set_downstream(&[soft.any()], &[after]);
    let (summary, store) = run(&b.build().unwrap()).await;
    assert_eq!(
        states(&summary),
        [
            ("soft".to_string(), TaskState::Skipped),
            ("after".to_string(), TaskState::Skipped)
        ]
    );
    let key = summary_key(&summary, "soft");
    let stored = store.reschedules(&key, 1).unwrap();
    // Pauses of 20, 40, 80, 160 ms would pass 300 ms; backing off caps the last one.
    assert!(stored.len() <= 5, "{stored:?}");
    assert_eq!(stored.len() as u32 + 1, pokes.load(Ordering::SeqCst));
    let pauses: Vec<_> = stored
        .iter()
        .map(|r| (r.reschedule_at - r.end).num_milliseconds())
        .collect();
    assert!(pauses.windows(2).take(2).all(|w| w[1] > w[0]), "{pauses:?}");
}

#[tokio::test]
async fn external_task_sensors_wait_for_another_dags_task_on_the_same_date() {
    use crate::store::SqliteStore;
    use crate::task::sensor::{self, ExternalTaskOptions, SensorMode, SensorOptions};
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("flow.db")).unwrap());
    let executor = Executor::new(store.clone());
    let upstream = |fail: bool| {
        let mut b = DagBuilder::new("ingest");
        b.add_task(TaskSpec::from_sync("load", move |_, _| {
            if fail {
                Err(TaskError::Failed("no data".into()))
            } else {
                Ok(1_u8)
            }
        }));
        b.build().unwrap()
    };
    let mut b = DagBuilder::new("report");
    b.add_task(sensor::external_task(
        "wait_for_load",
        "ingest",
        "load",
        ExternalTaskOptions::default(),
        SensorOptions::default()
            .with_poke_interval(Duration::from_millis(20))
            .with_timeout(Duration::from_millis(400))
            .with_mode(SensorMode::Reschedule),
    ));
    let report = b.build().unwrap();
    let day = |d: u32| chrono::TimeZone::with_ymd_and_hms(&Utc, 2025, 3, d, 0, 0, 0).unwrap();

    // Succeeded on the same date: ready.
    executor.run(&upstream(false), day(1)).await.unwrap();
    let ready = executor.run(&report, day(1)).await.unwrap();
    assert_eq!(ready.state, RunState::Success, "{ready:?}");

    // Failed on the same date: fails at once, naming the DAG, task and state.
    executor.run(&upstream(true), day(2)).await.unwrap();
    let failed = executor.run(&report, day(2)).await.unwrap();
    let wait = failed.task("wait_for_load").unwrap();
    assert_eq!(wait.state, TaskState::Failed);
    let error = wait.error.as_deref().unwrap();
    assert!(
        error.contains("task `load` of DAG `ingest` is `failed`"),
        "{error}"
    );

    // Only another date ran: waits until it times out.
    let none = executor.run(&report, day(3)).await.unwrap();
    let wait = none.task("wait_for_load").unwrap();
    assert_eq!(wait.state, TaskState::Failed);
    assert!(
        wait.error
            .as_deref()
            .unwrap()
            .starts_with("sensor timed out")
    );

    // With an execution delta, the run of the day before counts.
    let mut b = DagBuilder::new("next_day");
    b.add_task(sensor::external_task(
        "wait_for_yesterday",
        "ingest",
        "load",
        ExternalTaskOptions {
            execution_delta: Duration::from_secs(24 * 3600),
            ..Default::default()
        },
        SensorOptions::default().with_poke_interval(Duration::from_millis(20)),
    ));
    let next_day = executor.run(&b.build().unwrap(), day(2)).await.unwrap();
    assert_eq!(next_day.state, RunState::Success);
}

#[tokio::test]
async fn glob_and_date_time_sensors() {
    use crate::task::sensor::{self, SensorOptions, TargetTime};
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.csv"), "").unwrap();
    std::fs::write(dir.path().join("a.csv"), "").unwrap();
    std::fs::write(dir.path().join("c.txt"), "").unwrap();
    let fast = SensorOptions::default()
        .with_poke_interval(Duration::from_millis(20))
        .with_timeout(Duration::from_millis(200));
    let pattern = format!("{}/*.csv", dir.path().display());
    let mut b = DagBuilder::new("globs");
    b.add_task(sensor::glob_exists("csvs", pattern, fast));
    b.add_task(sensor::glob_exists("bad", "/data/[", fast));
    b.add_task(sensor::glob_exists(
        "none",
        format!("{}/*.parquet", dir.path().display()),
        fast.with_soft_fail(true),
    ));
    let past = Utc::now() - chrono::Duration::hours(1);
    b.add_task(sensor::date_time("past", TargetTime::At(past), fast));
    b.add_task(sensor::date_time(
        "midnight",
        TargetTime::OnLogicalDate(chrono::NaiveTime::MIN),
        fast,
    ));
    b.add_task(sensor::date_time(
        "tomorrow",
        TargetTime::At(Utc::now() + chrono::Duration::days(1)),
        fast.with_soft_fail(true),
    ));
    let (summary, _) = run(&b.build().unwrap()).await;
    assert_eq!(
        summary.output::<Vec<String>>("csvs").unwrap(),
        [
            dir.path().join("a.csv").display().to_string(),
            dir.path().join("b.csv").display().to_string()
        ]
    );
    let bad = summary.task("bad").unwrap();
    assert_eq!(bad.state, TaskState::Failed);
    assert!(
        bad.error
            .as_deref()
            .unwrap()
            .contains("`/data/[` is not a valid glob pattern"),
        "{bad:?}"
    );
    assert_eq!(summary.task("none").unwrap().state, TaskState::Skipped);
    assert_eq!(summary.output::<DateTime<Utc>>("past").unwrap(), past);
    let midnight = summary.output::<DateTime<Utc>>("midnight").unwrap();
    assert_eq!(
        midnight,
        summary
            .logical_date
            .date_naive()
            .and_time(chrono::NaiveTime::MIN)
            .and_utc()
    );
    assert_eq!(summary.task("tomorrow").unwrap().state, TaskState::Skipped);
}

#[tokio::test]
async fn test_task_pokes_a_rescheduled_sensor_until_it_is_ready() {
    use crate::task::sensor::{Poke, SensorMode, SensorOptions};
    let mut b = DagBuilder::new("one");
    b.add_task(TaskSpec::sensor(
        "third_time",
        SensorOptions::default()
            .with_poke_interval(Duration::from_millis(10))
            .with_mode(SensorMode::Reschedule),
        |ctx, _| {
            Ok(if ctx.pokes().not_yet == 2 {
                Poke::Ready(ctx.pokes().first.is_some())
            } else {
                Poke::NotYet
            })
        },
    ));
    let dag = b.build().unwrap();
    let (output, _) = Executor::new(Arc::new(MemoryStore::new()))
        .test_task(&dag, TaskIndex::new(0), Vec::new(), Utc::now())
        .await
        .unwrap();
    assert!(output.decode::<bool>().unwrap());
}

fn bytes(name: &str, len: usize) -> TaskSpec {
    TaskSpec::from_sync(name, move |_, _| Ok(vec![7_u8; len]))
}

fn length(name: &str) -> TaskSpec {
    TaskSpec::from_async(name, |_, inputs| async move {
        Ok(inputs.get::<Vec<u8>>(0)?.len() as u64)
    })
    .param::<Vec<u8>>("data")
}

fn xcom_key(run: &RunSummary, task: &str) -> TaskInstanceKey {
    TaskInstanceKey {
        dag_id: "offload".into(),
        run_id: run.run_id.clone(),
        task_id: task.into(),
        map_index: MapIndex::UNMAPPED,
    }
}

#[tokio::test]
async fn values_above_the_threshold_go_to_the_object_store() {
    let mut b = DagBuilder::new("offload");
    let big = b.add_task(bytes("big", 5000)).finish::<Vec<u8>>();
    let small = b.add_task(bytes("small", 10)).finish::<Vec<u8>>();
    b.add_task(length("len_big")).input(big).finish::<u64>();
    b.add_task(length("len_small")).input(small).finish::<u64>();
    let dag = b.build().unwrap();
    let store = Arc::new(MemoryStore::new());
    let objects = crate::objects::ObjectStoreConfig::in_memory()
        .threshold(1024)
        .connect()
        .unwrap();
    let summary = Executor::new(store.clone())
        .object_store(objects)
        .run(&dag, Utc::now())
        .await
        .unwrap();
    assert_eq!(summary.state, RunState::Success, "{summary:?}");
    let stored = |task: &str| {
        store
            .get_xcom(&xcom_key(&summary, task), RETURN_VALUE)
            .unwrap()
            .unwrap()
    };
    match stored("big") {
        crate::StoredXCom::Object(object) => {
            assert_eq!(
                object.key(),
                format!("offload/{}/xcom/big/-1/return_value", summary.run_id)
            );
            assert_eq!(object.type_name(), "alloc::vec::Vec<u8>");
        }
        inline => panic!("5000 bytes stayed inline: {inline:?}"),
    }
    assert!(
        stored("small").as_inline().is_some(),
        "10 bytes stay inline"
    );
    assert_eq!(summary.output::<u64>("len_big").unwrap(), 5000);
    assert_eq!(summary.output::<u64>("len_small").unwrap(), 10);
    assert_eq!(summary.output::<Vec<u8>>("big").unwrap(), vec![7; 5000]);
}

#[tokio::test]
async fn without_an_object_store_every_value_stays_inline() {
    let mut b = DagBuilder::new("offload");
    b.add_task(bytes("big", 100_000)).finish::<Vec<u8>>();
    let dag = b.build().unwrap();
    let (summary, store) = run(&dag).await;
    assert_eq!(summary.state, RunState::Success);
    let stored = store
        .get_xcom(&xcom_key(&summary, "big"), RETURN_VALUE)
        .unwrap()
        .unwrap();
    assert_eq!(stored.as_inline().unwrap().bytes().len(), 100_005);
}

#[tokio::test]
async fn a_failed_upload_fails_the_try_and_the_run_completes_once_the_store_works() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("objects");
    let objects = crate::objects::ObjectStoreConfig::local(&root)
        .connect()
        .unwrap();
    // The store's directory becomes a file: every write fails.
    std::fs::remove_dir(&root).unwrap();
    std::fs::write(&root, "not a directory").unwrap();
    let mut b = DagBuilder::new("offload");
    let big = b
        .add_task(bytes("big", 100_000).retries(1).retry_delay(Duration::ZERO))
        .finish::<Vec<u8>>();
    b.add_task(length("len")).input(big).finish::<u64>();
    let dag = b.build().unwrap();
    let store = Arc::new(MemoryStore::new());
    let executor = Executor::new(store.clone()).object_store(objects);
    let summary = executor.run(&dag, Utc::now()).await.unwrap();
    assert_eq!(summary.state, RunState::Failed);
    let big = summary.task("big").unwrap();
    assert_eq!(
        (big.state, big.tries),
        (TaskState::Failed, 2),
        "retries apply"
    );
    let error = big.error.clone().unwrap();
    assert!(
        error.starts_with(
            "cannot store XCom `return_value` (100005 bytes) of `big`: the object store file://"
        ) && error.contains("failed to write `offload/"),
        "{error}"
    );
    assert_eq!(
        store
            .get_xcom(&xcom_key(&summary, "big"), RETURN_VALUE)
            .unwrap(),
        None,
        "nothing refers to a value that was not written"
    );
    std::fs::remove_file(&root).unwrap();
    std::fs::create_dir(&root).unwrap();
    store
        .clear(dag.id(), &summary.run_id, &["big".into(), "len".into()])
        .unwrap();
    let resumed = executor.resume(&dag, &summary.run_id).await.unwrap();
    assert_eq!(resumed.state, RunState::Success, "{resumed:?}");
    assert_eq!(resumed.output::<u64>("len").unwrap(), 100_000);
    assert!(
        root.join(format!(
            "offload/{}/xcom/big/-1/return_value",
            summary.run_id
        ))
        .is_file()
    );
}

//! Dynamic task mapping through the builder API and the executor.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::graph::Dag;
use crate::graph::DagBuilder;
use crate::runtime::*;
use crate::state::{RunState, TaskState};
use crate::store::MemoryStore;
use crate::store::RunStore;
use crate::task::TaskError;
use crate::task::TaskSpec;
use crate::trigger::TriggerRule;

pub(super) fn numbers(name: &str, values: Vec<u64>) -> TaskSpec {
    TaskSpec::from_sync(name, move |_, _| Ok(values.clone()))
}

/// `x * factor`, recording the map index it ran with.
fn times(name: &str) -> TaskSpec {
    TaskSpec::from_sync(name, |ctx, inputs| {
        let x = inputs.get::<u64>(0)?;
        let factor = inputs.get::<u64>(1)?;
        assert!(
            ctx.map_index().is_some(),
            "a mapped instance knows its index"
        );
        Ok(x * factor)
    })
    .param::<u64>("x")
    .param::<u64>("factor")
}

pub(super) fn total(name: &str) -> TaskSpec {
    TaskSpec::from_sync(name, |_, inputs| {
        Ok(inputs.get::<Vec<u64>>(0)?.iter().sum::<u64>())
    })
    .param::<Vec<u64>>("values")
}

async fn run_with(executor: Executor, dag: &Dag) -> RunSummary {
    executor.run(dag, Utc::now()).await.unwrap()
}

async fn run(dag: &Dag) -> (RunSummary, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    (run_with(Executor::new(store.clone()), dag).await, store)
}

#[tokio::test]
async fn a_task_maps_over_an_upstream_list_and_its_results_are_collected_in_map_order() {
    let mut b = DagBuilder::new("fan_out");
    let list = b
        .add_task(numbers("list", vec![1, 2, 3, 4]))
        .finish::<Vec<u64>>();
    let mut t = b.add_task(times("times"));
    t.expand(list).input(10_u64);
    let mapped = t.finish_mapped::<u64>();
    let mut s = b.add_task(total("total"));
    s.input(mapped);
    let _ = s.finish::<u64>();
    let (summary, store) = run(&b.build().unwrap()).await;
    assert_eq!(summary.state, RunState::Success);
    assert_eq!(
        summary.output::<Vec<u64>>("times").unwrap(),
        [10, 20, 30, 40]
    );
    assert_eq!(summary.output::<u64>("total").unwrap(), 100);
    let instances = summary.mapped("times");
    assert_eq!(
        instances.iter().map(|t| t.map_index).collect::<Vec<_>>(),
        [Some(0), Some(1), Some(2), Some(3)]
    );
    // Each instance is its own stored task instance; the task itself is not.
    let stored = store
        .task_instances(&"fan_out".into(), &summary.run_id)
        .unwrap();
    let mut indexes: Vec<i64> = stored
        .iter()
        .filter(|ti| ti.key.task_id.as_str() == "times")
        .map(|ti| ti.key.map_index.as_i64())
        .collect();
    indexes.sort_unstable();
    assert_eq!(indexes, [0, 1, 2, 3]);
}

#[tokio::test]
async fn literal_lists_cross_product_and_zip() {
    let mut b = DagBuilder::new("combinations");
    let mut t = b.add_task(times("product"));
    t.expand(vec![1_u64, 2]).expand([10_u64, 100, 1000]);
    let _ = t.finish_mapped::<u64>();
    let mut z = b.add_task(times("zipped"));
    z.expand(vec![1_u64, 2, 3]).expand(vec![10_u64, 100]).zip();
    let _ = z.finish_mapped::<u64>();
    let (summary, _) = run(&b.build().unwrap()).await;
    // The last mapped argument varies fastest, as in Airflow.
    assert_eq!(
        summary.output::<Vec<u64>>("product").unwrap(),
        [10, 100, 1000, 20, 200, 2000]
    );
    // A zip is as long as its shortest list.
    assert_eq!(summary.output::<Vec<u64>>("zipped").unwrap(), [10, 200]);
}

#[tokio::test]
async fn a_map_over_a_mapped_task_chains_element_by_element() {
    let mut b = DagBuilder::new("chain_of_maps");
    let list = b
        .add_task(numbers("list", vec![1, 2, 3]))
        .finish::<Vec<u64>>();
    let mut first = b.add_task(times("double"));
    first.expand(list).input(2_u64);
    let doubled = first.finish_mapped::<u64>();
    let mut second = b.add_task(times("plus_ten_times"));
    second.expand(doubled).expand(vec![10_u64, 20]);
    let _ = second.finish_mapped::<u64>();
    let (summary, _) = run(&b.build().unwrap()).await;
    assert_eq!(summary.state, RunState::Success);
    assert_eq!(
        summary.output::<Vec<u64>>("plus_ten_times").unwrap(),
        [20, 40, 40, 80, 60, 120]
    );
}

#[tokio::test]
async fn an_empty_list_skips_the_mapped_task_and_the_skip_propagates() {
    let mut b = DagBuilder::new("empty");
    let list = b.add_task(numbers("list", Vec::new())).finish::<Vec<u64>>();
    let mut t = b.add_task(times("times"));
    t.expand(list).input(1_u64);
    let mapped = t.finish_mapped::<u64>();
    let mut s = b.add_task(total("total"));
    s.input(mapped);
    let _ = s.finish::<u64>();
    let mut after = b.add_task(total("sum_anyway").trigger_rule(TriggerRule::AllDone));
    after.input(mapped);
    let _ = after.finish::<u64>();
    let (summary, store) = run(&b.build().unwrap()).await;
    assert_eq!(summary.state, RunState::Success);
    assert_eq!(summary.task("times").unwrap().state, TaskState::Skipped);
    assert_eq!(summary.task("times").unwrap().map_index, None);
    assert_eq!(summary.task("total").unwrap().state, TaskState::Skipped);
    // `all_done` runs and receives the empty collection.
    assert_eq!(summary.output::<u64>("sum_anyway").unwrap(), 0);
    let stored = store
        .task_instances(&"empty".into(), &summary.run_id)
        .unwrap();
    let times = stored
        .iter()
        .find(|ti| ti.key.task_id.as_str() == "times")
        .unwrap();
    assert_eq!(
        (times.state, times.key.map_index.as_i64()),
        (TaskState::Skipped, -1)
    );
}

#[tokio::test]
async fn each_instance_retries_on_its_own_and_one_failure_fails_the_downstream() {
    let tries = Arc::new(Mutex::new(Vec::new()));
    let seen = tries.clone();
    let flaky = TaskSpec::from_sync("flaky", move |ctx, inputs| {
        let x = inputs.get::<u64>(0)?;
        seen.lock()
            .unwrap()
            .push((ctx.map_index(), ctx.try_number()));
        match x {
            // Fails its first try only.
            2 if ctx.try_number() == 1 => Err(TaskError::Failed("flaky".into())),
            // Always fails.
            3 => Err(TaskError::Failed("three is bad".into())),
            _ => Ok(x),
        }
    })
    .param::<u64>("x")
    .retries(1)
    .retry_delay(Duration::ZERO);
    let mut b = DagBuilder::new("retries");
    let mut t = b.add_task(flaky);
    t.expand(vec![1_u64, 2, 3]);
    let mapped = t.finish_mapped::<u64>();
    let mut s = b.add_task(total("total"));
    s.input(mapped);
    let _ = s.finish::<u64>();
    let (summary, _) = run(&b.build().unwrap()).await;
    assert_eq!(summary.state, RunState::Failed);
    let instances: Vec<(Option<u32>, TaskState, u32)> = summary
        .mapped("flaky")
        .iter()
        .map(|t| (t.map_index, t.state, t.tries))
        .collect();
    assert_eq!(
        instances,
        [
            (Some(0), TaskState::Success, 1),
            (Some(1), TaskState::Success, 2),
            (Some(2), TaskState::Failed, 2)
        ]
    );
    assert_eq!(
        summary.task("total").unwrap().state,
        TaskState::UpstreamFailed
    );
    let mut tries = tries.lock().unwrap().clone();
    tries.sort_unstable();
    assert_eq!(
        tries,
        [
            (Some(0), 1),
            (Some(1), 1),
            (Some(1), 2),
            (Some(2), 1),
            (Some(2), 2)
        ]
    );
}

#[tokio::test]
async fn an_expansion_over_the_limit_fails_naming_the_task_length_and_limit() {
    let mut b = DagBuilder::new("too_many");
    let list = b
        .add_task(numbers("list", (0..11).collect()))
        .finish::<Vec<u64>>();
    let mut t = b.add_task(times("times"));
    t.expand(list).input(1_u64);
    let _ = t.finish_mapped::<u64>();
    let store = Arc::new(MemoryStore::new());
    let executor = Executor::new(store).max_map_length(10);
    let summary = run_with(executor, &b.build().unwrap()).await;
    assert_eq!(summary.state, RunState::Failed);
    let times = summary.task("times").unwrap();
    assert_eq!(times.state, TaskState::Failed);
    let error = times.error.clone().unwrap();
    assert!(
        error.contains("`times`") && error.contains("11 instances") && error.contains("10"),
        "{error}"
    );
}

#[tokio::test]
async fn mapping_over_a_list_of_another_type_fails_the_expansion_clearly() {
    let mut b = DagBuilder::new("wrong_type");
    let words = TaskSpec::from_sync("words", |_, _| Ok(vec!["a".to_string()]));
    let list = b.add_task(words).finish::<Vec<u64>>(); // the builder API trusts this type
    let mut t = b.add_task(times("times"));
    t.expand(list).input(1_u64);
    let _ = t.finish_mapped::<u64>();
    let (summary, _) = run(&b.build().unwrap()).await;
    let error = summary.task("times").unwrap().error.clone().unwrap();
    assert!(
        error.contains("cannot map `x` over the output of `words`"),
        "{error}"
    );
}

#[test]
fn mapping_mistakes_are_definition_errors() {
    let mut b = DagBuilder::new("bad");
    let _ = b
        .add_task(times("nothing_mapped"))
        .input(1_u64)
        .input(2_u64)
        .finish_mapped::<u64>();
    let branch = TaskSpec::from_sync("choose", |_, inputs| {
        Ok(crate::branch::Branch::to(inputs.get::<String>(0)?))
    })
    .param::<String>("to")
    .branch();
    let mut t = b.add_task(branch);
    t.expand::<String>(vec!["x"]);
    let _ = t.finish_mapped::<crate::branch::Branch>();
    let error = b.build().unwrap_err().to_string();
    assert!(
        error.contains("`nothing_mapped` is mapped but none of its arguments is"),
        "{error}"
    );
    assert!(
        error.contains("`choose` is a branch task and cannot be mapped"),
        "{error}"
    );
}

#[tokio::test]
async fn a_run_stopped_mid_expansion_resumes_only_the_unfinished_instances() {
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let slow = TaskSpec::from_async("slow", move |_, inputs| {
        let counted = counted.clone();
        async move {
            let x = inputs.get::<u64>(0)?;
            counted.fetch_add(1, Ordering::SeqCst);
            if x >= 2 {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            Ok(x)
        }
    })
    .param::<u64>("x")
    .retries(1)
    .retry_delay(Duration::ZERO);
    let build = |spec: TaskSpec| {
        let mut b = DagBuilder::new("resumable");
        let mut t = b.add_task(spec);
        t.expand(vec![0_u64, 1, 2, 3]);
        let mapped = t.finish_mapped::<u64>();
        let mut s = b.add_task(total("total"));
        s.input(mapped);
        let _ = s.finish::<u64>();
        b.build().unwrap()
    };
    let store = Arc::new(MemoryStore::new());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let first = Executor::new(store.clone())
        .parallelism(4)
        .stop_on(stopped, Duration::from_millis(50))
        .on_event(move |event| {
            // Stop once both quick instances are done.
            if event.state == TaskState::Success && event.map_index == Some(1) {
                let _ = stop.send(true);
            }
        });
    let summary = first.run(&build(slow), Utc::now()).await.unwrap();
    assert_eq!(summary.state, RunState::Running);
    // The sleeping instances were abandoned; a resume (of a deploy whose task no longer
    // sleeps) counts their tries as interrupted and retries them.
    let counted = calls.clone();
    let fast = TaskSpec::from_sync("slow", move |_, inputs| {
        counted.fetch_add(1, Ordering::SeqCst);
        inputs.get::<u64>(0)
    })
    .param::<u64>("x")
    .retries(1)
    .retry_delay(Duration::ZERO);
    let resumed = Executor::new(store.clone())
        .resume(&build(fast), &summary.run_id)
        .await
        .unwrap();
    assert_eq!(resumed.state, RunState::Success);
    assert_eq!(resumed.output::<u64>("total").unwrap(), 6);
    let tries: Vec<(Option<u32>, u32)> = resumed
        .mapped("slow")
        .iter()
        .map(|t| (t.map_index, t.tries))
        .collect();
    // The finished instances kept their single try; the interrupted ones ran again.
    assert_eq!(
        tries,
        [(Some(0), 1), (Some(1), 1), (Some(2), 2), (Some(3), 2)]
    );
    assert_eq!(calls.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn a_large_upstream_list_is_expanded_once_it_is_durable() {
    // 10,000 values of 9 encoded bytes each: over the size kept in memory, so the
    // expansion reads the list back from the store.
    let values: Vec<u64> = (0..10_000).map(|i| u64::MAX - i).collect();
    let mut b = DagBuilder::new("large");
    let list = b
        .add_task(numbers("list", values.clone()))
        .finish::<Vec<u64>>();
    let mut t = b.add_task(times("times"));
    t.expand(list).input(1_u64);
    let mapped = t.finish_mapped::<u64>();
    let mut s = b.add_task(
        TaskSpec::from_sync("count", |_, inputs| Ok(inputs.get::<Vec<u64>>(0)?.len()))
            .param::<Vec<u64>>("values"),
    );
    s.input(mapped);
    let _ = s.finish::<usize>();
    let (summary, _) = run(&b.build().unwrap()).await;
    assert_eq!(summary.state, RunState::Success);
    assert_eq!(summary.output::<usize>("count").unwrap(), 10_000);
    assert_eq!(summary.output::<Vec<u64>>("times").unwrap(), values);
}

#[tokio::test]
async fn a_cleared_mapped_task_expands_again_after_its_upstream_reusing_its_instances() {
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    // The first run lists three values, the rerun two.
    let source = TaskSpec::from_sync("list", move |_, _| {
        Ok(match counted.fetch_add(1, Ordering::SeqCst) {
            0 => vec![1_u64, 2, 3],
            _ => vec![5, 6],
        })
    });
    let mut b = DagBuilder::new("cleared");
    let list = b.add_task(source).finish::<Vec<u64>>();
    let mut t = b.add_task(times("times"));
    t.expand(list).input(1_u64);
    let mapped = t.finish_mapped::<u64>();
    let mut s = b.add_task(total("total"));
    s.input(mapped);
    let _ = s.finish::<u64>();
    let dag = b.build().unwrap();
    let store = Arc::new(MemoryStore::new());
    let first = run_with(Executor::new(store.clone()), &dag).await;
    assert_eq!(first.output::<u64>("total").unwrap(), 6);
    let ids = ["list", "times", "total"].map(crate::ids::TaskId::new);
    store.clear(dag.id(), &first.run_id, &ids).unwrap();
    let rerun = Executor::new(store.clone())
        .resume(&dag, &first.run_id)
        .await
        .unwrap();
    assert_eq!(rerun.state, RunState::Success);
    assert_eq!(rerun.output::<u64>("total").unwrap(), 11);
    // Instances 0 and 1 ran a second try; instance 2 is gone from the run.
    let tries: Vec<(Option<u32>, u32)> = rerun
        .mapped("times")
        .iter()
        .map(|t| (t.map_index, t.tries))
        .collect();
    assert_eq!(tries, [(Some(0), 2), (Some(1), 2)]);
    let stored = store.task_instances(dag.id(), &first.run_id).unwrap();
    assert_eq!(
        stored
            .iter()
            .filter(|ti| ti.key.task_id.as_str() == "times")
            .count(),
        2
    );
}

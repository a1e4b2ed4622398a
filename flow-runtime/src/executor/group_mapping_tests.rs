//! Mapped task groups (`DagBuilder::expand_group`, Airflow's `@task_group` with
//! `.expand(..)`) through the builder API and the executor.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use chrono::Utc;

use super::mapping_tests::{numbers, total};
use crate::graph::{Dag, DagBuilder, DagDefinitionError, Node, TaskGroup};
use crate::runtime::*;
use crate::state::{RunState, TaskState};
use crate::store::MemoryStore;
use crate::task::{TaskError, TaskSpec};
use crate::trigger::TriggerRule;

fn add(name: &str, amount: u64) -> TaskSpec {
    TaskSpec::from_sync(name, move |_, inputs| Ok(inputs.get::<u64>(0)? + amount)).param::<u64>("x")
}

fn times(name: &str) -> TaskSpec {
    TaskSpec::from_sync(name, |_, inputs| {
        Ok(inputs.get::<u64>(0)? * inputs.get::<u64>(1)?)
    })
    .param::<u64>("x")
    .param::<u64>("factor")
}

async fn run(dag: &Dag) -> RunSummary {
    let store = Arc::new(MemoryStore::new());
    Executor::new(store).run(dag, Utc::now()).await.unwrap()
}

fn states(summary: &RunSummary, task: &str) -> Vec<TaskState> {
    summary.mapped(task).iter().map(|t| t.state).collect()
}

/// `list -> group(x: add_one -> times(factor)) -> total`, the group over `list`.
fn pipeline(list: Vec<u64>, factor: u64) -> Dag {
    let mut b = DagBuilder::new("passes");
    let list = b.add_task(numbers("list", list)).finish::<Vec<u64>>();
    let factor = b
        .add_task(numbers("factor", vec![factor]))
        .finish::<Vec<u64>>();
    let grouped = b.expand_group(TaskGroup::new("pass"), |b, map| {
        let x = map.expand(list);
        let one = b.add_task(add("add_one", 1)).input(x).finish::<u64>();
        let f = b.add_task(total("factor_of")).input(factor).finish::<u64>();
        b.add_task(times("times"))
            .input(one)
            .input(f)
            .finish::<u64>()
    });
    b.add_task(total("total"))
        .input(grouped.output)
        .finish::<u64>();
    b.build().unwrap()
}

#[tokio::test]
async fn each_pass_takes_its_element_and_downstream_collects_in_map_order() {
    let summary = run(&pipeline(vec![1, 2, 3], 10)).await;
    assert_eq!(summary.state, RunState::Success);
    // Instance i of `times` took instance i of `add_one`, and the group's element i.
    assert_eq!(
        summary.output::<Vec<u64>>("pass.times").unwrap(),
        [20, 30, 40]
    );
    assert_eq!(summary.output::<u64>("total").unwrap(), 90);
    // A task outside the group taken inside it gives its whole value to every pass.
    assert_eq!(
        summary.output::<Vec<u64>>("pass.factor_of").unwrap(),
        [10, 10, 10]
    );
    for task in ["pass.add_one", "pass.factor_of", "pass.times"] {
        let indices: Vec<Option<u32>> = summary.mapped(task).iter().map(|t| t.map_index).collect();
        assert_eq!(indices, [Some(0), Some(1), Some(2)], "{task}");
    }
}

#[test]
fn the_group_s_list_producer_is_upstream_of_every_task_in_it() {
    let dag = pipeline(vec![1], 1);
    let list = dag.task_index("list").unwrap();
    for id in ["pass.add_one", "pass.factor_of", "pass.times"] {
        let task = dag.task(id).unwrap();
        assert!(task.upstream().contains(&list), "{id}");
        assert!(task.is_mapped() && task.map_mode().is_none(), "{id}");
        assert_eq!(task.mapped_group(), Some(0));
    }
    let mapping = dag.group_mapping(0).unwrap();
    assert_eq!(mapping.members().len(), 3);
    assert_eq!(mapping.producers().collect::<Vec<_>>(), [list]);
}

/// A pass whose first task fails fails only its own downstream instances; the others
/// go on, and the task after the group sees one failed upstream instance.
#[tokio::test]
async fn a_failure_stays_in_its_pass() {
    let mut b = DagBuilder::new("one_bad_pass");
    let grouped = b.expand_group(TaskGroup::new("pass"), |b, map| {
        let x = map.expand(vec![1_u64, 2, 3]);
        let checked = b
            .add_task(
                TaskSpec::from_sync("check", |_, inputs| {
                    let x = inputs.get::<u64>(0)?;
                    if x == 2 {
                        return Err(TaskError::Failed("two is bad".into()));
                    }
                    Ok(x)
                })
                .param::<u64>("x"),
            )
            .input(x)
            .finish::<u64>();
        let doubled = b.add_task(add("next", 100)).input(checked).finish::<u64>();
        // Runs in every pass, whatever `next` ended in.
        b.add_task(add("cleanup", 0).trigger_rule(TriggerRule::AllDone))
            .input(x)
            .finish::<u64>();
        doubled
    });
    b.add_task(total("total"))
        .input(grouped.output)
        .finish::<u64>();
    let after = b
        .add_task(TaskSpec::from_sync("after", |_, _| Ok(())).trigger_rule(TriggerRule::AllDone))
        .finish::<()>();
    b.set_downstream(&[grouped.group.any()], &[after.any()]);
    let summary = run(&b.build().unwrap()).await;
    assert_eq!(summary.state, RunState::Failed);
    use TaskState::*;
    assert_eq!(states(&summary, "pass.check"), [Success, Failed, Success]);
    assert_eq!(
        states(&summary, "pass.next"),
        [Success, UpstreamFailed, Success]
    );
    assert_eq!(states(&summary, "pass.cleanup"), [Success; 3]);
    assert_eq!(summary.task("total").unwrap().state, UpstreamFailed);
    assert_eq!(summary.task("after").unwrap().state, Success);
}

/// Instance 0 of the second task starts while instance 1 of the first still runs: the
/// group runs pass by pass, not task by task (Airflow's depth-first mapped groups).
#[tokio::test]
async fn a_pass_goes_on_without_waiting_for_the_other_passes() {
    let second_ran = Arc::new(AtomicBool::new(false));
    let seen = second_ran.clone();
    let first = TaskSpec::from_async("first", move |ctx, inputs| {
        let seen = seen.clone();
        async move {
            let x = inputs.get::<u64>(0)?;
            if ctx.map_index() == Some(1) {
                // Waits (boundedly) for the other pass's second task.
                for _ in 0..1000 {
                    if seen.load(Ordering::SeqCst) {
                        return Ok(x);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                return Err(TaskError::Failed("pass 0 never went on".into()));
            }
            Ok(x)
        }
    })
    .param::<u64>("x");
    let flag = second_ran.clone();
    let second = TaskSpec::from_sync("second", move |_, inputs| {
        flag.store(true, Ordering::SeqCst);
        inputs.get::<u64>(0)
    })
    .param::<u64>("x");
    let mut b = DagBuilder::new("depth_first");
    b.expand_group(TaskGroup::new("pass"), |b, map| {
        let x = map.expand(vec![0_u64, 1]);
        let a = b.add_task(first).input(x).finish::<u64>();
        b.add_task(second).input(a).finish::<u64>()
    });
    let summary = Executor::new(Arc::new(MemoryStore::new()))
        .parallelism(4)
        .run(&b.build().unwrap(), Utc::now())
        .await
        .unwrap();
    assert_eq!(summary.state, RunState::Success);
}

#[tokio::test]
async fn an_empty_list_skips_every_task_of_the_group_and_the_skip_propagates() {
    let summary = run(&pipeline(Vec::new(), 10)).await;
    assert_eq!(summary.state, RunState::Success);
    for task in ["pass.add_one", "pass.factor_of", "pass.times", "total"] {
        assert_eq!(
            summary.task(task).unwrap().state,
            TaskState::Skipped,
            "{task}"
        );
        assert!(summary.mapped(task).is_empty(), "{task}");
    }
}

#[tokio::test]
async fn a_failed_list_producer_ends_the_group_upstream_failed() {
    let mut b = DagBuilder::new("no_list");
    let list = b
        .add_task(TaskSpec::from_sync("list", |_, _| {
            Err::<Vec<u64>, _>(TaskError::Failed("no rows".into()))
        }))
        .finish::<Vec<u64>>();
    b.expand_group(TaskGroup::new("pass"), |b, map| {
        let x = map.expand(list);
        let a = b.add_task(add("a", 1)).input(x).finish::<u64>();
        b.add_task(add("b", 1)).input(a).finish::<u64>()
    });
    let summary = run(&b.build().unwrap()).await;
    assert_eq!(summary.state, RunState::Failed);
    for task in ["pass.a", "pass.b"] {
        assert_eq!(
            summary.task(task).unwrap().state,
            TaskState::UpstreamFailed,
            "{task}"
        );
    }
}

#[tokio::test]
async fn literal_lists_cross_and_zip() {
    let build = |zip: bool| {
        let mut b = DagBuilder::new("grid");
        let grouped = b.expand_group(TaskGroup::new("cell"), |b, map| {
            let x = map.expand(vec![1_u64, 2]);
            let factor = map.expand(vec![10_u64, 100, 1000]);
            if zip {
                map.zip();
            }
            b.add_task(times("times"))
                .input(x)
                .input(factor)
                .finish::<u64>()
        });
        b.add_task(total("total"))
            .input(grouped.output)
            .finish::<u64>();
        b.build().unwrap()
    };
    let crossed = run(&build(false)).await;
    assert_eq!(
        crossed.output::<Vec<u64>>("cell.times").unwrap(),
        [10, 100, 1000, 20, 200, 2000]
    );
    let zipped = run(&build(true)).await;
    assert_eq!(zipped.output::<Vec<u64>>("cell.times").unwrap(), [10, 200]);
}

#[tokio::test]
async fn a_group_over_a_mapped_task_s_results_and_a_branch_inside_it() {
    // `square` maps first; the group then runs once per result. Inside, a branch per pass
    // picks `big` or `small` for that pass only.
    let mut b = DagBuilder::new("branchy");
    let mut square = b.add_task(
        TaskSpec::from_sync("square", |_, inputs| {
            let x = inputs.get::<u64>(0)?;
            Ok(x * x)
        })
        .param::<u64>("x"),
    );
    square.expand(vec![1_u64, 3]);
    let squares = square.finish_mapped::<u64>();
    b.expand_group(TaskGroup::new("pass"), |b, map| {
        let x: Node<u64> = map.expand(squares);
        let choose = b
            .add_task(
                TaskSpec::from_sync("choose", |_, inputs| {
                    let x = inputs.get::<u64>(0)?;
                    Ok(crate::branch::Branch::to(if x > 4 {
                        "pass.big"
                    } else {
                        "pass.small"
                    }))
                })
                .param::<u64>("x")
                .branch(),
            )
            .input(x)
            .finish::<crate::branch::Branch>();
        for name in ["big", "small"] {
            let t = b.add_task(add(name, 0)).input(x).finish::<u64>();
            b.set_downstream(&[choose.any()], &[t.any()]);
        }
    });
    let summary = run(&b.build().unwrap()).await;
    assert_eq!(summary.state, RunState::Success);
    use TaskState::*;
    assert_eq!(states(&summary, "pass.big"), [Skipped, Success]);
    assert_eq!(states(&summary, "pass.small"), [Success, Skipped]);
}

#[tokio::test]
async fn a_stopped_run_resumes_its_unfinished_passes_only() {
    let calls = Arc::new(AtomicU32::new(0));
    // Whether the slow pass's `second` has begun (its code, not only its record).
    let slow_began = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let build = |slow: bool, calls: Arc<AtomicU32>| {
        let slow_began = slow_began.clone();
        let mut b = DagBuilder::new("resumable_group");
        let grouped = b.expand_group(TaskGroup::new("pass"), |b, map| {
            let x = map.expand(vec![0_u64, 1, 2]);
            let first = b
                .add_task(add("first", 10).retries(1).retry_delay(Duration::ZERO))
                .input(x)
                .finish::<u64>();
            let second = TaskSpec::from_async("second", move |_, inputs| {
                let calls = calls.clone();
                let slow_began = slow_began.clone();
                async move {
                    let x = inputs.get::<u64>(0)?;
                    calls.fetch_add(1, Ordering::SeqCst);
                    if slow && x == 12 {
                        slow_began.store(true, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    Ok(x)
                }
            })
            .param::<u64>("x")
            .retries(1)
            .retry_delay(Duration::ZERO);
            b.add_task(second).input(first).finish::<u64>()
        });
        b.add_task(total("total"))
            .input(grouped.output)
            .finish::<u64>();
        b.build().unwrap()
    };
    let store = Arc::new(MemoryStore::new());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let finished = Arc::new(AtomicU32::new(0));
    let counted = finished.clone();
    let first = Executor::new(store.clone())
        .parallelism(4)
        .stop_on(stopped, Duration::from_millis(50))
        .on_event(move |event| {
            if event.state == TaskState::Success && event.task_id.as_str() == "pass.second" {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        });
    // Stop once the two quick passes are through and the slow one is running, in
    // whichever order they come.
    let began = slow_began.clone();
    tokio::spawn(async move {
        while finished.load(Ordering::SeqCst) < 2 || !began.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let _ = stop.send(true);
    });
    let summary = first
        .run(&build(true, calls.clone()), Utc::now())
        .await
        .unwrap();
    assert_eq!(summary.state, RunState::Running);
    let resumed = Executor::new(store)
        .resume(&build(false, calls.clone()), &summary.run_id)
        .await
        .unwrap();
    assert_eq!(resumed.state, RunState::Success);
    assert_eq!(resumed.output::<u64>("total").unwrap(), 33);
    let tries: Vec<u32> = resumed
        .mapped("pass.second")
        .iter()
        .map(|t| t.tries)
        .collect();
    // The finished passes kept their try; the interrupted one ran again.
    assert_eq!(tries, [1, 1, 2]);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    let firsts: Vec<u32> = resumed
        .mapped("pass.first")
        .iter()
        .map(|t| t.tries)
        .collect();
    assert_eq!(firsts, [1, 1, 1]);
}

fn build_errors(build: impl FnOnce(&mut DagBuilder)) -> Vec<DagDefinitionError> {
    let mut b = DagBuilder::new("bad");
    build(&mut b);
    b.build().unwrap_err().errors().to_vec()
}

#[test]
fn wrong_mapped_groups_are_refused_with_the_reason() {
    // An element taken outside its group.
    let errors = build_errors(|b| {
        let mut leaked = None;
        b.expand_group(TaskGroup::new("g"), |b, map| {
            let x = map.expand(vec![1_u64]);
            leaked = Some(x);
            b.add_task(add("inside", 1)).input(x).finish::<u64>();
        });
        b.add_task(add("outside", 1))
            .input(leaked.unwrap())
            .finish::<u64>();
    });
    assert!(
        matches!(&errors[..], [DagDefinitionError::GroupArgumentOutside { task, group }]
            if task == "outside" && group == "g"),
        "{errors:?}"
    );
    // A task mapped inside a mapped group, and a mapped group inside another.
    let errors = build_errors(|b| {
        b.expand_group(TaskGroup::new("outer"), |b, map| {
            let x = map.expand(vec![1_u64]);
            let mut t = b.add_task(times("times"));
            t.expand(vec![1_u64, 2]).input(x);
            t.finish_mapped::<u64>();
            b.expand_group(TaskGroup::new("inner"), |b, map| {
                let y = map.expand(vec![1_u64]);
                b.add_task(add("a", 1)).input(y).finish::<u64>();
            });
        });
    });
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 2, "{text:?}");
    assert!(
        text[0].contains("task group `outer.inner` is mapped inside mapped task group `outer`"),
        "{text:?}"
    );
    assert!(
        text[1].contains("task `outer.times` is mapped inside mapped task group `outer`"),
        "{text:?}"
    );
    // No list, and no task.
    let errors = build_errors(|b| {
        b.expand_group(TaskGroup::new("nothing"), |b, _| {
            b.add_task(add("a", 1)).input(1_u64).finish::<u64>();
        });
        b.expand_group(TaskGroup::new("empty"), |_, map| {
            map.expand(vec![1_u64]);
        });
    });
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(
        text[0].contains("`nothing` is expanded over no list"),
        "{text:?}"
    );
    assert!(text[1].contains("`empty` has no tasks"), "{text:?}");
    // An element ordered like a task.
    let errors = build_errors(|b| {
        b.expand_group(TaskGroup::new("g"), |b, map| {
            let x = map.expand(vec![1_u64]);
            let a = b.add_task(add("a", 1)).input(x).finish::<u64>();
            b.set_downstream(&[x.any()], &[a.any()]);
        });
    });
    assert!(
        errors[0].to_string().contains("an element is a value"),
        "{errors:?}"
    );
}

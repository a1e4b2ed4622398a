//! Airflow's execution semantics through the public API: trigger rules decided on the
//! upstream tasks' final states, whatever order those tasks finish in.

use std::sync::Arc;

use chrono::Utc;
use flow_runtime::prelude::*;
use flow_runtime::store::MemoryStore;
use flow_runtime::{Executor, TriggerRule};

/// How one upstream task of the join ends.
#[derive(Clone, Copy, Debug, PartialEq)]
enum End {
    Success,
    Failed,
    UpstreamFailed,
    Skipped,
}

const ENDS: [End; 4] = [End::Success, End::Failed, End::UpstreamFailed, End::Skipped];

fn ok(name: &str) -> TaskSpec {
    TaskSpec::from_sync(name, |_, _| Ok::<u64, TaskError>(1))
}

fn boom(name: &str) -> TaskSpec {
    TaskSpec::from_sync(name, |_, _| {
        Err::<u64, TaskError>(TaskError::Failed("boom".into()))
    })
}

/// A branch that follows `chosen`, so its other direct downstream task is skipped.
fn branch_to(name: &str, chosen: String) -> TaskSpec {
    TaskSpec::from_sync(name, move |_, _| {
        Ok::<Branch, TaskError>(Branch::to(chosen.as_str()))
    })
    .branch()
}

/// Upstream tasks ending as `ends`, the first of `order` finishing first (one task runs at
/// a time, by priority), and one join task per trigger rule after all of them.
fn dag(ends: &[End], order: &[usize]) -> Dag {
    let mut b = DagBuilder::new("orders");
    let mut upstream = Vec::new();
    for (slot, end) in ends.iter().enumerate() {
        let position = order.iter().position(|&o| o == slot).unwrap();
        // The head of each slot runs in `order`; its end reaches the join at once.
        let weight = 1000 * i32::try_from(ends.len() - position).unwrap();
        let head = |spec: TaskSpec| spec.priority_weight(weight);
        let name = format!("up{slot}");
        let node = match end {
            End::Success => b.add_task(head(ok(&name))).finish::<u64>().any(),
            End::Failed => b.add_task(head(boom(&name))).finish::<u64>().any(),
            End::UpstreamFailed | End::Skipped => {
                let first = if *end == End::Skipped {
                    let chosen = format!("followed{slot}");
                    let branch = b
                        .add_task(head(branch_to(&format!("cause{slot}"), chosen.clone())))
                        .finish::<Branch>()
                        .any();
                    let followed = b.add_task(ok(&chosen)).finish::<u64>().any();
                    b.set_downstream(&[branch], &[followed]);
                    branch
                } else {
                    b.add_task(head(boom(&format!("cause{slot}"))))
                        .finish::<u64>()
                        .any()
                };
                let node = b.add_task(ok(&name)).finish::<u64>().any();
                b.set_downstream(&[first], &[node]);
                node
            }
        };
        upstream.push(node);
    }
    for rule in TriggerRule::ALL {
        let join = b
            .add_task(ok(rule.as_str()).trigger_rule(rule))
            .finish::<u64>()
            .any();
        b.set_downstream(&upstream, &[join]);
    }
    b.build().unwrap()
}

/// Airflow's outcome on final states, written out independently of the runtime.
fn expected(rule: TriggerRule, ends: &[End]) -> TaskState {
    let count = |e: End| ends.iter().filter(|&&x| x == e).count();
    let (s, k) = (count(End::Success), count(End::Skipped));
    let failures = count(End::Failed) + count(End::UpstreamFailed);
    let all = ends.len();
    use TaskState::{Skipped as Skip, Success as Run, UpstreamFailed as Up};
    match rule {
        TriggerRule::AllSuccess if failures > 0 => Up,
        TriggerRule::AllSuccess if k > 0 => Skip,
        TriggerRule::AllFailed if s + k > 0 => Skip,
        TriggerRule::AllSkipped if s + failures > 0 => Skip,
        TriggerRule::OneSuccess if k == all => Skip,
        TriggerRule::OneSuccess if s == 0 => Up,
        TriggerRule::OneFailed if failures == 0 => Skip,
        TriggerRule::OneDone if s + count(End::Failed) == 0 => Skip,
        TriggerRule::NoneFailed | TriggerRule::NoneFailedMinOneSuccess if failures > 0 => Up,
        TriggerRule::NoneFailedMinOneSuccess if k == all => Skip,
        TriggerRule::NoneSkipped if k > 0 => Skip,
        TriggerRule::AllDoneMinOneSuccess if k > 0 => Skip,
        TriggerRule::AllDoneMinOneSuccess if s == 0 => Up,
        _ => Run,
    }
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut all = Vec::new();
    for rest in permutations(n - 1) {
        for at in 0..=rest.len() {
            let mut order = rest.clone();
            order.insert(at, n - 1);
            all.push(order);
        }
    }
    all
}

#[test]
fn every_mix_of_upstream_ends_decides_the_same_under_every_finishing_order() {
    for size in 1..=3_u32 {
        for code in 0..4_usize.pow(size) {
            let ends: Vec<End> = (0..size).map(|i| ENDS[code / 4_usize.pow(i) % 4]).collect();
            for order in permutations(ends.len()) {
                let dag = dag(&ends, &order);
                let executor = Executor::new(Arc::new(MemoryStore::new())).sequential();
                let run = block_on(executor.run(&dag, Utc::now())).unwrap();
                for (slot, end) in ends.iter().enumerate() {
                    let state = run.task(&format!("up{slot}")).unwrap().state;
                    assert_eq!(format!("{state:?}"), format!("{end:?}"), "the set-up");
                }
                for rule in TriggerRule::ALL {
                    assert_eq!(
                        run.task(rule.as_str()).unwrap().state,
                        expected(rule, &ends),
                        "{rule} after {ends:?} finishing in order {order:?}"
                    );
                }
            }
        }
    }
}

mod self_steering {
    //! Tasks that skip or fail themselves from their body (Airflow's
    //! `AirflowSkipException` and `AirflowFailException`).

    use flow_runtime::prelude::*;
    use flow_runtime::task::shell::ShellCommand;

    #[task]
    fn maybe(n: u32) -> anyhow::Result<u32> {
        if n == 0 {
            return Err(anyhow::Error::from(SkipTask::new("nothing to do")).context("checking n"));
        }
        Ok(n)
    }

    #[task]
    fn after(n: u32) -> u32 {
        n + 1
    }

    #[task(retries = 3, retry_delay = "0s")]
    async fn give_up() -> anyhow::Result<u32> {
        Err(FailTask::new("the credentials are wrong").into())
    }

    #[task(retries = 1, retry_delay = "0s")]
    async fn after_failure(n: u32) -> u32 {
        n
    }

    #[task(shell)]
    fn nothing_new() -> ShellCommand {
        ShellCommand::bash("echo checked; exit 99")
    }

    #[task]
    fn numbers() -> Vec<u32> {
        vec![3, 0, 5]
    }

    #[task(trigger_rule = "all_done")]
    fn cleanup() {}

    #[dag]
    fn self_steering() {
        let skipped = maybe(0);
        after(skipped);
        let failed = give_up();
        after_failure(failed);
        let shell = nothing_new();
        let each = maybe.expand(n = numbers());
        [skipped, failed, shell, each] >> cleanup();
    }

    #[test]
    fn a_task_skips_or_fails_itself_and_the_rest_follows_the_trigger_rules() {
        let run = self_steering().unwrap().test().unwrap();
        let task = |t: &str| run.task(t).unwrap();
        assert_eq!(task("maybe").state, TaskState::Skipped);
        assert_eq!(
            task("maybe").error.as_deref(),
            Some("skipped: nothing to do")
        );
        assert_eq!(
            task("after").state,
            TaskState::Skipped,
            "the skip propagates"
        );
        assert_eq!(task("give_up").state, TaskState::Failed);
        assert_eq!(task("give_up").tries, 1, "no retry after FailTask");
        assert!(
            task("give_up")
                .error
                .as_deref()
                .unwrap()
                .contains("credentials are wrong")
        );
        assert_eq!(task("after_failure").state, TaskState::UpstreamFailed);
        assert_eq!(
            task("nothing_new").state,
            TaskState::Skipped,
            "exit code 99"
        );
        let mapped: Vec<TaskState> = run.mapped("maybe__1").iter().map(|t| t.state).collect();
        assert_eq!(
            mapped,
            [TaskState::Success, TaskState::Skipped, TaskState::Success],
            "one mapped instance skips itself"
        );
        assert_eq!(task("cleanup").state, TaskState::Success);
        assert_eq!(
            run.state,
            RunState::Failed,
            "after_failure is a failed leaf"
        );
    }

    #[test]
    fn builder_tasks_skip_with_the_error_variant() {
        let mut b = DagBuilder::new("builder_skip");
        let skip = b
            .add_task(TaskSpec::from_sync("skip", |_, _| {
                Err::<u32, TaskError>(TaskError::Skip("not today".into()))
            }))
            .finish::<u32>();
        let mut next = b.add_task(
            TaskSpec::from_sync("next", |_, inputs| inputs.get::<u32>(0)).param::<u32>("n"),
        );
        next.input(skip);
        next.finish::<u32>();
        let run = b.build().unwrap().test().unwrap();
        assert_eq!(run.task("skip").unwrap().state, TaskState::Skipped);
        assert_eq!(run.task("next").unwrap().state, TaskState::Skipped);
        assert_eq!(run.state, RunState::Success);
    }
}

mod records {
    //! What the store records, in Airflow's words: `max_tries`, the try history, and no
    //! `return_value` for a task that returns nothing.

    use std::sync::Arc;

    use chrono::Utc;
    use flow_runtime::prelude::*;
    use flow_runtime::store::{MemoryStore, RunStore, TaskInstanceRecord, XComStore};
    use flow_runtime::{Executor, MapIndex, TaskInstanceKey};

    #[task]
    fn side_effect() {}

    #[task]
    fn value() -> u32 {
        7
    }

    #[task(retries = 2, retry_delay = "0s")]
    fn flaky(ctx: &TaskContext) -> anyhow::Result<u32> {
        anyhow::ensure!(ctx.try_number() >= 2, "not yet");
        Ok(1)
    }

    #[dag]
    fn recorded() {
        side_effect() >> value();
        flaky();
    }

    fn instance(store: &MemoryStore, run: &RunSummary, task: &str) -> TaskInstanceRecord {
        store
            .task_instances(&"recorded".into(), &run.run_id)
            .unwrap()
            .into_iter()
            .find(|r| r.key.task_id.as_str() == task)
            .unwrap()
    }

    #[test]
    fn max_tries_counts_retries_the_history_says_failed_and_unit_stores_nothing() {
        let store = Arc::new(MemoryStore::new());
        let dag = recorded().unwrap();
        let run = block_on(Executor::new(store.clone()).run(&dag, Utc::now())).unwrap();
        assert_eq!(run.state, RunState::Success);
        let key = |task: &str| TaskInstanceKey {
            dag_id: "recorded".into(),
            run_id: run.run_id.clone(),
            task_id: task.into(),
            map_index: MapIndex::UNMAPPED,
        };
        assert_eq!(
            store.get_xcom(&key("side_effect"), "return_value").unwrap(),
            None
        );
        assert!(
            store
                .get_xcom(&key("value"), "return_value")
                .unwrap()
                .is_some()
        );
        let flaky = instance(&store, &run, "flaky");
        assert_eq!((flaky.try_number, flaky.max_tries), (2, 2), "retries = 2");
        assert_eq!(instance(&store, &run, "value").max_tries, 0, "no retries");
        let history: Vec<(u32, TaskState)> = store
            .tries(&key("flaky"))
            .unwrap()
            .into_iter()
            .map(|t| (t.try_number, t.state))
            .collect();
        assert_eq!(history, [(1, TaskState::Failed), (2, TaskState::Success)]);
    }
}

mod steering {
    //! Branches and short-circuits: what they skip, and what they record under
    //! `skipmixin_key`.

    use std::sync::Arc;

    use chrono::Utc;
    use flow_runtime::branch::{SKIPMIXIN_KEY, SkipDecision};
    use flow_runtime::prelude::*;
    use flow_runtime::store::{MemoryStore, XComStore};
    use flow_runtime::{Executor, MapIndex, TaskInstanceKey, TriggerRule};

    fn ok(name: &str) -> TaskSpec {
        TaskSpec::from_sync(name, |_, _| Ok::<u32, TaskError>(1))
    }

    fn decision(store: &MemoryStore, run: &RunSummary, dag: &str, task: &str) -> SkipDecision {
        let key = TaskInstanceKey {
            dag_id: dag.into(),
            run_id: run.run_id.clone(),
            task_id: task.into(),
            map_index: MapIndex::UNMAPPED,
        };
        let stored = store.get_xcom(&key, SKIPMIXIN_KEY).unwrap().unwrap();
        stored.as_inline().unwrap().decode().unwrap()
    }

    /// gate -> a -> b (all_success) and a -> c (all_done); `gate` returns false.
    fn gated(ignore_downstream_trigger_rules: bool) -> (RunSummary, Arc<MemoryStore>) {
        let mut b = DagBuilder::new("gated");
        let gate = b
            .add_task(
                TaskSpec::from_sync("gate", |_, _| Ok::<bool, TaskError>(false))
                    .short_circuit_with(ignore_downstream_trigger_rules),
            )
            .finish::<bool>()
            .any();
        let a = b.add_task(ok("a")).finish::<u32>().any();
        let after = b.add_task(ok("b")).finish::<u32>().any();
        let done = b
            .add_task(ok("c").trigger_rule(TriggerRule::AllDone))
            .finish::<u32>()
            .any();
        b.set_downstream(&[gate], &[a]);
        b.set_downstream(&[a], &[after, done]);
        let store = Arc::new(MemoryStore::new());
        let run =
            block_on(Executor::new(store.clone()).run(&b.build().unwrap(), Utc::now())).unwrap();
        (run, store)
    }

    #[test]
    fn a_short_circuit_skips_everything_or_only_its_direct_downstream_tasks() {
        let (run, store) = gated(true);
        let state = |run: &RunSummary, t: &str| run.task(t).unwrap().state;
        for task in ["a", "b", "c"] {
            assert_eq!(state(&run, task), TaskState::Skipped, "{task}");
        }
        assert_eq!(
            decision(&store, &run, "gated", "gate"),
            SkipDecision::Skipped(vec!["a".into(), "b".into(), "c".into()])
        );

        let (run, store) = gated(false);
        assert_eq!(state(&run, "a"), TaskState::Skipped);
        assert_eq!(
            state(&run, "b"),
            TaskState::Skipped,
            "all_success after a skip"
        );
        assert_eq!(state(&run, "c"), TaskState::Success, "all_done still runs");
        assert_eq!(
            decision(&store, &run, "gated", "gate"),
            SkipDecision::Skipped(vec!["a".into()])
        );
        assert_eq!(
            decision(&store, &run, "gated", "gate").to_json(),
            serde_json::json!({ "skipped": ["a"] })
        );
    }

    /// choose -> [left, right], left -> deeper; `choose` returns `to`.
    fn branched(to: Vec<&'static str>) -> (RunSummary, Arc<MemoryStore>) {
        let mut b = DagBuilder::new("branched");
        let choose = b
            .add_task(
                TaskSpec::from_sync("choose", move |_, _| {
                    Ok::<Branch, TaskError>(Branch::to_all(to.clone()))
                })
                .branch(),
            )
            .finish::<Branch>()
            .any();
        let left = b.add_task(ok("left")).finish::<u32>().any();
        let right = b.add_task(ok("right")).finish::<u32>().any();
        let deeper = b.add_task(ok("deeper")).finish::<u32>().any();
        b.set_downstream(&[choose], &[left, right]);
        b.set_downstream(&[left], &[deeper]);
        let store = Arc::new(MemoryStore::new());
        let run =
            block_on(Executor::new(store.clone()).run(&b.build().unwrap(), Utc::now())).unwrap();
        (run, store)
    }

    #[test]
    fn a_branch_records_what_it_followed_and_ignores_a_task_not_directly_downstream() {
        let (run, store) = branched(vec!["right"]);
        let state = |run: &RunSummary, t: &str| run.task(t).unwrap().state;
        assert_eq!(state(&run, "right"), TaskState::Success);
        assert_eq!(state(&run, "left"), TaskState::Skipped);
        assert_eq!(
            decision(&store, &run, "branched", "choose"),
            SkipDecision::Followed(vec!["right".into()])
        );
        // `deeper` exists but is not directly downstream: Airflow keeps only direct
        // children in the followed set, so both children are skipped.
        let (run, store) = branched(vec!["deeper"]);
        assert_eq!(state(&run, "choose"), TaskState::Success);
        for task in ["left", "right", "deeper"] {
            assert_eq!(state(&run, task), TaskState::Skipped, "{task}");
        }
        assert_eq!(
            decision(&store, &run, "branched", "choose"),
            SkipDecision::Followed(Vec::new())
        );
        // An id that is no task of the DAG still fails the branch.
        let (run, _) = branched(vec!["nowhere"]);
        assert_eq!(state(&run, "choose"), TaskState::Failed);
    }
}

mod latest_only_runs {
    //! `latest_only`: the tasks after it run only in the latest scheduled run.

    use std::sync::Arc;

    use chrono::{DateTime, Duration, DurationRound, TimeZone, Utc};
    use flow_runtime::operators::latest_only;
    use flow_runtime::prelude::*;
    use flow_runtime::store::{MemoryStore, RunType};
    use flow_runtime::time::timetable::DataInterval;
    use flow_runtime::{Executor, RunRequest};

    #[task]
    fn refresh() {}

    #[task(trigger_rule = "all_done")]
    fn tidy() {}

    #[dag(schedule = "@daily", start_date = "2025-01-01")]
    fn dashboards() {
        latest_only() >> refresh() >> tidy();
    }

    #[dag(schedule = "@once", start_date = "2025-01-01")]
    fn once() {
        latest_only() >> refresh();
    }

    fn run(dag: &Dag, run_type: RunType, start: DateTime<Utc>) -> RunSummary {
        let interval = DataInterval::new(start, start + Duration::days(1));
        let interval = if dag.id().as_str() == "once" {
            DataInterval::exact(start)
        } else {
            interval
        };
        let request = RunRequest::for_interval(dag, run_type, interval).unwrap();
        let executor = Executor::new(Arc::new(MemoryStore::new()));
        block_on(executor.run_request(dag, request)).unwrap()
    }

    #[test]
    fn only_the_latest_scheduled_run_goes_on() {
        let dag = dashboards().unwrap();
        let state = |run: &RunSummary, t: &str| run.task(t).unwrap().state;
        let old = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let catch_up = run(&dag, RunType::Scheduled, old);
        assert_eq!(state(&catch_up, "latest_only"), TaskState::Success);
        assert_eq!(state(&catch_up, "refresh"), TaskState::Skipped);
        assert_eq!(
            state(&catch_up, "tidy"),
            TaskState::Success,
            "all_done goes on"
        );
        let backfill = run(&dag, RunType::Backfill, old);
        assert_eq!(state(&backfill, "refresh"), TaskState::Skipped);

        let manual = run(&dag, RunType::Manual, old);
        assert_eq!(state(&manual, "refresh"), TaskState::Success);

        // The run of the interval that ended at today's midnight is the latest one.
        let today = Utc::now().duration_trunc(Duration::days(1)).unwrap();
        let latest = run(&dag, RunType::Scheduled, today - Duration::days(1));
        assert_eq!(state(&latest, "refresh"), TaskState::Success);
        // A run two intervals back is not.
        let older = run(&dag, RunType::Scheduled, today - Duration::days(3));
        assert_eq!(state(&older, "refresh"), TaskState::Skipped);

        // `@once` has no later run: its only run is the latest.
        let once = once().unwrap();
        assert_eq!(
            state(&run(&once, RunType::Scheduled, old), "refresh"),
            TaskState::Success
        );
    }
}

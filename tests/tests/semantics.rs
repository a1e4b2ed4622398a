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

/// `depends_on_past` and `wait_for_downstream`: an instance waits until the run before
/// (by logical date) holds its own instance, and with `wait_for_downstream` its direct
/// downstream instances, as succeeded or skipped; it starts once someone fixes that run.
mod depends_on_past {
    use super::*;
    use chrono::TimeZone;
    use flow_runtime::RunId;
    use flow_runtime::store::RunStore;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::time::Duration;

    static FIXED: AtomicBool = AtomicBool::new(false);
    static GATED_TRIES: AtomicU32 = AtomicU32::new(0);
    static UP_TRIES: AtomicU32 = AtomicU32::new(0);

    #[task(depends_on_past = true)]
    fn gated() -> anyhow::Result<u32> {
        GATED_TRIES.fetch_add(1, Ordering::SeqCst);
        anyhow::ensure!(FIXED.load(Ordering::SeqCst), "not fixed yet");
        Ok(1)
    }

    #[task(wait_for_downstream = true)]
    fn up() -> u32 {
        UP_TRIES.fetch_add(1, Ordering::SeqCst);
        2
    }

    #[task]
    fn down(x: u32) -> anyhow::Result<u32> {
        anyhow::ensure!(FIXED.load(Ordering::SeqCst), "not fixed yet");
        Ok(x)
    }

    #[dag]
    fn history() {
        gated();
        down(up());
    }

    fn state(store: &MemoryStore, run: &RunId, task: &str) -> TaskState {
        store
            .task_instances(&"history".into(), run)
            .unwrap()
            .into_iter()
            .find(|r| r.key.task_id.as_str() == task)
            .map_or(TaskState::None, |r| r.state)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_instance_waits_for_the_run_before_then_starts_once_it_is_fixed() {
        let store = Arc::new(MemoryStore::new());
        let dag = history().unwrap();
        let day = |d| Utc.with_ymd_and_hms(2026, 1, d, 0, 0, 0).unwrap();
        // The first run has no run before: everything runs (gated and down fail).
        let first = Executor::new(store.clone())
            .run(&dag, day(1))
            .await
            .unwrap();
        assert_eq!(first.state, RunState::Failed);
        assert_eq!(state(&store, &first.run_id, "gated"), TaskState::Failed);
        assert_eq!(state(&store, &first.run_id, "up"), TaskState::Success);
        assert_eq!(state(&store, &first.run_id, "down"), TaskState::Failed);
        assert_eq!(GATED_TRIES.load(Ordering::SeqCst), 1);
        assert_eq!(UP_TRIES.load(Ordering::SeqCst), 1);

        let second = tokio::spawn({
            let (store, dag) = (store.clone(), dag.clone());
            async move { Executor::new(store).run(&dag, day(2)).await }
        });
        // Longer than a few looks at the run before: neither waiting task starts.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(!second.is_finished(), "the second run waits");
        assert_eq!(GATED_TRIES.load(Ordering::SeqCst), 1, "gated waits");
        assert_eq!(UP_TRIES.load(Ordering::SeqCst), 1, "up waits for down");

        // Fixing the first run (clear its failures, run them again) lets the second go on.
        FIXED.store(true, Ordering::SeqCst);
        store
            .clear(
                &"history".into(),
                &first.run_id,
                &["gated".into(), "down".into()],
            )
            .unwrap();
        let fixed = Executor::new(store.clone())
            .resume(&dag, &first.run_id)
            .await
            .unwrap();
        assert_eq!(fixed.state, RunState::Success);
        let second = tokio::time::timeout(Duration::from_secs(60), second)
            .await
            .expect("the second run goes on once the first is fixed")
            .unwrap()
            .unwrap();
        assert_eq!(second.state, RunState::Success);
        assert_eq!(GATED_TRIES.load(Ordering::SeqCst), 3);
        assert_eq!(UP_TRIES.load(Ordering::SeqCst), 2);
    }
}

/// Setup and teardown tasks (Airflow's rules): a teardown runs once its upstream tasks
/// are done if one of its setups succeeded, even when the work failed; it does not decide
/// the run's state unless `on_failure_fail_dagrun`; clearing a task clears its setup and
/// teardown.
mod setup_teardown {
    use super::*;

    /// `create >> work >> delete`, `delete` a teardown of the setup `create`, each task
    /// ending as told.
    fn scoped(create: bool, work: bool, delete: bool, fail_dagrun: bool) -> Dag {
        let spec = |name: &str, succeeds: bool| if succeeds { ok(name) } else { boom(name) };
        let mut b = DagBuilder::new("scoped");
        let create = b
            .add_task(spec("create", create).as_setup())
            .finish::<u64>()
            .any();
        let work = b.add_task(spec("work", work)).finish::<u64>().any();
        let delete = b
            .add_task(spec("delete", delete).as_teardown_with(fail_dagrun))
            .finish::<u64>()
            .any();
        b.set_downstream(&[create], &[work, delete]);
        b.set_downstream(&[work], &[delete]);
        b.build().unwrap()
    }

    fn ends(
        create: bool,
        work: bool,
        delete: bool,
        fail_dagrun: bool,
    ) -> (RunState, [TaskState; 3]) {
        let run = block_on(
            Executor::new(Arc::new(MemoryStore::new()))
                .run(&scoped(create, work, delete, fail_dagrun), Utc::now()),
        )
        .unwrap();
        let state = |task: &str| run.task(task).unwrap().state;
        (run.state, [state("create"), state("work"), state("delete")])
    }

    use TaskState::{Failed, Success, UpstreamFailed};

    #[test]
    fn a_teardown_runs_after_failed_work_and_the_work_decides_the_run() {
        assert_eq!(
            ends(true, true, true, false),
            (RunState::Success, [Success, Success, Success])
        );
        assert_eq!(
            ends(true, false, true, false),
            (RunState::Failed, [Success, Failed, Success]),
            "the teardown runs although the work failed, and the run fails"
        );
    }

    #[test]
    fn a_failed_setup_leaves_its_work_and_teardown_upstream_failed() {
        assert_eq!(
            ends(false, true, true, false),
            (RunState::Failed, [Failed, UpstreamFailed, UpstreamFailed])
        );
    }

    #[test]
    fn a_failed_teardown_fails_the_run_only_with_on_failure_fail_dagrun() {
        assert_eq!(
            ends(true, true, false, false),
            (RunState::Success, [Success, Success, Failed])
        );
        assert_eq!(
            ends(true, true, false, true),
            (RunState::Failed, [Success, Success, Failed])
        );
    }

    #[test]
    fn a_skipped_setup_skips_its_teardown() {
        let mut b = DagBuilder::new("skipped_setup");
        let gate = b
            .add_task(
                TaskSpec::from_sync("gate", |_, _| Ok::<bool, TaskError>(false)).short_circuit(),
            )
            .finish::<bool>()
            .any();
        let create = b.add_task(ok("create").as_setup()).finish::<u64>().any();
        let delete = b.add_task(ok("delete").as_teardown()).finish::<u64>().any();
        b.set_downstream(&[gate], &[create]);
        b.set_downstream(&[create], &[delete]);
        let run = block_on(
            Executor::new(Arc::new(MemoryStore::new())).run(&b.build().unwrap(), Utc::now()),
        )
        .unwrap();
        assert_eq!(run.task("create").unwrap().state, TaskState::Skipped);
        assert_eq!(run.task("delete").unwrap().state, TaskState::Skipped);
        assert_eq!(run.state, RunState::Success);
    }

    #[test]
    fn clearing_a_task_clears_its_setup_and_teardown() {
        let dag = scoped(true, true, true, false);
        let set = |tasks: &[&str], downstream| {
            let tasks: Vec<String> = tasks.iter().map(|t| t.to_string()).collect();
            flow_runtime::ops::clear::task_set(&dag, &tasks, downstream)
                .unwrap()
                .into_iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(set(&["work"], false), ["create", "work", "delete"]);
        assert_eq!(set(&["delete"], false), ["create", "delete"]);
        assert_eq!(set(&["create"], false), ["create"]);
    }

    // The same through the macros: `#[task(setup)]`, `#[task(teardown)]`.
    #[task(setup)]
    fn make_cluster() -> String {
        "cluster-1".into()
    }

    #[task]
    fn train(cluster: String) -> anyhow::Result<u32> {
        anyhow::ensure!(cluster.is_empty(), "training on {cluster} failed");
        Ok(1)
    }

    #[task(teardown, on_failure_fail_dagrun = false)]
    fn delete_cluster(cluster: String) -> String {
        format!("deleted {cluster}")
    }

    #[dag]
    fn cluster_job() {
        let cluster = make_cluster();
        train(cluster) >> delete_cluster(cluster);
    }

    #[test]
    fn macro_setup_and_teardown_release_the_cluster_after_a_failed_training() {
        let run = block_on(
            Executor::new(Arc::new(MemoryStore::new())).run(&cluster_job().unwrap(), Utc::now()),
        )
        .unwrap();
        assert_eq!(run.task("make_cluster").unwrap().state, TaskState::Success);
        assert_eq!(run.task("train").unwrap().state, TaskState::Failed);
        assert_eq!(
            run.task("delete_cluster").unwrap().state,
            TaskState::Success
        );
        assert_eq!(run.state, RunState::Failed);
    }
}

/// Airflow's `TriggerDagRunOperator`: a task records a run of another DAG with a conf
/// checked against its params, and optionally waits for it.
mod trigger_dag_run {
    use super::*;
    use chrono::{DateTime, TimeZone};
    use flow_runtime::operators::TriggerDagRun;
    use flow_runtime::store::RunStore;
    use std::time::Duration;

    fn day(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, d, 0, 0, 0).unwrap()
    }

    #[task]
    fn echo_day(ctx: &TaskContext) -> anyhow::Result<String> {
        let day: String = ctx.param("day")?;
        anyhow::ensure!(day != "fail", "asked to fail");
        Ok(day)
    }

    #[dag(params(day: String))]
    fn triggered_report() {
        echo_day();
    }

    async fn trigger(ctx: &TaskContext, request: TriggerDagRun) -> Result<String, TaskError> {
        Ok(request.run(ctx).await?.to_string())
    }

    #[task]
    async fn start_report(ctx: &TaskContext) -> Result<String, TaskError> {
        let request = TriggerDagRun::new("triggered_report")
            .conf(serde_json::json!({ "day": "monday" }))
            .logical_date(day(1));
        trigger(ctx, request).await
    }

    #[task]
    async fn start_again(ctx: &TaskContext) -> Result<String, TaskError> {
        let request = TriggerDagRun::new("triggered_report")
            .conf(serde_json::json!({ "day": "monday" }))
            .logical_date(day(1))
            .skip_when_already_exists();
        trigger(ctx, request).await
    }

    #[task(retries = 0)]
    async fn start_misspelt(ctx: &TaskContext) -> Result<String, TaskError> {
        let request = TriggerDagRun::new("triggered_report")
            .conf(serde_json::json!({ "dya": "monday" }))
            .logical_date(day(2));
        trigger(ctx, request).await
    }

    #[task(retries = 0)]
    async fn start_unknown(ctx: &TaskContext) -> Result<String, TaskError> {
        trigger(ctx, TriggerDagRun::new("no_such_dag")).await
    }

    #[dag]
    fn controller() {
        start_report() >> start_again();
        start_misspelt();
        start_unknown();
    }

    #[tokio::test]
    async fn a_task_records_a_run_of_another_dag_with_its_conf() {
        let store = Arc::new(MemoryStore::new());
        let run = Executor::new(store.clone())
            .run(&controller().unwrap(), Utc::now())
            .await
            .unwrap();
        let triggered = store.runs(Some(&"triggered_report".into())).unwrap();
        assert_eq!(triggered.len(), 1, "{triggered:?}");
        assert_eq!(triggered[0].logical_date, day(1));
        assert_eq!(triggered[0].state, RunState::Queued);
        assert_eq!(triggered[0].conf, serde_json::json!({ "day": "monday" }));
        assert_eq!(run.task("start_report").unwrap().state, TaskState::Success);
        assert_eq!(run.task("start_again").unwrap().state, TaskState::Skipped);
        let error = |task: &str| run.task(task).unwrap().error.clone().unwrap_or_default();
        assert_eq!(run.task("start_misspelt").unwrap().state, TaskState::Failed);
        assert!(
            error("start_misspelt").contains("`dya`"),
            "{}",
            error("start_misspelt")
        );
        assert!(error("start_unknown").contains("DAG `no_such_dag` is not in this binary"));
    }

    #[task(retries = 2, retry_delay = "0s")]
    async fn start_and_wait(ctx: &TaskContext, day_name: String) -> Result<String, TaskError> {
        let date = if day_name == "fail" { day(4) } else { day(3) };
        let request = TriggerDagRun::new("triggered_report")
            .conf(serde_json::json!({ "day": day_name }))
            .logical_date(date)
            .wait_for_completion(Duration::from_millis(50));
        trigger(ctx, request).await
    }

    #[task]
    fn tuesday() -> String {
        "tuesday".into()
    }

    #[task]
    fn failing_day() -> String {
        "fail".into()
    }

    #[dag]
    fn waiting_controller() {
        start_and_wait(tuesday());
    }

    #[dag]
    fn failing_controller() {
        start_and_wait(failing_day());
    }

    /// Runs `controller` while playing the scheduler: the run it triggers on `date` is
    /// executed once it appears.
    async fn with_scheduler(controller: Dag, date: DateTime<Utc>) -> (RunSummary, RunState) {
        let store = Arc::new(MemoryStore::new());
        let waiting = tokio::spawn({
            let store = store.clone();
            async move { Executor::new(store).run(&controller, Utc::now()).await }
        });
        let target = triggered_report().unwrap();
        let run_id = loop {
            let runs = store.runs(Some(&"triggered_report".into())).unwrap();
            if let Some(run) = runs.into_iter().find(|r| r.logical_date == date) {
                break run.run_id;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let triggered = Executor::new(store.clone())
            .resume(&target, &run_id)
            .await
            .unwrap();
        let waited = tokio::time::timeout(Duration::from_secs(60), waiting)
            .await
            .expect("the waiting task ends once the triggered run does")
            .unwrap()
            .unwrap();
        (waited, triggered.state)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiting_task_ends_with_the_run_it_triggered() {
        let (waited, triggered) = with_scheduler(waiting_controller().unwrap(), day(3)).await;
        assert_eq!(triggered, RunState::Success);
        assert_eq!(waited.state, RunState::Success);
        let (waited, triggered) = with_scheduler(failing_controller().unwrap(), day(4)).await;
        assert_eq!(triggered, RunState::Failed);
        let task = waited.task("start_and_wait").unwrap();
        assert_eq!(task.state, TaskState::Failed);
        assert_eq!(task.tries, 1, "a failed triggered run is not retried");
        assert!(
            task.error
                .clone()
                .unwrap_or_default()
                .contains("ended failed")
        );
    }
}

/// Airflow 3's `retry_policy`: rules on the error a try returned decide whether it is
/// retried, after how long, or failed at once; the task's `retries` still bound the tries.
mod retry_policies {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use flow_runtime::prelude::*;
    use flow_runtime::task::retry::{RetryAction, RetryPolicy, RetryRule};

    #[derive(Debug)]
    struct RateLimited;

    impl std::fmt::Display for RateLimited {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("HTTP 429")
        }
    }

    impl std::error::Error for RateLimited {}

    #[derive(Debug)]
    struct BadToken;

    impl std::fmt::Display for BadToken {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("token rejected")
        }
    }

    impl std::error::Error for BadToken {}

    fn api_policy() -> RetryPolicy {
        RetryPolicy::new()
            .rule(
                RetryRule::on::<BadToken>()
                    .fail()
                    .reason("auth failure, not retryable"),
            )
            .rule(
                RetryRule::on::<RateLimited>()
                    .retry_after(Duration::ZERO)
                    .reason("rate limit, backing off"),
            )
            .otherwise(RetryAction::Fail)
    }

    static LIMITED: AtomicU32 = AtomicU32::new(0);

    /// Limited twice, then served: the retries wait the policy's delay, not the task's
    /// hour (the run would not end otherwise).
    #[task(retries = 3, retry_delay = "1h", retry_policy = api_policy)]
    fn fetch() -> anyhow::Result<u32> {
        match LIMITED.fetch_add(1, Ordering::SeqCst) {
            n @ 0..=1 => Err(anyhow::Error::from(RateLimited).context(format!("GET /data ({n})"))),
            n => Ok(n),
        }
    }

    #[task(retries = 3, retry_delay = "0s", retry_policy = api_policy)]
    async fn login() -> anyhow::Result<u32> {
        Err(BadToken.into())
    }

    #[task(retries = 3, retry_delay = "0s", retry_policy = api_policy)]
    fn unexpected() -> anyhow::Result<u32> {
        anyhow::bail!("disk full")
    }

    #[task(retries = 1, retry_delay = "1h", retry_policy = api_policy)]
    async fn always_limited() -> anyhow::Result<u32> {
        Err(RateLimited.into())
    }

    #[dag]
    fn retry_policies() {
        fetch();
        login();
        unexpected();
        always_limited();
    }

    #[test]
    fn the_error_decides_whether_and_when_a_try_is_retried() {
        let run = retry_policies().unwrap().test().unwrap();
        let task = |t: &str| run.task(t).unwrap();
        assert_eq!(task("fetch").state, TaskState::Success);
        assert_eq!(task("fetch").tries, 3);
        assert_eq!(task("login").state, TaskState::Failed);
        assert_eq!(task("login").tries, 1, "a Fail rule skips the retries left");
        let error = task("login").error.clone().unwrap();
        assert!(
            error.contains("token rejected") && error.contains("auth failure, not retryable"),
            "{error}"
        );
        assert_eq!(
            task("unexpected").tries,
            1,
            "no rule matched: `otherwise(Fail)`"
        );
        assert!(
            task("unexpected")
                .error
                .as_deref()
                .unwrap()
                .contains("no rule of the retry policy matched")
        );
        assert_eq!(task("always_limited").state, TaskState::Failed);
        assert_eq!(
            task("always_limited").tries,
            2,
            "a policy never retries past `retries`"
        );
    }
}

/// Assets (data-aware scheduling): a task's outlets are updated when it succeeds; a DAG
/// scheduled on assets gets one run once every one of them was updated since its last
/// asset-triggered run.
mod assets {
    use std::sync::Arc;

    use chrono::Utc;
    use flow_runtime::prelude::*;
    use flow_runtime::runtime::{ManualClock, Scheduler};
    use flow_runtime::store::{MemoryStore, Store};
    use flow_runtime::{Executor, RunState};

    const ORDERS: Asset = Asset::new("s3://warehouse/orders.parquet");
    const CUSTOMERS: Asset = Asset::new("s3://warehouse/customers.parquet");

    fn producer(id: &str, asset: Asset, fails: bool) -> Dag {
        let mut b = DagBuilder::new(id);
        b.add_task(
            TaskSpec::from_sync("write", move |_, _| {
                if fails {
                    Err(TaskError::Failed("disk full".into()))
                } else {
                    Ok(())
                }
            })
            .outlets([asset]),
        );
        b.build().unwrap()
    }

    fn consumer() -> Dag {
        let mut b = DagBuilder::new("report").schedule_on([ORDERS, CUSTOMERS]);
        b.add_task(TaskSpec::from_sync("report", |_, _| Ok(())));
        b.build().unwrap()
    }

    #[test]
    fn a_dag_runs_once_every_asset_it_is_scheduled_on_was_updated() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let executor = Executor::new(store.clone());
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let scheduler = Scheduler::new([consumer()], executor.clone(), clock.clone(), None);
        let run = |dag: &Dag| block_on(executor.run(dag, Utc::now())).unwrap();
        assert_eq!(
            consumer().schedule().to_string(),
            "[s3://warehouse/customers.parquet, s3://warehouse/orders.parquet]"
        );
        assert!(scheduler.create_due_runs().unwrap().is_empty());
        // Orders alone: the report waits for customers too.
        assert_eq!(
            run(&producer("orders", ORDERS, false)).state,
            RunState::Success
        );
        assert!(scheduler.create_due_runs().unwrap().is_empty());
        // A failed write updates nothing.
        assert_eq!(
            run(&producer("customers_bad", CUSTOMERS, true)).state,
            RunState::Failed
        );
        assert!(scheduler.create_due_runs().unwrap().is_empty());
        assert_eq!(
            run(&producer("customers", CUSTOMERS, false)).state,
            RunState::Success
        );
        let created = scheduler.create_due_runs().unwrap();
        assert_eq!(created.len(), 1);
        assert!(created[0].run_id.as_str().starts_with("asset_triggered__"));
        assert!(created[0].data_interval_start <= created[0].data_interval_end);
        // The updates are consumed: no second run until both are updated again.
        assert!(scheduler.create_due_runs().unwrap().is_empty());
        run(&producer("orders", ORDERS, false));
        run(&producer("orders", ORDERS, false));
        assert!(scheduler.create_due_runs().unwrap().is_empty());
        run(&producer("customers", CUSTOMERS, false));
        // A run is named by when it was triggered.
        clock.set(Utc::now() + chrono::Duration::seconds(1));
        assert_eq!(
            scheduler.create_due_runs().unwrap().len(),
            1,
            "two updates of one asset make one run"
        );
        let report_runs = store.runs(Some(&"report".into())).unwrap();
        assert_eq!(report_runs.len(), 2);
    }

    #[test]
    fn bad_asset_uris_and_mixed_schedules_are_refused() {
        let mut b = DagBuilder::new("bad")
            .schedule("@daily")
            .schedule_on([ORDERS]);
        b.add_task(TaskSpec::from_sync("t", |_, _| Ok(())).outlets([Asset::new("s3://my bucket")]));
        let errors = b.build().unwrap_err().to_string();
        assert!(
            errors.contains("on a time schedule or on assets, not both"),
            "{errors}"
        );
        assert!(
            errors.contains("invalid asset `s3://my bucket` in the outlets of task `t`"),
            "{errors}"
        );
        let mut b = DagBuilder::new("none").schedule_on([]);
        b.add_task(TaskSpec::from_sync("t", |_, _| Ok(())));
        assert!(
            b.build()
                .unwrap_err()
                .to_string()
                .contains("at least one asset")
        );
    }
}

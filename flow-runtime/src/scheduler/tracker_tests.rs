//! The tracker's decisions, with no tokio, no store and no task ever called: outcomes are
//! fed in by hand and the changes, ready instances and timers that come out are checked.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::tracker::{Ready, Tracker, TrackerOptions, TryOutcome};
use crate::branch::Branch;
use crate::graph::{Dag, DagBuilder, Node};
use crate::ids::{MapIndex, RunId, TaskInstanceKey};
use crate::plan::Plan;
use crate::state::{RunState, TaskState};
use crate::store::{Change, DagRunRecord, RunType, TaskInstanceRecord};
use crate::task::TaskError;
use crate::task::TaskSpec;
use crate::trigger::TriggerRule;
use crate::xcom::XComBlob;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap()
}

fn unit(name: &str) -> TaskSpec {
    TaskSpec::from_sync(name, |_, _| Ok(0_u64))
}

fn after(b: &mut DagBuilder, spec: TaskSpec, upstream: &[Node<u64>]) -> Node<u64> {
    let node = b.add_task(spec).finish::<u64>();
    let ups: Vec<_> = upstream.iter().map(|n| n.any()).collect();
    b.set_downstream(&ups, &[node.any()]);
    node
}

fn run_of(dag: &Dag) -> DagRunRecord {
    DagRunRecord {
        dag_id: dag.id().clone(),
        run_id: RunId::new("manual__test"),
        run_type: RunType::Manual,
        logical_date: now(),
        state: RunState::Running,
        start: Some(now()),
        end: None,
        fingerprint: crate::plan::fingerprint(dag),
        data_interval_start: now(),
        data_interval_end: now(),
        conf: serde_json::json!({}),
    }
}

fn tracker<'a>(plan: &'a Plan<'a>) -> Tracker<'a> {
    let options = TrackerOptions {
        max_map_length: 10,
        ..TrackerOptions::default()
    };
    let mut tracker = Tracker::new(plan, &run_of(plan.dag()), options);
    tracker.restore(Vec::new(), &HashMap::new(), now());
    tracker
}

/// Starts everything ready (expanding mapped tasks over `lengths`); returns the started
/// instances.
fn start_ready(t: &mut Tracker<'_>, lengths: &[usize]) -> Vec<usize> {
    let mut started = Vec::new();
    while let Some(ready) = t.pop_ready() {
        match ready {
            Ready::Task(i) => {
                t.start(i, now());
                started.push(i);
            }
            Ready::Expand(i) => t.expand(i, Ok(lengths.to_vec()), now()),
            Ready::ExpandGroup(g) => t.expand_group(g, Ok(lengths.to_vec()), now()),
        }
    }
    started
}

fn succeed<T: serde::Serialize>(t: &mut Tracker<'_>, index: usize, value: T) {
    let output = XComBlob::encode(&value).unwrap();
    t.finished(
        index,
        TryOutcome::Success {
            output,
            records: Vec::new(),
        },
        Duration::from_millis(1),
        now(),
    );
}

fn fail(t: &mut Tracker<'_>, index: usize, error: TaskError) {
    t.finished(
        index,
        TryOutcome::Failed(error),
        Duration::from_millis(1),
        now(),
    );
}

fn state(t: &Tracker<'_>, task: &str) -> TaskState {
    let index = t.dag().task_index(task).unwrap().get();
    t.instance(index).record.state
}

/// The task-level instance of `task`.
fn index(dag: &Dag, task: &str) -> usize {
    dag.task_index(task).unwrap().get()
}

/// The task rows of a batch, as (task[map index], state, try).
fn rows(changes: &[Change]) -> Vec<(String, TaskState, u32)> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Task { record: r, .. } => Some((
                match r.key.map_index.get() {
                    Some(i) => format!("{}[{i}]", r.key.task_id),
                    None => r.key.task_id.to_string(),
                },
                r.state,
                r.try_number,
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn only_roots_are_ready_and_a_task_run_inside_one_batch_writes_one_row() {
    let mut b = DagBuilder::new("chain");
    let a = b.add_task(unit("a")).finish::<u64>();
    after(&mut b, unit("b"), &[a]);
    let dag = b.build().unwrap();
    let plan = Plan::compile(&dag);
    let mut t = tracker(&plan);
    assert_eq!(start_ready(&mut t, &[]), [index(&dag, "a")]);
    succeed(&mut t, index(&dag, "a"), 1_u64);
    // queued -> running -> success within one batch: only the final row is written.
    assert_eq!(
        rows(&t.take_changes()),
        [("a".into(), TaskState::Success, 1)]
    );
    assert_eq!(start_ready(&mut t, &[]), [index(&dag, "b")]);
    assert_eq!(
        rows(&t.take_changes()),
        [("b".into(), TaskState::Running, 1)]
    );
    succeed(&mut t, index(&dag, "b"), 2_u64);
    assert_eq!(t.final_state(false), Some(RunState::Success));
}

/// The expectations the task rows of a batch name, as (task, expected state, try).
fn expectations(changes: &[Change]) -> Vec<(String, TaskState, u32)> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Task { record, expect } => Some((
                record.key.task_id.to_string(),
                expect.state,
                expect.try_number,
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn each_change_expects_what_the_batch_before_it_wrote() {
    let mut b = DagBuilder::new("expect");
    b.add_task(unit("flaky").retries(1)).finish::<u64>();
    let dag = b.build().unwrap();
    let plan = Plan::compile(&dag);
    let mut t = tracker(&plan);
    let flaky = index(&dag, "flaky");
    start_ready(&mut t, &[]);
    // The first row of an instance expects no row.
    assert_eq!(
        expectations(&t.take_changes()),
        [("flaky".into(), TaskState::None, 0)]
    );
    fail(&mut t, flaky, TaskError::Failed("once".into()));
    assert_eq!(
        expectations(&t.take_changes()),
        [("flaky".into(), TaskState::Running, 1)]
    );
    t.due(flaky);
    start_ready(&mut t, &[]);
    succeed(&mut t, flaky, 1_u64);
    // Several moves inside one batch: one row, expecting what the last batch wrote.
    let changes = t.take_changes();
    assert_eq!(rows(&changes), [("flaky".into(), TaskState::Success, 2)]);
    assert_eq!(
        expectations(&changes),
        [("flaky".into(), TaskState::UpForRetry, 1)]
    );
}

/// What a start that asks for slots puts in its batch: (task, state, try, expected state,
/// expected try), or `None` for another change.
fn start_row(change: &Change) -> Option<(String, TaskState, u32, TaskState, u32)> {
    match change {
        Change::Start { record, expect, .. } => Some((
            record.key.task_id.to_string(),
            record.state,
            record.try_number,
            expect.state,
            expect.try_number,
        )),
        _ => None,
    }
}

fn ask() -> crate::store::SlotAsk {
    crate::store::SlotAsk {
        owner: "me".into(),
        claim: crate::pools::Claim {
            pool: crate::pools::DEFAULT_POOL.into(),
            slots: 1,
            dag: "asks".into(),
            dag_limit: 16,
        },
        now: now(),
        until: now(),
    }
}

#[test]
fn a_start_asking_for_slots_stands_apart_and_a_refused_one_is_undone() {
    let mut b = DagBuilder::new("asks");
    b.add_task(unit("flaky").retries(1)).finish::<u64>();
    let dag = b.build().unwrap();
    let plan = Plan::compile(&dag);
    let options = TrackerOptions {
        events: true,
        ..TrackerOptions::default()
    };
    let mut t = Tracker::new(&plan, &run_of(&dag), options);
    t.restore(Vec::new(), &HashMap::new(), now());
    let flaky = index(&dag, "flaky");
    assert_eq!(t.pop_ready(), Some(Ready::Task(flaky)));
    let started = t.start_asking(flaky, now(), ask());
    assert_eq!(started.try_number, 1);
    assert!(t.take_events().is_empty(), "announced only once granted");
    let changes = t.take_changes();
    assert_eq!(changes.len(), 1);
    assert_eq!(
        start_row(&changes[0]),
        Some(("flaky".into(), TaskState::Running, 1, TaskState::None, 0))
    );
    // Refused: the instance is what it was, and its next start asks the same again.
    t.unstart(flaky);
    assert_eq!(state(&t, "flaky"), TaskState::None);
    t.push_back(flaky);
    assert_eq!(t.pop_ready(), Some(Ready::Task(flaky)));
    t.start_asking(flaky, now(), ask());
    let changes = t.take_changes();
    assert_eq!(
        start_row(&changes[0]),
        Some(("flaky".into(), TaskState::Running, 1, TaskState::None, 0))
    );
    let (events, _) = t.confirm(flaky);
    let states: Vec<_> = events.iter().map(|e| e.state).collect();
    assert_eq!(states, [TaskState::Queued, TaskState::Running]);
    // A retry due in the batch that records the failure: the failure stays a row of its
    // own, and the start after it expects what it writes.
    fail(&mut t, flaky, TaskError::Failed("once".into()));
    t.due(flaky);
    assert_eq!(t.pop_ready(), Some(Ready::Task(flaky)));
    t.start_asking(flaky, now(), ask());
    let changes = t.take_changes();
    assert_eq!(rows(&changes), [("flaky".into(), TaskState::UpForRetry, 1)]);
    assert_eq!(
        start_row(&changes[1]),
        Some((
            "flaky".into(),
            TaskState::Running,
            2,
            TaskState::UpForRetry,
            1
        ))
    );
    // Refused again: the failure is durable, the instance waits as `up_for_retry`.
    t.unstart(flaky);
    assert_eq!(state(&t, "flaky"), TaskState::UpForRetry);
    assert!(!t.has_changes());
}

#[test]
fn a_failure_fails_its_all_success_downstream_and_runs_its_one_failed_downstream() {
    let mut b = DagBuilder::new("rules");
    let a = b.add_task(unit("a")).finish::<u64>();
    let strict = after(&mut b, unit("strict"), &[a]);
    after(&mut b, unit("beyond"), &[strict]);
    after(
        &mut b,
        unit("cleanup").trigger_rule(TriggerRule::OneFailed),
        &[a],
    );
    after(
        &mut b,
        unit("report").trigger_rule(TriggerRule::AllDone),
        &[a],
    );
    let dag = b.build().unwrap();
    let plan = Plan::compile(&dag);
    let mut t = tracker(&plan);
    start_ready(&mut t, &[]);
    fail(&mut t, index(&dag, "a"), TaskError::Failed("boom".into()));
    assert_eq!(state(&t, "a"), TaskState::Failed);
    assert_eq!(state(&t, "strict"), TaskState::UpstreamFailed);
    assert_eq!(state(&t, "beyond"), TaskState::UpstreamFailed);
    let mut started = start_ready(&mut t, &[]);
    started.sort_unstable();
    assert_eq!(started, [index(&dag, "cleanup"), index(&dag, "report")]);
    succeed(&mut t, index(&dag, "cleanup"), 0_u64);
    succeed(&mut t, index(&dag, "report"), 0_u64);
    // A failed leaf (`beyond` never ran because of a failure) fails the run.
    assert_eq!(t.final_state(false), Some(RunState::Failed));
}

#[test]
fn a_failed_try_with_retries_left_waits_its_delay_then_runs_as_the_next_try() {
    let mut b = DagBuilder::new("retry");
    b.add_task(
        unit("flaky")
            .retries(2)
            .retry_delay(Duration::from_secs(300)),
    )
    .finish::<u64>();
    let dag = b.build().unwrap();
    let plan = Plan::compile(&dag);
    let mut t = tracker(&plan);
    let flaky = index(&dag, "flaky");
    start_ready(&mut t, &[]);
    fail(&mut t, flaky, TaskError::Failed("try 1".into()));
    assert_eq!(state(&t, "flaky"), TaskState::UpForRetry);
    let timers = t.take_timers();
    assert_eq!(timers.len(), 1);
    assert_eq!(timers[0].index, flaky);
    assert_eq!(timers[0].delay, Duration::from_secs(300));
    assert!(!t.has_ready(), "nothing runs before the delay");
    t.due(flaky);
    start_ready(&mut t, &[]);
    assert_eq!(t.instance(flaky).record.try_number, 2);
    fail(&mut t, flaky, TaskError::Failed("try 2".into()));
    t.due(flaky);
    start_ready(&mut t, &[]);
    fail(&mut t, flaky, TaskError::Failed("try 3".into()));
    // Two retries used: the third failure is final.
    assert_eq!(state(&t, "flaky"), TaskState::Failed);
    assert_eq!(
        t.take_timers().len(),
        1,
        "one timer per retry, none after the last"
    );
    assert_eq!(t.instance(flaky).record.error.as_deref(), Some("try 3"));
}

#[test]
fn a_timed_out_sensor_is_not_retried_and_a_soft_fail_skips_downstream() {
    let mut b = DagBuilder::new("sensors");
    let strict = b.add_task(unit("strict").retries(3)).finish::<u64>();
    let soft = b.add_task(unit("soft").retries(3)).finish::<u64>();
    after(&mut b, unit("after_soft"), &[soft]);
    let _ = strict;
    let dag = b.build().unwrap();
    let plan = Plan::compile(&dag);
    let mut t = tracker(&plan);
    start_ready(&mut t, &[]);
    fail(
        &mut t,
        index(&dag, "strict"),
        TaskError::SensorTimeout("1h".into()),
    );
    assert_eq!(state(&t, "strict"), TaskState::Failed);
    fail(
        &mut t,
        index(&dag, "soft"),
        TaskError::SoftFail("not there".into()),
    );
    assert_eq!(state(&t, "soft"), TaskState::Skipped);
    assert_eq!(state(&t, "after_soft"), TaskState::Skipped);
    assert!(t.take_timers().is_empty());
}

#[test]
fn a_branch_skips_the_direct_downstream_tasks_it_did_not_choose_and_what_follows_them() {
    let mut b = DagBuilder::new("branching");
    let choose = b
        .add_task(TaskSpec::from_sync("choose", |_, _| Ok(Branch::to("left"))).branch())
        .finish::<Branch>();
    let left = b.add_task(unit("left")).finish::<u64>();
    let right = b.add_task(unit("right")).finish::<u64>();
    b.set_downstream(&[choose.any()], &[left.any(), right.any()]);
    after(&mut b, unit("after_right"), &[right]);
    after(
        &mut b,
        unit("join").trigger_rule(TriggerRule::NoneFailedMinOneSuccess),
        &[left, right],
    );
    let dag = b.build().unwrap();
    let plan = Plan::compile(&dag);
    let mut t = tracker(&plan);
    start_ready(&mut t, &[]);
    succeed(&mut t, index(&dag, "choose"), Branch::to("left"));
    assert_eq!(state(&t, "right"), TaskState::Skipped);
    assert_eq!(state(&t, "after_right"), TaskState::Skipped);
    assert_eq!(start_ready(&mut t, &[]), [index(&dag, "left")]);
    succeed(&mut t, index(&dag, "left"), 0_u64);
    assert_eq!(start_ready(&mut t, &[]), [index(&dag, "join")]);
}

#[test]
fn a_branch_choosing_a_task_that_is_not_downstream_fails_its_try() {
    let mut b = DagBuilder::new("bad_branch");
    let choose = b
        .add_task(TaskSpec::from_sync("choose", |_, _| Ok(Branch::to("x"))).branch())
        .finish::<Branch>();
    let left = b.add_task(unit("left")).finish::<u64>();
    b.set_downstream(&[choose.any()], &[left.any()]);
    let dag = b.build().unwrap();
    let plan = Plan::compile(&dag);
    let mut t = tracker(&plan);
    start_ready(&mut t, &[]);
    succeed(&mut t, index(&dag, "choose"), Branch::to("nowhere"));
    assert_eq!(state(&t, "choose"), TaskState::Failed);
    let error = t
        .instance(index(&dag, "choose"))
        .record
        .error
        .clone()
        .unwrap();
    assert!(error.contains("chose `nowhere`"), "{error}");
    assert_eq!(state(&t, "left"), TaskState::UpstreamFailed);
}

#[test]
fn a_short_circuit_returning_false_skips_everything_downstream() {
    let mut b = DagBuilder::new("short");
    let gate = b
        .add_task(TaskSpec::from_sync("gate", |_, _| Ok(false)).short_circuit())
        .finish::<bool>();
    let next = b.add_task(unit("next")).finish::<u64>();
    b.set_downstream(&[gate.any()], &[next.any()]);
    after(
        &mut b,
        unit("always_done").trigger_rule(TriggerRule::AllDone),
        &[next],
    );
    let dag = b.build().unwrap();
    let plan = Plan::compile(&dag);
    let mut t = tracker(&plan);
    start_ready(&mut t, &[]);
    succeed(&mut t, index(&dag, "gate"), false);
    assert_eq!(state(&t, "next"), TaskState::Skipped);
    assert_eq!(state(&t, "always_done"), TaskState::Skipped);
    assert!(!t.has_ready());
    assert_eq!(t.final_state(false), Some(RunState::Success));
}

fn mapped_dag() -> Dag {
    let mut b = DagBuilder::new("mapped");
    let list = b
        .add_task(TaskSpec::from_sync("list", |_, _| Ok(vec![1_u64, 2, 3])))
        .finish::<Vec<u64>>();
    let mut m = b.add_task(
        TaskSpec::from_sync("double", |_, inputs| Ok(inputs.get::<u64>(0)? * 2)).param::<u64>("x"),
    );
    m.expand(list);
    let doubled = m.finish_mapped::<u64>();
    let mut total = b.add_task(
        TaskSpec::from_sync("total", |_, inputs| {
            Ok(inputs.get::<Vec<u64>>(0)?.iter().sum::<u64>())
        })
        .param::<Vec<u64>>("values"),
    );
    total.input(doubled);
    total.finish::<u64>();
    b.build().unwrap()
}

#[test]
fn a_mapped_task_expands_into_instances_and_its_downstream_waits_for_all_of_them() {
    let dag = mapped_dag();
    let plan = Plan::compile(&dag);
    let mut t = tracker(&plan);
    start_ready(&mut t, &[]);
    succeed(&mut t, index(&dag, "list"), vec![1_u64, 2, 3]);
    let children = start_ready(&mut t, &[3]);
    assert_eq!(children.len(), 3);
    let names: Vec<String> = rows(&t.take_changes()).into_iter().map(|r| r.0).collect();
    assert_eq!(names, ["list", "double[0]", "double[1]", "double[2]"]);
    for (n, &child) in children.iter().enumerate() {
        assert_eq!(
            t.instance(child).record.key.map_index,
            MapIndex::mapped(n as u32)
        );
        succeed(&mut t, child, n as u64 * 2);
        let ready = t.has_ready();
        assert_eq!(
            ready,
            n == 2,
            "`total` is ready only after the last instance"
        );
    }
    assert_eq!(
        t.successful_children(index(&dag, "double")),
        children,
        "the results are collected in map order"
    );
}

/// `list >> group(a -> b) >> total`, the group mapped over `list`.
fn group_dag() -> Dag {
    let mut b = DagBuilder::new("passes");
    let list = b
        .add_task(TaskSpec::from_sync("list", |_, _| Ok(vec![1_u64, 2, 3])))
        .finish::<Vec<u64>>();
    let grouped = b.expand_group(crate::graph::TaskGroup::new("g"), |b, map| {
        let x = map.expand(list);
        let a = b
            .add_task(TaskSpec::from_sync("a", |_, i| i.get::<u64>(0)).param::<u64>("x"))
            .input(x)
            .finish::<u64>();
        b.add_task(TaskSpec::from_sync("b", |_, i| i.get::<u64>(0)).param::<u64>("x"))
            .input(a)
            .finish::<u64>()
    });
    b.add_task(
        TaskSpec::from_sync("total", |_, i| Ok(i.get::<Vec<u64>>(0)?.len() as u64))
            .param::<Vec<u64>>("values"),
    )
    .input(grouped.output)
    .finish::<u64>();
    b.build().unwrap()
}

#[test]
fn a_mapped_group_runs_pass_by_pass_and_a_failure_stays_in_its_pass() {
    let dag = group_dag();
    let plan = Plan::compile(&dag);
    let mut t = tracker(&plan);
    start_ready(&mut t, &[]);
    succeed(&mut t, index(&dag, "list"), vec![1_u64, 2, 3]);
    // The whole group expands at once; only `a`'s instances can start.
    let started = start_ready(&mut t, &[3]);
    let names: Vec<String> = rows(&t.take_changes()).into_iter().map(|r| r.0).collect();
    assert_eq!(
        names,
        [
            "list", "g.a[0]", "g.a[1]", "g.a[2]", "g.b[0]", "g.b[1]", "g.b[2]"
        ]
    );
    assert_eq!(started.len(), 3);
    let b = |t: &Tracker<'_>, n: usize| {
        let expansion = t.instance(index(&dag, "g.b")).expansion.as_ref().unwrap();
        expansion.children.start + n
    };
    // Pass 0 goes on as soon as its `a` is done.
    succeed(&mut t, started[0], 1_u64);
    assert_eq!(start_ready(&mut t, &[]), [b(&t, 0)]);
    // Pass 1 fails: only its `b` is upstream_failed.
    fail(&mut t, started[1], TaskError::Failed("bad".into()));
    assert!(!t.has_ready());
    assert_eq!(t.instance(b(&t, 1)).record.state, TaskState::UpstreamFailed);
    succeed(&mut t, started[2], 3_u64);
    assert_eq!(start_ready(&mut t, &[]), [b(&t, 2)]);
    let (b0, b2) = (b(&t, 0), b(&t, 2));
    succeed(&mut t, b0, 1_u64);
    assert!(!t.has_ready(), "`total` waits for every instance of `g.b`");
    succeed(&mut t, b2, 3_u64);
    // `total` (all_success) counts each instance of `g.b`: one is upstream_failed.
    assert_eq!(state(&t, "total"), TaskState::UpstreamFailed);
    assert_eq!(
        state(&t, "g.b"),
        TaskState::Failed,
        "the task sums its instances up"
    );
    assert_eq!(t.final_state(false), Some(RunState::Failed));
}

#[test]
fn a_mapped_group_over_an_empty_list_skips_all_its_tasks() {
    let dag = group_dag();
    let plan = Plan::compile(&dag);
    let mut t = tracker(&plan);
    start_ready(&mut t, &[]);
    succeed(&mut t, index(&dag, "list"), Vec::<u64>::new());
    assert!(start_ready(&mut t, &[0]).is_empty());
    for task in ["g.a", "g.b", "total"] {
        assert_eq!(state(&t, task), TaskState::Skipped, "{task}");
    }
    assert_eq!(t.final_state(false), Some(RunState::Success));
}

#[test]
fn an_empty_expansion_skips_and_an_oversized_one_fails_naming_the_limit() {
    let dag = mapped_dag();
    let plan = Plan::compile(&dag);
    let mut t = tracker(&plan);
    start_ready(&mut t, &[]);
    succeed(&mut t, index(&dag, "list"), Vec::<u64>::new());
    start_ready(&mut t, &[0]);
    assert_eq!(state(&t, "double"), TaskState::Skipped);
    assert_eq!(state(&t, "total"), TaskState::Skipped);

    let plan = Plan::compile(&dag);

    let mut t = tracker(&plan);
    start_ready(&mut t, &[]);
    succeed(&mut t, index(&dag, "list"), vec![0_u64; 11]);
    start_ready(&mut t, &[11]);
    assert_eq!(state(&t, "double"), TaskState::Failed);
    let error = t
        .instance(index(&dag, "double"))
        .record
        .error
        .clone()
        .unwrap();
    assert!(
        error.contains("11 instances, over the limit of 10"),
        "{error}"
    );
    assert_eq!(state(&t, "total"), TaskState::UpstreamFailed);
}

#[test]
fn a_reschedule_keeps_the_try_records_the_poke_and_waits_without_a_slot() {
    let mut b = DagBuilder::new("poke");
    b.add_task(unit("sensor")).finish::<u64>();
    let dag = b.build().unwrap();
    let plan = Plan::compile(&dag);
    let mut t = tracker(&plan);
    let sensor = index(&dag, "sensor");
    start_ready(&mut t, &[]);
    t.take_changes();
    let at = now() + chrono::Duration::seconds(30);
    fail(&mut t, sensor, TaskError::Reschedule { at });
    assert_eq!(state(&t, "sensor"), TaskState::UpForReschedule);
    let changes = t.take_changes();
    assert!(
        changes.iter().any(
            |c| matches!(c, Change::Reschedule(r) if r.reschedule_at == at && r.try_number == 1)
        )
    );
    let timers = t.take_timers();
    assert_eq!(timers[0].delay, Duration::from_secs(30));
    t.due(sensor);
    start_ready(&mut t, &[]);
    assert_eq!(
        t.instance(sensor).record.try_number,
        1,
        "a poke continues its try"
    );
    succeed(&mut t, sensor, 0_u64);
    assert_eq!(state(&t, "sensor"), TaskState::Success);
}

#[test]
fn a_run_timeout_fails_running_tries_skips_the_rest_and_fails_the_run() {
    let mut b = DagBuilder::new("slow").dagrun_timeout(Duration::from_secs(1));
    let a = b.add_task(unit("a")).finish::<u64>();
    after(&mut b, unit("b"), &[a]);
    let dag = b.build().unwrap();
    let plan = Plan::compile(&dag);
    let mut t = tracker(&plan);
    start_ready(&mut t, &[]);
    t.time_out(now());
    assert_eq!(state(&t, "a"), TaskState::Failed);
    assert_eq!(state(&t, "b"), TaskState::Skipped);
    assert_eq!(t.final_state(false), Some(RunState::Failed));
}

#[test]
fn a_stopped_run_with_unfinished_instances_stays_running() {
    let mut b = DagBuilder::new("stopped");
    b.add_task(unit("a")).finish::<u64>();
    let dag = b.build().unwrap();
    let plan = Plan::compile(&dag);
    let mut t = tracker(&plan);
    start_ready(&mut t, &[]);
    assert_eq!(t.final_state(true), None);
}

#[test]
fn a_restored_run_fails_the_interrupted_try_and_keeps_what_succeeded() {
    let mut b = DagBuilder::new("restored");
    let a = b.add_task(unit("a")).finish::<u64>();
    after(&mut b, unit("b").retries(1), &[a]);
    let dag = b.build().unwrap();
    let run = run_of(&dag);
    let key = |task: &str| TaskInstanceKey {
        dag_id: dag.id().clone(),
        run_id: run.run_id.clone(),
        task_id: task.into(),
        map_index: MapIndex::UNMAPPED,
    };
    let done = TaskInstanceRecord {
        state: TaskState::Success,
        try_number: 1,
        max_tries: 0,
        ..TaskInstanceRecord::fresh(key("a"))
    };
    let interrupted = TaskInstanceRecord {
        state: TaskState::Running,
        try_number: 1,
        max_tries: 1,
        ..TaskInstanceRecord::fresh(key("b"))
    };
    let plan = Plan::compile(&dag);
    let mut t = Tracker::new(&plan, &run, TrackerOptions::default());
    t.restore(vec![done, interrupted], &HashMap::new(), now());
    assert_eq!(state(&t, "a"), TaskState::Success);
    assert_eq!(state(&t, "b"), TaskState::UpForRetry);
    let error = t.instance(index(&dag, "b")).record.error.clone().unwrap();
    assert!(error.contains("interrupted"), "{error}");
    assert_eq!(t.take_timers().len(), 1);
    assert_eq!(
        rows(&t.take_changes()),
        [("b".into(), TaskState::UpForRetry, 1)]
    );
}

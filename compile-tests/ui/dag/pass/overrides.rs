//! `task.r#override(..)` (Airflow's `task.override(..)`): another id and other options for
//! one use of a task, literal or computed, in a DAG body, in a group and on a mapped call.
use flow_runtime::prelude::*;
use flow_runtime::TriggerRule;

#[task(retries = 1, owner = "me")]
fn load(region: String) -> usize {
    region.len()
}

#[task]
fn add(left: usize, right: usize) -> usize {
    left + right
}

#[task]
fn total(counts: Vec<usize>) -> usize {
    counts.iter().sum()
}

#[task_group]
fn regional() -> Node<usize> {
    load.r#override(task_id = "load_apac", pool = "regional")("apac")
}

#[dag]
fn overrides() {
    let us = load("us");
    let eu = load.r#override(
        task_id = "load_eu",
        retries = 3,
        retry_delay = "1s",
        trigger_rule = "all_done",
        priority_weight = -2,
        email = [],
    )("eu");
    add(us, eu);
    let retries = 4;
    for region in ["x", "yy"] {
        load.r#override(
            task_id = format!("load_{region}"),
            retries = retries,
            retry_delay = std::time::Duration::from_secs(2),
            trigger_rule = TriggerRule::Always,
        )(region);
    }
    load.r#override(task_id = "load_eu")("eu2");
    load.r#override(owner = "you")("same id");
    regional();
    let mapped = load
        .r#override(task_id = "load_many", pool_slots = 2)
        .expand(region = ["a", "bb"]);
    total(mapped);
}

fn main() {
    let dag = overrides().unwrap();
    let ids: Vec<&str> = dag.tasks().iter().map(|t| t.id().as_str()).collect();
    assert_eq!(
        ids,
        [
            "load",
            "load_eu",
            "add",
            "load_x",
            "load_yy",
            "load_eu__1",
            "load__1",
            "regional.load_apac",
            "load_many",
            "total"
        ]
    );
    let task = |id: &str| dag.task(id).unwrap();
    assert_eq!((task("load").retries(), task("load").owner()), (1, "me"));
    let eu = task("load_eu");
    assert_eq!((eu.retries(), eu.owner()), (3, "me"));
    assert_eq!(eu.retry_delay(), std::time::Duration::from_secs(1));
    assert_eq!(eu.trigger_rule(), TriggerRule::AllDone);
    assert_eq!(eu.priority_weight(), -2);
    assert_eq!(task("load_yy").retries(), 4);
    assert_eq!(task("load_yy").trigger_rule(), TriggerRule::Always);
    assert_eq!(task("load__1").owner(), "you");
    assert_eq!(task("regional.load_apac").pool(), "regional");
    assert_eq!(task("load_many").pool_slots(), 2);
    assert_eq!(task("load_eu__1").retries(), 1);

    let run = overrides_runnable().unwrap().test().unwrap();
    assert_eq!(run.output::<usize>("sum").unwrap(), 4);
}

#[dag]
fn overrides_runnable() {
    let a = load.r#override(task_id = "first")("ab");
    let b = load.r#override(task_id = "second")("cd");
    add.r#override(task_id = "sum")(a, b);
}

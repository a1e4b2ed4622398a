//! Task groups: prefixed ids, nesting, group `default_args`, values returned by a group,
//! `>>` around groups, a group called twice, and a run of the whole DAG.
use flow_runtime::prelude::*;

#[task]
fn extract() -> Vec<i64> {
    vec![4, -2, 5]
}

#[task]
fn clean(rows: Vec<i64>) -> Vec<i64> {
    rows.into_iter().filter(|r| *r > 0).collect()
}

#[task]
fn count(rows: Vec<i64>) -> usize {
    rows.len()
}

#[task(retries = 7)]
fn total(rows: Vec<i64>, offset: i64) -> i64 {
    rows.iter().sum::<i64>() + offset
}

#[task]
fn done() {}

/// Inner checks.
#[task_group(default_args(owner = "inner-team"))]
fn checks(rows: Node<Vec<i64>>) -> (Node<usize>, Node<i64>) {
    (count(rows), total(rows, 0))
}

#[task_group(default_args(retries = 3, owner = "outer-team"))]
fn prepare(raw: Node<Vec<i64>>) -> Node<Vec<i64>> {
    let rows = clean(raw);
    let (_n, _sum) = checks(rows);
    rows
}

#[task_group(group_id = "flat", prefix_group_id = false)]
fn unprefixed(rows: Node<Vec<i64>>, offset: i64) {
    total(rows, offset);
}

#[dag(default_args(retries = 1))]
fn grouped() {
    let rows = prepare(extract());
    done() << unprefixed(rows, 10);
    let again = prepare(extract());
    prepare(again) >> done();
}

fn main() {
    let dag = grouped().unwrap();
    let ids: Vec<&str> = dag.tasks().iter().map(|t| t.id().as_str()).collect();
    assert_eq!(
        ids,
        [
            "extract",
            "prepare.clean",
            "prepare.checks.count",
            "prepare.checks.total",
            "done",
            "total",
            "extract__1",
            "prepare__1.clean",
            "prepare__1.checks.count",
            "prepare__1.checks.total",
            "prepare__2.clean",
            "prepare__2.checks.count",
            "prepare__2.checks.total",
            "done__1",
        ]
    );
    let task = |id: &str| dag.task(id).unwrap();
    assert_eq!(task("prepare.clean").retries(), 3);
    assert_eq!(task("prepare.clean").owner(), "outer-team");
    assert_eq!(task("prepare.checks.count").owner(), "inner-team");
    assert_eq!(task("prepare.checks.count").retries(), 3);
    assert_eq!(task("prepare.checks.total").retries(), 7);
    assert_eq!(task("extract").retries(), 1);
    assert_eq!(task("total").group_id(), Some("flat"));
    assert_eq!(dag.groups()[1].tooltip(), Some("Inner checks."));
    // `done << flat`: the leaves of `flat`; `prepare(again) >> done`: the returned node.
    let upstream = |id: &str| -> Vec<&str> {
        task(id)
            .upstream()
            .iter()
            .map(|&u| dag[u].id().as_str())
            .collect()
    };
    assert_eq!(upstream("done"), ["total"]);
    assert_eq!(upstream("done__1"), ["prepare__2.clean"]);
    assert_eq!(upstream("prepare__2.clean"), ["prepare__1.clean"]);

    let run = dag.test().unwrap();
    assert_eq!(run.output::<i64>("total").unwrap(), 19);
    assert_eq!(run.output::<usize>("prepare__2.checks.count").unwrap(), 2);
}

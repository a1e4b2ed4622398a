//! Container tasks: the function describes the container, the runtime runs it; the output
//! is a `String` (the last line the container prints) that downstream tasks take.

use flow_runtime::prelude::*;
use flow_runtime::task::container::{ContainerSpec, Network};

#[task(container, retries = 1)]
fn count_rows(path: String, ctx: &TaskContext) -> ContainerSpec {
    ContainerSpec::new("busybox:1.36")
        .command(["wc", "-l"])
        .arg(path)
        .env("DS", ctx.ds())
        .network(Network::None)
}

#[task(container)]
fn fallible() -> anyhow::Result<ContainerSpec> {
    Ok(ContainerSpec::new("busybox:1.36").output_file("/out/result.txt"))
}

#[task]
fn report(rows: String, other: String) -> String {
    format!("{rows} {other}")
}

#[dag]
fn containers() {
    let rows = count_rows("/data/rows.csv".to_string());
    report(rows, fallible());
}

fn main() {
    let dag = containers().expect("valid DAG");
    let task = dag.task("count_rows").expect("the task");
    assert_eq!(task.spec().output().type_name(), "alloc::string::String");
    // The function is still a function: what it returns can be checked in a unit test.
    let spec = count_rows("/data/x.csv".into(), &TaskContext::for_test("containers", "count_rows"));
    assert_eq!(spec.image(), "busybox:1.36");
}

//! The generated code depends on nothing the user imports or defines: every name it uses
//! is shadowed here, and nothing from flow is imported.
#![allow(dead_code, non_camel_case_types, unused_imports, unused_macros)]

struct Result;
struct Option;
struct Box;
struct Arc;
struct Vec;
struct Duration;
struct Some;
struct Ok;
struct Err;
struct TaskSpec;
struct DagBuilder;
struct Node;
struct Inputs;
struct TaskContext;
struct String;
struct Send;
struct Sync;
trait IntoInput {}
trait XComValue {}
trait Fn {}
mod core {}
mod std {}
mod alloc {}
mod flow_runtime {}
mod inventory {}
mod __private {}
fn node() {}
fn spec() {}
fn encode_output() {}
macro_rules! concat {
    () => {};
}
macro_rules! module_path {
    () => {};
}
macro_rules! file {
    () => {};
}
macro_rules! line {
    () => {};
}

#[::flow_runtime::task(retries = 1, retry_delay = "5m", owner = "me")]
fn produce(__flow_ctx: &::flow_runtime::TaskContext, __flow_inputs: u32) -> u32 {
    let _ = __flow_ctx;
    __flow_inputs + 1
}

#[::flow_runtime::task]
async fn consume(
    __flow_dag: u32,
    __flow_task: u32,
) -> ::core::result::Result<u32, ::std::io::Error> {
    ::core::result::Result::Ok(__flow_dag + __flow_task)
}

#[::flow_runtime::task]
fn unit() {}

#[derive(::serde::Serialize, ::serde::Deserialize, ::flow_runtime::MultipleOutputs)]
struct Pair {
    left: u32,
    right: u32,
}

#[::flow_runtime::task(multiple_outputs)]
fn pair(__flow_blob: u32) -> Pair {
    Pair {
        left: __flow_blob,
        right: 2,
    }
}

#[::flow_runtime::task_group(default_args(retries = 1))]
fn grouped(__flow_dag: ::flow_runtime::Node<u32>) -> ::flow_runtime::Node<u32> {
    let __flow_value = pair(3);
    let __flow_task = consume(__flow_dag, __flow_value.right);
    __flow_task >> produce(__flow_value.left);
    __flow_task
}

#[::flow_runtime::dag(
    schedule = "@daily",
    start_date = "2025-01-01",
    catchup = false,
    tags = ["hygiene"],
    default_args(owner = "x", retries = 2, retry_delay = "1s")
)]
fn hygienic() {
    let __flow_dag = produce(1);
    let __flow_group_0 = consume(__flow_dag, produce(2));
    __flow_group_0 >> unit();
    let __flow_override = grouped(__flow_dag);
    produce.r#override(task_id = "again", retries = 2)(__flow_override) >> unit();
}

fn main() {
    let dag = hygienic().unwrap();
    ::std::assert_eq!(dag.tasks().len(), 9);
    ::std::assert!(dag.task("grouped.produce").is_some() && dag.task("again").is_some());
}

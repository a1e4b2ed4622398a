//! Pools, priority weights, callbacks and shell tasks: on tasks, in `default_args(..)` and
//! on the DAG.

use flow_runtime::callbacks::CallbackEvent;
use flow_runtime::prelude::*;
use flow_runtime::shell::ShellCommand;

fn notify(_event: &CallbackEvent) {}

mod alerts {
    pub fn page(_event: &flow_runtime::callbacks::CallbackEvent) {}
}

#[task(pool = "gpu", pool_slots = 2, priority_weight = 10, on_failure = notify)]
fn train() -> u32 {
    7
}

#[task(pool_slots = 3, priority_weight = -5, on_success = notify, on_retry = alerts::page)]
fn heavy() {}

#[task(pool = "io")]
fn light() {}

#[task]
fn plain() {}

/// Greets.
#[task(shell, priority_weight = 2)]
fn greet() -> ShellCommand {
    ShellCommand::bash("echo hello; echo hi")
}

#[task(shell, task_id = "count")]
fn count(n: u32, ctx: &TaskContext) -> anyhow::Result<ShellCommand> {
    Ok(ShellCommand::bash(r#"echo "$N $TASK""#)
        .env("N", n.to_string())
        .env("TASK", ctx.task_id().as_str()))
}

#[task]
fn shout(line: String) -> String {
    line.to_uppercase()
}

#[dag(
    max_active_tasks = 8,
    on_success = notify,
    on_failure = alerts::page,
    default_args(pool = "default_args_pool", priority_weight = 3)
)]
fn resources() {
    let n = train();
    heavy();
    light();
    plain();
    count(n);
}

/// Runs shell tasks; a pool other than `default_pool` would have to be defined first.

#[dag(max_active_tasks = 1)]
fn shell_run() {
    shout(greet());
    count(7);
}

fn main() {
    let dag = resources().unwrap();
    let task = |id: &str| dag.task(id).unwrap();

    assert_eq!(task("train").pool(), "gpu");
    assert_eq!(task("train").pool_slots(), 2);
    assert_eq!(task("train").priority_weight(), 10);
    assert_eq!(task("heavy").pool(), "default_pool");
    assert_eq!(task("heavy").pool_slots(), 3);
    assert_eq!(task("heavy").priority_weight(), -5);
    assert_eq!(task("light").pool(), "io");
    assert_eq!(task("light").pool_slots(), 1);
    // What the task does not set comes from `default_args(..)`.
    assert_eq!(task("light").priority_weight(), 3);
    assert_eq!(task("plain").pool(), "default_args_pool");
    assert_eq!(dag.max_active_tasks(), 8);

    let callbacks = task("train").spec().callbacks();
    assert_eq!(callbacks.on_failure.len(), 1);
    assert!(callbacks.on_success.is_empty() && callbacks.on_retry.is_empty());
    let callbacks = heavy::spec().callbacks().clone();
    assert_eq!((callbacks.on_success.len(), callbacks.on_retry.len()), (1, 1));
    assert_eq!(dag.callbacks().on_success.len(), 1);
    assert_eq!(dag.callbacks().on_failure.len(), 1);
    assert!(plain::spec().callbacks().is_empty());

    assert_eq!(greet::spec().output().type_name(), "alloc::string::String");
    assert_eq!(greet::spec().documentation(), Some("Greets."));
    assert_eq!(count::spec().output().type_name(), "alloc::string::String");

    let dag = shell_run().unwrap();
    assert_eq!(dag.max_active_tasks(), 1);
    assert_eq!(dag.task("greet").unwrap().priority_weight(), 2);
    let run = dag.test().unwrap();
    assert_eq!(run.output::<String>("greet").unwrap(), "hi");
    assert_eq!(run.output::<String>("shout").unwrap(), "HI");
    assert_eq!(run.output::<String>("count").unwrap(), "7 count");
}

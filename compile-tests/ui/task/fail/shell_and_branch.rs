use flow_runtime::prelude::*;
use flow_runtime::shell::ShellCommand;

#[task(shell, branch)]
fn greet() -> ShellCommand {
    ShellCommand::bash("echo hi")
}

#[task(short_circuit, shell = true)]
fn check() -> bool {
    true
}

#[task(bash)]
fn airflow_habit() -> ShellCommand {
    ShellCommand::bash("echo hi")
}

fn main() {}

//! A binary with two DAGs of one id: its CLI must refuse to start.

use flow_runtime::prelude::*;

#[task]
fn noop() {}

#[dag(id = "twice")]
fn first() {
    noop();
}

#[dag(id = "twice")]
fn second() {
    noop();
}

fn main() -> std::process::ExitCode {
    flow_runtime::cli::main()
}

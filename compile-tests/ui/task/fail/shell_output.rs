use flow_runtime::prelude::*;

#[task(shell)]
fn greet() -> String {
    "echo hi".into()
}

#[task(shell)]
fn greet_later() -> anyhow::Result<u32> {
    Ok(1)
}

#[task(shell)]
fn greet_nothing() {}

fn main() {}

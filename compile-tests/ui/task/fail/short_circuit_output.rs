use flow_runtime::prelude::*;

#[task(short_circuit)]
fn should_go_on(rows: u64) -> u64 {
    rows
}

#[task(short_circuit)]
fn check(rows: u64) -> Result<Option<bool>, std::io::Error> {
    Ok(Some(rows > 0))
}

#[task(short_circuit)]
fn nothing() -> () {}

fn main() {}

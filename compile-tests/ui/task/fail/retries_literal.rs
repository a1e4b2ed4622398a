use flow_runtime::prelude::*;

#[task(retries = "2")]
fn quoted() {}

#[task(retries = -1)]
fn negative() {}

const N: u32 = 2;

#[task(retries = N)]
fn constant() {}

fn main() {}

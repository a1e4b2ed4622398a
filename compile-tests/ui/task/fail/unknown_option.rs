use flow_runtime::prelude::*;

#[task(retires = 2)]
fn typo() {}

#[task(queue = "gpu")]
fn planned() {}

#[task(color = "red")]
fn unknown() {}

fn main() {}

use flow_runtime::prelude::*;

#[task(task_id = "load data")]
fn spaced() {}

#[task(task_id = "")]
fn empty() {}

#[task]
fn données() {}

fn main() {}

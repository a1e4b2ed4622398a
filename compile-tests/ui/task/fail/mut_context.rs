use flow_runtime::prelude::*;

#[task]
fn mutable(_ctx: &mut TaskContext) {}

#[task]
fn by_value(_ctx: TaskContext) {}

fn main() {}

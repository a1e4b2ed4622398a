use flow_runtime::prelude::*;

#[task(pool = "gpu pool", pool_slots = 0)]
fn train() {}

#[task(pool = gpu, priority_weight = "10")]
fn score() {}

#[task(priority_weight = 3000000000, pool_slots = -1)]
fn rank() {}

fn main() {}

use flow_runtime::prelude::*;

#[task]
fn step() {}

#[dag(default_args(pool = "gpu", pool_slots = 2, on_failure = step, priority_weight = 1.5))]
fn defaults() {
    step();
}

fn main() {}

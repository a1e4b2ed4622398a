use flow_runtime::prelude::*;

#[task]
fn step() {}

#[dag(schedule = "@daily", tags = ["a"], schedule = "@hourly")]
fn twice() {
    step();
}

fn main() {}

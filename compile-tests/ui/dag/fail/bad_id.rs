use flow_runtime::prelude::*;

#[task]
fn step() {}

#[dag(id = "ml/pipeline")]
fn slash() {
    step();
}

#[dag]
fn café() {
    step();
}

fn main() {}

use flow_runtime::prelude::*;

#[task]
fn step() {}

#[dag(dagrun_timeout = "2 hours please")]
fn words() {
    step();
}

#[dag(dagrun_timeout = 7200)]
fn seconds() {
    step();
}

fn main() {}

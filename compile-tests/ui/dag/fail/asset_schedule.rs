use flow_runtime::prelude::*;

#[task]
fn work() {}

#[dag(schedule = [])]
fn empty() {
    work();
}

#[dag(schedule = ["s3://warehouse/orders"])]
fn strings() {
    work();
}

fn main() {}

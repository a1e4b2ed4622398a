use flow_runtime::prelude::*;

#[task]
fn step() {}

#[dag]
fn params(limit: u32) {
    step();
}

#[dag]
fn returns() -> u32 {
    step();
    1
}

#[dag]
async fn asynchronous() {
    step();
}

#[dag]
fn generic<T>() {
    step();
}

fn main() {}

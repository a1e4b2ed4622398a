use flow_runtime::prelude::*;

#[task]
fn step() {}

#[dag(max_active_tasks = 0)]
fn zero() {
    step();
}

#[dag(concurrency = 4)]
fn airflow_name() {
    step();
}

fn main() {}

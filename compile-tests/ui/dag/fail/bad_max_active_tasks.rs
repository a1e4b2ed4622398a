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

#[dag(pool = "gpu", on_retry = step)]
fn task_options() {
    step();
}

fn main() {}

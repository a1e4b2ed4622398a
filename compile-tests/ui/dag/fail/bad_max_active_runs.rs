use flow_runtime::prelude::*;

#[task]
fn step() {}

#[dag(max_active_runs = 0)]
fn never() {
    step();
}

#[dag(max_active_runs = "2", max_active_runs_per_dag = 2)]
fn quoted() {
    step();
}

#[dag(max_active_runs = -1)]
fn negative() {
    step();
}

fn main() {}

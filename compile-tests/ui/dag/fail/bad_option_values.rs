use flow_runtime::prelude::*;

#[task]
fn step() {}

#[dag(
    start_date = "2025-13-01",
    catchup = "false",
    tags = "ml",
    id = "ml pipeline",
    default_args(retry_delay = "soon")
)]
fn values() {
    step();
}

#[dag(start_date = "yesterday", tags = ["ok", 3], schedule = Some("@daily"))]
fn more_values() {
    step();
}

fn main() {}

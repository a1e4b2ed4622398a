use flow_runtime::prelude::*;

#[task]
fn step() {}

#[dag(start_date = "2025-01-01", end_date = "2025-02-30")]
fn no_such_day() {
    step();
}

#[dag(start_date = "2025-01-01", end_date = "next year")]
fn not_a_date() {
    step();
}

#[dag(end_date = "2024-12-31", start_date = "2025-01-01")]
fn end_before_start() {
    step();
}

// Midnight in New York is 05:00 UTC, after the end date.
#[dag(
    timezone = "America/New_York",
    start_date = "2025-01-01",
    end_date = "2025-01-01T02:00:00Z"
)]
fn end_before_start_in_the_time_zone() {
    step();
}

fn main() {}

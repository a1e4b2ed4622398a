use flow_runtime::prelude::*;

#[task]
fn step() {}

#[dag(schedule = "0 2 * *")]
fn four_fields() {
    step();
}

#[dag(schedule = "61 * * * *")]
fn out_of_range() {
    step();
}

#[dag(schedule = "0 9 * * MON-FRY")]
fn bad_day() {
    step();
}

fn main() {}

use flow_runtime::prelude::*;

#[task]
fn step() {}

#[dag(schedule = "0 2 * * *", timezone = "Europe/Amsterdm")]
fn typo() {
    step();
}

#[dag(timezone = "amsterdam")]
fn lower_case_city() {
    step();
}

#[dag(timezone = "CET+1")]
fn offset() {
    step();
}

#[dag(timezone = 1)]
fn not_a_string() {
    step();
}

fn main() {}

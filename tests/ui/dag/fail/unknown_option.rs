use flow_runtime::prelude::*;

#[task]
fn step() {}

#[dag(
    sheduled = "@daily",
    end_date = "2026-01-01",
    default_args(owner = "me", pool = "gpu", retry = 2)
)]
fn typo() {
    step();
}

fn main() {}

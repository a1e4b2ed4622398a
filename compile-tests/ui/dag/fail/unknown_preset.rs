use flow_runtime::prelude::*;

#[task]
fn step() {}

#[dag(schedule = "@fortnightly")]
fn unknown() {
    step();
}

#[dag(schedule = "@dialy")]
fn typo() {
    step();
}

fn main() {}

use flow_runtime::prelude::*;

#[task]
fn step() {}

#[dag]
fn literal() {
    step() >> 5;
    ["a", step()] >> step();
}

fn main() {}

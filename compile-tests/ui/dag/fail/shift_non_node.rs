use flow_runtime::prelude::*;

#[task]
fn step() {}

#[dag]
fn not_a_node() {
    let n = 5_u32;
    n >> step();
}

fn main() {}

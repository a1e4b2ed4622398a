use flow_runtime::prelude::*;

#[task]
fn add(a: u32, b: u32) -> u32 {
    a + b
}

#[dag]
fn counts() {
    add(1);
    add(1, 2, 3);
}

fn main() {}

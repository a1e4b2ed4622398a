use flow_runtime::prelude::*;

#[task]
fn pair((a, b): (u8, u8)) -> u8 {
    a + b
}

#[task]
fn ignored(_: u32) {}

fn main() {}

use flow_runtime::prelude::*;

#[task]
fn step() {}

#[dag]
fn early() {
    step();
    if true {
        return;
    }
    step();
}

fn main() {}

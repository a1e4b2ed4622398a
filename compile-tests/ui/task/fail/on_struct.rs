use flow_runtime::prelude::*;

#[task]
#[derive(Debug)]
struct NotAFunction {
    value: u32,
}

fn main() {}

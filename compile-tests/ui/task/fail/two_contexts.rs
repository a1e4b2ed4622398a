use flow_runtime::prelude::*;

#[task]
fn twice(_ctx: &TaskContext, value: u32, _again: &TaskContext) -> u32 {
    value
}

fn main() {}

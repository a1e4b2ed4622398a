use flow_runtime::prelude::*;

#[task(depends_on_past = "yes")]
fn quoted() -> u32 {
    1
}

#[task(wait_for_downstream)]
fn without_value() -> u32 {
    1
}

fn main() {}

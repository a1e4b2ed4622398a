use flow_runtime::prelude::*;

#[task]
fn stringly(value: u32) -> Result<u32, String> {
    Ok(value)
}

fn main() {}

use flow_runtime::prelude::*;

#[task(retries = 1, owner = "a", retries = 2)]
fn twice() {}

fn main() {}

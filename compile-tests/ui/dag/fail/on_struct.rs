use flow_runtime::prelude::*;

#[dag(schedule = "@daily")]
struct Pipeline;

fn main() {}

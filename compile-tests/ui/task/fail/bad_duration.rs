use flow_runtime::prelude::*;

#[task(retry_delay = "5 minutes please")]
fn wordy() {}

#[task(retry_delay = 300)]
fn no_unit() {}

fn main() {}

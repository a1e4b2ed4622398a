use flow_runtime::prelude::*;

#[task]
fn step() {}

#[dag(default_args(
    trigger_rul = "all_done",
    branch,
    trigger_rule = "non_failed",
    execution_timeout = "0s",
    retry_exponential_backoff = "yes",
    max_retry_delay = 60
))]
fn defaults() {
    step();
}

fn main() {}

use flow_runtime::prelude::*;

#[task(poke_interval = "30s")]
fn forgot_the_flag() -> bool {
    true
}

#[task(timeout = "1h", mode = "reschedule", soft_fail, exponential_backoff)]
fn all_of_them() -> bool {
    true
}

fn main() {}

use flow_runtime::prelude::*;

// A task sets a resource up or tears it down, not both.
#[task(setup, teardown)]
fn both() -> u32 {
    1
}

// Only a teardown's failure can be told to fail the run.
#[task(setup, on_failure_fail_dagrun = true)]
fn not_a_teardown() -> u32 {
    1
}

// A teardown's trigger rule is always `all_done_setup_success`.
#[task(teardown, trigger_rule = "all_success")]
fn own_rule() -> u32 {
    1
}

#[task(teardown = true)]
fn not_a_flag() -> u32 {
    1
}

#[task(teardown, on_failure_fail_dagrun = "yes")]
fn not_a_bool() -> u32 {
    1
}

fn main() {}

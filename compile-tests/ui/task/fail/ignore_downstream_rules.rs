use flow_runtime::prelude::*;

// Only a short-circuit task has downstream trigger rules to ignore.
#[task(ignore_downstream_trigger_rules = false)]
fn not_a_short_circuit() -> bool {
    true
}

#[task(short_circuit, ignore_downstream_trigger_rules = "no")]
fn not_a_flag() -> bool {
    true
}

fn main() {}

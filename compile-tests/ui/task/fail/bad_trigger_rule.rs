use flow_runtime::prelude::*;

#[task(trigger_rule = "all_don")]
fn typo() {}

#[task(trigger_rule = "ALL_DONE")]
fn shouting() {}

#[task(trigger_rule = "whenever")]
fn unknown() {}

#[task(trigger_rule = TriggerRule::AllDone)]
fn not_a_string() {}

#[task(trigger_rule = 3)]
fn a_number() {}

fn main() {}

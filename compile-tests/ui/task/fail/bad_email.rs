use flow_runtime::prelude::*;

#[task(email = "ops@example.com")]
fn not_a_list() {}

#[task(email = [ops])]
fn not_strings() {}

#[task(email = ["ops@example.com", 42])]
fn not_all_strings() {}

#[task(email = ["ops.example.com"])]
fn not_an_address() {}

#[task(email)]
fn no_value() {}

#[task(email_on_failure = "yes", email_on_retry = 1)]
fn not_booleans() {}

#[task(email_on_retry = "false")]
fn quoted_boolean() {}

fn main() {}

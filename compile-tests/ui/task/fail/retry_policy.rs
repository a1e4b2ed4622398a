use flow_runtime::prelude::*;
use flow_runtime::task::retry::RetryPolicy;

fn api_policy() -> RetryPolicy {
    RetryPolicy::new()
}

fn not_a_policy() -> u32 {
    3
}

#[task(retry_policy = "api_policy")]
fn fetch() {}

#[task(retry_policy = api_policy())]
fn login() {}

#[task(retry_policy)]
fn load() {}

#[task(retry_policy = not_a_policy)]
fn score() {}

fn main() {}

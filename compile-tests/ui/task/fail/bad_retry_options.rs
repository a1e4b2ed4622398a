use flow_runtime::prelude::*;

#[task(retry_exponential_backoff = "yes")]
fn yes() {}

#[task(retry_exponential_backoff = "true")]
fn quoted() {}

#[task(max_retry_delay = "an hour")]
fn wordy() {}

#[task(max_retry_delay = 3600)]
fn no_unit() {}

#[task(execution_timeout = "0s")]
fn zero() {}

#[task(execution_timeout = "ten minutes")]
fn bad_timeout() {}

fn main() {}

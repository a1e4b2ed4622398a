use flow_runtime::prelude::*;

#[task]
fn step() {}

#[dag(default_args(email = "team@example.com", email_on_failure = "yes", email_on_retry = true))]
fn defaults() {
    step();
}

#[dag(default_args(emails = ["team@example.com"]))]
fn misspelled() {
    step();
}

fn main() {}

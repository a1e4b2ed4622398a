use flow_runtime::callbacks::CallbackEvent;
use flow_runtime::prelude::*;

fn notify(_event: &CallbackEvent) {}

fn wrong(_message: &str) {}

#[task(on_failure = "notify", on_success = || {}, on_retry_callback = notify)]
fn train() {}

#[task(on_failure = wrong)]
fn score() {}

#[dag(on_failure = "alerts::page", on_success_callback = notify)]
fn pipeline() {
    train();
}

fn main() {}

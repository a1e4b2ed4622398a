use flow_runtime::prelude::*;

#[task]
fn load(region: String) -> usize {
    region.len()
}

fn notify(_: &flow_runtime::callbacks::CallbackEvent) {}

#[dag]
fn overridden() {
    load.r#override(retrys = 3)("a");
    load.r#override(branch, task_id = "bad id")("b");
    load.r#override(retry_delay = "5 parsecs", shell = true)("c");
    load.r#override(on_failure = notify, retries = 1, retries = 2)("d");
    load.r#override()("e");
    load.r#override(retries = "three".len())("f");
}

fn main() {}

use flow_runtime::prelude::*;

#[task]
fn load(region: String) -> usize {
    region.len()
}

#[dag]
fn overridden() {
    load.r#override(retries = "three".len(), task_id = 7)("a");
}

fn main() {}

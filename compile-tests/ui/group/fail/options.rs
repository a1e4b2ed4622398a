use flow_runtime::prelude::*;

#[task]
fn step() {}

#[task_group(group_id = "with.dot")]
fn dotted() {
    step();
}

#[task_group(retries = 2, grop_id = "x", prefix_group_id = "no")]
fn misspelt() {
    step();
}

#[task_group(default_args(task_id = "x"))]
fn defaults() {
    step();
}

#[task_group]
fn empty() {}

#[task_group]
fn early() -> Node<()> {
    let done = step();
    if true {
        return done;
    }
    done
}

fn main() {}

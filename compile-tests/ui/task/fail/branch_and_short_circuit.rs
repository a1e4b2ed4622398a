use flow_runtime::prelude::*;

#[task(branch, short_circuit)]
fn both(go: bool) -> bool {
    go
}

#[task(branch = true)]
fn valued() -> Branch {
    Branch::to("next")
}

#[task(short_circuit = false)]
fn valued_too() -> bool {
    true
}

fn main() {}

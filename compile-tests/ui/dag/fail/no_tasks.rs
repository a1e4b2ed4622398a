use flow_runtime::prelude::*;

#[dag(schedule = "@daily")]
fn empty() {
    let x = 1 + 1;
    println!("{x}");
}

fn main() {}

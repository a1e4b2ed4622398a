use flow_runtime::prelude::*;

#[task]
fn count() -> u32 {
    1
}

#[task]
fn greet(name: String) -> String {
    name
}

#[dag]
fn mismatched() {
    let n = count();
    greet(n);
    greet(count());
    greet(5);
}

fn main() {}

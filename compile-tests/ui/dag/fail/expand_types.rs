use flow_runtime::prelude::*;

#[task]
fn one() -> u32 {
    1
}

#[task]
fn names() -> Vec<String> {
    vec!["a".into()]
}

#[task]
fn process(part: u32) -> u32 {
    part
}

#[task]
fn total(values: Vec<u64>) -> u64 {
    values.iter().sum()
}

#[dag]
fn mapped() {
    // Not a list.
    process.expand(part = one());
    // A list of another type.
    process.expand(part = names());
    // A literal list of another type.
    process.expand(part = vec!["x"]);
    // Results collected as `Vec<u32>`, not `Vec<u64>`.
    let parts = process.expand(part = vec![1, 2]);
    total(parts);
}

fn main() {}

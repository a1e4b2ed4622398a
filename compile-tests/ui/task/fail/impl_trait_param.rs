use flow_runtime::prelude::*;

#[task]
fn display(value: impl std::fmt::Display) -> String {
    value.to_string()
}

#[task]
fn iterator() -> impl Iterator<Item = u32> {
    0..3
}

fn main() {}

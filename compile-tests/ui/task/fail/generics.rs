use flow_runtime::prelude::*;

#[task]
fn generic<T: Clone>(value: T) -> T {
    value
}

#[task]
fn lifetime<'a>(text: &'a str) -> usize {
    text.len()
}

#[task]
fn bounded(value: u32) -> u32
where
    u32: Copy,
{
    value
}

fn main() {}

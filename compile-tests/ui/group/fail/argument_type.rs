use flow_runtime::prelude::*;

#[task]
fn number() -> u32 {
    1
}

#[task]
fn echo(text: String) -> String {
    text
}

#[task_group]
fn shout(text: Node<String>) -> Node<String> {
    echo(text)
}

#[dag]
fn mismatched() {
    shout(number());
}

fn main() {}

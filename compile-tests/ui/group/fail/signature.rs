use flow_runtime::prelude::*;

#[task]
fn echo(text: String) -> String {
    text
}

#[task_group]
async fn asynchronous() {
    echo("a");
}

#[task_group]
fn generic<T>(value: T) {
    echo("b");
}

#[task_group]
fn borrowing(text: &str) {
    echo(text);
}

#[task_group]
struct NotAFunction;

fn main() {}

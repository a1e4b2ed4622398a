use flow_runtime::prelude::*;

#[task]
fn greet(name: String) -> String {
    name
}

#[dag]
fn constructors() {
    greet(String::from("x"));
    let name = Some("x");
    greet({ String::from("fine in braces") });
}

fn main() {}

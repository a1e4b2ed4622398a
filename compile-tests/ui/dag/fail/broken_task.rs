use flow_runtime::prelude::*;

#[task]
fn shout(text: &str) -> String {
    text.to_uppercase()
}

#[task]
fn print(text: String) {
    println!("{text}");
}

#[dag]
fn uses_a_broken_task() {
    let loud = shout("hello");
    print(loud);
}

fn main() {}

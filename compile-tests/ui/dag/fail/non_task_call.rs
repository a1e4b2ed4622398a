use flow_runtime::prelude::*;

#[task]
fn greet(name: String) -> String {
    name
}

fn helper() -> String {
    "x".into()
}

mod util {
    pub fn helper() -> String {
        "x".into()
    }
}

#[dag]
fn plain_calls() {
    helper();
    greet(util::helper());
}

fn main() {}

use flow_runtime::prelude::*;

#[task(branch)]
fn choose(accuracy: f64) -> String {
    if accuracy > 0.9 { "deploy".into() } else { "stage".into() }
}

#[task(branch)]
fn choose_later(accuracy: f64) -> anyhow::Result<Vec<String>> {
    Ok(vec![accuracy.to_string()])
}

#[task(branch)]
fn choose_nothing() {}

fn main() {}

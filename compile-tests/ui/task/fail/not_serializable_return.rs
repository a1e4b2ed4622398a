use flow_runtime::prelude::*;

struct Model {
    weights: Vec<f32>,
}

#[task]
fn plain() -> Model {
    Model { weights: vec![] }
}

#[task]
fn fallible() -> anyhow::Result<Model> {
    Ok(Model { weights: vec![] })
}

#[task]
async fn later() -> std::io::Result<Model> {
    Ok(Model { weights: vec![] })
}

fn main() {}

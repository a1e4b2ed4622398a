use flow_runtime::prelude::*;

struct Model {
    weights: Vec<f32>,
}

#[task]
fn train(model: Model, rate: f32) -> f32 {
    model.weights.iter().sum::<f32>() * rate
}

fn main() {}

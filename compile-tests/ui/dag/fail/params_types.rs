use flow_runtime::prelude::*;

#[task]
fn step() {}

struct Model;

#[dag(params(threshold: f64 = "high", epochs: u32 = 2.5, ratio: f64 = 1, name: String = 'x'))]
fn wrong_defaults() {
    step();
}

#[dag(params(model: Model))]
fn not_deserializable() {
    step();
}

fn main() {}

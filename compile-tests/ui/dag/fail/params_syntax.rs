use flow_runtime::prelude::*;

#[task]
fn step() {}

#[dag(params(threshold: f64 = 0.8, epochs: u32, threshold: f64 = 0.9))]
fn duplicate() {
    step();
}

#[dag(params(threshold = 0.8, models_dir = "models", epochs))]
fn missing_types() {
    step();
}

#[dag(params("threshold": f64, name: &str = "x", limit: u32 = 1 2, window: u32 =))]
fn unsupported() {
    step();
}

#[dag(params = ["threshold"])]
fn not_a_list() {
    step();
}

#[dag(params(#[serde(default)] retries: u32))]
fn attribute() {
    step();
}

fn main() {}

use flow_runtime::prelude::*;

#[task]
fn process(scale: f64, part: u32) -> f64 {
    scale * f64::from(part)
}

#[task]
fn total(values: Vec<f64>) -> f64 {
    values.iter().sum()
}

#[dag]
fn mapped() {
    let done = process.partial(scale = 2.0).expand(part = vec![1, 2, 3]);
    total(done);
    process.expand(part = vec![4]);
}

fn main() {}

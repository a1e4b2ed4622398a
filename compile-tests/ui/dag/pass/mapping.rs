use flow_runtime::prelude::*;

#[task]
fn process(scale: f64, part: u32) -> f64 {
    scale * f64::from(part)
}

#[task]
fn total(values: Vec<f64>) -> f64 {
    values.iter().sum()
}

#[task]
fn parts() -> Vec<u32> {
    vec![4, 5]
}

#[dag]
fn mapped() {
    let done = process.partial(scale = 2.0).expand(part = vec![1, 2, 3]);
    total(done);
    // A mapped call as a statement, over a task call, and ordered with `>>`.
    process.partial(scale = 1.0).expand(part = parts());
    let zipped = process.expand_zip(scale = [1.0, 2.0], part = [10, 20]);
    zipped >> total(zipped);
}

fn main() {
    let run = mapped().unwrap().test().unwrap();
    assert_eq!(run.state, RunState::Success, "{run:?}");
    assert_eq!(run.output::<f64>("total").unwrap(), 12.0);
    assert_eq!(run.output::<Vec<f64>>("process__1").unwrap(), [4.0, 5.0]);
    assert_eq!(run.output::<f64>("total__1").unwrap(), 50.0);
}

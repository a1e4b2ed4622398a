//! Mapped task groups: `.expand(..)`, `.partial(..).expand(..)` and `.expand_zip(..)` on a
//! `#[task_group]` function, over literal lists, a task's `Vec` and a mapped task's results.
use flow_runtime::prelude::*;

#[task]
fn rates() -> Vec<f64> {
    vec![0.1, 0.2]
}

#[task]
fn scale(rate: f64, epochs: u32) -> f64 {
    rate * f64::from(epochs)
}

#[task]
fn best(scores: Vec<f64>) -> f64 {
    scores.into_iter().fold(0.0, f64::max)
}

#[task]
fn done() {}

#[task_group]
fn train(rate: Node<f64>, epochs: u32) -> Node<f64> {
    scale(rate, epochs)
}

#[task_group(group_id = "grid", default_args(retries = 1))]
fn grid(rate: Node<f64>, epochs: Node<u32>) {
    scale(rate, epochs);
}

/// Parameters named like the generated code's own locals.
#[task_group]
fn hygiene(zip: Node<f64>, source: u32) -> Node<f64> {
    scale(zip, source)
}

#[dag]
fn mapped_groups() {
    let from_task = train.partial(epochs = 2).expand(rate = rates());
    let literal = train.partial(epochs = 3).expand(rate = vec![0.5]);
    let doubled = scale.partial(epochs = 2).expand(rate = rates());
    let from_mapped = train.partial(epochs = 1).expand(rate = doubled);
    best(from_task) >> best(literal) >> best(from_mapped);
    grid.expand_zip(rate = [0.1, 0.2], epochs = [1, 2]) >> done();
    // The plain call still works.
    train(scale(0.1, 1), 4);
    best(hygiene.partial(source = 3).expand_zip(zip = vec![1.0, 2.0]));
}

fn main() {
    let dag = mapped_groups().unwrap();
    assert!(dag.task("train.scale").unwrap().is_mapped());
    assert_eq!(dag.task("grid.scale").unwrap().retries(), 1);
    let run = dag.test().unwrap();
    assert_eq!(run.output::<f64>("best__2").unwrap(), 0.4);
    assert_eq!(run.output::<Vec<f64>>("grid.scale").unwrap(), [0.1, 0.4]);
}

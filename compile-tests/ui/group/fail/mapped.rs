use flow_runtime::prelude::*;

#[task]
fn scale(rate: f64, epochs: u32) -> f64 {
    rate * f64::from(epochs)
}

#[task_group]
fn train(rate: Node<f64>, epochs: u32) -> Node<f64> {
    scale(rate, epochs)
}

#[task_group]
fn pair(rate: Node<f64>) -> (Node<f64>, Node<f64>) {
    (scale(rate, 1), scale(rate, 2))
}

#[dag]
fn not_a_node_parameter() {
    // `epochs` is a plain `u32`: it can be fixed with `.partial`, not mapped over.
    train.expand(rate = vec![0.1], epochs = vec![1, 2]);
}

#[dag]
fn list_of_the_wrong_type() {
    train.partial(epochs = 1).expand(rate = vec!["fast", "slow"]);
}

#[dag]
fn returns_a_tuple() {
    pair.expand(rate = vec![0.1, 0.2]);
}

#[dag]
fn unknown_parameter() {
    train.partial(epochs = 1).expand(speed = vec![0.1]);
}

fn main() {}

use flow_runtime::prelude::*;

#[derive(Serialize, Deserialize, MultipleOutputs)]
struct Split {
    train: Vec<u32>,
    seed: u64,
}

#[task(multiple_outputs)]
fn split_data() -> Split {
    Split { train: vec![], seed: 1 }
}

#[task]
fn fit(rows: Vec<u32>) -> u32 {
    rows.iter().sum()
}

#[dag]
fn misspelt() {
    let split = split_data();
    fit(split.trian);
}

#[dag]
fn mistyped() {
    let split = split_data();
    fit(split.seed);
}

fn main() {}

use flow_runtime::prelude::*;

#[derive(Serialize, Deserialize)]
struct Split {
    train: Vec<u32>,
}

#[task(multiple_outputs)]
fn split_data() -> Split {
    Split { train: vec![] }
}

#[task(multiple_outputs, branch)]
fn steer() -> Branch {
    Branch::none()
}

fn main() {}

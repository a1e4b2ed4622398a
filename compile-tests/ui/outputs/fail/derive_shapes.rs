use flow_runtime::prelude::*;

#[derive(Serialize, Deserialize, MultipleOutputs)]
struct Pair(u32, u32);

#[derive(Serialize, Deserialize, MultipleOutputs)]
enum Choice {
    Left(u32),
}

#[derive(Serialize, Deserialize, MultipleOutputs)]
struct Generic<T> {
    value: T,
}

fn main() {}

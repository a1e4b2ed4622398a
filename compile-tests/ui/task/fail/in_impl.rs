use flow_runtime::prelude::*;

struct Steps;

impl Steps {
    #[task]
    fn load() -> u32 {
        1
    }
}

fn main() {}

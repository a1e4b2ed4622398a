use flow_runtime::prelude::*;

struct Loader;

impl Loader {
    #[task]
    fn load(&self) -> u32 {
        1
    }
}

fn main() {}

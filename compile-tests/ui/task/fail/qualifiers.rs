use flow_runtime::prelude::*;

#[task]
const fn constant() -> u32 {
    1
}

#[task]
unsafe fn dangerous() -> u32 {
    1
}

#[task]
extern "C" fn foreign() -> u32 {
    1
}

fn main() {}

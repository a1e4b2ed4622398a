use std::rc::Rc;

use flow_runtime::prelude::*;

async fn pause() {}

#[task]
async fn holds_rc(value: u32) -> u32 {
    let shared = Rc::new(value);
    pause().await;
    *shared
}

fn main() {}

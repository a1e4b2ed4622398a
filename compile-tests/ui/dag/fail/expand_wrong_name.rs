use flow_runtime::prelude::*;

#[task]
fn process(scale: f64, part: u32) -> f64 {
    scale * f64::from(part)
}

#[dag]
fn mapped() {
    process.partial(scale = 2.0).expand(prat = vec![1, 2, 3]);
    process.partial(scael = 2.0).expand(part = vec![1, 2, 3]);
}

fn main() {}

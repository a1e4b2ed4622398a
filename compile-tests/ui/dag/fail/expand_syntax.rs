use flow_runtime::prelude::*;

#[task]
fn process(scale: f64, part: u32) -> f64 {
    scale * f64::from(part)
}

#[dag]
fn mapped() {
    let parts = vec![1, 2];
    // Positional, not named.
    process.expand(parts);
    // Nothing to map over.
    process.partial(scale = 1.0).expand();
    // `.partial` alone.
    process.partial(scale = 1.0);
    // The same parameter twice.
    process.partial(part = 1).expand(part = vec![2]);
    // Not a parameter name on the left.
    process.expand(a.b = vec![1]);
    // `.expand_kwargs` is not supported.
    process.expand_kwargs(vec![1]);
}

fn main() {}

use flow_runtime::prelude::*;

#[task(sensor, poke_interval = "soon")]
fn vague() -> Poke<()> {
    Poke::NotYet
}

#[task(sensor, timeout = 3600)]
fn no_unit() -> Poke<()> {
    Poke::NotYet
}

#[task(sensor, poke_interval = "0s", timeout = "0s")]
fn zero() -> Poke<()> {
    Poke::NotYet
}

fn main() {}

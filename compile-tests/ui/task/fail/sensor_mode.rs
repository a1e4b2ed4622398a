use flow_runtime::prelude::*;

#[task(sensor, mode = "sometimes")]
fn never_sure() -> Poke<()> {
    Poke::NotYet
}

#[task(sensor, mode = "Reschedul")]
fn typo() -> Poke<()> {
    Poke::NotYet
}

#[task(sensor, mode = reschedule)]
fn unquoted() -> Poke<()> {
    Poke::NotYet
}

fn main() {}

use flow_runtime::prelude::*;

#[task(sensor)]
fn returns_bool() -> bool {
    true
}

#[task(sensor)]
fn returns_nothing() {}

#[task(sensor)]
fn returns_a_result_of_bool() -> Result<bool, std::io::Error> {
    Ok(true)
}

#[task(sensor)]
fn returns_a_bare_poke() -> Poke {
    Poke::NotYet
}

fn main() {}

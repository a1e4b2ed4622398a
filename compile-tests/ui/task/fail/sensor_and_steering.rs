use flow_runtime::prelude::*;
use flow_runtime::shell::ShellCommand;

#[task(sensor, branch)]
fn choose() -> Poke<Branch> {
    Poke::NotYet
}

#[task(short_circuit, sensor)]
fn go_on() -> Poke<bool> {
    Poke::NotYet
}

#[task(sensor, shell)]
fn command() -> ShellCommand {
    ShellCommand::bash("test -f /tmp/ready")
}

#[task(sensor = true)]
fn valued() -> Poke<()> {
    Poke::NotYet
}

#[task(sensor, soft_fail = true)]
fn soft() -> Poke<()> {
    Poke::NotYet
}

fn main() {}

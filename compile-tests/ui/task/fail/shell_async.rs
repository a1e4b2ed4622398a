use flow_runtime::prelude::*;
use flow_runtime::shell::ShellCommand;

#[task(shell)]
async fn greet() -> ShellCommand {
    ShellCommand::bash("echo hi")
}

#[task]
fn shout(line: String) -> String {
    line
}

#[dag]
fn greeting() {
    shout(greet());
}

fn main() {}

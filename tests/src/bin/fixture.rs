//! The test fixtures' pipeline binary.

use flow_tests as _;

fn main() -> std::process::ExitCode {
    flow_runtime::cli::main()
}

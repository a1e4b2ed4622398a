//! The examples' pipeline binary: every DAG of the `flow_examples` library, behind flow's CLI.

// DAGs register themselves when their crate is linked; this reference links it.
use flow_examples as _;

fn main() -> std::process::ExitCode {
    flow_runtime::cli::main()
}

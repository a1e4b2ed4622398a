//! Tasks and DAGs declared inside functions, behind `cfg`, and with a re-exported runtime.

use flow_runtime::prelude::*;

mod renamed {
    pub use flow_runtime as rt;
}

#[task(crate = "crate::renamed::rt")]
fn through_reexport() -> u8 {
    1
}

#[dag(
    crate = "crate::renamed::rt",
    schedule = "@hourly",
    default_args(retries = 1)
)]
fn reexported() {
    through_reexport();
}

#[task]
#[cfg(any())]
fn compiled_out(text: NotEvenAType) -> u8 {
    0
}

#[cfg(all())]
#[task]
fn compiled_in() -> u8 {
    2
}

fn main() {
    #[task]
    fn local(x: u8) -> u8 {
        x * 2
    }

    #[dag]
    fn local_dag() {
        local(compiled_in());
    }

    let run = local_dag().unwrap().test().unwrap();
    assert_eq!(run.output::<u8>("local").unwrap(), 4);
    assert_eq!(
        reexported()
            .unwrap()
            .task("through_reexport")
            .unwrap()
            .retries(),
        1
    );
}

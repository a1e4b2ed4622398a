//! Task options, the `crate` option, and tasks used through module paths.

use std::time::Duration;

use flow_runtime::prelude::*;

mod steps {
    pub mod prep {
        use flow_runtime::prelude::*;

        /// Cleans text.
        #[task(
            task_id = "clean.text-v2",
            retries = 3,
            retry_delay = "1m 30s",
            owner = "data"
        )]
        pub fn clean(text: String) -> String {
            text.trim().to_string()
        }
    }

    #[flow_runtime::task(retry_delay = "250ms")]
    pub(crate) fn measure(text: String) -> usize {
        text.len()
    }
}

mod renamed {
    pub use flow_runtime as rt;
}

#[task(crate = "crate::renamed::rt", retries = 0)]
fn through_reexport() -> u8 {
    1
}

#[task(crate = "::flow_runtime", retry_delay = "1us")]
fn through_root() -> u8 {
    2
}

use steps::prep::clean;

#[dag]
fn paths() {
    let text = steps::prep::clean("  padded  ");
    steps::measure(text);
    let again = clean("x");
    crate::steps::measure(again);
    through_reexport();
    through_root();
}

fn main() {
    let spec = steps::prep::clean::spec();
    assert_eq!(spec.name().as_str(), "clean.text-v2");
    assert_eq!(spec.options().retries, Some(3));
    assert_eq!(spec.options().retry_delay, Some(Duration::from_secs(90)));
    assert_eq!(spec.options().owner.as_deref(), Some("data"));
    assert_eq!(spec.documentation(), Some("Cleans text."));
    assert_eq!(
        steps::measure::spec().options().retry_delay,
        Some(Duration::from_millis(250))
    );
    assert_eq!(through_reexport::spec().options().retries, Some(0));
    assert_eq!(
        through_root::spec().options().retry_delay,
        Some(Duration::from_micros(1))
    );
    assert_eq!(clean("  a ".into()), "a");

    let dag = paths().unwrap();
    let ids: Vec<&str> = dag.tasks().iter().map(|t| t.id().as_str()).collect();
    assert_eq!(
        ids,
        [
            "clean.text-v2",
            "measure",
            "clean.text-v2__1",
            "measure__1",
            "through_reexport",
            "through_root"
        ]
    );
    let run = dag.test().unwrap();
    assert_eq!(run.output::<usize>("measure").unwrap(), 6);
    assert_eq!(run.output::<usize>("measure__1").unwrap(), 1);
}

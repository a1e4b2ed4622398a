//! Setup and teardown tasks, and the options that look at the run before.

use flow_runtime::prelude::*;
use flow_runtime::{TaskRole, TriggerRule};

#[task(setup)]
fn create() -> String {
    "resource".into()
}

#[task(depends_on_past = true)]
fn work(resource: String) -> usize {
    resource.len()
}

#[task(teardown)]
fn release(resource: String) {
    drop(resource);
}

#[task(teardown, on_failure_fail_dagrun = true)]
fn release_strictly() {}

#[task(wait_for_downstream = true)]
fn watched() {}

#[dag(default_args(depends_on_past = false))]
fn scoped() {
    let resource = create();
    work(resource) >> release(resource);
    resource >> release_strictly() >> watched();
}

fn main() {
    assert_eq!(create::spec().role(), TaskRole::Setup);
    assert_eq!(
        release::spec().role(),
        TaskRole::Teardown { on_failure_fail_dagrun: false }
    );
    assert_eq!(
        release_strictly::spec().role(),
        TaskRole::Teardown { on_failure_fail_dagrun: true }
    );
    let dag = scoped().unwrap();
    assert_eq!(
        dag.task("release").unwrap().trigger_rule(),
        TriggerRule::AllDoneSetupSuccess
    );
    assert!(dag.task("work").unwrap().depends_on_past());
    assert!(dag.task("watched").unwrap().depends_on_past());
    assert!(dag.task("watched").unwrap().wait_for_downstream());
    assert!(!dag.task("create").unwrap().depends_on_past());
}

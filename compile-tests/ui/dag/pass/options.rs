//! Every DAG option, and the defaults.

use std::time::Duration;

use flow_runtime::prelude::*;
use flow_runtime::registry::Registry;

#[task]
fn step() {}

#[task(retries = 5)]
fn own_retries() {}

/// Trains the model
/// every night.
///
/// Not part of the description.
#[dag(
    id = "ml_training.v2",
    schedule = "0 2 * * *",
    start_date = "2025-01-01",
    catchup = true,
    tags = ["ml", "training"],
    default_args(owner = "ml-team", retries = 2, retry_delay = "5m")
)]
fn full() {
    step();
    own_retries();
}

/// Ignored: an explicit description wins.
#[dag(description = "Explicit.", schedule = None, tags = [])]
fn manual() {
    step();
}

#[dag(schedule = "@once", start_date = "2025-06-01T02:00:00+02:00")]
fn once() {
    step();
}

#[dag(schedule = "30 0 2 * * MON-FRI", default_args())]
fn with_seconds() {
    step();
}

#[dag(schedule = "@quarterly")]
fn quarterly() {
    step();
}

#[dag]
fn defaults() {
    step();
}

fn main() {
    let dag = full().unwrap();
    assert_eq!(dag.id().as_str(), "ml_training.v2");
    assert_eq!(dag.description(), Some("Trains the model every night."));
    assert_eq!(dag.schedule().to_string(), "0 2 * * *");
    assert_eq!(
        dag.start_date().unwrap().to_rfc3339(),
        "2025-01-01T00:00:00+00:00"
    );
    assert!(dag.catchup());
    assert_eq!(dag.tags(), ["ml", "training"]);
    let step = dag.task("step").unwrap();
    assert_eq!((step.retries(), step.owner()), (2, "ml-team"));
    assert_eq!(step.retry_delay(), Duration::from_secs(300));
    assert_eq!(dag.task("own_retries").unwrap().retries(), 5);

    let dag = manual().unwrap();
    assert_eq!(dag.id().as_str(), "manual");
    assert_eq!(dag.description(), Some("Explicit."));
    assert_eq!(dag.schedule().to_string(), "None");
    assert!(dag.tags().is_empty());

    assert_eq!(once().unwrap().schedule().to_string(), "@once");
    assert_eq!(
        once().unwrap().start_date().unwrap().to_rfc3339(),
        "2025-06-01T00:00:00+00:00"
    );
    assert_eq!(
        with_seconds().unwrap().schedule().to_string(),
        "30 0 2 * * MON-FRI"
    );
    assert_eq!(quarterly().unwrap().schedule().to_string(), "@quarterly");
    let dag = defaults().unwrap();
    assert_eq!((dag.description(), dag.catchup()), (None, false));

    // Every DAG registered itself.
    let registry = Registry::load().unwrap();
    let ids: Vec<&str> = registry.ids().collect();
    assert_eq!(
        ids,
        [
            "defaults",
            "manual",
            "ml_training.v2",
            "once",
            "quarterly",
            "with_seconds"
        ]
    );
}

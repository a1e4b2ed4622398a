//! Email options on tasks and in `default_args`, with Airflow's defaults.

use flow_runtime::prelude::*;

#[task(
    email = ["ops@example.com", "Oncall <oncall@example.com>"],
    email_on_failure = true,
    email_on_retry = false
)]
fn load() {}

#[task(email = [])]
fn silent() {}

#[task]
fn inherits() {}

#[dag(default_args(email = ["team@example.com"], email_on_failure = false))]
fn alerts() {
    load();
    silent();
    inherits();
}

fn main() {
    let options = load::spec().options().clone();
    assert_eq!(
        options.email,
        Some(vec![
            "ops@example.com".to_string(),
            "Oncall <oncall@example.com>".to_string()
        ])
    );
    assert_eq!(options.email_on_failure, Some(true));
    assert_eq!(options.email_on_retry, Some(false));
    assert_eq!(silent::spec().options().email, Some(Vec::new()));

    let dag = alerts().unwrap();
    let task = |id: &str| dag.task(id).unwrap();
    assert!(task("load").emails_on(TaskState::Failed));
    assert!(!task("load").emails_on(TaskState::UpForRetry));
    assert!(task("silent").email().is_empty());
    assert!(!task("silent").emails_on(TaskState::Failed));
    assert_eq!(task("inherits").email(), ["team@example.com"]);
    assert!(!task("inherits").emails_on(TaskState::Failed));
    assert!(task("inherits").emails_on(TaskState::UpForRetry));
    assert!(!task("inherits").emails_on(TaskState::Success));
}

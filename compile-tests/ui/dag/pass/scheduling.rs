//! The scheduling options and params of `#[dag]`, read back from the built DAG.

use std::time::Duration;

use flow_runtime::prelude::*;
use serde_json::json;

#[derive(Serialize, Deserialize)]
struct Window {
    days: u32,
}

#[task]
fn train() {}

#[dag(
    schedule = "0 2 * * *",
    timezone = "Europe/Amsterdam",
    start_date = "2025-01-01",
    end_date = "2025-12-31",
    catchup = true,
    max_active_runs = 1,
    dagrun_timeout = "2h",
    params(
        /// The minimum accuracy to deploy.
        threshold: f64 = 0.8,
        models_dir: String = "models",
        epochs: u32,
        tables: Vec<String> = vec!["orders".to_string()],
        window: Window = Window { days: 7 },
        limit: Option<u64>,
        r#type: String = String::from("full"),
    )
)]
fn training() {
    train();
}

#[dag(params())]
fn defaults() {
    train();
}

fn main() {
    let dag = training().unwrap();
    assert_eq!(dag.timezone().name(), "Europe/Amsterdam");
    // Days are midnight in the DAG's time zone (UTC+1 in winter).
    assert_eq!(
        dag.start_date().unwrap().to_rfc3339(),
        "2024-12-31T23:00:00+00:00"
    );
    assert_eq!(
        dag.end_date().unwrap().to_rfc3339(),
        "2025-12-30T23:00:00+00:00"
    );
    assert!(dag.catchup());
    assert_eq!(dag.max_active_runs(), 1);
    assert_eq!(dag.dagrun_timeout(), Some(Duration::from_secs(2 * 3600)));
    let restriction = dag.restriction();
    assert_eq!(
        (restriction.start_date, restriction.end_date, restriction.catchup),
        (dag.start_date(), dag.end_date(), true)
    );
    assert_eq!(dag.timetable().timezone(), dag.timezone());

    let names: Vec<&str> = dag.params().iter().map(|p| p.name()).collect();
    assert_eq!(
        names,
        ["threshold", "models_dir", "epochs", "tables", "window", "limit", "type"]
    );
    assert_eq!(
        dag.params().describe()[..3],
        [
            "threshold: f64 = 0.8  -- The minimum accuracy to deploy.",
            "models_dir: String = \"models\"",
            "epochs: u32 (required)",
        ]
    );
    let values = dag.params().resolve(Some(&json!({"epochs": 3}))).unwrap();
    assert_eq!(
        serde_json::Value::Object(values),
        json!({
            "threshold": 0.8,
            "models_dir": "models",
            "epochs": 3,
            "tables": ["orders"],
            "window": {"days": 7},
            "limit": null,
            "type": "full",
        })
    );
    let err = dag.params().resolve(None).unwrap_err();
    assert!(err.to_string().starts_with("param `epochs` (u32) has no default"));

    let dag = defaults().unwrap();
    assert_eq!(dag.timezone().name(), "UTC");
    assert_eq!(dag.end_date(), None);
    assert_eq!(dag.max_active_runs(), 16);
    assert_eq!(dag.dagrun_timeout(), None);
    assert!(dag.params().is_empty());
}

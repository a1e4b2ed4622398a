//! The README's main command, end to end: the ML pipeline through the examples' binary.

use assert_cmd::Command;
use assert_cmd::assert::Assert;
use predicates::prelude::*;
use predicates::str::contains;

fn examples(work_dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flow-examples"));
    cmd.env("FLOW_EXAMPLES_DIR", work_dir)
        .env("FLOW_HOME", work_dir.join("home"))
        .env("FLOW_LOG", "info")
        // Plain log lines, so the assertions can read `key=value`.
        .env("NO_COLOR", "1");
    cmd
}

/// What a finished command printed: its stdout and its stderr.
fn printed(assert: &Assert) -> (String, String) {
    let output = assert.get_output();
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The state column of `task`'s line in the run summary.
fn state(stdout: &str, task: &str) -> String {
    let row = stdout
        .lines()
        .find(|l| l.starts_with(&format!("{task} ")))
        .unwrap_or_else(|| panic!("no line for {task} in:\n{stdout}"));
    row.split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

#[test]
fn the_ml_pipeline_trains_evaluates_and_branches_to_production() {
    let dir = tempfile::tempdir().unwrap();
    let output = examples(dir.path())
        .args([
            "dags",
            "test",
            "ml_training_pipeline",
            "--date",
            "2025-01-01",
        ])
        .assert()
        .success();
    let (stdout, stderr) = printed(&output);
    for task in [
        "land_raw_data",
        "load_data",
        "train_model",
        "evaluate_model",
        "choose_deployment",
        "deploy_production",
    ] {
        assert_eq!(state(&stdout, task), "success", "{stdout}");
    }
    assert_eq!(state(&stdout, "deploy_staging"), "skipped", "{stdout}");

    // The real digits data landed as CSV, then as Parquet.
    let raw = dir.path().join("raw/digits.csv");
    assert_eq!(
        std::fs::read_to_string(&raw).unwrap().lines().count(),
        1 + 1797
    );
    assert!(stderr.contains("rows=1797"), "{stderr}");

    // The output shows the accuracy, above the production bar, and where the model went.
    let accuracy: f64 = stderr
        .split("accuracy=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no accuracy in:\n{stderr}"));
    assert!(accuracy > 0.9 && accuracy <= 1.0, "{stderr}");
    let model = dir.path().join("models/production/model.bin");
    assert!(model.is_file());
    assert!(
        stderr.contains("model deployed to production")
            && stderr.contains(&*model.to_string_lossy()),
        "{stderr}"
    );
    assert!(!dir.path().join("models/staging").exists());
}

#[test]
fn the_ml_pipeline_fails_below_the_threshold_and_deploys_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let output = examples(dir.path())
        .args([
            "dags",
            "test",
            "ml_training_pipeline",
            "--conf",
            r#"{"threshold": 0.999}"#,
        ])
        .assert()
        .code(1);
    let (stdout, stderr) = printed(&output);
    assert_eq!(state(&stdout, "evaluate_model"), "failed", "{stdout}");
    assert!(
        format!("{stdout}{stderr}").contains("is below the threshold 0.999"),
        "{stdout}{stderr}"
    );
    assert!(!dir.path().join("models").exists());
}

#[test]
fn every_example_dag_is_listed_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    examples(dir.path())
        .args(["dags", "list"])
        .assert()
        .success()
        .stdout(
            contains("ml_training_pipeline")
                .and(contains("classic_etl"))
                .and(contains("config_driven")),
        );
    for dag in ["classic_etl", "config_driven"] {
        examples(dir.path())
            .args(["dags", "test", dag])
            .assert()
            .success();
    }
    // The sensor waits for the export, then the shell task counts its two data lines.
    let output = examples(dir.path())
        .args(["dags", "test", "landing", "--date", "2025-03-01"])
        .assert()
        .success();
    let (stdout, _) = printed(&output);
    for task in ["export", "wait_for_export", "count_lines"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("{task} ")) && l.contains("success")),
            "{stdout}"
        );
    }
}

#[test]
fn the_sweep_evaluates_one_mapped_instance_per_setting_and_picks_the_best() {
    let dir = tempfile::tempdir().unwrap();
    let output = examples(dir.path())
        .args([
            "dags",
            "test",
            "ml_hyperparameter_sweep",
            "--date",
            "2025-01-01",
        ])
        .assert()
        .success();
    let (stdout, stderr) = printed(&output);
    // 2 tree counts x 3 depths, each its own task instance.
    assert!(
        stdout.contains("evaluate_setting [6 mapped]") && stdout.contains("6 success"),
        "{stdout}"
    );
    for i in 0..6 {
        assert!(
            stdout.contains(&format!("evaluate_setting[{i}]")),
            "{stdout}"
        );
    }
    assert_eq!(state(&stdout, "pick_best"), "success", "{stdout}");
    assert!(
        stderr.contains("settings=6") && stderr.contains("best setting"),
        "{stderr}"
    );
}

#[test]
fn the_ml_pipeline_lands_its_raw_data_at_an_s3_url() {
    let server = flow_tests::moto::MotoServer::start(env!("CARGO_TARGET_TMPDIR"));
    let dir = tempfile::tempdir().unwrap();
    let raw_dir = format!("s3://{}/raw", flow_tests::moto::BUCKET);
    let conf = format!(r#"{{"raw_dir": "{raw_dir}"}}"#);
    let run_on_s3 = || {
        examples(dir.path())
            .envs(server.env("runs"))
            .args(["dags", "test", "ml_training_pipeline", "--conf", &conf])
            .assert()
            .success()
    };
    let (stdout, stderr) = printed(&run_on_s3());
    for task in ["land_raw_data", "load_data", "evaluate_model"] {
        assert_eq!(state(&stdout, task), "success", "{stdout}");
    }
    // The CSV went to the bucket, not to a local directory, and was read from there.
    assert_eq!(server.keys("raw/"), ["raw/digits.csv"]);
    assert!(!dir.path().join("raw").exists());
    assert!(
        stderr.contains(&format!("path={raw_dir}/digits.csv")) && stderr.contains("rows=1797"),
        "{stderr}"
    );
    // The run's model artifact went to the configured S3 store too.
    assert_eq!(
        server
            .keys("runs/ml_training_pipeline/")
            .iter()
            .filter(|k| k.ends_with("/artifacts/models/random_forest.bin"))
            .count(),
        1
    );

    // A second run finds the landed file and keeps it.
    let (_, stderr) = printed(&run_on_s3());
    assert!(stderr.contains("raw data already landed"), "{stderr}");
}

#[test]
fn the_grouped_etl_runs_its_task_groups_under_prefixed_ids() {
    let dir = tempfile::tempdir().unwrap();
    let output = examples(dir.path())
        .args(["dags", "test", "grouped_etl", "--date", "2025-01-01"])
        .assert()
        .success();
    let (stdout, stderr) = printed(&output);
    for task in [
        "ingest.extract_orders",
        "ingest.quality.check_rows",
        "ingest__1.drop_cancelled",
        "ingest__1.quality.count_rows",
        "merge",
        "report.publish",
        "report.top_region",
        "split_by_size",
        "count_large",
        "notify_team",
    ] {
        assert_eq!(state(&stdout, task), "success", "{stdout}");
    }
    assert!(stderr.contains("revenue report published"), "{stderr}");
    // `tasks test` reads the recorded value of `split_by_size` and gives each consumer its
    // field: 3 large orders (10.00 or more), 3 small ones.
    let output = |task: &str| {
        let out = examples(dir.path())
            .args(["tasks", "test", "grouped_etl", task])
            .assert()
            .success();
        let (stdout, _) = printed(&out);
        stdout.lines().last().unwrap_or_default().to_string()
    };
    assert_eq!(output("count_large"), "3");
    assert_eq!(output("count_small"), "3");
    // The run is recorded under the same ids, and the group's output reached its file.
    let states = examples(dir.path())
        .args(["tasks", "states", "grouped_etl", "latest"])
        .assert()
        .success();
    let (states, _) = printed(&states);
    assert!(
        states.contains("ingest__1.quality.check_rows") && states.contains("report.publish"),
        "{states}"
    );
    let revenue = std::fs::read_dir(dir.path().join("grouped_etl"))
        .unwrap()
        .map(|run| run.unwrap().path().join("revenue.txt"))
        .find(|file| file.is_file())
        .expect("report.publish wrote revenue.txt");
    assert_eq!(
        std::fs::read_to_string(revenue).unwrap(),
        "apac 4100\neu 2120\nus 3500\n"
    );
}

#[test]
fn the_sales_report_is_scheduled_on_the_asset_its_producer_updates() {
    use flow_runtime::store::{AssetStore, SqliteStore};
    let dir = tempfile::tempdir().unwrap();
    examples(dir.path())
        .args(["dags", "list"])
        .assert()
        .success()
        .stdout(contains("sales_report").and(contains("[file://flow-examples/sales/daily.csv]")));
    examples(dir.path())
        .args(["dags", "test", "publish_sales", "--date", "2025-03-01"])
        .assert()
        .success();
    let store = SqliteStore::open(&dir.path().join("home").join("flow.db")).unwrap();
    let events = store
        .asset_events("file://flow-examples/sales/daily.csv", 0)
        .unwrap();
    assert_eq!(events.len(), 1, "one update by the publish task");
    assert_eq!(events[0].source.task_id.as_str(), "publish");
    let output = examples(dir.path())
        .args(["dags", "test", "sales_report"])
        .assert()
        .success();
    let (stdout, _) = printed(&output);
    assert_eq!(state(&stdout, "total"), "success", "{stdout}");
}

#[test]
fn the_containerized_example_counts_the_data_set_in_a_container() {
    if !flow_tests::docker::docker() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = format!(r#"{{"image": "{}"}}"#, flow_tests::TEST_IMAGE);
    let output = examples(dir.path())
        .args(["dags", "test", "containerized_count", "--conf", &conf])
        .assert()
        .success();
    let (stdout, stderr) = printed(&output);
    for task in ["write_labels", "count_in_container", "check_counts"] {
        assert_eq!(state(&stdout, task), "success", "{stdout}{stderr}");
    }
    assert!(stderr.contains("rows=1797 labels=10"), "{stderr}");
    // The container's own lines are the task's log lines.
    assert!(stderr.contains("counting for"), "{stderr}");
}

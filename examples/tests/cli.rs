//! The README's main command, end to end: the ML pipeline through the examples' binary.

use assert_cmd::Command;
use predicates::prelude::*;
use predicates::str::contains;

fn examples(work_dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flow-examples"));
    cmd.env("FLOW_EXAMPLES_DIR", work_dir)
        .env("FLOW_HOME", work_dir.join("home"))
        .env("FLOW_LOG", "info");
    cmd
}

#[test]
fn the_ml_pipeline_runs_its_four_tasks_and_deploys_the_model() {
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
        .success()
        .stderr(contains("model evaluated").and(contains("model deployed to production")));
    let stdout = String::from_utf8_lossy(&output.get_output().stdout).to_string();
    for task in ["load_data", "train_model", "evaluate_model", "deploy_model"] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{task} ")))
            .unwrap_or_else(|| panic!("{stdout}"));
        assert!(row.contains("success"), "{row}");
    }
    assert!(dir.path().join("models/production/model.txt").is_file());
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
}

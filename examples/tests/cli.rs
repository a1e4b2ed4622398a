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
        .success()
        .stderr(contains("model evaluated").and(contains("model deployed to production")));
    let stdout = String::from_utf8_lossy(&output.get_output().stdout).to_string();
    let state = |task: &str| {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{task} ")))
            .unwrap_or_else(|| panic!("{stdout}"));
        row.split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string()
    };
    for task in [
        "load_data",
        "train_model",
        "evaluate_model",
        "choose_deployment",
        "deploy_production",
    ] {
        assert_eq!(state(task), "success", "{stdout}");
    }
    assert_eq!(state("deploy_staging"), "skipped", "{stdout}");
    assert!(dir.path().join("models/production/model.txt").is_file());
    assert!(!dir.path().join("models/staging").exists());
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
    let stdout = String::from_utf8_lossy(&output.get_output().stdout).to_string();
    for task in ["export", "wait_for_export", "count_lines"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("{task} ")) && l.contains("success")),
            "{stdout}"
        );
    }
}

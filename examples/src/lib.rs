//! Example pipelines for flow, runnable through the `flow-examples` binary:
//!
//! ```text
//! cargo run -p flow-examples -- dags list
//! cargo run -p flow-examples -- dags test ml_training_pipeline
//! ```
//!
//! - [`ml_training`]: the TaskFlow-style ML training pipeline (data flows by argument): a
//!   random forest trained on the digits data set, landed as CSV and kept as Parquet.
//! - [`ml_sweep`]: a hyper-parameter sweep, one mapped task instance per setting, then
//!   the best setting picked from their results.
//! - [`classic_etl`]: the classic style: tasks ordered with `>>`, data moved by explicit
//!   XCom push and pull.
//! - [`config_driven`]: a DAG generated at run time from configuration with the builder API.
//! - [`sensors`]: a sensor waiting for a file another task lands, then a shell task.
//! - [`grouped_etl`]: task groups (Airflow's `@task_group`): one ingestion group per
//!   source with a nested quality group, a reporting group ordered as a whole, and a
//!   staging directory made by a setup task and removed by its teardown.
//! - [`data_aware`]: data-aware scheduling: a DAG scheduled on the asset another DAG's
//!   task updates.
//! - [`containerized`]: a step run in a container (Docker), reading what the task before
//!   it wrote through a read-only mount.

pub mod classic_etl;
pub mod config_driven;
pub mod containerized;
pub mod data_aware;
pub mod grouped_etl;
pub mod ml_sweep;
pub mod ml_training;
pub mod sensors;

use std::path::{Path, PathBuf};

use flow_runtime::TaskContext;

/// Where example tasks write their files: `$FLOW_EXAMPLES_DIR`, or `flow-examples` in the
/// system's temporary directory.
pub fn work_dir() -> PathBuf {
    std::env::var_os("FLOW_EXAMPLES_DIR")
        .map_or_else(|| std::env::temp_dir().join("flow-examples"), PathBuf::from)
}

/// A directory of its own for one DAG run, created if needed.
pub fn run_dir(ctx: &TaskContext) -> std::io::Result<PathBuf> {
    run_dir_under(&work_dir().join(ctx.dag_id().as_str()), ctx)
}

/// A directory of its own for one DAG run under `base`, named after the run, created if
/// needed.
pub fn run_dir_under(base: &Path, ctx: &TaskContext) -> std::io::Result<PathBuf> {
    let safe_run: String = ctx
        .run_id()
        .as_str()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let dir = base.join(safe_run);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

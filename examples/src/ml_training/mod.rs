//! The ML training pipeline, TaskFlow style, on real data:
//!
//! ```text
//! land_raw_data -> load_data -> train_model -> evaluate_model -> choose_deployment
//!                                                         -> deploy_production | deploy_staging
//! ```
//!
//! `land_raw_data` lands smartcore's digits data set (1,797 handwritten digits, 8x8
//! pixels) as CSV in the raw directory, or at an S3 URL through the object store;
//! `load_data` validates it and keeps a Parquet copy; `train_model` fits a seeded random
//! forest on 80% of the rows; `evaluate_model` scores it on the other 20% and fails below
//! the `threshold` param; the branch deploys the model to production above 0.9, else to
//! staging, under the `models_dir` param. Everything runs offline: the data set is
//! compiled into smartcore.

pub mod data;
pub mod model;

use std::path::PathBuf;

use anyhow::{Context as _, ensure};
use chrono::{DateTime, Utc};
use flow_runtime::prelude::*;

use crate::{run_dir_under, work_dir};
use data::{digits_csv, read_csv, read_parquet, write_parquet, write_whole};
use model::{accuracy, load_model, save_model, split, train};

/// The raw file's name under the raw directory or URL.
pub const RAW_FILE: &str = "digits.csv";
/// The artifact key under which `train_model` keeps the run's model.
pub const MODEL_ARTIFACT: &str = "models/random_forest.bin";
/// The accuracy above which a model goes to production rather than staging.
pub const PRODUCTION_THRESHOLD: f64 = 0.9;

/// The validated data set, as Parquet.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Dataset {
    /// The Parquet file.
    pub parquet: PathBuf,
    /// Its number of rows.
    pub rows: usize,
    /// Its number of feature columns.
    pub features: usize,
}

/// A trained model, handed to the tasks downstream.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TrainedModel {
    /// The model, as [`model::save_model`] writes it.
    pub bytes: Vec<u8>,
    /// Rows it was trained on.
    pub trained_on: usize,
}

/// How well a model did on the held-out rows.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Metrics {
    /// Share of held-out rows classified correctly.
    pub accuracy: f64,
    /// Held-out rows.
    pub evaluated_on: usize,
}

/// The accuracy `evaluate_model` pushes as the XCom `accuracy`, with when it measured it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct AccuracyRecord {
    /// Share of held-out rows classified correctly.
    pub accuracy: f64,
    /// When it was measured.
    pub measured_at: DateTime<Utc>,
}

/// Lands the raw data: writes the digits data set as CSV under the `raw_dir` param (a
/// local directory, or a URL such as `s3://bucket/raw` reached through the object store),
/// unless the file is already there, and returns where it is.
#[task(retries = 2, retry_delay = "5m")]
pub fn land_raw_data(ctx: &TaskContext) -> anyhow::Result<ObjectPath> {
    let raw_dir: String = ctx.param("raw_dir")?;
    let csv = ctx.object_path(&raw_dir)?.join(RAW_FILE)?;
    if csv.exists()? {
        tracing::info!(path = %csv, "raw data already landed");
    } else {
        let (text, rows) = digits_csv(usize::MAX);
        csv.write(text)?;
        tracing::info!(rows, path = %csv, "raw data landed");
    }
    Ok(csv)
}

/// Reads the raw CSV, validates it (at least the `min_rows` param's rows, no column more
/// than 5% empty), writes it as Parquet in the run's directory under the `data_dir` param
/// and pushes the row count as the XCom `row_count`.
#[task(retries = 2, retry_delay = "5m")]
pub fn load_data(ctx: &TaskContext, raw_csv: ObjectPath) -> anyhow::Result<Dataset> {
    let min_rows: usize = ctx.param("min_rows")?;
    let table = read_csv(&raw_csv.read()?, raw_csv.url(), min_rows)?;
    let parquet = run_dir_under(&local_dir(ctx, "data_dir")?, ctx)?.join("digits.parquet");
    write_parquet(&table, &parquet)?;
    let rows = table.rows();
    ctx.xcom_push("row_count", &rows)?;
    tracing::info!(rows, path = %parquet.display(), "data loaded");
    Ok(Dataset {
        parquet,
        rows,
        features: table.names.len(),
    })
}

/// Trains a random forest on the seeded training split and hands the model on; logs
/// the row count `load_data` pushed.
#[task]
pub fn train_model(ctx: &TaskContext, data: Dataset) -> anyhow::Result<TrainedModel> {
    let loaded: usize = ctx.xcom_pull("load_data", "row_count")?;
    let table = read_parquet(&data.parquet)?;
    let (train_rows, _) = split(table.rows());
    let forest = train(&table, &train_rows)?;
    tracing::info!(
        rows_loaded = loaded,
        trained_on = train_rows.len(),
        trees = model::TREES,
        "model trained"
    );
    let bytes = save_model(&forest)?;
    // The run's copy of the model, kept by the object store with the run's other
    // artifacts (and deleted with it by `runs delete`).
    ctx.artifacts().put(MODEL_ARTIFACT, bytes.clone())?;
    tracing::info!(
        artifact = MODEL_ARTIFACT,
        bytes = bytes.len(),
        "model saved as an artifact"
    );
    Ok(TrainedModel {
        bytes,
        trained_on: train_rows.len(),
    })
}

/// Scores the model on the held-out split and pushes the accuracy with a timestamp as
/// the XCom `accuracy`; fails when it is below the `threshold` param. Training and
/// scoring are deterministic, so a retry would only repeat the verdict: no retries.
#[task(retries = 0)]
pub async fn evaluate_model(
    ctx: &TaskContext,
    model: TrainedModel,
    data: Dataset,
) -> anyhow::Result<Metrics> {
    let threshold: f64 = ctx.param("threshold")?;
    let forest = load_model(&model.bytes)?;
    let table = read_parquet(&data.parquet)?;
    let (_, held_out) = split(table.rows());
    let accuracy = accuracy(&forest, &table, &held_out)?;
    ctx.xcom_push(
        "accuracy",
        &AccuracyRecord {
            accuracy,
            measured_at: Utc::now(),
        },
    )?;
    tracing::info!(
        accuracy = %format_args!("{accuracy:.4}"),
        held_out = held_out.len(),
        "model evaluated"
    );
    ensure!(
        accuracy >= threshold,
        "accuracy {accuracy:.4} is below the threshold {threshold}; the model is not deployed"
    );
    Ok(Metrics {
        accuracy,
        evaluated_on: held_out.len(),
    })
}

/// Follows `deploy_production` when accuracy is above [`PRODUCTION_THRESHOLD`], else
/// `deploy_staging`; the other one is skipped.
#[task(branch)]
pub fn choose_deployment(metrics: Metrics) -> Branch {
    if metrics.accuracy > PRODUCTION_THRESHOLD {
        Branch::to("deploy_production")
    } else {
        Branch::to("deploy_staging")
    }
}

/// Writes the model to `production/model.bin` under the `models_dir` param.
#[task]
pub fn deploy_production(ctx: &TaskContext, model: TrainedModel) -> anyhow::Result<PathBuf> {
    deploy(ctx, &model, "production")
}

/// Writes the model to `staging/model.bin` under the `models_dir` param.
#[task]
pub fn deploy_staging(ctx: &TaskContext, model: TrainedModel) -> anyhow::Result<PathBuf> {
    deploy(ctx, &model, "staging")
}

fn deploy(ctx: &TaskContext, model: &TrainedModel, stage: &str) -> anyhow::Result<PathBuf> {
    let dir = local_dir(ctx, "models_dir")?.join(stage);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the models directory {}", dir.display()))?;
    let target = dir.join("model.bin");
    write_whole(&target, &model.bytes)?;
    tracing::info!(path = %target.display(), "model deployed to {stage}");
    Ok(target)
}

/// The directory a path param names; URLs are refused: the Parquet copy and the deployed
/// models are files on this machine (only the raw data may live in an object store).
fn local_dir(ctx: &TaskContext, param: &str) -> anyhow::Result<PathBuf> {
    let dir: String = ctx.param(param)?;
    ensure!(
        !dir.contains("://"),
        "param `{param}` = `{dir}` is a URL; this pipeline keeps its Parquet copy and models in local directories, so give a path"
    );
    ensure!(
        !dir.trim().is_empty(),
        "param `{param}` is empty; give a directory"
    );
    Ok(PathBuf::from(dir))
}

/// `name` under the examples' work directory, as a param default.
fn default_dir(name: &str) -> String {
    work_dir().join(name).to_string_lossy().into_owned()
}

/// Trains a model every night at 02:00 on the landed digits data and deploys it to
/// production or staging.
#[dag(
    id = "ml_training_pipeline",
    schedule = "0 2 * * *",
    start_date = "2025-01-01",
    catchup = false,
    tags = ["ml", "training"],
    default_args(owner = "ml-team", retries = 2, retry_delay = "5m"),
    params(
        /// Where the raw CSV lands and is read from: a directory, or a URL such as
        /// `s3://bucket/raw` (the object store's settings: `AWS_ENDPOINT_URL`, ...).
        raw_dir: String = default_dir("raw"),
        /// Where deployed models go, under `production/` or `staging/`.
        models_dir: String = default_dir("models"),
        /// The accuracy a model needs to be deployed at all.
        threshold: f64 = 0.8,
        /// Where each run keeps its Parquet copy of the data, in a directory of its own.
        data_dir: String = default_dir("ml_training_pipeline"),
        /// The fewest rows the raw data may have.
        min_rows: usize = 1000,
    ),
)]
pub fn ml_training_pipeline() {
    let raw = land_raw_data();
    let data = load_data(raw);
    let model = train_model(data);
    let metrics = evaluate_model(model, data);
    choose_deployment(metrics) >> [deploy_production(model), deploy_staging(model)];
}

#[cfg(test)]
mod tests;

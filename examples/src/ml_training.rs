//! The ML training pipeline, TaskFlow style: `load_data -> train_model -> evaluate_model ->
//! choose_deployment -> deploy_production | deploy_staging`, with the data set and the
//! model passed as typed values between tasks and a branch on the model's accuracy.
//!
//! The data are synthetic (two noisy clusters, generated from a fixed seed) and the model
//! is a logistic regression fitted by gradient descent, so the pipeline runs anywhere in
//! well under a second while doing every step for real: files are written, read back,
//! validated, trained on, evaluated and copied.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail, ensure};
use flow_runtime::prelude::*;

use crate::{run_dir, work_dir};

/// A data set on disk.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Dataset {
    /// The CSV file (`x1,x2,label`).
    pub csv: PathBuf,
    /// Its number of data rows.
    pub rows: usize,
}

/// A trained model on disk.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ModelRef {
    /// The model file (weights as text).
    pub path: PathBuf,
    /// Rows it was trained on.
    pub trained_on: usize,
}

/// How well a model did on held-out data.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Metrics {
    /// Share of held-out rows classified correctly.
    pub accuracy: f64,
    /// Held-out rows.
    pub evaluated_on: usize,
}

/// The accuracy a model needs to be deployed at all.
pub const THRESHOLD: f64 = 0.8;
/// The accuracy above which a model goes to production rather than staging.
pub const PRODUCTION_THRESHOLD: f64 = 0.9;
const ROWS: usize = 1_000;
const MIN_ROWS: usize = 100;

/// Lands the raw data as CSV in the run's directory, validates it and pushes the row count.
#[task(retries = 2, retry_delay = "5m")]
pub fn load_data(ctx: &TaskContext) -> anyhow::Result<Dataset> {
    let csv = run_dir(ctx)?.join("raw.csv");
    write_synthetic_csv(&csv, ROWS, 42)?;
    let rows = read_csv(&csv)?.len();
    ensure!(
        rows >= MIN_ROWS,
        "{} has {rows} rows; at least {MIN_ROWS} are needed",
        csv.display()
    );
    ctx.xcom_push("row_count", &rows)?;
    tracing::info!(rows, path = %csv.display(), "data loaded");
    Ok(Dataset { csv, rows })
}

/// Fits a logistic regression on the first 80% of the rows and saves it next to the data.
#[task]
pub fn train_model(data: Dataset) -> anyhow::Result<ModelRef> {
    let samples = read_csv(&data.csv)?;
    let (train, _) = split(&samples);
    let model = fit(train, 300, 0.5);
    let path = data.csv.with_file_name("model.txt");
    std::fs::write(&path, model.to_text())
        .with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(rows = train.len(), "model trained");
    Ok(ModelRef {
        path,
        trained_on: train.len(),
    })
}

/// Scores the model on the held-out 20%; fails when accuracy is below [`THRESHOLD`].
#[task]
pub async fn evaluate_model(model: ModelRef, data: Dataset) -> anyhow::Result<Metrics> {
    let weights = Model::from_text(
        &std::fs::read_to_string(&model.path)
            .with_context(|| format!("reading {}", model.path.display()))?,
    )?;
    let samples = read_csv(&data.csv)?;
    let (_, test) = split(&samples);
    ensure!(!test.is_empty(), "no held-out rows to evaluate on");
    let correct = test
        .iter()
        .filter(|s| weights.predict(s.x) == s.label)
        .count();
    let accuracy = correct as f64 / test.len() as f64;
    tracing::info!(accuracy, "model evaluated");
    ensure!(
        accuracy >= THRESHOLD,
        "accuracy {accuracy:.3} is below the threshold {THRESHOLD}; the model is not deployed"
    );
    Ok(Metrics {
        accuracy,
        evaluated_on: test.len(),
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

/// Copies the model to `models/production`.
#[task]
pub fn deploy_production(model: ModelRef) -> anyhow::Result<PathBuf> {
    deploy(&model, "production")
}

/// Copies the model to `models/staging`.
#[task]
pub fn deploy_staging(model: ModelRef) -> anyhow::Result<PathBuf> {
    deploy(&model, "staging")
}

fn deploy(model: &ModelRef, stage: &str) -> anyhow::Result<PathBuf> {
    let dir = work_dir().join("models").join(stage);
    std::fs::create_dir_all(&dir)?;
    let target = dir.join("model.txt");
    std::fs::copy(&model.path, &target)
        .with_context(|| format!("copying the model to {}", target.display()))?;
    tracing::info!(target = %target.display(), "model deployed to {stage}");
    Ok(target)
}

/// Trains a model every night at 02:00 and deploys it to production or staging.
#[dag(
    id = "ml_training_pipeline",
    schedule = "0 2 * * *",
    start_date = "2025-01-01",
    catchup = false,
    tags = ["ml", "training"],
    default_args(owner = "ml-team", retries = 2, retry_delay = "5m")
)]
pub fn ml_training_pipeline() {
    let data = load_data();
    let model = train_model(data);
    let metrics = evaluate_model(model, data);
    choose_deployment(metrics) >> [deploy_production(model), deploy_staging(model)];
}

/// One labelled point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Features.
    pub x: [f64; 2],
    /// Class, 0 or 1.
    pub label: u8,
}

/// Writes `rows` points of two Gaussian clusters (class 0 around (-1,-1), class 1 around
/// (1,1), deviation 0.9) from a fixed seed, so every run sees the same data.
pub fn write_synthetic_csv(path: &Path, rows: usize, seed: u64) -> std::io::Result<()> {
    let mut rng = SplitMix(seed);
    let mut out = String::from("x1,x2,label\n");
    for i in 0..rows {
        let label = u8::from(i % 2 == 1);
        let center = if label == 1 { 1.0 } else { -1.0 };
        let (a, b) = rng.gaussian_pair();
        let _ = writeln!(
            out,
            "{:.5},{:.5},{label}",
            center + 0.9 * a,
            center + 0.9 * b
        );
    }
    std::fs::write(path, out)
}

/// Reads and validates a `x1,x2,label` CSV file: every row needs two finite numbers and a
/// 0/1 label.
pub fn read_csv(path: &Path) -> anyhow::Result<Vec<Sample>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    match lines.next() {
        Some("x1,x2,label") => {}
        other => bail!(
            "{}: expected the header `x1,x2,label`, found {other:?}",
            path.display()
        ),
    }
    lines
        .enumerate()
        .map(|(i, line)| {
            let line_no = i + 2;
            let fields: Vec<&str> = line.split(',').collect();
            ensure!(
                fields.len() == 3,
                "{}:{line_no}: expected 3 fields, found {}",
                path.display(),
                fields.len()
            );
            let number = |s: &str| -> anyhow::Result<f64> {
                let v: f64 = s.trim().parse().with_context(|| {
                    format!("{}:{line_no}: `{s}` is not a number", path.display())
                })?;
                ensure!(
                    v.is_finite(),
                    "{}:{line_no}: `{s}` is not finite",
                    path.display()
                );
                Ok(v)
            };
            let label = match fields[2].trim() {
                "0" => 0,
                "1" => 1,
                other => bail!(
                    "{}:{line_no}: label `{other}` is not 0 or 1",
                    path.display()
                ),
            };
            Ok(Sample {
                x: [number(fields[0])?, number(fields[1])?],
                label,
            })
        })
        .collect()
}

/// The first 80% for training, the rest for evaluation.
pub fn split(samples: &[Sample]) -> (&[Sample], &[Sample]) {
    samples.split_at(samples.len() * 4 / 5)
}

/// Logistic-regression weights.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Model {
    /// Feature weights.
    pub w: [f64; 2],
    /// Bias.
    pub b: f64,
}

impl Model {
    /// The predicted class of a point.
    pub fn predict(&self, x: [f64; 2]) -> u8 {
        u8::from(self.w[0] * x[0] + self.w[1] * x[1] + self.b > 0.0)
    }

    fn to_text(self) -> String {
        format!("{} {} {}\n", self.w[0], self.w[1], self.b)
    }

    fn from_text(text: &str) -> anyhow::Result<Self> {
        let v: Vec<f64> = text
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .context("model file is corrupt")?;
        ensure!(
            v.len() == 3,
            "model file has {} numbers, expected 3",
            v.len()
        );
        Ok(Model {
            w: [v[0], v[1]],
            b: v[2],
        })
    }
}

/// Full-batch gradient descent on the logistic loss.
pub fn fit(samples: &[Sample], epochs: usize, rate: f64) -> Model {
    let mut m = Model {
        w: [0.0; 2],
        b: 0.0,
    };
    let n = samples.len().max(1) as f64;
    for _ in 0..epochs {
        let mut grad = [0.0; 3];
        for s in samples {
            let z = m.w[0] * s.x[0] + m.w[1] * s.x[1] + m.b;
            let err = 1.0 / (1.0 + (-z).exp()) - f64::from(s.label);
            grad[0] += err * s.x[0];
            grad[1] += err * s.x[1];
            grad[2] += err;
        }
        m.w[0] -= rate * grad[0] / n;
        m.w[1] -= rate * grad[1] / n;
        m.b -= rate * grad[2] / n;
    }
    m
}

/// A small, seeded random generator (SplitMix64), so the data need no dependency.
struct SplitMix(u64);

impl SplitMix {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Two independent standard normal values (Box-Muller).
    fn gaussian_pair(&mut self) -> (f64, f64) {
        let u = self.next_f64().max(f64::MIN_POSITIVE);
        let v = self.next_f64();
        let r = (-2.0 * u.ln()).sqrt();
        let t = std::f64::consts::TAU * v;
        (r * t.cos(), r * t.sin())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(rows: usize) -> (tempfile::TempDir, Dataset) {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("raw.csv");
        write_synthetic_csv(&csv, rows, 7).unwrap();
        (dir, Dataset { csv, rows })
    }

    fn weak_model(dir: &Path) -> ModelRef {
        // Always predicts class 1: right on half of the rows.
        let path = dir.join("weak.txt");
        std::fs::write(
            &path,
            Model {
                w: [0.0, 0.0],
                b: 1.0,
            }
            .to_text(),
        )
        .unwrap();
        ModelRef {
            path,
            trained_on: 0,
        }
    }

    #[test]
    fn load_data_lands_validates_and_pushes_the_row_count() {
        let ctx = TaskContext::for_test("ml_training_pipeline", "load_data");
        let data = load_data(&ctx).unwrap();
        assert_eq!(data.rows, ROWS);
        assert_eq!(
            ctx.xcom_pull::<usize>("load_data", "row_count").unwrap(),
            ROWS
        );
    }

    #[test]
    fn train_model_learns_the_clusters() {
        let (_dir, data) = fixture(400);
        let model = train_model(data.clone()).unwrap();
        assert_eq!(model.trained_on, 320);
        let weights = Model::from_text(&std::fs::read_to_string(&model.path).unwrap()).unwrap();
        assert_eq!(weights.predict([2.0, 2.0]), 1);
        assert_eq!(weights.predict([-2.0, -2.0]), 0);
    }

    #[test]
    fn evaluation_passes_a_good_model_and_rejects_a_weak_one() {
        let (dir, data) = fixture(400);
        let good = train_model(data.clone()).unwrap();
        let metrics = block_on(evaluate_model(good, data.clone())).unwrap();
        assert!(metrics.accuracy > 0.85, "{metrics:?}");
        let err = block_on(evaluate_model(weak_model(dir.path()), data)).unwrap_err();
        assert!(err.to_string().contains("below the threshold"), "{err}");
    }

    #[test]
    fn deployment_branches_on_accuracy() {
        let at = |accuracy| {
            choose_deployment(Metrics {
                accuracy,
                evaluated_on: 100,
            })
        };
        assert_eq!(at(0.95), Branch::to("deploy_production"));
        assert_eq!(at(0.85), Branch::to("deploy_staging"));
    }

    #[test]
    fn bad_csv_files_fail_with_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.csv");
        std::fs::write(&path, "x1,x2,label\n1,2,0\n1,oops,1\n").unwrap();
        let err = read_csv(&path).unwrap_err().to_string();
        assert!(err.contains(":3: `oops` is not a number"), "{err}");
        std::fs::write(&path, "a,b\n").unwrap();
        assert!(read_csv(&path).unwrap_err().to_string().contains("header"));
    }
}

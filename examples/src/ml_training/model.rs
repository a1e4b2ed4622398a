//! The pipeline's model: a seeded split of a [`Table`], a random forest trained on one
//! part and scored on the other, and the model's bytes.

use anyhow::{Context as _, ensure};
use smartcore::ensemble::random_forest_classifier::{
    RandomForestClassifier, RandomForestClassifierParameters,
};
use smartcore::linalg::basic::matrix::DenseMatrix;

use super::data::Table;

/// The classifier: `f32` pixels in, `u32` classes out.
pub type Forest = RandomForestClassifier<f32, u32, DenseMatrix<f32>, Vec<u32>>;

/// The seed of the train/test split; training and evaluation use the same one, so they
/// agree on which rows were held out.
pub const SPLIT_SEED: u64 = 42;
/// The seed of the forest's bootstrap samples and feature choices.
pub const FOREST_SEED: u64 = 7;
/// The share of rows held out for evaluation.
pub const TEST_SHARE: f64 = 0.2;
/// Trees in the forest.
pub const TREES: u16 = 50;

/// The rows of a table, split by [`SPLIT_SEED`]: (training rows, held-out rows).
pub fn split(rows: usize) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..rows).collect();
    // Fisher-Yates with SplitMix64: the same split on every platform and every run.
    let mut state = SPLIT_SEED;
    for i in (1..rows).rev() {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        order.swap(i, (z % (i as u64 + 1)) as usize);
    }
    let held_out = (rows as f64 * TEST_SHARE).round() as usize;
    let train = order.split_off(held_out);
    (train, order)
}

/// The features of `rows` as a matrix; an empty cell reads as 0 (a blank pixel).
pub fn features(table: &Table, rows: &[usize]) -> anyhow::Result<DenseMatrix<f32>> {
    let values: Vec<f32> = table
        .columns
        .iter()
        .flat_map(|cells| rows.iter().map(|&r| cells[r].unwrap_or(0.0)))
        .collect();
    DenseMatrix::new(rows.len(), table.columns.len(), values, true)
        .map_err(|e| anyhow::anyhow!("cannot shape the features: {e}"))
}

/// The labels of `rows`.
pub fn labels(table: &Table, rows: &[usize]) -> Vec<u32> {
    rows.iter().map(|&r| table.labels[r]).collect()
}

/// Trains a forest on `rows` of the table.
pub fn train(table: &Table, rows: &[usize]) -> anyhow::Result<Forest> {
    train_with(table, rows, TREES, None)
}

/// A seeded forest of `trees` trees, each at most `max_depth` deep (unbounded: `None`).
pub fn train_with(
    table: &Table,
    rows: &[usize],
    trees: u16,
    max_depth: Option<u16>,
) -> anyhow::Result<Forest> {
    ensure!(!rows.is_empty(), "no rows to train on");
    ensure!(trees > 0, "a forest needs at least one tree");
    let mut parameters = RandomForestClassifierParameters::default()
        .with_n_trees(trees)
        .with_seed(FOREST_SEED);
    if let Some(depth) = max_depth {
        parameters = parameters.with_max_depth(depth);
    }
    Forest::fit(&features(table, rows)?, &labels(table, rows), parameters)
        .map_err(|e| anyhow::anyhow!("training the random forest failed: {e}"))
}

/// The share of `rows` the forest classifies correctly.
pub fn accuracy(forest: &Forest, table: &Table, rows: &[usize]) -> anyhow::Result<f64> {
    ensure!(!rows.is_empty(), "no held-out rows to evaluate on");
    let predicted = forest
        .predict(&features(table, rows)?)
        .map_err(|e| anyhow::anyhow!("the random forest cannot predict: {e}"))?;
    let correct = predicted
        .iter()
        .zip(labels(table, rows))
        .filter(|&(p, l)| *p == l)
        .count();
    Ok(correct as f64 / rows.len() as f64)
}

/// The model as bytes, to hand to the next task or write to a file.
pub fn save_model(forest: &Forest) -> anyhow::Result<Vec<u8>> {
    flow_runtime::xcom::codec::encode(forest).context("the model does not serialize")
}

/// The model back from [`save_model`]'s bytes.
pub fn load_model(bytes: &[u8]) -> anyhow::Result<Forest> {
    flow_runtime::xcom::codec::decode(bytes).context(
        "the model bytes are not a random forest saved by this pipeline; train the model again",
    )
}

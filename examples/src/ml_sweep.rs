//! A hyper-parameter sweep with dynamic task mapping: one mapped instance of
//! `evaluate_setting` per combination of tree count and maximum depth (a cross product,
//! `.expand(trees = .., max_depth = ..)`), each training a random forest on the same
//! Parquet data set, then `pick_best` choosing the most accurate setting from the
//! instances' results, collected in map order.

use anyhow::ensure;
use flow_runtime::prelude::*;

use crate::ml_training::data::read_parquet;
use crate::ml_training::model::{accuracy, split, train_with};
use crate::ml_training::{Dataset, land_raw_data, load_data};

/// How well one setting did on the held-out split.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Score {
    /// Trees in the forest.
    pub trees: u16,
    /// The deepest a tree may grow (0: unbounded).
    pub max_depth: u16,
    /// Share of held-out rows classified correctly.
    pub accuracy: f64,
}

/// Trains a forest with one setting on the training split and scores it on the held-out
/// split; `max_depth` 0 leaves the depth unbounded.
#[task(retries = 1, retry_delay = "10s")]
pub fn evaluate_setting(
    ctx: &TaskContext,
    data: Dataset,
    trees: u16,
    max_depth: u16,
) -> anyhow::Result<Score> {
    let table = read_parquet(&data.parquet)?;
    let (train_rows, held_out) = split(table.rows());
    let depth = (max_depth > 0).then_some(max_depth);
    let forest = train_with(&table, &train_rows, trees, depth)?;
    let accuracy = accuracy(&forest, &table, &held_out)?;
    tracing::info!(
        map_index = ?ctx.map_index(),
        trees,
        max_depth,
        accuracy = %format_args!("{accuracy:.4}"),
        "setting evaluated"
    );
    Ok(Score {
        trees,
        max_depth,
        accuracy,
    })
}

/// The most accurate setting (the first in map order on a tie).
#[task]
pub fn pick_best(scores: Vec<Score>) -> anyhow::Result<Score> {
    ensure!(!scores.is_empty(), "no setting was evaluated");
    let best = scores
        .iter()
        .fold(&scores[0], |best, s| {
            if s.accuracy > best.accuracy { s } else { best }
        })
        .clone();
    tracing::info!(
        settings = scores.len(),
        trees = best.trees,
        max_depth = best.max_depth,
        accuracy = %format_args!("{:.4}", best.accuracy),
        "best setting"
    );
    Ok(best)
}

/// `name` under the examples' work directory, as a param default.
fn default_dir(name: &str) -> String {
    crate::work_dir().join(name).to_string_lossy().into_owned()
}

/// Lands and loads the digits as the training pipeline does, then evaluates 6 settings
/// (2 tree counts x 3 depths) as mapped instances and picks the best.
#[dag(
    id = "ml_hyperparameter_sweep",
    tags = ["ml", "sweep"],
    params(
        /// Where the raw CSV lands and is read from.
        raw_dir: String = default_dir("raw"),
        /// Where each run keeps its Parquet copy of the data.
        data_dir: String = default_dir("ml_hyperparameter_sweep"),
        /// The fewest rows the raw data may have.
        min_rows: usize = 1000,
    ),
)]
pub fn ml_hyperparameter_sweep() {
    let data = load_data(land_raw_data());
    let scores = evaluate_setting
        .partial(data = data)
        .expand(trees = [10, 30], max_depth = [4, 8, 0]);
    pick_best(scores);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(trees: u16, accuracy: f64) -> Score {
        Score {
            trees,
            max_depth: 0,
            accuracy,
        }
    }

    #[test]
    fn pick_best_takes_the_most_accurate_and_the_first_on_a_tie() {
        let best = pick_best(vec![score(10, 0.8), score(30, 0.9), score(50, 0.9)]).unwrap();
        assert_eq!(best, score(30, 0.9));
        assert!(pick_best(Vec::new()).is_err());
    }

    #[test]
    fn the_sweep_maps_one_instance_per_setting() {
        let dag = ml_hyperparameter_sweep().unwrap();
        assert!(dag.task("evaluate_setting").unwrap().is_mapped());
    }
}

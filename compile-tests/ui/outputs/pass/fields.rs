//! `#[task(multiple_outputs)]`: fields as typed nodes, the whole value, ordering, a
//! multiple-outputs task in a group and with an override, and a run.
use flow_runtime::prelude::*;

/// The two halves of a data set.
#[derive(Serialize, Deserialize, MultipleOutputs)]
pub struct Split {
    /// Rows to fit on.
    pub train: Vec<u32>,
    /// Rows to score.
    pub test: Vec<u32>,
    r#type: String,
}

#[task(multiple_outputs, retries = 1)]
fn split_data(rows: u32) -> anyhow::Result<Split> {
    Ok(Split {
        train: (0..rows).collect(),
        test: vec![100],
        r#type: "holdout".into(),
    })
}

#[task]
fn fit(rows: Vec<u32>) -> u32 {
    rows.iter().sum()
}

#[task]
fn score(model: u32, rows: Vec<u32>, kind: String) -> String {
    format!("{kind}: {}", model + rows[0])
}

#[task]
fn whole(split: Split) -> usize {
    split.train.len() + split.test.len()
}

#[task]
fn done() {}

#[task_group]
fn evaluate(split: MultiNode<Split>) -> Node<String> {
    let model = fit(split.train);
    score(model, split.test, split.r#type)
}

#[dag]
fn fields() {
    let split = split_data(4);
    let report = evaluate(split);
    whole(split);
    split >> done();
    let other = split_data.r#override(task_id = "split_small")(1);
    fit(other.train) >> report;
}

fn main() {
    let dag = fields().unwrap();
    let run = dag.test().unwrap();
    assert_eq!(run.output::<u32>("evaluate.fit").unwrap(), 6);
    assert_eq!(run.output::<String>("evaluate.score").unwrap(), "holdout: 106");
    assert_eq!(run.output::<usize>("whole").unwrap(), 5);
    assert_eq!(run.output::<u32>("fit").unwrap(), 0);
    assert_eq!(dag.task("evaluate.score").unwrap().input_field(1), Some("test"));
    assert_eq!(dag.task("whole").unwrap().input_field(0), None);
}

//! End-to-end through the public API: DAGs built by the macros, run in process.

use flow_runtime::prelude::*;
use flow_tests::{Batch, chain, failing, retrying};

#[test]
fn a_task_is_still_its_function() {
    let sorted = flow_tests::sort(Batch {
        values: vec![2, 1],
        source: "t".into(),
    });
    assert_eq!(sorted.values, [1, 2]);
    let scaled = block_on(flow_tests::scale(sorted, 3));
    assert_eq!(scaled.values, [3, 6]);
}

#[test]
fn the_chain_passes_typed_values_and_literals() {
    let dag = chain().unwrap();
    let ids: Vec<&str> = dag.tasks().iter().map(|t| t.id().as_str()).collect();
    assert_eq!(ids, ["produce", "sort", "scale", "total"]);
    assert_eq!(dag.task("scale").unwrap().retries(), 3);
    let run = dag.test().unwrap();
    assert_eq!(run.state, RunState::Success);
    assert_eq!(
        run.output::<String>("total").unwrap(),
        "chain/total/try1: 60"
    );
    assert_eq!(run.output::<Batch>("sort").unwrap().values, [1, 2, 3]);
}

#[test]
fn failures_and_panics_end_in_airflow_states() {
    let run = failing().unwrap().test().unwrap();
    assert_eq!(run.state, RunState::Failed);
    let state = |t: &str| run.task(t).unwrap().state;
    assert_eq!(state("explode"), TaskState::Failed);
    assert_eq!(state("after_explode"), TaskState::UpstreamFailed);
    assert_eq!(state("panics"), TaskState::Failed);
    assert_eq!(state("independent"), TaskState::Success);
    let error = run.task("explode").unwrap().error.clone().unwrap();
    assert!(error.starts_with("source unavailable on "), "{error}");
    assert_eq!(
        run.task("panics").unwrap().error.as_deref(),
        Some("task panicked: index out of range")
    );
}

#[test]
fn task_options_override_default_args() {
    let dag = retrying().unwrap();
    let flaky = dag.task("flaky").unwrap();
    assert_eq!(
        flaky.retries(),
        2,
        "the task's own retries win over default_args"
    );
    assert_eq!(flaky.owner(), "qa", "unset options come from default_args");
    assert_eq!(flaky.retry_delay(), std::time::Duration::from_millis(10));
    let run = dag.test().unwrap();
    assert_eq!(run.state, RunState::Success);
    assert_eq!(run.task("flaky").unwrap().tries, 3);
    assert_eq!(run.output::<u32>("flaky").unwrap(), 3);
}

mod reuse {
    use super::*;

    #[task]
    pub fn step(n: u32) -> u32 {
        n + 1
    }

    #[task]
    fn first() -> u32 {
        0
    }

    #[task]
    fn last() {}

    #[dag]
    pub fn reused() {
        let a = step(first());
        let b = step(a);
        let c = step(b);
        [a, b] >> last();
        c >> last();
    }

    #[test]
    fn a_task_used_twice_gets_airflow_suffixes() {
        let dag = reused().unwrap();
        let ids: Vec<&str> = dag.tasks().iter().map(|t| t.id().as_str()).collect();
        assert_eq!(
            ids,
            ["first", "step", "step__1", "step__2", "last", "last__1"]
        );
        let upstream = |id: &str| -> Vec<&str> {
            dag.task(id)
                .unwrap()
                .upstream()
                .iter()
                .map(|&i| dag[i].id().as_str())
                .collect()
        };
        assert_eq!(upstream("last"), ["step", "step__1"]);
        assert_eq!(upstream("last__1"), ["step__2"]);
        let run = dag.test().unwrap();
        assert_eq!(run.output::<u32>("step__2").unwrap(), 3);
    }
}

mod macro_options {
    use super::*;

    /// Documented task.
    #[task(task_id = "renamed", owner = "data")]
    fn original_name() -> String {
        "x".into()
    }

    /// The DAG's description comes from this comment.
    #[dag(id = "options_dag", schedule = "*/15 * * * *", start_date = "2025-03-01", catchup = true, tags = ["a", "b"])]
    fn with_options() {
        original_name();
    }

    #[test]
    fn dag_and_task_options_reach_the_built_dag() {
        let dag = with_options().unwrap();
        assert_eq!(dag.id().as_str(), "options_dag");
        assert_eq!(dag.schedule().to_string(), "*/15 * * * *");
        assert_eq!(
            dag.start_date().unwrap().to_rfc3339(),
            "2025-03-01T00:00:00+00:00"
        );
        assert!(dag.catchup());
        assert_eq!(dag.tags(), ["a", "b"]);
        assert_eq!(
            dag.description(),
            Some("The DAG's description comes from this comment.")
        );
        let task = dag.task("renamed").unwrap();
        assert_eq!(task.owner(), "data");
        assert_eq!(task.spec().documentation(), Some("Documented task."));
    }
}

#[test]
fn every_macro_dag_is_registered() {
    let registry = flow_runtime::registry::Registry::load().unwrap();
    for id in ["chain", "failing", "retrying", "reused", "options_dag"] {
        assert!(registry.get(id).is_some(), "{id} is not registered");
    }
}

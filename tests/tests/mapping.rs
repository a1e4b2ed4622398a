//! Dynamic task mapping written with the macros: `.expand(..)`, `.partial(..)`,
//! `.expand_zip(..)`, chains of maps, and results collected downstream.

use flow_runtime::prelude::*;

#[task]
fn list_files() -> Vec<String> {
    vec!["a.csv".into(), "bb.csv".into(), "ccc.csv".into()]
}

#[task]
fn count_chars(ctx: &TaskContext, path: String) -> (u32, usize) {
    (ctx.map_index().expect("a mapped instance"), path.len())
}

#[task]
fn lengths(counted: Vec<(u32, usize)>) -> Vec<usize> {
    counted.into_iter().map(|(_, n)| n).collect()
}

#[task]
fn scale(factor: u64, value: u64) -> u64 {
    factor * value
}

#[task]
fn add(left: u64, right: u64) -> u64 {
    left + right
}

#[task]
fn sum(values: Vec<u64>) -> u64 {
    values.iter().sum()
}

#[task]
fn nothing() -> Vec<u64> {
    Vec::new()
}

mod steps {
    use flow_runtime::prelude::*;

    /// A task in another module, mapped by path.
    #[task]
    pub fn square(x: u64) -> u64 {
        x * x
    }
}

#[dag]
fn mapping_showcase() {
    // Over an upstream list; results reach a downstream task as a Vec in map order.
    let counted = count_chars.expand(path = list_files());
    lengths(counted);
    // partial + expand over a literal list, then a map over the mapped results.
    let scaled = scale.partial(factor = 10).expand(value = vec![1, 2, 3]);
    let squared = steps::square.expand(x = scaled);
    sum(squared);
    // Cross product and zip.
    let product = add.expand(left = [1, 2], right = [10, 20, 30]);
    sum(product);
    let zipped = add.expand_zip(left = [1, 2, 3], right = [100, 200]);
    sum(zipped);
    // An empty list skips the mapped task and, by the default rule, its downstream.
    let none = scale.partial(factor = 2).expand(value = nothing());
    sum(none);
}

#[test]
fn every_form_of_mapping_runs_with_airflow_semantics() {
    let dag = mapping_showcase().unwrap();
    let run = dag.test().unwrap();
    assert_eq!(run.state, RunState::Success, "{:?}", run.tasks);
    assert_eq!(run.output::<Vec<usize>>("lengths").unwrap(), [5, 6, 7]);
    assert_eq!(
        run.output::<Vec<(u32, usize)>>("count_chars").unwrap(),
        [(0, 5), (1, 6), (2, 7)]
    );
    assert_eq!(run.output::<Vec<u64>>("scale").unwrap(), [10, 20, 30]);
    assert_eq!(run.output::<Vec<u64>>("square").unwrap(), [100, 400, 900]);
    assert_eq!(run.output::<u64>("sum").unwrap(), 1400);
    assert_eq!(
        run.output::<Vec<u64>>("add").unwrap(),
        [11, 21, 31, 12, 22, 32]
    );
    assert_eq!(run.output::<u64>("sum__1").unwrap(), 129);
    assert_eq!(run.output::<Vec<u64>>("add__1").unwrap(), [101, 202]);
    assert_eq!(run.output::<u64>("sum__2").unwrap(), 303);
    assert_eq!(run.task("scale__1").unwrap().state, TaskState::Skipped);
    assert_eq!(run.task("sum__3").unwrap().state, TaskState::Skipped);
    assert_eq!(run.mapped("add").len(), 6);
}

#[test]
fn a_mapped_task_is_still_its_function() {
    assert_eq!(steps::square(7), 49);
    assert_eq!(scale(3, 4), 12);
}

//! Arguments of task calls: upstream outputs, literals of every kind, and reused tasks.

use flow_runtime::prelude::*;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Config {
    name: String,
    limit: u32,
}

#[task]
fn load(source: String, limit: u32) -> Vec<u32> {
    (0..limit)
        .map(|i| i + u32::try_from(source.len()).unwrap())
        .collect()
}

#[task]
fn total(values: Vec<u32>) -> u32 {
    values.iter().sum()
}

#[task]
fn describe(
    config: Config,
    total: u32,
    tags: Vec<String>,
    scale: f64,
    flag: bool,
    pair: (u8, char),
) -> String {
    format!(
        "{}/{}/{total}/{tags:?}/{scale}/{flag}/{pair:?}",
        config.name, config.limit
    )
}

#[task]
fn combine(a: u32, b: u32) -> u32 {
    a + b
}

const LIMIT: u32 = 3;

fn config() -> Config {
    Config {
        name: "cfg".into(),
        limit: 9,
    }
}

#[dag]
fn arguments() {
    let values = load("ab", LIMIT);
    let sum = total(values);
    let owned = { String::from("owned") };
    describe(
        { config() },
        sum,
        vec!["a".to_string(), "b".to_string()],
        2.5,
        true,
        (7, 'x'),
    );
    // Nested task calls, reuse (`load__1`, `total__1`), and a variable literal.
    combine(total(load(owned, 2)), total(values));
    let direct = Config {
        name: "direct".into(),
        limit: 1,
    };
    describe(direct, 0, { Vec::new() }, 0.0, false, (0, 'y'));
}

fn main() {
    let dag = arguments().unwrap();
    let ids: Vec<&str> = dag.tasks().iter().map(|t| t.id().as_str()).collect();
    assert_eq!(
        ids,
        [
            "load",
            "total",
            "describe",
            "load__1",
            "total__1",
            "total__2",
            "combine",
            "describe__1"
        ]
    );
    let run = dag.test().unwrap();
    assert_eq!(run.state, RunState::Success, "{run:?}");
    assert_eq!(run.output::<u32>("total").unwrap(), 2 + 3 + 4);
    assert_eq!(
        run.output::<String>("describe").unwrap(),
        "cfg/9/9/[\"a\", \"b\"]/2.5/true/(7, 'x')"
    );
    assert_eq!(run.output::<u32>("combine").unwrap(), (5 + 6) + 9);
    assert_eq!(
        run.output::<String>("describe__1").unwrap(),
        "direct/1/0/[]/0/false/(0, 'y')"
    );
}

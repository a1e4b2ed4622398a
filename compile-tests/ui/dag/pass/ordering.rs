//! `>>` and `<<` between tasks, lists of tasks and variables, and control flow.

use flow_runtime::prelude::*;

#[task]
fn t() {}

#[task]
fn value() -> u32 {
    1
}

#[dag]
fn ordering() {
    let a = t();
    let b = t();
    let c = t();
    a >> b >> c; // t >> t__1 >> t__2
    a >> [t(), t()]; // t >> t__3, t >> t__4
    [value(), value()] >> c; // value, value__1 >> t__2
    a << t(); // t__5 >> t
    let v = value();
    v >> t() << [a, b]; // value__2 >> t__6; t, t__1 >> t__6
}

#[dag]
fn control_flow() {
    let first = value();
    for _ in 0..3 {
        first >> t();
    }
    if first.any().index() == 0 {
        t();
    } else {
        value()
    }
    {
        let inner = t();
        inner >> t()
    }
    let mut n = 0;
    while n < 2 {
        n += 1;
        t();
    }
    loop {
        t();
        break;
    }
    println!("a macro as the last statement")
}

fn upstream(dag: &Dag, id: &str) -> Vec<String> {
    let task = dag.task(id).unwrap();
    task.upstream()
        .iter()
        .map(|&i| dag[i].id().to_string())
        .collect()
}

fn main() {
    let dag = ordering().unwrap();
    assert_eq!(upstream(&dag, "t__1"), ["t"]);
    assert_eq!(upstream(&dag, "t__2"), ["t__1", "value", "value__1"]);
    assert_eq!(upstream(&dag, "t__3"), ["t"]);
    assert_eq!(upstream(&dag, "t__4"), ["t"]);
    assert_eq!(upstream(&dag, "t"), ["t__5"]);
    assert_eq!(upstream(&dag, "t__6"), ["t", "t__1", "value__2"]);

    let dag = control_flow().unwrap();
    let ids: Vec<&str> = dag.tasks().iter().map(|t| t.id().as_str()).collect();
    assert_eq!(
        ids,
        [
            "value", "t", "t__1", "t__2", "t__3", "t__4", "t__5", "t__6", "t__7", "t__8"
        ]
    );
    assert_eq!(upstream(&dag, "t__2"), ["value"]);
    assert_eq!(upstream(&dag, "t__5"), ["t__4"]);
}

//! Task groups in the builder: ids, `default_args`, ordering a group as a whole, and
//! the checks of group ids.

use super::tests::{sink, source};
use super::*;
use crate::task::{TaskError, TaskOptions, TaskSpec};
fn ids(dag: &Dag) -> Vec<&str> {
    dag.tasks().iter().map(|t| t.id().as_str()).collect()
}
fn upstream_ids<'a>(dag: &'a Dag, task: &str) -> Vec<&'a str> {
    dag.task(task)
        .unwrap()
        .upstream()
        .iter()
        .map(|&u| dag[u].id().as_str())
        .collect()
}

#[test]
fn ids_are_prefixed_by_every_enclosing_group_and_reuse_is_suffixed() {
    let mut b = DagBuilder::new("d");
    b.add_task(source("load"));
    b.group(TaskGroup::new("outer"), |b| {
        b.add_task(source("load"));
        b.add_task(source("load"));
        b.group(TaskGroup::new("inner"), |b| {
            b.add_task(source("load"));
            b.add_task(source("x")).task_id("named");
        });
    });
    let dag = b.build().unwrap();
    assert_eq!(
        ids(&dag),
        [
            "load",
            "outer.load",
            "outer.load__1",
            "outer.inner.load",
            "outer.inner.named"
        ]
    );
    assert_eq!(dag.task("outer.load").unwrap().group_id(), Some("outer"));
    assert_eq!(
        dag.task("outer.inner.named").unwrap().group_id(),
        Some("outer.inner")
    );
    assert_eq!(dag.task("load").unwrap().group_id(), None);
    let groups: Vec<(&str, &str, Option<usize>)> = dag
        .groups()
        .iter()
        .map(|g| (g.id(), g.label(), g.parent()))
        .collect();
    assert_eq!(
        groups,
        [("outer", "outer", None), ("outer.inner", "inner", Some(0))]
    );
}

#[test]
fn without_prefix_group_id_children_keep_their_own_ids() {
    // Airflow: a group that does not prefix leaves its tasks' and inner groups' ids alone;
    // an inner group that prefixes uses its own (unprefixed) id.
    let mut b = DagBuilder::new("d");
    b.group(TaskGroup::new("outer").prefix_group_id(false), |b| {
        b.add_task(source("a"));
        b.group(TaskGroup::new("inner"), |b| {
            b.add_task(source("b"));
        });
    });
    let dag = b.build().unwrap();
    assert_eq!(ids(&dag), ["a", "inner.b"]);
    assert_eq!(dag.groups()[1].id(), "inner");
}

#[test]
fn group_default_args_override_the_dags_and_the_enclosing_groups() {
    let mut b = DagBuilder::new("d").default_args(
        TaskOptions::default()
            .with_retries(1)
            .with_owner("dag-owner"),
    );
    b.add_task(source("top"));
    b.group(
        TaskGroup::new("g").default_args(TaskOptions::default().with_retries(3)),
        |b| {
            b.add_task(source("plain"));
            b.add_task(source("own").retries(5));
            b.group(
                TaskGroup::new("inner").default_args(TaskOptions::default().with_owner("team")),
                |b| {
                    b.add_task(source("deep"));
                },
            );
        },
    );
    let dag = b.build().unwrap();
    let of = |id: &str| {
        let t = dag.task(id).unwrap();
        (t.retries(), t.owner().to_string())
    };
    assert_eq!(of("top"), (1, "dag-owner".into()));
    assert_eq!(of("g.plain"), (3, "dag-owner".into()));
    assert_eq!(of("g.own"), (5, "dag-owner".into()));
    assert_eq!(of("g.inner.deep"), (3, "team".into()));
}

#[test]
fn a_group_orders_as_its_leaves_upstream_and_its_roots_downstream() {
    let mut b = DagBuilder::new("d");
    let start = b.add_task(source("start")).finish::<u64>();
    // Inside: a -> b (data), c alone; roots a, c; leaves b, c.
    let g = b.group(TaskGroup::new("g"), |b| {
        let a = b.add_task(source("a")).finish::<u64>();
        let mut t = b.add_task(sink("b"));
        t.input(a);
        t.finish::<u64>();
        b.add_task(source("c"));
    });
    let end = b.add_task(source("end")).finish::<u64>();
    b.set_downstream(&[start.any()], &[g.group.any()]);
    b.set_downstream(&[g.group.any()], &[end.any()]);
    let dag = b.build().unwrap();
    assert_eq!(upstream_ids(&dag, "g.a"), ["start"]);
    assert_eq!(upstream_ids(&dag, "g.b"), ["g.a"]);
    assert_eq!(upstream_ids(&dag, "g.c"), ["start"]);
    assert_eq!(upstream_ids(&dag, "end"), ["g.b", "g.c"]);
}

#[test]
fn groups_order_each_other_and_nested_groups_count_as_members() {
    let mut b = DagBuilder::new("d");
    let first = b.group(TaskGroup::new("first"), |b| {
        let x = b.add_task(source("x")).finish::<u64>();
        let inner = b.group(TaskGroup::new("inner"), |b| {
            b.add_task(source("y"));
        });
        b.set_downstream(&[x.any()], &[inner.group.any()]);
    });
    let second = b.group(TaskGroup::new("second"), |b| {
        b.add_task(source("z"));
    });
    b.chain(&[&[first.group.any()], &[second.group.any()]]);
    let dag = b.build().unwrap();
    assert_eq!(upstream_ids(&dag, "first.inner.y"), ["first.x"]);
    assert_eq!(upstream_ids(&dag, "second.z"), ["first.inner.y"]);
}

#[test]
fn an_empty_group_orders_nothing() {
    let mut b = DagBuilder::new("d");
    let a = b.add_task(source("a")).finish::<u64>();
    let empty = b.group(TaskGroup::new("empty"), |_| {});
    b.set_downstream(&[a.any()], &[empty.group.any()]);
    let dag = b.build().unwrap();
    assert_eq!(dag.tasks().len(), 1);
    assert_eq!(dag.groups().len(), 1);
}

#[test]
fn a_group_returns_what_its_body_returns() {
    let mut b = DagBuilder::new("d");
    let g = b.group(TaskGroup::new("g"), |b| {
        b.add_task(source("a")).finish::<u64>()
    });
    let mut t = b.add_task(sink("after"));
    t.input(g.output);
    t.finish::<u64>();
    let dag = b.build().unwrap();
    assert_eq!(upstream_ids(&dag, "after"), ["g.a"]);
}

#[test]
fn group_ids_are_checked() {
    let mut b = DagBuilder::new("d");
    b.add_task(source("a"));
    b.group(TaskGroup::new("bad.id"), |b| {
        b.add_task(source("t"));
    });
    b.group(TaskGroup::new("twice"), |_| {});
    b.group(TaskGroup::new("twice"), |_| {});
    b.group(TaskGroup::new("a"), |_| {});
    b.group(TaskGroup::new("free.id").prefix_group_id(false), |b| {
        b.add_task(source("u"));
    });
    let errors = b.build().unwrap_err().errors().to_vec();
    assert_eq!(
        errors,
        [
            DagDefinitionError::InvalidGroupId {
                id: "bad.id".into()
            },
            DagDefinitionError::DuplicateGroupId("a".into()),
            DagDefinitionError::DuplicateGroupId("twice".into()),
        ]
    );
    let message = errors[0].to_string();
    assert!(
        message.contains("letters, digits, `_` and `-`"),
        "{message}"
    );
}

#[test]
fn suffix_on_collision_numbers_reused_group_ids() {
    let mut b = DagBuilder::new("d");
    for _ in 0..3 {
        b.group(TaskGroup::new("g").add_suffix_on_collision(true), |b| {
            b.add_task(source("t"));
        });
    }
    let dag = b.build().unwrap();
    assert_eq!(ids(&dag), ["g.t", "g__1.t", "g__2.t"]);
    assert_eq!(dag.groups()[2].label(), "g__2");
}

#[test]
fn a_group_passed_as_an_argument_is_an_error() {
    let mut b = DagBuilder::new("d");
    let g = b.group(TaskGroup::new("g"), |b| {
        b.add_task(source("a"));
    });
    let mut t = b.add_task(sink("s"));
    t.push_input(node::Input::Upstream(g.group.any()));
    let errors = b.build().unwrap_err().errors().to_vec();
    assert_eq!(
        errors,
        [DagDefinitionError::GroupAsInput { task: "s".into() }]
    );
}

// ---- multiple outputs (fields of a task's output) ---------------------------------------

#[derive(serde::Serialize, serde::Deserialize)]
struct Pair {
    left: u64,
    right: String,
}

fn pair_fields(node: AnyNode) -> (Node<u64>, Node<String>) {
    use crate::xcom::field::project_field;
    (
        Node::with_field(
            node,
            Field::new("left", "Pair", |b| project_field::<Pair, _>(b, |p| &p.left)),
        ),
        Node::with_field(
            node,
            Field::new("right", "Pair", |b| {
                project_field::<Pair, _>(b, |p| &p.right)
            }),
        ),
    )
}

#[test]
fn a_field_is_an_edge_from_its_producer_and_its_value_is_read_out() {
    let mut b = DagBuilder::new("d");
    let pair = b
        .add_task(TaskSpec::from_sync("pair", |_, _| {
            Ok::<Pair, TaskError>(Pair {
                left: 41,
                right: "x".into(),
            })
        }))
        .finish::<Pair>();
    let (left, right) = pair_fields(pair.any());
    let mut t = b.add_task(sink("inc"));
    t.input(left);
    t.finish::<u64>();
    let mut t = b.add_task(
        TaskSpec::from_sync("len", |_, inputs| {
            Ok::<usize, TaskError>(inputs.get::<String>(0)?.len())
        })
        .param::<String>("text"),
    );
    t.input(right);
    t.finish::<usize>();
    let dag = b.build().unwrap();
    assert_eq!(upstream_ids(&dag, "inc"), ["pair"]);
    assert_eq!(dag.task("inc").unwrap().input_field(0), Some("left"));
    assert_eq!(dag.task("len").unwrap().input_field(0), Some("right"));
    let run = dag.test().unwrap();
    assert_eq!(run.output::<u64>("inc").unwrap(), 42);
    assert_eq!(run.output::<usize>("len").unwrap(), 1);
}

#[test]
fn which_field_a_task_takes_is_part_of_the_dag_fingerprint() {
    let build = |take_left: bool| {
        let mut b = DagBuilder::new("d");
        let pair = b
            .add_task(TaskSpec::from_sync("pair", |_, _| {
                Ok::<Pair, TaskError>(Pair {
                    left: 1,
                    right: String::new(),
                })
            }))
            .finish::<Pair>();
        let (left, _) = pair_fields(pair.any());
        let mut t = b.add_task(sink("inc"));
        if take_left {
            t.input(left);
        } else {
            t.push_input(node::Input::Upstream(pair.any()));
        }
        t.finish::<u64>();
        crate::plan::fingerprint(&b.build().unwrap())
    };
    assert_ne!(build(true), build(false));
}

#[test]
fn mapping_over_a_field_is_reported() {
    let mut b = DagBuilder::new("d");
    let list = b.add_task(source("list")).finish::<u64>();
    let items: Node<Vec<u64>> =
        Node::with_field(list.any(), Field::new("items", "List", |b| Ok(b.clone())));
    let mut t = b.add_task(sink("each"));
    t.expand(items);
    t.finish_mapped::<u64>();
    let errors = b.build().unwrap_err().errors().to_vec();
    assert_eq!(
        errors,
        [DagDefinitionError::MappedField {
            task: "each".into(),
            param: "x".into(),
            field: "items".into(),
        }]
    );
}

//! Pictures of a DAG for `dags show --format dot|mermaid|svg`: Graphviz and Mermaid text
//! for tools that lay the graph out themselves, and an SVG laid out here, so that a DAG
//! can be looked at with nothing else installed.
//!
//! Task groups are Graphviz clusters and Mermaid subgraphs, nested as declared; a mapped
//! task group is labelled `[mapped]`, as Airflow's UI marks it. In the SVG each task is a
//! box in the column of its longest path from a root; a mapped task is drawn as a stack,
//! a setup or teardown task with a dashed border, and hovering a box shows its group.

use std::fmt::Write as _;

use crate::graph::{Dag, Task};
use crate::ids::TaskIndex;
use crate::plan::Plan;
use crate::task::TaskRole;

/// Graphviz: a task group is a cluster (nested in its enclosing group's) labelled with
/// its own id, holding its tasks.
pub(super) fn dot(dag: &Dag) -> String {
    let mut out = format!("digraph {:?} {{\n  rankdir=LR;\n", dag.id().as_str());
    nest(dag, None, 1, &mut out, &DOT);
    for (from, to) in edges(dag) {
        let _ = writeln!(
            out,
            "  {:?} -> {:?};",
            dag[from].id().as_str(),
            dag[to].id().as_str()
        );
    }
    out.push_str("}\n");
    out
}

/// Mermaid (`flowchart LR`): tasks as nodes named `t<index>` labelled with their ids,
/// groups as subgraphs.
pub(super) fn mermaid(dag: &Dag) -> String {
    let mut out = String::from("flowchart LR\n");
    nest(dag, None, 1, &mut out, &MERMAID);
    for (from, to) in edges(dag) {
        let _ = writeln!(out, "  t{} --> t{}", from.get(), to.get());
    }
    out
}

/// A task group as the text formats show it.
struct GroupView<'a> {
    index: usize,
    id: &'a str,
    /// Its own id, `[mapped]` after a mapped group's.
    label: String,
    tooltip: Option<&'a str>,
}

/// How one text format writes a task and opens and closes a group.
struct Nesting {
    task: fn(&Task, TaskIndex, &str, &mut String),
    open: fn(&GroupView<'_>, &str, &mut String),
    close: fn(&str, &mut String),
}

const DOT: Nesting = Nesting {
    task: |task, _, indent, out| {
        let _ = writeln!(out, "{indent}{:?};", task.id().as_str());
    },
    open: |group, indent, out| {
        let _ = writeln!(
            out,
            "{indent}subgraph {:?} {{",
            format!("cluster_{}", group.id)
        );
        let _ = writeln!(out, "{indent}  label={:?};", group.label);
        if let Some(tooltip) = group.tooltip {
            let _ = writeln!(out, "{indent}  tooltip={tooltip:?};");
        }
    },
    close: |indent, out| {
        let _ = writeln!(out, "{indent}}}");
    },
};

const MERMAID: Nesting = Nesting {
    task: |task, index, indent, out| {
        let _ = writeln!(
            out,
            "{indent}t{}[\"{}\"]",
            index.get(),
            mermaid_text(&task_label(task))
        );
    },
    open: |group, indent, out| {
        let _ = writeln!(
            out,
            "{indent}subgraph g{}[\"{}\"]",
            group.index,
            mermaid_text(&group.label)
        );
    },
    close: |indent, out| {
        let _ = writeln!(out, "{indent}end");
    },
};

/// The tasks directly in `group` (`None`: in no group), then its inner groups, nested.
fn nest(dag: &Dag, group: Option<usize>, depth: usize, out: &mut String, format: &Nesting) {
    let indent = "  ".repeat(depth);
    for index in dag.task_indices() {
        if dag[index].group() == group {
            (format.task)(&dag[index], index, &indent, out);
        }
    }
    for (index, inner) in dag.groups().iter().enumerate() {
        if inner.parent() != group {
            continue;
        }
        let view = GroupView {
            index,
            id: inner.id(),
            label: match dag.group_mapping(index) {
                Some(_) => format!("{} [mapped]", inner.label()),
                None => inner.label().to_string(),
            },
            tooltip: inner.tooltip(),
        };
        (format.open)(&view, &indent, out);
        nest(dag, Some(index), depth + 1, out, format);
        (format.close)(&indent, out);
    }
}

/// Every edge, upstream task first, in the DAG's order.
fn edges(dag: &Dag) -> impl Iterator<Item = (TaskIndex, TaskIndex)> + '_ {
    dag.task_indices()
        .flat_map(move |from| dag[from].downstream().iter().map(move |&to| (from, to)))
}

/// A task's label: its id, with `[mapped]` when it runs as several instances.
fn task_label(task: &Task) -> String {
    if task.is_mapped() {
        format!("{} [mapped]", task.id())
    } else {
        task.id().to_string()
    }
}

/// Mermaid's escape for a quoted label.
fn mermaid_text(text: &str) -> String {
    text.replace('"', "#quot;")
}

// ---- SVG ---------------------------------------------------------------------------------

/// Width of one character of the labels' monospace font, in pixels.
const CHAR_WIDTH: usize = 7;
const BOX_HEIGHT: usize = 28;
const ROW_GAP: usize = 16;
const COLUMN_GAP: usize = 56;
const MARGIN: usize = 16;

/// Where the layout put a task.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Placed {
    pub(super) column: usize,
    pub(super) row: usize,
    pub(super) x: usize,
    pub(super) y: usize,
    pub(super) width: usize,
}

/// A layered layout: each task in the column of its longest path from a root, and within
/// a column ordered by the mean row of its upstream tasks (fewer crossings), then by
/// declaration.
pub(super) fn layout(dag: &Dag) -> Vec<Placed> {
    let plan = Plan::compile(dag);
    let mut column = vec![0usize; dag.tasks().len()];
    for &task in plan.topological_order() {
        for &up in dag[task].upstream() {
            column[task.get()] = column[task.get()].max(column[up.get()] + 1);
        }
    }
    let columns = column.iter().max().map_or(0, |c| c + 1);
    let mut row = vec![0usize; dag.tasks().len()];
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); columns];
    for (task, &c) in column.iter().enumerate() {
        members[c].push(task);
    }
    for tasks in &mut members {
        // Upstream columns are placed already: sort by the mean of their rows.
        let key = |task: usize| -> f64 {
            let ups = dag[TaskIndex::new(task)].upstream();
            if ups.is_empty() {
                return task as f64;
            }
            ups.iter().map(|u| row[u.get()] as f64).sum::<f64>() / ups.len() as f64
        };
        tasks.sort_by(|&a, &b| key(a).total_cmp(&key(b)).then(a.cmp(&b)));
        for (r, &task) in tasks.iter().enumerate() {
            row[task] = r;
        }
    }
    let label_width = |task: usize| task_label(&dag[TaskIndex::new(task)]).chars().count();
    let widths: Vec<usize> = members
        .iter()
        .map(|tasks| tasks.iter().map(|&t| label_width(t)).max().unwrap_or(0) * CHAR_WIDTH + 2 * 10)
        .collect();
    let mut lefts = Vec::with_capacity(columns);
    let mut x = MARGIN;
    for width in &widths {
        lefts.push(x);
        x += width + COLUMN_GAP;
    }
    (0..dag.tasks().len())
        .map(|task| Placed {
            column: column[task],
            row: row[task],
            x: lefts[column[task]],
            y: MARGIN + row[task] * (BOX_HEIGHT + ROW_GAP),
            width: widths[column[task]],
        })
        .collect()
}

/// An SVG of the DAG (see [`layout`]): boxes, and curved arrows from a task's right side
/// to its downstream tasks' left sides.
pub(super) fn svg(dag: &Dag) -> String {
    let placed = layout(dag);
    let width = placed.iter().map(|p| p.x + p.width).max().unwrap_or(0) + MARGIN + 4;
    let height = placed.iter().map(|p| p.y + BOX_HEIGHT).max().unwrap_or(0) + MARGIN + 4;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"monospace\" font-size=\"12\">"
    );
    let _ = writeln!(out, "  <title>{}</title>", xml_text(dag.id().as_str()));
    out.push_str(
        "  <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" \
         markerWidth=\"8\" markerHeight=\"8\" orient=\"auto-start-reverse\">\
         <path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#555\"/></marker></defs>\n",
    );
    for (from, to) in edges(dag) {
        let (a, b) = (placed[from.get()], placed[to.get()]);
        let (x1, y1) = (a.x + a.width, a.y + BOX_HEIGHT / 2);
        let (x2, y2) = (b.x, b.y + BOX_HEIGHT / 2);
        let bend = (x2 - x1) / 2;
        let _ = writeln!(
            out,
            "  <path class=\"edge\" d=\"M {x1} {y1} C {} {y1}, {} {y2}, {x2} {y2}\" \
             fill=\"none\" stroke=\"#555\" marker-end=\"url(#arrow)\"/>",
            x1 + bend,
            x2 - bend
        );
    }
    for (index, p) in placed.iter().enumerate() {
        let task = &dag[TaskIndex::new(index)];
        let dashed = match task.role() {
            TaskRole::Work => "",
            TaskRole::Setup | TaskRole::Teardown { .. } => " stroke-dasharray=\"4 3\"",
        };
        let _ = writeln!(out, "  <g class=\"task\">");
        let mut title = task.id().to_string();
        if let Some(group) = task.group_id() {
            let _ = write!(title, " (group {group})");
        }
        let _ = writeln!(out, "    <title>{}</title>", xml_text(&title));
        if task.is_mapped() {
            // A stack: the instances behind the task.
            let _ = writeln!(
                out,
                "    <rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{BOX_HEIGHT}\" rx=\"4\" \
                 fill=\"#eef3fb\" stroke=\"#7a8fb0\"{dashed}/>",
                p.x + 4,
                p.y - 4,
                p.width
            );
        }
        let _ = writeln!(
            out,
            "    <rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{BOX_HEIGHT}\" rx=\"4\" \
             fill=\"#f7f9fc\" stroke=\"#34495e\"{dashed}/>",
            p.x, p.y, p.width
        );
        let _ = writeln!(
            out,
            "    <text x=\"{}\" y=\"{}\">{}</text>",
            p.x + 10,
            p.y + BOX_HEIGHT / 2 + 4,
            xml_text(&task_label(task))
        );
        let _ = writeln!(out, "  </g>");
    }
    out.push_str("</svg>\n");
    out
}

/// Text made safe for XML content and attributes.
fn xml_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{DagBuilder, TaskGroup};
    use crate::task::{TaskError, TaskSpec};

    fn step(name: &str) -> TaskSpec {
        TaskSpec::from_sync(name, |_, _| Ok::<u8, TaskError>(1))
    }

    /// `start >> outer(a, inner[mapped](b))`, and `start >> end`.
    fn grouped() -> Dag {
        let mut b = DagBuilder::new("d");
        let start = b.add_task(step("start")).finish::<u8>();
        let outer = b.group(TaskGroup::new("outer").tooltip("the outside"), |b| {
            b.add_task(step("a"));
            b.expand_group(TaskGroup::new("inner"), |b, map| {
                let x = map.expand(vec![1_u8, 2]);
                b.add_task(step("b").param::<u8>("x")).input(x);
            });
        });
        let end = b.add_task(step("end")).finish::<u8>();
        b.set_downstream(&[start.any()], &[outer.group.any(), end.any()]);
        b.build().unwrap()
    }

    #[test]
    fn dot_draws_task_groups_as_nested_clusters() {
        let text = dot(&grouped());
        let expected = "digraph \"d\" {\n  rankdir=LR;\n  \"start\";\n  \"end\";\n  \
            subgraph \"cluster_outer\" {\n    label=\"outer\";\n    tooltip=\"the outside\";\n    \
            \"outer.a\";\n    subgraph \"cluster_outer.inner\" {\n      label=\"inner [mapped]\";\n      \
            \"outer.inner.b\";\n    }\n  }\n  \"start\" -> \"outer.a\";\n  \
            \"start\" -> \"outer.inner.b\";\n  \"start\" -> \"end\";\n}\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn mermaid_draws_groups_as_subgraphs() {
        let text = mermaid(&grouped());
        let expected = "flowchart LR\n  t0[\"start\"]\n  t3[\"end\"]\n  \
            subgraph g0[\"outer\"]\n    t1[\"outer.a\"]\n    subgraph g1[\"inner [mapped]\"]\n      \
            t2[\"outer.inner.b [mapped]\"]\n    end\n  end\n  t0 --> t1\n  t0 --> t2\n  t0 --> t3\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn the_layout_puts_each_task_after_all_of_its_upstream_tasks_and_never_two_in_one_place() {
        // A diamond with a long side: a -> b -> c -> e, a -> d -> e.
        let mut b = DagBuilder::new("diamond");
        let node = |b: &mut DagBuilder, name: &str| b.add_task(step(name)).finish::<u8>().any();
        let (a, bb, c, d, e) = (
            node(&mut b, "a"),
            node(&mut b, "b"),
            node(&mut b, "c"),
            node(&mut b, "d"),
            node(&mut b, "e"),
        );
        b.chain(&[&[a], &[bb], &[c], &[e]]);
        b.chain(&[&[a], &[d], &[e]]);
        let dag = b.build().unwrap();
        let placed = layout(&dag);
        let column = |id: &str| placed[dag.task_index(id).unwrap().get()].column;
        assert_eq!(
            ["a", "b", "c", "d", "e"].map(column),
            [0, 1, 2, 1, 3],
            "the longest path decides the column"
        );
        for (from, to) in edges(&dag) {
            let (p, q) = (placed[from.get()], placed[to.get()]);
            assert!(p.x + p.width < q.x, "an edge goes left to right");
        }
        for (i, p) in placed.iter().enumerate() {
            for q in &placed[i + 1..] {
                assert!(
                    (p.column, p.row) != (q.column, q.row),
                    "{p:?} and {q:?} overlap"
                );
            }
        }
    }

    #[test]
    fn the_svg_has_a_box_per_task_an_arrow_per_edge_and_escapes_its_text() {
        let dag = grouped();
        let svg = svg(&dag);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<g class=\"task\">").count(), dag.tasks().len());
        assert_eq!(
            svg.matches("<path class=\"edge\"").count(),
            edges(&dag).count()
        );
        assert!(svg.contains("outer.inner.b [mapped]"));
        assert!(svg.contains("<title>outer.a (group outer)</title>"));
        // Every element opened is closed: a rough well-formedness check.
        assert_eq!(svg.matches("<g ").count(), svg.matches("</g>").count());
        assert_eq!(xml_text("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }
}

//! The compiled plan of a DAG: every graph fact that deciding a run needs, derived once
//! from a validated [`Dag`] and keyed by the dense [`TaskIndex`].
//!
//! The [`Dag`] is the declaration (tasks, their options, their edges as declared); the
//! plan is what the scheduler reads on its hot path: the topological order, each task's
//! in-degree and dependents in one flat array, the priorities of Airflow's `downstream`
//! weight rule, descendants (for short-circuits and `clear --downstream`) and the shape's
//! fingerprint that a run records.

use crate::graph::algo;
use crate::graph::{Dag, Task};
use crate::ids::{StableHash, TaskIndex};
use crate::xcom::list::MapMode;

/// A DAG compiled for running: immutable, cheap to query by [`TaskIndex`].
#[derive(Debug)]
pub struct Plan<'d> {
    dag: &'d Dag,
    /// Every task, each after all of its upstream tasks.
    order: Vec<TaskIndex>,
    /// Per task, how many upstream tasks it waits for.
    in_degree: Vec<u32>,
    /// Per task, where its dependents start in `dependents` (one more entry than tasks).
    dependents_at: Vec<u32>,
    /// Every task's dependents, task after task.
    dependents: Vec<TaskIndex>,
    /// Per task, its own weight plus the weights of everything downstream of it.
    priority: Vec<i64>,
    /// Per task, whether its final state decides the run's (see
    /// [`Plan::decides_run_state`]).
    deciders: Vec<bool>,
    fingerprint: String,
}

impl<'d> Plan<'d> {
    /// Compiles `dag`: linear in its tasks and edges, apart from exact priorities (see
    /// [`Plan::priority`]).
    pub fn compile(dag: &'d Dag) -> Self {
        let tasks = dag.tasks();
        let order = algo::topological_order(&tasks.iter().map(Task::upstream).collect::<Vec<_>>());
        let in_degree = tasks
            .iter()
            .map(|t| u32::try_from(t.upstream().len()).unwrap_or(u32::MAX))
            .collect();
        let mut dependents_at = Vec::with_capacity(tasks.len() + 1);
        let mut dependents = Vec::new();
        for task in tasks {
            dependents_at.push(u32::try_from(dependents.len()).unwrap_or(u32::MAX));
            dependents.extend_from_slice(task.downstream());
        }
        dependents_at.push(u32::try_from(dependents.len()).unwrap_or(u32::MAX));
        let mut plan = Plan {
            dag,
            order,
            in_degree,
            dependents_at,
            dependents,
            priority: Vec::new(),
            deciders: deciders(tasks),
            fingerprint: fingerprint(dag),
        };
        plan.priority = plan.priorities();
        plan
    }

    /// The DAG this plan was compiled from.
    pub fn dag(&self) -> &'d Dag {
        self.dag
    }

    /// How many tasks the DAG has.
    pub fn len(&self) -> usize {
        self.in_degree.len()
    }

    /// Whether the DAG has no task (a built DAG always has one).
    pub fn is_empty(&self) -> bool {
        self.in_degree.is_empty()
    }

    /// The task at `index`.
    pub fn task(&self, index: TaskIndex) -> &'d Task {
        &self.dag[index]
    }

    /// Every task index, in declaration order.
    pub fn indices(&self) -> impl DoubleEndedIterator<Item = TaskIndex> + ExactSizeIterator {
        TaskIndex::all(self.len())
    }

    /// Every task, each after all of its upstream tasks (stable by index).
    pub fn topological_order(&self) -> &[TaskIndex] {
        &self.order
    }

    /// How many upstream tasks `index` waits for.
    pub fn in_degree(&self, index: TaskIndex) -> u32 {
        self.in_degree[index.get()]
    }

    /// Whether `index` waits for no upstream task.
    pub fn is_root(&self, index: TaskIndex) -> bool {
        self.in_degree(index) == 0
    }

    /// The tasks that wait for `index`, ascending.
    pub fn dependents(&self, index: TaskIndex) -> &[TaskIndex] {
        let i = index.get();
        &self.dependents[self.dependents_at[i] as usize..self.dependents_at[i + 1] as usize]
    }

    /// Whether a failure of the task fails its run, as Airflow decides a run's state on
    /// its "effective leaves": tasks whose downstream tasks are all teardowns without
    /// `on_failure_fail_dagrun`, not being one themselves (a DAG of such teardowns only
    /// falls back to its leaves).
    pub fn decides_run_state(&self, index: TaskIndex) -> bool {
        self.deciders[index.get()]
    }

    /// Whether nothing waits for `index`.
    pub fn is_leaf(&self, index: TaskIndex) -> bool {
        self.dependents(index).is_empty()
    }

    /// Every task downstream of `index` (not itself), ascending.
    pub fn descendants(&self, index: TaskIndex) -> Vec<TaskIndex> {
        self.descendants_of(std::iter::once(index))
    }

    /// Every task downstream of any of `roots` (a root is in it only when it is downstream
    /// of another root), ascending.
    pub fn descendants_of(&self, roots: impl IntoIterator<Item = TaskIndex>) -> Vec<TaskIndex> {
        let mut seen = vec![false; self.len()];
        let mut stack: Vec<TaskIndex> = Vec::new();
        for root in roots {
            stack.extend_from_slice(self.dependents(root));
        }
        let mut found = Vec::new();
        while let Some(d) = stack.pop() {
            if !std::mem::replace(&mut seen[d.get()], true) {
                found.push(d);
                stack.extend_from_slice(self.dependents(d));
            }
        }
        found.sort_unstable();
        found
    }

    /// The priority of `index` under Airflow's `downstream` weight rule: its own weight
    /// plus the weights of all tasks downstream of it, each counted once. DAGs of more than
    /// [`EXACT_PRIORITY_TASKS`] tasks get an approximation (see there).
    pub fn priority(&self, index: TaskIndex) -> i64 {
        self.priority[index.get()]
    }

    /// A hash of the DAG's shape (task ids, edges, types), recorded with each run so a
    /// run started by another build is recognised (see [`fingerprint`]).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    fn priorities(&self) -> Vec<i64> {
        let weight = |i: TaskIndex| i64::from(self.task(i).priority_weight());
        let mut priority = vec![0_i64; self.len()];
        if self.len() <= EXACT_PRIORITY_TASKS {
            // Each task's set of descendants, from the leaves up: quadratic at worst, so
            // kept for DAGs of moderate size.
            let mut below: Vec<Vec<TaskIndex>> = vec![Vec::new(); self.len()];
            for &i in self.order.iter().rev() {
                let mut set = self.dependents(i).to_vec();
                for &d in self.dependents(i) {
                    set.extend_from_slice(&below[d.get()]);
                }
                set.sort_unstable();
                set.dedup();
                priority[i.get()] = set
                    .iter()
                    .fold(weight(i), |acc, &d| acc.saturating_add(weight(d)));
                below[i.get()] = set;
            }
        } else {
            for &i in self.order.iter().rev() {
                priority[i.get()] = self
                    .dependents(i)
                    .iter()
                    .fold(weight(i), |acc, &d| acc.saturating_add(priority[d.get()]));
            }
        }
        priority
    }
}

/// DAGs up to this many tasks get exact priorities. Above it a descendant reached along
/// several paths is counted once per path: the order of priorities along a chain, and
/// "more work downstream first", are kept, without a quadratic cost.
pub const EXACT_PRIORITY_TASKS: usize = 2048;

/// Per task, whether it is one of the DAG's effective leaves ([`Plan::decides_run_state`]).
fn deciders(tasks: &[Task]) -> Vec<bool> {
    let effective: Vec<bool> = tasks
        .iter()
        .map(|task| {
            task.counts_toward_run_state()
                && task
                    .downstream()
                    .iter()
                    .all(|&down| !tasks[down.get()].counts_toward_run_state())
        })
        .collect();
    if effective.contains(&true) {
        effective
    } else {
        tasks
            .iter()
            .map(|task| task.downstream().is_empty())
            .collect()
    }
}

/// A stable hash (FNV-1a, 64 bits) of what a run depends on: task ids, their edges, their
/// parameter and output types, and the fields of multiple-outputs values they take. Two builds with equal fingerprints can continue each
/// other's runs.
pub fn fingerprint(dag: &Dag) -> String {
    let mut hash = StableHash::default();
    for task in dag.tasks() {
        hash = hash.text(task.id().as_str());
        for param in task.spec().params() {
            hash = hash.text(param.type_name());
        }
        // Which field a parameter takes changes what it reads; none changes nothing.
        for index in 0..task.spec().params().len() {
            if let Some(field) = task.input_field(index) {
                hash = hash.text(&format!("{index}.{field}"));
            }
        }
        hash = hash.text(task.spec().output().type_name());
        // A mapped task stores instances by map index, an unmapped one does not.
        hash = hash.text(match task.map_mode() {
            None => "",
            Some(MapMode::Product) => "mapped",
            Some(MapMode::Zip) => "zipped",
        });
        if task.mapped_group().is_some() {
            hash = hash.text("in a mapped group");
        }
        for &u in task.upstream() {
            hash = hash.text(dag[u].id().as_str());
        }
    }
    format!("{:016x}", hash.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{AnyNode, DagBuilder};
    use crate::task::{TaskError, TaskSpec};

    fn source(name: &str) -> TaskSpec {
        TaskSpec::from_sync(name, |_, _| Ok::<u64, TaskError>(1))
    }

    /// A DAG of tasks `names` with weights `weights`, and `edges` between their positions.
    fn dag(names: &[&str], weights: &[i32], edges: &[(usize, usize)]) -> Dag {
        let mut b = DagBuilder::new("d");
        let nodes: Vec<AnyNode> = names
            .iter()
            .zip(weights)
            .map(|(name, &w)| {
                b.add_task(source(name).priority_weight(w))
                    .finish::<u64>()
                    .any()
            })
            .collect();
        for &(u, d) in edges {
            b.set_downstream(&[nodes[u]], &[nodes[d]]);
        }
        b.build().unwrap()
    }

    fn ix(v: &[usize]) -> Vec<TaskIndex> {
        v.iter().copied().map(TaskIndex::new).collect()
    }

    #[test]
    fn in_degrees_dependents_order_and_descendants() {
        // a -> b -> d, a -> c -> d, e alone; declared c before b.
        let dag = dag(
            &["a", "c", "b", "d", "e"],
            &[1; 5],
            &[(0, 2), (0, 1), (2, 3), (1, 3)],
        );
        let plan = Plan::compile(&dag);
        let at = |id| dag.task_index(id).unwrap();
        assert_eq!(plan.len(), 5);
        assert_eq!(plan.in_degree(at("d")), 2);
        assert!(plan.is_root(at("a")) && plan.is_root(at("e")));
        assert_eq!(plan.dependents(at("a")), ix(&[1, 2]));
        assert!(plan.is_leaf(at("d")) && plan.is_leaf(at("e")) && !plan.is_leaf(at("b")));
        assert_eq!(plan.descendants(at("a")), ix(&[1, 2, 3]));
        assert_eq!(plan.descendants(at("d")), ix(&[]));
        assert_eq!(plan.descendants_of([at("b"), at("e")]), ix(&[3]));
        let order = plan.topological_order();
        let pos = |id| order.iter().position(|&x| x == at(id)).unwrap();
        assert!(pos("a") < pos("b") && pos("a") < pos("c"));
        assert!(pos("b") < pos("d") && pos("c") < pos("d"));
        assert_eq!(order.len(), 5);
        assert_eq!(plan.task(at("c")).id().as_str(), "c");
    }

    #[test]
    fn priorities_sum_downstream_weights_once() {
        // a -> b -> d, a -> c -> d: d is below a along two paths but counts once.
        let dag = dag(
            &["a", "b", "c", "d"],
            &[1, 2, 3, 10],
            &[(0, 1), (0, 2), (1, 3), (2, 3)],
        );
        let plan = Plan::compile(&dag);
        let p = |t: &str| plan.priority(dag.task_index(t).unwrap());
        assert_eq!((p("a"), p("b"), p("c"), p("d")), (16, 12, 13, 10));
    }

    #[test]
    fn large_dags_keep_priorities_decreasing_along_a_chain() {
        let n = EXACT_PRIORITY_TASKS + 10;
        let names: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let edges: Vec<(usize, usize)> = (1..n).map(|i| (i - 1, i)).collect();
        let dag = dag(&names, &vec![1; n], &edges);
        let plan = Plan::compile(&dag);
        let first = plan.priority(TaskIndex::new(0));
        assert_eq!(first, i64::try_from(n).unwrap());
        assert_eq!(plan.priority(TaskIndex::new(n - 1)), 1);
    }

    #[test]
    fn fingerprints_change_with_the_shape_only() {
        let build = |extra_edge: bool, retries: u32| {
            let mut b = DagBuilder::new("d");
            let a = b
                .add_task(source("a").retries(retries))
                .finish::<u64>()
                .any();
            let c = b.add_task(source("c")).finish::<u64>().any();
            if extra_edge {
                b.set_downstream(&[a], &[c]);
            }
            let dag = b.build().unwrap();
            assert_eq!(Plan::compile(&dag).fingerprint(), fingerprint(&dag));
            fingerprint(&dag)
        };
        assert_eq!(
            build(false, 0),
            build(false, 3),
            "options do not change the shape"
        );
        assert_ne!(build(false, 0), build(true, 0));
        assert_eq!(build(true, 0).len(), 16);
    }
}

//! Task groups (Airflow's `TaskGroup` and `@task_group`): a named set of tasks whose ids
//! carry the group's id as a prefix (`prep.clean`), whose tasks inherit the group's
//! `default_args`, and which is ordered as a whole with `>>` (its leaves before what
//! follows, what precedes before its roots).
//!
//! ```
//! use flow_runtime::prelude::*;
//! use flow_runtime::graph::TaskGroup;
//!
//! #[task]
//! fn extract() -> Vec<u32> { vec![3, 1, 2] }
//! #[task]
//! fn clean(rows: Vec<u32>) -> Vec<u32> { rows.into_iter().filter(|r| *r > 1).collect() }
//! #[task]
//! fn report() {}
//!
//! let mut dag = DagBuilder::new("etl");
//! let rows = extract::node(&mut dag);
//! let prep = dag.group(
//!     TaskGroup::new("prep").default_args(TaskOptions::default().with_retries(3)),
//!     |dag| clean::node(dag, rows),                       // the group's output
//! );
//! let done = report::node(&mut dag);
//! dag.set_downstream(&[prep.group.any()], &[done.any()]); // `prep >> report`
//! let dag = dag.build().unwrap();
//! let clean = dag.task("prep.clean").unwrap();
//! assert_eq!((clean.group_id(), clean.retries()), (Some("prep"), 3));
//! assert_eq!(dag.task("report").unwrap().upstream().len(), 1);
//! ```

use std::marker::PhantomData;

use crate::task::SplitListFn;
use crate::task::TaskOptions;
use crate::xcom::XComValue;
use crate::xcom::list::MapMode;

use super::node::{AnyNode, IntoMapped, MapSource, MappedNode, Node, NodeKind, NodeRef};

/// The options of a task group, given to [`DagBuilder::group`](super::DagBuilder::group)
/// (Airflow's `TaskGroup(..)` arguments; `#[task_group(..)]` writes them for you).
#[derive(Clone, Debug, Default)]
pub struct TaskGroup {
    pub(crate) id: String,
    pub(crate) prefix_group_id: bool,
    pub(crate) tooltip: Option<String>,
    pub(crate) default_args: TaskOptions,
    pub(crate) add_suffix_on_collision: bool,
}

impl TaskGroup {
    /// A group with this id. With the default `prefix_group_id(true)` the id is a prefix of
    /// its tasks' and inner groups' ids, so it may hold letters, digits, `_` and `-` only.
    pub fn new(id: impl Into<String>) -> Self {
        TaskGroup {
            id: id.into(),
            prefix_group_id: true,
            ..TaskGroup::default()
        }
    }

    /// Whether the ids of the group's tasks and inner groups are prefixed with its id
    /// (`prep.clean`); default `true`, as in Airflow.
    pub fn prefix_group_id(mut self, prefix: bool) -> Self {
        self.prefix_group_id = prefix;
        self
    }

    /// A description for people (the UI's tooltip).
    pub fn tooltip(mut self, tooltip: impl Into<String>) -> Self {
        self.tooltip = Some(tooltip.into());
        self
    }

    /// Options the group's tasks inherit unless they set them: they override the
    /// enclosing group's and the DAG's `default_args`, option by option.
    pub fn default_args(mut self, defaults: TaskOptions) -> Self {
        self.default_args = defaults;
        self
    }

    /// Whether an id already used in the DAG gets Airflow's suffix (`prep__1`,
    /// `prep__2`) instead of failing the build; default `false`, `true` for groups made by
    /// `#[task_group]` functions (as for Airflow's `@task_group`).
    pub fn add_suffix_on_collision(mut self, suffix: bool) -> Self {
        self.add_suffix_on_collision = suffix;
        self
    }
}

/// A handle to a task group of a [`DagBuilder`](super::DagBuilder), for ordering: as an
/// upstream it stands for the group's leaves (its tasks with nothing downstream inside the
/// group), as a downstream for its roots (nothing upstream inside the group), as of the
/// moment the edge is added, as in Airflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GroupRef {
    pub(crate) node: AnyNode,
}

impl GroupRef {
    /// The untyped handle, for [`DagBuilder::set_downstream`](super::DagBuilder::set_downstream).
    pub fn any(self) -> AnyNode {
        self.node
    }
}

impl NodeRef for GroupRef {
    fn any_node(&self) -> AnyNode {
        self.node
    }
}

/// What [`DagBuilder::group`](super::DagBuilder::group) returns: the group's handle and
/// what its body returned.
#[derive(Clone, Copy, Debug)]
pub struct Grouped<R> {
    /// The group, for ordering it as a whole.
    pub group: GroupRef,
    /// What the body returned, such as the `Node` of its last task.
    pub output: R,
}

/// The lists a mapped task group is expanded over (Airflow's `group.expand(..)`), declared
/// in its body by [`DagBuilder::expand_group`](super::DagBuilder::expand_group): each
/// [`GroupMap::expand`] adds one list and returns the handle of its element, which the
/// group's tasks take like any task's output. Every task of the group then runs once per
/// element (per combination of elements), and the instances with the same map index form
/// one pass through the group.
#[derive(Debug)]
pub struct GroupMap {
    builder: u32,
    group: u32,
    pub(crate) sources: Vec<MapSource>,
    /// Per list, how its value splits into elements (by the element type).
    pub(crate) splitters: Vec<SplitListFn>,
    pub(crate) mode: MapMode,
    /// Parameters of a `#[task_group]` function that its call gave no value.
    pub(crate) missing: Vec<String>,
}

impl GroupMap {
    pub(crate) fn new(builder: u32, group: usize) -> Self {
        GroupMap {
            builder,
            group: u32::try_from(group).unwrap_or(u32::MAX),
            sources: Vec::new(),
            splitters: Vec::new(),
            mode: MapMode::Product,
            missing: Vec::new(),
        }
    }

    /// Maps the group over `values`: the returned handle stands, in the instance with map
    /// index `i`, for the `i`-th element (several lists combine as a cross product, the
    /// last varying fastest, unless [`GroupMap::zip`]).
    pub fn expand<T: XComValue>(&mut self, values: impl IntoMapped<T>) -> Node<T> {
        self.expand_source(values.into_mapped())
    }

    /// [`GroupMap::expand`] over a list already converted (what `#[task_group]` emits).
    #[doc(hidden)]
    pub fn expand_source<T: XComValue>(&mut self, source: MapSource) -> Node<T> {
        let position = u32::try_from(self.sources.len()).unwrap_or(u32::MAX);
        self.sources.push(source);
        self.splitters.push(crate::xcom::list::split::<T>);
        Node {
            node: AnyNode {
                builder: self.builder,
                index: self.group,
                kind: NodeKind::Argument { position },
            },
            field: None,
            _output: PhantomData,
        }
    }

    /// Combines the lists element by element instead of as a cross product (Airflow's
    /// `zip`), stopping at the shortest.
    pub fn zip(&mut self) -> &mut Self {
        self.mode = MapMode::Zip;
        self
    }

    /// Records that the group function's parameter `param` was given no value (reported
    /// by [`DagBuilder::build`](super::DagBuilder::build)).
    #[doc(hidden)]
    pub fn missing(&mut self, param: &str) {
        self.missing.push(param.to_string());
    }
}

/// What the body of a mapped task group may return, and what the group then stands for
/// downstream: a task's `Node<T>` becomes the `MappedNode<T>` of its results (one per
/// pass, in map order), nothing stays nothing.
#[diagnostic::on_unimplemented(
    message = "a mapped task group cannot return `{Self}`",
    label = "a mapped task group returns the output of one of its tasks (`Node<T>`) or nothing",
    note = "downstream, a mapped task group's output is the list of that task's results, one per element"
)]
pub trait MappedGroupOutput {
    /// What the expanded group returns.
    type Mapped;
    /// Converts the body's value.
    fn mapped(self) -> Self::Mapped;
    /// What a body that could not run (a parameter was given nothing, reported by
    /// `build`) returns: a handle that adds no edge and no further error.
    #[doc(hidden)]
    fn unbuilt() -> Self;
}

impl MappedGroupOutput for () {
    type Mapped = ();
    fn mapped(self) {}
    fn unbuilt() {}
}

impl<T> MappedGroupOutput for Node<T> {
    type Mapped = MappedNode<T>;
    fn mapped(self) -> MappedNode<T> {
        MappedNode::new(self.node)
    }
    fn unbuilt() -> Self {
        Node {
            node: AnyNode {
                builder: 0,
                index: 0,
                kind: NodeKind::Unbuilt,
            },
            field: None,
            _output: PhantomData,
        }
    }
}

/// A parameter of a `#[task_group]` function that `.expand(..)` can map over lists of
/// `E`: a `Node<E>`, which stands for one element.
#[diagnostic::on_unimplemented(
    message = "`.expand(..)` maps a task group over a parameter of type `{Self}`, which is not a `Node<{E}>`",
    label = "a mapped parameter of a task group is declared `Node<T>`: it stands for one element of the list",
    note = "declare the parameter as `Node<T>`, or give it one value with `.partial(name = value)`"
)]
pub trait GroupParamOf<E> {
    /// The parameter's value for the element handle `node`.
    fn of_argument(node: Node<E>) -> Self;
}

impl<E> GroupParamOf<E> for Node<E> {
    fn of_argument(node: Node<E>) -> Self {
        node
    }
}

/// One argument of a mapped call of a `#[task_group]` function, as its `.partial(..)` /
/// `.expand(..)` collector keeps it until the group is added.
#[doc(hidden)]
pub enum GroupArg<T> {
    /// Not given (reported by `build`).
    Missing,
    /// One value for every pass (`.partial(name = value)`).
    Value(T),
    /// A list to map over (`.expand(name = list)`): declares it and returns the element's
    /// handle.
    List(Box<dyn FnOnce(&mut GroupMap) -> T>),
}

impl<T> GroupArg<T> {
    /// The argument's value inside the group's body; `None` (recorded in `map`) if the
    /// call gave it nothing.
    pub fn take(self, map: &mut GroupMap, param: &str) -> Option<T> {
        match self {
            GroupArg::Missing => {
                map.missing(param);
                None
            }
            GroupArg::Value(value) => Some(value),
            GroupArg::List(declare) => Some(declare(map)),
        }
    }
}

/// A task group of a built [`Dag`](super::Dag).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupInfo {
    pub(crate) id: String,
    pub(crate) label: String,
    pub(crate) parent: Option<usize>,
    pub(crate) tooltip: Option<String>,
}

impl GroupInfo {
    /// The group's id, prefixed by its enclosing groups' (`outer.inner`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its own id, without the prefix (`inner`).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The enclosing group, an index into [`Dag::groups`](super::Dag::groups).
    pub fn parent(&self) -> Option<usize> {
        self.parent
    }

    /// Its description, if any.
    pub fn tooltip(&self) -> Option<&str> {
        self.tooltip.as_deref()
    }
}

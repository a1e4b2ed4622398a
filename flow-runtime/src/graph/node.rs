//! Handles to the tasks of a [`DagBuilder`](super::DagBuilder)(super::DagBuilder) and the arguments they
//! take: a [`Node`] per task, a [`MappedNode`] per mapped task, and the [`Input`] each
//! parameter is bound to (an upstream's output, a literal, or a list to map over).

use std::marker::PhantomData;

use crate::xcom::codec::CodecError;
use crate::xcom::field::Field;
use crate::xcom::{XComBlob, XComValue};

/// A typed handle to a task added to a [`DagBuilder`](super::DagBuilder): passing it as another task's
/// argument makes the edge. `T` is the task's output type.
pub struct Node<T> {
    pub(crate) node: AnyNode,
    /// Set for a field of a multiple-outputs task's output (`split.train`).
    pub(crate) field: Option<Field>,
    pub(crate) _output: PhantomData<fn() -> T>,
}

impl<T> Clone for Node<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Node<T> {}

impl<T> std::fmt::Debug for Node<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Node<{}>({})",
            std::any::type_name::<T>(),
            self.node.index
        )
    }
}

impl<T> Node<T> {
    /// The typed handle of the task at `node`; the caller vouches for `T`.
    #[doc(hidden)]
    pub fn of(node: AnyNode) -> Self {
        Node {
            node,
            field: None,
            _output: PhantomData,
        }
    }

    /// The typed handle of one field of the output of the task at `node` (what
    /// `#[derive(MultipleOutputs)]` generates); the caller vouches for `T`.
    #[doc(hidden)]
    pub fn with_field(node: AnyNode, field: Field) -> Self {
        Node {
            node,
            field: Some(field),
            _output: PhantomData,
        }
    }

    /// The field of the producer's output this node stands for, if it is one.
    pub fn field(&self) -> Option<Field> {
        self.field
    }

    /// The untyped handle, for ordering with [`DagBuilder::set_downstream`](crate::DagBuilder::set_downstream).
    pub fn any(self) -> AnyNode {
        self.node
    }
}

/// An untyped handle to a task, or to a task group, in a [`DagBuilder`](super::DagBuilder).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AnyNode {
    pub(crate) builder: u32,
    pub(crate) index: u32,
    pub(crate) kind: NodeKind,
}

/// What an [`AnyNode`] stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum NodeKind {
    /// A task; `index` is its position in the DAG.
    Task,
    /// A task group ([`super::GroupRef`]); `index` is the group's.
    Group,
    /// One element of a mapped task group's lists ([`super::GroupMap::expand`]); `index`
    /// is the group's, `position` the list's.
    Argument {
        /// Which of the group's lists.
        position: u32,
    },
    /// The output of a mapped task group whose body could not run because its call gave
    /// a parameter nothing: that is reported once, and this handle adds nothing.
    Unbuilt,
}

impl AnyNode {
    /// The task's position in the DAG, in the order tasks were added (for a group: the
    /// group's, in the order groups were opened).
    pub fn index(self) -> usize {
        self.index as usize
    }

    /// Whether this is a task group rather than a task.
    pub fn is_group(self) -> bool {
        self.kind == NodeKind::Group
    }
}

/// Anything that names a task node; used by `a >> b` in a `#[dag]` body.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a task node",
    label = "`>>` and `<<` order task nodes: task calls, variables bound to them, or `[..]` lists of them"
)]
pub trait NodeRef {
    /// The untyped node.
    fn any_node(&self) -> AnyNode;
}

impl<T> NodeRef for Node<T> {
    fn any_node(&self) -> AnyNode {
        self.node
    }
}

impl NodeRef for AnyNode {
    fn any_node(&self) -> AnyNode {
        *self
    }
}

/// One argument of a task call: the output of an upstream task or a literal value.
#[derive(Clone, Debug)]
pub enum Input {
    /// The return value of the task at this node.
    Upstream(AnyNode),
    /// One field of the return value of the task at this node (multiple outputs).
    Field(AnyNode, Field),
    /// A value fixed in the DAG definition.
    Literal(XComBlob),
    /// A literal that failed to serialize (reported by [`DagBuilder::build`](crate::DagBuilder::build)).
    Invalid(String),
    /// A list the task is mapped over: one task instance per element.
    Mapped(MapSource),
    /// No argument (reported by [`DagBuilder::build`](crate::DagBuilder::build)).
    Missing,
}

/// A value that can be passed where a task parameter of type `T` is expected: a `T`, a
/// `Node<T>` (the output of a task returning `T`), or a `&str` for a `String`.
#[diagnostic::on_unimplemented(
    message = "this argument does not fit a task parameter of type `{T}`",
    label = "expected a `{T}` value or the output of a task returning `{T}`, found `{Self}`",
    note = "a task's output can only be passed to a parameter of the same type"
)]
pub trait IntoInput<T> {
    /// Converts the argument.
    fn into_input(self) -> Input;
}

impl<T> IntoInput<T> for Node<T> {
    fn into_input(self) -> Input {
        match self.field {
            Some(field) => Input::Field(self.node, field),
            None => Input::Upstream(self.node),
        }
    }
}

impl<T: XComValue> IntoInput<T> for T {
    fn into_input(self) -> Input {
        match XComBlob::encode(&self) {
            Ok(blob) => Input::Literal(blob),
            Err(e) => Input::Invalid(e.to_string()),
        }
    }
}

impl IntoInput<String> for &str {
    fn into_input(self) -> Input {
        IntoInput::<String>::into_input(self.to_string())
    }
}

/// How many instances one mapped task may expand to unless the executor says otherwise
/// (Airflow's `max_map_length`).
pub const DEFAULT_MAX_MAP_LENGTH: usize = 100_000;

/// A typed handle to a mapped task: downstream it is the `Vec<T>` of its instances'
/// results in map order, and another task can be mapped over it.
pub struct MappedNode<T> {
    node: AnyNode,
    _output: PhantomData<fn() -> T>,
}

impl<T> MappedNode<T> {
    pub(crate) fn new(node: AnyNode) -> Self {
        Self {
            node,
            _output: PhantomData,
        }
    }

    /// The untyped handle, for ordering with [`crate::DagBuilder::set_downstream`].
    pub fn any(self) -> AnyNode {
        self.node
    }
}

impl<T> Clone for MappedNode<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for MappedNode<T> {}

impl<T> std::fmt::Debug for MappedNode<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MappedNode<{}>({})",
            std::any::type_name::<T>(),
            self.node.index()
        )
    }
}

impl<T> NodeRef for MappedNode<T> {
    fn any_node(&self) -> AnyNode {
        self.node
    }
}

/// The results of a mapped task reach a parameter of type `Vec<T>`.
impl<T> IntoInput<Vec<T>> for MappedNode<T> {
    fn into_input(self) -> Input {
        Input::Upstream(self.node)
    }
}

/// The list a mapped argument takes, before the DAG is built.
#[derive(Clone, Debug)]
pub enum MapSource {
    /// The output of a task returning a `Vec`, or the results of a mapped task.
    Upstream(AnyNode),
    /// Elements fixed in the DAG definition, each encoded.
    Literal(Vec<XComBlob>),
    /// A field of a multiple-outputs task's output (not supported yet: reported by
    /// `build`).
    Field(AnyNode, Field),
    /// A literal element that failed to serialize (reported by `build`).
    Invalid(String),
}

/// A list that a task parameter of type `T` can be mapped over: the output of a task
/// returning `Vec<T>`, a mapped task returning `T`, or a literal `Vec<T>` or array.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be mapped over as `{T}` values",
    label = "expected a list of `{T}`: the output of a task returning `Vec<{T}>`, a mapped task returning `{T}`, or a literal list",
    note = "`.expand(name = list)` makes one task instance per element of `list`; each element is passed as the parameter's type `{T}`"
)]
pub trait IntoMapped<T> {
    /// Converts the argument.
    fn into_mapped(self) -> MapSource;
}

impl<T> IntoMapped<T> for Node<Vec<T>> {
    fn into_mapped(self) -> MapSource {
        match self.field {
            Some(field) => MapSource::Field(self.node, field),
            None => MapSource::Upstream(self.node),
        }
    }
}

impl<T> IntoMapped<T> for MappedNode<T> {
    fn into_mapped(self) -> MapSource {
        MapSource::Upstream(self.node)
    }
}

fn literal<T: serde::Serialize>(values: impl IntoIterator<Item = T>) -> MapSource {
    let encoded: Result<Vec<XComBlob>, CodecError> = values
        .into_iter()
        .map(|value| XComBlob::encode(&value))
        .collect();
    match encoded {
        Ok(blobs) => MapSource::Literal(blobs),
        Err(e) => MapSource::Invalid(e.to_string()),
    }
}

impl<T: XComValue> IntoMapped<T> for Vec<T> {
    fn into_mapped(self) -> MapSource {
        literal(self)
    }
}

impl<T: XComValue, const N: usize> IntoMapped<T> for [T; N] {
    fn into_mapped(self) -> MapSource {
        literal(self)
    }
}

impl IntoMapped<String> for Vec<&str> {
    fn into_mapped(self) -> MapSource {
        literal(self)
    }
}

impl<const N: usize> IntoMapped<String> for [&str; N] {
    fn into_mapped(self) -> MapSource {
        literal(self)
    }
}

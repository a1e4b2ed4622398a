//! Dynamic task mapping: one task instance per element of a list known only at run time
//! (Airflow's `.expand()` / `.partial()`).
//!
//! A mapped argument takes a list: the output of a task returning `Vec<T>`, the results
//! of a mapped task (one element per instance that produced one, in map order), or a
//! literal list. Several mapped arguments combine as a cross product (the last argument
//! varies fastest, as in Airflow) or, with [`MapMode::Zip`], element by element, stopping
//! at the shortest list (Python's `zip`, which Airflow's uses).
//!
//! Downstream, a mapped task's output is the `Vec` of its instances' results in map order;
//! its node is a [`MappedNode<T>`].

use std::marker::PhantomData;

use crate::dag::{AnyNode, Input, IntoInput, Node, NodeRef};
use crate::xcom::codec::CodecError;
pub use crate::xcom::list::{MapMode, collect, element_positions, expansion_length};
use crate::xcom::{XComBlob, XComValue};

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
        MapSource::Upstream(self.any())
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

/// A call of a mapped task being put together, one named argument at a time (what
/// `task.partial(a = 1).expand(b = list)` in a `#[dag]` body becomes).
#[derive(Debug)]
pub struct MapCall {
    arguments: Vec<Option<Input>>,
}

impl MapCall {
    /// A call of a task with `params` parameters, none given yet.
    pub fn new(params: usize) -> Self {
        Self {
            arguments: vec![None; params],
        }
    }

    /// Gives parameter `position` one value for every instance.
    pub fn fixed(&mut self, position: usize, input: Input) {
        self.arguments[position] = Some(input);
    }

    /// Maps parameter `position` over a list.
    pub fn mapped(&mut self, position: usize, source: MapSource) {
        self.arguments[position] = Some(Input::Mapped(source));
    }

    /// Adds the mapped task to `dag`; a parameter given nothing is reported by
    /// [`crate::DagBuilder::build`].
    pub fn finish<T>(
        self,
        dag: &mut crate::DagBuilder,
        spec: crate::TaskSpec,
        mode: MapMode,
    ) -> MappedNode<T> {
        let mut task = dag.add_task(spec);
        for argument in self.arguments {
            task.push_input(argument.unwrap_or(Input::Missing));
        }
        if mode == MapMode::Zip {
            task.zip();
        }
        task.finish_mapped()
    }
}

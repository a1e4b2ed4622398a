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
//! its node is a [`MappedNode<T>`](super::MappedNode).

use super::builder::DagBuilder;
use super::node::{Input, MapSource, MappedNode};
use crate::task::{TaskOverride, TaskSpec};
use crate::xcom::list::MapMode;

/// A call of a mapped task being put together, one named argument at a time (what
/// `task.partial(a = 1).expand(b = list)` in a `#[dag]` body becomes).
#[derive(Debug)]
pub struct MapCall {
    arguments: Vec<Option<Input>>,
    over: Option<TaskOverride>,
}

impl MapCall {
    /// A call of a task with `params` parameters, none given yet.
    pub fn new(params: usize) -> Self {
        Self {
            arguments: vec![None; params],
            over: None,
        }
    }

    /// Gives this use of the task another id or other options
    /// (`task.r#override(..).expand(..)`).
    pub fn with_override(&mut self, over: TaskOverride) {
        self.over = Some(over);
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
    pub fn finish<T>(self, dag: &mut DagBuilder, spec: TaskSpec, mode: MapMode) -> MappedNode<T> {
        let spec = match &self.over {
            Some(over) => spec.overridden(over),
            None => spec,
        };
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

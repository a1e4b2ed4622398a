//! [`TaskOverride`]: another id and other options for one use of a task (Airflow's
//! `task.override(task_id=.., retries=..)`).

use std::time::Duration;

use super::options::{TaskOptions, task_option_table};
use super::spec::TaskSpec;
use crate::ids::TaskId;

/// Another id and other options for one use of a task in a DAG, leaving the task's other
/// uses as they are (Airflow's `task.override(..)`; in a `#[dag]` body,
/// `load.r#override(task_id = "load_eu", retries = 3)(args..)`).
///
/// The id given replaces the task's name: it is prefixed by the enclosing task groups'
/// ids and gets Airflow's suffix (`load_eu__1`) when used again, as the name would. Set
/// options replace the task's own; the others stay as the task declares them, else come
/// from `default_args`.
///
/// ```
/// use flow_runtime::prelude::*;
/// use flow_runtime::TaskOverride;
///
/// #[task(retries = 1)]
/// fn load(region: String) -> usize { region.len() }
///
/// let mut dag = DagBuilder::new("regions");
/// load::node(&mut dag, "us");
/// load::node_with(&mut dag, TaskOverride::new().task_id("load_eu").retries(5), "eu");
/// let dag = dag.build().unwrap();
/// assert_eq!(dag.task("load").unwrap().retries(), 1);
/// assert_eq!(dag.task("load_eu").unwrap().retries(), 5);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[must_use]
pub struct TaskOverride {
    task_id: Option<TaskId>,
    options: TaskOptions,
}

/// A setter on [`TaskOverride`] for every row of the task option table, named as the
/// option.
macro_rules! override_setters {
    ($(
        $(#[doc = $doc:literal])*
        $field:ident: $ty:ty, $with:ident($arg:ident: $arg_ty:ty) => $value:expr
        $(, spec $spec:ident)?;
    )*) => {
        impl TaskOverride {
            $(
                #[doc = concat!("Overrides [`TaskOptions::", stringify!($field), "`].")]
                pub fn $field(mut self, $arg: $arg_ty) -> Self {
                    self.options = self.options.$with($arg);
                    self
                }
            )*
        }
    };
}

task_option_table!(override_setters);

impl TaskOverride {
    /// Overrides nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of this use of the task, instead of the task's name.
    pub fn task_id(mut self, id: impl Into<TaskId>) -> Self {
        self.task_id = Some(id.into());
        self
    }

    /// Overrides every option set in `options`.
    pub fn options(mut self, options: TaskOptions) -> Self {
        self.options = options.or(&self.options);
        self
    }

    /// The id given, if any.
    pub fn id(&self) -> Option<&TaskId> {
        self.task_id.as_ref()
    }

    /// The options given.
    pub fn overridden_options(&self) -> &TaskOptions {
        &self.options
    }
}

impl TaskSpec {
    /// This task with the id and options of `over` (Airflow's `task.override(..)`).
    pub fn overridden(self, over: &TaskOverride) -> TaskSpec {
        let options = over.options.or(self.options());
        let spec = match &over.task_id {
            Some(id) => self.renamed(id.clone()),
            None => self,
        };
        spec.with_options(options)
    }
}

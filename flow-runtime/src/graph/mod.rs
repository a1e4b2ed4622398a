//! The DAG model: the builder API that `#[dag]` expands to, and the validated [`Dag`] it
//! produces.
//!
//! Everything the macros do can be written by hand, which is how DAGs are generated from
//! configuration at run time:
//!
//! ```
//! use flow_runtime::prelude::*;
//!
//! #[task]
//! fn extract(source: String) -> Vec<u64> { vec![source.len() as u64, 2, 3] }
//! #[task]
//! fn total(values: Vec<u64>) -> u64 { values.iter().sum() }
//! #[task]
//! fn notify() {}
//!
//! let mut dag = DagBuilder::new("etl").schedule("@daily").tags(["example"]);
//! for source in ["orders", "users"] {                  // one branch per configured source
//!     let values = extract::node(&mut dag, source);     // a literal argument
//!     let sum = total::node(&mut dag, values);           // a data edge
//!     let done = notify::node(&mut dag);
//!     dag.set_downstream(&[sum.any()], &[done.any()]);   // `sum >> done`
//! }
//! let dag = dag.build().unwrap();
//! let ids: Vec<&str> = dag.tasks().iter().map(|t| t.id().as_str()).collect();
//! assert_eq!(ids, ["extract", "total", "notify", "extract__1", "total__1", "notify__1"]);
//! ```
//!
//! The files below import each other one way only (node <- group, outputs <- builder ->
//! validate -> dag -> algo; mapping -> builder); they never import this file, which only declares and
//! re-exports.

pub mod algo;
mod builder;
pub mod dag;
mod error;
pub mod group;
#[cfg(test)]
mod group_tests;
pub mod mapping;
pub mod node;
pub mod outputs;
pub mod params;
#[cfg(test)]
mod tests;
mod validate;

pub use builder::{DagBuilder, TaskBuilder};
pub use dag::{
    BoundInput, DEFAULT_MAX_ACTIVE_RUNS, DEFAULT_MAX_ACTIVE_TASKS, Dag, GroupMapping, MappedInput,
    Task,
};
pub use error::{DagDefinitionError, DagError};
pub use group::{
    GroupArg, GroupInfo, GroupMap, GroupParamOf, GroupRef, Grouped, MappedGroupOutput, TaskGroup,
};
pub use mapping::MapCall;
pub use node::{
    AnyNode, DEFAULT_MAX_MAP_LENGTH, Input, IntoInput, IntoMapped, MapSource, MappedNode, Node,
    NodeRef,
};
pub use outputs::{Field, MultiNode, MultipleOutputs};

//! What a task is: a name, typed parameters and output, options, and the function to call.
//!
//! `#[task]` builds a [`TaskSpec`] for each annotated function; code that generates DAGs
//! from configuration can build them by hand with [`TaskSpec::from_sync`] and
//! [`TaskSpec::from_async`]. A running task sees its [`TaskContext`]; branches, shell
//! commands, containers, sensors and callbacks are tasks of their own kinds.
//!
//! The files below this one import each other one way only (context <- shell <- container
//! <- spec <- sensor); they never import this file, which only declares and re-exports.

pub mod callbacks;
pub mod container;
pub mod context;
mod error;
mod options;
mod overrides;
pub mod retry;
pub mod sensor;
pub mod shell;
mod spec;

pub(crate) use context::PokeHistory;
pub use context::{RunReader, TaskContext};
pub use error::{FailTask, SkipTask, TaskError};
pub use options::TaskOptions;
pub use overrides::TaskOverride;
pub use spec::*;

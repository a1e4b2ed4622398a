//! # flow
//!
//! Airflow's TaskFlow API, natively in Rust. Write tasks as ordinary functions marked
//! `#[task]`, wire them in a function marked `#[dag]` by passing one task's output to
//! another, and let the binary schedule, run, retry and record them.
//!
//! ```
//! use flow_runtime::prelude::*;
//!
//! #[derive(Serialize, Deserialize)]
//! struct Order { id: u32, amount: f64 }
//!
//! #[task(retries = 2, retry_delay = "30s")]
//! fn extract() -> Vec<Order> {
//!     vec![Order { id: 1, amount: 12.5 }, Order { id: 2, amount: 7.5 }]
//! }
//!
//! #[task]
//! fn total(orders: Vec<Order>) -> f64 {
//!     orders.iter().map(|o| o.amount).sum()
//! }
//!
//! #[task]
//! async fn report(total: f64, ctx: &TaskContext) -> anyhow::Result<String> {
//!     Ok(format!("{}: {total}", ctx.ds()))
//! }
//!
//! #[dag(schedule = "@daily", start_date = "2025-01-01", tags = ["example"])]
//! fn orders() {
//!     let orders = extract();
//!     report(total(orders));
//! }
//!
//! // A task is still its function:
//! assert_eq!(total(vec![Order { id: 1, amount: 2.0 }]), 2.0);
//!
//! // And the DAG runs in process:
//! let run = orders().unwrap().test().unwrap();
//! assert_eq!(run.state, RunState::Success);
//! assert_eq!(run.output::<f64>("total").unwrap(), 20.0);
//! ```
//!
//! A binary runs every registered DAG through the CLI with
//! `fn main() -> std::process::ExitCode { flow_runtime::cli::main() }`.

pub mod assets;
pub mod branch;
pub mod cli;
pub mod error;
pub mod events;
pub(crate) mod executor;
pub mod graph;
pub mod home;
pub mod ids;
pub mod logs;
pub mod metrics;
pub mod notify;
pub mod objects;
pub mod operators;
pub mod ops;
pub mod plan;
pub mod pools;
pub mod registry;
pub mod runtime;
pub(crate) mod scheduler;
#[cfg(feature = "serve")]
pub mod serve;
pub mod settings;
pub mod state;
pub mod store;
pub mod summary;
pub mod task;
pub mod time;
pub mod traces;
pub mod trigger;
pub mod xcom;

// The task modules' earlier paths, kept so code written against them still compiles.
pub use task::{callbacks, context, sensor, shell};
// The DAG model's earlier paths: `dag::..` is now `graph::..`.
pub use graph as dag;
pub use graph::params;

pub use branch::Branch;
pub use context::TaskContext;
pub use error::RunError;
pub use events::{Event, Events, RunEvent, TaskEvent};
pub use graph::MappedNode;
pub use graph::params::{DagParam, Params, ParamsError};
pub use graph::{
    AnyNode, Dag, DagBuilder, GroupRef, Grouped, MultiNode, MultipleOutputs, Node, Task, TaskGroup,
};
pub use graph::{DagDefinitionError, DagError};
pub use ids::{DagId, MapIndex, RunId, TaskId, TaskIndex, TaskInstanceKey};
pub use plan::Plan;
pub use runtime::{Executor, RunRequest, RunSummary, TaskSummary};
pub use state::{RunState, TaskState};
pub use task::{FailTask, SkipTask, TaskError};
pub use task::{Inputs, TaskFn, TaskOptions, TaskOverride, TaskRole, TaskSpec};
pub use time::schedule::Schedule;
pub use trigger::TriggerRule;
pub use xcom::list::MapMode;
pub use xcom::{StoredXCom, XComBlob, XComValue};

/// Time zones (IANA), as [`Dag::timezone`] returns them.
pub use chrono_tz;
#[cfg(feature = "macros")]
pub use flow_macros::{MultipleOutputs, dag, task, task_group};

/// Runs a future to completion on a fresh current-thread runtime: the way to call an
/// `async` `#[task]` function from a plain `#[test]`.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(future),
        Err(e) => panic!("cannot start a tokio runtime for block_on: {e}"),
    }
}

/// What a pipeline file needs: `use flow_runtime::prelude::*;`.
pub mod prelude {
    pub use crate::assets::Asset;
    pub use crate::objects::ObjectPath;
    pub use crate::task::sensor::Poke;
    pub use crate::{
        AnyNode, Branch, Dag, DagBuilder, DagParam, FailTask, GroupRef, Inputs, MappedNode,
        MultiNode, MultipleOutputs, Node, RunState, RunSummary, SkipTask, TaskContext, TaskError,
        TaskGroup, TaskOptions, TaskOverride, TaskSpec, TaskState, block_on,
    };
    #[cfg(feature = "macros")]
    pub use crate::{dag, task, task_group};
    pub use serde::{Deserialize, Serialize};
}

/// Every name the code the macros generate uses, so that the public modules can move
/// without breaking it. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::branch::Branch;
    pub use crate::graph::DagError;
    pub use crate::graph::params::DagParam;
    pub use crate::graph::{AnyNode, Dag, DagBuilder, IntoInput, Node, NodeRef};
    pub use crate::graph::{GroupArg, GroupMap, GroupParamOf, MappedGroupOutput};
    pub use crate::graph::{GroupRef, Grouped, IntoMapped, MapCall, MappedNode, TaskGroup};
    pub use crate::graph::{MultiNode, MultipleOutputs};
    pub use crate::pools::DEFAULT_POOL;
    pub use crate::registry::{DagRegistration, TaskRegistration};
    pub use crate::task::TaskError;
    pub use crate::task::container::ContainerSpec;
    pub use crate::task::context::TaskContext;
    pub use crate::task::sensor::{Poke, SensorMode, SensorOptions};
    pub use crate::task::shell::ShellCommand;
    pub use crate::task::{
        BoxFuture, Inputs, TaskFn, TaskOptions, TaskOverride, TaskReturn, TaskSpec, encode_output,
    };
    pub use crate::trigger::TriggerRule;
    pub use crate::xcom::field::{Field, project_field};
    pub use crate::xcom::list::MapMode;
    pub use crate::xcom::{XComBlob, XComValue};
    pub use ::core::convert::Infallible;
    pub use ::core::option::Option;
    pub use ::core::result::Result;
    pub use ::core::time::Duration;
    pub use ::inventory;
    pub use ::std::boxed::Box;
    pub use ::std::sync::Arc;

    /// Fails to compile, at the type's span, unless `T` can travel between tasks.
    pub fn assert_xcom_value<T: XComValue>() {}

    /// Wraps a plain (infallible) return value as a task result.
    pub fn infallible<T>(value: T) -> Result<T, Infallible> {
        Ok(value)
    }
}

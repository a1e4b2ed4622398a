//! Creating a manual run, its conf checked against the DAG's params.

use chrono::{DateTime, Utc};

use crate::error::RunError;
use crate::graph::Dag;
use crate::runtime::{Executor, RunRequest};
use crate::store::DagRunRecord;

/// Why a manual run could not be created.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    /// The conf is not JSON.
    #[error("conf `{text}` is not JSON: {reason}")]
    ConfNotJson {
        /// The conf as given.
        text: String,
        /// The parser's reason.
        reason: String,
    },
    /// The conf does not fit the params, or the run could not be recorded.
    #[error(transparent)]
    Run(#[from] RunError),
}

/// Parses a run's conf, given as JSON text.
pub fn parse_conf(text: &str) -> Result<serde_json::Value, TriggerError> {
    serde_json::from_str(text).map_err(|e| TriggerError::ConfNotJson {
        text: text.to_string(),
        reason: e.to_string(),
    })
}

/// The request of a manual run of `dag` at `logical_date`, its `conf` checked against the
/// DAG's params (unset params take their defaults).
pub fn request(
    dag: &Dag,
    logical_date: DateTime<Utc>,
    conf: Option<&serde_json::Value>,
) -> Result<RunRequest, TriggerError> {
    Ok(RunRequest::manual(dag, logical_date, conf)?)
}

/// Records the run `request` describes (see [`request`]) in state `queued`, for a
/// scheduler (or [`super::resume::resume`]) to run.
pub fn trigger(
    executor: &Executor,
    dag: &Dag,
    request: RunRequest,
) -> Result<DagRunRecord, TriggerError> {
    Ok(executor.create_run(dag, request)?)
}

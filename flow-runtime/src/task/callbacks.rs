//! Callbacks: code a task or a DAG runs when a try succeeds, fails or is retried, or when
//! a run ends (Airflow's `on_success_callback`, `on_failure_callback`,
//! `on_retry_callback`).
//!
//! A callback runs after the state it reports is durable, on the blocking pool, so a slow
//! callback never holds up the run. A callback that panics is logged; it never changes a
//! task's or a run's state.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::ids::{DagId, RunId, TaskId};

/// What a callback is told. As JSON (what a [webhook](crate::notify) POSTs):
/// `{"dag_id", "run_id", "logical_date" (RFC 3339), "task_id" (null for a run),
/// "try_number", "state", "error" (null unless failed or retried)}`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CallbackEvent {
    /// The DAG.
    pub dag_id: DagId,
    /// The run.
    pub run_id: RunId,
    /// The run's logical date.
    pub logical_date: DateTime<Utc>,
    /// The task, for task callbacks; `None` for a run's.
    pub task_id: Option<TaskId>,
    /// The instance's map index, for an instance of a mapped task.
    pub map_index: Option<u32>,
    /// The try, for task callbacks.
    pub try_number: u32,
    /// The state reached: `success`, `failed` or `up_for_retry`.
    pub state: &'static str,
    /// The error, when the state is a failure or a retry.
    pub error: Option<String>,
}

/// A callback.
pub type Callback = Arc<dyn Fn(&CallbackEvent) + Send + Sync>;

/// The callbacks of a task or a DAG.
#[derive(Clone, Default)]
pub struct Callbacks {
    /// Run when a try (or a run) succeeds.
    pub on_success: Vec<Callback>,
    /// Run when a task (or a run) fails for good.
    pub on_failure: Vec<Callback>,
    /// Run when a try fails and another follows (tasks only).
    pub on_retry: Vec<Callback>,
}

impl std::fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callbacks")
            .field("on_success", &self.on_success.len())
            .field("on_failure", &self.on_failure.len())
            .field("on_retry", &self.on_retry.len())
            .finish()
    }
}

impl Callbacks {
    /// The callbacks for a state, if any.
    pub fn for_state(&self, state: &str) -> &[Callback] {
        match state {
            "success" => &self.on_success,
            "failed" => &self.on_failure,
            "up_for_retry" => &self.on_retry,
            _ => &[],
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.on_success.is_empty() && self.on_failure.is_empty() && self.on_retry.is_empty()
    }
}

/// Runs callbacks on the blocking pool, logging (never propagating) a panic.
pub(crate) fn dispatch(join: &mut tokio::task::JoinSet<()>, due: Vec<(Callback, CallbackEvent)>) {
    for (callback, event) in due {
        join.spawn_blocking(move || {
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| callback(&event)));
            if outcome.is_err() {
                tracing::error!(
                    dag = %event.dag_id,
                    run = %event.run_id,
                    task = ?event.task_id.as_ref().map(TaskId::as_str),
                    "a {} callback panicked; the state stays {}",
                    event.state,
                    event.state
                );
            }
        });
    }
}

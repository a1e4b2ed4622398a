//! Branching: a `#[task(branch)]` returns which of its direct downstream tasks to follow;
//! the others are skipped, and the skip propagates through their trigger rules.
//! A `#[task(short_circuit)]` returns `bool`: `false` skips everything downstream (or,
//! with `ignore_downstream_trigger_rules = false`, its direct downstream tasks only).

use serde::{Deserialize, Serialize};

/// The downstream tasks a branch task follows, by task id.
///
/// ```
/// use flow_runtime::branch::Branch;
/// let choice = if 0.93 > 0.9 { Branch::to("deploy_production") } else { Branch::to("deploy_staging") };
/// assert_eq!(choice.task_ids(), ["deploy_production"]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Branch(Vec<String>);

impl Branch {
    /// Follow one downstream task.
    pub fn to(task_id: impl Into<String>) -> Self {
        Self(vec![task_id.into()])
    }

    /// Follow several downstream tasks.
    pub fn to_all<S: Into<String>>(task_ids: impl IntoIterator<Item = S>) -> Self {
        Self(task_ids.into_iter().map(Into::into).collect())
    }

    /// Follow none: every downstream task is skipped.
    pub fn none() -> Self {
        Self(Vec::new())
    }

    /// The chosen task ids.
    pub fn task_ids(&self) -> &[String] {
        &self.0
    }
}

/// What a task's output means to the executor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TaskKind {
    /// An ordinary task.
    #[default]
    Normal,
    /// Returns a [`Branch`]: the direct downstream tasks it does not choose are skipped.
    Branch,
    /// Returns `bool`: `false` skips downstream tasks (Airflow's `ShortCircuitOperator`).
    ShortCircuit {
        /// `true` (the default): every task downstream is skipped, whatever its trigger
        /// rule. `false`: only the direct downstream tasks are skipped, and the tasks after
        /// them follow their own trigger rules (an `all_done` task further down still runs).
        ignore_downstream_trigger_rules: bool,
    },
}

/// The XCom key under which a branch or short-circuit task records what it decided, as
/// Airflow's `SkipMixin` does.
pub const SKIPMIXIN_KEY: &str = "skipmixin_key";

/// What a branch or short-circuit task decided, recorded under [`SKIPMIXIN_KEY`]: the
/// direct downstream tasks a branch followed, or the tasks a short-circuit skipped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SkipDecision {
    /// A branch followed these direct downstream tasks (and skipped its other ones).
    Followed(Vec<String>),
    /// A short-circuit that returned `false` skipped these tasks.
    Skipped(Vec<String>),
}

impl SkipDecision {
    /// Airflow's form: `{"followed": [..]}` or `{"skipped": [..]}`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            SkipDecision::Followed(ids) => serde_json::json!({ "followed": ids }),
            SkipDecision::Skipped(ids) => serde_json::json!({ "skipped": ids }),
        }
    }
}

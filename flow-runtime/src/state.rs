//! Task-instance and DAG-run states, named as in Airflow, and the legal moves between them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The state of one task instance.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Not yet decided: waiting for its upstream tasks.
    None,
    /// Ready to run; waiting for an executor slot.
    Queued,
    /// A try is executing.
    Running,
    /// Finished without error; its XCom is stored.
    Success,
    /// Its last try failed and no retry is left.
    Failed,
    /// A try failed; another try follows after the retry delay.
    UpForRetry,
    /// Will not run because an upstream task failed.
    UpstreamFailed,
    /// Will not run: skipped by a branch, a short-circuit or an upstream skip.
    Skipped,
    /// A sensor in `reschedule` mode between two pokes: it holds no slot and is queued
    /// again at its reschedule time, keeping its try number.
    UpForReschedule,
}

impl TaskState {
    /// Every state, in lifecycle order.
    pub const ALL: [TaskState; 9] = [
        TaskState::None,
        TaskState::Queued,
        TaskState::Running,
        TaskState::Success,
        TaskState::Failed,
        TaskState::UpForRetry,
        TaskState::UpstreamFailed,
        TaskState::Skipped,
        TaskState::UpForReschedule,
    ];

    /// Airflow's name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::None => "none",
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Success => "success",
            TaskState::Failed => "failed",
            TaskState::UpForRetry => "up_for_retry",
            TaskState::UpstreamFailed => "upstream_failed",
            TaskState::Skipped => "skipped",
            TaskState::UpForReschedule => "up_for_reschedule",
        }
    }

    /// Whether the instance is done for this run (nothing more will happen to it).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TaskState::Success | TaskState::Failed | TaskState::UpstreamFailed | TaskState::Skipped
        )
    }

    /// Whether the instance waits to be queued again by time alone (a retry or a
    /// sensor's next poke), holding no slot.
    pub fn is_waiting(self) -> bool {
        matches!(self, TaskState::UpForRetry | TaskState::UpForReschedule)
    }

    /// Whether moving from `self` to `to` is allowed. Clearing a task (a later issue) is
    /// the only way back from a finished state, and goes through [`TaskState::None`].
    pub fn can_become(self, to: TaskState) -> bool {
        use TaskState::*;
        match (self, to) {
            (None, Queued | UpstreamFailed | Skipped) => true,
            (Queued, Running | None | Skipped) => true,
            (Running, Success | Failed | UpForRetry | UpForReschedule | Skipped) => true,
            // A run that times out skips what has not run and fails a pending retry or
            // reschedule.
            (UpForRetry | UpForReschedule, Queued | Failed | Skipped) => true,
            (from, None) => from.is_finished() || from.is_waiting(),
            _ => false,
        }
    }

    /// Whether `to` can follow `self` through one or more moves of a run's execution; a
    /// store that receives only the last of several moves made within one batch checks
    /// this. Clearing (a finished state back to `none`) is not such a move: it is the
    /// store's own operation.
    pub fn can_reach(self, to: TaskState) -> bool {
        // Every store change is checked with this: a table built once, not a search each time.
        static REACH: std::sync::LazyLock<[[bool; TaskState::ALL.len()]; TaskState::ALL.len()]> =
            std::sync::LazyLock::new(|| {
                TaskState::ALL.map(|from| TaskState::ALL.map(|to| from.search_reach(to)))
            });
        REACH[self as usize][to as usize]
    }

    /// [`TaskState::can_reach`], by searching the moves.
    fn search_reach(self, to: TaskState) -> bool {
        let mut seen = [false; TaskState::ALL.len()];
        let mut stack = vec![self];
        while let Some(from) = stack.pop() {
            for next in TaskState::ALL {
                let i = next as usize;
                let clearing = next == TaskState::None && (from.is_finished() || from.is_waiting());
                if !seen[i] && !clearing && from.can_become(next) {
                    if next == to {
                        return true;
                    }
                    seen[i] = true;
                    stack.push(next);
                }
            }
        }
        false
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state name that is not one of Airflow's.
#[derive(Debug)]
pub struct UnknownState(String);

impl fmt::Display for UnknownState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = TaskState::ALL.map(TaskState::as_str).join(", ");
        write!(f, "unknown state `{}`; expected one of: {names}", self.0)
    }
}

impl std::error::Error for UnknownState {}

impl FromStr for TaskState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

/// The state of a DAG run.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Created, waiting to start.
    Queued,
    /// Tasks are being decided and executed.
    Running,
    /// Every task finished and none of the leaves failed.
    Success,
    /// Some task ended `failed` or `upstream_failed`.
    Failed,
}

impl RunState {
    /// Every run state.
    pub const ALL: [RunState; 4] = [
        RunState::Queued,
        RunState::Running,
        RunState::Success,
        RunState::Failed,
    ];

    /// Airflow's name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Success => "success",
            RunState::Failed => "failed",
        }
    }

    /// Whether the run is over.
    pub fn is_finished(self) -> bool {
        matches!(self, RunState::Success | RunState::Failed)
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_airflow() {
        for state in TaskState::ALL {
            assert_eq!(state.as_str().parse::<TaskState>().unwrap(), state);
        }
        assert_eq!(TaskState::UpstreamFailed.to_string(), "upstream_failed");
        assert_eq!(
            "up_for_reschedule".parse::<TaskState>().unwrap(),
            TaskState::UpForReschedule
        );
        let err = "done".parse::<TaskState>().unwrap_err().to_string();
        assert!(err.contains("up_for_retry"), "{err}");
    }

    #[test]
    fn lifecycle_moves_are_legal_and_shortcuts_are_not() {
        use TaskState::*;
        for (from, to) in [
            (None, Queued),
            (Queued, Running),
            (Running, Success),
            (Running, UpForRetry),
            (UpForRetry, Queued),
            (Running, UpForReschedule),
            (UpForReschedule, Queued),
            (UpForReschedule, Failed),
            (UpForReschedule, None),
            (None, UpstreamFailed),
            (Failed, None),
        ] {
            assert!(from.can_become(to), "{from} -> {to}");
        }
        for (from, to) in [
            (None, Success),
            (Success, Running),
            (Failed, Success),
            (Queued, Success),
            (UpForReschedule, Success),
            (None, UpForReschedule),
        ] {
            assert!(!from.can_become(to), "{from} -> {to}");
        }
        for (i, state) in TaskState::ALL.into_iter().enumerate() {
            assert_eq!(
                state as usize, i,
                "ALL is in declaration order: the reach table needs it"
            );
        }
        assert!(
            None.can_reach(Running) && None.can_reach(Success) && UpForRetry.can_reach(Running)
        );
        assert!(UpForReschedule.can_reach(Running) && UpForReschedule.can_reach(UpForReschedule));
        assert!(
            !Success.can_reach(Running)
                && !Success.can_reach(Success)
                && !Skipped.can_reach(Queued)
        );
    }
}

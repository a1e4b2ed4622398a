//! Trigger rules: when a task may run, given the states its upstream tasks finished in.
//!
//! The decision follows Airflow's `TriggerRuleDep` exactly: first a rule may settle the
//! task without running it (`upstream_failed` or `skipped`, possibly before every
//! upstream is done), then the task runs once the rule is met. The table test below
//! checks every rule against every mix of two upstream states.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::state::TaskState;

/// When a task runs, in terms of its upstream tasks' states (Airflow's names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerRule {
    /// Every upstream succeeded (the default).
    #[default]
    AllSuccess,
    /// Every upstream failed or is `upstream_failed`.
    AllFailed,
    /// Every upstream is done, whatever its state.
    AllDone,
    /// Every upstream was skipped.
    AllSkipped,
    /// At least one upstream succeeded (runs without waiting for the others).
    OneSuccess,
    /// At least one upstream failed (runs without waiting for the others).
    OneFailed,
    /// At least one upstream succeeded or failed.
    OneDone,
    /// No upstream failed: each succeeded or was skipped.
    NoneFailed,
    /// No upstream failed, and at least one succeeded.
    NoneFailedMinOneSuccess,
    /// No upstream was skipped, and all are done.
    NoneSkipped,
    /// Runs at any time, not waiting for upstream tasks.
    Always,
}

impl TriggerRule {
    /// Every rule.
    pub const ALL: [TriggerRule; 11] = [
        TriggerRule::AllSuccess,
        TriggerRule::AllFailed,
        TriggerRule::AllDone,
        TriggerRule::AllSkipped,
        TriggerRule::OneSuccess,
        TriggerRule::OneFailed,
        TriggerRule::OneDone,
        TriggerRule::NoneFailed,
        TriggerRule::NoneFailedMinOneSuccess,
        TriggerRule::NoneSkipped,
        TriggerRule::Always,
    ];

    /// Airflow's name of the rule.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerRule::AllSuccess => "all_success",
            TriggerRule::AllFailed => "all_failed",
            TriggerRule::AllDone => "all_done",
            TriggerRule::AllSkipped => "all_skipped",
            TriggerRule::OneSuccess => "one_success",
            TriggerRule::OneFailed => "one_failed",
            TriggerRule::OneDone => "one_done",
            TriggerRule::NoneFailed => "none_failed",
            TriggerRule::NoneFailedMinOneSuccess => "none_failed_min_one_success",
            TriggerRule::NoneSkipped => "none_skipped",
            TriggerRule::Always => "always",
        }
    }
}

impl fmt::Display for TriggerRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A trigger rule name that is not one of Airflow's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownTriggerRule(pub String);

impl fmt::Display for UnknownTriggerRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = TriggerRule::ALL.map(TriggerRule::as_str).join(", ");
        write!(f, "unknown trigger rule `{}`; use one of: {names}", self.0)
    }
}

impl std::error::Error for UnknownTriggerRule {}

impl FromStr for TriggerRule {
    type Err = UnknownTriggerRule;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TriggerRule::ALL
            .into_iter()
            .find(|rule| rule.as_str() == s)
            .ok_or_else(|| UnknownTriggerRule(s.to_string()))
    }
}

/// Counts of the states upstream tasks have finished in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpstreamCounts {
    /// Upstream tasks in total.
    pub total: u32,
    /// Finished `success`.
    pub success: u32,
    /// Finished `failed`.
    pub failed: u32,
    /// Finished `upstream_failed`.
    pub upstream_failed: u32,
    /// Finished `skipped`.
    pub skipped: u32,
}

impl UpstreamCounts {
    /// Counts one more finished upstream task.
    pub fn record(&mut self, state: TaskState) {
        match state {
            TaskState::Success => self.success += 1,
            TaskState::Failed => self.failed += 1,
            TaskState::UpstreamFailed => self.upstream_failed += 1,
            TaskState::Skipped => self.skipped += 1,
            _ => {}
        }
    }

    /// One finished upstream task instance in `state`.
    pub fn one(state: TaskState) -> Self {
        let mut counts = Self {
            total: 1,
            ..Self::default()
        };
        counts.record(state);
        counts
    }

    /// Counts a finished upstream task given as `finished`: one instance, or every
    /// instance of a mapped task (which then counts as `finished.total` upstream results,
    /// as in Airflow, instead of one).
    pub fn add(&mut self, finished: &UpstreamCounts) {
        self.total = (self.total + finished.total).saturating_sub(1);
        self.success += finished.success;
        self.failed += finished.failed;
        self.upstream_failed += finished.upstream_failed;
        self.skipped += finished.skipped;
    }

    /// Upstream tasks that have finished.
    pub fn done(&self) -> u32 {
        self.success + self.failed + self.upstream_failed + self.skipped
    }
}

/// What becomes of a task whose upstream counts changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Keep waiting for upstream tasks.
    Wait,
    /// Queue it.
    Run,
    /// Mark it `upstream_failed` without running it.
    UpstreamFailed,
    /// Mark it `skipped` without running it.
    Skip,
}

/// Decides what becomes of a task under `rule`, given its upstream counts.
pub fn decide(rule: TriggerRule, c: &UpstreamCounts) -> Decision {
    use TriggerRule::*;
    if c.total == 0 {
        // Airflow evaluates no rule for a task without upstream tasks.
        return Decision::Run;
    }
    let all_done = c.done() >= c.total;
    let failures = c.failed + c.upstream_failed;
    // First: rules that settle the task without running it.
    let settled = match rule {
        AllSuccess if failures > 0 => Some(Decision::UpstreamFailed),
        AllSuccess if c.skipped > 0 => Some(Decision::Skip),
        AllFailed if c.success > 0 || c.skipped > 0 => Some(Decision::Skip),
        OneSuccess if all_done && c.done() == c.skipped => Some(Decision::Skip),
        OneSuccess if all_done && c.success == 0 => Some(Decision::UpstreamFailed),
        OneFailed if all_done && failures == 0 => Some(Decision::Skip),
        OneDone if all_done && c.failed == 0 && c.success == 0 => Some(Decision::Skip),
        NoneFailed | NoneFailedMinOneSuccess if failures > 0 => Some(Decision::UpstreamFailed),
        NoneFailedMinOneSuccess if c.skipped == c.total => Some(Decision::Skip),
        NoneSkipped if c.skipped > 0 => Some(Decision::Skip),
        AllSkipped if c.success > 0 || failures > 0 => Some(Decision::Skip),
        _ => None,
    };
    if let Some(decision) = settled {
        return decision;
    }
    // Then: whether the rule is met.
    let met = match rule {
        AllSuccess => c.success >= c.total,
        AllFailed => failures >= c.total,
        AllDone => all_done,
        AllSkipped => c.skipped >= c.total,
        OneSuccess => c.success > 0,
        OneFailed => failures > 0,
        OneDone => c.success + c.failed > 0,
        NoneFailed | NoneFailedMinOneSuccess => c.success + c.skipped >= c.total,
        NoneSkipped => all_done && c.skipped == 0,
        Always => true,
    };
    if met { Decision::Run } else { Decision::Wait }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(letter: char) -> Option<TaskState> {
        match letter {
            'S' => Some(TaskState::Success),
            'F' => Some(TaskState::Failed),
            'U' => Some(TaskState::UpstreamFailed),
            'K' => Some(TaskState::Skipped),
            'R' => None, // still running
            other => panic!("bad state letter {other}"),
        }
    }

    fn decision(word: &str) -> Decision {
        match word {
            "run" => Decision::Run,
            "wait" => Decision::Wait,
            "skip" => Decision::Skip,
            "upfail" => Decision::UpstreamFailed,
            other => panic!("bad decision {other}"),
        }
    }

    /// Two upstream tasks in every mix of states (S success, F failed, U upstream_failed,
    /// K skipped, R running), and the expected decision for each rule, in the order of
    /// `TriggerRule::ALL`: all_success, all_failed, all_done, all_skipped, one_success,
    /// one_failed, one_done, none_failed, none_failed_min_one_success, none_skipped,
    /// always. Worked out from Airflow's TriggerRuleDep, independently of `decide`.
    const TABLE: &[(&str, [&str; 11])] = &[
        (
            "SS",
            [
                "run", "skip", "run", "skip", "run", "skip", "run", "run", "run", "run", "run",
            ],
        ),
        (
            "SF",
            [
                "upfail", "skip", "run", "skip", "run", "run", "run", "upfail", "upfail", "run",
                "run",
            ],
        ),
        (
            "SU",
            [
                "upfail", "skip", "run", "skip", "run", "run", "run", "upfail", "upfail", "run",
                "run",
            ],
        ),
        (
            "SK",
            [
                "skip", "skip", "run", "skip", "run", "skip", "run", "run", "run", "skip", "run",
            ],
        ),
        (
            "SR",
            [
                "wait", "skip", "wait", "skip", "run", "wait", "run", "wait", "wait", "wait", "run",
            ],
        ),
        (
            "FF",
            [
                "upfail", "run", "run", "skip", "upfail", "run", "run", "upfail", "upfail", "run",
                "run",
            ],
        ),
        (
            "FU",
            [
                "upfail", "run", "run", "skip", "upfail", "run", "run", "upfail", "upfail", "run",
                "run",
            ],
        ),
        (
            "FK",
            [
                "upfail", "skip", "run", "skip", "upfail", "run", "run", "upfail", "upfail",
                "skip", "run",
            ],
        ),
        (
            "FR",
            [
                "upfail", "wait", "wait", "skip", "wait", "run", "run", "upfail", "upfail", "wait",
                "run",
            ],
        ),
        (
            "UU",
            [
                "upfail", "run", "run", "skip", "upfail", "run", "skip", "upfail", "upfail", "run",
                "run",
            ],
        ),
        (
            "UK",
            [
                "upfail", "skip", "run", "skip", "upfail", "run", "skip", "upfail", "upfail",
                "skip", "run",
            ],
        ),
        (
            "UR",
            [
                "upfail", "wait", "wait", "skip", "wait", "run", "wait", "upfail", "upfail",
                "wait", "run",
            ],
        ),
        (
            "KK",
            [
                "skip", "skip", "run", "run", "skip", "skip", "skip", "run", "skip", "skip", "run",
            ],
        ),
        (
            "KR",
            [
                "skip", "skip", "wait", "wait", "wait", "wait", "wait", "wait", "wait", "skip",
                "run",
            ],
        ),
        (
            "RR",
            [
                "wait", "wait", "wait", "wait", "wait", "wait", "wait", "wait", "wait", "wait",
                "run",
            ],
        ),
    ];

    #[test]
    fn every_rule_against_every_mix_of_two_upstream_states() {
        for (mix, expected) in TABLE {
            let mut counts = UpstreamCounts {
                total: 2,
                ..Default::default()
            };
            mix.chars().filter_map(state).for_each(|s| counts.record(s));
            for (rule, want) in TriggerRule::ALL.into_iter().zip(expected) {
                assert_eq!(
                    decide(rule, &counts),
                    decision(want),
                    "{rule} with upstream {mix}"
                );
            }
        }
    }

    #[test]
    fn a_task_without_upstream_runs_under_every_rule() {
        let none = UpstreamCounts::default();
        for rule in TriggerRule::ALL {
            assert_eq!(decide(rule, &none), Decision::Run, "{rule}");
        }
    }

    #[test]
    fn names_round_trip_and_unknown_ones_list_the_valid_ones() {
        for rule in TriggerRule::ALL {
            assert_eq!(rule.as_str().parse::<TriggerRule>().unwrap(), rule);
        }
        let err = "all_sucess".parse::<TriggerRule>().unwrap_err().to_string();
        assert!(
            err.contains("unknown trigger rule `all_sucess`")
                && err.contains("none_failed_min_one_success")
        );
    }
}

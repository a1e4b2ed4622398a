//! Trigger rules: when a task may run, given the states its upstream tasks finished in.
//!
//! The decision follows Airflow's `TriggerRuleDep` on the upstream tasks' final states: a
//! rule settles the task without running it (`upstream_failed` or `skipped`) or runs it.
//! Where Airflow decides on the states seen so far, flow decides early only when no
//! upstream task still running could change the outcome: so the outcome depends on the
//! final states alone, never on the order upstream tasks finish in (in Airflow,
//! `all_success` over `failed, skipped` ends `skipped` or `upstream_failed` depending on
//! which finished first; here a failure always wins over a skip). The table test below
//! checks every rule against every mix of two upstream states, and a property test every
//! finishing order of mixes of up to five.

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
    /// Every upstream is done, none was skipped, and at least one succeeded (a skipped
    /// upstream skips the task; all done without a success is `upstream_failed`).
    AllDoneMinOneSuccess,
    /// Runs at any time, not waiting for upstream tasks.
    Always,
    /// Every upstream is done and, if any upstream is a setup task, at least one setup
    /// succeeded (the rule of teardown tasks): all setups skipped skips it, none
    /// succeeded is `upstream_failed`.
    AllDoneSetupSuccess,
}

impl TriggerRule {
    /// Every rule.
    pub const ALL: [TriggerRule; 13] = [
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
        TriggerRule::AllDoneMinOneSuccess,
        TriggerRule::Always,
        TriggerRule::AllDoneSetupSuccess,
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
            TriggerRule::AllDoneMinOneSuccess => "all_done_min_one_success",
            TriggerRule::Always => "always",
            TriggerRule::AllDoneSetupSuccess => "all_done_setup_success",
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
    /// Upstream setup tasks in total (counted in `total` too).
    pub setups: u32,
    /// Setup tasks finished `success`.
    pub setup_success: u32,
    /// Setup tasks finished `skipped`.
    pub setup_skipped: u32,
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

    /// The same finished upstream task, known to be a setup task.
    pub fn of_setup(self) -> Self {
        Self {
            setups: self.total,
            setup_success: self.success,
            setup_skipped: self.skipped,
            ..self
        }
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
        if finished.setups > 0 {
            self.setups = (self.setups + finished.setups).saturating_sub(1);
        }
        self.setup_success += finished.setup_success;
        self.setup_skipped += finished.setup_skipped;
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

/// Decides what becomes of a task under `rule`, given its upstream counts: `Wait` until the
/// outcome is certain whatever the unfinished upstream tasks end in, then the outcome the
/// final states give.
pub fn decide(rule: TriggerRule, c: &UpstreamCounts) -> Decision {
    use TriggerRule::*;
    if c.total == 0 {
        // Airflow evaluates no rule for a task without upstream tasks.
        return Decision::Run;
    }
    let failures = c.failed + c.upstream_failed;
    if c.done() < c.total {
        // Only what no later upstream result can change: a failure (it wins over a skip),
        // a skip where no failure could override it, the first result a `one_*` rule runs on.
        return match rule {
            AllSuccess | NoneFailed | NoneFailedMinOneSuccess if failures > 0 => {
                Decision::UpstreamFailed
            }
            AllFailed if c.success + c.skipped > 0 => Decision::Skip,
            AllSkipped if c.success + failures > 0 => Decision::Skip,
            NoneSkipped | AllDoneMinOneSuccess if c.skipped > 0 => Decision::Skip,
            OneSuccess if c.success > 0 => Decision::Run,
            OneFailed if failures > 0 => Decision::Run,
            OneDone if c.success + c.failed > 0 => Decision::Run,
            Always => Decision::Run,
            _ => Decision::Wait,
        };
    }
    let settled = match rule {
        AllSuccess if failures > 0 => Some(Decision::UpstreamFailed),
        AllSuccess if c.skipped > 0 => Some(Decision::Skip),
        AllFailed if c.success + c.skipped > 0 => Some(Decision::Skip),
        AllSkipped if c.success + failures > 0 => Some(Decision::Skip),
        OneSuccess if c.skipped == c.total => Some(Decision::Skip),
        OneSuccess if c.success == 0 => Some(Decision::UpstreamFailed),
        OneFailed if failures == 0 => Some(Decision::Skip),
        OneDone if c.success + c.failed == 0 => Some(Decision::Skip),
        NoneFailed | NoneFailedMinOneSuccess if failures > 0 => Some(Decision::UpstreamFailed),
        NoneFailedMinOneSuccess if c.skipped == c.total => Some(Decision::Skip),
        NoneSkipped if c.skipped > 0 => Some(Decision::Skip),
        AllDoneMinOneSuccess if c.skipped > 0 => Some(Decision::Skip),
        AllDoneMinOneSuccess if c.success == 0 => Some(Decision::UpstreamFailed),
        AllDoneSetupSuccess if c.setups > 0 && c.setup_skipped >= c.setups => Some(Decision::Skip),
        AllDoneSetupSuccess if c.setups > 0 && c.setup_success == 0 => {
            Some(Decision::UpstreamFailed)
        }
        _ => None,
    };
    settled.unwrap_or(Decision::Run)
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
    /// all_done_min_one_success, always, all_done_setup_success (no upstream is a setup
    /// here: as all_done). Worked out independently of `decide`: the final
    /// outcome from Airflow's TriggerRuleDep on the final states, and with an upstream still
    /// running, that outcome only if every way it can end gives it (and a run only for the
    /// rules that run on the first result: one_success, one_failed, one_done, always).
    const TABLE: &[(&str, [&str; 13])] = &[
        (
            "SS",
            [
                "run", "skip", "run", "skip", "run", "skip", "run", "run", "run", "run", "run",
                "run", "run",
            ],
        ),
        (
            "SF",
            [
                "upfail", "skip", "run", "skip", "run", "run", "run", "upfail", "upfail", "run",
                "run", "run", "run",
            ],
        ),
        (
            "SU",
            [
                "upfail", "skip", "run", "skip", "run", "run", "run", "upfail", "upfail", "run",
                "run", "run", "run",
            ],
        ),
        (
            "SK",
            [
                "skip", "skip", "run", "skip", "run", "skip", "run", "run", "run", "skip", "skip",
                "run", "run",
            ],
        ),
        (
            "SR",
            [
                "wait", "skip", "wait", "skip", "run", "wait", "run", "wait", "wait", "wait",
                "wait", "run", "wait",
            ],
        ),
        (
            "FF",
            [
                "upfail", "run", "run", "skip", "upfail", "run", "run", "upfail", "upfail", "run",
                "upfail", "run", "run",
            ],
        ),
        (
            "FU",
            [
                "upfail", "run", "run", "skip", "upfail", "run", "run", "upfail", "upfail", "run",
                "upfail", "run", "run",
            ],
        ),
        (
            "FK",
            [
                "upfail", "skip", "run", "skip", "upfail", "run", "run", "upfail", "upfail",
                "skip", "skip", "run", "run",
            ],
        ),
        (
            "FR",
            [
                "upfail", "wait", "wait", "skip", "wait", "run", "run", "upfail", "upfail", "wait",
                "wait", "run", "wait",
            ],
        ),
        (
            "UU",
            [
                "upfail", "run", "run", "skip", "upfail", "run", "skip", "upfail", "upfail", "run",
                "upfail", "run", "run",
            ],
        ),
        (
            "UK",
            [
                "upfail", "skip", "run", "skip", "upfail", "run", "skip", "upfail", "upfail",
                "skip", "skip", "run", "run",
            ],
        ),
        (
            "UR",
            [
                "upfail", "wait", "wait", "skip", "wait", "run", "wait", "upfail", "upfail",
                "wait", "wait", "run", "wait",
            ],
        ),
        (
            "KK",
            [
                "skip", "skip", "run", "run", "skip", "skip", "skip", "run", "skip", "skip",
                "skip", "run", "run",
            ],
        ),
        (
            "KR",
            [
                "wait", "skip", "wait", "wait", "wait", "wait", "wait", "wait", "wait", "skip",
                "skip", "run", "wait",
            ],
        ),
        (
            "RR",
            [
                "wait", "wait", "wait", "wait", "wait", "wait", "wait", "wait", "wait", "wait",
                "wait", "run", "wait",
            ],
        ),
    ];

    /// A teardown's rule with setup tasks among its upstream tasks (letters as in
    /// `TABLE`): it waits for every upstream, runs if a setup succeeded whatever the work
    /// did, and without a successful setup is skipped when every setup was, else
    /// `upstream_failed`.
    #[test]
    fn all_done_setup_success_runs_when_a_setup_succeeded() {
        let cases = [
            ("S", "F", "run"),
            ("S", "S", "run"),
            ("S", "R", "wait"),
            ("R", "S", "wait"),
            ("F", "U", "upfail"),
            ("K", "K", "skip"),
            ("SF", "U", "run"),
            ("KF", "U", "upfail"),
            ("KK", "S", "skip"),
            ("", "F", "run"),
        ];
        for (setups, work, want) in cases {
            let mut counts = UpstreamCounts {
                total: u32::try_from(setups.len() + work.len()).unwrap(),
                setups: u32::try_from(setups.len()).unwrap(),
                ..Default::default()
            };
            for s in setups.chars().filter_map(state) {
                counts.add(&UpstreamCounts::one(s).of_setup());
            }
            for s in work.chars().filter_map(state) {
                counts.add(&UpstreamCounts::one(s));
            }
            assert_eq!(
                decide(TriggerRule::AllDoneSetupSuccess, &counts),
                decision(want),
                "setups {setups}, work {work}"
            );
        }
    }

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

    /// Every ordering of `states` (permutations of positions, so duplicates repeat).
    fn orders(states: &[TaskState]) -> Vec<Vec<TaskState>> {
        if states.len() <= 1 {
            return vec![states.to_vec()];
        }
        let mut all = Vec::new();
        for i in 0..states.len() {
            let mut rest = states.to_vec();
            let first = rest.remove(i);
            for mut order in orders(&rest) {
                order.insert(0, first);
                all.push(order);
            }
        }
        all
    }

    /// What a task decides when its upstream tasks finish in `order`: the first decision
    /// that is not `Wait`, as the tracker takes it.
    fn decided_in(rule: TriggerRule, order: &[TaskState]) -> Decision {
        let mut counts = UpstreamCounts {
            total: u32::try_from(order.len()).unwrap(),
            ..Default::default()
        };
        for &state in order {
            counts.record(state);
            let decision = decide(rule, &counts);
            if decision != Decision::Wait {
                return decision;
            }
        }
        Decision::Wait
    }

    #[test]
    fn the_outcome_depends_on_the_final_states_never_on_the_finishing_order() {
        use TaskState::{Failed, Skipped, Success, UpstreamFailed};
        let finals = [Success, Failed, UpstreamFailed, Skipped];
        for size in 1..=5_u32 {
            // Every multiset of `size` final states, as counts per state.
            for code in 0..4_usize.pow(size) {
                let digits: Vec<usize> = (0..size).map(|i| code / 4_usize.pow(i) % 4).collect();
                if digits.windows(2).any(|w| w[0] > w[1]) {
                    continue; // the same multiset in another order
                }
                let states: Vec<TaskState> = digits.iter().map(|&d| finals[d]).collect();
                for rule in TriggerRule::ALL {
                    let first = decided_in(rule, &states);
                    assert_ne!(first, Decision::Wait, "{rule} never decided on {states:?}");
                    for order in orders(&states) {
                        assert_eq!(
                            decided_in(rule, &order),
                            first,
                            "{rule}: {states:?} finishing as {order:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_failure_wins_over_a_skip() {
        use TaskState::{Failed, Skipped, UpstreamFailed};
        for order in [
            [Failed, Skipped, Skipped],
            [Skipped, Skipped, Failed],
            [Skipped, UpstreamFailed, Skipped],
        ] {
            assert_eq!(
                decided_in(TriggerRule::AllSuccess, &order),
                Decision::UpstreamFailed,
                "{order:?}"
            );
        }
    }

    #[test]
    fn all_done_min_one_success_needs_no_skip_and_a_success() {
        use TaskState::{Failed, Skipped, Success, UpstreamFailed};
        let rule = TriggerRule::AllDoneMinOneSuccess;
        assert_eq!(decided_in(rule, &[Failed, Success]), Decision::Run);
        assert_eq!(decided_in(rule, &[Success, Skipped]), Decision::Skip);
        assert_eq!(
            decided_in(rule, &[Failed, UpstreamFailed]),
            Decision::UpstreamFailed
        );
        assert_eq!(
            "all_done_min_one_success".parse::<TriggerRule>().unwrap(),
            rule
        );
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

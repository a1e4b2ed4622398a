//! Trigger rules: when a task may run, given the states of its upstream tasks.
//!
//! Only Airflow's default, `all_success`, is offered so far; the decision is computed from
//! counts of upstream states so that further rules are one match arm each.

use crate::state::TaskState;

/// Counts of the states upstream tasks have finished in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpstreamCounts {
    /// Upstream tasks in total.
    pub total: u32,
    /// Finished `success`.
    pub success: u32,
    /// Finished `failed` or `upstream_failed`.
    pub failed: u32,
    /// Finished `skipped`.
    pub skipped: u32,
}

impl UpstreamCounts {
    /// Counts one more finished upstream task.
    pub fn record(&mut self, state: TaskState) {
        match state {
            TaskState::Success => self.success += 1,
            TaskState::Failed | TaskState::UpstreamFailed => self.failed += 1,
            TaskState::Skipped => self.skipped += 1,
            _ => {}
        }
    }

    /// Upstream tasks that have finished.
    pub fn done(&self) -> u32 {
        self.success + self.failed + self.skipped
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

/// Airflow's `all_success`: run when every upstream succeeded; `upstream_failed` as soon as
/// one failed; `skipped` as soon as one was skipped.
pub fn all_success(counts: &UpstreamCounts) -> Decision {
    if counts.failed > 0 {
        Decision::UpstreamFailed
    } else if counts.skipped > 0 {
        Decision::Skip
    } else if counts.success == counts.total {
        Decision::Run
    } else {
        Decision::Wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(total: u32, states: &[TaskState]) -> UpstreamCounts {
        let mut c = UpstreamCounts {
            total,
            ..Default::default()
        };
        states.iter().for_each(|&s| c.record(s));
        c
    }

    #[test]
    fn all_success_follows_airflow() {
        use TaskState::*;
        assert_eq!(all_success(&counts(0, &[])), Decision::Run);
        assert_eq!(all_success(&counts(2, &[Success])), Decision::Wait);
        assert_eq!(all_success(&counts(2, &[Success, Success])), Decision::Run);
        assert_eq!(all_success(&counts(3, &[Failed])), Decision::UpstreamFailed);
        assert_eq!(
            all_success(&counts(3, &[UpstreamFailed, Success])),
            Decision::UpstreamFailed
        );
        assert_eq!(all_success(&counts(2, &[Skipped])), Decision::Skip);
        assert_eq!(counts(3, &[Skipped, Failed]).done(), 2);
    }
}

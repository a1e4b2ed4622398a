//! A failed command: its exit code and message. The runtime's errors state facts; the
//! conversions here add the CLI's advice (which command or flag to use next).

use crate::error::RunError;
use crate::home::HomeError;
use crate::objects::ObjectError;
use crate::ops::backfill::{BackfillError, RunFailure};
use crate::ops::logs::LogsError;
use crate::ops::pools::PoolError;
use crate::ops::resolve::ResolveError;
use crate::ops::test_task::TestTaskError;
use crate::ops::trigger::TriggerError;
use crate::ops::{InstanceError, UnknownTask};
use crate::settings::SettingsError;
use crate::store::StoreError;

/// A command that failed, with its exit code.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(super) code: u8,
    pub(super) message: String,
}

impl Failure {
    /// Bad input or settings: exit code 2.
    pub(super) fn usage(message: impl Into<String>) -> Self {
        Self {
            code: 2,
            message: message.into(),
        }
    }

    /// A failed run or operation: exit code 1.
    pub(super) fn failed(message: impl Into<String>) -> Self {
        Self {
            code: 1,
            message: message.into(),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Backend(_)
            | StoreError::DiskFull(_)
            | StoreError::IllegalTransition { .. } => Failure::failed(e.to_string()),
            StoreError::OlderSchema { .. } => {
                Failure::usage(format!("{e}: run `db migrate` first"))
            }
            _ => Failure::usage(e.to_string()),
        }
    }
}

impl From<HomeError> for Failure {
    fn from(e: HomeError) -> Self {
        match e {
            HomeError::Store(e) => e.into(),
            e => Failure::usage(e.to_string()),
        }
    }
}

impl From<ObjectError> for Failure {
    fn from(e: ObjectError) -> Self {
        match e {
            // The store did not do what was asked: a failed command, which may be repeated.
            ObjectError::Failed { .. }
            | ObjectError::NotFound { .. }
            | ObjectError::ArtifactMissing { .. }
            | ObjectError::File { .. }
            | ObjectError::Runtime(_) => Failure::failed(e.to_string()),
            // Settings that cannot work.
            _ => Failure::usage(e.to_string()),
        }
    }
}

impl From<RunError> for Failure {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Store(e) => e.into(),
            RunError::Objects(e) => e.into(),
            RunError::Runtime(_) => Failure::failed(e.to_string()),
            RunError::RunExists {
                ref dag_id,
                ref run_id,
            } => Failure::usage(format!(
                "{e}; resume it with `dags test {dag_id} --resume {run_id}`, or pick another --date"
            )),
            RunError::NoSuchRun { ref dag_id, .. } => {
                Failure::usage(format!("{e}; list its runs with `runs list {dag_id}`"))
            }
            RunError::RunFinished { .. } => Failure::usage(format!(
                "{e}; clear tasks with `tasks clear` to run them again"
            )),
            _ => Failure::usage(e.to_string()),
        }
    }
}

impl From<SettingsError> for Failure {
    fn from(e: SettingsError) -> Self {
        match e {
            SettingsError::Objects(e) => e.into(),
            SettingsError::Home(e) => e.into(),
            e => Failure::usage(e.to_string()),
        }
    }
}

impl From<UnknownTask> for Failure {
    fn from(e: UnknownTask) -> Self {
        Failure::usage(e.to_string())
    }
}

impl From<ResolveError> for Failure {
    fn from(e: ResolveError) -> Self {
        match e {
            ResolveError::Store(e) => e.into(),
            e => Failure::usage(e.to_string()),
        }
    }
}

impl From<InstanceError> for Failure {
    fn from(e: InstanceError) -> Self {
        match e {
            InstanceError::Store(e) => e.into(),
            InstanceError::NeedsMapIndex { .. } => {
                Failure::usage(format!("{e}: choose one with --map-index I"))
            }
            InstanceError::NotMapped { .. } => {
                Failure::usage(format!("{e}: leave out --map-index"))
            }
            e => Failure::usage(e.to_string()),
        }
    }
}

impl From<LogsError> for Failure {
    fn from(e: LogsError) -> Self {
        match e {
            LogsError::Instance(e) => e.into(),
            LogsError::Store(e) => e.into(),
            e => Failure::usage(e.to_string()),
        }
    }
}

impl From<TriggerError> for Failure {
    fn from(e: TriggerError) -> Self {
        match e {
            TriggerError::ConfNotJson { text, reason } => {
                Failure::usage(format!("invalid --conf `{text}`: not JSON: {reason}"))
            }
            TriggerError::Run(e) => e.into(),
        }
    }
}

impl From<BackfillError> for Failure {
    fn from(e: BackfillError) -> Self {
        match e {
            BackfillError::Reversed { from, to } => {
                Failure::usage(format!("--from {from} is after --to {to}"))
            }
            BackfillError::Run(e) => e.into(),
            BackfillError::Store(e) => e.into(),
            e => Failure::usage(e.to_string()),
        }
    }
}

impl From<RunFailure> for Failure {
    fn from(e: RunFailure) -> Self {
        match e {
            RunFailure::Lock(e) => e.into(),
            RunFailure::Run(e) => e.into(),
            e => Failure::failed(e.to_string()),
        }
    }
}

impl From<PoolError> for Failure {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Store(e) => e.into(),
            e => Failure::usage(e.to_string()),
        }
    }
}

impl From<TestTaskError> for Failure {
    fn from(e: TestTaskError) -> Self {
        match e {
            TestTaskError::BadJson { name, json, reason } => {
                Failure::usage(format!("--input {name}: invalid JSON `{json}`: {reason}"))
            }
            TestTaskError::BadValue { name, reason } => {
                Failure::usage(format!("--input {name}: {reason}"))
            }
            TestTaskError::Missing { ref dag_id, .. } => Failure::usage(format!(
                "{e}\nprovide each as JSON with --input NAME=JSON, or record a run first with `dags test {dag_id}`"
            )),
            TestTaskError::Failed { .. } | TestTaskError::Output(_) => {
                Failure::failed(e.to_string())
            }
            TestTaskError::Store(e) => e.into(),
            TestTaskError::Objects(e) => e.into(),
            e => Failure::usage(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_adds_its_hints_to_the_facts() {
        let older = StoreError::OlderSchema {
            path: "/h/flow.db".into(),
            found: 1,
            supported: 3,
        };
        assert!(!older.to_string().contains("db migrate"));
        let failure = Failure::from(older);
        assert_eq!(
            (failure.code, failure.message.as_str()),
            (
                2,
                "the database /h/flow.db has schema version 1; this binary needs 3: run `db migrate` first"
            )
        );
        let exists = RunError::RunExists {
            dag_id: "d".into(),
            run_id: "r".into(),
        };
        assert_eq!(exists.to_string(), "run `r` of DAG `d` already exists");
        assert!(
            Failure::from(exists)
                .message
                .ends_with("resume it with `dags test d --resume r`, or pick another --date")
        );
        let finished = RunError::RunFinished {
            run_id: "r".into(),
            state: crate::state::RunState::Success,
        };
        assert!(Failure::from(finished).message.contains("`tasks clear`"));
    }
}

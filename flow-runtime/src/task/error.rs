//! Why one try of a task failed.

/// Why one try of a task failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TaskError {
    /// The task returned an error.
    #[error("{0}")]
    Failed(String),
    /// The task panicked; the run goes on.
    #[error("task panicked: {0}")]
    Panicked(String),
    /// An input is not available (its producer has not stored it).
    #[error("input `{param}` is missing: {hint}")]
    MissingInput {
        /// The parameter.
        param: String,
        /// How to provide it.
        hint: String,
    },
    /// A stored input no longer decodes into the parameter's type, typically because the
    /// producer's type changed between deploys.
    #[error(
        "input `{param}` from task `{producer}` does not decode as `{expected}` (it was stored as `{stored}`): {reason}; \
         clear and re-run `{producer}` so it stores the new type"
    )]
    InputDecode {
        /// The parameter.
        param: String,
        /// The task that produced the value.
        producer: String,
        /// The type name the producer stored.
        stored: String,
        /// The type the consumer expects.
        expected: &'static str,
        /// The codec's reason.
        reason: String,
    },
    /// The return value could not be serialized.
    #[error("the return value does not serialize: {0}")]
    OutputEncode(String),
    /// An XCom pushed or pulled by key could not be used.
    #[error("{0}")]
    XCom(String),
    /// The try ran longer than the task's `execution_timeout`. An async task is cancelled;
    /// a sync task's thread cannot be stopped, so its result is discarded.
    #[error("the try exceeded its execution_timeout of {}", humantime::format_duration(*.0))]
    TimedOut(std::time::Duration),
    /// A sensor's condition was not met in time: the task fails without retrying.
    #[error("{0}")]
    SensorTimeout(String),
    /// A `soft_fail` sensor's condition was not met in time: the task is skipped.
    #[error("{0}")]
    SoftFail(String),
    /// Not an error: a sensor in `reschedule` mode whose condition is not met yet asks to
    /// be poked again at `at` (Airflow's `AirflowRescheduleException`). The executor puts
    /// the instance `up_for_reschedule`, freeing its slot, and keeps its try number.
    #[error("sensor condition not met; poking again at {}", .at.to_rfc3339())]
    Reschedule {
        /// When the next poke is due.
        at: chrono::DateTime<chrono::Utc>,
    },
    /// The process running this try ended before the try finished.
    #[error("try {0} was interrupted: the process running it ended before it finished")]
    Interrupted(u32),
    /// The task skipped itself ([`SkipTask`], Airflow's `AirflowSkipException`): it ends
    /// `skipped` and its downstream tasks follow their trigger rules.
    #[error("skipped: {0}")]
    Skip(String),
    /// The task failed and asked not to be retried ([`FailTask`], Airflow's
    /// `AirflowFailException`): it ends `failed` whatever retries are left.
    #[error("{0} (failed without retrying)")]
    FailNow(String),
    /// The task failed and its retry policy asks for the next try after `delay` rather
    /// than the task's `retry_delay` (while retries are left).
    #[error("{message}")]
    Backoff {
        /// What failed, and why the policy decided so.
        message: String,
        /// The pause before the retry.
        delay: std::time::Duration,
    },
}

/// Return this error (or any error whose chain of causes holds it) from a task to end the
/// try as `skipped` rather than failed: Airflow's `AirflowSkipException`.
///
/// ```
/// use flow_runtime::prelude::*;
///
/// #[task]
/// fn load(rows: Vec<u32>) -> anyhow::Result<u32> {
///     if rows.is_empty() {
///         return Err(SkipTask::new("no rows today").into());
///     }
///     Ok(rows.iter().sum())
/// }
/// # assert!(load(vec![]).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("skipped: {reason}")]
pub struct SkipTask {
    reason: String,
}

impl SkipTask {
    /// Skips the task, saying why.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

/// Return this error (or any error whose chain of causes holds it) from a task to fail it
/// at once, without the retries it has left: Airflow's `AirflowFailException`, for errors
/// that a retry cannot mend (bad credentials, invalid input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct FailTask {
    reason: String,
}

impl FailTask {
    /// Fails the task without retrying, saying why.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

impl TaskError {
    /// Wraps any error a task returns, keeping its chain of causes in the message; a
    /// [`SkipTask`] or [`FailTask`] anywhere in the chain skips the task or fails it
    /// without retrying.
    pub fn from_error(err: impl Into<anyhow::Error>) -> Self {
        // A task returning `Result<_, TaskError>` keeps its error as it is.
        let err = match err.into().downcast::<TaskError>() {
            Ok(task_error) => return task_error,
            Err(err) => err,
        };
        let skipped = err
            .chain()
            .find_map(|e| match e.downcast_ref::<TaskError>() {
                Some(TaskError::Skip(reason)) => Some(reason.clone()),
                _ => e.downcast_ref::<SkipTask>().map(|skip| skip.reason.clone()),
            });
        if let Some(reason) = skipped {
            return TaskError::Skip(reason);
        }
        let message = format!("{err:#}");
        let fails_now = |e: &(dyn std::error::Error + 'static)| {
            e.is::<FailTask>()
                || matches!(e.downcast_ref::<TaskError>(), Some(TaskError::FailNow(_)))
        };
        if err.chain().any(fails_now) {
            return TaskError::FailNow(message);
        }
        // The policy of the try running here judges the error while its type is known.
        let Some(decision) = super::retry::decide(&err) else {
            return TaskError::Failed(message);
        };
        let reason = decision.reason.unwrap_or_default();
        if !reason.is_empty() {
            tracing::warn!("retry policy: {reason}");
        }
        match (decision.action, decision.delay) {
            (super::retry::RetryAction::Fail, _) => {
                TaskError::FailNow(format!("{message} (retry policy: {reason})"))
            }
            (super::retry::RetryAction::Retry, Some(delay)) => TaskError::Backoff {
                message: format!("{message} (retry policy: {reason})"),
                delay,
            },
            _ => TaskError::Failed(message),
        }
    }

    /// Whether a retry may follow this error (not after a sensor's timeout or a
    /// [`FailTask`], as in Airflow).
    pub fn is_retryable(&self) -> bool {
        !matches!(self, TaskError::SensorTimeout(_) | TaskError::FailNow(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_errors_keep_the_cause_chain() {
        let err = anyhow::anyhow!("disk full").context("writing parquet");
        assert_eq!(
            TaskError::from_error(err).to_string(),
            "writing parquet: disk full"
        );
    }

    #[test]
    fn a_task_error_passes_through_as_it_is() {
        let skip = TaskError::Skip("exists".into());
        assert!(matches!(TaskError::from_error(skip), TaskError::Skip(r) if r == "exists"));
        let wrapped = anyhow::Error::from(TaskError::FailNow("ended failed".into()))
            .context("waiting for the report");
        assert!(matches!(
            TaskError::from_error(wrapped),
            TaskError::FailNow(m) if m.contains("ended failed")
        ));
    }

    #[test]
    fn skip_and_fail_markers_are_found_anywhere_in_the_chain() {
        let skip = anyhow::Error::from(SkipTask::new("no data")).context("loading");
        assert_eq!(
            TaskError::from_error(skip),
            TaskError::Skip("no data".into())
        );
        let fail = anyhow::Error::from(FailTask::new("bad token")).context("calling the API");
        let error = TaskError::from_error(fail);
        assert_eq!(
            error,
            TaskError::FailNow("calling the API: bad token".into())
        );
        assert!(!error.is_retryable());
        assert!(TaskError::Failed("x".into()).is_retryable());
    }
}

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
}

impl TaskError {
    /// Wraps any error a task returns, keeping its chain of causes in the message.
    pub fn from_error(err: impl Into<anyhow::Error>) -> Self {
        TaskError::Failed(format!("{:#}", err.into()))
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
}

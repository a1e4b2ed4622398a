//! Notifications: email (Airflow's `email_on_failure` / `email_on_retry`) and JSON
//! webhooks, delivered as ordinary [callbacks](crate::callbacks).
//!
//! A task with `email = [..]` is mailed when it fails for good and when a try is retried
//! (each can be turned off with `email_on_failure` / `email_on_retry`); the executor sends
//! it through the SMTP server named by the `FLOW_SMTP_*` variables (see
//! `SmtpConfig::from_env`) or by `Executor::smtp`. A
//! `Webhook` POSTs the [`CallbackEvent`](crate::task::callbacks::CallbackEvent) as JSON and
//! is attached like any callback:
//!
//! ```no_run
//! # #[cfg(feature = "webhook")]
//! # fn main() -> Result<(), flow_runtime::notify::NotifyError> {
//! use flow_runtime::prelude::*;
//! let dag = DagBuilder::new("etl").on_failure(flow_runtime::notify::webhook("https://alerts.example.com/flow")?);
//! # let _ = dag;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "webhook"))]
//! # fn main() {}
//! ```
//!
//! The macros' `on_failure = ..` options take the path of a function; a notifier is used
//! from one like this:
//!
//! ```no_run
//! # #[cfg(feature = "webhook")]
//! fn page_on_call(event: &flow_runtime::task::callbacks::CallbackEvent) {
//!     match flow_runtime::notify::Webhook::new("https://alerts.example.com/flow") {
//!         Ok(hook) => hook.notify(event),
//!         Err(e) => tracing::error!("{e}"),
//!     }
//! }
//! ```
//!
//! Email needs flow-runtime's `email` feature and webhooks its `webhook` feature. Both
//! run after the state they report is durable, on the blocking pool; a notification that
//! cannot be delivered is logged (`tracing::error!`, with what and where) and never
//! changes a task's or a run's state.

#[cfg(feature = "email")]
mod email;
#[cfg(feature = "webhook")]
mod webhook;

#[cfg(feature = "email")]
pub(crate) use email::check_address;
#[cfg(feature = "email")]
pub use email::{EmailNotifier, SmtpConfig, SmtpSecurity};
#[cfg(feature = "webhook")]
pub use webhook::{Webhook, webhook};

/// Why a notifier could not be set up, or a notification was not delivered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotifyError {
    /// A required `FLOW_SMTP_*` variable is not set.
    #[error("{var} is not set: {hint}")]
    MissingVar {
        /// The variable.
        var: &'static str,
        /// What to set it to.
        hint: &'static str,
    },
    /// A `FLOW_SMTP_*` variable with a value that cannot be used.
    #[error("{var}=`{value}` is not valid: expected {expected}")]
    InvalidVar {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What it may be.
        expected: &'static str,
    },
    /// A notifier with no one to notify.
    #[error("no email recipients: give at least one address, like `[\"ops@example.com\"]`")]
    NoRecipients,
    /// An email address that does not parse.
    #[error("invalid email address `{address}`: {reason}")]
    InvalidAddress {
        /// The address as written.
        address: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A webhook URL that cannot be used.
    #[error("invalid webhook URL `{url}`: {reason}; expected an http:// or https:// URL")]
    InvalidUrl {
        /// The URL as written.
        url: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The SMTP server could not be reached or refused the message.
    #[error("sending email through {server} failed: {reason}")]
    Smtp {
        /// `host:port` of the server.
        server: String,
        /// What went wrong.
        reason: String,
    },
    /// A webhook POST that got no answer.
    #[error("POST to {url} failed: {reason}")]
    Http {
        /// The webhook URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A webhook that answered with a status other than 2xx.
    #[error("POST to {url} answered HTTP {status}; a webhook must answer 2xx")]
    Status {
        /// The webhook URL.
        url: String,
        /// The status code.
        status: u16,
    },
}

/// The subject of a notification, like Airflow's alert mails:
/// `Flow alert: <TaskInstance: etl.load manual__2025-01-01T00:00:00+00:00 [failed]>`
/// (with `map_index=3` before the state for an instance of a mapped task).
pub fn subject(event: &crate::task::callbacks::CallbackEvent) -> String {
    match &event.task_id {
        Some(task) => format!(
            "Flow alert: <TaskInstance: {}.{} {}{} [{}]>",
            event.dag_id,
            task,
            event.run_id,
            event
                .map_index
                .map(|i| format!(" map_index={i}"))
                .unwrap_or_default(),
            event.state
        ),
        None => format!(
            "Flow alert: <DagRun {} @ {}: {}, state: {}>",
            event.dag_id,
            event.logical_date.to_rfc3339(),
            event.run_id,
            event.state
        ),
    }
}

/// The plain-text body of a notification: DAG, task, run, try, state, logical date and
/// the error.
pub fn body(event: &crate::task::callbacks::CallbackEvent) -> String {
    use std::fmt::Write;
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(text, "DAG: {}", event.dag_id);
    if let Some(task) = &event.task_id {
        let _ = writeln!(text, "Task: {task}");
    }
    if let Some(map_index) = event.map_index {
        let _ = writeln!(text, "Map index: {map_index}");
    }
    let _ = writeln!(text, "Run: {}", event.run_id);
    let _ = writeln!(text, "Logical date: {}", event.logical_date.to_rfc3339());
    if event.task_id.is_some() {
        let _ = writeln!(text, "Try: {}", event.try_number);
    }
    let _ = writeln!(text, "State: {}", event.state);
    if let Some(error) = &event.error {
        let _ = write!(text, "Error:\n{error}\n");
    }
    text
}

/// Logs a notification that was not delivered; the state it reports stays as it is.
#[cfg(any(feature = "email", feature = "webhook"))]
fn log_failure(kind: &str, event: &crate::task::callbacks::CallbackEvent, error: &NotifyError) {
    tracing::error!(
        dag = %event.dag_id,
        run = %event.run_id,
        task = ?event.task_id.as_ref().map(crate::ids::TaskId::as_str),
        "{kind} about state {} not delivered (the state stays {}): {error}",
        event.state,
        event.state
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::callbacks::CallbackEvent;

    fn event(task: Option<&str>) -> CallbackEvent {
        CallbackEvent {
            dag_id: "etl".into(),
            run_id: crate::ids::RunId::new("manual__1"),
            logical_date: chrono::DateTime::from_timestamp(1_735_689_600, 0).unwrap(),
            task_id: task.map(Into::into),
            map_index: None,
            try_number: 2,
            state: "failed",
            error: Some("disk full".into()),
        }
    }

    #[test]
    fn alerts_read_like_airflows() {
        assert_eq!(
            subject(&event(Some("load"))),
            "Flow alert: <TaskInstance: etl.load manual__1 [failed]>"
        );
        assert_eq!(
            body(&event(Some("load"))),
            "DAG: etl\nTask: load\nRun: manual__1\nLogical date: 2025-01-01T00:00:00+00:00\n\
             Try: 2\nState: failed\nError:\ndisk full\n"
        );
        assert_eq!(
            subject(&event(None)),
            "Flow alert: <DagRun etl @ 2025-01-01T00:00:00+00:00: manual__1, state: failed>"
        );
        assert!(!body(&event(None)).contains("Try:"));
        let mapped = CallbackEvent {
            map_index: Some(3),
            ..event(Some("load"))
        };
        assert_eq!(
            subject(&mapped),
            "Flow alert: <TaskInstance: etl.load manual__1 map_index=3 [failed]>"
        );
        assert!(body(&mapped).contains("Task: load\nMap index: 3\n"));
    }

    #[test]
    fn the_json_event_names_every_field() {
        let json = serde_json::to_value(event(Some("load"))).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "dag_id": "etl",
                "run_id": "manual__1",
                "logical_date": "2025-01-01T00:00:00Z",
                "task_id": "load",
                "map_index": null,
                "try_number": 2,
                "state": "failed",
                "error": "disk full",
            })
        );
    }
}

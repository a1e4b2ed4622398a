//! What running a container through Docker and as a pod share: its environment, the
//! labels that find an instance's leftovers, its output as it streams, the outcome from the
//! exit code, and removal when a try is cancelled.

use std::collections::VecDeque;

use super::{ContainerSpec, SKIP_EXIT_CODE};
use crate::task::{TaskContext, TaskError};

/// The environment of the container: the task context as `FLOW_*` variables (as for shell
/// tasks), then the spec's own.
pub(super) fn environment(spec: &ContainerSpec, ctx: &TaskContext) -> Vec<(String, String)> {
    [
        ("FLOW_DAG_ID", ctx.dag_id().to_string()),
        ("FLOW_TASK_ID", ctx.task_id().to_string()),
        ("FLOW_RUN_ID", ctx.run_id().to_string()),
        ("FLOW_LOGICAL_DATE", ctx.logical_date().to_rfc3339()),
        ("FLOW_DS", ctx.ds()),
        ("FLOW_TRY_NUMBER", ctx.try_number().to_string()),
    ]
    .into_iter()
    .chain(ctx.map_index().map(|i| ("FLOW_MAP_INDEX", i.to_string())))
    .map(|(k, v)| (k.to_string(), v))
    .chain(spec.env.iter().cloned())
    .collect()
}

/// The label every flow container and pod carries; the others name the instance and try.
pub(super) const MANAGED: &str = "flow.managed";

/// The labels that name one instance (all its tries): an earlier try's leftovers are found
/// by them.
pub(super) fn instance_labels(ctx: &TaskContext) -> Vec<(&'static str, String)> {
    vec![
        (MANAGED, "true".into()),
        ("flow.dag_id", ctx.dag_id().to_string()),
        ("flow.run_id", ctx.run_id().to_string()),
        ("flow.task_id", ctx.task_id().to_string()),
        (
            "flow.map_index",
            ctx.map_index()
                .map_or_else(|| "-1".into(), |i| i.to_string()),
        ),
    ]
}

/// How many output lines a failure message quotes.
const OUTPUT_TAIL: usize = 5;

/// What a try keeps of a container's output as it streams into the log: the last line of
/// stdout (the default output) and the last lines of both streams (for a failure).
#[derive(Default)]
pub(super) struct Output {
    last: String,
    tail: VecDeque<String>,
}

impl Output {
    /// Logs a line of stdout and keeps it.
    pub(super) fn stdout(&mut self, line: String) {
        tracing::info!(target: "flow::container", "{line}");
        self.last.clone_from(&line);
        self.keep(line);
    }

    /// Logs a line of stderr and keeps it for a failure message.
    #[cfg_attr(not(feature = "docker"), allow(dead_code))]
    pub(super) fn stderr(&mut self, line: String) {
        tracing::warn!(target: "flow::container", "{line}");
        self.keep(line);
    }

    fn keep(&mut self, line: String) {
        if self.tail.len() == OUTPUT_TAIL {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }

    /// The try's result from the exit code: the output (`file`'s content, else the last
    /// stdout line) on 0, a skip on [`SKIP_EXIT_CODE`], else a failure quoting the tail.
    pub(super) fn outcome(self, code: i64, file: Option<String>) -> Result<String, TaskError> {
        match code {
            0 => Ok(file.unwrap_or(self.last)),
            c if c == i64::from(SKIP_EXIT_CODE) => Err(TaskError::Skip(format!(
                "the container exited with {SKIP_EXIT_CODE}"
            ))),
            c if self.tail.is_empty() => Err(TaskError::Failed(format!(
                "the container exited with code {c}"
            ))),
            c => Err(TaskError::Failed(format!(
                "the container exited with code {c}; its output ends with:\n{}",
                Vec::from(self.tail).join("\n")
            ))),
        }
    }
}

/// Runs `remove` on a thread of its own with a runtime of its own, and waits for it: a
/// cancelled try's container goes before the try is reported, whatever runtime (if any)
/// drops the try, so a process that ends right after leaves none behind. Should it fail,
/// the instance's next try finds the container by its labels.
pub(super) fn remove_in_thread<F, Fut>(remove: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), String>>,
{
    let removal = std::thread::Builder::new()
        .name("flow-container-removal".into())
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?
                .block_on(remove())
        });
    match removal.map(std::thread::JoinHandle::join) {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!("{e}"),
        _ => tracing::warn!("could not remove the container of a cancelled try"),
    }
}

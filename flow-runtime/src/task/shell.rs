//! Shell tasks: a task returns a [`ShellCommand`], and the runtime runs it (Airflow's
//! `@task.bash`). Values reach the command as environment variables, never spliced into
//! the script text, so untrusted input cannot change what the shell runs.
//!
//! The command runs in its own process group with the task context in `FLOW_*`
//! variables; stdout and stderr lines go to the try's log; a non-zero exit fails the try
//! with the exit code and the tail of stderr ([`SKIP_EXIT_CODE`] skips it instead); the
//! last line of stdout is the task's output. If the try is cancelled (execution timeout, stop), the whole process group is
//! killed.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::context::TaskContext;
use super::error::TaskError;

/// How many stderr lines a failure message quotes.
const STDERR_TAIL: usize = 5;

/// A shell command that exits with this code ends its task `skipped`, as Airflow's
/// `BashOperator` does by default (`skip_on_exit_code=99`).
pub const SKIP_EXIT_CODE: i32 = 99;

/// A script for `bash -c`, with its environment and working directory.
///
/// ```
/// use flow_runtime::task::shell::ShellCommand;
/// let cmd = ShellCommand::bash(r#"echo "hello $NAME""#).env("NAME", "world; rm -rf /");
/// assert_eq!(cmd.script(), r#"echo "hello $NAME""#);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShellCommand {
    script: String,
    env: Vec<(String, String)>,
    cwd: Option<PathBuf>,
}

impl ShellCommand {
    /// A bash script; refer to values as `"$NAME"` and give them with [`ShellCommand::env`].
    pub fn bash(script: impl Into<String>) -> Self {
        Self {
            script: script.into(),
            env: Vec::new(),
            cwd: None,
        }
    }

    /// Sets an environment variable for the command.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Runs the command in `dir`.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// The script.
    pub fn script(&self) -> &str {
        &self.script
    }

    /// Runs the command for a task: returns the last line of stdout.
    pub async fn run(&self, ctx: &TaskContext) -> Result<String, TaskError> {
        let mut command = tokio::process::Command::new("bash");
        command
            .arg("-c")
            .arg(&self.script)
            .env("FLOW_DAG_ID", ctx.dag_id().as_str())
            .env("FLOW_TASK_ID", ctx.task_id().as_str())
            .env("FLOW_RUN_ID", ctx.run_id().as_str())
            .env("FLOW_LOGICAL_DATE", ctx.logical_date().to_rfc3339())
            .env("FLOW_DS", ctx.ds())
            .env("FLOW_TRY_NUMBER", ctx.try_number().to_string())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(dir) = &self.cwd {
            command.current_dir(dir);
        }
        #[cfg(unix)]
        command.process_group(0);
        let mut child = command
            .spawn()
            .map_err(|e| TaskError::Failed(format!("cannot start `bash`: {e}")))?;
        let group = GroupGuard(child.id());
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(TaskError::Failed(
                "the command's output pipes are missing".into(),
            ));
        };
        let read_stdout = async {
            let mut lines = BufReader::new(stdout).lines();
            let mut last = String::new();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::info!(target: "flow::shell", "{line}");
                last = line;
            }
            last
        };
        let read_stderr = async {
            let mut lines = BufReader::new(stderr).lines();
            let mut tail = VecDeque::with_capacity(STDERR_TAIL);
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::warn!(target: "flow::shell", "{line}");
                if tail.len() == STDERR_TAIL {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
            tail
        };
        let (last, tail, status) = tokio::join!(read_stdout, read_stderr, child.wait());
        let status =
            status.map_err(|e| TaskError::Failed(format!("waiting for the command: {e}")))?;
        group.disarm();
        if status.success() {
            return Ok(last);
        }
        if status.code() == Some(SKIP_EXIT_CODE) {
            return Err(TaskError::Skip(format!(
                "the command exited with {SKIP_EXIT_CODE}"
            )));
        }
        let code = status
            .code()
            .map_or_else(|| "a signal".to_string(), |c| format!("exit code {c}"));
        let tail: Vec<String> = tail.into_iter().collect();
        Err(TaskError::Failed(if tail.is_empty() {
            format!("the command failed with {code}")
        } else {
            format!(
                "the command failed with {code}; stderr ends with:\n{}",
                tail.join("\n")
            )
        }))
    }
}

/// Kills the command's whole process group if the try is dropped before it ends.
struct GroupGuard(Option<u32>);

impl GroupGuard {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(pid) = self.0.and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn the_last_stdout_line_is_the_output_and_values_stay_data() {
        let ctx = TaskContext::for_test("shell_dag", "greet");
        let hostile = "world\"; echo INJECTED; echo \"";
        let cmd = ShellCommand::bash(r#"echo "first"; echo "hello $NAME from $FLOW_TASK_ID""#)
            .env("NAME", hostile);
        let out = cmd.run(&ctx).await.unwrap();
        assert_eq!(out, format!("hello {hostile} from greet"));
    }

    #[tokio::test]
    async fn a_failing_command_reports_its_code_and_stderr_tail() {
        let ctx = TaskContext::for_test("shell_dag", "fail");
        let cmd = ShellCommand::bash("for i in 1 2 3 4 5 6 7; do echo line$i >&2; done; exit 3");
        let err = cmd.run(&ctx).await.unwrap_err().to_string();
        assert!(
            err.starts_with("the command failed with exit code 3; stderr ends with:\nline3\n"),
            "{err}"
        );
        assert!(err.ends_with("line7"), "{err}");
    }

    #[tokio::test]
    async fn working_directory_and_missing_directories() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = TaskContext::for_test("shell_dag", "pwd");
        let out = ShellCommand::bash("pwd")
            .current_dir(dir.path())
            .run(&ctx)
            .await
            .unwrap();
        assert_eq!(
            PathBuf::from(out).canonicalize().unwrap(),
            dir.path().canonicalize().unwrap()
        );
        let err = ShellCommand::bash("pwd")
            .current_dir(dir.path().join("nope"))
            .run(&ctx)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("cannot start `bash`"), "{err}");
    }

    #[tokio::test]
    async fn a_cancelled_command_has_its_process_group_killed() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survivor");
        let ctx = TaskContext::for_test("shell_dag", "slow");
        // A grandchild that would write the marker after 1 s if it survived.
        let cmd = ShellCommand::bash(r#"(sleep 1; touch "$MARKER") & sleep 30"#)
            .env("MARKER", marker.display().to_string());
        let outcome = tokio::time::timeout(Duration::from_millis(200), cmd.run(&ctx)).await;
        assert!(outcome.is_err(), "the command was cut by the timeout");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!marker.exists(), "a process of the group outlived the try");
    }
}

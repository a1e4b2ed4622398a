//! Container tasks: a task returns a [`ContainerSpec`], and the runtime runs it through
//! the Docker Engine API (Airflow's `DockerOperator`, and the container half of the
//! `KubernetesPodOperator`), with the `docker` feature.
//!
//! - `command` replaces the image's entrypoint and `args` its command, as a Kubernetes
//!   container's `command` and `args` do; values reach the container as arguments or
//!   environment variables, never spliced into a shell string. The task context is in
//!   `FLOW_*` variables, as for shell tasks.
//! - stdout and stderr lines go to the try's log as they come; an exit code other than 0
//!   fails the try with the code and the tail of the output ([`SKIP_EXIT_CODE`] skips it);
//!   the output is the last line of stdout, or the content of a file in the container
//!   ([`ContainerSpec::output_file`]).
//! - The container is removed at the end, and when the try is cancelled (its
//!   `execution_timeout`, a stop). Each container carries labels naming its DAG, run, task,
//!   map index and try: a try first removes the containers an earlier try of the same
//!   instance left behind (a killed process), so nothing runs twice after a resume.
//!
//! The daemon is the one `DOCKER_HOST` names (`unix://` or `tcp://`), else the local socket;
//! podman's Docker-compatible API works the same.
//!
//! The same spec runs as a Kubernetes pod instead when it is given [`PodOptions`]
//! ([`ContainerSpec::pod`], the `kubernetes` feature): see [`pod`] for what changes.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use super::shell::SKIP_EXIT_CODE;
use super::{TaskContext, TaskError};

pub mod pod;
pub use pod::{PodOptions, TaintEffect, Toleration};

/// Which network the container joins.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Network {
    /// The daemon's default (its bridge).
    #[default]
    Default,
    /// No network at all.
    None,
    /// The host's network.
    Host,
    /// A network by name.
    Named(String),
}

/// When the image is pulled from its registry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PullPolicy {
    /// Only when the daemon does not have it.
    #[default]
    IfNotPresent,
    /// Before every try.
    Always,
    /// Never: a missing image fails the try.
    Never,
}

/// A directory or file of the host seen inside the container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// The path on the host.
    pub source: PathBuf,
    /// The path in the container.
    pub target: String,
    /// Whether the container may not write to it.
    pub read_only: bool,
}

/// A container to run for a task: its image, command, environment, mounts, resources,
/// network and pull policy, and where its output comes from.
///
/// ```
/// use flow_runtime::task::container::{ContainerSpec, Network};
/// let spec = ContainerSpec::new("python:3.12-slim")
///     .command(["python", "-c"])
///     .arg("import os; print(os.environ['ROWS'])")
///     .env("ROWS", "1797")
///     .network(Network::None)
///     .cpus(2.0)
///     .memory_bytes(4 << 30);
/// assert_eq!(spec.image(), "python:3.12-slim");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContainerSpec {
    image: String,
    command: Vec<String>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    mounts: Vec<Mount>,
    working_dir: Option<String>,
    user: Option<String>,
    cpus: Option<f64>,
    memory_bytes: Option<u64>,
    gpus: Option<u32>,
    network: Network,
    pull: PullPolicy,
    output_file: Option<String>,
    pod: Option<PodOptions>,
}

impl ContainerSpec {
    /// A container of `image` running the image's own entrypoint and command.
    pub fn new(image: impl Into<String>) -> Self {
        Self {
            image: image.into(),
            command: Vec::new(),
            args: Vec::new(),
            env: Vec::new(),
            mounts: Vec::new(),
            working_dir: None,
            user: None,
            cpus: None,
            memory_bytes: None,
            gpus: None,
            network: Network::Default,
            pull: PullPolicy::IfNotPresent,
            output_file: None,
            pod: None,
        }
    }

    /// Replaces the image's entrypoint (a Kubernetes container's `command`).
    pub fn command<I: IntoIterator<Item = S>, S: Into<String>>(mut self, command: I) -> Self {
        self.command = command.into_iter().map(Into::into).collect();
        self
    }

    /// Replaces the image's command with these arguments (a Kubernetes container's
    /// `args`).
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Sets an environment variable in the container.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Mounts the host's `source` at `target`, writable.
    pub fn mount(mut self, source: impl Into<PathBuf>, target: impl Into<String>) -> Self {
        self.mounts.push(Mount {
            source: source.into(),
            target: target.into(),
            read_only: false,
        });
        self
    }

    /// Mounts the host's `source` at `target`, read-only.
    pub fn mount_read_only(
        mut self,
        source: impl Into<PathBuf>,
        target: impl Into<String>,
    ) -> Self {
        self.mounts.push(Mount {
            source: source.into(),
            target: target.into(),
            read_only: true,
        });
        self
    }

    /// Runs the command in `dir` inside the container.
    pub fn working_dir(mut self, dir: impl Into<String>) -> Self {
        self.working_dir = Some(dir.into());
        self
    }

    /// Runs as `user` (`name`, `uid` or `uid:gid`).
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// At most this many CPUs.
    pub fn cpus(mut self, cpus: f64) -> Self {
        self.cpus = Some(cpus);
        self
    }

    /// At most this much memory.
    pub fn memory_bytes(mut self, bytes: u64) -> Self {
        self.memory_bytes = Some(bytes);
        self
    }

    /// This many GPUs (Docker's `--gpus N`, through the NVIDIA runtime).
    pub fn gpus(mut self, count: u32) -> Self {
        self.gpus = Some(count);
        self
    }

    /// The network the container joins (default: the daemon's).
    pub fn network(mut self, network: Network) -> Self {
        self.network = network;
        self
    }

    /// When the image is pulled (default: only when missing).
    pub fn pull(mut self, pull: PullPolicy) -> Self {
        self.pull = pull;
        self
    }

    /// Takes the task's output from this file in the container (read after it exits)
    /// instead of the last line of stdout.
    pub fn output_file(mut self, path: impl Into<String>) -> Self {
        self.output_file = Some(path.into());
        self
    }

    /// Runs the container as a Kubernetes pod with these options (namespace, service
    /// account, node selector, tolerations) instead of through Docker; needs the
    /// `kubernetes` feature.
    pub fn pod(mut self, options: PodOptions) -> Self {
        self.pod = Some(options);
        self
    }

    /// The image.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// What is wrong with the spec, if anything: checked before anything is started.
    pub fn check(&self) -> Result<(), String> {
        if self.image.trim().is_empty() {
            return Err("the container's image is empty; name one, like `busybox:1.36`".into());
        }
        if let Some(cpus) = self.cpus
            && !(cpus.is_finite() && cpus > 0.0)
        {
            return Err(format!("`cpus` must be a positive number, not {cpus}"));
        }
        if self.memory_bytes == Some(0) {
            return Err("`memory_bytes` must be more than 0".into());
        }
        if let Some((name, _)) = self
            .env
            .iter()
            .find(|(name, _)| name.is_empty() || name.contains('='))
        {
            return Err(format!(
                "the environment variable name `{name}` is not valid: it must be non-empty, without `=`"
            ));
        }
        for mount in &self.mounts {
            if !mount.target.starts_with('/') {
                return Err(format!(
                    "the mount target `{}` must be an absolute path in the container",
                    mount.target
                ));
            }
            if !mount.source.is_absolute() {
                return Err(format!(
                    "the mount source `{}` must be an absolute path on the host",
                    mount.source.display()
                ));
            }
        }
        if let Some(path) = &self.output_file
            && !path.starts_with('/')
        {
            return Err(format!(
                "the output file `{path}` must be an absolute path in the container"
            ));
        }
        Ok(())
    }
}

/// Runs the container for a try, through Docker or as a pod: returns its output.
#[cfg_attr(
    not(any(feature = "docker", feature = "kubernetes")),
    allow(unused_variables)
)]
pub(crate) async fn run(spec: &ContainerSpec, ctx: &TaskContext) -> Result<String, TaskError> {
    spec.check()
        .map_err(|e| TaskError::Failed(format!("invalid container: {e}")))?;
    match &spec.pod {
        Some(options) => {
            pod::check(spec, options)
                .map_err(|e| TaskError::Failed(format!("invalid pod: {e}")))?;
            #[cfg(feature = "kubernetes")]
            return kubernetes::run(spec, options, ctx).await;
            #[cfg(not(feature = "kubernetes"))]
            return Err(feature_needed("kubernetes", "pods"));
        }
        None => {
            #[cfg(feature = "docker")]
            return docker::run(spec, ctx).await;
            #[cfg(not(feature = "docker"))]
            return Err(feature_needed("docker", "containers"));
        }
    }
}

/// A container task whose runner was not compiled in fails saying how to turn it on.
#[cfg(not(all(feature = "docker", feature = "kubernetes")))]
fn feature_needed(feature: &str, what: &str) -> TaskError {
    TaskError::Failed(format!(
        "tasks that run {what} need flow-runtime's `{feature}` feature; enable it \
         (`flow-runtime = {{ version = \"0.1\", features = [\"{feature}\"] }}`)"
    ))
}

#[cfg(feature = "docker")]
mod docker;
#[cfg(feature = "kubernetes")]
mod kubernetes;
#[cfg(any(feature = "docker", feature = "kubernetes"))]
mod running;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_specs_are_refused_before_anything_runs() {
        let ok = ContainerSpec::new("busybox");
        assert!(ok.check().is_ok());
        let refused = |spec: ContainerSpec| spec.check().unwrap_err();
        assert!(refused(ContainerSpec::new(" ")).contains("image is empty"));
        assert!(refused(ok.clone().cpus(0.0)).contains("`cpus` must be a positive"));
        assert!(refused(ok.clone().cpus(f64::NAN)).contains("`cpus` must be a positive"));
        assert!(refused(ok.clone().memory_bytes(0)).contains("more than 0"));
        assert!(refused(ok.clone().env("A=B", "c")).contains("`A=B` is not valid"));
        assert!(refused(ok.clone().mount("/data", "data")).contains("absolute path in the"));
        assert!(refused(ok.clone().mount("data", "/data")).contains("absolute path on the host"));
        assert!(refused(ok.output_file("out.json")).contains("must be an absolute path"));
    }
}

//! Running a [`ContainerSpec`] through the Docker Engine API (bollard).

use std::collections::HashMap;

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, DeviceRequest, HostConfig};
use bollard::query_parameters::{
    CreateImageOptions, DownloadFromContainerOptions, ListContainersOptions, LogsOptions,
    RemoveContainerOptions, WaitContainerOptions,
};
use futures_util::StreamExt as _;
use tokio::sync::OnceCell;

use super::running::{Output, environment, instance_labels, remove_in_thread};
use super::{ContainerSpec, Network, PullPolicy};
use crate::task::{TaskContext, TaskError};

/// One client per process, its API version agreed with the daemon once.
static CLIENT: OnceCell<Docker> = OnceCell::const_new();

async fn client() -> Result<&'static Docker, TaskError> {
    CLIENT
        .get_or_try_init(|| async {
            let docker = Docker::connect_with_defaults().map_err(unreachable_daemon)?;
            docker.negotiate_version().await.map_err(unreachable_daemon)
        })
        .await
}

fn unreachable_daemon(e: DockerError) -> TaskError {
    TaskError::Failed(format!(
        "cannot reach the Docker daemon: {e}; start it, or set DOCKER_HOST to its socket \
         (`unix:///run/docker.sock`) or address"
    ))
}

fn failed(what: &str, e: DockerError) -> TaskError {
    TaskError::Failed(format!("{what}: {e}"))
}

/// Runs the container for a try: returns its output (the last stdout line, or the
/// output file).
pub(super) async fn run(spec: &ContainerSpec, ctx: &TaskContext) -> Result<String, TaskError> {
    let docker = client().await?;
    let labels = instance_labels(ctx);
    remove_leftovers(docker, &labels).await?;
    ensure_image(docker, spec).await?;
    let id = docker
        .create_container(
            None::<bollard::query_parameters::CreateContainerOptions>,
            body(spec, ctx, &labels),
        )
        .await
        .map_err(|e| failed(&format!("cannot create a container of `{}`", spec.image), e))?
        .id;
    // From here on the container is removed however the try ends, cancelled included.
    let guard = Removal {
        docker: docker.clone(),
        id: Some(id.clone()),
    };
    docker
        .start_container(
            &id,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .map_err(|e| failed("cannot start the container", e))?;
    let output = stream_logs(docker, &id).await;
    let code = exit_code(docker, &id).await?;
    let file = match (&spec.output_file, code) {
        (Some(path), 0) => Some(read_file(docker, &id, path).await?),
        _ => None,
    };
    guard.remove().await;
    output.outcome(code, file)
}

/// Removes the containers of this instance that earlier tries left (their process was
/// killed before it could).
async fn remove_leftovers(
    docker: &Docker,
    labels: &[(&'static str, String)],
) -> Result<(), TaskError> {
    let filters = HashMap::from([(
        "label".to_string(),
        labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
    )]);
    let leftovers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .map_err(|e| failed("cannot list containers", e))?;
    for container in leftovers {
        if let Some(id) = container.id {
            tracing::warn!("removing container {id}, left running by an earlier try");
            force_remove(docker, &id)
                .await
                .map_err(|e| failed("cannot remove a container of an earlier try", e))?;
        }
    }
    Ok(())
}

async fn force_remove(docker: &Docker, id: &str) -> Result<(), DockerError> {
    match docker
        .remove_container(
            id,
            Some(RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            }),
        )
        .await
    {
        // Already gone.
        Err(DockerError::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        other => other,
    }
}

async fn ensure_image(docker: &Docker, spec: &ContainerSpec) -> Result<(), TaskError> {
    let present = docker.inspect_image(&spec.image).await.is_ok();
    let pull = match spec.pull {
        PullPolicy::Always => true,
        PullPolicy::IfNotPresent => !present,
        PullPolicy::Never if present => false,
        PullPolicy::Never => {
            return Err(TaskError::Failed(format!(
                "the image `{}` is not on the Docker host and the pull policy is `Never`; \
                 load it there (`docker pull`, `docker load`) or allow pulling",
                spec.image
            )));
        }
    };
    if pull {
        let mut progress = docker.create_image(
            Some(CreateImageOptions {
                from_image: Some(spec.image.clone()),
                ..Default::default()
            }),
            None,
            None,
        );
        while let Some(step) = progress.next().await {
            step.map_err(|e| failed(&format!("cannot pull `{}`", spec.image), e))?;
        }
    }
    Ok(())
}

fn body(
    spec: &ContainerSpec,
    ctx: &TaskContext,
    labels: &[(&'static str, String)],
) -> ContainerCreateBody {
    let env: Vec<String> = environment(spec, ctx)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut labels: HashMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect();
    labels.insert("flow.try_number".into(), ctx.try_number().to_string());
    let network_mode = match &spec.network {
        Network::Default => None,
        Network::None => Some("none".to_string()),
        Network::Host => Some("host".to_string()),
        Network::Named(name) => Some(name.clone()),
    };
    let host_config = HostConfig {
        binds: Some(
            spec.mounts
                .iter()
                .map(|m| {
                    format!(
                        "{}:{}{}",
                        m.source.display(),
                        m.target,
                        if m.read_only { ":ro" } else { "" }
                    )
                })
                .collect(),
        ),
        network_mode,
        // Whole nano-CPUs: 1.5 CPUs is 1,500,000,000.
        nano_cpus: spec.cpus.map(|cpus| (cpus * 1e9) as i64),
        memory: spec
            .memory_bytes
            .map(|bytes| i64::try_from(bytes).unwrap_or(i64::MAX)),
        device_requests: spec.gpus.map(|count| {
            vec![DeviceRequest {
                driver: Some("nvidia".into()),
                count: Some(i64::from(count)),
                capabilities: Some(vec![vec!["gpu".into()]]),
                ..Default::default()
            }]
        }),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        entrypoint: (!spec.command.is_empty()).then(|| spec.command.clone()),
        cmd: (!spec.args.is_empty()).then(|| spec.args.clone()),
        env: Some(env),
        working_dir: spec.working_dir.clone(),
        user: spec.user.clone(),
        labels: Some(labels),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(false),
        host_config: Some(host_config),
        ..Default::default()
    }
}

/// Follows the container's output into the try's log until it ends.
async fn stream_logs(docker: &Docker, id: &str) -> Output {
    let mut logs = docker.logs(
        id,
        Some(LogsOptions {
            follow: true,
            stdout: true,
            stderr: true,
            ..Default::default()
        }),
    );
    let (mut out, mut err) = (Lines::default(), Lines::default());
    let mut output = Output::default();
    while let Some(Ok(chunk)) = logs.next().await {
        match chunk {
            bollard::container::LogOutput::StdOut { message } => {
                out.push(&message)
                    .into_iter()
                    .for_each(|l| output.stdout(l));
            }
            bollard::container::LogOutput::StdErr { message } => {
                err.push(&message)
                    .into_iter()
                    .for_each(|l| output.stderr(l));
            }
            _ => {}
        }
    }
    if let Some(line) = out.rest() {
        output.stdout(line);
    }
    if let Some(line) = err.rest() {
        output.stderr(line);
    }
    output
}

/// Splits a stream of chunks into lines (a chunk may end mid-line).
#[derive(Default)]
struct Lines(Vec<u8>);

impl Lines {
    fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        self.0.extend_from_slice(chunk);
        let mut lines = Vec::new();
        while let Some(at) = self.0.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.0.drain(..=at).collect();
            lines.push(
                String::from_utf8_lossy(&line[..at])
                    .trim_end_matches('\r')
                    .to_string(),
            );
        }
        lines
    }

    fn rest(&mut self) -> Option<String> {
        (!self.0.is_empty())
            .then(|| String::from_utf8_lossy(&std::mem::take(&mut self.0)).into_owned())
    }
}

async fn exit_code(docker: &Docker, id: &str) -> Result<i64, TaskError> {
    let mut wait = docker.wait_container(id, None::<WaitContainerOptions>);
    match wait.next().await {
        Some(Ok(response)) => Ok(response.status_code),
        // bollard reports a non-zero exit as an error carrying the code.
        Some(Err(DockerError::DockerContainerWaitError { code, .. })) => Ok(code),
        Some(Err(e)) => Err(failed("cannot wait for the container", e)),
        None => Err(TaskError::Failed(
            "the Docker daemon did not say how the container ended".into(),
        )),
    }
}

/// The content of `path` in the stopped container (Docker sends it as a tar archive).
async fn read_file(docker: &Docker, id: &str, path: &str) -> Result<String, TaskError> {
    let mut archive = Vec::new();
    let mut stream = docker.download_from_container(
        id,
        Some(DownloadFromContainerOptions {
            path: path.to_string(),
        }),
    );
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            failed(
                &format!("cannot read the output file `{path}` from the container"),
                e,
            )
        })?;
        archive.extend_from_slice(&chunk);
    }
    let mut entries = tar::Archive::new(archive.as_slice());
    let entries = entries
        .entries()
        .map_err(|e| TaskError::Failed(format!("the output file `{path}` came unreadable: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| {
            TaskError::Failed(format!("the output file `{path}` came unreadable: {e}"))
        })?;
        if entry.header().entry_type().is_file() {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).map_err(|e| {
                TaskError::Failed(format!("the output file `{path}` is not UTF-8 text: {e}"))
            })?;
            return Ok(text.trim_end_matches(['\n', '\r']).to_string());
        }
    }
    Err(TaskError::Failed(format!(
        "the output file `{path}` is not a file in the container"
    )))
}

/// Removes the container when dropped before [`Removal::remove`] (a cancelled try).
struct Removal {
    docker: Docker,
    id: Option<String>,
}

/// How long removing a cancelled try's container may take.
const CANCEL_REMOVAL: std::time::Duration = std::time::Duration::from_secs(30);

impl Removal {
    async fn remove(mut self) {
        if let Some(id) = self.id.take()
            && let Err(e) = force_remove(&self.docker, &id).await
        {
            tracing::warn!("could not remove container {id}: {e}");
        }
    }
}

impl Drop for Removal {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else {
            return;
        };
        // The try is cancelled (its execution timeout, a stop); a client of its own, as
        // the try's may be gone with its runtime.
        remove_in_thread(move || async move {
            let docker = Docker::connect_with_defaults()
                .map_err(|e| e.to_string())?
                .with_timeout(CANCEL_REMOVAL)
                .negotiate_version()
                .await
                .map_err(|e| e.to_string())?;
            force_remove(&docker, &id)
                .await
                .map_err(|e| format!("could not remove container {id}: {e}"))
        });
    }
}

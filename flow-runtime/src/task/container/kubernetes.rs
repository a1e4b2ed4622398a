//! Running a [`ContainerSpec`] as a Kubernetes pod (kube-rs); what a pod makes of the spec
//! is described in [`super::pod`].

use std::collections::BTreeMap;
use std::pin::pin;
use std::time::{Duration, Instant};

use futures_util::AsyncBufReadExt as _;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, EnvVar, HostPathVolumeSource, LocalObjectReference, Pod, PodSpec,
    ResourceRequirements, SecurityContext, Toleration as PodToleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use kube::{Client, Config, Error as KubeError};

use super::pod::{PodOptions, numeric_user};
use super::running::{Output, environment, instance_labels, remove_in_thread};
use super::{ContainerSpec, Network, PullPolicy};
use crate::ids::StableHash;
use crate::objects::reason;
use crate::task::{TaskContext, TaskError};

/// The name of the pod's one container (Airflow's too).
const CONTAINER: &str = "base";

/// How often the pod's state is read while it starts and ends.
const POLL: Duration = Duration::from_millis(500);

/// Waiting reasons that no wait will mend: the try fails at once.
const HOPELESS: &[&str] = &[
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// Runs the pod for a try: returns its output (the last line it printed).
pub(super) async fn run(
    spec: &ContainerSpec,
    options: &PodOptions,
    ctx: &TaskContext,
) -> Result<String, TaskError> {
    // A client per try: kube's client belongs to the runtime that made it, and a try
    // costs far more than reading the configuration.
    let config = Config::infer().await.map_err(|e| {
        TaskError::Failed(format!(
            "cannot reach a Kubernetes cluster: {}; set KUBECONFIG to a kubeconfig file, \
             or run flow in a pod with a service account",
            reason(&e)
        ))
    })?;
    let namespace = options
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let place = format!("in namespace `{namespace}` of {}", config.cluster_url);
    let client = Client::try_from(config)
        .map_err(|e| failed(&format!("cannot make a client for the cluster {place}"), e))?;
    let pods: Api<Pod> = Api::namespaced(client, &namespace);
    delete_leftovers(&pods, ctx)
        .await
        .map_err(|e| failed(&format!("cannot list pods {place}"), e))?;
    let object = pod_object(spec, options, ctx, &namespace);
    let name = pod_name(ctx);
    pods.create(&PostParams::default(), &object)
        .await
        .map_err(|e| failed(&format!("cannot create the pod `{name}` {place}"), e))?;
    // From here on the pod is deleted however the try ends, cancelled included.
    let guard = Deletion {
        pods: pods.clone(),
        name: Some(name.clone()),
    };
    wait_started(&pods, &name, options.startup_timeout).await?;
    let output = stream_logs(&pods, &name).await;
    let code = exit_code(&pods, &name).await?;
    guard.delete().await;
    output.outcome(code, None)
}

fn failed(what: &str, e: KubeError) -> TaskError {
    TaskError::Failed(format!("{what}: {}", reason(&e)))
}

/// The pod's name: readable (DAG and task), unique per try (a hash of the whole key), and a
/// valid DNS label of at most 63 characters.
pub(super) fn pod_name(ctx: &TaskContext) -> String {
    let map = ctx.map_index().map(|i| format!("-{i}")).unwrap_or_default();
    let hash = StableHash::default()
        .text(ctx.dag_id().as_str())
        .text(ctx.run_id().as_str())
        .text(ctx.task_id().as_str())
        .text(&map)
        .text(&ctx.try_number().to_string())
        .finish();
    let suffix = format!("{map}-{}-{:08x}", ctx.try_number(), hash as u32);
    let mut base = String::from("flow-");
    for c in format!("{}-{}", ctx.dag_id(), ctx.task_id()).chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if !(c == '-' && base.ends_with('-')) {
            base.push(c);
        }
    }
    base.truncate(63 - suffix.len());
    format!("{}{suffix}", base.trim_end_matches('-'))
}

/// `value` as a label value (at most 63 of letters, digits, `-`, `_` and `.`, starting and
/// ending with a letter or digit): as it is when it is one, else cleaned and shortened,
/// with a hash of the original so different values stay apart.
pub(super) fn label_value(value: &str) -> String {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let valid = value.len() <= 63
        && value.chars().all(allowed)
        && value
            .chars()
            .next()
            .is_none_or(|c| c.is_ascii_alphanumeric())
        && value
            .chars()
            .last()
            .is_none_or(|c| c.is_ascii_alphanumeric());
    if valid {
        return value.to_string();
    }
    let cleaned: String = value
        .chars()
        .map(|c| if allowed(c) { c } else { '_' })
        .take(54)
        .collect();
    let hash = StableHash::default().text(value).finish() as u32;
    let cleaned = cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if cleaned.is_empty() {
        format!("h{hash:08x}")
    } else {
        format!("{cleaned}-{hash:08x}")
    }
}

/// The pod that runs `spec` for this try.
pub(super) fn pod_object(
    spec: &ContainerSpec,
    options: &PodOptions,
    ctx: &TaskContext,
    namespace: &str,
) -> Pod {
    let mut labels: BTreeMap<String, String> = options.labels.clone();
    let mut annotations: BTreeMap<String, String> = options.annotations.clone();
    let try_label = ("flow.try_number", ctx.try_number().to_string());
    for (key, value) in instance_labels(ctx).into_iter().chain([try_label]) {
        labels.insert(key.into(), label_value(&value));
        annotations.insert(key.into(), value);
    }
    let mut limits = BTreeMap::new();
    if let Some(cpus) = spec.cpus {
        limits.insert(
            "cpu".to_string(),
            Quantity(format!("{}m", (cpus * 1000.0).ceil() as u64)),
        );
    }
    if let Some(bytes) = spec.memory_bytes {
        limits.insert("memory".to_string(), Quantity(bytes.to_string()));
    }
    if let Some(gpus) = spec.gpus {
        limits.insert("nvidia.com/gpu".to_string(), Quantity(gpus.to_string()));
    }
    let (volumes, mounts): (Vec<Volume>, Vec<VolumeMount>) = spec
        .mounts
        .iter()
        .enumerate()
        .map(|(i, mount)| {
            let volume = format!("mount-{i}");
            (
                Volume {
                    name: volume.clone(),
                    host_path: Some(HostPathVolumeSource {
                        path: mount.source.to_string_lossy().into_owned(),
                        type_: None,
                    }),
                    ..Default::default()
                },
                VolumeMount {
                    name: volume,
                    mount_path: mount.target.clone(),
                    read_only: mount.read_only.then_some(true),
                    ..Default::default()
                },
            )
        })
        .unzip();
    // `check` has refused a user that is not numeric.
    let security_context = spec
        .user
        .as_deref()
        .and_then(|user| numeric_user(user).ok())
        .map(|(uid, gid)| SecurityContext {
            run_as_user: Some(uid),
            run_as_group: gid,
            ..Default::default()
        });
    let container = Container {
        name: CONTAINER.into(),
        image: Some(spec.image.clone()),
        command: (!spec.command.is_empty()).then(|| spec.command.clone()),
        args: (!spec.args.is_empty()).then(|| spec.args.clone()),
        env: Some(
            environment(spec, ctx)
                .into_iter()
                .map(|(name, value)| EnvVar {
                    name,
                    value: Some(value),
                    value_from: None,
                })
                .collect(),
        ),
        working_dir: spec.working_dir.clone(),
        image_pull_policy: Some(
            match spec.pull {
                PullPolicy::IfNotPresent => "IfNotPresent",
                PullPolicy::Always => "Always",
                PullPolicy::Never => "Never",
            }
            .into(),
        ),
        resources: (!limits.is_empty()).then(|| ResourceRequirements {
            limits: Some(limits),
            ..Default::default()
        }),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        security_context,
        ..Default::default()
    };
    Pod {
        metadata: ObjectMeta {
            name: Some(pod_name(ctx)),
            namespace: Some(namespace.to_string()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![container],
            restart_policy: Some("Never".into()),
            service_account_name: options.service_account.clone(),
            node_selector: (!options.node_selector.is_empty())
                .then(|| options.node_selector.clone()),
            tolerations: (!options.tolerations.is_empty()).then(|| {
                options
                    .tolerations
                    .iter()
                    .map(|t| PodToleration {
                        key: Some(t.key.clone()),
                        operator: Some(if t.value.is_some() { "Equal" } else { "Exists" }.into()),
                        value: t.value.clone(),
                        effect: t.effect.map(|e| e.as_str().into()),
                        toleration_seconds: t.seconds,
                    })
                    .collect()
            }),
            image_pull_secrets: (!options.image_pull_secrets.is_empty()).then(|| {
                options
                    .image_pull_secrets
                    .iter()
                    .map(|name| LocalObjectReference { name: name.clone() })
                    .collect()
            }),
            host_network: (spec.network == Network::Host).then_some(true),
            volumes: (!volumes.is_empty()).then_some(volumes),
            ..Default::default()
        }),
        status: None,
    }
}

/// The label selector of one instance's pods (all its tries).
fn instance_selector(ctx: &TaskContext) -> String {
    instance_labels(ctx)
        .into_iter()
        .map(|(key, value)| format!("{key}={}", label_value(&value)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Deletes the pods of this instance that earlier tries left (their process was killed
/// before it could).
async fn delete_leftovers(pods: &Api<Pod>, ctx: &TaskContext) -> Result<(), KubeError> {
    let leftovers = pods
        .list(&ListParams::default().labels(&instance_selector(ctx)))
        .await?;
    for pod in leftovers {
        if let Some(name) = pod.metadata.name {
            tracing::warn!("deleting pod {name}, left running by an earlier try");
            delete(pods, &name, Some(1)).await?;
        }
    }
    Ok(())
}

/// Deletes a pod, within `grace_seconds` of stopping its container if given (one for a
/// cancelled try or a leftover: it is stopped, not left to finish; the default for a pod
/// that has ended).
async fn delete(pods: &Api<Pod>, name: &str, grace_seconds: Option<u32>) -> Result<(), KubeError> {
    let params = DeleteParams {
        grace_period_seconds: grace_seconds,
        ..Default::default()
    };
    match pods.delete(name, &params).await {
        // Already gone.
        Err(KubeError::Api(status)) if status.code == 404 => Ok(()),
        other => other.map(|_| ()),
    }
}

/// The state of the pod's container, and the pod's own reason if it failed without one.
fn container_state(pod: &Pod) -> (Option<ContainerState>, Option<String>) {
    let status = pod.status.as_ref();
    let state = status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|all| all.iter().find(|c| c.name == CONTAINER))
        .and_then(|c| c.state.clone());
    let failed = status
        .filter(|s| s.phase.as_deref() == Some("Failed"))
        .map(|s| {
            format!(
                "the pod failed: {}",
                joined(s.reason.as_deref(), s.message.as_deref())
            )
        });
    (state, failed)
}

/// A reason and its message, as Kubernetes gives them (either may be missing).
fn joined(reason: Option<&str>, message: Option<&str>) -> String {
    [reason, message]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(": ")
}

/// The pod as the cluster has it now.
async fn read_pod(pods: &Api<Pod>, name: &str) -> Result<Pod, TaskError> {
    pods.get(name)
        .await
        .map_err(|e| failed(&format!("cannot read the pod `{name}`"), e))
}

/// Why a pod is not running yet, as Kubernetes says it (its container waiting, or the pod
/// not scheduled).
fn pending_reason(pod: &Pod, state: Option<&ContainerState>) -> Option<String> {
    if let Some(waiting) = state.and_then(|s| s.waiting.as_ref()) {
        return Some(joined(
            waiting.reason.as_deref(),
            waiting.message.as_deref(),
        ));
    }
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        .map(|c| joined(c.reason.as_deref(), c.message.as_deref()))
}

/// Waits until the container runs or has ended; fails if it cannot start, or does not
/// within `timeout`.
async fn wait_started(pods: &Api<Pod>, name: &str, timeout: Duration) -> Result<(), TaskError> {
    let since = Instant::now();
    loop {
        let pod = read_pod(pods, name).await?;
        let (state, failed) = container_state(&pod);
        if state
            .as_ref()
            .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
        {
            return Ok(());
        }
        if let Some(failed) = failed {
            return Err(TaskError::Failed(failed));
        }
        let reason = pending_reason(&pod, state.as_ref());
        if let Some(reason) = reason
            .as_deref()
            .filter(|r| HOPELESS.iter().any(|h| r.starts_with(h)))
        {
            return Err(TaskError::Failed(format!(
                "the pod `{name}` cannot start: {reason}"
            )));
        }
        if since.elapsed() >= timeout {
            return Err(TaskError::Failed(format!(
                "the pod `{name}` did not start within {}s: {}",
                timeout.as_secs(),
                reason.as_deref().unwrap_or("still pending")
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Follows the container's output into the try's log until it ends.
async fn stream_logs(pods: &Api<Pod>, name: &str) -> Output {
    let mut output = Output::default();
    let params = LogParams {
        container: Some(CONTAINER.into()),
        follow: true,
        ..Default::default()
    };
    let logs = match pods.log_stream(name, &params).await {
        Ok(logs) => logs,
        Err(e) => {
            tracing::warn!("cannot follow the pod's log: {e}");
            return output;
        }
    };
    let mut logs = pin!(logs);
    let mut line = Vec::new();
    loop {
        line.clear();
        match logs.read_until(b'\n', &mut line).await {
            Ok(0) => break,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                output.stdout(text.trim_end_matches(['\n', '\r']).to_string());
            }
            Err(e) => {
                tracing::warn!("the pod's log broke off: {e}; waiting for the pod to end");
                break;
            }
        }
    }
    output
}

/// Waits for the container to end: its exit code.
async fn exit_code(pods: &Api<Pod>, name: &str) -> Result<i64, TaskError> {
    loop {
        let pod = read_pod(pods, name).await?;
        let (state, failed) = container_state(&pod);
        if let Some(ended) = state.and_then(|s| s.terminated) {
            return Ok(i64::from(ended.exit_code));
        }
        if let Some(failed) = failed {
            return Err(TaskError::Failed(failed));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Deletes the pod when dropped before [`Deletion::delete`] (a cancelled try).
struct Deletion {
    pods: Api<Pod>,
    name: Option<String>,
}

impl Deletion {
    async fn delete(mut self) {
        if let Some(name) = self.name.take()
            && let Err(e) = delete(&self.pods, &name, None).await
        {
            tracing::warn!("could not delete pod {name}: {}", reason(&e));
        }
    }
}

impl Drop for Deletion {
    fn drop(&mut self) {
        let Some(name) = self.name.take() else {
            return;
        };
        let namespace = self.pods.namespace().unwrap_or("default").to_string();
        // The try is cancelled (its execution timeout, a stop); a client of its own, as
        // the try's belongs to a runtime that may be gone.
        remove_in_thread(move || async move {
            let client = Client::try_default().await.map_err(|e| reason(&e))?;
            let pods: Api<Pod> = Api::namespaced(client, &namespace);
            delete(&pods, &name, Some(1))
                .await
                .map_err(|e| format!("could not delete pod {name}: {}", reason(&e)))
        });
    }
}

#[cfg(test)]
mod tests;

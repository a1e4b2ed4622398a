//! Running a [`ContainerSpec`] as a Kubernetes pod (Airflow's `KubernetesPodOperator`):
//! [`ContainerSpec::pod`] with [`PodOptions`], and the `kubernetes` feature.
//!
//! The pod has one container, `base`, made from the spec: image, command and args, the
//! environment (the `FLOW_*` context variables first), working directory, user (numeric,
//! as `securityContext`), pull policy, CPU, memory and GPU (`nvidia.com/gpu`) limits, and
//! mounts as `hostPath` volumes. [`Network::Host`] is the host's network; a pod cannot have
//! no network or a named one. Its restart policy is `Never`: retries are the task's.
//!
//! - Kubernetes merges stdout and stderr: both go to the try's log, and the output is the
//!   last line of the two. An output file cannot be read from a pod that has ended.
//! - A pod that does not start within [`PodOptions::startup_timeout`] (unschedulable, its
//!   image not pulled) fails the try with the reason Kubernetes gives; an image that cannot
//!   be (`InvalidImageName`, `ErrImageNeverPull`) fails it at once.
//! - The pod is deleted at the end, and when the try is cancelled (its
//!   `execution_timeout`, a stop). Its labels name its DAG, run, task, map index and try
//!   (values that are not valid label values are shortened or cleaned, with a hash of the
//!   original to keep them apart; the exact values are annotations): a try first deletes
//!   the pods an earlier try of the same instance left behind.
//!
//! The cluster is the one `KUBECONFIG` names, else `~/.kube/config`, else the service
//! account of the pod flow itself runs in; the namespace is [`PodOptions::namespace`], else
//! the configuration's.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ContainerSpec, Network};

/// Where and how a container runs as a pod: namespace, service account, node selector,
/// tolerations, extra labels and annotations, pull secrets, and how long it may take to
/// start.
///
/// ```
/// use flow_runtime::task::container::{ContainerSpec, PodOptions, TaintEffect, Toleration};
/// let spec = ContainerSpec::new("registry.example.com/train:2.1")
///     .gpus(1)
///     .pod(
///         PodOptions::new()
///             .namespace("ml")
///             .service_account("trainer")
///             .node_selector("gpu", "a100")
///             .toleration(Toleration::exists("nvidia.com/gpu").effect(TaintEffect::NoSchedule)),
///     );
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PodOptions {
    pub(super) namespace: Option<String>,
    pub(super) service_account: Option<String>,
    pub(super) node_selector: BTreeMap<String, String>,
    pub(super) tolerations: Vec<Toleration>,
    pub(super) labels: BTreeMap<String, String>,
    pub(super) annotations: BTreeMap<String, String>,
    pub(super) image_pull_secrets: Vec<String>,
    pub(super) startup_timeout: Duration,
}

impl Default for PodOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl PodOptions {
    /// A pod in the configuration's namespace, with its default service account, that may
    /// take 120 s to start (as Airflow's `startup_timeout_seconds`).
    pub fn new() -> Self {
        Self {
            namespace: None,
            service_account: None,
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            image_pull_secrets: Vec::new(),
            startup_timeout: Duration::from_secs(120),
        }
    }

    /// The namespace the pod is created in.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// The service account the pod runs as.
    pub fn service_account(mut self, name: impl Into<String>) -> Self {
        self.service_account = Some(name.into());
        self
    }

    /// Runs only on nodes with this label.
    pub fn node_selector(mut self, label: impl Into<String>, value: impl Into<String>) -> Self {
        self.node_selector.insert(label.into(), value.into());
        self
    }

    /// Tolerates a taint, so the pod may run on nodes that carry it.
    pub fn toleration(mut self, toleration: Toleration) -> Self {
        self.tolerations.push(toleration);
        self
    }

    /// Adds a label to the pod (flow's own `flow.*` labels cannot be replaced).
    pub fn label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(name.into(), value.into());
        self
    }

    /// Adds an annotation to the pod.
    pub fn annotation(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.annotations.insert(name.into(), value.into());
        self
    }

    /// Pulls the image with the credentials of this secret (in the pod's namespace).
    pub fn image_pull_secret(mut self, secret: impl Into<String>) -> Self {
        self.image_pull_secrets.push(secret.into());
        self
    }

    /// How long the pod may take from its creation to its container starting (scheduling
    /// and pulling included) before the try fails.
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }
}

/// A taint's effect, for [`Toleration::effect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaintEffect {
    /// New pods are not scheduled on the node.
    NoSchedule,
    /// The scheduler tries not to place new pods on the node.
    PreferNoSchedule,
    /// Running pods are evicted from the node too.
    NoExecute,
}

impl TaintEffect {
    /// The name Kubernetes gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoSchedule => "NoSchedule",
            Self::PreferNoSchedule => "PreferNoSchedule",
            Self::NoExecute => "NoExecute",
        }
    }
}

/// A taint the pod tolerates: a key with a given value, or a key whatever its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Toleration {
    pub(super) key: String,
    /// `None` tolerates any value (the `Exists` operator).
    pub(super) value: Option<String>,
    pub(super) effect: Option<TaintEffect>,
    pub(super) seconds: Option<i64>,
}

impl Toleration {
    /// Tolerates the taint `key=value` (the `Equal` operator).
    pub fn equal(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: Some(value.into()),
            effect: None,
            seconds: None,
        }
    }

    /// Tolerates the taint `key` whatever its value (the `Exists` operator).
    pub fn exists(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: None,
            effect: None,
            seconds: None,
        }
    }

    /// Only taints with this effect (default: all of them).
    pub fn effect(mut self, effect: TaintEffect) -> Self {
        self.effect = Some(effect);
        self
    }

    /// For a `NoExecute` taint: the pod stays bound this long after the taint appears.
    pub fn for_seconds(mut self, seconds: i64) -> Self {
        self.seconds = Some(seconds);
        self
    }
}

/// A user as Kubernetes takes it: a numeric user id, and maybe a group id.
pub(super) fn numeric_user(user: &str) -> Result<(i64, Option<i64>), String> {
    let number = |part: &str| part.parse::<i64>().ok().filter(|n| *n >= 0);
    let parsed = match user.split_once(':') {
        Some((uid, gid)) => number(uid).zip(number(gid)).map(|(u, g)| (u, Some(g))),
        None => number(user).map(|u| (u, None)),
    };
    parsed.ok_or_else(|| {
        format!("a pod's user must be numeric, `uid` or `uid:gid` (like `1000:1000`), not `{user}`")
    })
}

/// Whether `name` is a DNS-1123 label, as namespaces and other names must be.
fn dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// What is wrong with running `spec` as a pod, if anything: checked before anything is
/// created.
pub(super) fn check(spec: &ContainerSpec, options: &PodOptions) -> Result<(), String> {
    match &spec.network {
        Network::Default | Network::Host => {}
        Network::None => {
            return Err(
                "a pod always has a network; drop `Network::None`, or restrict \
                        the pod's traffic with a NetworkPolicy"
                    .into(),
            );
        }
        Network::Named(name) => {
            return Err(format!(
                "a pod cannot join the network `{name}`; use the default network or \
                 `Network::Host`"
            ));
        }
    }
    if let Some(path) = &spec.output_file {
        return Err(format!(
            "the output file `{path}` cannot be read from a pod once it has ended; print \
             the output as the container's last line instead"
        ));
    }
    if let Some(user) = &spec.user {
        numeric_user(user)?;
    }
    for (what, name) in [
        ("namespace", &options.namespace),
        ("service account", &options.service_account),
    ] {
        if let Some(name) = name
            && !dns_label(name)
        {
            return Err(format!(
                "the {what} `{name}` is not a valid name: lowercase letters, digits and \
                 `-`, at most 63"
            ));
        }
    }
    if let Some(secret) = options.image_pull_secrets.iter().find(|s| s.is_empty()) {
        return Err(format!("an image pull secret's name is empty: `{secret}`"));
    }
    for (label, _) in options.node_selector.iter().chain(&options.labels) {
        if label.is_empty() {
            return Err("a label name is empty".into());
        }
    }
    if let Some(label) = options.labels.keys().find(|k| k.starts_with("flow.")) {
        return Err(format!(
            "the label `{label}` is flow's own (the `flow.` prefix); name it otherwise"
        ));
    }
    if let Some(toleration) = options.tolerations.iter().find(|t| t.key.is_empty()) {
        return Err(format!("a toleration has no key: {toleration:?}"));
    }
    if options.startup_timeout.is_zero() {
        return Err("the startup timeout must be more than 0".into());
    }
    for mount in &spec.mounts {
        if mount.source.to_str().is_none() {
            return Err(format!(
                "the mount source `{}` is not UTF-8, which Kubernetes needs",
                mount.source.display()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_pod_cannot_run_is_refused_before_anything_is_created() {
        let spec = ContainerSpec::new("busybox");
        let ok = PodOptions::new();
        assert_eq!(check(&spec, &ok), Ok(()));
        let refused =
            |spec: &ContainerSpec, options: &PodOptions| check(spec, options).unwrap_err();
        assert!(refused(&spec.clone().network(Network::None), &ok).contains("NetworkPolicy"));
        assert!(
            refused(&spec.clone().network(Network::Named("ml".into())), &ok)
                .contains("cannot join the network `ml`")
        );
        assert!(refused(&spec.clone().output_file("/out"), &ok).contains("last line"));
        assert!(refused(&spec.clone().user("nobody"), &ok).contains("must be numeric"));
        assert!(refused(&spec.clone().user("1000:staff"), &ok).contains("must be numeric"));
        assert!(refused(&spec, &ok.clone().namespace("ML")).contains("namespace `ML`"));
        assert!(
            refused(&spec, &ok.clone().service_account("a_b")).contains("service account `a_b`")
        );
        assert!(refused(&spec, &ok.clone().label("flow.dag_id", "x")).contains("flow's own"));
        assert!(refused(&spec, &ok.clone().toleration(Toleration::exists(""))).contains("no key"));
        assert!(refused(&spec, &ok.clone().image_pull_secret("")).contains("empty"));
        assert!(
            refused(&spec, &ok.clone().startup_timeout(Duration::ZERO)).contains("more than 0")
        );
        assert!(check(&spec.clone().network(Network::Host).user("1000:100"), &ok).is_ok());
    }

    #[test]
    fn users_are_numeric_ids() {
        assert_eq!(numeric_user("1000"), Ok((1000, None)));
        assert_eq!(numeric_user("1000:100"), Ok((1000, Some(100))));
        assert!(numeric_user("-1").is_err());
        assert!(numeric_user("").is_err());
        assert!(numeric_user("1000:").is_err());
    }
}

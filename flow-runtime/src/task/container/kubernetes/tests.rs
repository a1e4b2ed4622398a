//! The pod objects, exactly as they are sent to the cluster.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use serde_json::json;

use super::*;
use crate::ids::{DagId, MapIndex, RunId, RunType, TaskId};
use crate::task::container::{TaintEffect, Toleration};
use crate::task::context::RunScope;
use crate::time::timetable::DataInterval;
use crate::xcom::ports::Nothing;

/// The context of try `try_number` of `fit` in a scheduled run of `train_model`.
fn context(map_index: MapIndex, try_number: u32) -> TaskContext {
    context_of("train_model", map_index, try_number)
}

fn context_of(dag_id: &str, map_index: MapIndex, try_number: u32) -> TaskContext {
    let date = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
    let scope = RunScope {
        dag_id: DagId::new(dag_id),
        run_id: RunId::new("scheduled__2026-12-01T00:00:00+00:00"),
        run_type: RunType::Scheduled,
        logical_date: date,
        data_interval: DataInterval::exact(date),
        next_data_interval: None,
        params: Arc::default(),
        xcoms: Arc::new(Nothing),
        runs: Arc::new(Nothing),
        triggers: Arc::new(Nothing),
        objects: None,
    };
    TaskContext::new(Arc::new(scope), TaskId::new("fit"), map_index, try_number)
}

#[test]
fn a_full_spec_becomes_this_pod() {
    let spec = ContainerSpec::new("registry.example.com/train:2.1")
        .command(["python", "-m", "train"])
        .args(["--epochs", "10"])
        .env("ROWS", "1797")
        .mount("/data/cache", "/cache")
        .mount_read_only("/data/sets", "/sets")
        .working_dir("/work")
        .user("1000:100")
        .cpus(1.5)
        .memory_bytes(4 << 30)
        .gpus(2)
        .network(Network::Host)
        .pull(PullPolicy::Always);
    let options = PodOptions::new()
        .namespace("ml")
        .service_account("trainer")
        .node_selector("gpu", "a100")
        .toleration(Toleration::exists("nvidia.com/gpu").effect(TaintEffect::NoSchedule))
        .toleration(
            Toleration::equal("spot", "true")
                .effect(TaintEffect::NoExecute)
                .for_seconds(60),
        )
        .label("team", "vision")
        .annotation("owner", "ana@example.com")
        .image_pull_secret("registry-login")
        .startup_timeout(Duration::from_secs(600));
    let pod = pod_object(&spec, &options, &context(MapIndex::mapped(3), 2), "ml");
    let run_label = label_value("scheduled__2026-12-01T00:00:00+00:00");
    assert_eq!(
        serde_json::to_value(&pod).unwrap(),
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name(&context(MapIndex::mapped(3), 2)),
                "namespace": "ml",
                "labels": {
                    "team": "vision",
                    "flow.managed": "true",
                    "flow.dag_id": "train_model",
                    "flow.run_id": run_label,
                    "flow.task_id": "fit",
                    "flow.map_index": "3",
                    "flow.try_number": "2",
                },
                "annotations": {
                    "owner": "ana@example.com",
                    "flow.managed": "true",
                    "flow.dag_id": "train_model",
                    "flow.run_id": "scheduled__2026-12-01T00:00:00+00:00",
                    "flow.task_id": "fit",
                    "flow.map_index": "3",
                    "flow.try_number": "2",
                },
            },
            "spec": {
                "containers": [{
                    "name": "base",
                    "image": "registry.example.com/train:2.1",
                    "command": ["python", "-m", "train"],
                    "args": ["--epochs", "10"],
                    "env": [
                        {"name": "FLOW_DAG_ID", "value": "train_model"},
                        {"name": "FLOW_TASK_ID", "value": "fit"},
                        {"name": "FLOW_RUN_ID", "value": "scheduled__2026-12-01T00:00:00+00:00"},
                        {"name": "FLOW_LOGICAL_DATE", "value": "2026-12-01T00:00:00+00:00"},
                        {"name": "FLOW_DS", "value": "2026-12-01"},
                        {"name": "FLOW_TRY_NUMBER", "value": "2"},
                        {"name": "FLOW_MAP_INDEX", "value": "3"},
                        {"name": "ROWS", "value": "1797"},
                    ],
                    "workingDir": "/work",
                    "imagePullPolicy": "Always",
                    "resources": {
                        "limits": {"cpu": "1500m", "memory": "4294967296", "nvidia.com/gpu": "2"},
                    },
                    "volumeMounts": [
                        {"name": "mount-0", "mountPath": "/cache"},
                        {"name": "mount-1", "mountPath": "/sets", "readOnly": true},
                    ],
                    "securityContext": {"runAsUser": 1000, "runAsGroup": 100},
                }],
                "restartPolicy": "Never",
                "serviceAccountName": "trainer",
                "nodeSelector": {"gpu": "a100"},
                "tolerations": [
                    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                    {
                        "key": "spot",
                        "operator": "Equal",
                        "value": "true",
                        "effect": "NoExecute",
                        "tolerationSeconds": 60,
                    },
                ],
                "imagePullSecrets": [{"name": "registry-login"}],
                "hostNetwork": true,
                "volumes": [
                    {"name": "mount-0", "hostPath": {"path": "/data/cache"}},
                    {"name": "mount-1", "hostPath": {"path": "/data/sets"}},
                ],
            },
        })
    );
}

#[test]
fn a_bare_spec_becomes_a_bare_pod() {
    let pod = pod_object(
        &ContainerSpec::new("busybox:1.36"),
        &PodOptions::new(),
        &context(MapIndex::UNMAPPED, 1),
        "default",
    );
    let value = serde_json::to_value(&pod).unwrap();
    // `-1` is not a label value (it starts with `-`).
    assert_eq!(
        value["metadata"]["labels"]["flow.map_index"],
        label_value("-1")
    );
    assert_eq!(value["metadata"]["annotations"]["flow.map_index"], "-1");
    assert_eq!(
        value["spec"],
        json!({
            "containers": [{
                "name": "base",
                "image": "busybox:1.36",
                "env": [
                    {"name": "FLOW_DAG_ID", "value": "train_model"},
                    {"name": "FLOW_TASK_ID", "value": "fit"},
                    {"name": "FLOW_RUN_ID", "value": "scheduled__2026-12-01T00:00:00+00:00"},
                    {"name": "FLOW_LOGICAL_DATE", "value": "2026-12-01T00:00:00+00:00"},
                    {"name": "FLOW_DS", "value": "2026-12-01"},
                    {"name": "FLOW_TRY_NUMBER", "value": "1"},
                ],
                "imagePullPolicy": "IfNotPresent",
            }],
            "restartPolicy": "Never",
        })
    );
}

#[test]
fn pod_names_are_dns_labels_unique_per_try() {
    let first = pod_name(&context(MapIndex::mapped(3), 1));
    let second = pod_name(&context(MapIndex::mapped(3), 2));
    let unmapped = pod_name(&context(MapIndex::UNMAPPED, 1));
    assert!(first.starts_with("flow-train-model-fit-3-1-"), "{first}");
    assert!(
        unmapped.starts_with("flow-train-model-fit-1-"),
        "{unmapped}"
    );
    assert_ne!(first, second);
    for name in [&first, &second, &unmapped] {
        assert!(name.len() <= 63);
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{name}"
        );
    }
    // A long DAG id is shortened, the try and hash kept.
    let long = context_of(
        &"Very_Long_DAG_Name".repeat(8),
        MapIndex::mapped(4_000_000_000),
        12,
    );
    let name = pod_name(&long);
    assert_eq!(name.len(), 63, "{name}");
    assert!(name.contains("-4000000000-12-"), "{name}");
    assert!(!name.contains("--"), "{name}");
}

#[test]
fn label_values_are_kept_when_valid_else_cleaned_with_a_hash() {
    assert_eq!(label_value("train_model"), "train_model");
    assert!(label_value("-1").starts_with("1-"), "{}", label_value("-1"));
    let run = label_value("manual__2026-12-01T00:00:00+00:00");
    assert!(
        run.starts_with("manual__2026-12-01T00_00_00_00_00-"),
        "{run}"
    );
    assert_ne!(run, label_value("manual__2026-12-01T00:00:00+01:00"));
    let long = label_value(&"x".repeat(100));
    assert!(long.len() <= 63, "{long}");
    assert_eq!(label_value(""), "");
    assert!(label_value("+++").starts_with('h'));
    for value in [run, long, label_value("-1"), label_value("+++")] {
        assert!(value.len() <= 63);
        assert!(
            value.starts_with(|c: char| c.is_ascii_alphanumeric()),
            "{value}"
        );
        assert!(
            value.ends_with(|c: char| c.is_ascii_alphanumeric()),
            "{value}"
        );
    }
}

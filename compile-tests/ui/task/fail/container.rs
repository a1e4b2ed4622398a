use flow_runtime::prelude::*;
use flow_runtime::task::container::ContainerSpec;

#[task(container)]
fn wrong_type() -> String {
    "busybox".into()
}

#[task(container)]
fn nothing() {}

#[task(container)]
async fn later() -> ContainerSpec {
    ContainerSpec::new("busybox")
}

#[task(shell, container)]
fn both() -> ContainerSpec {
    ContainerSpec::new("busybox")
}

#[task(container, branch)]
fn steering() -> ContainerSpec {
    ContainerSpec::new("busybox")
}

#[task(container = true)]
fn valued() -> ContainerSpec {
    ContainerSpec::new("busybox")
}

#[task(docker)]
fn airflow_spelling() -> ContainerSpec {
    ContainerSpec::new("busybox")
}

fn main() {}

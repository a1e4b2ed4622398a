use flow_runtime::prelude::*;

#[task]
fn step() {}

#[dag(
    sheduled = "@daily",
    is_paused_upon_creation = true,
    default_args(owner = "me", queue = "gpu", retry = 2)
)]
fn typo() {
    step();
}

#[dag(dag_id = "airflow_habit", schedule_interval = "@daily")]
fn renamed() {
    step();
}

fn main() {}

use flow_runtime::prelude::*;

#[task]
fn step() {}

#[dag(
    sheduled = "@daily",
    max_active_tasks = 4,
    default_args(owner = "me", pool = "gpu", retry = 2)
)]
fn typo() {
    step();
}

#[dag(dag_id = "airflow_habit", schedule_interval = "@daily")]
fn renamed() {
    step();
}

fn main() {}

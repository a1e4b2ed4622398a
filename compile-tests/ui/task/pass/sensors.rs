//! Sensors: sync and async poke functions, with the context and upstream inputs, every
//! option, and their ready value flowing downstream.

use std::time::Duration;

use flow_runtime::prelude::*;

/// Ready once the file the upstream task names exists.
#[task(sensor, poke_interval = "30s", timeout = "1h", mode = "reschedule", soft_fail, exponential_backoff)]
fn landed(ctx: &TaskContext, path: String) -> Poke<String> {
    let _ = ctx.ds();
    if std::path::Path::new(&path).exists() {
        Poke::Ready(path)
    } else {
        Poke::NotYet
    }
}

#[task(sensor, mode = "poke", task_id = "ticket_ready")]
async fn ticket(id: u32) -> anyhow::Result<Poke<u32>> {
    anyhow::ensure!(id > 0, "no ticket 0");
    Ok(Poke::Ready(id * 2))
}

#[task(sensor)]
fn always() -> Result<flow_runtime::sensor::Poke<()>, std::io::Error> {
    Ok(Poke::Ready(()))
}

#[task]
fn path() -> String {
    std::env::temp_dir().display().to_string()
}

#[task]
fn use_both(path: String, ticket: u32) -> usize {
    path.len() + ticket as usize
}

#[dag]
fn waits() {
    use_both(landed(path()), ticket(21)) << always();
}

fn main() {
    use flow_runtime::sensor::{SensorMode, SensorOptions};
    let dag = waits().unwrap();
    assert_eq!(dag.tasks().len(), 5);
    // The macro's options equal these hand-written ones; defaults are Airflow's.
    let options = SensorOptions::default()
        .with_poke_interval(Duration::from_secs(30))
        .with_timeout(Duration::from_secs(3600))
        .with_mode(SensorMode::Reschedule)
        .with_soft_fail(true)
        .with_exponential_backoff(true);
    assert_eq!(options.mode.as_str(), "reschedule");
    assert_eq!(landed::spec().output().type_name(), "alloc::string::String");
    assert_eq!(ticket::spec().name().as_str(), "ticket_ready");
    assert_eq!(ticket::spec().output().type_name(), "u32");
    let run = dag.test().unwrap();
    assert_eq!(run.state, RunState::Success, "{run:?}");
    assert_eq!(run.output::<u32>("ticket_ready").unwrap(), 42);
}

//! A sensor: `wait_for_export` pokes for the file that `export` lands a moment later,
//! then `count_lines` (a shell task) counts its data lines.

use std::path::PathBuf;
use std::time::Duration;

use flow_runtime::DagError;
use flow_runtime::prelude::*;
use flow_runtime::sensor::{Poke, SensorOptions};
use flow_runtime::shell::ShellCommand;

/// Where `export` lands its file for a run.
fn export_path(ds: &str) -> PathBuf {
    crate::work_dir()
        .join("landing")
        .join(format!("export-{ds}.csv"))
}

/// Lands the day's export after a short delay (as an upstream system would).
#[task]
pub async fn export(ctx: &TaskContext) -> anyhow::Result<()> {
    let path = export_path(&ctx.ds());
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::create_dir_all(path.parent().unwrap_or(&crate::work_dir()))?;
    std::fs::write(&path, "id,amount\n1,10\n2,20\n")?;
    Ok(())
}

/// The DAG: the export and the sensor start together; the count waits for the sensor.
pub fn landing() -> Result<Dag, DagError> {
    let mut dag = DagBuilder::new("landing")
        .schedule("@daily")
        .start_date("2025-01-01");
    export::node(&mut dag);
    let options = SensorOptions {
        poke_interval: Duration::from_millis(100),
        timeout: Duration::from_secs(30),
        ..SensorOptions::default()
    };
    // Like `sensor::file_exists`, with the path of the run's own logical date.
    let landed = dag
        .add_task(TaskSpec::sensor("wait_for_export", options, |ctx, _| {
            let path = export_path(&ctx.ds());
            Ok(if path.exists() {
                Poke::Ready(path.display().to_string())
            } else {
                Poke::NotYet
            })
        }))
        .finish::<String>();
    dag.add_task(
        TaskSpec::from_shell("count_lines", |_ctx, inputs| {
            Ok(
                ShellCommand::bash(r#"tail -n +2 "$FILE" | wc -l | tr -d ' '"#)
                    .env("FILE", inputs.get::<String>(0)?),
            )
        })
        .param::<String>("file"),
    )
    .input(landed);
    dag.build()
}

flow_runtime::register_dag!("landing", landing);

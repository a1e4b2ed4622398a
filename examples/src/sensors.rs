//! A sensor: `wait_for_export` pokes for the file that `export` lands a moment later,
//! then `count_lines` (a shell task) counts its data lines. The sensor runs in
//! `reschedule` mode, so it holds no slot between pokes.

use std::path::PathBuf;
use std::time::Duration;

use flow_runtime::prelude::*;
use flow_runtime::task::shell::ShellCommand;

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

/// Waits for the export of the run's logical date (like `sensor::file_exists`, with the
/// run's own path); its output is the path.
#[task(sensor, poke_interval = "100ms", timeout = "30s", mode = "reschedule")]
pub fn wait_for_export(ctx: &TaskContext) -> Poke<String> {
    let path = export_path(&ctx.ds());
    if path.exists() {
        Poke::Ready(path.display().to_string())
    } else {
        Poke::NotYet
    }
}

/// Counts the data lines of the file (all but the header).
#[task(shell)]
pub fn count_lines(file: String) -> ShellCommand {
    ShellCommand::bash(r#"tail -n +2 "$FILE" | wc -l | tr -d ' '"#).env("FILE", file)
}

/// The export and the sensor start together; the count waits for the sensor.
#[dag(schedule = "@daily", start_date = "2025-01-01", tags = ["sensor"])]
pub fn landing() {
    export();
    count_lines(wait_for_export());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_waits_for_the_landed_file() {
        let run = landing().unwrap().test().unwrap();
        assert_eq!(run.state, RunState::Success, "{run:?}");
        assert_eq!(run.output::<String>("count_lines").unwrap(), "2");
        assert_eq!(run.task("wait_for_export").unwrap().tries, 1);
    }
}

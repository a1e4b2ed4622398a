//! Data-aware scheduling (Airflow's assets): `publish_sales` writes the day's sales file
//! and names it as an outlet; `sales_report` is scheduled on that asset, so the scheduler
//! starts it once the file was updated, rather than at a time.

use anyhow::Context as _;
use flow_runtime::prelude::*;

/// The day's sales, as the asset both DAGs name.
pub const DAILY_SALES: Asset = Asset::new("file://flow-examples/sales/daily.csv");

/// Where [`DAILY_SALES`] is kept.
pub fn sales_file() -> std::path::PathBuf {
    crate::work_dir().join("sales").join("daily.csv")
}

/// Writes the day's sales; its success updates [`DAILY_SALES`].
#[task(outlets = [DAILY_SALES])]
pub fn publish(ctx: &TaskContext) -> anyhow::Result<u32> {
    let path = sales_file();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let lines = ["1,ada,1250", "2,grace,990", "3,linus,310"];
    std::fs::write(&path, format!("{}\n", lines.join("\n")))
        .with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(day = %ctx.ds(), "published {} sales", lines.len());
    Ok(u32::try_from(lines.len())?)
}

/// Publishes the sales every day.
#[dag(schedule = "@daily", start_date = "2025-01-01", catchup = false, tags = ["assets"])]
pub fn publish_sales() {
    publish();
}

/// Totals the published sales, in cents.
#[task]
pub fn total() -> anyhow::Result<u64> {
    let path = sales_file();
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {}; run publish_sales first", path.display()))?;
    text.lines()
        .map(|line| {
            let cents = line.rsplit(',').next().unwrap_or_default();
            cents
                .parse::<u64>()
                .with_context(|| format!("bad sales line `{line}`"))
        })
        .sum()
}

/// Reports on the sales whenever they are published.
#[dag(schedule = [DAILY_SALES], tags = ["assets"])]
pub fn sales_report() {
    total();
}

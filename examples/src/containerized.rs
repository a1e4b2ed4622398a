//! A step in a container: a task writes the digits data set's labels as CSV, a container
//! counts its rows and its distinct labels through a read-only mount (with no network),
//! and a last task checks what the container printed.
//!
//! ```text
//! cargo run -p flow-examples -- dags test containerized_count \
//!     --conf '{"image": "busybox:1.36"}'
//! ```
//!
//! It needs a Docker daemon (`DOCKER_HOST`, else the local socket) that has the image, or
//! can pull it (the pull policy is Docker's `missing`).

use flow_runtime::prelude::*;
use flow_runtime::task::container::{ContainerSpec, Network};

/// Writes one label per row, as the training pipeline's CSV has them, into this run's
/// directory; returns the directory.
#[task]
pub fn write_labels(ctx: &TaskContext) -> anyhow::Result<String> {
    let dir = crate::run_dir(ctx)?;
    let rows: String = smartcore::dataset::digits::load_dataset()
        .target
        .iter()
        .map(|label| format!("{label}\n"))
        .collect();
    std::fs::write(dir.join("labels.csv"), rows)?;
    Ok(dir.display().to_string())
}

/// Counts the rows and the distinct labels in the container: `rows labels` on its last
/// line of output. The directory comes in as a mount, the image as a param; nothing is
/// spliced into the script.
#[task(container, retries = 1, retry_delay = "5s", execution_timeout = "5m")]
pub fn count_in_container(dir: String, ctx: &TaskContext) -> anyhow::Result<ContainerSpec> {
    let image: String = ctx.param("image")?;
    Ok(ContainerSpec::new(image)
        .command(["/bin/sh", "-c"])
        .arg(r#"echo "counting for $FLOW_DS"; echo "$(wc -l < /data/labels.csv) $(sort -u /data/labels.csv | wc -l)""#)
        .mount_read_only(dir, "/data")
        .network(Network::None)
        .memory_bytes(256 << 20)
        .cpus(1.0))
}

/// Checks the container's answer against the data set.
#[task]
pub fn check_counts(counts: String) -> anyhow::Result<String> {
    let mut fields = counts.split_whitespace().map(str::parse::<usize>);
    let (Some(Ok(rows)), Some(Ok(labels))) = (fields.next(), fields.next()) else {
        anyhow::bail!("the container printed `{counts}`, not `rows labels`");
    };
    anyhow::ensure!(rows == 1797, "expected 1797 rows, counted {rows}");
    anyhow::ensure!(
        labels == 10,
        "expected 10 distinct labels, counted {labels}"
    );
    tracing::info!(rows, labels, "the container counted the data set");
    Ok(format!("{rows} rows, {labels} labels"))
}

/// Writes the labels, counts them in a container, checks the count.
#[dag(
    id = "containerized_count",
    tags = ["example", "container"],
    params(
        /// The image the count runs in: any with a POSIX shell, `wc` and `sort`.
        image: String = "busybox:1.36".to_string(),
    ),
)]
pub fn containerized_count() {
    check_counts(count_in_container(write_labels()));
}

//! Task groups (Airflow's `@task_group`): one ingestion group per source, each with a
//! nested quality group, then a reporting group ordered before a notification. Also a task
//! with multiple outputs (`split.large`, Airflow's `multiple_outputs=True`) and one task
//! used under two other ids (`count_rows.r#override(task_id = ..)`, Airflow's
//! `task.override`), and a staging directory made by a setup task and removed by its
//! teardown, which runs even when the staging step fails (Airflow's `@setup` and
//! `@teardown`).
//!
//! ```text
//! cargo run -p flow-examples -- dags test grouped_etl
//! ```
//!
//! Task ids carry their groups' ids: `ingest.extract_orders`, `ingest.quality.check_rows`,
//! and `ingest__1.extract_orders` for the second call of the group (Airflow's suffix).

use std::collections::BTreeMap;

use anyhow::ensure;
use flow_runtime::prelude::*;

/// One order of a source.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Order {
    /// Order id, unique within its source.
    pub id: u32,
    /// Where the customer is.
    pub region: String,
    /// Amount in cents; 0 marks a cancelled order.
    pub cents: u64,
}

/// The orders of one source (a fixed sample, so the example runs offline).
#[task]
#[must_use]
pub fn extract_orders(source: String) -> Vec<Order> {
    let sample: &[(u32, &str, u64)] = match source.as_str() {
        "web" => &[
            (1, "eu", 1250),
            (2, "us", 990),
            (3, "eu", 0),
            (4, "apac", 4100),
        ],
        _ => &[(1, "us", 310), (2, "us", 2200), (3, "eu", 870)],
    };
    sample
        .iter()
        .map(|&(id, region, cents)| Order {
            id,
            region: region.to_string(),
            cents,
        })
        .collect()
}

/// Drops cancelled orders.
#[task]
#[must_use]
pub fn drop_cancelled(orders: Vec<Order>) -> Vec<Order> {
    orders.into_iter().filter(|o| o.cents > 0).collect()
}

/// How many orders there are.
#[task]
#[must_use]
pub fn count_rows(orders: Vec<Order>) -> usize {
    orders.len()
}

/// Fails on an empty source.
///
/// # Errors
///
/// When `rows` is 0.
#[task(retries = 0)]
pub fn check_rows(rows: usize) -> anyhow::Result<usize> {
    ensure!(rows > 0, "the source has no valid orders");
    Ok(rows)
}

/// Orders split by size (each field is an output of its own downstream).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, MultipleOutputs)]
pub struct BySize {
    /// Orders of 10.00 or more.
    pub large: Vec<Order>,
    /// The others.
    pub small: Vec<Order>,
}

/// Splits the orders at 10.00.
#[task(multiple_outputs)]
#[must_use]
pub fn split_by_size(orders: Vec<Order>) -> BySize {
    let (large, small) = orders.into_iter().partition(|o| o.cents >= 1000);
    BySize { large, small }
}

/// Both sources' orders.
#[task]
#[must_use]
pub fn merge(web: Vec<Order>, store: Vec<Order>) -> Vec<Order> {
    web.into_iter().chain(store).collect()
}

/// Revenue per region, in cents.
#[task]
#[must_use]
pub fn revenue_by_region(orders: Vec<Order>) -> BTreeMap<String, u64> {
    let mut revenue = BTreeMap::new();
    for order in orders {
        *revenue.entry(order.region).or_default() += order.cents;
    }
    revenue
}

/// Writes the revenue, a `region cents` line per region, into the run's directory; returns
/// the file's path.
///
/// # Errors
///
/// When the file cannot be written.
#[task]
pub fn publish(ctx: &TaskContext, revenue: BTreeMap<String, u64>) -> anyhow::Result<String> {
    let path = crate::run_dir(ctx)?.join("revenue.txt");
    let lines: String = revenue
        .iter()
        .map(|(region, cents)| format!("{region} {cents}\n"))
        .collect();
    std::fs::write(&path, lines)?;
    Ok(path.display().to_string())
}

/// The region that earned most.
#[task]
#[must_use]
pub fn top_region(revenue: BTreeMap<String, u64>) -> String {
    revenue
        .into_iter()
        .max_by_key(|(_, cents)| *cents)
        .map(|(region, _)| region)
        .unwrap_or_default()
}

/// Tells the team the report is out.
#[task]
pub fn notify(ctx: &TaskContext) {
    tracing::info!(run = %ctx.run_id(), "revenue report published");
}

/// Makes an empty staging directory for the run; returns its path.
///
/// # Errors
///
/// When the directory cannot be made.
#[task(setup)]
pub fn create_staging(ctx: &TaskContext) -> anyhow::Result<String> {
    let dir = crate::run_dir(ctx)?.join("staging");
    std::fs::create_dir_all(&dir)?;
    Ok(dir.display().to_string())
}

/// Writes the orders into the staging directory, one `id region cents` line each; returns
/// how many.
///
/// # Errors
///
/// When the file cannot be written.
#[task]
pub fn stage_orders(staging: String, orders: Vec<Order>) -> anyhow::Result<usize> {
    let lines: String = orders
        .iter()
        .map(|o| format!("{} {} {}\n", o.id, o.region, o.cents))
        .collect();
    std::fs::write(std::path::Path::new(&staging).join("orders.txt"), lines)?;
    Ok(orders.len())
}

/// Removes the staging directory, whatever the staging step did.
///
/// # Errors
///
/// When the directory exists and cannot be removed.
#[task(teardown)]
pub fn drop_staging(staging: String) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(&staging) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// Checks one cleaned source.
#[task_group]
pub fn quality(orders: Node<Vec<Order>>) {
    check_rows(count_rows(orders));
}

/// Extracts one source and drops its cancelled orders; returns the clean orders.
#[task_group(default_args(retries = 2, retry_delay = "1s"))]
pub fn ingest(source: &'static str) -> Node<Vec<Order>> {
    let raw = extract_orders(source);
    let clean = drop_cancelled(raw);
    quality(clean);
    clean
}

/// Publishes the revenue report.
#[task_group(group_id = "report")]
pub fn reporting(revenue: Node<BTreeMap<String, u64>>) {
    publish(revenue);
    top_region(revenue);
}

/// Revenue per region from two sources, each ingested by the same task group.
#[dag(
    id = "grouped_etl",
    schedule = None,
    tags = ["example", "groups"],
    default_args(owner = "data-team")
)]
pub fn grouped_etl() {
    let web = ingest("web");
    let store = ingest("store");
    let orders = merge(web, store);
    let revenue = revenue_by_region(orders);
    let sizes = split_by_size(orders);
    count_rows.r#override(task_id = "count_large")(sizes.large);
    count_rows.r#override(task_id = "count_small", priority_weight = 2)(sizes.small);
    reporting(revenue) >> notify.r#override(task_id = "notify_team", retries = 1)();
    let staging = create_staging();
    stage_orders(staging, orders) >> drop_staging(staging);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_prefix_ids_and_their_defaults_apply() {
        let dag = grouped_etl().unwrap();
        let ids: Vec<&str> = dag.tasks().iter().map(|t| t.id().as_str()).collect();
        assert_eq!(
            ids,
            [
                "ingest.extract_orders",
                "ingest.drop_cancelled",
                "ingest.quality.count_rows",
                "ingest.quality.check_rows",
                "ingest__1.extract_orders",
                "ingest__1.drop_cancelled",
                "ingest__1.quality.count_rows",
                "ingest__1.quality.check_rows",
                "merge",
                "revenue_by_region",
                "split_by_size",
                "count_large",
                "count_small",
                "report.publish",
                "report.top_region",
                "notify_team",
                "create_staging",
                "stage_orders",
                "drop_staging",
            ]
        );
        assert!(dag.task("create_staging").unwrap().role().is_setup());
        assert!(dag.task("drop_staging").unwrap().role().is_teardown());
        assert_eq!(dag.task("ingest.extract_orders").unwrap().retries(), 2);
        assert_eq!(dag.task("ingest.quality.check_rows").unwrap().retries(), 0);
        assert_eq!(dag.task("merge").unwrap().retries(), 0);
        assert_eq!(dag.task("report.publish").unwrap().owner(), "data-team");
        let notify = dag.task("notify_team").unwrap();
        assert_eq!(notify.upstream().len(), 2, "both leaves of `report`");
        assert_eq!(notify.retries(), 1);
        assert_eq!(dag.task("count_small").unwrap().priority_weight(), 2);
        assert_eq!(
            dag.task("count_large").unwrap().input_field(0),
            Some("large")
        );
    }

    #[test]
    fn tasks_are_still_functions() {
        let orders = drop_cancelled(extract_orders("web".into()));
        assert_eq!(count_rows(orders.clone()), 3);
        assert_eq!(revenue_by_region(orders)["eu"], 1250);
        assert!(check_rows(0).is_err());
    }
}

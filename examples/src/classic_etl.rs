//! The classic style: tasks take only the context, are ordered with `>>`, and move data by
//! explicit XCom push and pull (Airflow's `ti.xcom_push` / `ti.xcom_pull`).

use anyhow::ensure;
use flow_runtime::prelude::*;

/// One order line.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Order {
    /// Order id.
    pub id: u32,
    /// Customer name.
    pub customer: String,
    /// Amount in cents.
    pub cents: u64,
}

/// Totals computed from the orders.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Summary {
    /// Number of orders.
    pub orders: usize,
    /// Sum of all amounts, in cents.
    pub total_cents: u64,
    /// The customer who spent most.
    pub top_customer: String,
}

/// Parses the day's orders from the source text and pushes them as XCom `orders`.
#[task]
pub fn extract(ctx: &TaskContext) -> anyhow::Result<()> {
    let source = "1,ada,1250\n2,grace,990\n3,ada,4100\n4,linus,310";
    let orders = source
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            ensure!(f.len() == 3, "bad order line `{line}`");
            Ok(Order {
                id: f[0].parse()?,
                customer: f[1].to_string(),
                cents: f[2].parse()?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    ctx.xcom_push("orders", &orders)?;
    Ok(())
}

/// Pulls the orders, computes a [`Summary`] and pushes it as XCom `summary`.
#[task]
pub fn transform(ctx: &TaskContext) -> anyhow::Result<()> {
    let orders: Vec<Order> = ctx.xcom_pull("extract", "orders")?;
    let mut per_customer = std::collections::BTreeMap::<&str, u64>::new();
    for order in &orders {
        *per_customer.entry(&order.customer).or_default() += order.cents;
    }
    let top_customer = per_customer
        .iter()
        .max_by_key(|(_, cents)| **cents)
        .map(|(name, _)| (*name).to_string())
        .unwrap_or_default();
    let summary = Summary {
        orders: orders.len(),
        total_cents: orders.iter().map(|o| o.cents).sum(),
        top_customer,
    };
    ctx.xcom_push("summary", &summary)?;
    Ok(())
}

/// Pulls the summary and reports it.
#[task]
pub fn load(ctx: &TaskContext) -> anyhow::Result<String> {
    let summary: Summary = ctx.xcom_pull("transform", "summary")?;
    let line = format!(
        "{}: {} orders, {:.2} total, top customer {}",
        ctx.ds(),
        summary.orders,
        summary.total_cents as f64 / 100.0,
        summary.top_customer
    );
    tracing::info!("{line}");
    Ok(line)
}

/// Extract, transform and load the day's orders, wired the classic way.
#[dag(schedule = "@daily", start_date = "2025-01-01", tags = ["etl", "classic"])]
pub fn classic_etl() {
    extract() >> transform() >> load();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transform_summarises_the_pulled_orders() {
        // Each task is a function: give it a context holding what its upstream pushed.
        let ctx = TaskContext::for_test("classic_etl", "extract");
        extract(&ctx).unwrap();
        let orders: Vec<Order> = ctx.xcom_pull("extract", "orders").unwrap();
        assert_eq!(orders.len(), 4);
        assert_eq!(orders[2].cents, 4100);
    }

    #[test]
    fn transform_without_orders_says_what_is_missing() {
        let ctx = TaskContext::for_test("classic_etl", "transform");
        let err = transform(&ctx).unwrap_err().to_string();
        assert!(
            err.contains("no XCom `orders` from task `extract`"),
            "{err}"
        );
    }

    #[test]
    fn the_dag_runs_end_to_end() {
        let run = classic_etl().unwrap().test().unwrap();
        assert_eq!(run.state, RunState::Success, "{run:?}");
        let line: String = run.output("load").unwrap();
        assert!(
            line.ends_with("4 orders, 66.50 total, top customer ada"),
            "{line}"
        );
    }
}

//! A DAG generated at run time from configuration with the builder API, the way Airflow
//! users loop over a config file: one export task per configured table, then one
//! `publish` task after all of them.
//!
//! The table list comes from `$FLOW_EXAMPLE_TABLES` (comma-separated), defaulting to
//! `orders,customers,payments`.

use flow_runtime::DagError;
use flow_runtime::prelude::*;

/// Exports one table and returns its row count (the count is derived from the name here).
#[task(retries = 1, retry_delay = "30s")]
pub fn export_table(table: String) -> u64 {
    table.bytes().map(u64::from).sum::<u64>() % 1000
}

/// Runs after every export.
#[task]
pub fn publish(ctx: &TaskContext) -> String {
    format!("exports of {} published", ctx.ds())
}

/// The configured tables.
pub fn configured_tables() -> Vec<String> {
    std::env::var("FLOW_EXAMPLE_TABLES")
        .unwrap_or_else(|_| "orders,customers,payments".to_string())
        .split(',')
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Builds the DAG: what `#[dag]` generates, written by hand.
pub fn config_driven() -> Result<Dag, DagError> {
    let mut dag = DagBuilder::new("config_driven")
        .description("one export per configured table, then publish")
        .schedule("@hourly")
        .start_date("2025-01-01")
        .tags(["generated"]);
    let publish = publish::node(&mut dag);
    for table in configured_tables() {
        let export = dag
            .add_task(export_table::spec())
            .task_id(format!("export_{table}"))
            .input(table)
            .finish::<u64>();
        dag.set_downstream(&[export.any()], &[publish.any()]);
    }
    dag.build()
}

flow_runtime::register_dag!("config_driven", config_driven);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_export_per_table_then_publish() {
        let dag = config_driven().unwrap();
        let publish = dag.task("publish").unwrap();
        assert_eq!(publish.upstream().len(), configured_tables().len());
        let run = dag.test().unwrap();
        assert_eq!(run.state, RunState::Success);
        assert_eq!(
            run.output::<u64>("export_orders").unwrap(),
            export_table("orders".into())
        );
    }
}

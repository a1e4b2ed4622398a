//! Assets (Airflow's data-aware scheduling): a task names the assets it updates (its
//! outlets); each successful try of it records one [`AssetEvent`] per outlet, in the
//! batch that records the success; a DAG scheduled on assets gets a run once every one
//! of them was updated since its last asset-triggered run.
//!
//! ```
//! use flow_runtime::prelude::*;
//!
//! const ORDERS: Asset = Asset::new("s3://warehouse/orders.parquet");
//!
//! let mut producer = DagBuilder::new("load_orders").schedule("@daily");
//! producer.add_task(TaskSpec::from_sync("load", |_, _| Ok(())).outlets([ORDERS]));
//! let consumer = DagBuilder::new("report").schedule_on([ORDERS]);
//! # producer.build().unwrap();
//! # let mut consumer = consumer;
//! # consumer.add_task(TaskSpec::from_sync("report", |_, _| Ok(())));
//! assert_eq!(consumer.build().unwrap().schedule().to_string(), "[s3://warehouse/orders.parquet]");
//! ```

use std::borrow::Cow;

use chrono::{DateTime, Utc};

use crate::ids::TaskInstanceKey;

/// A piece of data, named by its URI (`s3://bucket/key`, `file:///data/x.csv`,
/// `postgres://db/schema/table`), that tasks update and DAGs may be scheduled on.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Asset {
    uri: Cow<'static, str>,
}

impl Asset {
    /// The asset at `uri`, usable in a `const`. The URI is checked when a DAG naming the
    /// asset is built.
    pub const fn new(uri: &'static str) -> Self {
        Self {
            uri: Cow::Borrowed(uri),
        }
    }

    /// The asset at `uri`, known only at run time.
    pub fn from_uri(uri: impl Into<String>) -> Self {
        Self {
            uri: Cow::Owned(uri.into()),
        }
    }

    /// Its URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Why the URI cannot name an asset, if it cannot: it must be non-empty, without
    /// whitespace, and not use the `airflow` or `flow` scheme (reserved, as in Airflow).
    pub fn problem(&self) -> Option<&'static str> {
        let uri = self.uri();
        if uri.trim().is_empty() {
            return Some("an asset URI is not empty");
        }
        if uri.chars().any(char::is_whitespace) {
            return Some("an asset URI has no whitespace");
        }
        let scheme = uri.split_once("://").map(|(scheme, _)| scheme);
        if matches!(scheme, Some("airflow" | "flow")) {
            return Some("the `airflow` and `flow` URI schemes are reserved");
        }
        None
    }
}

impl std::fmt::Display for Asset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.uri())
    }
}

/// One update of an asset: a successful try of a task that names it as an outlet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssetEvent {
    /// Its place in the order events were recorded (larger is later).
    pub id: i64,
    /// The asset's URI.
    pub uri: String,
    /// The task instance whose success recorded it.
    pub source: TaskInstanceKey,
    /// When that try ended.
    pub timestamp: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_checked() {
        assert_eq!(Asset::new("s3://bucket/orders").problem(), None);
        assert!(Asset::new("").problem().is_some());
        assert!(Asset::new("s3://my bucket").problem().is_some());
        assert!(Asset::from_uri("airflow://x").problem().is_some());
        assert_eq!(Asset::new("s3://b/k").to_string(), "s3://b/k");
    }
}

//! Listing the XComs of one task instance.

use crate::graph::Dag;
use crate::ids::{RunId, TaskInstanceKey};
use crate::store::Store;
use crate::xcom::StoredXCom;

use super::{InstanceError, instance_key};

/// The XComs one task instance stored.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceXComs {
    /// The instance.
    pub key: TaskInstanceKey,
    /// Its values by name, in name order: inline, or a reference to an object.
    pub xcoms: Vec<(String, StoredXCom)>,
}

/// The XComs task `task_id` (instance `map_index` of a mapped task) stored in run `run_id`.
pub fn list(
    store: &dyn Store,
    dag: &Dag,
    run_id: &RunId,
    task_id: &str,
    map_index: Option<u32>,
) -> Result<InstanceXComs, InstanceError> {
    let key = instance_key(store, dag, run_id, task_id, map_index)?;
    let xcoms = store.xcoms(&key)?;
    Ok(InstanceXComs { key, xcoms })
}

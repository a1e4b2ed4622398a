//! XCom offload: values above the threshold go to the object store before the try's
//! success is reported, and come back when a consumer reads them.

use crate::ids::TaskInstanceKey;
use crate::task::TaskError;
use crate::task::{Inputs, PendingInput, PendingValue};
use crate::xcom::{ObjectRef, RETURN_VALUE, StoredXCom, XComBlob};

use super::{Objects, xcom_path};

/// The XComs of a successful try, ready to be recorded.
pub(crate) struct StagedXComs {
    /// The return value itself, for the executor's decisions (branches) and its cache.
    pub(crate) output: XComBlob,
    /// Every XCom (the return value first, unless it is `()`) as the store records it.
    pub(crate) records: Vec<(String, StoredXCom)>,
}

/// Uploads the values larger than the threshold and returns what the store records. Runs
/// in the task's own future, so a large upload never holds up the executor's loop; a
/// failed upload fails the try, and nothing refers to what it may have written.
pub(crate) async fn stage(
    objects: Option<&Objects>,
    key: &TaskInstanceKey,
    output: XComBlob,
    pushed: Vec<(String, XComBlob)>,
) -> Result<StagedXComs, TaskError> {
    let mut records = Vec::with_capacity(pushed.len() + 1);
    // A task returning `()` stores no return value (Airflow stores none for `None`).
    let returned = (!output.is_unit()).then(|| (RETURN_VALUE.to_string(), output.clone()));
    for (name, blob) in returned.into_iter().chain(pushed) {
        let stored = match objects {
            Some(objects) if blob.bytes().len() > objects.threshold() => {
                let path = xcom_path(key, &name);
                let size = blob.bytes().len();
                objects
                    .put(&path, blob.bytes().to_vec())
                    .await
                    .map_err(|e| {
                        TaskError::XCom(format!(
                            "cannot store XCom `{name}` ({size} bytes) of `{}`: {e}",
                            key.task_id
                        ))
                    })?;
                StoredXCom::Object(ObjectRef::new(
                    path.to_string(),
                    blob.type_name().to_string(),
                ))
            }
            _ => StoredXCom::Inline(blob),
        };
        records.push((name, stored));
    }
    Ok(StagedXComs { output, records })
}

/// Fetches the inputs kept in the object store; in the task's own future, like [`stage`].
pub(crate) async fn resolve_inputs(
    objects: Option<&Objects>,
    pending: Vec<PendingInput>,
) -> Result<Inputs, TaskError> {
    let mut inputs = Inputs::with_capacity(pending.len());
    for input in pending {
        let blob = match &input.value {
            PendingValue::One(value) => load(objects, &input.param, value).await?,
            PendingValue::Collected {
                elements,
                element_type,
            } => {
                let mut blobs = Vec::with_capacity(elements.len());
                for element in elements {
                    blobs.push(load(objects, &input.param, element).await?);
                }
                crate::xcom::list::collect(&blobs, element_type).map_err(|e| {
                    TaskError::XCom(format!("cannot collect input `{}`: {e}", input.param))
                })?
            }
        };
        inputs.push(input.param, input.source, blob);
    }
    Ok(inputs)
}

/// One stored value of input `param`, fetched if it is kept in the object store.
async fn load(
    objects: Option<&Objects>,
    param: &str,
    value: &StoredXCom,
) -> Result<XComBlob, TaskError> {
    match (value, objects) {
        (StoredXCom::Inline(blob), _) => Ok(blob.clone()),
        (StoredXCom::Object(_), Some(objects)) => objects
            .load(value)
            .await
            .map_err(|e| TaskError::XCom(format!("cannot read input `{param}`: {e}"))),
        (StoredXCom::Object(object), None) => Err(TaskError::XCom(format!(
            "input `{param}` is kept in an object store (`{}`), and this executor has none: \
             give it one with `Executor::object_store`",
            object.key()
        ))),
    }
}

/// The value of a stored XCom, fetched (blocking) when it is kept in the object store.
pub(crate) fn load_blocking(
    objects: Option<&Objects>,
    stored: &StoredXCom,
) -> Result<XComBlob, super::ObjectError> {
    match (stored, objects) {
        (StoredXCom::Inline(blob), _) => Ok(blob.clone()),
        (StoredXCom::Object(_), Some(objects)) => objects.load_blocking(stored),
        (StoredXCom::Object(object), None) => Err(super::ObjectError::NotConfigured {
            what: format!("the XCom kept as object `{}`", object.key()),
        }),
    }
}

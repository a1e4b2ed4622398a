//! Listing the XComs of one task instance, each shown as JSON where this binary knows its
//! type.

use crate::branch::{SKIPMIXIN_KEY, SkipDecision};
use crate::graph::Dag;
use crate::ids::{RunId, TaskInstanceKey};
use crate::store::Store;
use crate::xcom::{RETURN_VALUE, StoredXCom, XComBlob};

use super::{InstanceError, instance_key};

/// The XComs one task instance stored.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceXComs {
    /// The instance.
    pub key: TaskInstanceKey,
    /// Its values by name, in name order: inline, or a reference to an object.
    pub xcoms: Vec<(String, StoredXCom)>,
}

/// An XCom as a person reads it.
#[derive(Clone, Debug, PartialEq)]
pub enum XComView {
    /// Its value, decoded through its type.
    Json(serde_json::Value),
    /// A value of a type this listing cannot decode (a pushed value of the task's own
    /// type): its type and size.
    Opaque {
        /// The producer's type.
        type_name: String,
        /// Its encoded size.
        bytes: usize,
    },
    /// A value kept in the object store.
    Object {
        /// Its key in the object store.
        key: String,
        /// The producer's type.
        type_name: String,
    },
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

/// How `name`, an XCom of task `task_id` of `dag`, reads: the return value through the
/// task's declared output type, `skipmixin_key` as Airflow writes it, plain values
/// (numbers, text, flags) by their type.
pub fn view(dag: &Dag, task_id: &str, name: &str, stored: &StoredXCom) -> XComView {
    let blob = match stored {
        StoredXCom::Inline(blob) => blob,
        StoredXCom::Object(object) => {
            return XComView::Object {
                key: object.key().to_string(),
                type_name: object.type_name().to_string(),
            };
        }
    };
    let decoded = match name {
        RETURN_VALUE => dag
            .task(task_id)
            .and_then(|task| task.spec().output().to_json(blob).ok()),
        SKIPMIXIN_KEY => blob
            .decode::<SkipDecision>()
            .ok()
            .map(|decision| decision.to_json()),
        _ => plain_json(blob),
    };
    decoded.map_or_else(
        || XComView::Opaque {
            type_name: blob.type_name().to_string(),
            bytes: blob.bytes().len(),
        },
        XComView::Json,
    )
}

/// A value of a plain type, known by its type's name.
fn plain_json(blob: &XComBlob) -> Option<serde_json::Value> {
    fn as_json<T: serde::de::DeserializeOwned + serde::Serialize>(
        blob: &XComBlob,
    ) -> Option<serde_json::Value> {
        serde_json::to_value(blob.decode::<T>().ok()?).ok()
    }
    macro_rules! by_name {
        ($($ty:ty),*) => {
            $(if blob.type_name() == std::any::type_name::<$ty>() {
                return as_json::<$ty>(blob);
            })*
        };
    }
    by_name!(
        bool,
        i8,
        i16,
        i32,
        i64,
        u8,
        u16,
        u32,
        u64,
        usize,
        isize,
        f32,
        f64,
        String,
        Vec<String>,
        Vec<i64>,
        Vec<u64>,
        Vec<f64>
    );
    // A `&str` pushed is read back as a `String`.
    if blob.type_name() == std::any::type_name::<&str>() {
        return as_json::<String>(blob);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::DagBuilder;
    use crate::task::{TaskError, TaskSpec};

    #[test]
    fn return_values_decisions_and_plain_values_read_as_json() {
        let mut b = DagBuilder::new("d");
        b.add_task(TaskSpec::from_sync("t", |_, _| {
            Ok::<(u32, String), TaskError>((1, "x".into()))
        }));
        let dag = b.build().unwrap();
        let inline = |blob: XComBlob| StoredXCom::Inline(blob);
        let output = inline(XComBlob::encode(&(1_u32, "x".to_string())).unwrap());
        assert_eq!(
            view(&dag, "t", RETURN_VALUE, &output),
            XComView::Json(serde_json::json!([1, "x"]))
        );
        let decision = inline(XComBlob::encode(&SkipDecision::Followed(vec!["a".into()])).unwrap());
        assert_eq!(
            view(&dag, "t", SKIPMIXIN_KEY, &decision),
            XComView::Json(serde_json::json!({ "followed": ["a"] }))
        );
        let rows = inline(XComBlob::encode(&1797_u64).unwrap());
        assert_eq!(
            view(&dag, "t", "row_count", &rows),
            XComView::Json(serde_json::json!(1797))
        );
        #[derive(serde::Serialize)]
        struct Own {
            a: u8,
        }
        let own = inline(XComBlob::encode(&Own { a: 1 }).unwrap());
        assert!(matches!(
            view(&dag, "t", "own", &own),
            XComView::Opaque { bytes: 1, .. }
        ));
        let object =
            StoredXCom::Object(crate::xcom::ObjectRef::new("d/r/xcom/t/-1/big", "Vec<u8>"));
        assert!(matches!(
            view(&dag, "t", "big", &object),
            XComView::Object { .. }
        ));
    }
}

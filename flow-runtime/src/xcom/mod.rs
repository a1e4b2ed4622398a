//! XCom: the values tasks pass to each other, always as serialized bytes.
//!
//! A task's return value is encoded once (key [`RETURN_VALUE`]) and every consumer decodes
//! its own copy, so the same path works when producer and consumer live in different
//! processes. Each blob remembers the producer's type name, so a value that no longer
//! decodes after a deploy can be reported precisely.
//!
//! The store records each XCom as a [`StoredXCom`]: the bytes themselves, or, for values
//! larger than the object store threshold, a reference to the object holding them (see
//! [`crate::objects`]).

use std::borrow::Cow;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub mod codec;
pub mod field;
pub mod list;
pub mod ports;

use codec::CodecError;

/// The key under which a task's return value is stored, as in Airflow.
pub const RETURN_VALUE: &str = "return_value";

/// A type that can travel between tasks: serializable, deserializable and thread-safe.
///
/// Implemented for every such type; derive `Serialize` and `Deserialize` to get it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot travel between tasks as an XCom",
    label = "task parameters and outputs must implement `Serialize + DeserializeOwned + Send + Sync + 'static`",
    note = "add `#[derive(Serialize, Deserialize)]` to the type (both are re-exported by `flow_runtime::prelude`)"
)]
pub trait XComValue: Serialize + DeserializeOwned + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> XComValue for T {}

/// An encoded XCom value and the name of the type that produced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XComBlob {
    bytes: Arc<[u8]>,
    type_name: Cow<'static, str>,
}

impl XComBlob {
    /// Encodes a value.
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Self, CodecError> {
        Ok(Self {
            bytes: codec::encode(value)?.into(),
            type_name: Cow::Borrowed(std::any::type_name::<T>()),
        })
    }

    /// Rebuilds a blob from stored parts.
    pub fn from_parts(
        bytes: impl Into<Arc<[u8]>>,
        type_name: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            bytes: bytes.into(),
            type_name: type_name.into(),
        }
    }

    /// Decodes the value as `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, CodecError> {
        codec::decode(&self.bytes)
    }

    /// The encoded bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The Rust type name of the producer's value (`std::any::type_name`).
    pub fn type_name(&self) -> &str {
        &self.type_name
    }

    /// Whether this is `()`, the value of a task that returns nothing: like Airflow's
    /// `None`, it is not stored as a `return_value` XCom.
    pub fn is_unit(&self) -> bool {
        self.type_name == std::any::type_name::<()>()
    }
}

/// An XCom as the store records it: the encoded value itself, or a reference to the object
/// that holds a value too large for a database row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoredXCom {
    /// The value, kept in the database row.
    Inline(XComBlob),
    /// The value, kept in the object store; the row holds only this reference.
    Object(ObjectRef),
}

impl StoredXCom {
    /// The Rust type name of the producer's value.
    pub fn type_name(&self) -> &str {
        match self {
            StoredXCom::Inline(blob) => blob.type_name(),
            StoredXCom::Object(object) => object.type_name(),
        }
    }

    /// The value when it is kept inline.
    pub fn as_inline(&self) -> Option<&XComBlob> {
        match self {
            StoredXCom::Inline(blob) => Some(blob),
            StoredXCom::Object(_) => None,
        }
    }
}

impl From<XComBlob> for StoredXCom {
    fn from(blob: XComBlob) -> Self {
        StoredXCom::Inline(blob)
    }
}

/// Where an offloaded XCom value lives: a key relative to the object store's root, and the
/// producer's type name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectRef {
    key: String,
    type_name: Cow<'static, str>,
}

impl ObjectRef {
    /// A reference to the object at `key` (relative to the object store's root).
    pub fn new(key: impl Into<String>, type_name: impl Into<Cow<'static, str>>) -> Self {
        Self {
            key: key.into(),
            type_name: type_name.into(),
        }
    }

    /// The object's key, relative to the object store's root.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The Rust type name of the producer's value.
    pub fn type_name(&self) -> &str {
        &self.type_name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_keeps_the_producer_type_name() {
        let blob = XComBlob::encode(&vec![1_u32, 2]).unwrap();
        assert_eq!(blob.type_name(), "alloc::vec::Vec<u32>");
        assert_eq!(blob.decode::<Vec<u32>>().unwrap(), vec![1, 2]);
    }
}

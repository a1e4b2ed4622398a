//! [`Field`]: one field of a task's stored output, which a downstream task takes instead of
//! the whole value (multiple outputs, see [`crate::graph::outputs`]).

use super::{XComBlob, XComValue};

/// Reads one field of a stored value: decodes the value, encodes the field.
pub type Project = fn(&XComBlob) -> Result<XComBlob, String>;

/// One field of a task's output, which a downstream task takes instead of the whole value.
#[derive(Clone, Copy)]
pub struct Field {
    pub(crate) name: &'static str,
    pub(crate) owner: &'static str,
    pub(crate) project: Project,
}

impl Field {
    /// The field `name` of values of type `owner`, read by `project`.
    pub fn new(name: &'static str, owner: &'static str, project: Project) -> Self {
        Field {
            name,
            owner,
            project,
        }
    }

    /// The field's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The type whose field it is.
    pub fn owner(&self) -> &'static str {
        self.owner
    }

    /// Reads the field out of an encoded value of the owner's type.
    pub fn project(&self, blob: &XComBlob) -> Result<XComBlob, String> {
        (self.project)(blob)
    }
}

impl std::fmt::Debug for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Field({}.{})", self.owner, self.name)
    }
}

impl PartialEq for Field {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.owner == other.owner
    }
}

/// Decodes `blob` as an `S` and encodes the field `get` returns (what
/// `#[derive(MultipleOutputs)]` makes each field's [`Project`] of).
pub fn project_field<S: XComValue, F: serde::Serialize>(
    blob: &XComBlob,
    get: impl FnOnce(&S) -> &F,
) -> Result<XComBlob, String> {
    let value: S = blob.decode().map_err(|e| e.to_string())?;
    XComBlob::encode(get(&value)).map_err(|e| e.to_string())
}

//! Typed identifiers: a DAG, a task, a run, a map index, and the key of one task instance.
//!
//! Strings and integers that name different things get different types, so a run id can
//! never be passed where a task id is expected.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Wraps a string as this id.
            pub fn new(id: impl AsRef<str>) -> Self {
                Self(Arc::from(id.as_ref()))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self::new(id)
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(Arc::from(id))
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// The id of a DAG, unique within a binary (`ml_training_pipeline`).
    DagId
);
string_id!(
    /// The id of a task, unique within its DAG (`train_model`, `train_model__1`).
    TaskId
);
string_id!(
    /// The id of one DAG run (`manual__2025-01-01T00:00:00+00:00`).
    RunId
);

/// The position of a mapped task instance among its siblings; unmapped instances have none.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default, Serialize, Deserialize,
)]
pub struct MapIndex(Option<u32>);

impl MapIndex {
    /// The index of an unmapped task instance (Airflow stores it as `-1`).
    pub const UNMAPPED: MapIndex = MapIndex(None);

    /// The index of the `i`-th mapped instance.
    pub fn mapped(i: u32) -> Self {
        Self(Some(i))
    }

    /// The position among mapped siblings, or `None` for an unmapped instance.
    pub fn get(self) -> Option<u32> {
        self.0
    }

    /// Airflow's integer form: `-1` for unmapped instances.
    pub fn as_i64(self) -> i64 {
        self.0.map_or(-1, i64::from)
    }
}

impl fmt::Display for MapIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(i) => write!(f, "{i}"),
            None => f.write_str("-1"),
        }
    }
}

/// The dense position of a task in its DAG: `Dag::tasks()[i]` in declaration order, the
/// index the compiled [`Plan`](crate::plan::Plan) keys every per-task fact by. Only
/// meaningful with the DAG it came from.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct TaskIndex(u32);

impl TaskIndex {
    /// The index of the task at position `position` of its DAG. Node handles count tasks
    /// in `u32` too, so a DAG of more than `u32::MAX` tasks (hundreds of gigabytes of
    /// definitions) is out of reach; such a position saturates.
    pub fn new(position: usize) -> Self {
        Self(u32::try_from(position).unwrap_or(u32::MAX))
    }

    /// The task's position in `Dag::tasks()`.
    pub fn get(self) -> usize {
        self.0 as usize
    }

    /// Every index of a DAG of `len` tasks, in declaration order.
    pub fn all(len: usize) -> impl DoubleEndedIterator<Item = TaskIndex> + ExactSizeIterator {
        (0..len).map(TaskIndex::new)
    }
}

impl fmt::Display for TaskIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Addresses one task instance: every fact about it lives in the store under this key.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct TaskInstanceKey {
    /// The DAG the instance belongs to.
    pub dag_id: DagId,
    /// The run the instance belongs to.
    pub run_id: RunId,
    /// The task this is an instance of.
    pub task_id: TaskId,
    /// Its position among mapped siblings.
    pub map_index: MapIndex,
}

impl fmt::Display for TaskInstanceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.dag_id, self.run_id, self.task_id)?;
        if let Some(i) = self.map_index.get() {
            write!(f, "[{i}]")?;
        }
        Ok(())
    }
}

/// A stable 64-bit hash (FNV-1a) for fingerprints, file names and seeds: the same input
/// gives the same value in every build and process, unlike `std`'s randomized hasher.
#[derive(Clone, Copy, Debug)]
pub struct StableHash(u64);

impl Default for StableHash {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl StableHash {
    /// Feeds bytes.
    pub fn bytes(mut self, bytes: &[u8]) -> Self {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        self
    }

    /// Feeds a string and a separator, so `("ab", "c")` and `("a", "bc")` differ.
    pub fn text(self, text: &str) -> Self {
        self.bytes(text.as_bytes()).bytes(&[0])
    }

    /// The hash.
    pub fn finish(self) -> u64 {
        self.0
    }
}

/// How a run came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunType {
    /// Created by hand (`dags test`, `dags trigger`).
    Manual,
    /// Created by the scheduler.
    Scheduled,
    /// Created by a backfill.
    Backfill,
    /// Created because the assets its DAG is scheduled on were updated.
    AssetTriggered,
}

impl RunType {
    /// Every run type.
    pub const ALL: [RunType; 4] = [
        RunType::Manual,
        RunType::Scheduled,
        RunType::Backfill,
        RunType::AssetTriggered,
    ];

    /// Airflow's name, also the run id's prefix.
    pub fn as_str(self) -> &'static str {
        match self {
            RunType::Manual => "manual",
            RunType::Scheduled => "scheduled",
            RunType::Backfill => "backfill",
            RunType::AssetTriggered => "asset_triggered",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_display_and_compare_as_their_strings() {
        let a = TaskId::new("train_model");
        assert_eq!(a.to_string(), "train_model");
        assert_eq!(a, TaskId::from("train_model".to_string()));
        assert_eq!(format!("{a:?}"), "\"train_model\"");
    }

    #[test]
    fn stable_hashes_are_stable_and_separate_their_parts() {
        assert_eq!(
            StableHash::default().text("a").finish(),
            StableHash::default().text("a").finish()
        );
        assert_ne!(
            StableHash::default().text("ab").text("c").finish(),
            StableHash::default().text("a").text("bc").finish()
        );
        assert_eq!(StableHash::default().finish(), 0xcbf2_9ce4_8422_2325);
    }

    #[test]
    fn map_index_uses_airflows_minus_one_for_unmapped() {
        assert_eq!(MapIndex::UNMAPPED.as_i64(), -1);
        assert_eq!(MapIndex::mapped(3).as_i64(), 3);
        let key = TaskInstanceKey {
            dag_id: "d".into(),
            run_id: "r".into(),
            task_id: "t".into(),
            map_index: MapIndex::mapped(2),
        };
        assert_eq!(key.to_string(), "d/r/t[2]");
    }
}

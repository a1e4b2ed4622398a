//! Every DAG and task of the binary, registered by the macros through `inventory`.
//!
//! DAGs are built once at start-up; a duplicate id, an invalid DAG or an empty registry
//! is a start-up error that names what to fix.

use std::collections::BTreeMap;

use crate::graph::Dag;
use crate::graph::DagError;
use crate::task::TaskSpec;

/// A DAG registered by `#[dag]` (or by hand with `inventory::submit!`).
pub struct DagRegistration {
    /// The DAG's id, as declared.
    pub id: &'static str,
    /// Builds the DAG.
    pub build: fn() -> Result<Dag, DagError>,
    /// Where it was declared: `file:line`.
    pub location: &'static str,
}

inventory::collect!(DagRegistration);

/// Registers a DAG built by hand (with [`crate::DagBuilder`]) so the binary's CLI sees it,
/// as `#[dag]` does for macro-built DAGs.
///
/// ```
/// use flow_runtime::prelude::*;
///
/// fn nightly() -> Result<Dag, flow_runtime::DagError> {
///     let mut dag = DagBuilder::new("nightly").schedule("0 3 * * *");
///     dag.add_task(TaskSpec::from_sync("noop", |_, _| Ok(())));
///     dag.build()
/// }
/// flow_runtime::register_dag!("nightly", nightly);
/// # assert!(flow_runtime::registry::Registry::load().unwrap().get("nightly").is_some());
/// ```
#[macro_export]
macro_rules! register_dag {
    ($id:expr, $build:path) => {
        $crate::__private::inventory::submit! {
            $crate::__private::DagRegistration {
                id: $id,
                build: $build,
                location: ::core::concat!(::core::file!(), ":", ::core::line!()),
            }
        }
    };
}

/// A task registered by `#[task]`.
pub struct TaskRegistration {
    /// The task's name.
    pub name: &'static str,
    /// The module that declares it.
    pub module: &'static str,
    /// Builds its definition.
    pub spec: fn() -> TaskSpec,
}

inventory::collect!(TaskRegistration);

/// A registry that cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No DAG is registered at all.
    #[error(
        "this binary has no DAGs: define a function with #[dag] in a crate the binary links \
         (a library crate of DAGs must be referenced from the binary, e.g. `use my_dags as _;`)"
    )]
    Empty,
    /// Two DAGs share an id.
    #[error(
        "DAG id `{id}` is defined twice (at {first} and at {second}); give one of them another `id`"
    )]
    Duplicate {
        /// The id.
        id: String,
        /// The first definition.
        first: &'static str,
        /// The second definition.
        second: &'static str,
    },
    /// One or more DAGs fail to build.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<DagError>),
}

/// The DAGs of this binary, by id.
#[derive(Debug)]
pub struct Registry {
    dags: BTreeMap<String, Dag>,
}

impl Registry {
    /// Builds every DAG registered with `inventory`.
    pub fn load() -> Result<Self, RegistryError> {
        Self::from_registrations(inventory::iter::<DagRegistration>)
    }

    /// Builds the given registrations (the testable core of [`Registry::load`]).
    pub fn from_registrations<'a>(
        regs: impl IntoIterator<Item = &'a DagRegistration>,
    ) -> Result<Self, RegistryError> {
        let mut seen: BTreeMap<&str, &DagRegistration> = BTreeMap::new();
        let mut dags = BTreeMap::new();
        let mut invalid = Vec::new();
        for reg in regs {
            if let Some(first) = seen.insert(reg.id, reg) {
                let (first, second) = order_locations(first.location, reg.location);
                return Err(RegistryError::Duplicate {
                    id: reg.id.to_string(),
                    first,
                    second,
                });
            }
            match (reg.build)() {
                Ok(dag) => {
                    dags.insert(dag.id().to_string(), dag);
                }
                Err(e) => invalid.push(e),
            }
        }
        if !invalid.is_empty() {
            return Err(RegistryError::Invalid(invalid));
        }
        if dags.is_empty() {
            return Err(RegistryError::Empty);
        }
        Ok(Self { dags })
    }

    /// A registry of the given DAGs (for tests and embedding).
    pub fn from_dags(dags: impl IntoIterator<Item = Dag>) -> Self {
        Self {
            dags: dags.into_iter().map(|d| (d.id().to_string(), d)).collect(),
        }
    }

    /// The DAG with this id.
    pub fn get(&self, id: &str) -> Option<&Dag> {
        self.dags.get(id)
    }

    /// All DAGs, by id.
    pub fn dags(&self) -> impl Iterator<Item = &Dag> {
        self.dags.values()
    }

    /// The ids, sorted.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.dags.keys().map(String::as_str)
    }
}

fn order_locations(a: &'static str, b: &'static str) -> (&'static str, &'static str) {
    if a <= b { (a, b) } else { (b, a) }
}

/// Ids from `known`, closest to `wanted` first, for "did you mean" messages.
pub fn closest<'a>(wanted: &str, known: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut scored: Vec<(f64, &str)> = known
        .into_iter()
        .map(|k| (strsim::jaro_winkler(wanted, k), k))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    scored.into_iter().map(|(_, k)| k).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::DagBuilder;
    use crate::task::TaskError;

    fn ok_dag() -> Result<Dag, DagError> {
        let mut b = DagBuilder::new("ok");
        b.add_task(TaskSpec::from_sync("t", |_, _| Ok::<(), TaskError>(())));
        b.build()
    }
    fn bad_dag() -> Result<Dag, DagError> {
        DagBuilder::new("bad").build()
    }

    #[test]
    fn duplicates_empty_and_invalid_registries_are_errors() {
        let a = DagRegistration {
            id: "ok",
            build: ok_dag,
            location: "a.rs:1",
        };
        let b = DagRegistration {
            id: "ok",
            build: ok_dag,
            location: "b.rs:9",
        };
        let err = Registry::from_registrations([&b, &a])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`ok` is defined twice (at a.rs:1 and at b.rs:9)"),
            "{err}"
        );
        assert!(matches!(
            Registry::from_registrations([]),
            Err(RegistryError::Empty)
        ));
        let bad = DagRegistration {
            id: "bad",
            build: bad_dag,
            location: "c.rs:1",
        };
        let err = Registry::from_registrations([&a, &bad])
            .unwrap_err()
            .to_string();
        assert!(err.contains("DAG `bad` is invalid"), "{err}");
    }

    #[test]
    fn closest_ids_come_first() {
        let known = ["ml_training_pipeline", "etl", "dynamic_pipeline"];
        assert_eq!(
            closest("ml_trainig_pipeline", known)[0],
            "ml_training_pipeline"
        );
        assert_eq!(closest("etll", known)[0], "etl");
    }
}

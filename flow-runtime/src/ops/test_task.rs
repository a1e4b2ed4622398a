//! Running one task by itself (`tasks test`): its inputs given as JSON, taken from the DAG's
//! literals, or read from the latest recorded run; nothing is recorded.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::graph::{BoundInput, Dag};
use crate::ids::{DagId, RunId, TaskId, TaskIndex};
use crate::objects::{ObjectError, ObjectStoreConfig, Objects};
use crate::runtime::Executor;
use crate::store::{MemoryStore, StoreError, XComStore};
use crate::xcom::{RETURN_VALUE, XComBlob};

use super::{UnknownTask, find_task};

/// An input the task needs and nothing provides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingInput {
    /// The parameter.
    pub name: String,
    /// Its type.
    pub type_name: String,
    /// Where it would come from in a run.
    pub from: MissingFrom,
}

/// Where a missing input comes from in a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MissingFrom {
    /// One element of the list the task is mapped over: the caller says which.
    MappedElement,
    /// The return value of this upstream task, which no recorded run has stored.
    Upstream(TaskId),
    /// The return value of this task's instance in the same pass through their mapped
    /// task group: the caller gives it.
    SameIndex(TaskId),
}

impl std::fmt::Display for MissingInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} ", self.name, self.type_name)?;
        match &self.from {
            MissingFrom::MappedElement => {
                write!(f, "(one element of the list the task is mapped over)")
            }
            MissingFrom::Upstream(producer) => write!(
                f,
                "(the return value of `{producer}`, which no recorded run has stored)"
            ),
            MissingFrom::SameIndex(producer) => write!(
                f,
                "(the return value of one instance of `{producer}`, in the same mapped task group)"
            ),
        }
    }
}

/// Why a task could not be tested.
#[derive(Debug, thiserror::Error)]
pub enum TestTaskError {
    /// No such task.
    #[error(transparent)]
    UnknownTask(#[from] UnknownTask),
    /// A value given for a parameter the task does not have.
    #[error("task `{task_id}` has no input `{name}`; its inputs: {}", names_or_none(.inputs))]
    NoSuchInput {
        /// The task.
        task_id: TaskId,
        /// The name given.
        name: String,
        /// The task's parameters.
        inputs: Vec<String>,
    },
    /// A value given that is not JSON.
    #[error("input `{name}`: invalid JSON `{json}`: {reason}")]
    BadJson {
        /// The parameter.
        name: String,
        /// The text given.
        json: String,
        /// The parser's reason.
        reason: String,
    },
    /// A value given that does not fit the parameter's type.
    #[error("input `{name}`: {reason}")]
    BadValue {
        /// The parameter.
        name: String,
        /// Why it does not fit.
        reason: String,
    },
    /// Inputs that nothing provides.
    #[error("task `{task_id}` needs inputs that are not available:\n{}", missing_lines(.missing))]
    Missing {
        /// The DAG.
        dag_id: DagId,
        /// The task.
        task_id: TaskId,
        /// Each input missing.
        missing: Vec<MissingInput>,
    },
    /// The task failed.
    #[error("task `{task_id}` failed: {reason}")]
    Failed {
        /// The task.
        task_id: TaskId,
        /// Its error.
        reason: String,
    },
    /// The return value cannot be shown as JSON.
    #[error("{0}")]
    Output(String),
    /// The store of recorded runs could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A recorded input kept in the object store could not be read.
    #[error(transparent)]
    Objects(#[from] ObjectError),
}

fn names_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

fn missing_lines(missing: &[MissingInput]) -> String {
    missing
        .iter()
        .map(|m| format!("  {m}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The inputs given for a task, decoded, before the rest is looked up.
#[derive(Clone, Debug)]
pub struct GivenInputs {
    index: TaskIndex,
    given: Vec<Option<XComBlob>>,
}

/// Decodes `given` (parameter name, JSON text) for task `task_id` of `dag`.
pub fn decode_inputs(
    dag: &Dag,
    task_id: &str,
    given: &[(String, String)],
) -> Result<GivenInputs, TestTaskError> {
    let index = find_task(dag, task_id)?;
    let task = &dag[index];
    let params = task.spec().params();
    let mut decoded: Vec<Option<XComBlob>> = vec![None; params.len()];
    for (name, json) in given {
        let Some(position) = params.iter().position(|p| p.name() == name) else {
            return Err(TestTaskError::NoSuchInput {
                task_id: task.id().clone(),
                name: name.clone(),
                inputs: params.iter().map(|p| p.name().to_string()).collect(),
            });
        };
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| TestTaskError::BadJson {
                name: name.clone(),
                json: json.clone(),
                reason: e.to_string(),
            })?;
        let blob = params[position]
            .from_json(value)
            .map_err(|reason| TestTaskError::BadValue {
                name: name.clone(),
                reason,
            })?;
        decoded[position] = Some(blob);
    }
    Ok(GivenInputs {
        index,
        given: decoded,
    })
}

impl GivenInputs {
    /// Whether an input not given comes from an upstream task, so from a recorded run.
    pub fn needs_recorded(&self, dag: &Dag) -> bool {
        dag[self.index]
            .inputs()
            .iter()
            .zip(&self.given)
            .any(|(bound, given)| given.is_none() && matches!(bound, BoundInput::Upstream(_)))
    }
}

/// Where recorded inputs are read: the store's XComs, and the object store their large
/// values are kept in (connected only if one is needed).
pub struct Recorded<'a> {
    /// The store.
    pub xcoms: &'a dyn XComStore,
    /// The object store.
    pub objects: ObjectStoreConfig,
}

/// Where one input came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputSource {
    /// The caller gave it.
    Given,
    /// A literal of the DAG definition.
    Literal,
    /// The return value of `producer` in the latest run that stored it.
    Recorded {
        /// The upstream task.
        producer: TaskId,
        /// The run.
        run_id: RunId,
    },
}

/// Every input of the task, ready to call it.
#[derive(Clone, Debug)]
pub struct TestInputs {
    index: TaskIndex,
    /// Each parameter's name and where its value came from, in parameter order.
    pub sources: Vec<(String, InputSource)>,
    values: Vec<XComBlob>,
}

/// Completes `given` from the DAG's literals, then from the latest recorded run; an input
/// still missing is an error listing every missing one.
pub fn resolve_inputs(
    dag: &Dag,
    given: GivenInputs,
    recorded: Option<Recorded<'_>>,
) -> Result<TestInputs, TestTaskError> {
    let task = &dag[given.index];
    let params = task.spec().params();
    let mut objects: Option<Objects> = None;
    let mut sources = Vec::with_capacity(params.len());
    let mut values = Vec::with_capacity(params.len());
    let mut missing = Vec::new();
    for (index, ((param, bound), value)) in params
        .iter()
        .zip(task.inputs())
        .zip(given.given)
        .enumerate()
    {
        let missing_from = |from| MissingInput {
            name: param.name().to_string(),
            type_name: param.type_name().to_string(),
            from,
        };
        let found = match (value, bound) {
            (Some(blob), _) => Ok((blob, InputSource::Given)),
            (None, BoundInput::Literal(blob)) => Ok((blob.clone(), InputSource::Literal)),
            (None, BoundInput::Mapped(_) | BoundInput::GroupArgument(_)) => {
                Err(missing_from(MissingFrom::MappedElement))
            }
            (None, BoundInput::Sibling(producer)) => Err(missing_from(MissingFrom::SameIndex(
                dag[*producer].id().clone(),
            ))),
            (None, BoundInput::Upstream(producer)) => {
                let producer = dag[*producer].id();
                let latest = match &recorded {
                    Some(recorded) => recorded
                        .xcoms
                        .latest_xcom(dag.id(), producer, RETURN_VALUE)?
                        .map(|(run_id, stored)| -> Result<_, TestTaskError> {
                            let blob = match stored.as_inline() {
                                Some(blob) => blob.clone(),
                                None => {
                                    if objects.is_none() {
                                        objects = Some(recorded.objects.connect()?);
                                    }
                                    crate::objects::load_blocking(objects.as_ref(), &stored)?
                                }
                            };
                            // A parameter taking a field of a multiple-outputs task's
                            // value gets that field, as in a run.
                            let blob = match task.input_projection(index) {
                                Some(field) => field.project(&blob).map_err(|reason| {
                                    TestTaskError::BadValue {
                                        name: param.name().to_string(),
                                        reason: format!(
                                            "cannot read the field `{}` of the value `{producer}` \
                                             recorded in run `{run_id}`: {reason}",
                                            field.name()
                                        ),
                                    }
                                })?,
                                None => blob,
                            };
                            Ok((run_id, blob))
                        })
                        .transpose()?,
                    None => None,
                };
                match latest {
                    Some((run_id, blob)) => Ok((
                        blob,
                        InputSource::Recorded {
                            producer: producer.clone(),
                            run_id,
                        },
                    )),
                    None => Err(missing_from(MissingFrom::Upstream(producer.clone()))),
                }
            }
        };
        match found {
            Ok((blob, source)) => {
                sources.push((param.name().to_string(), source));
                values.push(blob);
            }
            Err(m) => missing.push(m),
        }
    }
    if !missing.is_empty() {
        return Err(TestTaskError::Missing {
            dag_id: dag.id().clone(),
            task_id: task.id().clone(),
            missing,
        });
    }
    Ok(TestInputs {
        index: given.index,
        sources,
        values,
    })
}

/// A value the task pushed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pushed {
    /// Its key.
    pub key: String,
    /// The size of its encoding.
    pub bytes: usize,
    /// Its type.
    pub type_name: String,
}

/// What the task returned and pushed.
#[derive(Clone, Debug, PartialEq)]
pub struct TestOutput {
    /// The return value, as JSON.
    pub output: serde_json::Value,
    /// The values it pushed, in push order.
    pub pushed: Vec<Pushed>,
}

/// Runs the task once with `inputs` at `logical_date`. Nothing is recorded: the store and
/// the objects the task puts stay in memory.
pub async fn run(
    dag: &Dag,
    inputs: TestInputs,
    logical_date: DateTime<Utc>,
) -> Result<TestOutput, TestTaskError> {
    let task = &dag[inputs.index];
    let executor = Executor::new(Arc::new(MemoryStore::new())).object_store(Objects::in_memory());
    let (output, pushed) = executor
        .test_task(dag, inputs.index, inputs.values, logical_date)
        .await
        .map_err(|e| TestTaskError::Failed {
            task_id: task.id().clone(),
            reason: e.to_string(),
        })?;
    let output = task
        .spec()
        .output()
        .to_json(&output)
        .map_err(TestTaskError::Output)?;
    Ok(TestOutput {
        output,
        pushed: pushed
            .into_iter()
            .map(|(key, blob)| Pushed {
                key,
                bytes: blob.bytes().len(),
                type_name: blob.type_name().to_string(),
            })
            .collect(),
    })
}

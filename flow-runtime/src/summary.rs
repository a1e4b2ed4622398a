//! What a run's execution reports: each task instance's final state and tries, and the
//! run's outputs, read back from the store.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::TaskError;
use crate::ids::{DagId, MapIndex, RunId, TaskId, TaskInstanceKey};
use crate::objects::Objects;
use crate::state::{RunState, TaskState};
use crate::store::XComStore;
use crate::xcom::{RETURN_VALUE, XComBlob, XComValue};

/// How one task instance ended.
#[derive(Clone, Debug)]
pub struct TaskSummary {
    /// The task.
    pub task_id: TaskId,
    /// The instance's map index, for an instance of a mapped task.
    pub map_index: Option<u32>,
    /// Its final state.
    pub state: TaskState,
    /// Tries made (0 if it never ran).
    pub tries: u32,
    /// Wall time of its last try in this process, if it ran here.
    pub duration: Option<Duration>,
    /// The error of its last failed try.
    pub error: Option<String>,
}

/// How a DAG run ended.
#[derive(Clone)]
pub struct RunSummary {
    /// The run's id.
    pub run_id: RunId,
    /// Its logical date.
    pub logical_date: DateTime<Utc>,
    /// Its final state.
    pub state: RunState,
    /// Wall time of this execution of the run.
    pub duration: Duration,
    /// Every task instance, in the DAG's task order.
    pub tasks: Vec<TaskSummary>,
    dag_id: DagId,
    xcoms: Arc<dyn XComStore>,
    objects: Option<Objects>,
}

impl std::fmt::Debug for RunSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunSummary")
            .field("run_id", &self.run_id)
            .field("state", &self.state)
            .field("tasks", &self.tasks)
            .finish_non_exhaustive()
    }
}

impl RunSummary {
    /// The summary of a run that ended (or stopped) in `state`, reading outputs from
    /// `xcoms` and `objects`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        dag_id: DagId,
        run_id: RunId,
        logical_date: DateTime<Utc>,
        state: RunState,
        duration: Duration,
        tasks: Vec<TaskSummary>,
        xcoms: Arc<dyn XComStore>,
        objects: Option<Objects>,
    ) -> Self {
        Self {
            run_id,
            logical_date,
            state,
            duration,
            tasks,
            dag_id,
            xcoms,
            objects,
        }
    }

    /// The DAG the run belongs to.
    pub fn dag_id(&self) -> &DagId {
        &self.dag_id
    }

    /// The summary of one task (of its first instance, for a mapped task).
    pub fn task(&self, task_id: &str) -> Option<&TaskSummary> {
        self.tasks.iter().find(|t| t.task_id.as_str() == task_id)
    }

    /// The instances of a mapped task, in map order (empty for an unmapped task).
    pub fn mapped(&self, task_id: &str) -> Vec<&TaskSummary> {
        self.tasks
            .iter()
            .filter(|t| t.task_id.as_str() == task_id && t.map_index.is_some())
            .collect()
    }

    /// The return value of a task, decoded from the store; for a mapped task, the `Vec`
    /// of its successful instances' results in map order (what a downstream task gets).
    pub fn output<T: XComValue>(&self, task_id: &str) -> Result<T, TaskError> {
        let instances = self.mapped(task_id);
        if instances.is_empty() {
            return self.xcom(task_id, RETURN_VALUE);
        }
        let mut outputs = Vec::with_capacity(instances.len());
        let mut element_type = String::new();
        for instance in instances.iter().filter(|t| t.state == TaskState::Success) {
            let key = self.key(task_id, MapIndex::mapped(instance.map_index.unwrap_or(0)));
            let blob = self.read(&key, RETURN_VALUE)?;
            element_type = blob.type_name().to_string();
            outputs.push(blob);
        }
        crate::mapping::collect(&outputs, &element_type)
            .and_then(|list| list.decode())
            .map_err(|e| TaskError::XCom(format!("the results of `{task_id}`: {e}")))
    }

    fn key(&self, task_id: &str, map_index: MapIndex) -> TaskInstanceKey {
        TaskInstanceKey {
            dag_id: self.dag_id.clone(),
            run_id: self.run_id.clone(),
            task_id: TaskId::new(task_id),
            map_index,
        }
    }

    /// An XCom of an instance, fetched from the object store when it is kept there.
    fn read(&self, key: &TaskInstanceKey, name: &str) -> Result<XComBlob, TaskError> {
        let stored = self
            .xcoms
            .get_xcom(key, name)
            .map_err(|e| TaskError::XCom(e.to_string()))?
            .ok_or_else(|| {
                TaskError::XCom(format!(
                    "no XCom `{name}` from `{}` in run `{}`",
                    key.task_id, self.run_id
                ))
            })?;
        crate::objects::load_blocking(self.objects.as_ref(), &stored)
            .map_err(|e| TaskError::XCom(format!("XCom `{name}` of `{}`: {e}", key.task_id)))
    }

    /// An XCom of a task by key, decoded from the store.
    pub fn xcom<T: XComValue>(&self, task_id: &str, key: &str) -> Result<T, TaskError> {
        let blob = self.read(&self.key(task_id, MapIndex::UNMAPPED), key)?;
        blob.decode()
            .map_err(|e| TaskError::XCom(format!("XCom `{key}` of `{task_id}`: {e}")))
    }
}

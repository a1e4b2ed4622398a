//! Mapped tasks in the run loop: expanding a task into one instance per element, the
//! inputs of each instance, and settling downstream once every instance has finished.

use std::sync::Arc;

use chrono::Utc;

use super::{Expansion, Instance, RunLoop};
use crate::dag::{BoundInput, MappedInput};
use crate::error::TaskError;
use crate::ids::{MapIndex, TaskInstanceKey};
use crate::mapping::{self, MapMode};
use crate::state::TaskState;
use crate::store::{Change, TaskInstanceRecord};
use crate::trigger::UpstreamCounts;
use crate::xcom::StoredXCom;

/// The elements of each mapped argument of one mapped task, in parameter order (the
/// results of a mapped upstream task stay where they are stored until an instance runs).
pub(super) type Elements = Arc<Vec<Arc<[StoredXCom]>>>;

impl RunLoop<'_> {
    /// Whether `index` is the task-level instance of a mapped task, which never runs
    /// itself: it expands into instances.
    pub(super) fn is_mapped_task(&self, index: usize) -> bool {
        self.instances[index].parent.is_none() && self.task(index).is_mapped()
    }

    /// Expands the mapped task at `index` now that its upstream tasks are done: one
    /// instance per element (per combination), each queued to run; `skipped` for an empty
    /// list (Airflow's rule); failed if the lists cannot be read or are too long.
    pub(super) fn expand(&mut self, index: usize) {
        let task = self.task(index);
        let elements = match self.compute_elements(index) {
            Ok(elements) => elements,
            Err(error) => return self.refuse(index, error.to_string()),
        };
        let lengths: Vec<usize> = elements.iter().map(|list| list.len()).collect();
        let mode = task.map_mode().unwrap_or_default();
        let count = mapping::expansion_length(&lengths, mode);
        let limit = self.executor.max_map_length;
        if count > limit {
            return self.refuse(
                index,
                format!(
                    "mapped task `{}` would expand to {count} instances, over the limit of \
                     {limit}; raise max_map_length (FLOW_MAX_MAP_LENGTH) or map over fewer elements",
                    task.id()
                ),
            );
        }
        if mode == MapMode::Zip && lengths.windows(2).any(|pair| pair[0] != pair[1]) {
            tracing::warn!(task = %task.id(), ?lengths, "zipped lists differ in length; the extra elements are not used");
        }
        if count == 0 {
            tracing::info!(task = %task.id(), "mapped over an empty list: skipped");
            self.set_state(index, TaskState::Skipped, None);
            self.settle_downstream(index, TaskState::Skipped);
            return;
        }
        tracing::info!(task = %task.id(), instances = count, "expanded");
        let first = self.instances.len();
        let key = self.instances[index].record.key.clone();
        let mut previous = self.unexpanded.remove(&index).unwrap_or_default();
        for surplus in previous.drain(count.min(previous.len())..) {
            tracing::info!(task = %task.id(), map_index = %surplus.key.map_index, "removed: the list is shorter now");
            self.changes.push(Change::RemoveInstance(surplus.key));
        }
        let mut previous = previous.into_iter();
        for map_index in 0..count {
            // A stored instance is already recorded; a new one goes into the batch.
            let (record, stored) = match previous.next() {
                Some(record) => (record, true),
                None => (
                    TaskInstanceRecord::fresh(TaskInstanceKey {
                        map_index: MapIndex::mapped(u32::try_from(map_index).unwrap_or(u32::MAX)),
                        ..key.clone()
                    }),
                    false,
                ),
            };
            let child = self.add_child(index, record);
            if !stored {
                self.record_change(child);
            }
            self.ready.push(child, task.priority());
        }
        self.instances[index].expansion = Some(Box::new(Expansion {
            children: first..first + count,
            finished: 0,
            elements: Some(elements),
        }));
    }

    /// Adds an instance of the mapped task at `parent`.
    pub(super) fn add_child(&mut self, parent: usize, record: TaskInstanceRecord) -> usize {
        self.instances.push(Instance {
            task: self.instances[parent].task,
            parent: Some(parent),
            expansion: None,
            upstream: UpstreamCounts::default(),
            elapsed: None,
            output: None,
            decided: true,
            pending: None,
            stored: crate::store::Expect::of(&record),
            record,
        });
        self.held.push(None);
        self.instances.len() - 1
    }

    /// The elements of the mapped task at `index`, read once.
    fn elements(&mut self, index: usize) -> Result<Elements, TaskError> {
        if let Some(elements) = self.instances[index]
            .expansion
            .as_ref()
            .and_then(|e| e.elements.clone())
        {
            return Ok(elements);
        }
        let elements = self.compute_elements(index)?;
        if let Some(expansion) = &mut self.instances[index].expansion {
            expansion.elements = Some(elements.clone());
        }
        Ok(elements)
    }

    fn compute_elements(&self, index: usize) -> Result<Elements, TaskError> {
        let task = self.task(index);
        let mut lists = Vec::new();
        for (param, bound) in task.spec().params().iter().zip(task.inputs()) {
            let BoundInput::Mapped(source) = bound else {
                continue;
            };
            lists.push(match source {
                MappedInput::Literal(elements) => {
                    elements.iter().cloned().map(StoredXCom::Inline).collect()
                }
                MappedInput::Upstream(producer) if self.dag.tasks()[*producer].is_mapped() => {
                    self.mapped_outputs(*producer, param.name())?.into()
                }
                MappedInput::Upstream(producer) => {
                    // The list is split here, once: fetched if it is kept as an object.
                    let stored = self.output_of(*producer, param.name())?;
                    let list =
                        crate::objects::load_blocking(self.executor.objects.as_ref(), &stored)
                            .map_err(|e| {
                                TaskError::XCom(format!(
                                    "cannot read input `{}`: {e}",
                                    param.name()
                                ))
                            })?;
                    param
                        .split_list(&list)
                        .map_err(|e| {
                            TaskError::XCom(format!(
                                "cannot map `{}` over the output of `{}` (a `{}`): {e}",
                                param.name(),
                                self.dag.tasks()[*producer].id(),
                                list.type_name()
                            ))
                        })?
                        .into_iter()
                        .map(StoredXCom::Inline)
                        .collect()
                }
            });
        }
        Ok(Arc::new(lists))
    }

    /// The results of the mapped task at `index`, in map order: one per instance that
    /// succeeded (none if it was never expanded).
    pub(super) fn mapped_outputs(
        &self,
        index: usize,
        param: &str,
    ) -> Result<Vec<StoredXCom>, TaskError> {
        let Some(expansion) = &self.instances[index].expansion else {
            return Ok(Vec::new());
        };
        expansion
            .children
            .clone()
            .filter(|&child| self.instances[child].record.state == TaskState::Success)
            .map(|child| self.output_of(child, param))
            .collect()
    }

    /// For an instance of a mapped task: the element each mapped argument takes.
    pub(super) fn mapped_arguments(
        &mut self,
        index: usize,
    ) -> Result<Option<Vec<StoredXCom>>, TaskError> {
        let Some(parent) = self.instances[index].parent else {
            return Ok(None);
        };
        let elements = self.elements(parent)?;
        let lengths: Vec<usize> = elements.iter().map(|list| list.len()).collect();
        let mode = self.task(index).map_mode().unwrap_or_default();
        let map_index = self.instances[index]
            .record
            .key
            .map_index
            .get()
            .unwrap_or(0) as usize;
        if map_index >= mapping::expansion_length(&lengths, mode) {
            return Err(TaskError::XCom(format!(
                "map index {map_index} is past the {} elements the mapped arguments have now; \
                 the upstream output changed since the task was expanded",
                mapping::expansion_length(&lengths, mode)
            )));
        }
        let positions = mapping::element_positions(map_index, &lengths, mode);
        Ok(Some(
            elements
                .iter()
                .zip(positions)
                .map(|(list, position)| list[position].clone())
                .collect(),
        ))
    }

    /// One instance of the mapped task at `parent` finished in `state`; once all have,
    /// downstream tasks count each instance as one upstream result (as Airflow does).
    pub(super) fn child_finished(&mut self, parent: usize, state: TaskState) {
        let Some(expansion) = self.instances[parent].expansion.as_mut() else {
            return;
        };
        expansion.finished += 1;
        if expansion.finished < expansion.children.len() {
            return;
        }
        let children = expansion.children.clone();
        let mut counts = UpstreamCounts {
            total: u32::try_from(children.len()).unwrap_or(u32::MAX),
            ..UpstreamCounts::default()
        };
        for child in children {
            counts.record(self.instances[child].record.state);
        }
        tracing::debug!(task = %self.task(parent).id(), last = %state, "every mapped instance finished");
        // The task-level instance is not stored (its instances are); its state sums them
        // up for the run's leaf rule.
        let inst = &mut self.instances[parent];
        inst.record.state = if counts.failed + counts.upstream_failed > 0 {
            TaskState::Failed
        } else if counts.success > 0 {
            TaskState::Success
        } else {
            TaskState::Skipped
        };
        inst.record.end = Some(Utc::now());
        self.settle(parent, counts);
    }
}

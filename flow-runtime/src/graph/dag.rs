//! [`Dag`]: a validated DAG and its [`Task`]s, immutable; built by
//! [`DagBuilder`](super::DagBuilder).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::params::Params;
use crate::ids::{DagId, TaskId, TaskIndex};
use crate::task::{DEFAULT_RETRY_DELAY, TaskOptions, TaskSpec};
use crate::time::schedule::Schedule;
use crate::time::timetable::{Restriction, Timetable};
use crate::trigger::TriggerRule;
use crate::xcom::XComBlob;
use crate::xcom::list::MapMode;

/// Airflow's default `max_active_tasks`.
pub const DEFAULT_MAX_ACTIVE_TASKS: u32 = 16;

/// How many runs of a DAG may be active at once unless it says otherwise (Airflow's
/// `max_active_runs_per_dag`).
pub const DEFAULT_MAX_ACTIVE_RUNS: u32 = 16;

/// A parameter's argument, resolved.
#[derive(Clone, Debug)]
pub enum BoundInput {
    /// The return value of the task at this index.
    Upstream(TaskIndex),
    /// A literal from the DAG definition.
    Literal(XComBlob),
    /// A list the task is mapped over.
    Mapped(MappedInput),
    /// The element of this list of its mapped task group (the instance's own).
    GroupArgument(usize),
    /// The return value of the task at this index in the same mapped task group: its
    /// instance with the same map index.
    Sibling(TaskIndex),
}

/// The list a mapped parameter takes its elements from.
#[derive(Clone, Debug)]
pub enum MappedInput {
    /// The output (a `Vec`) of the task at this index, or its results if it is mapped.
    Upstream(TaskIndex),
    /// Elements from the DAG definition.
    Literal(std::sync::Arc<[XComBlob]>),
}

/// How a mapped task group is expanded: every task in it runs once per element (per
/// combination of elements) of these lists.
#[derive(Clone, Debug)]
pub struct GroupMapping {
    pub(crate) sources: Vec<MappedInput>,
    /// Per list, how its value splits into elements.
    pub(crate) splitters: Vec<crate::task::SplitListFn>,
    pub(crate) mode: MapMode,
    /// Its tasks, in declaration order.
    pub(crate) members: Vec<TaskIndex>,
}

impl GroupMapping {
    /// The lists, one per mapped argument.
    pub fn sources(&self) -> &[MappedInput] {
        &self.sources
    }

    /// How they combine.
    pub fn mode(&self) -> MapMode {
        self.mode
    }

    /// Splits the value of list `position` into its encoded elements.
    pub fn split(
        &self,
        position: usize,
        list: &XComBlob,
    ) -> Result<Vec<XComBlob>, crate::xcom::codec::CodecError> {
        match self.splitters.get(position) {
            Some(split) => split(list),
            None => Ok(Vec::new()),
        }
    }

    /// The tasks of the group (and of groups inside it), in declaration order.
    pub fn members(&self) -> &[TaskIndex] {
        &self.members
    }

    /// The tasks whose outputs are lists (each of them is upstream of every member).
    pub fn producers(&self) -> impl Iterator<Item = TaskIndex> + '_ {
        self.sources.iter().filter_map(|source| match source {
            MappedInput::Upstream(producer) => Some(*producer),
            MappedInput::Literal(_) => None,
        })
    }
}

/// One task of a built DAG.
#[derive(Clone, Debug)]
pub struct Task {
    id: TaskId,
    spec: TaskSpec,
    /// Its options after `default_args`; the accessors below say what an unset one means.
    options: TaskOptions,
    /// How its mapped arguments combine, if it is mapped.
    map_mode: Option<MapMode>,
    inputs: Vec<BoundInput>,
    upstream: Vec<TaskIndex>,
    downstream: Vec<TaskIndex>,
    /// The innermost task group it belongs to, an index into `Dag::groups`.
    pub(super) group: Option<usize>,
    /// The mapped task group it runs in, if any (an index into `Dag::groups`).
    pub(super) map_group: Option<usize>,
    /// That group's id, for the accessor.
    pub(super) group_id: Option<std::sync::Arc<str>>,
    /// Per parameter, the field of the producer's output it takes (multiple outputs).
    pub(super) input_fields: Vec<Option<crate::xcom::field::Field>>,
}

impl Task {
    /// The field of its producer's output that parameter `index` takes, when the producer
    /// is a multiple-outputs task and the argument one of its fields (`split.train`).
    pub fn input_field(&self, index: usize) -> Option<&'static str> {
        self.input_projection(index).map(|field| field.name())
    }

    /// How parameter `index` reads its field out of the producer's value, if it takes one.
    pub(crate) fn input_projection(&self, index: usize) -> Option<crate::xcom::field::Field> {
        self.input_fields.get(index).copied().flatten()
    }

    /// The id of the innermost task group the task belongs to (`outer.inner`), if any.
    pub fn group_id(&self) -> Option<&str> {
        self.group_id.as_deref()
    }

    /// The innermost task group the task belongs to, an index into [`Dag::groups`].
    pub fn group(&self) -> Option<usize> {
        self.group
    }

    /// The pool a try takes slots of.
    pub fn pool(&self) -> &str {
        self.options
            .pool
            .as_deref()
            .unwrap_or(crate::pools::DEFAULT_POOL)
    }

    /// Slots of the pool a try takes.
    pub fn pool_slots(&self) -> u32 {
        self.options.pool_slots.unwrap_or(1)
    }

    /// The task's own priority weight; [`Plan::priority`](crate::plan::Plan::priority) adds
    /// the weights downstream of it.
    pub fn priority_weight(&self) -> i32 {
        self.options.priority_weight.unwrap_or(1)
    }

    /// Who is mailed when the task fails or is retried, after `default_args`.
    pub fn email(&self) -> &[String] {
        self.options.email.as_deref().unwrap_or(&[])
    }

    /// Whether reaching `state` mails [`Task::email`]: `failed` unless
    /// `email_on_failure = false`, `up_for_retry` unless `email_on_retry = false`.
    pub fn emails_on(&self, state: crate::state::TaskState) -> bool {
        use crate::state::TaskState;
        !self.email().is_empty()
            && match state {
                TaskState::Failed => self.options.email_on_failure.unwrap_or(true),
                TaskState::UpForRetry => self.options.email_on_retry.unwrap_or(true),
                _ => false,
            }
    }

    /// When the task runs, given its upstream tasks' states (default `all_success`; a
    /// teardown's is always `all_done_setup_success`).
    pub fn trigger_rule(&self) -> TriggerRule {
        if self.role().is_teardown() {
            return TriggerRule::AllDoneSetupSuccess;
        }
        self.options.trigger_rule.unwrap_or_default()
    }

    /// Whether the task sets up or tears down a resource, or is ordinary work.
    pub fn role(&self) -> crate::task::TaskRole {
        self.spec.role()
    }

    /// Whether the task's state counts toward its run's state: every task but a teardown
    /// without `on_failure_fail_dagrun` (as in Airflow).
    pub fn counts_toward_run_state(&self) -> bool {
        !matches!(
            self.role(),
            crate::task::TaskRole::Teardown {
                on_failure_fail_dagrun: false
            }
        )
    }

    /// Whether an instance waits for the same instance of the run before to have
    /// succeeded or been skipped (`depends_on_past`, also set by `wait_for_downstream`).
    pub fn depends_on_past(&self) -> bool {
        self.options.depends_on_past.unwrap_or(false) || self.wait_for_downstream()
    }

    /// Whether an instance also waits for the run before's instances of the direct
    /// downstream tasks (`wait_for_downstream`).
    pub fn wait_for_downstream(&self) -> bool {
        self.options.wait_for_downstream.unwrap_or(false)
    }

    /// How long one try may run, if limited.
    pub fn execution_timeout(&self) -> Option<Duration> {
        self.options.execution_timeout
    }

    /// The pause before retry number `retry` (1 for the first retry), as Airflow
    /// computes it: `retry_delay`, or with exponential backoff
    /// `retry_delay * 2^(retry-1)` plus a jitter of up to as much again derived from
    /// `seed` (stable for one task instance and try), capped by `max_retry_delay`.
    pub fn retry_delay_for(&self, retry: u32, seed: u64) -> Duration {
        if !self.options.retry_exponential_backoff.unwrap_or(false) {
            return self.retry_delay();
        }
        let base_ms = u64::try_from(self.retry_delay().as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let min_ms = base_ms.saturating_mul(1_u64 << retry.saturating_sub(1).min(62));
        let delay = Duration::from_millis(min_ms.saturating_add(seed % min_ms));
        self.options
            .max_retry_delay
            .map_or(delay, |cap| delay.min(cap))
    }

    /// The task's id within its DAG.
    pub fn id(&self) -> &TaskId {
        &self.id
    }
    /// The task's definition.
    pub fn spec(&self) -> &TaskSpec {
        &self.spec
    }
    /// Retries, after `default_args`.
    pub fn retries(&self) -> u32 {
        self.options.retries.unwrap_or(0)
    }
    /// Pause before a retry, after `default_args` (Airflow's default: 5 minutes).
    pub fn retry_delay(&self) -> Duration {
        self.options.retry_delay.unwrap_or(DEFAULT_RETRY_DELAY)
    }
    /// Owner, after `default_args` (Airflow's default: `airflow`).
    pub fn owner(&self) -> &str {
        self.options.owner.as_deref().unwrap_or("airflow")
    }
    /// Whether the task is mapped: one instance per element of its mapped arguments, or
    /// per pass through its mapped task group.
    pub fn is_mapped(&self) -> bool {
        self.map_mode.is_some() || self.map_group.is_some()
    }
    /// The mapped task group it runs in, an index into [`Dag::groups`] (its expansion is
    /// [`Dag::group_mapping`]).
    pub fn mapped_group(&self) -> Option<usize> {
        self.map_group
    }
    /// How its own mapped arguments combine, if it is mapped by `.expand(..)`.
    pub fn map_mode(&self) -> Option<MapMode> {
        self.map_mode
    }
    /// Arguments, in parameter order.
    pub fn inputs(&self) -> &[BoundInput] {
        &self.inputs
    }
    /// Indices of the tasks that must finish first (data and ordering edges), ascending.
    pub fn upstream(&self) -> &[TaskIndex] {
        &self.upstream
    }
    /// Indices of the tasks that wait for this one, ascending.
    pub fn downstream(&self) -> &[TaskIndex] {
        &self.downstream
    }
}

/// A validated DAG: acyclic, with unique task ids and resolved options. Immutable.
#[derive(Clone, Debug)]
pub struct Dag {
    id: DagId,
    description: Option<String>,
    schedule: Schedule,
    timezone: Tz,
    start_date: Option<DateTime<Utc>>,
    end_date: Option<DateTime<Utc>>,
    catchup: bool,
    max_active_runs: u32,
    max_active_tasks: u32,
    callbacks: crate::task::callbacks::Callbacks,
    dagrun_timeout: Option<Duration>,
    params: Params,
    tags: Vec<String>,
    tasks: Vec<Task>,
    groups: Vec<super::group::GroupInfo>,
    /// Per group, how it is expanded if it is a mapped task group.
    group_mappings: Vec<Option<GroupMapping>>,
    index: HashMap<TaskId, TaskIndex>,
}

impl Dag {
    /// The DAG's id.
    pub fn id(&self) -> &DagId {
        &self.id
    }
    /// The description, if any.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
    /// When the DAG runs on its own.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }
    /// The time zone the schedule is read in (`UTC` unless set).
    pub fn timezone(&self) -> Tz {
        self.timezone
    }
    /// The first logical date, if set.
    pub fn start_date(&self) -> Option<DateTime<Utc>> {
        self.start_date
    }
    /// The last logical date that gets a scheduled run, if set.
    pub fn end_date(&self) -> Option<DateTime<Utc>> {
        self.end_date
    }
    /// Whether missed intervals get runs.
    pub fn catchup(&self) -> bool {
        self.catchup
    }
    /// How many runs may be active at once (16 unless set).
    pub fn max_active_runs(&self) -> u32 {
        self.max_active_runs
    }
    /// How many of this DAG's task instances may run at once.
    pub fn max_active_tasks(&self) -> u32 {
        self.max_active_tasks
    }
    /// The callbacks run when a run ends.
    pub fn callbacks(&self) -> &crate::task::callbacks::Callbacks {
        &self.callbacks
    }
    /// How long a run may take, if limited.
    pub fn dagrun_timeout(&self) -> Option<Duration> {
        self.dagrun_timeout
    }
    /// The declared params, which a run's conf is resolved against.
    pub fn params(&self) -> &Params {
        &self.params
    }
    /// The schedule in the DAG's time zone: which intervals get runs, and when.
    pub fn timetable(&self) -> Timetable {
        Timetable::new(&self.schedule, self.timezone)
    }
    /// The bounds on the DAG's scheduled runs: start date, end date and catchup.
    pub fn restriction(&self) -> Restriction {
        Restriction {
            start_date: self.start_date,
            end_date: self.end_date,
            catchup: self.catchup,
        }
    }
    /// Tags.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }
    /// Tasks, in the order they were added (their indices).
    pub fn tasks(&self) -> &[Task] {
        &self.tasks
    }
    /// The index of the task with this id.
    pub fn task_index(&self, id: &str) -> Option<TaskIndex> {
        self.index.get(id).copied()
    }
    /// The task groups, in the order they were opened (a group before its inner ones).
    pub fn groups(&self) -> &[super::group::GroupInfo] {
        &self.groups
    }
    /// How the group at `index` (of [`Dag::groups`]) is expanded, if it is a mapped task
    /// group.
    pub fn group_mapping(&self, index: usize) -> Option<&GroupMapping> {
        self.group_mappings.get(index).and_then(Option::as_ref)
    }
    /// The mapped task groups, as indices into [`Dag::groups`].
    pub fn mapped_groups(&self) -> impl Iterator<Item = (usize, &GroupMapping)> {
        self.group_mappings
            .iter()
            .enumerate()
            .filter_map(|(index, mapping)| Some((index, mapping.as_ref()?)))
    }
    /// The task with this id.
    pub fn task(&self, id: &str) -> Option<&Task> {
        self.task_index(id).map(|i| &self[i])
    }
    /// The DAG's task indices, in declaration order.
    pub fn task_indices(&self) -> impl DoubleEndedIterator<Item = TaskIndex> + ExactSizeIterator {
        TaskIndex::all(self.tasks.len())
    }
}

impl std::ops::Index<TaskIndex> for Dag {
    type Output = Task;
    /// The task at `index`; an index from another DAG may panic.
    fn index(&self, index: TaskIndex) -> &Task {
        &self.tasks[index.get()]
    }
}

/// A DAG's options as [`DagBuilder::build`](super::DagBuilder::build) checked them, and its
/// tasks, linked; what [`Dag::from_checked`] derives the rest from.
pub(super) struct Checked {
    pub(super) id: DagId,
    pub(super) description: Option<String>,
    pub(super) schedule: Schedule,
    pub(super) timezone: Tz,
    pub(super) start_date: Option<DateTime<Utc>>,
    pub(super) end_date: Option<DateTime<Utc>>,
    pub(super) catchup: bool,
    pub(super) max_active_runs: u32,
    pub(super) max_active_tasks: u32,
    pub(super) callbacks: crate::task::callbacks::Callbacks,
    pub(super) dagrun_timeout: Option<Duration>,
    pub(super) params: Params,
    pub(super) tags: Vec<String>,
    pub(super) tasks: Vec<Task>,
    pub(super) groups: Vec<super::group::GroupInfo>,
    pub(super) group_mappings: Vec<Option<GroupMapping>>,
}

impl Dag {
    /// The DAG of a checked definition, with its index by id. What runs need beyond the
    /// definition (order, priorities, fingerprint) is compiled into a
    /// [`Plan`](crate::plan::Plan).
    pub(super) fn from_checked(checked: Checked) -> Dag {
        let mut tasks = checked.tasks;
        for task in &mut tasks {
            task.group_id = task.group.map(|g| checked.groups[g].id.as_str().into());
        }
        let index = tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.clone(), TaskIndex::new(i)))
            .collect();
        Dag {
            id: checked.id,
            description: checked.description,
            schedule: checked.schedule,
            timezone: checked.timezone,
            start_date: checked.start_date,
            end_date: checked.end_date,
            catchup: checked.catchup,
            max_active_runs: checked.max_active_runs,
            max_active_tasks: checked.max_active_tasks,
            callbacks: checked.callbacks,
            dagrun_timeout: checked.dagrun_timeout,
            params: checked.params,
            tags: checked.tags,
            tasks,
            groups: checked.groups,
            group_mappings: checked.group_mappings,
            index,
        }
    }
}

impl Task {
    /// A task with its resolved options and arguments, not yet linked to others.
    pub(super) fn new(
        id: TaskId,
        spec: TaskSpec,
        options: TaskOptions,
        map_mode: Option<MapMode>,
        inputs: Vec<BoundInput>,
    ) -> Task {
        Task {
            id,
            spec,
            options,
            map_mode,
            inputs,
            upstream: Vec::new(),
            downstream: Vec::new(),
            group: None,
            map_group: None,
            group_id: None,
            input_fields: Vec::new(),
        }
    }

    /// Links `tasks` by `upstream` (per task, the indices it depends on, duplicates
    /// allowed): sorted, deduplicated upstreams and the matching downstreams.
    pub(super) fn link(tasks: &mut [Task], mut upstream: Vec<Vec<usize>>) {
        for (index, ups) in upstream.iter_mut().enumerate() {
            ups.sort_unstable();
            ups.dedup();
            for &u in ups.iter() {
                tasks[u].downstream.push(TaskIndex::new(index));
            }
            tasks[index].upstream = ups.drain(..).map(TaskIndex::new).collect();
        }
    }
}

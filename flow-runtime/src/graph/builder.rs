//! [`DagBuilder`]: DAG options, tasks and the edges between them, checked together by
//! [`DagBuilder::build`] (each concern in [`super::validate`]).

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::dag::{
    BoundInput, Checked, DEFAULT_MAX_ACTIVE_RUNS, DEFAULT_MAX_ACTIVE_TASKS, Dag, GroupMapping,
    MappedInput, Task,
};
use super::error::{DagDefinitionError, DagError};
use super::group::{GroupInfo, GroupMap, GroupRef, Grouped, MappedGroupOutput, TaskGroup};
use super::node::{AnyNode, Input, IntoInput, IntoMapped, MapSource, MappedNode, Node, NodeKind};
use super::outputs::{Field, MultiNode, MultipleOutputs};
use super::params::{DagParam, Params};
use super::validate;
use crate::ids::{DagId, TaskId, TaskIndex};
use crate::task::{TaskOptions, TaskSpec};
use crate::xcom::list::MapMode;

static NEXT_BUILDER: AtomicU32 = AtomicU32::new(1);

/// A task being added to a DAG; returned by [`DagBuilder::add_task`].
pub struct TaskBuilder<'a> {
    dag: &'a mut DagBuilder,
    index: usize,
}

impl TaskBuilder<'_> {
    /// Binds the next parameter (in declaration order) to `value`.
    pub fn input<T>(&mut self, value: impl IntoInput<T>) -> &mut Self {
        let input = value.into_input();
        self.dag.tasks[self.index].inputs.push(input);
        self
    }

    pub(crate) fn push_input(&mut self, input: Input) {
        let draft = &mut self.dag.tasks[self.index];
        if matches!(input, Input::Mapped(_)) {
            draft.map_mode.get_or_insert(MapMode::Product);
        }
        draft.inputs.push(input);
    }

    /// Maps the next parameter (in declaration order) over `values`: the task runs once per
    /// element (Airflow's `.expand()`); finish with [`TaskBuilder::finish_mapped`].
    pub fn expand<T>(&mut self, values: impl IntoMapped<T>) -> &mut Self {
        let draft = &mut self.dag.tasks[self.index];
        draft.inputs.push(Input::Mapped(values.into_mapped()));
        draft.map_mode.get_or_insert(MapMode::Product);
        self
    }

    /// Combines several mapped parameters element by element instead of as a cross
    /// product (Airflow's `zip`): instance `i` takes the `i`-th element of each list, and
    /// there are as many instances as the shortest list has elements.
    pub fn zip(&mut self) -> &mut Self {
        self.dag.tasks[self.index].map_mode = Some(MapMode::Zip);
        self
    }

    /// The typed handle of a mapped task: downstream, the `Vec` of its instances'
    /// results in map order.
    pub fn finish_mapped<T>(&mut self) -> MappedNode<T> {
        self.dag.tasks[self.index]
            .map_mode
            .get_or_insert(MapMode::Product);
        MappedNode::new(self.dag.node(self.index))
    }

    /// Gives this node an explicit task id (prefixed by its task group's id, as any task
    /// id in a group is); using an id twice is an error at build time.
    pub fn task_id(&mut self, id: impl Into<TaskId>) -> &mut Self {
        let group = self.dag.tasks[self.index].group;
        let id = self.dag.child_id(group, id.into().as_str());
        let draft = &mut self.dag.tasks[self.index];
        draft.id = TaskId::new(id);
        draft.explicit_id = true;
        self
    }

    /// The typed handle for this node.
    pub fn finish<T>(&self) -> Node<T> {
        Node {
            node: self.dag.node(self.index),
            field: None,
            _output: PhantomData,
        }
    }

    /// The typed handle of a `#[task(multiple_outputs)]`: the whole output, and a `Node`
    /// per field of `T`.
    pub fn finish_multi<T: MultipleOutputs>(&self) -> MultiNode<T> {
        MultiNode::new(self.finish())
    }
}

struct TaskDraft {
    id: TaskId,
    explicit_id: bool,
    spec: TaskSpec,
    inputs: Vec<Input>,
    /// Set once the task is mapped.
    map_mode: Option<MapMode>,
    /// The innermost task group it was added in.
    group: Option<usize>,
}

/// A task group as declared: its ids, its enclosing group and its `default_args` merged
/// with the enclosing group's.
struct GroupDraft {
    label: String,
    id: String,
    parent: Option<usize>,
    prefix: bool,
    tooltip: Option<String>,
    defaults: TaskOptions,
    /// Its lists, if it is a mapped task group.
    mapping: Option<GroupMap>,
}

/// Builds a [`Dag`]: DAG options, tasks, and the edges between them.
///
/// Option setters take plain strings and never fail; every problem is collected and
/// reported together by [`DagBuilder::build`].
pub struct DagBuilder {
    serial: u32,
    id: DagId,
    description: Option<String>,
    schedule: Option<String>,
    /// The assets it is scheduled on, if it is.
    assets: Option<Vec<crate::assets::Asset>>,
    timezone: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
    catchup: bool,
    max_active_runs: u32,
    max_active_tasks: u32,
    callbacks: crate::task::callbacks::Callbacks,
    dagrun_timeout: Option<Duration>,
    params: Vec<DagParam>,
    tags: Vec<String>,
    default_args: TaskOptions,
    tasks: Vec<TaskDraft>,
    order_edges: Vec<(AnyNode, AnyNode)>,
    name_uses: HashMap<TaskId, usize>,
    groups: Vec<GroupDraft>,
    /// The groups whose bodies are running, innermost last.
    open_groups: Vec<usize>,
    group_uses: HashMap<String, usize>,
    duplicate_groups: Vec<String>,
}

impl DagBuilder {
    /// A DAG with this id and no schedule (manual runs only).
    pub fn new(id: impl Into<DagId>) -> Self {
        Self {
            serial: NEXT_BUILDER.fetch_add(1, Ordering::Relaxed),
            id: id.into(),
            description: None,
            schedule: None,
            assets: None,
            timezone: None,
            start_date: None,
            end_date: None,
            catchup: false,
            max_active_runs: DEFAULT_MAX_ACTIVE_RUNS,
            max_active_tasks: DEFAULT_MAX_ACTIVE_TASKS,
            callbacks: crate::task::callbacks::Callbacks::default(),
            dagrun_timeout: None,
            params: Vec::new(),
            tags: Vec::new(),
            default_args: TaskOptions::default(),
            tasks: Vec::new(),
            order_edges: Vec::new(),
            name_uses: HashMap::new(),
            groups: Vec::new(),
            open_groups: Vec::new(),
            group_uses: HashMap::new(),
            duplicate_groups: Vec::new(),
        }
    }

    /// A human description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// The schedule: a cron expression or preset such as `@daily` (see [`Schedule`](crate::Schedule)).
    pub fn schedule(mut self, schedule: impl Into<String>) -> Self {
        self.schedule = Some(schedule.into());
        self
    }

    /// Schedules the DAG on assets (Airflow's `schedule=[Asset(..), ..]`): it gets a run
    /// once every one of them was updated (a task naming it among its outlets succeeded)
    /// since its last asset-triggered run. Not together with [`DagBuilder::schedule`].
    pub fn schedule_on(mut self, assets: impl IntoIterator<Item = crate::assets::Asset>) -> Self {
        self.assets = Some(assets.into_iter().collect());
        self
    }

    /// The time zone the schedule is read in: an IANA name such as `Europe/Amsterdam`
    /// (default `UTC`). A day without a time in `start_date` or `end_date` is midnight in
    /// it.
    pub fn timezone(mut self, name: impl Into<String>) -> Self {
        self.timezone = Some(name.into());
        self
    }

    /// The first logical date: a day (`2025-01-01`, midnight in the DAG's time zone) or
    /// an RFC 3339 time (`2025-01-01T02:00:00Z`).
    pub fn start_date(mut self, date: impl Into<String>) -> Self {
        self.start_date = Some(date.into());
        self
    }

    /// The last logical date that gets a scheduled run, written like `start_date`; it may
    /// not be before `start_date`.
    pub fn end_date(mut self, date: impl Into<String>) -> Self {
        self.end_date = Some(date.into());
        self
    }

    /// How many runs of the DAG may be active at once (Airflow's default: 16); at least 1.
    pub fn max_active_runs(mut self, runs: u32) -> Self {
        self.max_active_runs = runs;
        self
    }

    /// Runs `f` when a run of this DAG succeeds.
    pub fn on_success(
        mut self,
        f: impl Fn(&crate::task::callbacks::CallbackEvent) + Send + Sync + 'static,
    ) -> Self {
        self.callbacks.on_success.push(std::sync::Arc::new(f));
        self
    }

    /// Runs `f` when a run of this DAG fails.
    pub fn on_failure(
        mut self,
        f: impl Fn(&crate::task::callbacks::CallbackEvent) + Send + Sync + 'static,
    ) -> Self {
        self.callbacks.on_failure.push(std::sync::Arc::new(f));
        self
    }

    /// How many of this DAG's task instances may run at once, across its runs (Airflow's
    /// default: 16).
    pub fn max_active_tasks(mut self, tasks: u32) -> Self {
        self.max_active_tasks = tasks;
        self
    }

    /// How long a run may take before it fails, unfinished tasks and all; no limit by
    /// default.
    pub fn dagrun_timeout(mut self, timeout: Duration) -> Self {
        self.dagrun_timeout = Some(timeout);
        self
    }

    /// Declares a param: a typed value a run's `conf` may set, such as
    /// `DagParam::new::<f64>("threshold").default(0.8)` (see [`crate::params`]). Each
    /// param needs its own name.
    pub fn param(mut self, param: impl Into<DagParam>) -> Self {
        self.params.push(param.into());
        self
    }

    /// Whether missed intervals since `start_date` each get a run.
    pub fn catchup(mut self, catchup: bool) -> Self {
        self.catchup = catchup;
        self
    }

    /// Tags, for filtering.
    pub fn tags<S: Into<String>>(mut self, tags: impl IntoIterator<Item = S>) -> Self {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }

    /// Options every task inherits unless it sets them itself.
    pub fn default_args(mut self, defaults: TaskOptions) -> Self {
        self.default_args = defaults;
        self
    }

    /// Adds a task. Its id is the spec's name, prefixed by the ids of the task groups it
    /// is added in (`prep.train`); an id used again gets Airflow's suffix (`train`,
    /// `train__1`, `train__2`).
    pub fn add_task(&mut self, spec: TaskSpec) -> TaskBuilder<'_> {
        let group = self.open_groups.last().copied();
        let base = TaskId::new(self.child_id(group, spec.name().as_str()));
        let uses = self.name_uses.entry(base.clone()).or_insert(0);
        let id = match *uses {
            0 => base,
            n => TaskId::new(format!("{base}__{n}")),
        };
        *uses += 1;
        self.tasks.push(TaskDraft {
            id,
            explicit_id: false,
            inputs: Vec::with_capacity(spec.params().len()),
            spec,
            map_mode: None,
            group,
        });
        let index = self.tasks.len() - 1;
        TaskBuilder { dag: self, index }
    }

    /// Runs `body` inside a task group (Airflow's `with TaskGroup(..)`): the tasks and
    /// groups it adds get the group's id as a prefix and inherit its `default_args`.
    /// Returns the group's handle, for ordering it as a whole, and what `body` returned.
    ///
    /// ```
    /// use flow_runtime::prelude::*;
    /// use flow_runtime::graph::TaskGroup;
    ///
    /// #[task]
    /// fn step() {}
    ///
    /// let mut dag = DagBuilder::new("nested");
    /// let start = step::node(&mut dag);
    /// let outer = dag.group(TaskGroup::new("outer"), |dag| {
    ///     let first = step::node(dag);
    ///     let inner = dag.group(TaskGroup::new("inner"), |dag| step::node(dag));
    ///     dag.set_downstream(&[first.any()], &[inner.group.any()]);
    /// });
    /// dag.set_downstream(&[start.any()], &[outer.group.any()]); // start >> outer's roots
    /// let dag = dag.build().unwrap();
    /// let ids: Vec<&str> = dag.tasks().iter().map(|t| t.id().as_str()).collect();
    /// assert_eq!(ids, ["step", "outer.step", "outer.inner.step"]);
    /// assert_eq!(dag.task("outer.step").unwrap().upstream(), [flow_runtime::TaskIndex::new(0)]);
    /// assert_eq!(dag.groups()[1].id(), "outer.inner");
    /// ```
    pub fn group<R>(
        &mut self,
        group: TaskGroup,
        body: impl FnOnce(&mut DagBuilder) -> R,
    ) -> Grouped<R> {
        let index = self.open_group(group);
        let output = body(self);
        self.open_groups.pop();
        Grouped {
            group: self.group_ref(index),
            output,
        }
    }

    /// Runs `body` inside a mapped task group (Airflow's `@task_group` called with
    /// `.expand(..)`): `body` declares the lists with [`GroupMap::expand`], which returns
    /// the handle of one element, and adds the tasks. Every task of the group runs once
    /// per element (per combination), and within one map index its tasks pass values to
    /// each other as usual: instance `i` of a task waits for instance `i` of its upstream
    /// tasks in the group only. Downstream of the group, a task's output is the list of
    /// its instances' results (`Node<T>` returned by `body` becomes a `MappedNode<T>`). An
    /// empty list skips the whole group.
    ///
    /// ```
    /// use flow_runtime::prelude::*;
    /// use flow_runtime::graph::TaskGroup;
    ///
    /// #[task]
    /// fn fit(rate: f64) -> f64 { rate * 2.0 }
    /// #[task]
    /// fn score(model: f64) -> u32 { (model * 100.0) as u32 }
    /// #[task]
    /// fn best(scores: Vec<u32>) -> u32 { scores.into_iter().max().unwrap_or(0) }
    ///
    /// let mut dag = DagBuilder::new("sweep");
    /// let sweep = dag.expand_group(TaskGroup::new("train"), |dag, map| {
    ///     let rate = map.expand(vec![0.1, 0.2, 0.3]);   // one pass per rate
    ///     let model = fit::node(dag, rate);
    ///     score::node(dag, model)                       // instance i takes fit's instance i
    /// });
    /// best::node(&mut dag, sweep.output);                // all three scores, in map order
    /// let dag = dag.build().unwrap();
    /// assert!(dag.task("train.score").unwrap().is_mapped());
    /// ```
    pub fn expand_group<R: MappedGroupOutput>(
        &mut self,
        group: TaskGroup,
        body: impl FnOnce(&mut DagBuilder, &mut GroupMap) -> R,
    ) -> Grouped<R::Mapped> {
        let index = self.open_group(group);
        let mut map = GroupMap::new(self.serial, index);
        let output = body(self, &mut map);
        self.open_groups.pop();
        self.groups[index].mapping = Some(map);
        Grouped {
            group: self.group_ref(index),
            output: output.mapped(),
        }
    }

    /// Declares a group inside the innermost open one and opens it; returns its index.
    fn open_group(&mut self, group: TaskGroup) -> usize {
        let parent = self.open_groups.last().copied();
        let mut label = group.id;
        let base = self.child_id(parent, &label);
        let uses = self.group_uses.entry(base.clone()).or_insert(0);
        let id = match *uses {
            0 => base,
            n if group.add_suffix_on_collision => {
                label = format!("{label}__{n}");
                format!("{base}__{n}")
            }
            _ => {
                self.duplicate_groups.push(base.clone());
                base
            }
        };
        *uses += 1;
        if id != self.child_id(parent, &label) {
            // A suffixed id may itself be taken (`prep__1` declared by hand): count it too.
            *self.group_uses.entry(id.clone()).or_insert(0) += 1;
        }
        let defaults = match parent {
            Some(parent) => group.default_args.or(&self.groups[parent].defaults),
            None => group.default_args,
        };
        self.groups.push(GroupDraft {
            label,
            id,
            parent,
            prefix: group.prefix_group_id,
            tooltip: group.tooltip,
            defaults,
            mapping: None,
        });
        let index = self.groups.len() - 1;
        self.open_groups.push(index);
        index
    }

    fn group_ref(&self, index: usize) -> GroupRef {
        GroupRef {
            node: AnyNode {
                builder: self.serial,
                index: u32::try_from(index).unwrap_or(u32::MAX),
                kind: NodeKind::Group,
            },
        }
    }

    /// The id of `label` added in `group`: prefixed by the group's id if the group
    /// prefixes (Airflow's `TaskGroup.child_id`).
    fn child_id(&self, group: Option<usize>, label: &str) -> String {
        match group.map(|g| &self.groups[g]) {
            Some(group) if group.prefix => format!("{}.{label}", group.id),
            _ => label.to_string(),
        }
    }

    /// Orders every task of `upstream` before every task of `downstream` (`a >> b`). A
    /// task group stands for its leaves as an upstream and for its roots as a downstream,
    /// as its tasks are linked when this is called (Airflow's `group >> task`).
    pub fn set_downstream(&mut self, upstream: &[AnyNode], downstream: &[AnyNode]) {
        let upstream: Vec<AnyNode> = upstream
            .iter()
            .flat_map(|&u| self.expand(u, true))
            .collect();
        let downstream: Vec<AnyNode> = downstream
            .iter()
            .flat_map(|&d| self.expand(d, false))
            .collect();
        for &u in &upstream {
            for &d in &downstream {
                self.order_edges.push((u, d));
            }
        }
    }

    /// A task as itself; a group of this builder as its leaves (`leaves`) or roots, the
    /// tasks with nothing downstream (upstream) inside the group, counting data and order
    /// edges.
    fn expand(&self, node: AnyNode, leaves: bool) -> Vec<AnyNode> {
        if node.kind != NodeKind::Group
            || node.builder != self.serial
            || node.index() >= self.groups.len()
        {
            return vec![node];
        }
        let inside = |task: usize| {
            let mut group = self.tasks[task].group;
            while let Some(g) = group {
                if g == node.index() {
                    return true;
                }
                group = self.groups[g].parent;
            }
            false
        };
        let members: Vec<bool> = (0..self.tasks.len()).map(inside).collect();
        let member = |n: &AnyNode| {
            n.kind == NodeKind::Task
                && n.builder == self.serial
                && members.get(n.index()).copied() == Some(true)
        };
        // An edge inside the group marks its upstream end as no leaf, its downstream end
        // as no root.
        let mut linked = vec![false; self.tasks.len()];
        let mut mark = |u: AnyNode, d: usize| {
            if member(&u) && members[d] {
                linked[if leaves { u.index() } else { d }] = true;
            }
        };
        for (index, draft) in self.tasks.iter().enumerate() {
            for input in &draft.inputs {
                if let Input::Upstream(u)
                | Input::Field(u, _)
                | Input::Mapped(MapSource::Upstream(u) | MapSource::Field(u, _)) = input
                {
                    mark(*u, index);
                }
            }
        }
        for &(u, d) in &self.order_edges {
            if member(&d) {
                mark(u, d.index());
            }
        }
        (0..self.tasks.len())
            .filter(|&t| members[t] && !linked[t])
            .map(|t| self.node(t))
            .collect()
    }

    /// Orders consecutive groups: `chain(&[&[a], &[b, c], &[d]])` is `a >> [b, c] >> d`.
    pub fn chain(&mut self, groups: &[&[AnyNode]]) {
        for pair in groups.windows(2) {
            self.set_downstream(pair[0], pair[1]);
        }
    }

    fn node(&self, index: usize) -> AnyNode {
        AnyNode {
            builder: self.serial,
            index: u32::try_from(index).unwrap_or(u32::MAX),
            kind: NodeKind::Task,
        }
    }

    fn resolve(
        &self,
        node: AnyNode,
        task: &TaskId,
        errors: &mut Vec<DagDefinitionError>,
    ) -> Option<usize> {
        if node.kind == NodeKind::Unbuilt {
            // Its group's missing argument is the error.
            None
        } else if node.kind == NodeKind::Group {
            errors.push(DagDefinitionError::GroupAsInput {
                task: task.to_string(),
            });
            None
        } else if let NodeKind::Argument { .. } = node.kind {
            errors.push(DagDefinitionError::MappedGroup {
                group: self.group_label(node),
                problem: format!(
                    "gives an element of its lists to `{task}` where a task is expected (in \
                     `>>` or as a list to map over); an element is a value: pass it as an \
                     argument of a task of the group"
                ),
            });
            None
        } else if node.builder == self.serial && node.index() < self.tasks.len() {
            Some(node.index())
        } else {
            errors.push(DagDefinitionError::ForeignNode {
                task: task.to_string(),
                index: node.index(),
            });
            None
        }
    }

    /// The id of the group a group or argument node belongs to, for messages.
    fn group_label(&self, node: AnyNode) -> String {
        match self.groups.get(node.index()) {
            Some(group) if node.builder == self.serial => group.id.clone(),
            _ => format!("#{}", node.index()),
        }
    }

    /// The innermost mapped task group enclosing `group` (itself included).
    fn mapped_ancestor(&self, mut group: Option<usize>) -> Option<usize> {
        while let Some(g) = group {
            if self.groups[g].mapping.is_some() {
                return Some(g);
            }
            group = self.groups[g].parent;
        }
        None
    }

    /// Resolves the lists of every mapped task group; each task whose output is a list
    /// becomes upstream of every task of the group (Airflow links them the same way).
    fn bind_group_mappings(
        &self,
        map_groups: &[Option<usize>],
        upstream: &mut [Vec<usize>],
        errors: &mut Vec<DagDefinitionError>,
    ) -> Vec<Option<GroupMapping>> {
        let mut mappings = Vec::with_capacity(self.groups.len());
        for (index, group) in self.groups.iter().enumerate() {
            let Some(map) = &group.mapping else {
                mappings.push(None);
                continue;
            };
            let mut problem = |problem: String| {
                errors.push(DagDefinitionError::MappedGroup {
                    group: group.id.clone(),
                    problem,
                });
            };
            for param in &map.missing {
                problem(format!(
                    "gives no value to its parameter `{param}`: pass it with \
                     `.partial({param} = ..)` or map over it with `.expand({param} = ..)`"
                ));
            }
            if map.sources.is_empty() {
                problem(
                    "is expanded over no list: map over one with `.expand(name = list)` (in a \
                     `#[dag]` body) or `map.expand(list)` (in `DagBuilder::expand_group`)"
                        .to_string(),
                );
            }
            let members: Vec<TaskIndex> = (0..self.tasks.len())
                .filter(|&t| map_groups[t] == Some(index))
                .map(TaskIndex::new)
                .collect();
            if members.is_empty() && map.missing.is_empty() {
                problem("has no tasks: add tasks to it in its body".to_string());
            }
            if let Some(outer) = self.mapped_ancestor(group.parent) {
                errors.push(DagDefinitionError::NestedMapping {
                    what: format!("task group `{}`", group.id),
                    group: self.groups[outer].id.clone(),
                });
            }
            let mut sources = Vec::with_capacity(map.sources.len());
            for source in &map.sources {
                match source {
                    MapSource::Upstream(node) => {
                        let Some(producer) = self.resolve(*node, &TaskId::new(&group.id), errors)
                        else {
                            continue;
                        };
                        if map_groups[producer] == Some(index) {
                            errors.push(DagDefinitionError::MappedGroup {
                                group: group.id.clone(),
                                problem: format!(
                                    "is expanded over the output of its own task `{}`: map it \
                                     over a list made before the group",
                                    self.tasks[producer].id
                                ),
                            });
                            continue;
                        }
                        for member in &members {
                            upstream[member.get()].push(producer);
                        }
                        sources.push(MappedInput::Upstream(TaskIndex::new(producer)));
                    }
                    MapSource::Literal(blobs) => {
                        sources.push(MappedInput::Literal(blobs.as_slice().into()));
                    }
                    MapSource::Field(_, field) => errors.push(DagDefinitionError::MappedGroup {
                        group: group.id.clone(),
                        problem: format!(
                            "is expanded over the field `{}` of a multiple-outputs task: map \
                             over a task that returns the list itself",
                            field.name()
                        ),
                    }),
                    MapSource::Invalid(reason) => {
                        errors.push(DagDefinitionError::LiteralEncode {
                            task: group.id.clone(),
                            param: "the list to map over".to_string(),
                            reason: reason.clone(),
                        });
                    }
                }
            }
            mappings.push(Some(GroupMapping {
                sources,
                splitters: map.splitters.clone(),
                mode: map.mode,
                members,
            }));
        }
        mappings
    }

    /// Validates everything and produces the DAG, or every problem found.
    pub fn build(self) -> Result<Dag, DagError> {
        let mut errors = Vec::new();
        validate::dag_id(&self.id, &mut errors);
        let schedule = match &self.assets {
            Some(assets) => validate::asset_schedule(assets, self.schedule.is_some(), &mut errors),
            None => validate::schedule(self.schedule.as_deref(), &mut errors),
        };
        let timezone = validate::timezone(self.timezone.as_deref(), &mut errors);
        let (start_date, end_date) = validate::dates(
            self.start_date.as_deref(),
            self.end_date.as_deref(),
            timezone,
            &mut errors,
        );
        validate::limits(self.max_active_runs, self.max_active_tasks, &mut errors);
        validate::params(&self.params, &mut errors);
        validate::task_ids(
            self.tasks
                .iter()
                .map(|draft| (&draft.id, draft.explicit_id)),
            &mut errors,
        );
        validate::group_ids(
            self.groups
                .iter()
                .map(|g| (g.label.as_str(), g.id.as_str(), g.prefix)),
            &self.tasks.iter().map(|t| t.id.as_str()).collect(),
            &self.duplicate_groups,
            &mut errors,
        );

        let mut upstream: Vec<Vec<usize>> = vec![Vec::new(); self.tasks.len()];
        let map_groups: Vec<Option<usize>> = self
            .tasks
            .iter()
            .map(|draft| self.mapped_ancestor(draft.group))
            .collect();
        let group_mappings = self.bind_group_mappings(&map_groups, &mut upstream, &mut errors);
        let mut tasks = Vec::with_capacity(self.tasks.len());
        for (index, draft) in self.tasks.iter().enumerate() {
            let inputs = self.bind_inputs(draft, &map_groups, index, &mut upstream, &mut errors);
            let fields: Vec<Option<Field>> = draft
                .inputs
                .iter()
                .map(|input| match input {
                    Input::Field(_, field) => Some(*field),
                    _ => None,
                })
                .collect();
            let mapped = draft
                .inputs
                .iter()
                .any(|input| matches!(input, Input::Mapped(_)));
            validate::kind(
                &draft.id,
                &draft.spec,
                draft.map_mode.is_some(),
                mapped,
                &mut errors,
            );
            if let (true, Some(group)) = (draft.map_mode.is_some(), map_groups[index]) {
                errors.push(DagDefinitionError::NestedMapping {
                    what: format!("task `{}`", draft.id),
                    group: self.groups[group].id.clone(),
                });
            }
            let options = match draft.group {
                Some(group) => draft
                    .spec
                    .options()
                    .or(&self.groups[group].defaults)
                    .or(&self.default_args),
                None => draft.spec.options().or(&self.default_args),
            };
            validate::task_options(&draft.id, &options, &mut errors);
            validate::outlets(&draft.id, draft.spec.outlet_assets(), &mut errors);
            let map_mode = mapped.then(|| draft.map_mode.unwrap_or_default());
            // A task taking fields reads them out of its producers' values.
            let spec = if fields.iter().any(Option::is_some) {
                draft.spec.clone().with_projections(&fields)
            } else {
                draft.spec.clone()
            };
            let mut task = Task::new(draft.id.clone(), spec, options, map_mode, inputs);
            task.group = draft.group;
            task.map_group = map_groups[index];
            task.input_fields = fields;
            tasks.push(task);
        }
        self.bind_order_edges(&mut upstream, &mut errors);
        Task::link(&mut tasks, upstream);
        validate::cycles(&tasks, &mut errors);
        if !errors.is_empty() {
            return Err(DagError::Invalid {
                dag: self.id,
                errors,
            });
        }
        Ok(Dag::from_checked(Checked {
            id: self.id,
            description: self.description,
            schedule,
            timezone,
            start_date,
            end_date,
            catchup: self.catchup,
            max_active_runs: self.max_active_runs,
            max_active_tasks: self.max_active_tasks,
            callbacks: self.callbacks,
            dagrun_timeout: self.dagrun_timeout,
            params: Params::from_checked(self.params),
            tags: self.tags,
            tasks,
            groups: self
                .groups
                .into_iter()
                .map(|g| GroupInfo {
                    id: g.id,
                    label: g.label,
                    parent: g.parent,
                    tooltip: g.tooltip,
                })
                .collect(),
            group_mappings,
        }))
    }

    /// Resolves a task's arguments; data edges join `upstream`. Unknown nodes, missing
    /// arguments and literals that did not encode are errors.
    fn bind_inputs(
        &self,
        draft: &TaskDraft,
        map_groups: &[Option<usize>],
        index: usize,
        upstream: &mut [Vec<usize>],
        errors: &mut Vec<DagDefinitionError>,
    ) -> Vec<BoundInput> {
        let map_group = map_groups[index];
        // A producer in the same mapped group hands over its instance with the same map
        // index; any other producer its whole output.
        let bound_upstream = |producer: usize| {
            if map_group.is_some() && map_groups[producer] == map_group {
                BoundInput::Sibling(TaskIndex::new(producer))
            } else {
                BoundInput::Upstream(TaskIndex::new(producer))
            }
        };
        let upstream = &mut upstream[index];
        let params = draft.spec.params();
        if draft.inputs.len() < params.len() {
            for param in &params[draft.inputs.len()..] {
                errors.push(DagDefinitionError::MissingArgument {
                    task: draft.id.to_string(),
                    param: param.name().to_string(),
                });
            }
        }
        let mut bound = Vec::with_capacity(draft.inputs.len());
        for (param, input) in params.iter().zip(&draft.inputs) {
            bound.push(match input {
                Input::Upstream(AnyNode {
                    builder,
                    index: group,
                    kind: NodeKind::Argument { position },
                }) if *builder == self.serial => {
                    let group = *group as usize;
                    if map_group != Some(group) {
                        errors.push(DagDefinitionError::GroupArgumentOutside {
                            task: draft.id.to_string(),
                            group: self
                                .groups
                                .get(group)
                                .map_or_else(String::new, |g| g.id.clone()),
                        });
                        continue;
                    }
                    BoundInput::GroupArgument(*position as usize)
                }
                Input::Upstream(node) | Input::Field(node, _) => {
                    match self.resolve(*node, &draft.id, errors) {
                        Some(producer) => {
                            upstream.push(producer);
                            bound_upstream(producer)
                        }
                        None => continue,
                    }
                }
                Input::Literal(blob) => BoundInput::Literal(blob.clone()),
                Input::Mapped(MapSource::Field(_, field)) => {
                    errors.push(DagDefinitionError::MappedField {
                        task: draft.id.to_string(),
                        param: param.name().to_string(),
                        field: field.name().to_string(),
                    });
                    continue;
                }
                Input::Mapped(MapSource::Upstream(node)) => {
                    match self.resolve(*node, &draft.id, errors) {
                        Some(producer) => {
                            upstream.push(producer);
                            BoundInput::Mapped(MappedInput::Upstream(TaskIndex::new(producer)))
                        }
                        None => continue,
                    }
                }
                Input::Mapped(MapSource::Literal(blobs)) => {
                    BoundInput::Mapped(MappedInput::Literal(blobs.as_slice().into()))
                }
                Input::Missing => {
                    errors.push(DagDefinitionError::MissingArgument {
                        task: draft.id.to_string(),
                        param: param.name().to_string(),
                    });
                    continue;
                }
                Input::Invalid(reason) | Input::Mapped(MapSource::Invalid(reason)) => {
                    errors.push(DagDefinitionError::LiteralEncode {
                        task: draft.id.to_string(),
                        param: param.name().to_string(),
                        reason: reason.clone(),
                    });
                    continue;
                }
            });
        }
        bound
    }

    /// Adds the order edges (`a >> b`) to `upstream`; unknown nodes are errors.
    fn bind_order_edges(&self, upstream: &mut [Vec<usize>], errors: &mut Vec<DagDefinitionError>) {
        for &(u, d) in &self.order_edges {
            let target = self
                .tasks
                .get(d.index())
                .map_or_else(|| TaskId::new("?"), |t| t.id.clone());
            if let (Some(u), Some(d)) = (
                self.resolve(u, &target, errors),
                self.resolve(d, &target, errors),
            ) {
                upstream[d].push(u);
            }
        }
    }
}

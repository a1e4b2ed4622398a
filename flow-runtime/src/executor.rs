//! Runs a DAG run: decides which task instances are ready, runs them concurrently on tokio,
//! and records every state change in the store.
//!
//! One coordinating loop owns the run's state. Each turn it applies the batch of changes
//! collected since the last turn in one [`RunStore::apply`] call (a group commit), and only
//! then starts the tasks that became ready, so a task never starts before its inputs and
//! its upstreams' success are durable. Async tasks are polled on the runtime; sync tasks run
//! on tokio's blocking pool. A panic fails its try and nothing else.

use std::any::Any;
use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::context::{RunScope, TaskContext};
use crate::dag::{BoundInput, Dag};
use crate::error::{RunError, TaskError};
use crate::ids::{MapIndex, RunId, TaskId, TaskInstanceKey};
use crate::state::{RunState, TaskState};
use crate::store::{Change, DagRunRecord, MemoryStore, RunType, Store, TaskInstanceRecord, XComStore};
use crate::task::{InputSource, Inputs, TaskFn, TaskResult};
use crate::trigger::{self, Decision, UpstreamCounts};
use crate::xcom::{RETURN_VALUE, XComBlob, XComValue};

/// A state change of one task instance, reported live to an observer.
#[derive(Clone, Debug)]
pub struct TaskEvent {
    /// The task.
    pub task_id: TaskId,
    /// Its new state.
    pub state: TaskState,
    /// The try it concerns.
    pub try_number: u32,
    /// How long the try ran, for finished tries.
    pub duration: Option<Duration>,
    /// The error of a failed try.
    pub error: Option<String>,
}

type Observer = Arc<dyn Fn(&TaskEvent) + Send + Sync>;

/// Runs DAG runs against a store, with bounded parallelism.
#[derive(Clone)]
pub struct Executor {
    store: Arc<dyn Store>,
    parallelism: usize,
    observer: Option<Observer>,
}

/// How one task instance ended.
#[derive(Clone, Debug)]
pub struct TaskSummary {
    /// The task.
    pub task_id: TaskId,
    /// Its final state.
    pub state: TaskState,
    /// Tries made (0 if it never ran).
    pub tries: u32,
    /// Wall time of its last try.
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
    /// Wall time of the run.
    pub duration: Duration,
    /// Every task instance, in the DAG's task order.
    pub tasks: Vec<TaskSummary>,
    dag_id: crate::ids::DagId,
    xcoms: Arc<dyn XComStore>,
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
    /// The summary of one task.
    pub fn task(&self, task_id: &str) -> Option<&TaskSummary> {
        self.tasks.iter().find(|t| t.task_id.as_str() == task_id)
    }

    /// The return value of a task, decoded from the store.
    pub fn output<T: XComValue>(&self, task_id: &str) -> Result<T, TaskError> {
        self.xcom(task_id, RETURN_VALUE)
    }

    /// An XCom of a task by key, decoded from the store.
    pub fn xcom<T: XComValue>(&self, task_id: &str, key: &str) -> Result<T, TaskError> {
        let ti = TaskInstanceKey {
            dag_id: self.dag_id.clone(),
            run_id: self.run_id.clone(),
            task_id: TaskId::new(task_id),
            map_index: MapIndex::UNMAPPED,
        };
        let blob = self
            .xcoms
            .get_xcom(&ti, key)
            .map_err(|e| TaskError::XCom(e.to_string()))?
            .ok_or_else(|| TaskError::XCom(format!("no XCom `{key}` from `{task_id}` in run `{}`", self.run_id)))?;
        blob.decode().map_err(|e| TaskError::XCom(format!("XCom `{key}` of `{task_id}`: {e}")))
    }
}

impl Executor {
    /// An executor over `store`, running as many tasks at once as there are cores.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            parallelism: std::thread::available_parallelism().map_or(2, usize::from),
            observer: None,
        }
    }

    /// The most task instances running at once (at least 1; 1 runs tasks one by one, in
    /// topological order, which helps debugging).
    pub fn parallelism(mut self, parallelism: usize) -> Self {
        self.parallelism = parallelism.max(1);
        self
    }

    /// Calls `observer` on every task state change, from the coordinating loop.
    pub fn on_event(mut self, observer: impl Fn(&TaskEvent) + Send + Sync + 'static) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// The store this executor records into.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Creates a manual run of `dag` for `logical_date` and runs it to the end.
    pub async fn run(&self, dag: &Dag, logical_date: DateTime<Utc>) -> Result<RunSummary, RunError> {
        let run_id = RunId::new(format!("{}__{}", RunType::Manual.as_str(), logical_date.to_rfc3339()));
        let now = Utc::now();
        self.store.create_run(&DagRunRecord {
            dag_id: dag.id().clone(),
            run_id: run_id.clone(),
            run_type: RunType::Manual,
            logical_date,
            state: RunState::Running,
            start: Some(now),
            end: None,
        })?;
        RunLoop::new(self, dag, run_id, logical_date).run(now).await
    }

    /// Runs one task by itself, outside any recorded run (`tasks test`): `inputs` holds one
    /// encoded value per parameter. Returns the return value and the values it pushed.
    pub async fn test_task(
        &self,
        dag: &Dag,
        task_index: usize,
        inputs: Vec<XComBlob>,
        logical_date: DateTime<Utc>,
    ) -> Result<(XComBlob, Vec<(String, XComBlob)>), TaskError> {
        let task = &dag.tasks()[task_index];
        let mut args = Inputs::with_capacity(inputs.len());
        for (param, blob) in task.spec().params().iter().zip(inputs) {
            args.push(param.name().to_string().into(), InputSource::CommandLine, blob);
        }
        let scope = Arc::new(RunScope {
            dag_id: dag.id().clone(),
            run_id: RunId::new(format!("test__{}", logical_date.to_rfc3339())),
            logical_date,
            xcoms: self.store.clone() as Arc<dyn XComStore>,
        });
        let ctx = TaskContext::new(scope, task.id().clone(), MapIndex::UNMAPPED, 1);
        let output = call(task.spec().function().clone(), ctx.clone(), args).await?;
        Ok((output, ctx.take_pushed()))
    }
}

impl Dag {
    /// Runs the DAG once in process with an in-memory store and the current time as
    /// logical date, like Airflow's `dag.test()`; blocks until the run ends.
    pub fn test(&self) -> Result<RunSummary, RunError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| RunError::Runtime(e.to_string()))?;
        let executor = Executor::new(Arc::new(MemoryStore::new()));
        runtime.block_on(executor.run(self, Utc::now()))
    }
}

/// Calls a task function, turning a panic into a failed try.
async fn call(function: TaskFn, ctx: TaskContext, inputs: Inputs) -> TaskResult {
    match function {
        TaskFn::Async(f) => match CatchUnwind(f(ctx, inputs)).await {
            Ok(result) => result,
            Err(payload) => Err(TaskError::Panicked(panic_message(payload.as_ref()))),
        },
        TaskFn::Sync(f) => {
            let span = tracing::Span::current();
            match tokio::task::spawn_blocking(move || span.in_scope(|| f(&ctx, inputs))).await {
                Ok(result) => result,
                Err(e) if e.is_panic() => Err(TaskError::Panicked(panic_message(e.into_panic().as_ref()))),
                Err(e) => Err(TaskError::Failed(format!("the task was cancelled: {e}"))),
            }
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_string()
    }
}

/// Polls a future, catching a panic as an error.
struct CatchUnwind<F: ?Sized>(Pin<Box<F>>);

impl<F: Future + ?Sized> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

/// What the coordinating loop hears back.
enum Event {
    Finished {
        index: usize,
        result: TaskResult,
        pushed: Vec<(String, XComBlob)>,
        elapsed: Duration,
        end: DateTime<Utc>,
    },
    RetryDue(usize),
}

/// Per-instance facts the loop keeps.
struct Instance {
    record: TaskInstanceRecord,
    upstream: UpstreamCounts,
    elapsed: Option<Duration>,
}

struct RunLoop<'a> {
    executor: &'a Executor,
    dag: &'a Dag,
    scope: Arc<RunScope>,
    instances: Vec<Instance>,
    ready: VecDeque<usize>,
    changes: Vec<Change>,
    running: usize,
    retrying: usize,
    join: JoinSet<Event>,
}

impl<'a> RunLoop<'a> {
    fn new(executor: &'a Executor, dag: &'a Dag, run_id: RunId, logical_date: DateTime<Utc>) -> Self {
        let instances = dag
            .tasks()
            .iter()
            .map(|task| Instance {
                record: TaskInstanceRecord {
                    key: TaskInstanceKey {
                        dag_id: dag.id().clone(),
                        run_id: run_id.clone(),
                        task_id: task.id().clone(),
                        map_index: MapIndex::UNMAPPED,
                    },
                    state: TaskState::None,
                    try_number: 0,
                    start: None,
                    end: None,
                    error: None,
                },
                upstream: UpstreamCounts {
                    total: u32::try_from(task.upstream().len()).unwrap_or(u32::MAX),
                    ..UpstreamCounts::default()
                },
                elapsed: None,
            })
            .collect();
        let scope = Arc::new(RunScope {
            dag_id: dag.id().clone(),
            run_id,
            logical_date,
            xcoms: executor.store.clone() as Arc<dyn XComStore>,
        });
        Self {
            executor,
            dag,
            scope,
            instances,
            ready: VecDeque::new(),
            changes: Vec::new(),
            running: 0,
            retrying: 0,
            join: JoinSet::new(),
        }
    }

    async fn run(mut self, started: DateTime<Utc>) -> Result<RunSummary, RunError> {
        let clock = Instant::now();
        for &i in self.dag.topological_order() {
            if self.dag.tasks()[i].upstream().is_empty() {
                self.ready.push_back(i);
            }
        }
        loop {
            let mut launches = Vec::new();
            while self.running < self.executor.parallelism {
                let Some(index) = self.ready.pop_front() else { break };
                launches.push(self.prepare(index));
                self.running += 1;
            }
            self.executor.store.apply(&self.changes)?;
            self.changes.clear();
            // Inputs are read only now, after the batch holding their producers' XComs is durable.
            for (index, ctx) in launches {
                let inputs = self.gather_inputs(index);
                self.spawn(index, ctx, inputs);
            }
            if self.running == 0 && self.retrying == 0 {
                break;
            }
            let Some(first) = self.join.join_next().await else { break };
            self.handle(first);
            while let Some(next) = self.join.try_join_next() {
                self.handle(next);
            }
        }
        self.finish(started, clock.elapsed())
    }

    /// Marks an instance queued then running and makes its context.
    fn prepare(&mut self, index: usize) -> (usize, TaskContext) {
        self.set_state(index, TaskState::Queued, None);
        let inst = &mut self.instances[index];
        inst.record.try_number += 1;
        inst.record.start = Some(Utc::now());
        inst.record.end = None;
        self.set_state(index, TaskState::Running, None);
        let task = &self.dag.tasks()[index];
        let ctx = TaskContext::new(
            self.scope.clone(),
            task.id().clone(),
            MapIndex::UNMAPPED,
            self.instances[index].record.try_number,
        );
        (index, ctx)
    }

    fn gather_inputs(&self, index: usize) -> Result<Inputs, TaskError> {
        let task = &self.dag.tasks()[index];
        let mut inputs = Inputs::with_capacity(task.inputs().len());
        for (param, bound) in task.spec().params().iter().zip(task.inputs()) {
            let name = param.name().to_string().into();
            match bound {
                BoundInput::Literal(blob) => inputs.push(name, InputSource::Literal, blob.clone()),
                BoundInput::Upstream(producer) => {
                    let key = &self.instances[*producer].record.key;
                    let blob = self
                        .executor
                        .store
                        .get_xcom(key, RETURN_VALUE)
                        .map_err(|e| TaskError::XCom(format!("cannot read input `{}`: {e}", param.name())))?
                        .ok_or_else(|| TaskError::MissingInput {
                            param: param.name().to_string(),
                            hint: format!("`{}` stored no return value in this run", self.dag.producer_name(bound)),
                        })?;
                    inputs.push(name, InputSource::Upstream(key.task_id.clone()), blob);
                }
            }
        }
        Ok(inputs)
    }

    fn spawn(&mut self, index: usize, ctx: TaskContext, inputs: Result<Inputs, TaskError>) {
        let task = &self.dag.tasks()[index];
        let function = task.spec().function().clone();
        let span = tracing::info_span!(
            "task",
            dag = %self.scope.dag_id,
            task = %task.id(),
            run = %self.scope.run_id,
            try_number = ctx.try_number(),
        );
        self.join.spawn(
            async move {
                let clock = Instant::now();
                let result = match inputs {
                    Ok(inputs) => call(function, ctx.clone(), inputs).await,
                    Err(e) => Err(e),
                };
                let pushed = if result.is_ok() { ctx.take_pushed() } else { Vec::new() };
                Event::Finished {
                    index,
                    result,
                    pushed,
                    elapsed: clock.elapsed(),
                    end: Utc::now(),
                }
            }
            .instrument(span),
        );
    }

    fn handle(&mut self, joined: Result<Event, tokio::task::JoinError>) {
        let event = match joined {
            Ok(event) => event,
            // Task futures catch their own panics, so only a runtime shutdown lands here.
            Err(e) => {
                tracing::error!("a task future was lost: {e}");
                return;
            }
        };
        match event {
            Event::RetryDue(index) => {
                self.retrying -= 1;
                self.ready.push_back(index);
            }
            Event::Finished {
                index,
                result,
                pushed,
                elapsed,
                end,
            } => {
                self.running -= 1;
                let inst = &mut self.instances[index];
                inst.record.end = Some(end);
                inst.elapsed = Some(elapsed);
                match result {
                    Ok(output) => {
                        let key = inst.record.key.clone();
                        self.changes.push(Change::XCom {
                            key: key.clone(),
                            name: RETURN_VALUE.to_string(),
                            value: output,
                        });
                        for (name, value) in pushed {
                            self.changes.push(Change::XCom {
                                key: key.clone(),
                                name,
                                value,
                            });
                        }
                        self.finish_task(index, TaskState::Success, None);
                    }
                    Err(error) => self.fail_try(index, error),
                }
            }
        }
    }

    fn fail_try(&mut self, index: usize, error: TaskError) {
        let task = &self.dag.tasks()[index];
        let message = error.to_string();
        let try_number = self.instances[index].record.try_number;
        if try_number <= task.retries() {
            tracing::warn!(task = %task.id(), try_number, "try failed, retrying in {:?}: {message}", task.retry_delay());
            self.set_state(index, TaskState::UpForRetry, Some(message));
            self.retrying += 1;
            let delay = task.retry_delay();
            self.join.spawn(async move {
                tokio::time::sleep(delay).await;
                Event::RetryDue(index)
            });
        } else {
            tracing::error!(task = %task.id(), try_number, "task failed: {message}");
            self.finish_task(index, TaskState::Failed, Some(message));
        }
    }

    /// Records a final state and lets downstream tasks decide, propagating skips and
    /// upstream failures without running anything.
    fn finish_task(&mut self, index: usize, state: TaskState, error: Option<String>) {
        self.set_state(index, state, error);
        let mut settled = vec![(index, state)];
        while let Some((done, state)) = settled.pop() {
            for &d in self.dag.tasks()[done].downstream() {
                let inst = &mut self.instances[d];
                if inst.record.state != TaskState::None {
                    continue;
                }
                inst.upstream.record(state);
                match trigger::all_success(&inst.upstream) {
                    Decision::Wait => {}
                    Decision::Run => self.ready.push_back(d),
                    Decision::UpstreamFailed => {
                        self.set_state(d, TaskState::UpstreamFailed, None);
                        settled.push((d, TaskState::UpstreamFailed));
                    }
                    Decision::Skip => {
                        self.set_state(d, TaskState::Skipped, None);
                        settled.push((d, TaskState::Skipped));
                    }
                }
            }
        }
    }

    fn set_state(&mut self, index: usize, state: TaskState, error: Option<String>) {
        let inst = &mut self.instances[index];
        debug_assert!(
            inst.record.state.can_become(state),
            "{} -> {state}",
            inst.record.state
        );
        inst.record.state = state;
        if error.is_some() || state == TaskState::Running {
            inst.record.error = error;
        }
        self.changes.push(Change::Task(inst.record.clone()));
        if let Some(observer) = &self.executor.observer {
            observer(&TaskEvent {
                task_id: inst.record.key.task_id.clone(),
                state,
                try_number: inst.record.try_number,
                duration: if state.is_finished() || state == TaskState::UpForRetry {
                    inst.elapsed
                } else {
                    None
                },
                error: inst.record.error.clone(),
            });
        }
    }

    fn finish(mut self, started: DateTime<Utc>, duration: Duration) -> Result<RunSummary, RunError> {
        // A leaf that failed (or never ran because of a failure) fails the run, as in Airflow.
        let failed = self.dag.tasks().iter().zip(&self.instances).any(|(task, inst)| {
            task.downstream().is_empty()
                && matches!(inst.record.state, TaskState::Failed | TaskState::UpstreamFailed)
        }) || self.instances.iter().any(|i| !i.record.state.is_finished());
        let state = if failed { RunState::Failed } else { RunState::Success };
        self.changes.push(Change::Run {
            dag_id: self.scope.dag_id.clone(),
            run_id: self.scope.run_id.clone(),
            state,
            start: Some(started),
            end: Some(Utc::now()),
        });
        self.executor.store.apply(&self.changes)?;
        let tasks = self
            .instances
            .iter()
            .map(|inst| TaskSummary {
                task_id: inst.record.key.task_id.clone(),
                state: inst.record.state,
                tries: inst.record.try_number,
                duration: inst.elapsed,
                error: inst.record.error.clone(),
            })
            .collect();
        Ok(RunSummary {
            run_id: self.scope.run_id.clone(),
            logical_date: self.scope.logical_date,
            state,
            duration,
            tasks,
            dag_id: self.scope.dag_id.clone(),
            xcoms: self.executor.store.clone() as Arc<dyn XComStore>,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

    use super::*;
    use crate::dag::{DagBuilder, Node};
    use crate::store::RunStore;
    use crate::task::TaskSpec;

    fn value(name: &str, v: u64) -> TaskSpec {
        TaskSpec::from_sync(name, move |_, _| Ok(v))
    }

    fn add_one(name: &str) -> TaskSpec {
        TaskSpec::from_async(name, |_, inputs| async move { Ok(inputs.get::<u64>(0)? + 1) }).param::<u64>("x")
    }

    fn fails(name: &str, message: &'static str) -> TaskSpec {
        TaskSpec::from_sync(name, move |_, _| Err::<u64, _>(TaskError::Failed(message.into())))
    }

    fn with_input(b: &mut DagBuilder, spec: TaskSpec, input: Node<u64>) -> Node<u64> {
        let mut t = b.add_task(spec);
        t.input(input);
        t.finish()
    }

    async fn run(dag: &Dag) -> (RunSummary, Arc<MemoryStore>) {
        let store = Arc::new(MemoryStore::new());
        let summary = Executor::new(store.clone()).run(dag, Utc::now()).await.unwrap();
        (summary, store)
    }

    fn states(summary: &RunSummary) -> Vec<(String, TaskState)> {
        summary.tasks.iter().map(|t| (t.task_id.to_string(), t.state)).collect()
    }

    #[tokio::test]
    async fn outputs_flow_through_the_store_as_xcom() {
        let mut b = DagBuilder::new("chain");
        let a = b.add_task(value("a", 40)).finish::<u64>();
        let x = with_input(&mut b, add_one("b"), a);
        with_input(&mut b, add_one("c"), x);
        let literal = b.add_task(add_one("d")).input(7_u64).finish::<u64>();
        let _ = literal;
        let (summary, store) = run(&b.build().unwrap()).await;
        assert_eq!(summary.state, RunState::Success);
        assert_eq!(summary.output::<u64>("c").unwrap(), 42);
        assert_eq!(summary.output::<u64>("d").unwrap(), 8);
        let run = store.run(&"chain".into(), &summary.run_id).unwrap().unwrap();
        assert_eq!(run.state, RunState::Success);
        assert!(run.end.is_some());
        let recorded = store.task_instances(&"chain".into(), &summary.run_id).unwrap();
        assert!(recorded.iter().all(|ti| ti.state == TaskState::Success && ti.try_number == 1));
    }

    #[tokio::test]
    async fn a_failure_fails_its_downstream_and_the_run_but_not_other_branches() {
        let mut b = DagBuilder::new("fail");
        let bad = b.add_task(fails("bad", "no data")).finish::<u64>();
        let after = with_input(&mut b, add_one("after"), bad);
        with_input(&mut b, add_one("after_after"), after);
        let good = b.add_task(value("good", 1)).finish::<u64>();
        with_input(&mut b, add_one("good_after"), good);
        let (summary, _) = run(&b.build().unwrap()).await;
        assert_eq!(summary.state, RunState::Failed);
        assert_eq!(
            states(&summary),
            [
                ("bad".into(), TaskState::Failed),
                ("after".into(), TaskState::UpstreamFailed),
                ("after_after".into(), TaskState::UpstreamFailed),
                ("good".into(), TaskState::Success),
                ("good_after".into(), TaskState::Success),
            ]
        );
        assert_eq!(summary.task("bad").unwrap().error.as_deref(), Some("no data"));
        assert_eq!(summary.task("after").unwrap().tries, 0);
    }

    #[tokio::test]
    async fn retries_wait_the_delay_and_count_tries() {
        let calls = Arc::new(AtomicU32::new(0));
        let seen = calls.clone();
        let flaky = TaskSpec::from_sync("flaky", move |ctx, _| {
            let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
            assert_eq!(ctx.try_number(), n);
            if n < 3 { Err(TaskError::Failed(format!("try {n} failed"))) } else { Ok(n) }
        })
        .retries(2)
        .retry_delay(Duration::from_millis(20));
        let mut b = DagBuilder::new("retry");
        b.add_task(flaky);
        b.add_task(fails("hopeless", "always").retries(1).retry_delay(Duration::from_millis(1)));
        let clock = Instant::now();
        let (summary, _) = run(&b.build().unwrap()).await;
        assert!(clock.elapsed() >= Duration::from_millis(40), "two retry delays of 20ms");
        let flaky = summary.task("flaky").unwrap();
        assert_eq!((flaky.state, flaky.tries), (TaskState::Success, 3));
        assert_eq!(summary.output::<u32>("flaky").unwrap(), 3);
        let hopeless = summary.task("hopeless").unwrap();
        assert_eq!((hopeless.state, hopeless.tries), (TaskState::Failed, 2));
    }

    #[tokio::test]
    async fn panics_fail_the_try_and_leave_the_run_going() {
        let mut b = DagBuilder::new("panics");
        b.add_task(TaskSpec::from_sync("sync_panic", |_, _| -> Result<u8, TaskError> { panic!("sync boom") }));
        b.add_task(TaskSpec::from_async("async_panic", |_, _| async {
            if true {
                panic!("async boom");
            }
            Ok(1_u8)
        }));
        b.add_task(value("fine", 1));
        let (summary, _) = run(&b.build().unwrap()).await;
        assert_eq!(summary.task("sync_panic").unwrap().error.as_deref(), Some("task panicked: sync boom"));
        assert_eq!(summary.task("async_panic").unwrap().error.as_deref(), Some("task panicked: async boom"));
        assert_eq!(summary.task("fine").unwrap().state, TaskState::Success);
        assert_eq!(summary.state, RunState::Failed);
    }

    #[tokio::test]
    async fn parallelism_bounds_running_tasks() {
        let active = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut b = DagBuilder::new("wide");
        for i in 0..8 {
            let (active, peak) = (active.clone(), peak.clone());
            b.add_task(TaskSpec::from_async(format!("t{i}"), move |_, _| {
                let (active, peak) = (active.clone(), peak.clone());
                async move {
                    let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    active.fetch_sub(1, Ordering::SeqCst);
                    Ok(())
                }
            }));
        }
        let dag = b.build().unwrap();
        let summary = Executor::new(Arc::new(MemoryStore::new()))
            .parallelism(3)
            .run(&dag, Utc::now())
            .await
            .unwrap();
        assert_eq!(summary.state, RunState::Success);
        assert_eq!(peak.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn sync_tasks_run_off_the_async_threads() {
        // One async thread: if the blocking task ran on it, the async task could never send.
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let rx = Arc::new(Mutex::new(rx));
        let mut b = DagBuilder::new("blocking");
        b.add_task(TaskSpec::from_sync("waits", move |_, _| {
            let rx = rx.lock().unwrap();
            rx.recv_timeout(Duration::from_secs(10))
                .map_err(|_| TaskError::Failed("the async task never ran".into()))
        }));
        b.add_task(TaskSpec::from_async("signals", move |_, _| {
            let tx = tx.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                tx.send(()).map_err(|e| TaskError::Failed(e.to_string()))
            }
        }));
        let dag = b.build().unwrap();
        let summary = runtime.block_on(Executor::new(Arc::new(MemoryStore::new())).parallelism(2).run(&dag, Utc::now())).unwrap();
        assert_eq!(summary.state, RunState::Success, "{:?}", summary.tasks);
    }

    #[tokio::test]
    async fn pushed_xcoms_are_kept_only_for_successful_tries() {
        let mut b = DagBuilder::new("xcom");
        let push = b
            .add_task(
                TaskSpec::from_sync("push", |ctx, _| {
                    ctx.xcom_push("rows", &1797_u64)?;
                    if ctx.try_number() == 1 {
                        ctx.xcom_push("first_try_only", &true)?;
                        return Err(TaskError::Failed("first try fails".into()));
                    }
                    Ok(())
                })
                .retries(1)
                .retry_delay(Duration::ZERO),
            )
            .finish::<()>();
        let pull = b
            .add_task(TaskSpec::from_sync("pull", |ctx, _| {
                let first: Option<bool> = ctx.try_xcom_pull("push", "first_try_only")?;
                Ok((ctx.xcom_pull::<u64>("push", "rows")?, first))
            }))
            .finish::<(u64, Option<bool>)>();
        b.set_downstream(&[push.any()], &[pull.any()]);
        let (summary, _) = run(&b.build().unwrap()).await;
        assert_eq!(summary.output::<(u64, Option<bool>)>("pull").unwrap(), (1797, None));
        assert_eq!(summary.xcom::<u64>("push", "rows").unwrap(), 1797);
    }

    #[tokio::test]
    async fn a_value_that_no_longer_decodes_names_producer_and_types() {
        let mut b = DagBuilder::new("drift");
        let text = b.add_task(TaskSpec::from_sync("producer", |_, _| Ok("text".to_string()))).finish::<u64>();
        with_input(&mut b, add_one("consumer"), text);
        let (summary, _) = run(&b.build().unwrap()).await;
        let error = summary.task("consumer").unwrap().error.clone().unwrap();
        assert!(error.contains("from task `producer`"), "{error}");
        assert!(error.contains("alloc::string::String") && error.contains("`u64`"), "{error}");
    }

    #[tokio::test]
    async fn observers_see_every_state_in_order() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let mut b = DagBuilder::new("events");
        b.add_task(fails("f", "x").retries(1).retry_delay(Duration::ZERO));
        let executor = Executor::new(Arc::new(MemoryStore::new()))
            .on_event(move |e| sink.lock().unwrap().push((e.state, e.try_number)));
        executor.run(&b.build().unwrap(), Utc::now()).await.unwrap();
        use TaskState::*;
        assert_eq!(
            *seen.lock().unwrap(),
            [(Queued, 0), (Running, 1), (UpForRetry, 1), (Queued, 1), (Running, 2), (Failed, 2)]
        );
    }

    #[tokio::test]
    async fn test_task_runs_one_task_with_given_inputs() {
        let mut b = DagBuilder::new("single");
        let a = b.add_task(value("a", 1)).finish::<u64>();
        with_input(&mut b, add_one("b"), a);
        let dag = b.build().unwrap();
        let executor = Executor::new(Arc::new(MemoryStore::new()));
        let (out, pushed) = executor
            .test_task(&dag, 1, vec![XComBlob::encode(&41_u64).unwrap()], Utc::now())
            .await
            .unwrap();
        assert_eq!(out.decode::<u64>().unwrap(), 42);
        assert!(pushed.is_empty());
    }
}

//! Prometheus metrics of a flow process: what its runs did (tries by how they ended, how
//! long they ran, how long an instance waited between its start being decided and its
//! code running, how long the coordinating loop's turns take, how many instances wait for
//! a slot) and, read from the store at each scrape, what the deployment holds now (pool
//! slots used and open, runs by state).
//!
//! [`Metrics`] is fed by the executor ([`crate::Executor::metrics`]): task events through a
//! synchronous observer, the rest by the run loop and the running side, only when metrics
//! are on. [`Metrics::render`] writes the OpenMetrics text a Prometheus server scrapes;
//! [`MetricsEndpoint`] answers those scrapes on its own port (`--metrics ADDR`).
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `flow_task_tries_total` | counter | `dag_id`, `task_id`, `state` (how the try ended) |
//! | `flow_task_duration_seconds` | histogram | `dag_id`, `task_id` |
//! | `flow_task_claim_to_start_seconds` | histogram | `dag_id` |
//! | `flow_queue_depth` | gauge | (instances ready to run, waiting for a slot) |
//! | `flow_scheduler_loop_seconds` | histogram | `kind`: `run` (a run's coordinating loop) or `scheduler` |
//! | `flow_pool_slots` | gauge | `pool`, `state` (`used` or `open`) |
//! | `flow_dag_runs` | gauge | `dag_id`, `state` |

mod endpoint;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub use endpoint::MetricsEndpoint;

use crate::events::TaskEvent;
use crate::ids::{DagId, TaskId};
use crate::store::{Store, StoreError};

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TryLabels {
    dag_id: DagId,
    task_id: TaskId,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    dag_id: DagId,
    task_id: TaskId,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DagLabels {
    dag_id: DagId,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoopLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    dag_id: DagId,
    state: &'static str,
}

// Ids as label values as they are: a label set costs reference counts, not copies.
impl EncodeLabelValue for DagId {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

impl EncodeLabelValue for TaskId {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Task runs: 1 ms to about an hour.
fn duration_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 4.0, 12))
}

/// Waits and loop turns: 10 µs to about 40 s.
fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.000_01, 4.0, 12))
}

/// The metrics of one process (see the module documentation for the list).
pub struct Metrics {
    registry: Registry,
    tries: Family<TryLabels, Counter>,
    durations: Histograms<TaskLabels>,
    claim_to_start: Histograms<DagLabels>,
    queue_depth: Gauge,
    loop_turns: Histograms<LoopLabels>,
    pool_slots: Family<PoolLabels, Gauge>,
    runs: Family<RunLabels, Gauge>,
    /// One scrape at a time refreshes the gauges read from the store.
    scrape: Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric, at zero.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let tries = Family::default();
        registry.register(
            "flow_task_tries",
            "Task tries that ended, by how they ended",
            tries.clone(),
        );
        let durations: Histograms<TaskLabels> = Family::new_with_constructor(duration_buckets);
        registry.register(
            "flow_task_duration_seconds",
            "How long task tries ran",
            durations.clone(),
        );
        let claim_to_start: Histograms<DagLabels> = Family::new_with_constructor(latency_buckets);
        registry.register(
            "flow_task_claim_to_start_seconds",
            "From an instance's start being decided (its slots claimed) to its code running",
            claim_to_start.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "flow_queue_depth",
            "Task instances ready to run that wait for a slot",
            queue_depth.clone(),
        );
        let loop_turns: Histograms<LoopLabels> = Family::new_with_constructor(latency_buckets);
        registry.register(
            "flow_scheduler_loop_seconds",
            "How long one turn of a scheduling loop takes, waits left out: `run` (a run's \
             coordinating loop: deciding and committing) or `scheduler` (creating and \
             starting runs)",
            loop_turns.clone(),
        );
        let pool_slots = Family::default();
        registry.register(
            "flow_pool_slots",
            "Pool slots used and open, read from the store",
            pool_slots.clone(),
        );
        let runs = Family::default();
        registry.register(
            "flow_dag_runs",
            "DAG runs by state, read from the store",
            runs.clone(),
        );
        Self {
            registry,
            tries,
            durations,
            claim_to_start,
            queue_depth,
            loop_turns,
            pool_slots,
            runs,
            scrape: Mutex::new(()),
        }
    }

    /// Counts a task event: a try that ended (the event carries its duration) adds to the
    /// tries of its final state and to the durations.
    pub fn observe(&self, event: &TaskEvent) {
        let Some(duration) = event.duration else {
            return;
        };
        self.tries
            .get_or_create(&TryLabels {
                dag_id: event.dag_id.clone(),
                task_id: event.task_id.clone(),
                state: event.state.as_str(),
            })
            .inc();
        self.durations
            .get_or_create(&TaskLabels {
                dag_id: event.dag_id.clone(),
                task_id: event.task_id.clone(),
            })
            .observe(duration.as_secs_f64());
    }

    /// An instance of `dag_id` began running `waited` after its start was decided.
    pub(crate) fn started(&self, dag_id: &DagId, waited: Duration) {
        self.claim_to_start
            .get_or_create(&DagLabels {
                dag_id: dag_id.clone(),
            })
            .observe(waited.as_secs_f64());
    }

    /// A turn of a loop of `kind` took `took`.
    pub(crate) fn loop_turn(&self, kind: LoopKind, took: Duration) {
        self.loop_turns
            .get_or_create(&LoopLabels {
                kind: kind.as_str(),
            })
            .observe(took.as_secs_f64());
    }

    /// Adds `delta` to the instances waiting for a slot.
    pub(crate) fn queue_depth_change(&self, delta: i64) {
        self.queue_depth.inc_by(delta);
    }

    /// The metrics as OpenMetrics text ([`CONTENT_TYPE`]), with the gauges kept in `store`
    /// (pool slots, runs by state) read now.
    pub fn render(&self, store: &dyn Store) -> Result<String, StoreError> {
        let _one_at_a_time = self
            .scrape
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.read_store(store)?;
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .map_err(|e| StoreError::Backend(format!("cannot write the metrics: {e}")))?;
        Ok(text)
    }

    fn read_store(&self, store: &dyn Store) -> Result<(), StoreError> {
        let pools = crate::ops::pools::pools(store)?;
        let used = store.slots_in_use(Utc::now())?;
        self.pool_slots.clear();
        for pool in pools {
            let in_use = used
                .iter()
                .find(|(name, _)| *name == pool.name)
                .map_or(0, |(_, slots)| *slots);
            let gauge = |state| {
                self.pool_slots.get_or_create(&PoolLabels {
                    pool: pool.name.clone(),
                    state,
                })
            };
            gauge("used").set(i64::from(in_use));
            gauge("open").set(i64::from(pool.slots.saturating_sub(in_use)));
        }
        let counts = store.run_counts()?;
        self.runs.clear();
        for (dag_id, state, count) in counts {
            self.runs
                .get_or_create(&RunLabels {
                    dag_id,
                    state: state.as_str(),
                })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        Ok(())
    }
}

/// The loops whose turns are timed.
#[derive(Clone, Copy, Debug)]
pub(crate) enum LoopKind {
    /// A run's coordinating loop.
    Run,
    /// The scheduler's loop that creates and starts runs.
    Scheduler,
}

impl LoopKind {
    fn as_str(self) -> &'static str {
        match self {
            LoopKind::Run => "run",
            LoopKind::Scheduler => "scheduler",
        }
    }
}

/// Times one turn of a loop: recorded when dropped, so a turn that ends early
/// (`continue`, `break`, `?`) counts too.
pub(crate) struct TurnTimer<'a> {
    metrics: Option<&'a Metrics>,
    kind: LoopKind,
    began: Option<Instant>,
}

impl<'a> TurnTimer<'a> {
    /// Starts timing when there are metrics to record into (else costs nothing).
    pub(crate) fn start(metrics: Option<&'a Metrics>, kind: LoopKind) -> Self {
        Self {
            began: metrics.map(|_| Instant::now()),
            metrics,
            kind,
        }
    }
}

impl Drop for TurnTimer<'_> {
    fn drop(&mut self) {
        if let (Some(metrics), Some(began)) = (self.metrics, self.began) {
            metrics.loop_turn(self.kind, began.elapsed());
        }
    }
}

#[cfg(test)]
mod tests;

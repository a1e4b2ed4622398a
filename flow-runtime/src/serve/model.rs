//! The JSON the API answers with, shaped after Airflow 3's REST API v2: its field names,
//! lists as `{"<items>": [...], "total_entries": N}`, times in RFC 3339, `map_index` -1
//! for an instance of a task that is not mapped.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::graph::Dag;
use crate::store::{DagRunRecord, LogLine, PoolRecord, TaskInstanceRecord};

/// A DAG of the binary, with whether it is paused.
#[derive(Serialize)]
pub(super) struct DagJson {
    dag_id: String,
    description: Option<String>,
    is_paused: bool,
    /// The schedule as written (`@daily`, a cron expression, assets); `null` for a DAG
    /// that runs only when triggered.
    timetable_summary: Option<String>,
    timezone: String,
    tags: Vec<String>,
    max_active_runs: u32,
    max_active_tasks: u32,
    catchup: bool,
    task_ids: Vec<String>,
    /// The run's params: name, type and default, one line each.
    params: Vec<String>,
}

impl DagJson {
    pub(super) fn new(dag: &Dag, is_paused: bool) -> Self {
        Self {
            dag_id: dag.id().to_string(),
            description: dag.description().map(str::to_string),
            is_paused,
            timetable_summary: match dag.schedule() {
                crate::time::schedule::Schedule::Manual => None,
                schedule => Some(schedule.to_string()),
            },
            timezone: dag.timezone().to_string(),
            tags: dag.tags().to_vec(),
            max_active_runs: dag.max_active_runs(),
            max_active_tasks: dag.max_active_tasks(),
            catchup: dag.catchup(),
            task_ids: dag.tasks().iter().map(|t| t.id().to_string()).collect(),
            params: dag.params().describe(),
        }
    }
}

/// A page of DAGs.
#[derive(Serialize)]
pub(super) struct DagList {
    pub(super) dags: Vec<DagJson>,
    pub(super) total_entries: usize,
}

/// A DAG run.
#[derive(Serialize)]
pub(super) struct DagRunJson {
    dag_run_id: String,
    dag_id: String,
    logical_date: DateTime<Utc>,
    data_interval_start: DateTime<Utc>,
    data_interval_end: DateTime<Utc>,
    start_date: Option<DateTime<Utc>>,
    end_date: Option<DateTime<Utc>>,
    run_type: String,
    state: String,
    conf: serde_json::Value,
}

impl From<DagRunRecord> for DagRunJson {
    fn from(run: DagRunRecord) -> Self {
        Self {
            dag_run_id: run.run_id.to_string(),
            dag_id: run.dag_id.to_string(),
            logical_date: run.logical_date,
            data_interval_start: run.data_interval_start,
            data_interval_end: run.data_interval_end,
            start_date: run.start,
            end_date: run.end,
            run_type: run.run_type.as_str().to_string(),
            state: run.state.as_str().to_string(),
            conf: run.conf,
        }
    }
}

/// A page of runs.
#[derive(Serialize)]
pub(super) struct DagRunList {
    pub(super) dag_runs: Vec<DagRunJson>,
    pub(super) total_entries: usize,
}

/// A task instance: its current try.
#[derive(Serialize)]
pub(super) struct TaskInstanceJson {
    dag_id: String,
    dag_run_id: String,
    task_id: String,
    map_index: i64,
    state: Option<String>,
    try_number: u32,
    max_tries: u32,
    start_date: Option<DateTime<Utc>>,
    end_date: Option<DateTime<Utc>>,
    /// Seconds, when it has both a start and an end.
    duration: Option<f64>,
    error: Option<String>,
}

impl From<TaskInstanceRecord> for TaskInstanceJson {
    fn from(ti: TaskInstanceRecord) -> Self {
        let duration = ti
            .start
            .zip(ti.end)
            .map(|(start, end)| (end - start).num_microseconds().unwrap_or(0) as f64 / 1e6);
        Self {
            dag_id: ti.key.dag_id.to_string(),
            dag_run_id: ti.key.run_id.to_string(),
            task_id: ti.key.task_id.to_string(),
            map_index: ti.key.map_index.as_i64(),
            // Airflow's `null` for an instance nothing has happened to yet.
            state: (ti.state != crate::state::TaskState::None)
                .then(|| ti.state.as_str().to_string()),
            try_number: ti.try_number,
            max_tries: ti.max_tries,
            start_date: ti.start,
            end_date: ti.end,
            duration,
            error: ti.error,
        }
    }
}

/// A page of task instances.
#[derive(Serialize)]
pub(super) struct TaskInstanceList {
    pub(super) task_instances: Vec<TaskInstanceJson>,
    pub(super) total_entries: usize,
}

/// A log line of a try.
#[derive(Serialize)]
pub(super) struct LogLineJson {
    timestamp: DateTime<Utc>,
    level: String,
    event: String,
}

impl From<LogLine> for LogLineJson {
    fn from(line: LogLine) -> Self {
        Self {
            timestamp: line.at,
            level: line.level,
            event: line.message,
        }
    }
}

/// The log of one try.
#[derive(Serialize)]
pub(super) struct TryLogJson {
    pub(super) try_number: u32,
    pub(super) state: String,
    pub(super) content: Vec<LogLineJson>,
}

/// An XCom of an instance, its value rendered through the producing task's type.
#[derive(Serialize)]
pub(super) struct XComJson {
    pub(super) key: String,
    pub(super) dag_id: String,
    pub(super) run_id: String,
    pub(super) task_id: String,
    pub(super) map_index: i64,
    /// The value as JSON; `null` when it cannot be shown as JSON (see `value_type`).
    pub(super) value: serde_json::Value,
    /// The producer's type, when the value is not shown: kept as bytes, or in the object
    /// store (`object_key`).
    pub(super) value_type: Option<String>,
    pub(super) object_key: Option<String>,
}

/// An instance's XComs.
#[derive(Serialize)]
pub(super) struct XComList {
    pub(super) xcom_entries: Vec<XComJson>,
    pub(super) total_entries: usize,
}

/// A pool and its size.
#[derive(Serialize)]
pub(super) struct PoolJson {
    name: String,
    slots: u32,
    description: String,
}

impl From<PoolRecord> for PoolJson {
    fn from(pool: PoolRecord) -> Self {
        Self {
            name: pool.name,
            slots: pool.slots,
            description: pool.description,
        }
    }
}

/// The pools.
#[derive(Serialize)]
pub(super) struct PoolList {
    pub(super) pools: Vec<PoolJson>,
    pub(super) total_entries: usize,
}

/// The paging of a list: `limit` (default 50, at most 100, as Airflow's) and `offset`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Paging {
    pub(super) limit: Option<usize>,
    pub(super) offset: Option<usize>,
}

/// Which DAG's updates an event stream carries (default: every DAG's).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsQuery {
    pub(super) dag_id: Option<String>,
}

/// Which instance of a mapped task.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MapIndexQuery {
    pub(super) map_index: Option<i64>,
}

/// A DAG's change: `{"is_paused": true}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DagPatch {
    pub(super) is_paused: bool,
}

/// A run to trigger: when, and its conf (checked against the DAG's params).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TriggerBody {
    /// Default: now.
    pub(super) logical_date: Option<DateTime<Utc>>,
    pub(super) conf: Option<serde_json::Value>,
}

/// Task instances of a run to clear, so that the scheduler runs them again.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ClearBody {
    pub(super) dag_run_id: String,
    /// Default: every task.
    #[serde(default)]
    pub(super) task_ids: Vec<String>,
    #[serde(default)]
    pub(super) include_downstream: bool,
    /// Only say what would be cleared.
    #[serde(default)]
    pub(super) dry_run: bool,
}

/// What a clear reset (or would).
#[derive(Serialize)]
pub(super) struct ClearedJson {
    pub(super) dag_run_id: String,
    pub(super) task_ids: Vec<String>,
    pub(super) total_entries: usize,
}

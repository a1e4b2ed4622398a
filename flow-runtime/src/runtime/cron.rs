//! The long-running scheduler: creates the runs a DAG's timetable says are due, picks up
//! runs queued by `dags trigger` or left unfinished by a stopped process, and executes
//! them, never more than `max_active_runs` of one DAG at a time.
//!
//! Deciding is separate from waiting: [`Scheduler::create_due_runs`] and
//! [`Scheduler::runs_to_start`] read the time from a [`Clock`], so tests move time by
//! hand; [`Scheduler::run`] sleeps until the next due time (or a short poll for triggers)
//! and stops gracefully when told to.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{Executor, RunRequest, RunSummary};
use crate::assets::Asset;
use crate::error::RunError;
use crate::graph::Dag;
use crate::home::FlowHome;
use crate::ids::{DagId, RunId};
use crate::metrics::{LoopKind, TurnTimer};
use crate::store::{Change, DagRunRecord, RunType, StoreError};
use crate::time::schedule::Schedule;
use crate::time::timetable::DataInterval;

/// Where the scheduler reads the time.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told to, for tests.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    /// A clock showing `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        Self(Mutex::new(now))
    }

    /// Moves the clock to `now`.
    pub fn set(&self, now: DateTime<Utc>) {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = now;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Creates and executes the runs of a set of DAGs.
pub struct Scheduler {
    dags: HashMap<DagId, Dag>,
    executor: Executor,
    clock: Arc<dyn Clock>,
    home: Option<FlowHome>,
}

impl Scheduler {
    /// A scheduler of `dags` executing through `executor`, reading time from `clock`.
    /// With a `home`, each run it executes is locked against other processes.
    pub fn new(
        dags: impl IntoIterator<Item = Dag>,
        executor: Executor,
        clock: Arc<dyn Clock>,
        home: Option<FlowHome>,
    ) -> Self {
        Self {
            dags: dags.into_iter().map(|d| (d.id().clone(), d)).collect(),
            executor,
            clock,
            home,
        }
    }

    fn paused(&self, dag: &Dag) -> Result<bool, RunError> {
        Ok(self
            .executor
            .store()
            .dag(dag.id())?
            .is_some_and(|d| d.paused))
    }

    /// Records every DAG's shape and creates the scheduled runs that are due now for each
    /// unpaused DAG. Idempotent: a run that exists already is not created again.
    pub fn create_due_runs(&self) -> Result<Vec<DagRunRecord>, RunError> {
        let now = self.clock.now();
        let store = self.executor.store();
        let mut created = Vec::new();
        let mut ids: Vec<&DagId> = self.dags.keys().collect();
        ids.sort();
        for id in ids {
            let dag = &self.dags[id];
            store.record_dag(dag.id(), &crate::plan::fingerprint(dag))?;
            if self.paused(dag)? {
                continue;
            }
            if let Schedule::Assets(assets) = dag.schedule() {
                created.extend(self.create_asset_run(dag, assets, now)?);
                continue;
            }
            let last = store
                .latest_run(dag.id(), RunType::Scheduled)?
                .map(|r| DataInterval::new(r.data_interval_start, r.data_interval_end));
            for interval in dag
                .timetable()
                .due_intervals(last.as_ref(), &dag.restriction(), now)
            {
                let request = RunRequest::for_interval(dag, RunType::Scheduled, interval)?;
                match self.executor.create_run(dag, request) {
                    Ok(run) => {
                        tracing::info!(dag = %dag.id(), run = %run.run_id, "created scheduled run");
                        created.push(run);
                    }
                    Err(RunError::RunExists { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(created)
    }

    /// The run of an asset-scheduled DAG that is due at `now`, created: every asset it is
    /// scheduled on was updated since the updates its last asset-triggered run consumed.
    /// Its data interval spans the updates it consumes; it consumes them in the batch that
    /// creates it, so no update starts two runs.
    fn create_asset_run(
        &self,
        dag: &Dag,
        assets: &[Asset],
        now: DateTime<Utc>,
    ) -> Result<Option<DagRunRecord>, RunError> {
        let store = self.executor.store();
        let consumed: HashMap<String, i64> = store.consumed_assets(dag.id())?.into_iter().collect();
        let mut upto = Vec::with_capacity(assets.len());
        let (mut first, mut last): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) = (None, None);
        for asset in assets {
            let after = consumed.get(asset.uri()).copied().unwrap_or(0);
            let events = store.asset_events(asset.uri(), after)?;
            let (Some(oldest), Some(newest)) = (events.first(), events.last()) else {
                return Ok(None);
            };
            first = Some(first.map_or(oldest.timestamp, |t| t.min(oldest.timestamp)));
            last = Some(last.map_or(newest.timestamp, |t| t.max(newest.timestamp)));
            upto.push((asset.uri().to_string(), newest.id));
        }
        let (Some(first), Some(last)) = (first, last) else {
            return Ok(None);
        };
        let interval = DataInterval::new(first, last);
        let mut request = RunRequest::for_interval(dag, RunType::AssetTriggered, interval)?;
        // Its logical date is when it was triggered (its run id names that time).
        request.logical_date = now;
        let run = super::new_run(dag, crate::plan::fingerprint(dag), request);
        let batch = [
            Change::CreateRun(run.clone()),
            Change::ConsumeAssets {
                dag_id: dag.id().clone(),
                upto,
            },
        ];
        match store.apply(&batch) {
            Ok(_) => {
                tracing::info!(dag = %dag.id(), run = %run.run_id, "created asset-triggered run");
                Ok(Some(run))
            }
            // Created by another scheduler at the same instant: it consumed the updates.
            Err(StoreError::RunExists { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Unfinished runs (queued by a trigger or the timetable, or left running by a
    /// stopped process) to start now, oldest first, keeping each DAG within
    /// `max_active_runs` counting the runs in `executing`. Paused DAGs start nothing.
    pub fn runs_to_start(
        &self,
        executing: &HashSet<(DagId, RunId)>,
    ) -> Result<Vec<DagRunRecord>, RunError> {
        let mut active: HashMap<&DagId, usize> = HashMap::new();
        for (dag, _) in executing {
            *active.entry(dag).or_default() += 1;
        }
        let mut start = Vec::new();
        for run in self.executor.store().unfinished_runs()? {
            let Some(dag) = self.dags.get(&run.dag_id) else {
                continue;
            };
            if executing.contains(&(run.dag_id.clone(), run.run_id.clone())) || self.paused(dag)? {
                continue;
            }
            let count = active.entry(dag.id()).or_default();
            if *count < dag.max_active_runs() as usize {
                *count += 1;
                start.push(run);
            }
        }
        Ok(start)
    }

    /// When the next scheduled run of any unpaused DAG falls due.
    pub fn next_due_time(&self) -> Result<Option<DateTime<Utc>>, RunError> {
        let mut next: Option<DateTime<Utc>> = None;
        for dag in self.dags.values() {
            if self.paused(dag)? {
                continue;
            }
            let last = self
                .executor
                .store()
                .latest_run(dag.id(), RunType::Scheduled)?
                .map(|r| DataInterval::new(r.data_interval_start, r.data_interval_end));
            if let Some(due) = dag
                .timetable()
                .next_due_time(last.as_ref(), &dag.restriction())
            {
                next = Some(next.map_or(due, |n| n.min(due)));
            }
        }
        Ok(next)
    }

    /// Runs until `shutdown` turns true: creates due runs, starts runs, and sleeps until
    /// the next due time, a run's end, or `poll` (how soon a triggered run is noticed).
    /// On shutdown no task starts any more; running tasks get the executor's grace
    /// period, and what is left is resumed by the next start.
    pub async fn run(
        &self,
        mut shutdown: watch::Receiver<bool>,
        poll: Duration,
    ) -> Result<(), RunError> {
        let mut executing: HashSet<(DagId, RunId)> = HashSet::new();
        let mut refused: HashSet<(DagId, RunId)> = HashSet::new();
        let mut runs: JoinSet<((DagId, RunId), Result<RunSummary, RunError>)> = JoinSet::new();
        let metrics = self.executor.settings.metrics.clone();
        loop {
            if *shutdown.borrow() {
                break;
            }
            let turn = TurnTimer::start(metrics.as_deref(), LoopKind::Scheduler);
            self.create_due_runs()?;
            let known = executing.union(&refused).cloned().collect();
            for run in self.runs_to_start(&known)? {
                let key = (run.dag_id.clone(), run.run_id.clone());
                let lock = match &self.home {
                    Some(home) => match home.lock_run(&run.dag_id, &run.run_id) {
                        Ok(lock) => Some(lock),
                        Err(e) => {
                            tracing::warn!("not starting run {}: {e}", run.run_id);
                            refused.insert(key);
                            continue;
                        }
                    },
                    None => None,
                };
                let dag = self.dags[&run.dag_id].clone();
                let executor = self.executor.clone();
                tracing::info!(dag = %run.dag_id, run = %run.run_id, "starting run");
                executing.insert(key.clone());
                runs.spawn(async move {
                    let outcome = executor.resume(&dag, &key.1).await;
                    drop(lock);
                    (key, outcome)
                });
            }
            let now = self.clock.now();
            let wait = self.next_due_time()?.map_or(poll, |due| {
                (due - now).to_std().unwrap_or_default().min(poll)
            });
            drop(turn);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
                Some(done) = runs.join_next(), if !runs.is_empty() => {
                    if let Ok((key, outcome)) = done {
                        self.finished(&key, outcome, &mut refused);
                        executing.remove(&key);
                    }
                }
            }
        }
        tracing::info!("scheduler stopping: no new tasks start; waiting for running tasks");
        while let Some(done) = runs.join_next().await {
            if let Ok((key, outcome)) = done {
                self.finished(&key, outcome, &mut refused);
            }
        }
        Ok(())
    }

    fn finished(
        &self,
        key: &(DagId, RunId),
        outcome: Result<RunSummary, RunError>,
        refused: &mut HashSet<(DagId, RunId)>,
    ) {
        match outcome {
            Ok(summary) => {
                tracing::info!(dag = %key.0, run = %key.1, "run ended {}", summary.state)
            }
            Err(e) => {
                tracing::error!(dag = %key.0, run = %key.1, "run could not be executed: {e}");
                refused.insert(key.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::graph::DagBuilder;
    use crate::state::RunState;
    use crate::store::{MemoryStore, Store};
    use crate::task::TaskSpec;

    fn dag(id: &str, schedule: &str, catchup: bool) -> DagBuilder {
        let mut b = DagBuilder::new(id)
            .schedule(schedule)
            .start_date("2025-01-01")
            .catchup(catchup);
        b.add_task(TaskSpec::from_async(
            "t",
            |ctx, _| async move { Ok(ctx.ds()) },
        ));
        b
    }

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    fn scheduler(
        dags: Vec<Dag>,
        now: DateTime<Utc>,
    ) -> (Scheduler, Arc<ManualClock>, Arc<dyn Store>) {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let clock = Arc::new(ManualClock::new(now));
        let s = Scheduler::new(dags, Executor::new(store.clone()), clock.clone(), None);
        (s, clock, store)
    }

    fn logical_dates(runs: &[DagRunRecord]) -> Vec<String> {
        runs.iter()
            .map(|r| r.logical_date.format("%m-%d").to_string())
            .collect()
    }

    #[test]
    fn thirty_missed_days_with_catchup_make_thirty_runs_once() {
        let (s, clock, store) = scheduler(
            vec![dag("daily", "@daily", true).build().unwrap()],
            at(2025, 1, 31, 0),
        );
        let created = s.create_due_runs().unwrap();
        assert_eq!(created.len(), 30);
        assert_eq!(logical_dates(&created)[..3], ["01-01", "01-02", "01-03"]);
        assert_eq!(created[29].logical_date, at(2025, 1, 30, 0));
        assert_eq!(created[0].data_interval_end, at(2025, 1, 2, 0));
        assert!(
            created.iter().all(|r| r.run_type == RunType::Scheduled
                && r.run_id.as_str().starts_with("scheduled__"))
        );
        // A restart (or the next tick) creates nothing twice.
        assert!(s.create_due_runs().unwrap().is_empty());
        clock.set(at(2025, 2, 1, 0) + chrono::Duration::minutes(1));
        assert_eq!(logical_dates(&s.create_due_runs().unwrap()), ["01-31"]);
        assert_eq!(store.runs(None).unwrap().len(), 31);
    }

    #[test]
    fn without_catchup_only_the_latest_interval_runs() {
        let (s, _, _) = scheduler(
            vec![dag("daily", "@daily", false).build().unwrap()],
            at(2025, 1, 31, 5),
        );
        assert_eq!(logical_dates(&s.create_due_runs().unwrap()), ["01-30"]);
        assert!(s.create_due_runs().unwrap().is_empty());
    }

    #[test]
    fn daily_at_two_in_amsterdam_keeps_local_time_across_dst() {
        let d = dag("ams", "0 2 * * *", true)
            .start_date("2025-03-28T00:00:00+01:00")
            .timezone("Europe/Amsterdam")
            .build()
            .unwrap();
        let (s, _, _) = scheduler(vec![d], at(2025, 4, 2, 12));
        let created = s.create_due_runs().unwrap();
        let local: Vec<String> = created
            .iter()
            .map(|r| {
                r.logical_date
                    .with_timezone(&chrono_tz::Europe::Amsterdam)
                    .format("%m-%d %H:%M %z")
                    .to_string()
            })
            .collect();
        assert_eq!(
            local,
            [
                "03-28 02:00 +0100",
                "03-29 02:00 +0100",
                "03-30 03:00 +0200",
                "03-31 02:00 +0200",
                "04-01 02:00 +0200"
            ]
        );
    }

    #[test]
    fn paused_dags_get_no_runs_and_start_none() {
        let (s, _, store) = scheduler(
            vec![dag("daily", "@daily", true).build().unwrap()],
            at(2025, 1, 3, 0),
        );
        store.record_dag(&"daily".into(), "x").unwrap();
        store.set_paused(&"daily".into(), true).unwrap();
        assert!(s.create_due_runs().unwrap().is_empty());
        store.set_paused(&"daily".into(), false).unwrap();
        assert_eq!(s.create_due_runs().unwrap().len(), 2);
        store.set_paused(&"daily".into(), true).unwrap();
        assert!(s.runs_to_start(&HashSet::new()).unwrap().is_empty());
    }

    #[test]
    fn max_active_runs_bounds_what_starts() {
        let d = dag("daily", "@daily", true)
            .max_active_runs(2)
            .build()
            .unwrap();
        let (s, _, _) = scheduler(vec![d], at(2025, 1, 6, 0));
        assert_eq!(s.create_due_runs().unwrap().len(), 5);
        let first = s.runs_to_start(&HashSet::new()).unwrap();
        assert_eq!(
            logical_dates(&first),
            ["01-01", "01-02"],
            "oldest first, two at a time"
        );
        let executing: HashSet<_> = [(first[0].dag_id.clone(), first[0].run_id.clone())].into();
        assert_eq!(
            logical_dates(&s.runs_to_start(&executing).unwrap()),
            ["01-02"]
        );
    }

    #[test]
    fn next_due_time_is_the_end_of_the_next_interval() {
        let (s, _, _) = scheduler(
            vec![dag("hourly", "@hourly", false).build().unwrap()],
            at(2025, 1, 1, 5),
        );
        s.create_due_runs().unwrap();
        assert_eq!(s.next_due_time().unwrap(), Some(at(2025, 1, 1, 6)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_loop_runs_due_runs_and_triggered_ones_then_stops() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let every_second = dag("tick", "* * * * * *", false).build().unwrap();
        let manual = {
            let mut b = DagBuilder::new("manual");
            b.add_task(TaskSpec::from_async("t", |_, _| async { Ok(1_u8) }));
            b.build().unwrap()
        };
        let executor = Executor::new(store.clone());
        let triggered = executor
            .create_run(
                &manual,
                RunRequest::manual(&manual, Utc::now(), None).unwrap(),
            )
            .unwrap();
        let (stop_tx, stop_rx) = watch::channel(false);
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let s = Scheduler::new(
            [every_second, manual],
            executor
                .stop_on(stop_rx.clone(), Duration::from_secs(5))
                .metrics(metrics.clone()),
            Arc::new(SystemClock),
            None,
        );
        let loop_task =
            tokio::spawn(async move { s.run(stop_rx, Duration::from_millis(50)).await });
        tokio::time::sleep(Duration::from_millis(2500)).await;
        stop_tx.send(true).unwrap();
        loop_task.await.unwrap().unwrap();
        let ticks = store.runs(Some(&"tick".into())).unwrap();
        assert!(ticks.len() >= 2, "{ticks:?}");
        assert!(
            ticks.iter().all(|r| r.state == RunState::Success),
            "{ticks:?}"
        );
        let mut ids: Vec<_> = ticks.iter().map(|r| r.logical_date).collect();
        ids.dedup();
        assert_eq!(ids.len(), ticks.len(), "no interval twice");
        assert_eq!(
            store
                .run(&"manual".into(), &triggered.run_id)
                .unwrap()
                .unwrap()
                .state,
            RunState::Success
        );
        // Both loops were timed: the scheduler's turns and the runs' turns.
        let scrape = metrics.render(store.as_ref()).unwrap();
        for kind in ["scheduler", "run"] {
            let count = scrape
                .lines()
                .find_map(|line| {
                    line.strip_prefix(&format!(
                        "flow_scheduler_loop_seconds_count{{kind=\"{kind}\"}} "
                    ))
                })
                .and_then(|value| value.parse::<f64>().ok());
            assert!(count.is_some_and(|turns| turns >= 2.0), "{kind}: {scrape}");
        }
    }
}

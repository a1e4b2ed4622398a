//! Progress of `dags test` and `dags backfill` on a terminal: one line at the bottom that
//! says how many task instances are done out of how many, how many run now, and for how
//! long, kept below the live state lines and the logs. Not on a terminal (a pipe, a file,
//! CI), nothing is drawn and the output is the plain lines alone.

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::events::TaskEvent;
use crate::graph::Dag;
use crate::ids::{RunId, TaskId};
use crate::state::TaskState;

/// What the progress line counts: every task instance seen, by run, task and map index,
/// kept as running counts so that an event costs the same in a run of 100,000 instances.
#[derive(Debug, Default)]
pub(super) struct Tally {
    /// Instances expected per run before any has expanded: one per task.
    tasks_per_run: usize,
    runs: usize,
    states: HashMap<(RunId, TaskId, Option<u32>), TaskState>,
    /// Mapped tasks, by run, whose instances have appeared: their instances count
    /// instead of the one expected for the task.
    expanded: HashSet<(RunId, TaskId)>,
    /// Instances of mapped tasks seen.
    instances: usize,
    done: usize,
    running: usize,
}

impl Tally {
    /// A tally for `runs` runs of `dag`.
    pub(super) fn new(dag: &Dag, runs: usize) -> Self {
        Tally {
            tasks_per_run: dag.tasks().len(),
            runs,
            ..Tally::default()
        }
    }

    /// Whether `key` in `state` counts as done: a mapped task's own line only while it
    /// has no instances (it was skipped as a whole, say).
    fn counts_as_done(&self, key: &(RunId, TaskId, Option<u32>), state: TaskState) -> bool {
        state.is_finished()
            && (key.2.is_some() || !self.expanded.contains(&(key.0.clone(), key.1.clone())))
    }

    /// Counts a state change.
    pub(super) fn record(&mut self, event: &TaskEvent) {
        let key = (event.run_id.clone(), event.task_id.clone(), event.map_index);
        if key.2.is_some() && self.expanded.insert((key.0.clone(), key.1.clone())) {
            // The task's own line, if finished, no longer counts: its instances do.
            let own = (key.0.clone(), key.1.clone(), None);
            if self.states.get(&own).is_some_and(|s| s.is_finished()) {
                self.done -= 1;
            }
        }
        match self.states.insert(key.clone(), event.state) {
            None if key.2.is_some() => self.instances += 1,
            None => {}
            Some(previous) => {
                if previous == TaskState::Running {
                    self.running -= 1;
                }
                if self.counts_as_done(&key, previous) {
                    self.done -= 1;
                }
            }
        }
        if event.state == TaskState::Running {
            self.running += 1;
        }
        if self.counts_as_done(&key, event.state) {
            self.done += 1;
        }
    }

    /// (done, total, running): a mapped task counts as one instance until its instances
    /// appear, then as those.
    pub(super) fn counts(&self) -> (usize, usize, usize) {
        let total =
            (self.tasks_per_run * self.runs + self.instances).saturating_sub(self.expanded.len());
        (self.done, total.max(self.done), self.running)
    }

    /// The progress line.
    pub(super) fn line(&self, elapsed: Duration) -> String {
        let (done, total, running) = self.counts();
        let runs = if self.runs > 1 {
            format!(" in {} runs", self.runs)
        } else {
            String::new()
        };
        format!(
            "{done}/{total} task instances done{runs}, {running} running, {}",
            humantime::format_duration(Duration::from_secs(elapsed.as_secs()))
        )
    }
}

/// The progress of one command: the tally, and the line drawn at the bottom of the
/// terminal when there is one.
#[derive(Clone)]
pub(super) struct Progress {
    tally: Arc<Mutex<Tally>>,
    bar: Option<ProgressBar>,
    started: Instant,
    /// Whether each state change is printed as a line (`dags test`) or only counted.
    lines: bool,
    /// Clears the bar once the last clone is gone, even when the command ends early.
    _finisher: Arc<Finisher>,
}

struct Finisher(Option<ProgressBar>);

impl Drop for Finisher {
    fn drop(&mut self) {
        clear(self.0.as_ref());
    }
}

/// Clears `bar` (if one is drawn); log lines no longer go around it.
fn clear(bar: Option<&ProgressBar>) {
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let Ok(mut active) = active().lock() {
        *active = None;
    }
}

/// The bar drawn now, if any: log lines are written around it.
static ACTIVE: OnceLock<Mutex<Option<ProgressBar>>> = OnceLock::new();

fn active() -> &'static Mutex<Option<ProgressBar>> {
    ACTIVE.get_or_init(|| Mutex::new(None))
}

impl Progress {
    /// Progress over `runs` runs of `dag`; a line per state change if `lines`. The bar is
    /// drawn only when standard error is a terminal.
    pub(super) fn start(dag: &Dag, runs: usize, lines: bool) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        if let Ok(mut active) = active().lock() {
            active.clone_from(&bar);
        }
        let progress = Progress {
            tally: Arc::new(Mutex::new(Tally::new(dag, runs))),
            _finisher: Arc::new(Finisher(bar.clone())),
            bar,
            started: Instant::now(),
            lines,
        };
        progress.redraw();
        progress
    }

    /// Counts a state change, prints its line (above the bar), and redraws.
    pub(super) fn on_event(&self, event: &TaskEvent) {
        if let Ok(mut tally) = self.tally.lock() {
            tally.record(event);
        }
        if self.lines {
            let line = super::render::event_line(event);
            match &self.bar {
                Some(bar) => bar.suspend(|| println!("{line}")),
                None => println!("{line}"),
            }
        }
        self.redraw();
    }

    fn redraw(&self) {
        if let (Some(bar), Ok(tally)) = (&self.bar, self.tally.lock()) {
            bar.set_message(tally.line(self.started.elapsed()));
        }
    }

    /// Removes the bar; what follows prints as usual.
    pub(super) fn finish(&self) {
        clear(self.bar.as_ref());
    }
}

/// Standard error for the log lines, written around the progress bar when one is drawn
/// so that the two never share a line.
pub(super) struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bar = active().lock().ok().and_then(|active| active.clone());
        match bar {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf))?,
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::DagBuilder;
    use crate::ids::DagId;
    use crate::task::{TaskError, TaskSpec};

    fn event(run: &str, task: &str, map_index: Option<u32>, state: TaskState) -> TaskEvent {
        TaskEvent {
            dag_id: DagId::new("d"),
            run_id: RunId::new(run),
            task_id: TaskId::new(task),
            map_index,
            state,
            try_number: 1,
            duration: None,
            error: None,
        }
    }

    #[test]
    fn the_tally_counts_instances_and_replaces_a_mapped_task_by_its_instances() {
        let mut b = DagBuilder::new("d");
        let list = b
            .add_task(TaskSpec::from_sync("list", |_, _| Ok(vec![1_u8, 2, 3])))
            .finish::<Vec<u8>>();
        let mut each =
            b.add_task(TaskSpec::from_sync("each", |_, i| i.get::<u8>(0)).param::<u8>("x"));
        each.expand(list);
        each.finish_mapped::<u8>();
        b.add_task(TaskSpec::from_sync("end", |_, _| Ok::<u8, TaskError>(1)));
        let dag = b.build().unwrap();
        let mut tally = Tally::new(&dag, 2);
        assert_eq!(tally.counts(), (0, 6, 0), "two runs of three tasks");
        tally.record(&event("r1", "list", None, TaskState::Running));
        assert_eq!(tally.counts(), (0, 6, 1));
        tally.record(&event("r1", "list", None, TaskState::Success));
        for i in 0..3 {
            tally.record(&event("r1", "each", Some(i), TaskState::Running));
        }
        // `each` in r1 is three instances now: 2 + 3 + 3 expected.
        assert_eq!(tally.counts(), (1, 8, 3));
        tally.record(&event("r1", "each", Some(0), TaskState::Failed));
        tally.record(&event("r1", "end", None, TaskState::Skipped));
        assert_eq!(tally.counts(), (3, 8, 2));
        // In r2 the list is empty: `each` is skipped as a whole, one instance.
        tally.record(&event("r2", "each", None, TaskState::Skipped));
        assert_eq!(tally.counts(), (4, 8, 2));
        assert_eq!(
            tally.line(Duration::from_millis(61_500)),
            "4/8 task instances done in 2 runs, 2 running, 1m 1s"
        );
    }
}

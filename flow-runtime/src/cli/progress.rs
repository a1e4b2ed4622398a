//! Progress of `dags test` and `dags backfill` on a terminal: one line at the bottom that
//! says how many task instances are done out of how many, how many run now, and for how
//! long, kept below the live state lines and the logs. Not on a terminal (a pipe, a file,
//! CI), nothing is drawn and the output is the plain lines alone.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::events::TaskEvent;
use crate::graph::Dag;
use crate::ids::{RunId, TaskId};
use crate::state::TaskState;

/// What the progress line counts: every task instance seen, by run, task and map index.
#[derive(Debug, Default)]
pub(super) struct Tally {
    /// Instances expected per run before any has expanded: one per task.
    tasks_per_run: usize,
    runs: usize,
    /// The tasks that run as several instances (mapped, or in a mapped group).
    mapped: Vec<TaskId>,
    states: HashMap<(RunId, TaskId, Option<u32>), TaskState>,
}

impl Tally {
    /// A tally for `runs` runs of `dag`.
    pub(super) fn new(dag: &Dag, runs: usize) -> Self {
        Tally {
            tasks_per_run: dag.tasks().len(),
            runs,
            mapped: dag
                .tasks()
                .iter()
                .filter(|t| t.is_mapped())
                .map(|t| t.id().clone())
                .collect(),
            states: HashMap::new(),
        }
    }

    /// Counts a state change.
    pub(super) fn record(&mut self, event: &TaskEvent) {
        let key = (event.run_id.clone(), event.task_id.clone(), event.map_index);
        self.states.insert(key, event.state);
    }

    /// (done, total, running): a mapped task counts as one instance until its instances
    /// appear, then as those.
    pub(super) fn counts(&self) -> (usize, usize, usize) {
        let expanded: usize = self
            .states
            .keys()
            .filter(|(_, _, map_index)| map_index.is_some())
            .count();
        // A mapped task's instances replace its one expected instance, run by run.
        let mut replaced: Vec<(&RunId, &TaskId)> = self
            .states
            .keys()
            .filter(|(_, task, map_index)| map_index.is_some() && self.mapped.contains(task))
            .map(|(run, task, _)| (run, task))
            .collect();
        replaced.sort_unstable();
        replaced.dedup();
        let total = (self.tasks_per_run * self.runs + expanded).saturating_sub(replaced.len());
        let finished = |state: &TaskState| state.is_finished();
        let done = self
            .states
            .iter()
            .filter(|((run, task, map_index), state)| {
                // A mapped task's own line only stands for it while it has no instances.
                finished(state) && (map_index.is_some() || !replaced.contains(&(run, task)))
            })
            .count();
        let running = self
            .states
            .values()
            .filter(|s| **s == TaskState::Running)
            .count();
        (done, total.max(done), running)
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
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
        if let Ok(mut active) = active().lock() {
            *active = None;
        }
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
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if let Ok(mut active) = active().lock() {
            *active = None;
        }
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

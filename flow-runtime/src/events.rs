//! A broadcast of what happens to task instances and runs, as it happens: the CLI's live
//! lines, an API's event stream and metrics all subscribe to the same [`Events`].
//!
//! Publishing costs nothing while nobody listens (the run loop asks
//! [`Events::is_observed`] before it builds an event), so the hot path pays only for
//! subscribers it has. A subscriber that falls more than [`Events::CAPACITY`] events behind
//! loses the oldest ones and is told how many (tokio's broadcast `Lagged`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use crate::ids::{DagId, RunId, TaskId};
use crate::state::{RunState, TaskState};

/// A state change of one task instance.
#[derive(Clone, Debug)]
pub struct TaskEvent {
    /// The DAG.
    pub dag_id: DagId,
    /// The run.
    pub run_id: RunId,
    /// The task.
    pub task_id: TaskId,
    /// The instance's map index, for an instance of a mapped task.
    pub map_index: Option<u32>,
    /// Its new state.
    pub state: TaskState,
    /// The try it concerns.
    pub try_number: u32,
    /// How long the try ran, for finished tries.
    pub duration: Option<Duration>,
    /// The error of a failed try.
    pub error: Option<String>,
}

/// A state change of one DAG run.
#[derive(Clone, Debug)]
pub struct RunEvent {
    /// The DAG.
    pub dag_id: DagId,
    /// The run.
    pub run_id: RunId,
    /// Its new state (`running` when this process starts or resumes it).
    pub state: RunState,
}

/// Anything published on [`Events`].
#[derive(Clone, Debug)]
pub enum Event {
    /// A task instance changed state.
    Task(TaskEvent),
    /// A run changed state.
    Run(RunEvent),
}

type Observer = Arc<dyn Fn(&TaskEvent) + Send + Sync>;

/// The hub: a broadcast channel, plus synchronous observers of task events.
#[derive(Clone)]
pub struct Events {
    sender: broadcast::Sender<Event>,
    observers: Vec<Observer>,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            sender: broadcast::Sender::new(Self::CAPACITY),
            observers: Vec::new(),
        }
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("subscribers", &self.sender.receiver_count())
            .field("observers", &self.observers.len())
            .finish()
    }
}

impl Events {
    /// How many events a subscriber may fall behind before it loses the oldest.
    pub const CAPACITY: usize = 4096;

    /// A new receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }

    /// Adds an observer called synchronously, in order, on every task event (before the
    /// change is durable); for output that must keep step with the run, like the CLI's lines.
    pub fn observe(&mut self, observer: impl Fn(&TaskEvent) + Send + Sync + 'static) {
        self.observers.push(Arc::new(observer));
    }

    /// Whether anybody listens.
    pub fn is_observed(&self) -> bool {
        !self.observers.is_empty() || self.sender.receiver_count() > 0
    }

    /// Publishes a task event.
    pub fn task(&self, event: TaskEvent) {
        for observer in &self.observers {
            observer(&event);
        }
        if self.sender.receiver_count() > 0 {
            // An error only means the last receiver went away meanwhile.
            let _ = self.sender.send(Event::Task(event));
        }
    }

    /// Publishes a run event.
    pub fn run(&self, event: RunEvent) {
        if self.sender.receiver_count() > 0 {
            let _ = self.sender.send(Event::Run(event));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn event(state: TaskState) -> TaskEvent {
        TaskEvent {
            dag_id: DagId::new("d"),
            run_id: RunId::new("r"),
            task_id: TaskId::new("t"),
            map_index: None,
            state,
            try_number: 1,
            duration: None,
            error: None,
        }
    }

    #[test]
    fn subscribers_and_observers_see_events_in_order() {
        let mut events = Events::default();
        assert!(!events.is_observed());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        events.observe(move |e| sink.lock().unwrap().push(e.state));
        let mut rx = events.subscribe();
        events.task(event(TaskState::Running));
        events.task(event(TaskState::Success));
        events.run(RunEvent {
            dag_id: DagId::new("d"),
            run_id: RunId::new("r"),
            state: RunState::Success,
        });
        assert_eq!(
            *seen.lock().unwrap(),
            [TaskState::Running, TaskState::Success]
        );
        let mut received = Vec::new();
        while let Ok(e) = rx.try_recv() {
            received.push(match e {
                Event::Task(t) => t.state.to_string(),
                Event::Run(r) => format!("run {}", r.state),
            });
        }
        assert_eq!(received, ["running", "success", "run success"]);
    }

    #[test]
    fn a_lagging_subscriber_is_told_how_much_it_missed() {
        let events = Events::default();
        let mut rx = events.subscribe();
        for _ in 0..Events::CAPACITY + 3 {
            events.task(event(TaskState::Running));
        }
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(3))
        ));
    }
}

//! One try at a time, polled on the scheduler's own task: the simplest executor, for tests
//! and debugging (a failure's log is never interleaved with another try's).

use std::task::Poll;

use super::{BoxFuture, Finished, TaskExecutor, Work};

/// Runs one try at a time. The try lives in the executor, not in the future
/// [`TaskExecutor::next_finished`] returns, so the scheduler may stop waiting (to commit,
/// or to start a retry) without cancelling it.
#[derive(Default)]
pub(crate) struct Sequential {
    current: Option<BoxFuture<'static, Finished>>,
}

impl Sequential {
    /// An idle executor.
    pub(crate) fn new() -> Self {
        Self::default()
    }
}

impl TaskExecutor for Sequential {
    fn capacity(&self) -> usize {
        1
    }

    fn running(&self) -> usize {
        usize::from(self.current.is_some())
    }

    fn offer(&mut self, work: Work) {
        debug_assert!(self.current.is_none(), "offered a second try at once");
        self.current = Some(Box::pin(work.run()));
    }

    fn next_finished(&mut self) -> BoxFuture<'_, Option<Finished>> {
        Box::pin(std::future::poll_fn(move |cx| {
            let Some(current) = self.current.as_mut() else {
                return Poll::Ready(None);
            };
            match current.as_mut().poll(cx) {
                Poll::Ready(finished) => {
                    self.current = None;
                    Poll::Ready(Some(finished))
                }
                Poll::Pending => Poll::Pending,
            }
        }))
    }

    fn try_next_finished(&mut self) -> Option<Finished> {
        // The try only advances while the scheduler waits in `next_finished`.
        None
    }

    fn abandon(&mut self) {
        self.current = None;
    }
}

//! The running side: executors take task instances whose `running` state is durable, run
//! them, and hand back how each try ended. They decide nothing: which instance runs, what a
//! failure means and what happens downstream are the scheduler's (see
//! [`crate::scheduler`]).
//!
//! Two kinds run in the process: [`LocalPool`] (tokio tasks, many at once) and
//! [`Sequential`] (one at a time, polled on the run loop's own task, for tests and
//! debugging). A kind that runs tries elsewhere (workers claiming from a shared store)
//! implements the same [`TaskExecutor`] trait, reporting outcomes it reads back.
//!
//! Calling a task is shared by every kind ([`Work::run`]): inputs kept in the object store
//! are fetched, the function is called (sync ones on tokio's blocking pool), a panic fails
//! the try and nothing else, `execution_timeout` is applied, and large XCom values are
//! uploaded before the outcome is reported, all in the task's own future.

#[cfg(test)]
mod group_mapping_tests;
mod local_pool;
#[cfg(test)]
mod mapping_tests;
mod sequential;
#[cfg(test)]
mod tests;

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tracing::Instrument;

pub(crate) use local_pool::LocalPool;
pub(crate) use sequential::Sequential;

use crate::ids::TaskInstanceKey;
use crate::logs::TryLog;
use crate::metrics::Metrics;
use crate::objects::{self, Objects, StagedXComs};
use crate::store::LogLine;
use crate::task::TaskError;
use crate::task::context::TaskContext;
use crate::task::retry::{self, RetryPolicy};
use crate::task::{Inputs, PendingInput, TaskFn, TaskResult};

/// A future the executors box.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One try to run: everything the running side needs, decided and made durable by the
/// scheduler before it is offered.
pub(crate) struct Work {
    /// The scheduler's handle for the instance, handed back in [`Finished`].
    pub(crate) slot: usize,
    pub(crate) key: TaskInstanceKey,
    pub(crate) ctx: TaskContext,
    pub(crate) inputs: Result<Vec<PendingInput>, TaskError>,
    pub(crate) function: TaskFn,
    /// The task's retry policy, which judges the errors of the try where they are raised.
    pub(crate) retry_policy: Option<Arc<RetryPolicy>>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) objects: Option<Objects>,
    /// The try's span (its log lines are captured inside it).
    pub(crate) span: tracing::Span,
    /// Where the try's log lines collect; the scheduler drains it with each commit.
    pub(crate) log: TryLog,
    /// When its start was decided, and the metrics that count the wait, if on.
    pub(crate) claimed: Option<(Instant, Arc<Metrics>)>,
}

/// How one try ended, as the running side reports it.
pub(crate) struct Finished {
    pub(crate) slot: usize,
    pub(crate) result: Result<StagedXComs, TaskError>,
    /// The log lines not drained yet.
    pub(crate) logs: Vec<LogLine>,
    pub(crate) elapsed: Duration,
    pub(crate) end: DateTime<Utc>,
}

impl Work {
    /// Runs the try to its end.
    pub(crate) fn run(self) -> impl Future<Output = Finished> + Send + 'static {
        let Work {
            slot,
            key,
            ctx,
            inputs,
            function,
            retry_policy,
            timeout,
            objects,
            span,
            log,
            claimed,
        } = self;
        async move {
            if let Some((at, metrics)) = claimed {
                metrics.started(&key.dag_id, at.elapsed());
            }
            let clock = Instant::now();
            let inputs = match inputs {
                Ok(pending) => objects::resolve_inputs(objects.as_ref(), pending).await,
                Err(e) => Err(e),
            };
            let result = match (inputs, timeout) {
                (Ok(inputs), None) => call(function, retry_policy, ctx.clone(), inputs).await,
                (Ok(inputs), Some(limit)) => {
                    tokio::time::timeout(limit, call(function, retry_policy, ctx.clone(), inputs))
                        .await
                        .unwrap_or(Err(TaskError::TimedOut(limit)))
                }
                (Err(e), _) => Err(e),
            };
            // Large values go to the object store here, off the coordinating loop.
            let result = match result {
                Ok(output) => {
                    objects::stage(objects.as_ref(), &key, output, ctx.take_pushed()).await
                }
                Err(e) => Err(e),
            };
            // A sensor's "not yet" in reschedule mode ends the poke, not the try.
            if let Err(error) = &result
                && !matches!(error, TaskError::Reschedule { .. })
            {
                tracing::error!("try failed: {error}");
            }
            Finished {
                slot,
                result,
                logs: log.take(),
                elapsed: clock.elapsed(),
                end: Utc::now(),
            }
        }
        .instrument(span)
    }
}

/// Runs tries. The scheduler offers work only while [`TaskExecutor::running`] is below
/// [`TaskExecutor::capacity`], and waits for outcomes with [`TaskExecutor::next_finished`].
pub(crate) trait TaskExecutor: Send {
    /// How many tries may run at once.
    fn capacity(&self) -> usize;
    /// How many tries are running (offered and not yet reported).
    fn running(&self) -> usize;
    /// Starts a try.
    fn offer(&mut self, work: Work);
    /// The next try to end; `None` when none is running. Dropping the future before it
    /// resolves loses nothing: the tries keep running and are reported by a later call.
    fn next_finished(&mut self) -> BoxFuture<'_, Option<Finished>>;
    /// A try that has already ended, without waiting.
    fn try_next_finished(&mut self) -> Option<Finished>;
    /// Abandons every running try (a run timeout or the end of a stop's grace period).
    fn abandon(&mut self);
}

/// Calls a task function, turning a panic into a failed try.
pub(crate) async fn call(
    function: TaskFn,
    policy: Option<Arc<RetryPolicy>>,
    ctx: TaskContext,
    inputs: Inputs,
) -> TaskResult {
    // Objects that arrive without settings (an upstream's `ObjectPath`) use the run's store.
    let objects = ctx.objects().cloned();
    match function {
        TaskFn::Async(f) => {
            let future = retry::scope(policy, CatchUnwind(f(ctx, inputs)));
            match objects::with_run_objects(objects, future).await {
                Ok(result) => result,
                Err(payload) => Err(TaskError::Panicked(panic_message(payload.as_ref()))),
            }
        }
        TaskFn::Sync(f) => {
            let span = tracing::Span::current();
            let call = move || {
                objects::with_run_objects_sync(objects, || {
                    retry::sync_scope(policy, || span.in_scope(|| f(&ctx, inputs)))
                })
            };
            match tokio::task::spawn_blocking(call).await {
                Ok(result) => result,
                Err(e) if e.is_panic() => {
                    Err(TaskError::Panicked(panic_message(e.into_panic().as_ref())))
                }
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

//! Per-try log capture: everything a task writes through `tracing` while a try runs is
//! collected into that try's buffer and stored with its outcome.
//!
//! The executor opens a `task` span per try and attaches a [`TryLog`] to it; the
//! [`CaptureLayer`], installed beside the usual formatting layer (the CLI does this), copies
//! each event inside such a span into the buffer. Without the layer nothing is captured
//! and nothing costs.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use tracing::field::{Field, Visit};
use tracing::{Event, Span, Subscriber};
use tracing_subscriber::Registry;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::store::LogLine;

/// The lines of one try, shared between its span and the executor.
#[derive(Clone, Default)]
pub struct TryLog(Arc<Mutex<Vec<LogLine>>>);

impl TryLog {
    /// Attaches this buffer to `span`, so the capture layer fills it; returns whether a
    /// capturing subscriber is installed.
    pub fn attach(&self, span: &Span) -> bool {
        span.with_subscriber(|(id, dispatch)| {
            let Some(registry) = dispatch.downcast_ref::<Registry>() else {
                return false;
            };
            let Some(span) = registry.span(id) else {
                return false;
            };
            span.extensions_mut().insert(self.clone());
            true
        })
        .unwrap_or(false)
    }

    /// Takes the lines captured so far.
    pub fn take(&self) -> Vec<LogLine> {
        std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    fn push(&self, line: LogLine) {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(line);
    }
}

/// A `tracing` layer that copies events inside a try's span into its [`TryLog`].
#[derive(Clone, Copy, Debug, Default)]
pub struct CaptureLayer;

impl<S> tracing_subscriber::Layer<S> for CaptureLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        for span in scope {
            let log = span.extensions().get::<TryLog>().cloned();
            if let Some(log) = log {
                let mut visitor = Message::default();
                event.record(&mut visitor);
                log.push(LogLine {
                    at: Utc::now(),
                    level: event.metadata().level().to_string(),
                    message: visitor.0,
                });
                return;
            }
        }
    }
}

/// Renders an event as `message key=value ...`.
#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn events_inside_an_attached_span_are_captured_with_fields() {
        let subscriber = Registry::default().with(CaptureLayer);
        tracing::subscriber::with_default(subscriber, || {
            let log = TryLog::default();
            let span = tracing::info_span!("task");
            assert!(log.attach(&span));
            span.in_scope(|| {
                tracing::info!(rows = 3, "loaded");
                let _inner = tracing::debug_span!("inner").entered();
                tracing::warn!("nested");
            });
            tracing::info!("outside");
            let lines = log.take();
            let text: Vec<_> = lines
                .iter()
                .map(|l| format!("{} {}", l.level, l.message))
                .collect();
            assert_eq!(text, ["INFO loaded rows=3", "WARN nested"]);
        });
    }

    #[test]
    fn without_the_layer_nothing_is_attached() {
        let log = TryLog::default();
        assert!(!log.attach(&tracing::info_span!("task")));
    }
}

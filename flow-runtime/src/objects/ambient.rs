//! The object store of the run whose task is executing, for objects that arrive without
//! settings of their own: an [`super::ObjectPath`] deserialized from an upstream result
//! carries only its URL, never credentials, and reaches its store with the run's.

use std::future::Future;

use super::Objects;

tokio::task_local! {
    static RUN_OBJECTS: Option<Objects>;
}

/// Runs an async task's future with `objects` as its run's store.
pub(crate) async fn scope<F: Future>(objects: Option<Objects>, future: F) -> F::Output {
    RUN_OBJECTS.scope(objects, future).await
}

/// Runs a sync task's call with `objects` as its run's store.
pub(crate) fn sync_scope<R>(objects: Option<Objects>, call: impl FnOnce() -> R) -> R {
    RUN_OBJECTS.sync_scope(objects, call)
}

/// The store of the run whose task is executing here, if any.
pub(crate) fn current() -> Option<Objects> {
    RUN_OBJECTS.try_with(Clone::clone).ok().flatten()
}

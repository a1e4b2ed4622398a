//! The runtime every object store operation runs on.
//!
//! Object I/O runs on two threads of its own, never on the caller's runtime: the HTTP
//! client's connections then outlive any one caller's runtime (a test's, `Dag::test`'s),
//! and a sync task can wait for an answer on a plain channel, which never panics, unlike
//! `Handle::block_on` inside a runtime. It is started on first use and lives as long as the
//! process.

use std::future::Future;
use std::sync::OnceLock;

use super::ObjectError;

static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();

fn runtime() -> Result<&'static tokio::runtime::Runtime, ObjectError> {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("flow-objects")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| ObjectError::Runtime(format!("cannot start the object store's threads: {e}")))
}

/// Runs `future` on the object store's threads and awaits its result from any runtime.
pub(super) async fn run<T, F>(future: F) -> Result<T, ObjectError>
where
    T: Send + 'static,
    F: Future<Output = Result<T, ObjectError>> + Send + 'static,
{
    runtime()?
        .spawn(future)
        .await
        .map_err(|e| ObjectError::Runtime(format!("an object store operation was lost: {e}")))?
}

/// Runs `future` on the object store's threads and blocks the calling thread until it
/// ends. Safe from any thread, including a runtime's (it then holds that thread while it
/// waits; async code should call [`run`]).
pub(super) fn block<T, F>(future: F) -> Result<T, ObjectError>
where
    T: Send + 'static,
    F: Future<Output = Result<T, ObjectError>> + Send + 'static,
{
    let (answer, wait) = std::sync::mpsc::sync_channel(1);
    runtime()?.spawn(async move {
        // The receiver is gone only if the caller's thread died; nothing to tell then.
        let _ = answer.send(future.await);
    });
    wait.recv().map_err(|_| {
        ObjectError::Runtime("an object store operation ended without an answer".to_string())
    })?
}

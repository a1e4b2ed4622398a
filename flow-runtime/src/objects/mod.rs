//! Objects: XCom values too large for a database row, and the artifacts tasks put and get
//! (models, parquet files), kept in an object store through the `object_store` crate.
//!
//! The store is the directory `$FLOW_HOME/objects` unless `FLOW_OBJECT_STORE` names
//! another (`s3://bucket/prefix` with the `s3` feature; see [`ObjectStoreConfig`]). Under
//! its root each run owns one prefix:
//!
//! ```text
//! {dag_id}/{run_id}/xcom/{task_id}/{map_index}/{xcom key}   XCom values above the threshold
//! {dag_id}/{run_id}/artifacts/{artifact key}                what tasks put with ctx.artifacts()
//! ```
//!
//! so deleting a run's history ([`crate::Executor::delete_run`]) removes everything under
//! `{dag_id}/{run_id}/`. An XCom whose encoding is larger than the threshold (default
//! 64 KiB) is uploaded by the task's own future before its success reaches the executor's
//! loop, and the database row holds only the object's key; readers fetch it transparently.
//! Every operation runs on the store's own threads, so sync and async callers alike can
//! use it without blocking the executor.

mod ambient;
mod artifacts;
mod config;
mod io;
mod path;
mod xcom;

pub(crate) use ambient::{scope as with_run_objects, sync_scope as with_run_objects_sync};
pub use artifacts::{ArtifactKey, Artifacts};
pub(crate) use config::parse_size;
pub use config::{DEFAULT_THRESHOLD, OBJECT_STORE_ENV, ObjectStoreConfig, THRESHOLD_ENV};
pub use path::ObjectPath;
pub(crate) use xcom::{StagedXComs, load_blocking, resolve_inputs, stage};

use std::sync::Arc;

use futures_util::{StreamExt as _, TryStreamExt as _};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};

use crate::ids::{DagId, RunId, TaskInstanceKey};
use crate::xcom::{ObjectRef, StoredXCom, XComBlob};

/// An object store operation or setting that failed, naming the store and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// `FLOW_OBJECT_STORE` (or [`ObjectStoreConfig::parse`]) got a URL flow cannot use.
    #[error("invalid object store URL `{url}`: {reason}; supported: {supported}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
        /// The forms this build accepts.
        supported: &'static str,
    },
    /// A threshold or store option that does not parse.
    #[error("invalid {setting} `{value}`: {reason}")]
    BadSetting {
        /// What was being set.
        setting: &'static str,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An artifact key that cannot name an object.
    #[error("invalid artifact key `{key}`: {reason}; use keys like `models/model.bin`")]
    BadKey {
        /// The key as given.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A path or URL that cannot name an object (see [`ObjectPath`]).
    #[error(
        "invalid object path `{path}`: {reason}; give a URL like s3://bucket/raw/data.csv or \
         file:///srv/raw/data.csv, or a local path"
    )]
    BadPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No object at a URL (an [`ObjectPath`] read before anything was written there).
    #[error("nothing at `{url}`; check the URL, or write the object first")]
    NothingAt {
        /// The object's URL.
        url: String,
    },
    /// The store cannot be set up (a directory that cannot be created, a bad S3 setting).
    #[error("cannot use the object store {location}: {reason}")]
    Unusable {
        /// The store.
        location: String,
        /// Why.
        reason: String,
    },
    /// An object that is not there.
    #[error(
        "no object `{key}` in the object store {location}; if the run's objects were written \
         elsewhere, point FLOW_OBJECT_STORE at that store"
    )]
    NotFound {
        /// The store.
        location: String,
        /// The object's key below the store's root.
        key: String,
    },
    /// An artifact that no task of the run has put.
    #[error(
        "no artifact `{key}` in run `{run_id}` of DAG `{dag_id}` (object store {location}); \
         put it first, or see the run's artifacts with `list()`"
    )]
    ArtifactMissing {
        /// The artifact's key.
        key: String,
        /// The DAG.
        dag_id: DagId,
        /// The run.
        run_id: RunId,
        /// The store.
        location: String,
    },
    /// A request the store did not carry out (unreachable, refused, timed out).
    #[error(
        "the object store {location} failed to {action}: {reason}; check that it is reachable \
         and that FLOW_OBJECT_STORE and the AWS_* settings are right"
    )]
    Failed {
        /// The store.
        location: String,
        /// What was being done, with the object's key.
        action: String,
        /// The store's reason, with its causes.
        reason: String,
    },
    /// A local file given to `put_file` or `get_file` cannot be read or written.
    #[error("cannot {action} {path}: {reason}")]
    File {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: String,
        /// The system's reason.
        reason: String,
    },
    /// Something needs an object store and the executor has none.
    #[error(
        "{what} needs an object store, and this run has none: give the executor one with \
         `Executor::object_store` (the CLI uses FLOW_OBJECT_STORE, default $FLOW_HOME/objects)"
    )]
    NotConfigured {
        /// What needed it.
        what: String,
    },
    /// The store's threads could not run the operation.
    #[error("{0}")]
    Runtime(String),
}

/// An error and its causes, as one line.
pub(crate) fn reason(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

/// A connected object store: where large XCom values and artifacts live.
///
/// Cloning is cheap and shares the connection. Make one with [`ObjectStoreConfig::connect`]
/// and give it to [`crate::Executor::object_store`].
#[derive(Clone)]
pub struct Objects {
    inner: Arc<Inner>,
}

struct Inner {
    config: ObjectStoreConfig,
    store: Arc<dyn ObjectStore>,
    root: Path,
    location: String,
    threshold: usize,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Objects")
            .field("location", &self.inner.location)
            .field("threshold", &self.inner.threshold)
            .finish_non_exhaustive()
    }
}

impl Objects {
    fn new(
        config: ObjectStoreConfig,
        store: Arc<dyn ObjectStore>,
        root: Path,
        location: String,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                threshold: config.threshold_bytes(),
                config,
                store,
                root,
                location,
            }),
        }
    }

    /// A store in this process's memory with the default threshold (what `Dag::test` and
    /// `TaskContext::for_test` use).
    pub fn in_memory() -> Self {
        Self::memory(ObjectStoreConfig::in_memory())
    }

    fn memory(config: ObjectStoreConfig) -> Self {
        let location = config.to_string();
        Self::new(
            config,
            Arc::new(object_store::memory::InMemory::new()),
            Path::default(),
            location,
        )
    }

    /// The store, as named in messages (`file:///...`, `s3://bucket/prefix (endpoint ...)`).
    pub fn location(&self) -> &str {
        &self.inner.location
    }

    /// The size in bytes above which an encoded XCom value goes to the store.
    pub fn threshold(&self) -> usize {
        self.inner.threshold
    }

    /// The artifacts of one run.
    pub fn artifacts(&self, dag_id: &DagId, run_id: &RunId) -> Artifacts {
        Artifacts::new(Some(self.clone()), dag_id.clone(), run_id.clone())
    }

    /// The value of a stored XCom: itself when inline, else fetched from the store.
    pub async fn load(&self, stored: &StoredXCom) -> Result<XComBlob, ObjectError> {
        match stored {
            StoredXCom::Inline(blob) => Ok(blob.clone()),
            StoredXCom::Object(object) => {
                let bytes = self.get(&self.reference(object)?).await?;
                Ok(XComBlob::from_parts(bytes, object.type_name().to_string()))
            }
        }
    }

    /// [`Objects::load`] for blocking code (sync tasks, the CLI).
    pub fn load_blocking(&self, stored: &StoredXCom) -> Result<XComBlob, ObjectError> {
        match stored {
            StoredXCom::Inline(blob) => Ok(blob.clone()),
            StoredXCom::Object(_) => {
                let (this, stored) = (self.clone(), stored.clone());
                io::block(async move { this.load(&stored).await })
            }
        }
    }

    /// Deletes every object of a run (its offloaded XComs and its artifacts); returns how
    /// many there were.
    pub async fn delete_run(&self, dag_id: &DagId, run_id: &RunId) -> Result<usize, ObjectError> {
        let prefix = self.full(&run_prefix(dag_id, run_id));
        let (store, location) = (self.inner.store.clone(), self.inner.location.clone());
        let shown = prefix.to_string();
        io::run(async move {
            let failed = |e: object_store::Error| ObjectError::Failed {
                location: location.clone(),
                action: format!("delete the objects under `{shown}`"),
                reason: reason(&e),
            };
            let found: Vec<Path> = store
                .list(Some(&prefix))
                .map_ok(|meta| meta.location)
                .try_collect()
                .await
                .map_err(failed)?;
            let count = found.len();
            let locations = futures_util::stream::iter(found.into_iter().map(Ok)).boxed();
            store
                .delete_stream(locations)
                .try_for_each(|_| async { Ok(()) })
                .await
                .or_else(|e| match e {
                    // Deleted meanwhile: what was asked for holds.
                    object_store::Error::NotFound { .. } => Ok(()),
                    e => Err(failed(e)),
                })?;
            Ok(count)
        })
        .await
    }

    /// The path of a stored reference, checked.
    fn reference(&self, object: &ObjectRef) -> Result<Path, ObjectError> {
        Path::parse(object.key()).map_err(|e| ObjectError::NotFound {
            location: self.inner.location.clone(),
            key: format!("{} (not a valid key: {e})", object.key()),
        })
    }

    /// `relative` below the store's root.
    fn full(&self, relative: &Path) -> Path {
        self.inner
            .root
            .parts()
            .chain(relative.parts())
            .collect::<Path>()
    }

    /// `full` relative to the store's root.
    fn relative(&self, full: &Path) -> Path {
        match full.prefix_match(&self.inner.root) {
            Some(parts) => parts.collect(),
            None => full.clone(),
        }
    }

    fn failure(&self, action: &str, key: &Path, error: &object_store::Error) -> ObjectError {
        match error {
            object_store::Error::NotFound { .. } => ObjectError::NotFound {
                location: self.inner.location.clone(),
                key: key.to_string(),
            },
            e => ObjectError::Failed {
                location: self.inner.location.clone(),
                action: format!("{action} `{key}`"),
                reason: reason(e),
            },
        }
    }

    /// Writes `bytes` at `key` (relative), replacing what was there; the object appears
    /// whole or not at all.
    async fn put(&self, key: &Path, bytes: Vec<u8>) -> Result<(), ObjectError> {
        let (this, key) = (self.clone(), key.clone());
        io::run(async move {
            this.inner
                .store
                .put(&this.full(&key), PutPayload::from(bytes))
                .await
                .map(drop)
                .map_err(|e| this.failure("write", &key, &e))
        })
        .await
    }

    /// Reads the object at `key` (relative).
    async fn get(&self, key: &Path) -> Result<Vec<u8>, ObjectError> {
        let (this, key) = (self.clone(), key.clone());
        io::run(async move {
            let read = async {
                let result = this.inner.store.get(&this.full(&key)).await?;
                result.bytes().await
            };
            read.await
                .map(|bytes| bytes.to_vec())
                .map_err(|e| this.failure("read", &key, &e))
        })
        .await
    }

    /// Whether an object exists at `key` (relative).
    async fn exists(&self, key: &Path) -> Result<bool, ObjectError> {
        let (this, key) = (self.clone(), key.clone());
        io::run(async move {
            match this.inner.store.head(&this.full(&key)).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(this.failure("look up", &key, &e)),
            }
        })
        .await
    }

    /// The keys (relative to `prefix`) of every object under `prefix` (relative), sorted.
    async fn list(&self, prefix: &Path) -> Result<Vec<String>, ObjectError> {
        let (this, prefix) = (self.clone(), prefix.clone());
        io::run(async move {
            let full = this.full(&prefix);
            let found: Vec<Path> = this
                .inner
                .store
                .list(Some(&full))
                .map_ok(|meta| meta.location)
                .try_collect()
                .await
                .map_err(|e| this.failure("list", &prefix, &e))?;
            let mut keys: Vec<String> = found
                .iter()
                .filter_map(|path| {
                    let inside = this.relative(path);
                    let below: Path = inside.prefix_match(&prefix)?.collect();
                    Some(below.to_string())
                })
                .collect();
            keys.sort_unstable();
            Ok(keys)
        })
        .await
    }
}

/// Whether the object `key_or_url` names exists: a URL (`s3://bucket/key`,
/// `file:///path`), or a key below the root of `run_objects` (the object-key sensor's poke).
/// A URL on the same kind of store as `run_objects` uses its settings (endpoint,
/// credentials).
pub(crate) fn object_exists_blocking(
    run_objects: Option<&Objects>,
    key_or_url: &str,
) -> Result<bool, ObjectError> {
    if key_or_url.contains("://") {
        return ObjectPath::resolve(key_or_url, run_objects)?.exists();
    }
    let objects = run_objects
        .ok_or_else(|| ObjectError::NotConfigured {
            what: format!("the object key `{key_or_url}`"),
        })?
        .clone();
    let path = Path::parse(key_or_url).map_err(|e| ObjectError::BadKey {
        key: key_or_url.to_string(),
        reason: e.to_string(),
    })?;
    io::block(async move { objects.exists(&path).await })
}

/// `{dag_id}/{run_id}`: everything a run owns.
fn run_prefix(dag_id: &DagId, run_id: &RunId) -> Path {
    Path::from_iter([dag_id.as_str(), run_id.as_str()])
}

/// Where an offloaded XCom value lives, relative to the store's root.
fn xcom_path(key: &TaskInstanceKey, name: &str) -> Path {
    let map_index = key.map_index.to_string();
    run_prefix(&key.dag_id, &key.run_id)
        .parts()
        .chain(
            ["xcom", key.task_id.as_str(), map_index.as_str(), name]
                .into_iter()
                .map(Into::into),
        )
        .collect()
}

/// Where a run's artifacts live, relative to the store's root.
fn artifacts_prefix(dag_id: &DagId, run_id: &RunId) -> Path {
    run_prefix(dag_id, run_id).join("artifacts")
}

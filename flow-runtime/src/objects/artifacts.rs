//! The artifacts API: files and bytes a task keeps for the rest of its run (models,
//! parquet), by key, in the object store.

use std::future::Future;
use std::path::{Path as FsPath, PathBuf};

use futures_util::TryStreamExt as _;
use object_store::ObjectStoreExt as _;
use object_store::path::Path;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::{ObjectError, Objects, artifacts_prefix, io, reason};
use crate::ids::{DagId, RunId};

/// The longest artifact key, in bytes (S3 allows 1,024 for the whole object key).
const MAX_KEY_BYTES: usize = 512;

/// How much of a file is read or written at a time.
const CHUNK_BYTES: usize = 1 << 20;

/// A checked artifact key: `/`-separated segments of ASCII letters, digits and `._-=+,@`,
/// none empty, `.` or `..`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ArtifactKey(String);

impl ArtifactKey {
    /// Checks `key`.
    ///
    /// ```
    /// use flow_runtime::objects::ArtifactKey;
    /// assert!(ArtifactKey::parse("models/date=2025-01-01/model.bin").is_ok());
    /// assert!(ArtifactKey::parse("models/../secrets").is_err());
    /// ```
    pub fn parse(key: &str) -> Result<Self, ObjectError> {
        let bad = |reason: String| ObjectError::BadKey {
            key: key.to_string(),
            reason,
        };
        if key.is_empty() {
            return Err(bad("it is empty".into()));
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(bad(format!("it is longer than {MAX_KEY_BYTES} bytes")));
        }
        if let Some(c) = key
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || "/._-=+,@".contains(c)))
        {
            return Err(bad(format!(
                "the character {c:?} is not allowed (only ASCII letters, digits, `/` and `._-=+,@`)"
            )));
        }
        for segment in key.split('/') {
            match segment {
                "" => {
                    return Err(bad(
                        "it has an empty segment (a leading, trailing or doubled `/`)".into(),
                    ));
                }
                "." | ".." => return Err(bad(format!("`{segment}` segments are not allowed"))),
                _ => {}
            }
        }
        Ok(Self(key.to_string()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ArtifactKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The artifacts of one run: bytes and files stored by key, shared by all its tasks.
///
/// Get it from [`crate::TaskContext::artifacts`]. In a sync task use the plain methods; in an
/// async task use the `_async` ones. The plain methods also work in async code (the I/O
/// runs on the object store's own threads and never panics), but they hold the calling
/// thread while they wait.
///
/// ```
/// use flow_runtime::prelude::*;
/// let ctx = TaskContext::for_test("ml", "train");
/// let artifacts = ctx.artifacts();
/// artifacts.put("models/model.bin", b"weights".to_vec())?;
/// assert_eq!(artifacts.get("models/model.bin")?, b"weights");
/// assert_eq!(artifacts.list()?, ["models/model.bin"]);
/// assert!(artifacts.get("models/missing.bin").unwrap_err().to_string().contains("no artifact"));
/// # Ok::<(), flow_runtime::objects::ObjectError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Artifacts {
    objects: Option<Objects>,
    dag_id: DagId,
    run_id: RunId,
}

impl Artifacts {
    pub(crate) fn new(objects: Option<Objects>, dag_id: DagId, run_id: RunId) -> Self {
        Self {
            objects,
            dag_id,
            run_id,
        }
    }

    /// The store and the object path of `key`.
    fn locate(&self, key: &str) -> Result<(&Objects, ArtifactKey, Path), ObjectError> {
        let key = ArtifactKey::parse(key)?;
        let objects = self.objects()?;
        let path = artifacts_prefix(&self.dag_id, &self.run_id)
            .parts()
            .chain(key.as_str().split('/').map(Into::into))
            .collect();
        Ok((objects, key, path))
    }

    fn objects(&self) -> Result<&Objects, ObjectError> {
        self.objects
            .as_ref()
            .ok_or_else(|| ObjectError::NotConfigured {
                what: format!("the artifacts of run `{}`", self.run_id),
            })
    }

    /// A missing object is a missing artifact of this run.
    fn missing(&self, key: &ArtifactKey, objects: &Objects, error: ObjectError) -> ObjectError {
        match error {
            ObjectError::NotFound { .. } => ObjectError::ArtifactMissing {
                key: key.to_string(),
                dag_id: self.dag_id.clone(),
                run_id: self.run_id.clone(),
                location: objects.location().to_string(),
            },
            e => e,
        }
    }

    /// Runs an `_async` method to completion from blocking code.
    fn wait<T, F, Fut>(&self, operation: F) -> Result<T, ObjectError>
    where
        T: Send + 'static,
        F: FnOnce(Self) -> Fut,
        Fut: Future<Output = Result<T, ObjectError>> + Send + 'static,
    {
        io::block(operation(self.clone()))
    }

    /// Stores `bytes` under `key`, replacing what was there.
    pub async fn put_async(&self, key: &str, bytes: impl Into<Vec<u8>>) -> Result<(), ObjectError> {
        let (objects, _, path) = self.locate(key)?;
        objects.put(&path, bytes.into()).await
    }

    /// Stores `bytes` under `key` (blocking).
    pub fn put(&self, key: &str, bytes: impl Into<Vec<u8>>) -> Result<(), ObjectError> {
        let (key, bytes) = (key.to_string(), bytes.into());
        self.wait(move |this| async move { this.put_async(&key, bytes).await })
    }

    /// The bytes stored under `key`; a missing key is an error naming it and the run.
    pub async fn get_async(&self, key: &str) -> Result<Vec<u8>, ObjectError> {
        let (objects, key, path) = self.locate(key)?;
        objects
            .get(&path)
            .await
            .map_err(|e| self.missing(&key, objects, e))
    }

    /// The bytes stored under `key` (blocking).
    pub fn get(&self, key: &str) -> Result<Vec<u8>, ObjectError> {
        let key = key.to_string();
        self.wait(move |this| async move { this.get_async(&key).await })
    }

    /// Uploads the file at `path` under `key`, streaming it (large files go up in parts);
    /// returns its size.
    pub async fn put_file_async(
        &self,
        key: &str,
        path: impl AsRef<FsPath>,
    ) -> Result<u64, ObjectError> {
        let (objects, _, object) = self.locate(key)?;
        objects.put_file(object, path.as_ref().to_path_buf()).await
    }

    /// Uploads a file under `key` (blocking); returns its size.
    pub fn put_file(&self, key: &str, path: impl AsRef<FsPath>) -> Result<u64, ObjectError> {
        let (key, path) = (key.to_string(), path.as_ref().to_path_buf());
        self.wait(move |this| async move { this.put_file_async(&key, path).await })
    }

    /// Downloads `key` into the file `dest` (its directory must exist), streaming it; `dest`
    /// appears whole or not at all. Returns the size.
    pub async fn get_file_async(
        &self,
        key: &str,
        dest: impl AsRef<FsPath>,
    ) -> Result<u64, ObjectError> {
        let (objects, key, object) = self.locate(key)?;
        objects
            .get_file(object, dest.as_ref().to_path_buf())
            .await
            .map_err(|e| self.missing(&key, objects, e))
    }

    /// Downloads `key` into the file `dest` (blocking); returns the size.
    pub fn get_file(&self, key: &str, dest: impl AsRef<FsPath>) -> Result<u64, ObjectError> {
        let (key, dest) = (key.to_string(), dest.as_ref().to_path_buf());
        self.wait(move |this| async move { this.get_file_async(&key, dest).await })
    }

    /// Whether an artifact is stored under `key`.
    pub async fn exists_async(&self, key: &str) -> Result<bool, ObjectError> {
        let (objects, _, path) = self.locate(key)?;
        objects.exists(&path).await
    }

    /// Whether an artifact is stored under `key` (blocking).
    pub fn exists(&self, key: &str) -> Result<bool, ObjectError> {
        let key = key.to_string();
        self.wait(move |this| async move { this.exists_async(&key).await })
    }

    /// The keys of every artifact of the run, sorted.
    pub async fn list_async(&self) -> Result<Vec<String>, ObjectError> {
        self.objects()?
            .list(&artifacts_prefix(&self.dag_id, &self.run_id))
            .await
    }

    /// The keys of every artifact of the run, sorted (blocking).
    pub fn list(&self) -> Result<Vec<String>, ObjectError> {
        self.wait(|this| async move { this.list_async().await })
    }
}

impl Objects {
    /// Streams a local file to `key` (relative).
    async fn put_file(&self, key: Path, file: PathBuf) -> Result<u64, ObjectError> {
        let this = self.clone();
        io::run(async move {
            let read_error = |e: std::io::Error| ObjectError::File {
                action: "read",
                path: file.display().to_string(),
                reason: e.to_string(),
            };
            let write_error = |e: std::io::Error| ObjectError::Failed {
                location: this.location().to_string(),
                action: format!("write `{key}`"),
                reason: reason(&e),
            };
            let mut source = tokio::fs::File::open(&file).await.map_err(read_error)?;
            let mut upload =
                object_store::buffered::BufWriter::new(this.inner.store.clone(), this.full(&key));
            let mut buffer = vec![0; CHUNK_BYTES];
            let mut size = 0_u64;
            let copied: Result<(), ObjectError> = async {
                loop {
                    let n = source.read(&mut buffer).await.map_err(read_error)?;
                    if n == 0 {
                        break;
                    }
                    upload.write_all(&buffer[..n]).await.map_err(write_error)?;
                    size += n as u64;
                }
                upload.shutdown().await.map_err(write_error)
            }
            .await;
            if copied.is_err() {
                // Leave no parts of an unfinished upload behind.
                let _ = upload.abort().await;
            }
            copied.map(|()| size)
        })
        .await
    }

    /// Streams `key` (relative) into the file `dest`, through a temporary file beside it.
    async fn get_file(&self, key: Path, dest: PathBuf) -> Result<u64, ObjectError> {
        let this = self.clone();
        io::run(async move {
            let write_error = |e: std::io::Error| ObjectError::File {
                action: "write",
                path: dest.display().to_string(),
                reason: e.to_string(),
            };
            let name = dest.file_name().ok_or_else(|| {
                write_error(std::io::Error::other("the destination names no file"))
            })?;
            let partial = dest.with_file_name(format!(".{}.flow-partial", name.to_string_lossy()));
            let found = this
                .inner
                .store
                .get(&this.full(&key))
                .await
                .map_err(|e| this.failure("read", &key, &e))?;
            let mut out = tokio::fs::File::create(&partial)
                .await
                .map_err(write_error)?;
            let copied: Result<u64, ObjectError> = async {
                let mut stream = found.into_stream();
                let mut size = 0_u64;
                while let Some(chunk) = stream
                    .try_next()
                    .await
                    .map_err(|e| this.failure("read", &key, &e))?
                {
                    out.write_all(&chunk).await.map_err(write_error)?;
                    size += chunk.len() as u64;
                }
                out.sync_all().await.map_err(write_error)?;
                tokio::fs::rename(&partial, &dest)
                    .await
                    .map_err(write_error)?;
                Ok(size)
            }
            .await;
            if copied.is_err() {
                let _ = tokio::fs::remove_file(&partial).await;
            }
            copied
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        for good in [
            "a",
            "models/v1.bin",
            "date=2025-01-01/part-0.parquet",
            "a/b/c",
        ] {
            assert!(ArtifactKey::parse(good).is_ok(), "{good}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("/abs", "empty segment"),
            ("a//b", "empty segment"),
            ("a/", "empty segment"),
            ("../x", "`..` segments"),
            ("a/./b", "`.` segments"),
            ("a b", "' ' is not allowed"),
            ("a\\b", "'\\\\' is not allowed"),
        ] {
            let err = ArtifactKey::parse(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(err.contains("models/model.bin"), "{bad}: {err}");
        }
        assert!(ArtifactKey::parse(&"k".repeat(600)).is_err());
    }

    #[test]
    fn a_run_without_an_object_store_says_how_to_get_one() {
        let artifacts = Artifacts::new(None, "d".into(), "r".into());
        let err = artifacts.put("a", vec![1]).unwrap_err().to_string();
        assert!(err.contains("Executor::object_store"), "{err}");
    }

    #[test]
    fn files_round_trip_and_a_missing_key_names_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let objects = super::super::ObjectStoreConfig::local(dir.path().join("objects"))
            .connect()
            .unwrap();
        let artifacts = objects.artifacts(&"d".into(), &"r1".into());
        let source = dir.path().join("model.bin");
        let content: Vec<u8> = (0..3 * CHUNK_BYTES + 7).map(|i| (i % 251) as u8).collect();
        std::fs::write(&source, &content).unwrap();
        assert_eq!(
            artifacts.put_file("models/model.bin", &source).unwrap(),
            content.len() as u64
        );
        assert!(
            dir.path()
                .join("objects/d/r1/artifacts/models/model.bin")
                .is_file()
        );
        let copy = dir.path().join("copy.bin");
        artifacts.get_file("models/model.bin", &copy).unwrap();
        assert_eq!(std::fs::read(&copy).unwrap(), content);
        let err = artifacts
            .get_file("models/other.bin", dir.path().join("other.bin"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no artifact `models/other.bin` in run `r1` of DAG `d`"),
            "{err}"
        );
        assert!(!dir.path().join("other.bin").exists());
        let err = artifacts
            .put_file("x", dir.path().join("absent.bin"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("cannot read ") && err.contains("absent.bin"),
            "{err}"
        );
        let other_run = objects.artifacts(&"d".into(), &"r2".into());
        assert!(other_run.list().unwrap().is_empty(), "scoped to the run");
    }
}

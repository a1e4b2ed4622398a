//! Objects named by URL, anywhere in an object store: Airflow's `ObjectStoragePath`. A task
//! that lands data where another reads it (a raw CSV in `s3://bucket/raw/`, or a local
//! directory) passes an [`ObjectPath`] between them, and the same code serves both.

use std::path::{Component, PathBuf};
use std::sync::{Arc, OnceLock};

use object_store::path::Path;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{ObjectError, ObjectStoreConfig, Objects, ambient, io};

/// One object named by URL: `s3://bucket/raw/digits.csv`, `file:///srv/raw/digits.csv`, or
/// a local path (`/srv/raw/digits.csv`, or relative to the working directory).
///
/// Get one from [`crate::TaskContext::object_path`] or [`ObjectPath::parse`]. An S3 URL
/// uses the settings (endpoint, credentials) of the object store of the run whose task
/// reads or writes it, when that store is S3 too, else the environment's
/// (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, ...). It is an XCom value like any other and
/// travels as its URL only, never with credentials. Sync tasks use the plain methods,
/// async tasks the `_async` ones; the I/O runs on the object store's own threads either way.
///
/// ```
/// use flow_runtime::objects::ObjectPath;
/// let dir = tempfile::tempdir().unwrap();
/// let raw = ObjectPath::parse(&dir.path().to_string_lossy())?.join("raw/digits.csv")?;
/// assert!(raw.url().starts_with("file:///") && raw.url().ends_with("/raw/digits.csv"));
/// assert!(!raw.exists()?);
/// raw.write(b"pixel_0,label\n0,7\n".to_vec())?;
/// assert_eq!(raw.read()?, b"pixel_0,label\n0,7\n");
/// assert_eq!(raw.local_path(), Some(dir.path().join("raw/digits.csv")));
/// assert!(raw.join("../secrets").is_err());
/// # Ok::<(), flow_runtime::objects::ObjectError>(())
/// ```
#[derive(Clone)]
pub struct ObjectPath {
    inner: Arc<Inner>,
}

struct Inner {
    /// The object's URL, as shown and serialized.
    url: String,
    /// The store's root (`file:///`, `s3://bucket`) and its settings.
    store: ObjectStoreConfig,
    /// The object's key below that root.
    key: Path,
    /// Whether `store` holds the settings to use, rather than the using run's.
    bound: bool,
    /// The store, connected on first use and shared by the path's clones.
    connected: OnceLock<Objects>,
}

impl ObjectPath {
    /// The object `text` names: a URL (`s3://bucket/key`, `file:///absolute/path`) or a local
    /// path, absolute or relative to the working directory.
    pub fn parse(text: &str) -> Result<Self, ObjectError> {
        Self::resolve(text, None)
    }

    /// The object `text` names; a URL of the same kind of store as `run` (both S3) uses
    /// `run`'s settings.
    pub(crate) fn resolve(text: &str, run: Option<&Objects>) -> Result<Self, ObjectError> {
        let bad = |reason: &str| ObjectError::BadPath {
            path: text.to_string(),
            reason: reason.to_string(),
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(bad("it is empty"));
        }
        if trimmed.contains("://") {
            let (store, key) = ObjectStoreConfig::split_object_url(trimmed.trim_end_matches('/'))?;
            return Ok(match run {
                Some(run) if run.inner.config.same_kind(&store) => {
                    Self::at(run.inner.config.relocated(store), key, true)
                }
                _ => Self::at(store, key, run.is_some()),
            });
        }
        let absolute = std::path::absolute(trimmed)
            .map_err(|e| bad(&format!("it cannot be made absolute: {e}")))?;
        // `../raw` means what a shell would make of it; the key itself takes no `..`.
        let mut normal = PathBuf::new();
        for part in absolute.components() {
            match part {
                Component::ParentDir => {
                    normal.pop();
                }
                Component::CurDir => {}
                other => normal.push(other),
            }
        }
        let relative = normal.to_string_lossy();
        let relative = relative.trim_matches('/');
        if relative.is_empty() {
            return Err(bad("it names the root directory, not a file"));
        }
        let key = checked_key(relative).map_err(|reason| bad(&reason))?;
        Ok(Self::at(ObjectStoreConfig::local("/"), key, true))
    }

    /// `bound`: the settings are final (a local file, or a path resolved for a run), so
    /// the run using the path does not lend it its own.
    fn at(store: ObjectStoreConfig, key: Path, bound: bool) -> Self {
        let root = store.to_string();
        let url = format!("{}/{key}", root.strip_suffix('/').unwrap_or(&root));
        Self {
            inner: Arc::new(Inner {
                url,
                store,
                key,
                bound,
                connected: OnceLock::new(),
            }),
        }
    }

    /// The object below this one: `name` is one or more `/`-separated segments, none empty,
    /// `.` or `..`.
    pub fn join(&self, name: &str) -> Result<Self, ObjectError> {
        let below =
            checked_key(name.trim_end_matches('/')).map_err(|reason| ObjectError::BadPath {
                path: format!("{} + {name}", self.url()),
                reason,
            })?;
        let key = self.inner.key.parts().chain(below.parts()).collect();
        Ok(Self::at(self.inner.store.clone(), key, self.inner.bound))
    }

    /// The object's URL.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The file this names, when the store is this machine's file system.
    pub fn local_path(&self) -> Option<PathBuf> {
        self.inner
            .store
            .is_local()
            .then(|| PathBuf::from(format!("/{}", self.inner.key)))
    }

    /// The store, connected once. A path parsed without a run (one deserialized from an
    /// upstream task's result) takes the settings of the object store of the run whose
    /// task uses it, when that is the same kind of store.
    fn objects(&self) -> Result<Objects, ObjectError> {
        if let Some(objects) = self.inner.connected.get() {
            return Ok(objects.clone());
        }
        let config = match ambient::current() {
            Some(run) if !self.inner.bound && run.inner.config.same_kind(&self.inner.store) => {
                run.inner.config.relocated(self.inner.store.clone())
            }
            _ => self.inner.store.clone(),
        };
        let objects = config.connect()?;
        Ok(self.inner.connected.get_or_init(|| objects).clone())
    }

    /// A missing object, named by its URL.
    fn missing(&self, error: ObjectError) -> ObjectError {
        match error {
            ObjectError::NotFound { .. } => ObjectError::NothingAt {
                url: self.url().to_string(),
            },
            e => e,
        }
    }

    /// The object's bytes; a missing object is an error naming its URL.
    pub async fn read_async(&self) -> Result<Vec<u8>, ObjectError> {
        let objects = self.objects()?;
        let read = objects.get(&self.inner.key).await;
        read.map_err(|e| self.missing(e))
    }

    /// The object's bytes (blocking).
    pub fn read(&self) -> Result<Vec<u8>, ObjectError> {
        let (objects, key) = (self.objects()?, self.inner.key.clone());
        io::block(async move { objects.get(&key).await }).map_err(|e| self.missing(e))
    }

    /// Writes `bytes` as the object, replacing what was there; it appears whole or not at
    /// all. A local file's directories are created.
    pub async fn write_async(&self, bytes: impl Into<Vec<u8>>) -> Result<(), ObjectError> {
        self.objects()?.put(&self.inner.key, bytes.into()).await
    }

    /// Writes `bytes` as the object (blocking).
    pub fn write(&self, bytes: impl Into<Vec<u8>>) -> Result<(), ObjectError> {
        let (objects, key, bytes) = (self.objects()?, self.inner.key.clone(), bytes.into());
        io::block(async move { objects.put(&key, bytes).await })
    }

    /// Whether the object exists.
    pub async fn exists_async(&self) -> Result<bool, ObjectError> {
        self.objects()?.exists(&self.inner.key).await
    }

    /// Whether the object exists (blocking).
    pub fn exists(&self) -> Result<bool, ObjectError> {
        let (objects, key) = (self.objects()?, self.inner.key.clone());
        io::block(async move { objects.exists(&key).await })
    }
}

/// `text` as an object key: `/`-separated segments, none empty, `.` or `..`.
fn checked_key(text: &str) -> Result<Path, String> {
    if text.is_empty() {
        return Err("it is empty".to_string());
    }
    if let Some(segment) = text
        .split('/')
        .find(|s| s.is_empty() || *s == "." || *s == "..")
    {
        return Err(if segment.is_empty() {
            "it has an empty segment (a leading or doubled `/`)".to_string()
        } else {
            format!("`{segment}` segments are not allowed")
        });
    }
    Path::parse(text).map_err(|e| e.to_string())
}

impl std::fmt::Display for ObjectPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.url())
    }
}

impl std::fmt::Debug for ObjectPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ObjectPath").field(&self.url()).finish()
    }
}

impl PartialEq for ObjectPath {
    fn eq(&self, other: &Self) -> bool {
        self.url() == other.url()
    }
}

impl Eq for ObjectPath {}

impl std::hash::Hash for ObjectPath {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.url().hash(state);
    }
}

impl Serialize for ObjectPath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.url())
    }
}

impl<'de> Deserialize<'de> for ObjectPath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let url = String::deserialize(deserializer)?;
        Self::parse(&url).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_and_file_urls_name_the_same_object() {
        let dir = tempfile::tempdir().unwrap();
        let shown = dir.path().to_string_lossy().into_owned();
        let by_path = ObjectPath::parse(&format!("{shown}/raw/"))
            .unwrap()
            .join("digits.csv")
            .unwrap();
        let by_url = ObjectPath::parse(&format!("file://{shown}/raw/digits.csv")).unwrap();
        assert_eq!(by_path, by_url);
        assert_eq!(by_path.url(), format!("file://{shown}/raw/digits.csv"));
        by_path.write(b"a,b\n".to_vec()).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("raw/digits.csv")).unwrap(),
            b"a,b\n"
        );
        assert_eq!(by_url.read().unwrap(), b"a,b\n");
    }

    #[test]
    fn a_directory_name_with_spaces_is_written_as_named() {
        let dir = tempfile::tempdir().unwrap();
        let landing = dir.path().join("raw data");
        let csv = ObjectPath::parse(&landing.to_string_lossy())
            .unwrap()
            .join("day 1.csv")
            .unwrap();
        csv.write(b"x\n".to_vec()).unwrap();
        assert_eq!(std::fs::read(landing.join("day 1.csv")).unwrap(), b"x\n");
        assert_eq!(csv.local_path(), Some(landing.join("day 1.csv")));
    }

    #[test]
    fn a_path_travels_as_its_url() {
        let path = ObjectPath::parse("/srv/raw/digits.csv").unwrap();
        let json = serde_json::to_string(&path).unwrap();
        assert_eq!(json, r#""file:///srv/raw/digits.csv""#);
        let back: ObjectPath = serde_json::from_str(&json).unwrap();
        assert_eq!(back, path);
        let err = serde_json::from_str::<ObjectPath>(r#""ftp://host/x""#).unwrap_err();
        assert!(err.to_string().contains("ftp"), "{err}");
    }

    #[test]
    fn relative_paths_are_below_the_working_directory() {
        let cwd = std::env::current_dir().unwrap();
        let path = ObjectPath::parse("raw/digits.csv").unwrap();
        assert_eq!(path.local_path(), Some(cwd.join("raw/digits.csv")));
        let up = ObjectPath::parse("../landing/./raw/digits.csv").unwrap();
        let parent = cwd.parent().unwrap_or(&cwd);
        assert_eq!(up.local_path(), Some(parent.join("landing/raw/digits.csv")));
    }

    #[test]
    fn bad_paths_say_what_is_wrong() {
        for (text, expected) in [
            ("", "it is empty"),
            ("   ", "it is empty"),
            ("/", "names the root directory"),
            ("ftp://host/file", "does not support the scheme `ftp`"),
            ("file:///", "names no object"),
        ] {
            let err = ObjectPath::parse(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
        let dir = ObjectPath::parse("/srv/raw").unwrap();
        for (name, expected) in [
            ("", "it is empty"),
            ("../etc/passwd", "`..` segments"),
            ("a//b", "empty segment"),
            ("/abs", "empty segment"),
        ] {
            let err = dir.join(name).unwrap_err().to_string();
            assert!(
                err.contains(expected) && err.contains("file:///srv/raw"),
                "{name:?}: {err}"
            );
        }
    }

    #[test]
    fn a_missing_object_is_named_by_its_url() {
        let dir = tempfile::tempdir().unwrap();
        let path = ObjectPath::parse(&dir.path().join("nothing.csv").to_string_lossy()).unwrap();
        assert!(!path.exists().unwrap());
        let err = path.read().unwrap_err().to_string();
        assert!(
            err.contains("nothing at") && err.contains(path.url()),
            "{err}"
        );
    }
}

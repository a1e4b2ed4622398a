//! Which object store to use (set in code, or by `crate::settings` from the environment),
//! and connecting to it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path;

use super::{ObjectError, Objects};

/// The environment variable naming the object store as a URL (`s3://bucket/prefix`,
/// `file:///srv/flow/objects`); default `$FLOW_HOME/objects`.
pub const OBJECT_STORE_ENV: &str = "FLOW_OBJECT_STORE";

/// The environment variable setting the XCom size above which values go to the object
/// store: bytes, or a number with `KiB`, `MiB`, `GiB` (also `KB`, `MB`, `GB`).
pub const THRESHOLD_ENV: &str = "FLOW_XCOM_OBJECT_THRESHOLD";

/// The default threshold: XCom values whose encoding is larger go to the object store.
pub const DEFAULT_THRESHOLD: usize = 64 * 1024;

/// The URL schemes this build understands.
#[cfg(feature = "s3")]
const SUPPORTED: &str = "file:///absolute/directory, s3://bucket/prefix";
#[cfg(not(feature = "s3"))]
const SUPPORTED: &str =
    "file:///absolute/directory (s3:// needs flow-runtime's `s3` cargo feature)";

/// Where objects are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Location {
    /// A directory on this machine.
    Local(PathBuf),
    /// This process's memory (tests, `Dag::test`): gone when the process ends.
    Memory,
    /// A bucket of S3 or an S3-compatible server, under a prefix.
    S3 { bucket: String, prefix: String },
}

/// How to reach the object store, and when XCom values go there.
///
/// ```
/// use flow_runtime::objects::ObjectStoreConfig;
/// let config = ObjectStoreConfig::parse("file:///srv/flow/objects")?.threshold(1 << 20);
/// assert_eq!(config.to_string(), "file:///srv/flow/objects");
/// assert!(ObjectStoreConfig::parse("ftp://host/dir").is_err());
/// # Ok::<(), flow_runtime::objects::ObjectError>(())
/// ```
#[derive(Clone, Debug)]
pub struct ObjectStoreConfig {
    location: Location,
    options: Vec<(String, String)>,
    threshold: usize,
    max_retries: usize,
    retry_timeout: Duration,
}

impl ObjectStoreConfig {
    fn at(location: Location) -> Self {
        Self {
            location,
            options: Vec::new(),
            threshold: DEFAULT_THRESHOLD,
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
        }
    }

    /// A directory on this machine (created when first connected).
    pub fn local(dir: impl Into<PathBuf>) -> Self {
        Self::at(Location::Local(dir.into()))
    }

    /// This process's memory: for tests and in-memory runs; everything is gone when the
    /// process ends.
    pub fn in_memory() -> Self {
        Self::at(Location::Memory)
    }

    /// A store named by URL: `file:///absolute/directory`, or (with the `s3` feature)
    /// `s3://bucket/prefix`, configured by the standard AWS variables (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, and `AWS_ENDPOINT_URL` with
    /// `AWS_ALLOW_HTTP=true` for an S3-compatible server) and by [`Self::option`].
    pub fn parse(url: &str) -> Result<Self, ObjectError> {
        let bad = |reason: &str| ObjectError::BadUrl {
            url: url.to_string(),
            reason: reason.to_string(),
            supported: SUPPORTED,
        };
        let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(bad(
                "it has a query or fragment; set store options with AWS_* variables or ObjectStoreConfig::option",
            ));
        }
        match parsed.scheme() {
            "file" => {
                if parsed.host_str().is_some_and(|h| !h.is_empty()) {
                    return Err(bad(
                        "a file URL takes an absolute path after three slashes, e.g. file:///srv/flow/objects",
                    ));
                }
                let dir = parsed
                    .to_file_path()
                    .map_err(|()| bad("its path is not an absolute directory"))?;
                Ok(Self::local(dir))
            }
            "s3" | "s3a" => {
                let bucket = parsed
                    .host_str()
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| bad("it names no bucket, e.g. s3://bucket/prefix"))?;
                let prefix = parsed.path().trim_matches('/');
                Path::parse(prefix).map_err(|e| bad(&format!("invalid prefix: {e}")))?;
                if cfg!(feature = "s3") {
                    Ok(Self::at(Location::S3 {
                        bucket: bucket.to_string(),
                        prefix: prefix.to_string(),
                    }))
                } else {
                    Err(bad(
                        "this binary was built without flow-runtime's `s3` cargo feature",
                    ))
                }
            }
            other => Err(bad(&format!("flow does not support the scheme `{other}`"))),
        }
    }

    /// Sets the size (of the encoded value, in bytes) above which an XCom goes to the
    /// object store; `usize::MAX` keeps every value in the database.
    pub fn threshold(mut self, bytes: usize) -> Self {
        self.threshold = bytes;
        self
    }

    /// How often a failed request is retried (default 3), and for how long at most
    /// (default 30 s), before the operation fails.
    pub fn retries(mut self, max_retries: usize, timeout: Duration) -> Self {
        self.max_retries = max_retries;
        self.retry_timeout = timeout;
        self
    }

    /// Sets a store option, over the environment's: for S3 the `object_store` keys such as
    /// `aws_endpoint_url`, `aws_allow_http`, `aws_access_key_id`, `aws_secret_access_key`,
    /// `aws_region`. An unknown key, or any option on a local or in-memory store, is an error.
    pub fn option(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, ObjectError> {
        let key = key.into().to_ascii_lowercase();
        let bad = |reason: String| ObjectError::BadSetting {
            setting: "object store option",
            value: key.clone(),
            reason,
        };
        match &self.location {
            Location::S3 { .. } => s3::check_option(&key).map_err(bad)?,
            _ => return Err(bad(format!("the store {self} takes no options"))),
        }
        self.options.push((key, value.into()));
        Ok(self)
    }

    /// A URL naming one object, as a store and the object's key in it: `s3://bucket/a/b.csv`
    /// is `a/b.csv` in `s3://bucket`, `file:///srv/a.csv` is `srv/a.csv` in `file:///`.
    pub(super) fn split_object_url(url: &str) -> Result<(Self, Path), ObjectError> {
        let config = Self::parse(url)?;
        let bad = |reason: String| ObjectError::BadUrl {
            url: url.to_string(),
            reason,
            supported: SUPPORTED,
        };
        let (root, key) = match &config.location {
            Location::Local(file) => (
                Location::Local(PathBuf::from("/")),
                file.to_string_lossy().trim_start_matches('/').to_string(),
            ),
            Location::S3 { bucket, prefix } => (
                Location::S3 {
                    bucket: bucket.clone(),
                    prefix: String::new(),
                },
                prefix.clone(),
            ),
            Location::Memory => (Location::Memory, String::new()),
        };
        if key.is_empty() {
            return Err(bad("it names no object".to_string()));
        }
        let key = Path::parse(&key).map_err(|e| bad(e.to_string()))?;
        Ok((Self::at(root), key))
    }

    /// Whether the store is this machine's file system.
    pub(super) fn is_local(&self) -> bool {
        matches!(self.location, Location::Local(_))
    }

    /// The configured threshold.
    pub fn threshold_bytes(&self) -> usize {
        self.threshold
    }

    /// Whether `other` is the same kind of store (so a URL of it can share this one's
    /// options: endpoint, credentials).
    pub(super) fn same_kind(&self, other: &Self) -> bool {
        matches!(
            (&self.location, &other.location),
            (Location::Local(_), Location::Local(_))
                | (Location::Memory, Location::Memory)
                | (Location::S3 { .. }, Location::S3 { .. })
        )
    }

    /// This configuration at another location of the same kind, with the same options.
    pub(super) fn relocated(&self, other: Self) -> Self {
        Self {
            location: other.location,
            ..self.clone()
        }
    }

    /// Connects: creates the local directory, or builds the S3 client (no request is made
    /// until the first operation).
    pub fn connect(&self) -> Result<Objects, ObjectError> {
        let location = self.to_string();
        let unusable = |reason: String| ObjectError::Unusable {
            location: location.clone(),
            reason,
        };
        match &self.location {
            Location::Local(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| unusable(format!("cannot create {}: {e}", dir.display())))?;
                let store = object_store::local::LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| unusable(super::reason(&e)))?
                    // Durable before the database refers to it; no empty directories left
                    // behind when a run is deleted.
                    .with_fsync(true)
                    .with_automatic_cleanup(true);
                Ok(Objects::new(
                    self.clone(),
                    Arc::new(store),
                    Path::default(),
                    location,
                ))
            }
            Location::Memory => Ok(Objects::memory(self.clone())),
            Location::S3 { bucket, prefix } => {
                let (store, shown) = s3::connect(self, bucket).map_err(unusable)?;
                let root = Path::parse(prefix).map_err(|e| unusable(e.to_string()))?;
                Ok(Objects::new(self.clone(), store, root, shown))
            }
        }
    }
}

impl std::fmt::Display for ObjectStoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.location {
            Location::Local(dir) => write!(f, "file://{}", dir.display()),
            Location::Memory => f.write_str("memory://"),
            Location::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Location::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// Reads `65536`, `64KiB`, `1.5 MiB`, `10MB`: bytes, or a number and a unit.
pub(crate) fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err("write bytes (65536) or a size like 64KiB, 1MiB, 10MB".to_string());
    }
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kib" | "k" => 1024.0,
        "mib" | "m" => 1024.0 * 1024.0,
        "gib" | "g" => 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        other => {
            return Err(format!(
                "unknown unit `{other}`; write bytes (65536) or a size like 64KiB, 1MiB, 10MB"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| "write bytes (65536) or a size like 64KiB, 1MiB, 10MB".to_string())?;
    let bytes = (value * factor).round();
    if !(bytes.is_finite() && bytes >= 0.0 && bytes <= usize::MAX as f64) {
        return Err("the size is out of range".to_string());
    }
    // The range is checked above; sizes are whole bytes.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(bytes as usize)
}

#[cfg(feature = "s3")]
mod s3 {
    use std::sync::Arc;

    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};

    use super::ObjectStoreConfig;

    /// Accepts the keys `object_store`'s S3 builder knows.
    pub(super) fn check_option(key: &str) -> Result<(), String> {
        key.parse::<AmazonS3ConfigKey>().map(drop).map_err(|_| {
            "not an S3 option; use keys like aws_endpoint_url, aws_allow_http, aws_region, \
             aws_access_key_id, aws_secret_access_key"
                .to_string()
        })
    }

    /// The client, and how to name the store in messages (with its endpoint, if not AWS).
    pub(super) fn connect(
        config: &ObjectStoreConfig,
        bucket: &str,
    ) -> Result<(Arc<dyn object_store::ObjectStore>, String), String> {
        // The HTTP client's TLS uses the process's default rustls provider; install ring
        // unless the program installed one already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        for (key, value) in &config.options {
            let key = key
                .parse::<AmazonS3ConfigKey>()
                .map_err(|e| e.to_string())?;
            builder = builder.with_config(key, value);
        }
        let builder = builder.with_retry(object_store::RetryConfig {
            max_retries: config.max_retries,
            retry_timeout: config.retry_timeout,
            ..Default::default()
        });
        let shown = match builder.get_config_value(&AmazonS3ConfigKey::Endpoint) {
            Some(endpoint) => format!("{config} (endpoint {endpoint})"),
            None => config.to_string(),
        };
        let store = builder.build().map_err(|e| super::super::reason(&e))?;
        Ok((Arc::new(store), shown))
    }
}

#[cfg(not(feature = "s3"))]
mod s3 {
    use std::sync::Arc;

    use super::ObjectStoreConfig;

    pub(super) fn check_option(_key: &str) -> Result<(), String> {
        Err("this binary was built without flow-runtime's `s3` cargo feature".to_string())
    }

    pub(super) fn connect(
        _config: &ObjectStoreConfig,
        _bucket: &str,
    ) -> Result<(Arc<dyn object_store::ObjectStore>, String), String> {
        Err("this binary was built without flow-runtime's `s3` cargo feature".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_directory_or_a_bucket() {
        let local = ObjectStoreConfig::parse("file:///srv/flow/objects").unwrap();
        assert_eq!(local.location, Location::Local("/srv/flow/objects".into()));
        for (url, expected) in [
            ("ftp://host/dir", "flow does not support the scheme `ftp`"),
            ("not a url", "relative URL without a base"),
            ("file://relative/dir", "absolute path after three slashes"),
            ("s3://bucket/p?region=x", "query or fragment"),
        ] {
            let err = ObjectStoreConfig::parse(url).unwrap_err().to_string();
            assert!(err.contains(expected), "{url}: {err}");
            assert!(err.contains("file:///absolute/directory"), "{url}: {err}");
        }
    }

    #[cfg(feature = "s3")]
    #[test]
    fn s3_urls_take_a_bucket_and_known_options() {
        let config = ObjectStoreConfig::parse("s3://bucket/flow/runs").unwrap();
        assert_eq!(
            config.location,
            Location::S3 {
                bucket: "bucket".into(),
                prefix: "flow/runs".into()
            }
        );
        assert_eq!(config.to_string(), "s3://bucket/flow/runs");
        let config = config
            .option("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .unwrap();
        let err = config.option("aws_endpiont", "x").unwrap_err().to_string();
        assert!(
            err.contains("aws_endpiont") && err.contains("aws_endpoint_url"),
            "{err}"
        );
        let err = ObjectStoreConfig::parse("s3:///prefix")
            .unwrap_err()
            .to_string();
        assert!(err.contains("names no bucket"), "{err}");
    }

    /// The HTTPS client needs a TLS crypto provider, which flow installs (ring); building
    /// one makes no request.
    #[cfg(feature = "s3")]
    #[test]
    fn an_https_s3_client_builds_with_the_installed_tls_provider() {
        let objects = ObjectStoreConfig::parse("s3://bucket/flow")
            .and_then(|c| c.option("aws_region", "eu-west-1"))
            .and_then(|c| c.option("aws_access_key_id", "key"))
            .and_then(|c| c.option("aws_secret_access_key", "secret"))
            .unwrap()
            .connect()
            .unwrap();
        assert_eq!(objects.location(), "s3://bucket/flow");
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }

    #[test]
    fn local_stores_take_no_options() {
        let err = ObjectStoreConfig::local("/tmp/x")
            .option("aws_region", "eu")
            .unwrap_err()
            .to_string();
        assert!(err.contains("takes no options"), "{err}");
    }

    #[test]
    fn sizes_read_with_units() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1.5 MiB"), Ok(1_572_864));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert!(parse_size("ten").unwrap_err().contains("64KiB"));
        assert!(
            parse_size("3 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_size("-1").is_err());
    }
}

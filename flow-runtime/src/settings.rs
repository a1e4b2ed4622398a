//! The settings of a flow process, read once from the `FLOW_*` environment variables.
//!
//! [`Settings::from_env`] reads every variable the runtime knows and refuses a bad value
//! at once, whatever the command, instead of when (or whether) the value is first used:
//!
//! | variable | what | default |
//! |---|---|---|
//! | `FLOW_HOME` | the directory of the database and the run locks | `$HOME/.flow` |
//! | `FLOW_LOG` | the log filter (`tracing` directives, e.g. `info,flow_runtime=debug`) | `info` |
//! | `FLOW_OBJECT_STORE` | the object store, as a URL | `$FLOW_HOME/objects` |
//! | `FLOW_XCOM_OBJECT_THRESHOLD` | the XCom size above which values go to the object store | 64 KiB |
//! | `FLOW_MAX_MAP_LENGTH` | the most instances one mapped task may expand to | 100,000 |
//! | `FLOW_API_TOKEN` | the token every `serve` request must carry (needed to serve beyond loopback); 16 characters or more | none |
//! | `FLOW_SMTP_*` | the SMTP server of email alerts (see `notify::SmtpConfig`) | none |
//! | `OTEL_EXPORTER_OTLP_*`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` | where traces go, with the `otel` feature (see [`crate::traces`]) | no traces |
//!
//! The runtime's own parts take explicit configuration ([`ObjectStoreConfig`],
//! `Executor::max_map_length`, `Executor::smtp`); the settings hand it to them, and open
//! the configured store ([`Settings::open_store`]), so that choosing another database is
//! one change here.

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;

use crate::home::{FlowHome, HomeError};
use crate::objects::{OBJECT_STORE_ENV, ObjectError, ObjectStoreConfig, Objects, THRESHOLD_ENV};
use crate::runtime::Executor;
use crate::store::Store;

/// The variable naming the flow home directory.
pub const HOME_ENV: &str = "FLOW_HOME";
/// The variable holding the log filter.
pub const LOG_ENV: &str = "FLOW_LOG";
/// The variable bounding the length of a mapped task's expansion.
pub const MAX_MAP_LENGTH_ENV: &str = "FLOW_MAX_MAP_LENGTH";
/// The variable holding the token of the `serve` API.
pub const API_TOKEN_ENV: &str = "FLOW_API_TOKEN";
/// The shortest token the API takes.
const MIN_TOKEN_LEN: usize = 16;

/// The token of the `serve` API: shown as `ApiToken(..)`, never its value.
#[derive(Clone)]
pub struct ApiToken(String);

impl ApiToken {
    /// Whether `given` is the token, compared in time that does not depend on where they
    /// differ.
    pub fn matches(&self, given: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), given.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
    }
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(..)")
    }
}

/// The SMTP variables (read by `notify::SmtpConfig::from_vars`).
#[cfg(feature = "email")]
const SMTP_VARS: [&str; 7] = [
    "FLOW_SMTP_HOST",
    "FLOW_SMTP_PORT",
    "FLOW_SMTP_MAIL_FROM",
    "FLOW_SMTP_USER",
    "FLOW_SMTP_PASSWORD",
    "FLOW_SMTP_SECURITY",
    "FLOW_SMTP_TIMEOUT",
];

/// The log filter when `FLOW_LOG` is not set.
pub const DEFAULT_LOG_FILTER: &str = "info";

/// A setting that cannot be used; the process should not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// A variable with a value that cannot be used.
    #[error("{var} must be {expected} (found `{value}`)")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// Its value (lossily decoded when it is not UTF-8).
        value: String,
        /// What it may be.
        expected: String,
    },
    /// A secret that cannot be used: its value is not repeated.
    #[error("{var} must be {expected}")]
    InvalidSecret {
        /// The variable.
        var: &'static str,
        /// What it may be.
        expected: String,
    },
    /// The object store settings (`FLOW_OBJECT_STORE`, `FLOW_XCOM_OBJECT_THRESHOLD`).
    #[error(transparent)]
    Objects(#[from] ObjectError),
    /// The SMTP settings (`FLOW_SMTP_*`).
    #[cfg(feature = "email")]
    #[error(transparent)]
    Smtp(#[from] crate::notify::NotifyError),
    /// The flow home, or the database in it.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// The OTLP settings (`OTEL_EXPORTER_OTLP_*`).
    #[cfg(feature = "otel")]
    #[error(transparent)]
    Otlp(#[from] crate::traces::OtlpError),
}

/// Every `FLOW_*` setting of this process, checked.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `None` when neither `FLOW_HOME` nor `HOME` is set: only commands that record or
    /// read history need it, so that is an error when one of them asks.
    home: Option<FlowHome>,
    log_filter: String,
    /// `FLOW_OBJECT_STORE`, if set; else the directory `objects` in the home.
    object_store: Option<ObjectStoreConfig>,
    threshold: Option<usize>,
    max_map_length: Option<usize>,
    /// `NO_COLOR` (the common convention, not a `FLOW_*` variable) is set.
    no_color: bool,
    #[cfg(feature = "email")]
    smtp: Option<crate::notify::SmtpConfig>,
    /// Where traces go, if an OTLP endpoint is set.
    #[cfg(feature = "otel")]
    otlp: Option<crate::traces::OtlpSettings>,
    /// Without the `otel` feature: the OTLP endpoint variable that is set, and ignored.
    otlp_ignored: Option<&'static str>,
    api_token: Option<ApiToken>,
}

impl Settings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_vars(|name| std::env::var_os(name))
    }

    /// Reads the settings through `lookup` (an empty value counts as unset), refusing the
    /// first one that cannot be used.
    pub fn from_vars(lookup: impl Fn(&str) -> Option<OsString>) -> Result<Self, SettingsError> {
        let os = |name: &str| lookup(name).filter(|v| !v.is_empty());
        // A value that is not UTF-8 is refused, not taken for unset.
        let text = |name: &'static str, expected: &str| -> Result<Option<String>, SettingsError> {
            match os(name) {
                None => Ok(None),
                Some(value) => {
                    value
                        .into_string()
                        .map(Some)
                        .map_err(|value| SettingsError::Invalid {
                            var: name,
                            value: value.to_string_lossy().into_owned(),
                            expected: format!("{expected}, in UTF-8"),
                        })
                }
            }
        };
        let home = match os(HOME_ENV) {
            Some(dir) => Some(FlowHome::at(dir)),
            None => os("HOME").map(|home| FlowHome::at(Path::new(&home).join(".flow"))),
        };

        let log_filter = match text(
            LOG_ENV,
            "a log filter like `info` or `warn,flow_runtime=debug`",
        )? {
            None => DEFAULT_LOG_FILTER.to_string(),
            Some(filter) => {
                if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&filter) {
                    return Err(SettingsError::Invalid {
                        var: LOG_ENV,
                        value: filter,
                        expected: format!(
                            "a log filter like `info` or `warn,flow_runtime=debug` ({e})"
                        ),
                    });
                }
                filter
            }
        };

        let object_store = text(OBJECT_STORE_ENV, "an object store URL")?
            .map(|url| ObjectStoreConfig::parse(&url))
            .transpose()?;
        let threshold = text(THRESHOLD_ENV, "a size like 64KiB")?
            .map(|value| {
                crate::objects::parse_size(&value).map_err(|reason| ObjectError::BadSetting {
                    setting: THRESHOLD_ENV,
                    value,
                    reason,
                })
            })
            .transpose()?;

        let max_map_length = text(
            MAX_MAP_LENGTH_ENV,
            "a whole number of instances, at least 1",
        )?
        .map(|value| match value.trim().parse::<usize>() {
            Ok(limit) if limit > 0 => Ok(limit),
            _ => Err(SettingsError::Invalid {
                var: MAX_MAP_LENGTH_ENV,
                value,
                expected: "a whole number of instances, at least 1".into(),
            }),
        })
        .transpose()?;

        // SMTP is optional: configured when any of its variables is set, and then checked
        // whole (a host without a sender is as unusable as a bad port).
        #[cfg(feature = "email")]
        let smtp = {
            let smtp_var = |name: &str| {
                lookup(name)
                    .filter(|v| !v.is_empty())
                    .map(|v| v.to_string_lossy().into_owned())
            };
            let any = SMTP_VARS
                .iter()
                .any(|name| smtp_var(name).is_some_and(|v| !v.trim().is_empty()));
            if any {
                Some(crate::notify::SmtpConfig::from_vars(smtp_var)?)
            } else {
                None
            }
        };

        let otel_var = |name: &str| {
            lookup(name)
                .filter(|v| !v.is_empty())
                .map(|v| v.to_string_lossy().into_owned())
        };
        #[cfg(feature = "otel")]
        let (otlp, otlp_ignored) = (crate::traces::OtlpSettings::from_vars(otel_var)?, None);
        #[cfg(not(feature = "otel"))]
        let otlp_ignored = [
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ]
        .into_iter()
        .find(|name| otel_var(name).is_some());

        let api_token = match os(API_TOKEN_ENV) {
            None => None,
            Some(value) => {
                let expected = || {
                    format!(
                        "at least {MIN_TOKEN_LEN} printable ASCII characters without spaces \
                         (e.g. from `openssl rand -hex 32`)"
                    )
                };
                let token = value
                    .into_string()
                    .map_err(|_| SettingsError::InvalidSecret {
                        var: API_TOKEN_ENV,
                        expected: expected(),
                    })?;
                if token.len() < MIN_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(SettingsError::InvalidSecret {
                        var: API_TOKEN_ENV,
                        expected: expected(),
                    });
                }
                Some(ApiToken(token))
            }
        };

        Ok(Self {
            home,
            log_filter,
            object_store,
            threshold,
            max_map_length,
            no_color: os("NO_COLOR").is_some(),
            #[cfg(feature = "email")]
            smtp,
            #[cfg(feature = "otel")]
            otlp,
            otlp_ignored,
            api_token,
        })
    }

    /// The token of the `serve` API (`FLOW_API_TOKEN`), if set.
    pub fn api_token(&self) -> Option<&ApiToken> {
        self.api_token.as_ref()
    }

    /// The flow home: `FLOW_HOME`, else `$HOME/.flow`.
    pub fn home(&self) -> Result<&FlowHome, HomeError> {
        self.home.as_ref().ok_or(HomeError::Unset)
    }

    /// The checked log filter, to build a `tracing_subscriber::EnvFilter` from.
    pub fn log_filter(&self) -> &str {
        &self.log_filter
    }

    /// Whether logs may be coloured on a terminal: not when `NO_COLOR` is set (to any
    /// value but the empty one).
    pub fn colour(&self) -> bool {
        !self.no_color
    }

    /// The most instances one mapped task may expand to, if `FLOW_MAX_MAP_LENGTH` sets it.
    pub fn max_map_length(&self) -> Option<usize> {
        self.max_map_length
    }

    /// Where traces go, if `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT` names a collector.
    #[cfg(feature = "otel")]
    pub fn otlp(&self) -> Option<&crate::traces::OtlpSettings> {
        self.otlp.as_ref()
    }

    /// The OTLP endpoint variable that is set although this binary was built without the
    /// `otel` feature (so no traces are sent), if any.
    pub fn otlp_ignored(&self) -> Option<&'static str> {
        self.otlp_ignored
    }

    /// The SMTP server of email alerts, if `FLOW_SMTP_*` names one.
    #[cfg(feature = "email")]
    pub fn smtp(&self) -> Option<&crate::notify::SmtpConfig> {
        self.smtp.as_ref()
    }

    /// The object store of recorded runs: `FLOW_OBJECT_STORE`, else `objects` in the home,
    /// with the threshold of `FLOW_XCOM_OBJECT_THRESHOLD`.
    pub fn object_store(&self) -> Result<ObjectStoreConfig, HomeError> {
        let config = match &self.object_store {
            Some(config) => config.clone(),
            None => ObjectStoreConfig::local(self.home()?.dir().join("objects")),
        };
        Ok(match self.threshold {
            Some(bytes) => config.threshold(bytes),
            None => config,
        })
    }

    /// Connects to the object store of recorded runs.
    pub fn connect_objects(&self) -> Result<Objects, SettingsError> {
        Ok(self.object_store()?.connect()?)
    }

    /// Opens (creating if needed) the configured store: the SQLite database in the home.
    pub fn open_store(&self) -> Result<Arc<dyn Store>, HomeError> {
        Ok(Arc::new(self.home()?.open_store()?))
    }

    /// Opens the configured store if it exists, without creating one.
    pub fn open_existing_store(&self) -> Result<Option<Arc<dyn Store>>, HomeError> {
        let home = self.home()?;
        if home.database().exists() {
            Ok(Some(Arc::new(home.open_store()?)))
        } else {
            Ok(None)
        }
    }

    /// An executor over `store` with these settings (map length, SMTP); the object store
    /// is the caller's choice (recorded runs: [`Settings::connect_objects`]).
    pub fn executor(&self, store: Arc<dyn Store>) -> Executor {
        let executor = Executor::new(store);
        let executor = match self.max_map_length {
            Some(limit) => executor.max_map_length(limit),
            None => executor,
        };
        #[cfg(feature = "email")]
        let executor = match &self.smtp {
            Some(config) => executor.smtp(config.clone()),
            None => executor,
        };
        executor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let vars: Vec<(String, OsString)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        Settings::from_vars(move |name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    fn refused(vars: &[(&str, &str)]) -> String {
        with(vars).unwrap_err().to_string()
    }

    #[test]
    fn defaults_come_from_home() {
        let settings = with(&[("HOME", "/home/me")]).unwrap();
        assert_eq!(settings.home().unwrap().dir(), Path::new("/home/me/.flow"));
        assert_eq!(settings.log_filter(), "info");
        assert_eq!(settings.max_map_length(), None);
        assert!(settings.colour());
        let objects = settings.object_store().unwrap();
        assert_eq!(objects.to_string(), "file:///home/me/.flow/objects");
        assert_eq!(objects.threshold_bytes(), crate::objects::DEFAULT_THRESHOLD);
        let settings = with(&[("HOME", "/home/me"), ("FLOW_HOME", "/srv/flow")]).unwrap();
        assert_eq!(settings.home().unwrap().dir(), Path::new("/srv/flow"));
        assert!(!with(&[("NO_COLOR", "1")]).unwrap().colour());
        assert!(
            with(&[("NO_COLOR", "")]).unwrap().colour(),
            "empty counts as unset"
        );
    }

    #[test]
    fn no_home_is_an_error_only_when_asked_for() {
        let settings = with(&[]).unwrap();
        assert!(matches!(settings.home(), Err(HomeError::Unset)));
        assert!(settings.open_store().is_err());
        // An object store of its own needs no home.
        let settings = with(&[("FLOW_OBJECT_STORE", "file:///srv/objects")]).unwrap();
        assert_eq!(
            settings.object_store().unwrap().to_string(),
            "file:///srv/objects"
        );
    }

    #[test]
    fn every_variable_is_read() {
        let settings = with(&[
            ("FLOW_HOME", "/srv/flow"),
            ("FLOW_LOG", "warn,flow_runtime=debug"),
            ("FLOW_OBJECT_STORE", "file:///srv/objects"),
            ("FLOW_XCOM_OBJECT_THRESHOLD", "1KiB"),
            ("FLOW_MAX_MAP_LENGTH", "10"),
        ])
        .unwrap();
        assert_eq!(settings.log_filter(), "warn,flow_runtime=debug");
        assert_eq!(settings.max_map_length(), Some(10));
        assert_eq!(settings.object_store().unwrap().threshold_bytes(), 1024);
    }

    #[test]
    fn bad_values_are_refused_naming_the_variable() {
        let message = refused(&[("FLOW_LOG", "[[[")]);
        assert!(
            message.starts_with("FLOW_LOG must be a log filter"),
            "{message}"
        );
        assert!(message.contains("(found `[[[`)"), "{message}");
        assert_eq!(
            refused(&[("FLOW_MAX_MAP_LENGTH", "0")]),
            "FLOW_MAX_MAP_LENGTH must be a whole number of instances, at least 1 (found `0`)"
        );
        assert!(refused(&[("FLOW_OBJECT_STORE", "ftp://x")]).contains("the scheme `ftp`"));
        assert!(
            refused(&[("FLOW_XCOM_OBJECT_THRESHOLD", "lots")])
                .starts_with("invalid FLOW_XCOM_OBJECT_THRESHOLD `lots`")
        );
    }

    #[test]
    fn an_otlp_endpoint_turns_traces_on_or_is_reported_as_ignored() {
        let endpoint = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")];
        let settings = with(&endpoint).unwrap();
        #[cfg(feature = "otel")]
        {
            assert_eq!(
                settings.otlp().unwrap().endpoint,
                "http://127.0.0.1:4318/v1/traces"
            );
            assert_eq!(settings.otlp_ignored(), None);
            assert!(with(&[]).unwrap().otlp().is_none());
            assert!(
                refused(&[endpoint[0], ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")])
                    .starts_with("OTEL_EXPORTER_OTLP_PROTOCOL must be `http/protobuf`")
            );
        }
        #[cfg(not(feature = "otel"))]
        assert_eq!(settings.otlp_ignored(), Some("OTEL_EXPORTER_OTLP_ENDPOINT"));
        assert_eq!(with(&[]).unwrap().otlp_ignored(), None);
    }

    #[cfg(unix)]
    #[test]
    fn a_value_that_is_not_utf8_is_refused() {
        use std::os::unix::ffi::OsStringExt as _;
        let bad = OsString::from_vec(vec![0x66, 0xff]);
        let err = Settings::from_vars(|name| (name == "FLOW_MAX_MAP_LENGTH").then(|| bad.clone()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("in UTF-8"), "{err}");
    }

    #[cfg(feature = "email")]
    #[test]
    fn smtp_is_optional_but_checked_whole_when_set() {
        assert!(with(&[]).unwrap().smtp().is_none());
        let settings = with(&[
            ("FLOW_SMTP_HOST", "mail.example.com"),
            ("FLOW_SMTP_MAIL_FROM", "flow@example.com"),
        ])
        .unwrap();
        assert_eq!(settings.smtp().unwrap().host, "mail.example.com");
        assert!(refused(&[("FLOW_SMTP_PORT", "25")]).starts_with("FLOW_SMTP_HOST is not set"),);
    }
}

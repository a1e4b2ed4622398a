//! Email over SMTP (lettre, rustls): Airflow's `[smtp]` settings and alert mails.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{SmtpTransport, Transport};

use super::NotifyError;
use crate::task::callbacks::CallbackEvent;

/// How the connection to the SMTP server is protected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain text, no TLS (`none`): only for a relay on the same host or network.
    None,
    /// Plain connection upgraded with STARTTLS, which is required (`starttls`, Airflow's
    /// default; usually port 587 or 25).
    #[default]
    StartTls,
    /// TLS from the first byte (`tls`, Airflow's `smtp_ssl`; usually port 465).
    Tls,
}

impl SmtpSecurity {
    fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "none" => Some(Self::None),
            "starttls" => Some(Self::StartTls),
            "tls" => Some(Self::Tls),
            _ => None,
        }
    }
}

/// Where alert mails go out: Airflow's `[smtp]` section.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    /// The server's host name (`FLOW_SMTP_HOST`, required).
    pub host: String,
    /// The server's port (`FLOW_SMTP_PORT`, default 25).
    pub port: u16,
    /// The sender (`FLOW_SMTP_MAIL_FROM`, required): `flow@example.com` or
    /// `Flow <flow@example.com>`.
    pub mail_from: String,
    /// The user to log in as (`FLOW_SMTP_USER`); no login when unset.
    pub user: Option<String>,
    /// The password (`FLOW_SMTP_PASSWORD`), required with a user.
    pub password: Option<String>,
    /// How the connection is protected (`FLOW_SMTP_SECURITY` = `none` | `starttls` |
    /// `tls`, default `starttls`).
    pub security: SmtpSecurity,
    /// How long connecting and each command may take (`FLOW_SMTP_TIMEOUT` in seconds,
    /// default 30, as Airflow's `smtp_timeout`).
    pub timeout: Duration,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password never reaches a log.
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("mail_from", &self.mail_from)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("security", &self.security)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The default port (Airflow's `smtp_port`).
const DEFAULT_PORT: u16 = 25;
/// The default timeout (Airflow's `smtp_timeout`).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

impl SmtpConfig {
    /// A server at `host`, port 25, STARTTLS, no login, sending as `mail_from`.
    pub fn new(host: impl Into<String>, mail_from: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            port: DEFAULT_PORT,
            mail_from: mail_from.into(),
            user: None,
            password: None,
            security: SmtpSecurity::default(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Reads `FLOW_SMTP_HOST`, `FLOW_SMTP_PORT`, `FLOW_SMTP_MAIL_FROM`, `FLOW_SMTP_USER`,
    /// `FLOW_SMTP_PASSWORD`, `FLOW_SMTP_SECURITY` and `FLOW_SMTP_TIMEOUT` from the
    /// environment (see [`SmtpConfig::from_vars`]).
    pub fn from_env() -> Result<Self, NotifyError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Reads the `FLOW_SMTP_*` settings through `lookup` (an empty value counts as
    /// unset). A missing host or sender, a port or timeout that is not a number, an
    /// unknown security mode, a user without a password: each is an error naming the
    /// variable.
    ///
    /// ```
    /// use flow_runtime::notify::{SmtpConfig, SmtpSecurity};
    /// let vars = [("FLOW_SMTP_HOST", "mail.example.com"), ("FLOW_SMTP_MAIL_FROM", "flow@example.com"), ("FLOW_SMTP_SECURITY", "tls"), ("FLOW_SMTP_PORT", "465")];
    /// let lookup = |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string());
    /// let config = SmtpConfig::from_vars(lookup).unwrap();
    /// assert_eq!((config.port, config.security), (465, SmtpSecurity::Tls));
    /// ```
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, NotifyError> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let host = var("FLOW_SMTP_HOST").ok_or(NotifyError::MissingVar {
            var: "FLOW_SMTP_HOST",
            hint: "set it to the SMTP server's host name to send email alerts",
        })?;
        let mail_from = var("FLOW_SMTP_MAIL_FROM").ok_or(NotifyError::MissingVar {
            var: "FLOW_SMTP_MAIL_FROM",
            hint: "set it to the sender of email alerts, like `flow@example.com`",
        })?;
        if mail_from.trim().parse::<Mailbox>().is_err() {
            return Err(invalid_sender(mail_from));
        }
        let mut config = Self::new(host.trim(), mail_from);
        if let Some(port) = var("FLOW_SMTP_PORT") {
            config.port = match port.trim().parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => {
                    return Err(NotifyError::InvalidVar {
                        var: "FLOW_SMTP_PORT",
                        value: port,
                        expected: "a port number from 1 to 65535 (default 25)",
                    });
                }
            };
        }
        if let Some(security) = var("FLOW_SMTP_SECURITY") {
            config.security = SmtpSecurity::parse(&security).ok_or(NotifyError::InvalidVar {
                var: "FLOW_SMTP_SECURITY",
                value: security,
                expected: "`none`, `starttls` (the default) or `tls`",
            })?;
        }
        if let Some(timeout) = var("FLOW_SMTP_TIMEOUT") {
            config.timeout = match timeout.trim().parse::<u64>() {
                Ok(s) if s > 0 => Duration::from_secs(s),
                _ => {
                    return Err(NotifyError::InvalidVar {
                        var: "FLOW_SMTP_TIMEOUT",
                        value: timeout,
                        expected: "a whole number of seconds, at least 1 (default 30)",
                    });
                }
            };
        }
        config.user = var("FLOW_SMTP_USER");
        config.password = lookup("FLOW_SMTP_PASSWORD").filter(|p| !p.is_empty());
        if config.user.is_some() && config.password.is_none() {
            return Err(NotifyError::MissingVar {
                var: "FLOW_SMTP_PASSWORD",
                hint: "FLOW_SMTP_USER is set, so the server needs its password too",
            });
        }
        Ok(config)
    }

    /// `host:port`, for messages.
    fn server(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    fn transport(&self) -> Result<SmtpTransport, NotifyError> {
        let failed = |e: lettre::transport::smtp::Error| NotifyError::Smtp {
            server: self.server(),
            reason: e.to_string(),
        };
        let builder = match self.security {
            SmtpSecurity::None => SmtpTransport::builder_dangerous(&self.host),
            SmtpSecurity::StartTls => SmtpTransport::starttls_relay(&self.host).map_err(failed)?,
            SmtpSecurity::Tls => SmtpTransport::relay(&self.host).map_err(failed)?,
        };
        let builder = builder.port(self.port).timeout(Some(self.timeout));
        Ok(match (&self.user, &self.password) {
            (Some(user), Some(password)) => builder
                .credentials(Credentials::new(user.clone(), password.clone()))
                .build(),
            _ => builder.build(),
        })
    }
}

fn invalid_sender(value: String) -> NotifyError {
    NotifyError::InvalidVar {
        var: "FLOW_SMTP_MAIL_FROM",
        value,
        expected: "an email address like `flow@example.com`",
    }
}

/// Checks one recipient address, as a DAG with `email = [..]` is built.
pub(crate) fn check_address(address: &str) -> Result<Mailbox, NotifyError> {
    address
        .trim()
        .parse::<Mailbox>()
        .map_err(|e| NotifyError::InvalidAddress {
            address: address.to_string(),
            reason: e.to_string(),
        })
}

/// Mails an alert for each event it is given: a task's `email`, or a callback of its own.
///
/// ```no_run
/// use flow_runtime::notify::{EmailNotifier, SmtpConfig};
/// use flow_runtime::prelude::*;
/// # fn main() -> Result<(), flow_runtime::notify::NotifyError> {
/// let mail = EmailNotifier::new(["ops@example.com"])?
///     .smtp(SmtpConfig::new("mail.example.com", "flow@example.com"));
/// let dag = DagBuilder::new("etl").on_failure(mail.into_callback());
/// # let _ = dag;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct EmailNotifier {
    to: Vec<Mailbox>,
    smtp: Option<Arc<SmtpConfig>>,
}

impl EmailNotifier {
    /// Mails `to`, through the server named by the `FLOW_SMTP_*` variables, read when a
    /// mail is sent (unless [`EmailNotifier::smtp`] names one). Every address is checked.
    pub fn new<I, S>(to: I) -> Result<Self, NotifyError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let to = to
            .into_iter()
            .map(|address| check_address(address.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        if to.is_empty() {
            return Err(NotifyError::NoRecipients);
        }
        Ok(Self { to, smtp: None })
    }

    /// Sends through `config` instead of the `FLOW_SMTP_*` variables.
    pub fn smtp(self, config: SmtpConfig) -> Self {
        self.shared_smtp(Some(Arc::new(config)))
    }

    pub(crate) fn shared_smtp(mut self, config: Option<Arc<SmtpConfig>>) -> Self {
        self.smtp = config;
        self
    }

    /// Mails one alert about `event`, reporting what went wrong.
    pub fn send(&self, event: &CallbackEvent) -> Result<(), NotifyError> {
        let config = match &self.smtp {
            Some(config) => Arc::clone(config),
            None => Arc::new(SmtpConfig::from_env()?),
        };
        let from = check_address(&config.mail_from)
            .map_err(|_| invalid_sender(config.mail_from.clone()))?;
        let mut message = Message::builder()
            .from(from)
            .subject(super::subject(event))
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            message = message.to(to.clone());
        }
        let message = message
            .body(super::body(event))
            .map_err(|e| NotifyError::Smtp {
                server: config.server(),
                reason: format!("the message could not be built: {e}"),
            })?;
        config
            .transport()?
            .send(&message)
            .map(drop)
            .map_err(|e| NotifyError::Smtp {
                server: config.server(),
                reason: e.to_string(),
            })
    }

    /// Mails one alert about `event`, logging (never returning) a failure.
    pub fn notify(&self, event: &CallbackEvent) {
        if let Err(error) = self.send(event) {
            super::log_failure(&format!("email to {}", self.recipients()), event, &error);
        }
    }

    /// The notifier as a callback for `on_failure`, `on_retry` or `on_success`.
    pub fn into_callback(self) -> impl Fn(&CallbackEvent) + Clone + Send + Sync + 'static {
        let notifier = Arc::new(self);
        move |event: &CallbackEvent| notifier.notify(event)
    }

    fn recipients(&self) -> String {
        self.to
            .iter()
            .map(|m| m.email.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<SmtpConfig, NotifyError> {
        SmtpConfig::from_vars(|name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_string())
        })
    }

    const BASE: [(&str, &str); 2] = [
        ("FLOW_SMTP_HOST", "mail.example.com"),
        ("FLOW_SMTP_MAIL_FROM", "flow@example.com"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Result<SmtpConfig, NotifyError> {
        let mut vars = BASE.to_vec();
        vars.extend_from_slice(extra);
        config(&vars)
    }

    #[test]
    fn smtp_settings_default_like_airflow() {
        let config = with(&[]).unwrap();
        assert_eq!(
            config,
            SmtpConfig::new("mail.example.com", "flow@example.com")
        );
        assert_eq!(config.port, 25);
        assert_eq!(config.security, SmtpSecurity::StartTls);
        assert_eq!(config.timeout, Duration::from_secs(30));
        assert_eq!(config.user, None);
    }

    #[test]
    fn every_smtp_setting_is_read() {
        let config = with(&[
            ("FLOW_SMTP_PORT", "465"),
            ("FLOW_SMTP_SECURITY", "TLS"),
            ("FLOW_SMTP_USER", "flow"),
            ("FLOW_SMTP_PASSWORD", "s3cret"),
            ("FLOW_SMTP_TIMEOUT", "5"),
        ])
        .unwrap();
        assert_eq!(config.port, 465);
        assert_eq!(config.security, SmtpSecurity::Tls);
        assert_eq!(config.user.as_deref(), Some("flow"));
        assert_eq!(config.password.as_deref(), Some("s3cret"));
        assert_eq!(config.timeout, Duration::from_secs(5));
        assert!(
            !format!("{config:?}").contains("s3cret"),
            "the password stays out of logs"
        );
        assert_eq!(
            with(&[("FLOW_SMTP_SECURITY", "none")]).unwrap().security,
            SmtpSecurity::None
        );
    }

    #[test]
    fn bad_smtp_settings_name_the_variable() {
        let message = |extra: &[(&'static str, &'static str)]| with(extra).unwrap_err().to_string();
        assert_eq!(
            message(&[("FLOW_SMTP_PORT", "smtp")]),
            "FLOW_SMTP_PORT=`smtp` is not valid: expected a port number from 1 to 65535 (default 25)"
        );
        assert!(message(&[("FLOW_SMTP_PORT", "70000")]).starts_with("FLOW_SMTP_PORT=`70000`"));
        assert!(message(&[("FLOW_SMTP_PORT", "0")]).starts_with("FLOW_SMTP_PORT=`0`"));
        assert_eq!(
            message(&[("FLOW_SMTP_SECURITY", "ssl")]),
            "FLOW_SMTP_SECURITY=`ssl` is not valid: expected `none`, `starttls` (the default) or `tls`"
        );
        assert!(message(&[("FLOW_SMTP_TIMEOUT", "1m")]).starts_with("FLOW_SMTP_TIMEOUT=`1m`"));
        assert!(
            message(&[("FLOW_SMTP_USER", "flow")])
                .starts_with("FLOW_SMTP_PASSWORD is not set: FLOW_SMTP_USER is set")
        );
        assert!(
            config(&[("FLOW_SMTP_MAIL_FROM", "flow@example.com")])
                .unwrap_err()
                .to_string()
                .starts_with("FLOW_SMTP_HOST is not set")
        );
        assert!(
            config(&[("FLOW_SMTP_HOST", "mail"), ("FLOW_SMTP_MAIL_FROM", " ")])
                .unwrap_err()
                .to_string()
                .starts_with("FLOW_SMTP_MAIL_FROM is not set")
        );
        assert!(
            config(&[("FLOW_SMTP_HOST", "mail"), ("FLOW_SMTP_MAIL_FROM", "flow")])
                .unwrap_err()
                .to_string()
                .starts_with("FLOW_SMTP_MAIL_FROM=`flow` is not valid")
        );
    }

    #[test]
    fn recipients_are_checked_up_front() {
        assert!(EmailNotifier::new(["ops@example.com", "Ops <ops@example.org>"]).is_ok());
        assert_eq!(
            EmailNotifier::new(Vec::<String>::new()).unwrap_err(),
            NotifyError::NoRecipients
        );
        let err = EmailNotifier::new(["ops@example.com", "not an address"]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid email address `not an address`: "),
            "{err}"
        );
    }
}

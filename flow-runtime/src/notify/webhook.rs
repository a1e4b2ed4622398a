//! Webhooks: an HTTP POST of the callback event as JSON (ureq, rustls).

use std::sync::Arc;
use std::time::Duration;

use ureq::tls::{TlsConfig, TlsProvider};

use super::NotifyError;
use crate::task::callbacks::CallbackEvent;

/// How long a POST may take, connecting included, unless [`Webhook::timeout`] says
/// otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// POSTs each event it is given, as JSON (see [`CallbackEvent`]), to one URL.
#[derive(Clone, Debug)]
pub struct Webhook {
    url: String,
    timeout: Duration,
    agent: ureq::Agent,
}

impl Webhook {
    /// A webhook to `url`, an `http://` or `https://` URL with a host; anything else is
    /// an error.
    pub fn new(url: impl Into<String>) -> Result<Self, NotifyError> {
        let url = url.into();
        let invalid = |reason: &str| NotifyError::InvalidUrl {
            url: url.clone(),
            reason: reason.to_string(),
        };
        let trimmed = url.trim();
        let Some((scheme, rest)) = trimmed.split_once("://") else {
            return Err(invalid("it has no scheme"));
        };
        if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
            return Err(invalid(&format!("the scheme `{scheme}` is not HTTP")));
        }
        if rest.is_empty() || rest.starts_with(['/', '?', '#']) {
            return Err(invalid("it has no host"));
        }
        trimmed
            .parse::<ureq::http::Uri>()
            .map_err(|e| invalid(&e.to_string()))?;
        Ok(Self {
            agent: agent(DEFAULT_TIMEOUT),
            url: url.trim().to_string(),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Gives up on a POST after `timeout` (default 10 seconds).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self.agent = agent(timeout);
        self
    }

    /// The URL posted to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// POSTs `event`, reporting a failure or a status other than 2xx.
    pub fn send(&self, event: &CallbackEvent) -> Result<(), NotifyError> {
        let response =
            self.agent
                .post(&self.url)
                .send_json(event)
                .map_err(|e| NotifyError::Http {
                    url: self.url.clone(),
                    reason: match e {
                        ureq::Error::Timeout(_) => format!("no answer within {:?}", self.timeout),
                        other => other.to_string(),
                    },
                })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(NotifyError::Status {
                url: self.url.clone(),
                status: status.as_u16(),
            })
        }
    }

    /// POSTs `event`, logging (never returning) a failure.
    pub fn notify(&self, event: &CallbackEvent) {
        if let Err(error) = self.send(event) {
            super::log_failure("webhook", event, &error);
        }
    }

    /// The webhook as a callback for `on_failure`, `on_retry` or `on_success`.
    pub fn into_callback(self) -> impl Fn(&CallbackEvent) + Clone + Send + Sync + 'static {
        let hook = Arc::new(self);
        move |event: &CallbackEvent| hook.notify(event)
    }
}

/// A callback that POSTs its event to `url` as JSON:
/// `.on_failure(notify::webhook("https://alerts.example.com/flow")?)`.
pub fn webhook(
    url: impl Into<String>,
) -> Result<impl Fn(&CallbackEvent) + Clone + Send + Sync + 'static, NotifyError> {
    Webhook::new(url).map(Webhook::into_callback)
}

/// A client with one TLS provider (ring), and statuses read by
/// [`Webhook::send`] rather than turned into errors.
fn agent(timeout: Duration) -> ureq::Agent {
    let tls = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .build();
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .tls_config(tls)
        .build()
        .new_agent()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_up_front() {
        let message = |url: &str| Webhook::new(url).unwrap_err().to_string();
        assert_eq!(
            message("ftp://example.com/hook"),
            "invalid webhook URL `ftp://example.com/hook`: the scheme `ftp` is not HTTP; \
             expected an http:// or https:// URL"
        );
        assert!(message("example.com/hook").contains("it has no scheme"));
        assert!(message("http://").contains("it has no host"));
        assert_eq!(
            message("https://alerts example.com"),
            "invalid webhook URL `https://alerts example.com`: invalid uri character; \
             expected an http:// or https:// URL"
        );
        let hook = Webhook::new(" https://alerts.example.com/flow?key=1 ").unwrap();
        assert_eq!(hook.url(), "https://alerts.example.com/flow?key=1");
    }
}

//! Traces: a span per DAG run (`dag_run`) and, inside it, a span per task try (`task`),
//! with the task's own `tracing` spans inside that. Both carry `dag` and `run`; a try's
//! span adds `task`, `map_index` (for an instance of a mapped task) and `try_number`.
//!
//! With the `otel` feature, [`OtlpSettings`] (read by [`crate::settings::Settings`] from
//! the standard `OTEL_EXPORTER_OTLP_*` variables) and [`OtlpExporter`] send these spans to
//! an OpenTelemetry collector over OTLP/HTTP with protobuf bodies; the CLI installs the
//! exporter's layer when an endpoint is set. A try that fails logs its error inside its
//! span, which marks the span as an error.
//!
//! The run span exists for traces only: the log output leaves it out (its fields would
//! repeat the try's), see [`is_run_span`].

use tracing::Metadata;

use crate::ids::{DagId, RunId};

/// The target of the run spans.
pub const RUN_SPAN_TARGET: &str = "flow_runtime::traces::run";

/// Whether `metadata` is a run's span, which log output leaves out.
pub fn is_run_span(metadata: &Metadata<'_>) -> bool {
    metadata.is_span() && metadata.target() == RUN_SPAN_TARGET
}

/// The span of one run of `dag_id` (disabled, and free, unless a trace exporter wants it).
pub(crate) fn run_span(dag_id: &DagId, run_id: &RunId) -> tracing::Span {
    tracing::info_span!(target: RUN_SPAN_TARGET, "dag_run", dag = %dag_id, run = %run_id)
}

#[cfg(feature = "otel")]
pub use otlp::{OtlpError, OtlpExporter, OtlpSettings};

#[cfg(feature = "otel")]
mod otlp {
    use std::time::Duration;

    use opentelemetry::KeyValue;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::registry::LookupSpan;

    /// Where and how spans are sent, from the standard variables: the traces endpoint
    /// (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as it is, else `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// with `/v1/traces` added), headers, timeout, and the service's name and resource
    /// attributes.
    #[derive(Clone, Debug, PartialEq)]
    pub struct OtlpSettings {
        /// The URL spans are posted to.
        pub endpoint: String,
        /// Headers of every request (`OTEL_EXPORTER_OTLP_[TRACES_]HEADERS`).
        pub headers: Vec<(String, String)>,
        /// How long one export may take (`OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT`, ms).
        pub timeout: Option<Duration>,
        /// `service.name` (`OTEL_SERVICE_NAME`); the program's name when unset.
        pub service_name: Option<String>,
        /// More resource attributes (`OTEL_RESOURCE_ATTRIBUTES`).
        pub resource: Vec<(String, String)>,
    }

    /// A variable of the OTLP settings that cannot be used.
    #[derive(Debug, thiserror::Error)]
    #[error("{var} must be {expected} (found `{value}`)")]
    pub struct OtlpError {
        /// The variable.
        pub var: &'static str,
        /// Its value.
        pub value: String,
        /// What it may be.
        pub expected: String,
    }

    /// The variables, the signal's own one first.
    const ENDPOINT: [&str; 2] = [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ];
    const PROTOCOL: [&str; 2] = [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ];
    const HEADERS: [&str; 2] = [
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        "OTEL_EXPORTER_OTLP_HEADERS",
    ];
    const TIMEOUT: [&str; 2] = [
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    ];

    impl OtlpSettings {
        /// Reads the variables through `var` (unset and empty alike are `None`): `None`
        /// when no endpoint is set or `OTEL_SDK_DISABLED` / `OTEL_TRACES_EXPORTER=none`
        /// turn traces off.
        pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, OtlpError> {
            let first = |names: [&'static str; 2]| {
                names
                    .into_iter()
                    .find_map(|name| var(name).map(|value| (name, value)))
            };
            let off = var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
                || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"));
            let Some((name, endpoint)) = first(ENDPOINT) else {
                return Ok(None);
            };
            if off {
                return Ok(None);
            }
            let url = url::Url::parse(&endpoint)
                .ok()
                .filter(|url| matches!(url.scheme(), "http" | "https") && url.host_str().is_some());
            if url.is_none() {
                return Err(OtlpError {
                    var: name,
                    value: endpoint,
                    expected: "an http:// or https:// URL of a collector, like \
                               http://127.0.0.1:4318"
                        .into(),
                });
            }
            let endpoint = if name == ENDPOINT[0] {
                endpoint
            } else {
                format!("{}/v1/traces", endpoint.trim_end_matches('/'))
            };
            if let Some((name, protocol)) = first(PROTOCOL)
                && protocol != "http/protobuf"
            {
                return Err(OtlpError {
                    var: name,
                    value: protocol,
                    expected: "`http/protobuf` (flow sends OTLP over HTTP: point the endpoint \
                               at the collector's HTTP port, usually 4318)"
                        .into(),
                });
            }
            let headers = first(HEADERS)
                .map(|(name, value)| pairs(name, &value))
                .transpose()?
                .unwrap_or_default();
            let timeout = first(TIMEOUT)
                .map(|(name, value)| match value.trim().parse::<u64>() {
                    Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
                    _ => Err(OtlpError {
                        var: name,
                        value,
                        expected: "a whole number of milliseconds, at least 1".into(),
                    }),
                })
                .transpose()?;
            let resource = var("OTEL_RESOURCE_ATTRIBUTES")
                .map(|value| pairs("OTEL_RESOURCE_ATTRIBUTES", &value))
                .transpose()?
                .unwrap_or_default();
            Ok(Some(Self {
                endpoint,
                headers,
                timeout,
                service_name: var("OTEL_SERVICE_NAME"),
                resource,
            }))
        }
    }

    /// `key=value,key=value` with `%`-encoded values (the W3C baggage form the
    /// specification uses for headers and resource attributes).
    fn pairs(var: &'static str, text: &str) -> Result<Vec<(String, String)>, OtlpError> {
        text.split(',')
            .filter(|item| !item.trim().is_empty())
            .map(|item| {
                let (key, value) = item
                    .split_once('=')
                    .filter(|(key, _)| !key.trim().is_empty())
                    .ok_or_else(|| OtlpError {
                        var,
                        value: text.to_string(),
                        expected: "a list like `key=value,other=value`".into(),
                    })?;
                let value = url::form_urlencoded::parse(format!("v={}", value.trim()).as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                Ok((key.trim().to_string(), value))
            })
            .collect()
    }

    /// Sends spans to the collector in batches, from a thread of its own; dropping it
    /// sends what is left.
    pub struct OtlpExporter {
        provider: SdkTracerProvider,
    }

    impl std::fmt::Debug for OtlpExporter {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("OtlpExporter").finish_non_exhaustive()
        }
    }

    impl OtlpExporter {
        /// An exporter to `settings`' collector; `program` names the service when
        /// `OTEL_SERVICE_NAME` does not.
        pub fn start(settings: &OtlpSettings, program: &str) -> Result<Self, String> {
            // The HTTP client's TLS uses the process's default rustls provider; install
            // ring unless the program installed one already.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let mut exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(settings.endpoint.clone())
                .with_headers(settings.headers.iter().cloned().collect());
            if let Some(timeout) = settings.timeout {
                exporter = exporter.with_timeout(timeout);
            }
            let exporter = exporter
                .build()
                .map_err(|e| format!("cannot send traces to {}: {e}", settings.endpoint))?;
            let service = settings.service_name.as_deref().unwrap_or(program);
            let resource = Resource::builder_empty()
                .with_service_name(service.to_string())
                .with_attributes(
                    settings
                        .resource
                        .iter()
                        .map(|(key, value)| KeyValue::new(key.clone(), value.clone())),
                )
                .build();
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(resource)
                .build();
            Ok(Self { provider })
        }

        /// The `tracing` layer that turns spans into OpenTelemetry spans for this
        /// exporter.
        pub fn layer<S>(&self) -> impl tracing_subscriber::Layer<S> + use<S>
        where
            S: tracing::Subscriber + for<'a> LookupSpan<'a>,
        {
            tracing_opentelemetry::layer()
                .with_tracer(self.provider.tracer("flow"))
                .with_threads(false)
                .with_tracked_inactivity(false)
        }
    }

    impl Drop for OtlpExporter {
        fn drop(&mut self) {
            // Sends the spans still batched; a collector that went away only loses them.
            if let Err(e) = self.provider.shutdown() {
                eprintln!("warning: not every span reached the collector: {e}");
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn read(vars: &[(&str, &str)]) -> Result<Option<OtlpSettings>, OtlpError> {
            OtlpSettings::from_vars(|name| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            })
        }

        #[test]
        fn the_endpoint_turns_traces_on_and_the_signal_variable_wins() {
            assert_eq!(read(&[]).unwrap(), None);
            let base = read(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")])
                .unwrap()
                .unwrap();
            assert_eq!(base.endpoint, "http://collector:4318/v1/traces");
            let own = read(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "http://traces:1234/in",
                ),
            ])
            .unwrap()
            .unwrap();
            assert_eq!(own.endpoint, "http://traces:1234/in");
            for off in [
                ("OTEL_SDK_DISABLED", "true"),
                ("OTEL_TRACES_EXPORTER", "none"),
            ] {
                assert_eq!(
                    read(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), off]).unwrap(),
                    None
                );
            }
        }

        #[test]
        fn headers_timeout_and_resource_are_read() {
            let settings = read(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c.example.com"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=a%20b, tenant=t1"),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
                ("OTEL_SERVICE_NAME", "etl"),
                ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod"),
            ])
            .unwrap()
            .unwrap();
            assert_eq!(
                settings.headers,
                [
                    ("api-key".to_string(), "a b".to_string()),
                    ("tenant".to_string(), "t1".to_string())
                ]
            );
            assert_eq!(settings.timeout, Some(Duration::from_millis(2500)));
            assert_eq!(settings.service_name.as_deref(), Some("etl"));
            assert_eq!(
                settings.resource,
                [("deployment.environment".to_string(), "prod".to_string())]
            );
        }

        #[test]
        fn bad_values_are_refused_naming_the_variable() {
            let refused = |vars: &[(&str, &str)]| read(vars).unwrap_err().to_string();
            let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318");
            assert!(
                refused(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")])
                    .starts_with("OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// or https:// URL"),
            );
            let grpc = refused(&[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]);
            assert!(grpc.contains("`http/protobuf`"), "{grpc}");
            assert!(grpc.contains("(found `grpc`)"), "{grpc}");
            assert!(
                refused(&[endpoint, ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "soon")])
                    .starts_with("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT must be a whole number")
            );
            assert!(
                refused(&[endpoint, ("OTEL_EXPORTER_OTLP_HEADERS", "no-value")])
                    .starts_with("OTEL_EXPORTER_OTLP_HEADERS must be a list")
            );
        }
    }
}

//! Traces sent over OTLP to a receiver on loopback: a span per run, a span per try inside
//! it, the tasks' own spans inside those.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use prost::Message as _;

/// An OTLP/HTTP receiver on 127.0.0.1: it decodes every export request posted to
/// `/v1/traces` and keeps the requests.
struct Receiver {
    server: Arc<tiny_http::Server>,
    received: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    fn start() -> Self {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let (listener, sink) = (server.clone(), received.clone());
        let thread = std::thread::spawn(move || {
            for mut request in listener.incoming_requests() {
                let mut body = Vec::new();
                std::io::Read::read_to_end(request.as_reader(), &mut body).unwrap();
                let status = if request.url() != "/v1/traces" {
                    404
                } else {
                    match ExportTraceServiceRequest::decode(body.as_slice()) {
                        Ok(export) => {
                            sink.lock().unwrap().push(export);
                            200
                        }
                        Err(_) => 400,
                    }
                };
                let _ = request.respond(
                    tiny_http::Response::from_data(Vec::new())
                        .with_status_code(status)
                        .with_header(
                            tiny_http::Header::from_bytes("Content-Type", "application/x-protobuf")
                                .unwrap(),
                        ),
                );
            }
        });
        Self {
            server,
            received,
            thread: Some(thread),
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.server.server_addr().to_ip().unwrap())
    }

    /// Every span received, with its service's name.
    fn spans(&self) -> Vec<(String, Span)> {
        let mut spans = Vec::new();
        for export in self.received.lock().unwrap().iter() {
            for resource_spans in &export.resource_spans {
                let service = resource_spans
                    .resource
                    .as_ref()
                    .and_then(|r| text(&r.attributes, "service.name"))
                    .unwrap_or_default();
                for scope in &resource_spans.scope_spans {
                    for span in &scope.spans {
                        spans.push((service.clone(), span.clone()));
                    }
                }
            }
        }
        spans
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn text(attributes: &[KeyValue], key: &str) -> Option<String> {
    match attribute(attributes, key)? {
        Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

fn int(attributes: &[KeyValue], key: &str) -> Option<i64> {
    match attribute(attributes, key)? {
        Value::IntValue(i) => Some(*i),
        _ => None,
    }
}

#[test]
fn runs_tries_and_task_spans_reach_a_collector_as_one_trace() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let release = dir.path().join("release");
    std::fs::write(&release, "go").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_fixture"))
        .args(["dags", "test", "observed", "--in-memory"])
        .env("FLOW_HOME", dir.path())
        .env("FLOW_LOG", "warn")
        .env("FLOW_TEST_RELEASE_FILE", &release)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
        .env("OTEL_SERVICE_NAME", "flow-tests")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The exporter sends what is left when the process ends.
    let spans = receiver.spans();
    assert!(spans.iter().all(|(service, _)| service == "flow-tests"));
    let spans: Vec<Span> = spans.into_iter().map(|(_, span)| span).collect();
    let named = |name: &'static str| spans.iter().filter(move |s| s.name == name);

    let runs: Vec<&Span> = named("dag_run").collect();
    assert_eq!(runs.len(), 1, "{spans:#?}");
    let run = runs[0];
    assert!(run.parent_span_id.is_empty(), "the run's span is a root");
    assert_eq!(text(&run.attributes, "dag").as_deref(), Some("observed"));
    let run_id = text(&run.attributes, "run").unwrap();
    assert!(run_id.starts_with("manual__"), "{run_id}");

    // Seven tries: two of `fails_first_try`, `partitions`, three mapped, `hold`; each a
    // child of the run, in its trace, with the instance's fields.
    let tries: Vec<&Span> = named("task").collect();
    assert_eq!(tries.len(), 7, "{tries:#?}");
    let mut by_task: HashMap<String, Vec<&Span>> = HashMap::new();
    for span in &tries {
        assert_eq!(span.trace_id, run.trace_id);
        assert_eq!(span.parent_span_id, run.span_id);
        assert_eq!(text(&span.attributes, "dag").as_deref(), Some("observed"));
        assert_eq!(text(&span.attributes, "run"), Some(run_id.clone()));
        by_task
            .entry(text(&span.attributes, "task").unwrap())
            .or_default()
            .push(span);
    }
    let mut retried: Vec<(i64, i32)> = by_task["fails_first_try"]
        .iter()
        .map(|s| {
            let code = s.status.as_ref().map_or(0, |status| status.code);
            (int(&s.attributes, "try_number").unwrap(), code)
        })
        .collect();
    retried.sort_unstable();
    assert_eq!(
        retried,
        [(1, StatusCode::Error as i32), (2, StatusCode::Unset as i32)],
        "the failed try is an error"
    );
    let mut map_indexes: Vec<i64> = by_task["process_partition"]
        .iter()
        .map(|s| int(&s.attributes, "map_index").unwrap())
        .collect();
    map_indexes.sort_unstable();
    assert_eq!(map_indexes, [0, 1, 2]);
    assert_eq!(int(&by_task["hold"][0].attributes, "map_index"), None);

    // The task's own span sits inside its try's.
    let holding: Vec<&Span> = named("holding").collect();
    assert_eq!(holding.len(), 1);
    assert_eq!(holding[0].parent_span_id, by_task["hold"][0].span_id);
    assert_eq!(holding[0].trace_id, run.trace_id);
}

#[test]
fn a_bad_otlp_setting_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_fixture"))
        .args(["dags", "test", "observed", "--in-memory"])
        .env("FLOW_HOME", dir.path())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: OTEL_EXPORTER_OTLP_PROTOCOL must be `http/protobuf`"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "nothing ran");
}

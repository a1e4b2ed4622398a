//! Email and webhook notifications end to end: DAGs run by the executor against an SMTP
//! server and an HTTP server on 127.0.0.1, started and stopped by each test.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::thread::JoinHandle;
use std::time::Duration;

use flow_runtime::notify::{self, SmtpConfig, SmtpSecurity, Webhook};
use flow_runtime::prelude::*;
use flow_runtime::store::MemoryStore;
use flow_runtime::{Executor, TaskSummary};

// ---------------------------------------------------------------------------------------
// An SMTP server: real SMTP over TCP, keeping what it is sent. (mailin-embedded's server
// cannot be stopped, and each test stops what it starts.)

/// One message as the server received it.
#[derive(Clone, Debug)]
struct Mail {
    from: String,
    to: Vec<String>,
    /// Headers and body, dot-unstuffed, folded header lines joined.
    data: String,
}

impl Mail {
    fn header(&self, name: &str) -> Option<&str> {
        let head = self.data.split("\r\n\r\n").next()?;
        head.lines()
            .find_map(|line| line.strip_prefix(&format!("{name}: ")))
    }

    fn body(&self) -> &str {
        self.data
            .split_once("\r\n\r\n")
            .map_or("", |(_, body)| body)
    }
}

struct SmtpServer {
    addr: SocketAddr,
    mails: Arc<Mutex<Vec<Mail>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SmtpServer {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let (mails, stop) = (mails.clone(), stop.clone());
            move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        // A broken session loses its mail, which the test then reports.
                        let _ = serve_smtp(stream, &mails);
                    }
                }
            }
        });
        Self {
            addr,
            mails,
            stop,
            thread: Some(thread),
        }
    }

    fn config(&self) -> SmtpConfig {
        SmtpConfig {
            port: self.addr.port(),
            security: SmtpSecurity::None,
            ..SmtpConfig::new("127.0.0.1", "Flow <flow@example.com>")
        }
    }

    /// Stops the server and returns what it received.
    fn stop(mut self) -> Vec<Mail> {
        self.shut_down();
        self.mails.lock().unwrap().clone()
    }

    fn shut_down(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.shut_down();
    }
}

fn serve_smtp(stream: TcpStream, mails: &Mutex<Vec<Mail>>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    out.write_all(b"220 flow-test ESMTP\r\n")?;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_string();
        let verb = command
            .split([' ', ':'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => out.write_all(b"250-flow-test\r\n250 8BITMIME\r\n")?,
            "HELO" | "RSET" | "NOOP" => out.write_all(b"250 OK\r\n")?,
            "MAIL" => {
                from = address(&command);
                out.write_all(b"250 OK\r\n")?;
            }
            "RCPT" => {
                to.push(address(&command));
                out.write_all(b"250 OK\r\n")?;
            }
            "DATA" => {
                out.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line)? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                mails.lock().unwrap().push(Mail {
                    from: std::mem::take(&mut from),
                    to: std::mem::take(&mut to),
                    data: data.replace("\r\n ", " ").replace("\r\n\t", " "),
                });
                out.write_all(b"250 OK queued\r\n")?;
            }
            "QUIT" => {
                out.write_all(b"221 Bye\r\n")?;
                return Ok(());
            }
            _ => out.write_all(b"502 Command not implemented\r\n")?,
        }
    }
}

/// `MAIL FROM:<a@b> SIZE=10` -> `a@b`.
fn address(command: &str) -> String {
    let start = command.find('<').map_or(0, |i| i + 1);
    let end = command.find('>').unwrap_or(command.len());
    command[start..end].to_string()
}

// ---------------------------------------------------------------------------------------
// An HTTP server (tiny_http) that answers every request with one status.

/// One request as the server received it.
#[derive(Debug)]
struct Post {
    method: String,
    path: String,
    content_type: Option<String>,
    json: serde_json::Value,
}

struct HttpServer {
    server: Arc<tiny_http::Server>,
    posts: Arc<Mutex<Vec<Post>>>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    fn start(status: u16) -> Self {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let posts = Arc::new(Mutex::new(Vec::new()));
        let thread = std::thread::spawn({
            let (server, posts) = (server.clone(), posts.clone());
            move || {
                for mut request in server.incoming_requests() {
                    let mut body = String::new();
                    let _ = request.as_reader().read_to_string(&mut body);
                    posts.lock().unwrap().push(Post {
                        method: request.method().to_string(),
                        path: request.url().to_string(),
                        content_type: request
                            .headers()
                            .iter()
                            .find(|h| h.field.equiv("Content-Type"))
                            .map(|h| h.value.to_string()),
                        json: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
                    });
                    let _ = request.respond(tiny_http::Response::empty(status));
                }
            }
        });
        Self {
            server,
            posts,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        let port = self.server.server_addr().to_ip().unwrap().port();
        format!("http://127.0.0.1:{port}{path}")
    }

    /// Stops the server and returns what it received.
    fn stop(mut self) -> Vec<Post> {
        self.shut_down();
        std::mem::take(&mut *self.posts.lock().unwrap())
    }

    fn shut_down(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.shut_down();
    }
}

// ---------------------------------------------------------------------------------------
// Helpers.

/// What the process logs, captured once for all tests (callbacks log from the blocking
/// pool, so a thread-local subscriber would miss them); each test looks for its DAG id.
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        std::io::stderr().write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        tracing_subscriber::fmt()
            .with_writer(|| Capture)
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .init();
    });
}

/// The captured log lines that mention `dag`.
fn log_lines(dag: &str) -> Vec<String> {
    String::from_utf8_lossy(&LOGS.lock().unwrap())
        .lines()
        .filter(|line| line.contains(&format!("dag={dag}")))
        .map(str::to_string)
        .collect()
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn fails(name: &str, error: &'static str) -> TaskSpec {
    TaskSpec::from_sync(name, move |_, _| -> Result<u32, TaskError> {
        Err(TaskError::Failed(error.to_string()))
    })
}

fn succeeds(name: &str) -> TaskSpec {
    TaskSpec::from_sync(name, |_, _| -> Result<u32, TaskError> { Ok(1) })
}

async fn run(executor: &Executor, dag: &Dag) -> RunSummary {
    executor
        .run(dag, chrono::Utc::now())
        .await
        .expect("the run completes")
}

fn executor() -> Executor {
    Executor::new(Arc::new(MemoryStore::new()))
}

/// The part of a run that notifiers must leave alone: its state and each task's state,
/// tries and error.
fn outcome(summary: &RunSummary) -> Vec<String> {
    let task = |t: &TaskSummary| format!("{} {} {} {:?}", t.task_id, t.state, t.tries, t.error);
    std::iter::once(format!("run {}", summary.state))
        .chain(summary.tasks.iter().map(task))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Email.

#[tokio::test]
async fn a_retried_then_failed_task_mails_its_recipients_twice() {
    let smtp = SmtpServer::start();
    let mut dag = DagBuilder::new("mail_twice");
    dag.add_task(
        fails("load", "disk full on /data")
            .retries(1)
            .retry_delay(Duration::ZERO)
            .email(["ops@example.com", "Oncall <oncall@example.com>"]),
    );
    dag.add_task(succeeds("quiet").email(["ops@example.com"]));
    let summary = run(&executor().smtp(smtp.config()), &dag.build().unwrap()).await;
    assert_eq!(summary.state, RunState::Failed);
    assert_eq!(summary.task("load").unwrap().tries, 2);

    let mut mails = smtp.stop();
    mails.sort_by_key(|m| m.header("Subject").map(str::to_string));
    assert_eq!(
        mails.len(),
        2,
        "a retry mail and a failure mail: {mails:#?}"
    );
    let run_id = summary.run_id.to_string();
    let (failed, retried) = (&mails[0], &mails[1]);
    assert_eq!(
        failed.header("Subject"),
        Some(format!("Flow alert: <TaskInstance: mail_twice.load {run_id} [failed]>").as_str())
    );
    assert_eq!(
        retried.header("Subject"),
        Some(
            format!("Flow alert: <TaskInstance: mail_twice.load {run_id} [up_for_retry]>").as_str()
        )
    );
    for (mail, try_number, state) in [(failed, 2, "failed"), (retried, 1, "up_for_retry")] {
        assert_eq!(mail.from, "flow@example.com");
        assert_eq!(mail.to, ["ops@example.com", "oncall@example.com"]);
        assert_eq!(mail.header("From"), Some("Flow <flow@example.com>"));
        let body = mail.body();
        for line in [
            "DAG: mail_twice".to_string(),
            "Task: load".to_string(),
            format!("Run: {run_id}"),
            format!("Logical date: {}", summary.logical_date.to_rfc3339()),
            format!("Try: {try_number}"),
            format!("State: {state}"),
            "Error:\r\ndisk full on /data".to_string(),
        ] {
            assert!(body.contains(&line), "`{line}` not in the body:\n{body}");
        }
    }
}

#[task(retries = 1, retry_delay = "0s", email = ["ops@example.com"], email_on_retry = false)]
fn quota_check() -> anyhow::Result<u32> {
    anyhow::bail!("quota exceeded")
}

#[dag]
fn mail_on_failure_only() {
    quota_check();
}

#[tokio::test]
async fn email_on_retry_false_mails_only_the_failure() {
    let smtp = SmtpServer::start();
    let summary = run(
        &executor().smtp(smtp.config()),
        &mail_on_failure_only().unwrap(),
    )
    .await;
    assert_eq!(summary.task("quota_check").unwrap().tries, 2);
    let mails = smtp.stop();
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert!(mails[0].header("Subject").unwrap().ends_with("[failed]>"));
    assert!(mails[0].body().contains("quota exceeded"));
}

#[task(retries = 1, retry_delay = "0s")]
fn inherits_email() -> anyhow::Result<u32> {
    anyhow::bail!("inherited failure")
}

#[task(email = [])]
fn opts_out() -> anyhow::Result<u32> {
    anyhow::bail!("quiet failure")
}

#[task(email_on_failure = false)]
fn retries_only() -> anyhow::Result<u32> {
    anyhow::bail!("not mailed")
}

#[dag(default_args(email = ["team@example.com"], email_on_retry = false))]
fn team_alerts() {
    inherits_email();
    opts_out();
    retries_only();
}

#[tokio::test]
async fn default_args_give_every_task_email_and_a_task_can_opt_out() {
    let smtp = SmtpServer::start();
    let summary = run(&executor().smtp(smtp.config()), &team_alerts().unwrap()).await;
    assert_eq!(summary.state, RunState::Failed);
    let mails = smtp.stop();
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert_eq!(mails[0].to, ["team@example.com"]);
    assert!(
        mails[0]
            .header("Subject")
            .unwrap()
            .contains("team_alerts.inherits_email")
    );
}

#[tokio::test]
async fn an_unreachable_smtp_server_is_logged_and_changes_nothing() {
    capture_logs();
    let build = |email: bool| {
        let mut dag = DagBuilder::new("mail_unreachable");
        let task = fails("load", "disk full")
            .retries(1)
            .retry_delay(Duration::ZERO);
        dag.add_task(if email {
            task.email(["ops@example.com"])
        } else {
            task
        });
        dag.add_task(succeeds("other"));
        dag.build().unwrap()
    };
    let port = closed_port();
    let config = SmtpConfig {
        port,
        security: SmtpSecurity::None,
        ..SmtpConfig::new("127.0.0.1", "flow@example.com")
    };
    let with_email = run(&executor().smtp(config), &build(true)).await;
    let without = run(&executor(), &build(false)).await;
    assert_eq!(outcome(&with_email), outcome(&without));

    let lines = log_lines("mail_unreachable");
    let server = format!("sending email through 127.0.0.1:{port} failed");
    for state in ["up_for_retry", "failed"] {
        assert!(
            lines.iter().any(|l| l.contains("ERROR")
                && l.contains(&format!(
                    "email to ops@example.com about state {state} not delivered"
                ))
                && l.contains(&server)),
            "no log of the {state} mail: {lines:#?}"
        );
    }
}

#[tokio::test]
async fn missing_smtp_settings_are_logged_at_send_time() {
    if std::env::var_os("FLOW_SMTP_HOST").is_some() {
        eprintln!("FLOW_SMTP_HOST is set here; this test needs it unset");
        return;
    }
    capture_logs();
    let mut dag = DagBuilder::new("mail_unconfigured");
    dag.add_task(fails("load", "boom").email(["ops@example.com"]));
    let summary = run(&executor(), &dag.build().unwrap()).await;
    assert_eq!(summary.task("load").unwrap().state, TaskState::Failed);
    let lines = log_lines("mail_unconfigured");
    assert!(
        lines.iter().any(|l| l.contains("not delivered")
            && l.contains("FLOW_SMTP_HOST is not set: set it to the SMTP server's host name")),
        "{lines:#?}"
    );
}

#[test]
fn bad_email_addresses_fail_the_build() {
    let mut dag = DagBuilder::new("bad_mail");
    dag.add_task(succeeds("load").email(["ops@example.com", "ops at example"]));
    let err = dag.build().unwrap_err().to_string();
    assert!(
        err.contains("task `load` has an invalid email address `ops at example`"),
        "{err}"
    );
    let mut dag = DagBuilder::new("bad_mail").default_args(TaskOptions::default().with_email([""]));
    dag.add_task(succeeds("load"));
    assert!(
        dag.build()
            .unwrap_err()
            .to_string()
            .contains("task `load` has an invalid email address ``"),
    );
}

// ---------------------------------------------------------------------------------------
// Webhooks.

#[tokio::test]
async fn webhooks_post_task_and_run_events_as_json() {
    let http = HttpServer::start(204);
    let mut failing = DagBuilder::new("hook_failing")
        .on_failure(notify::webhook(http.url("/runs")).unwrap())
        .on_success(notify::webhook(http.url("/never")).unwrap());
    failing.add_task(
        fails("load", "no route to warehouse")
            .on_failure(notify::webhook(http.url("/tasks")).unwrap()),
    );
    let failed = run(&executor(), &failing.build().unwrap()).await;
    let mut passing = DagBuilder::new("hook_passing")
        .on_success(Webhook::new(http.url("/runs")).unwrap().into_callback());
    passing.add_task(succeeds("load"));
    let passed = run(&executor(), &passing.build().unwrap()).await;

    let mut posts = http.stop();
    posts.sort_by(|a, b| {
        (&a.path, a.json["dag_id"].as_str()).cmp(&(&b.path, b.json["dag_id"].as_str()))
    });
    assert_eq!(posts.len(), 3, "{posts:#?}");
    for post in &posts {
        assert_eq!(post.method, "POST");
        assert_eq!(
            post.content_type.as_deref(),
            Some("application/json; charset=utf-8")
        );
    }
    let date = |s: &RunSummary| {
        s.logical_date
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    };
    assert_eq!(posts[0].path, "/runs");
    assert_eq!(
        posts[0].json,
        serde_json::json!({
            "dag_id": "hook_failing", "run_id": failed.run_id.to_string(),
            "logical_date": date(&failed), "task_id": null, "map_index": null, "try_number": 0,
            "state": "failed", "error": null,
        })
    );
    assert_eq!(posts[1].path, "/runs");
    assert_eq!(posts[1].json["dag_id"], "hook_passing");
    assert_eq!(posts[1].json["run_id"], passed.run_id.to_string());
    assert_eq!(posts[1].json["state"], "success");
    assert_eq!(posts[2].path, "/tasks");
    assert_eq!(
        posts[2].json,
        serde_json::json!({
            "dag_id": "hook_failing", "run_id": failed.run_id.to_string(),
            "logical_date": date(&failed), "task_id": "load", "map_index": null, "try_number": 1,
            "state": "failed", "error": "no route to warehouse",
        })
    );
}

#[tokio::test]
async fn a_webhook_answering_an_error_status_is_logged() {
    capture_logs();
    let http = HttpServer::start(500);
    let url = http.url("/hook");
    let mut dag = DagBuilder::new("hook_500").on_failure(notify::webhook(url.clone()).unwrap());
    dag.add_task(fails("load", "boom"));
    let summary = run(&executor(), &dag.build().unwrap()).await;
    assert_eq!(summary.state, RunState::Failed);
    assert_eq!(http.stop().len(), 1);
    let lines = log_lines("hook_500");
    assert!(
        lines.iter().any(|l| l.contains("ERROR")
            && l.contains(&format!(
                "POST to {url} answered HTTP 500; a webhook must answer 2xx"
            ))),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn an_unreachable_webhook_is_logged_and_changes_nothing() {
    capture_logs();
    let url = format!("http://127.0.0.1:{}/hook", closed_port());
    let build = |hook: bool| {
        let mut dag = DagBuilder::new("hook_unreachable");
        let task = fails("load", "boom").retries(1).retry_delay(Duration::ZERO);
        dag.add_task(if hook {
            task.on_retry(notify::webhook(url.clone()).unwrap())
                .on_failure(notify::webhook(url.clone()).unwrap())
        } else {
            task
        });
        dag.add_task(succeeds("other").on_success(notify::webhook(url.clone()).unwrap()));
        dag.build().unwrap()
    };
    let with_hooks = run(&executor(), &build(true)).await;
    let without = run(&executor(), &build(false)).await;
    assert_eq!(outcome(&with_hooks), outcome(&without));
    let lines = log_lines("hook_unreachable");
    for state in ["up_for_retry", "failed", "success"] {
        assert!(
            lines.iter().any(|l| l.contains("ERROR")
                && l.contains(&format!("webhook about state {state} not delivered"))
                && l.contains(&format!("POST to {url} failed"))),
            "no log of the {state} POST: {lines:#?}"
        );
    }
}

#[test]
fn bad_webhook_urls_are_rejected_when_built() {
    let err = Webhook::new("localhost:8080/hook").unwrap_err().to_string();
    assert!(
        err.starts_with("invalid webhook URL `localhost:8080/hook`"),
        "{err}"
    );
    assert!(
        err.ends_with("expected an http:// or https:// URL"),
        "{err}"
    );
}

#[test]
fn a_webhook_that_never_answers_gives_up_after_its_timeout() {
    // Connections queue in the backlog and are never answered.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", silent.local_addr().unwrap());
    let hook = Webhook::new(url.clone())
        .unwrap()
        .timeout(Duration::from_millis(200));
    let event = flow_runtime::task::callbacks::CallbackEvent {
        dag_id: "hook_silent".into(),
        run_id: flow_runtime::RunId::new("manual__1"),
        logical_date: chrono::Utc::now(),
        task_id: None,
        map_index: None,
        try_number: 0,
        state: "failed",
        error: None,
    };
    let err = hook.send(&event).unwrap_err().to_string();
    assert_eq!(err, format!("POST to {url} failed: no answer within 200ms"));
    drop(silent);
}

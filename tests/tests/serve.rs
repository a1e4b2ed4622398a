//! `serve`: the REST API of the fixture binary, over real HTTP on loopback, against runs
//! the binary recorded in a temporary flow home.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

/// A `serve` process: its base URL and what it printed on stderr; killed when dropped.
struct Server {
    child: Child,
    base: String,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    fn start(home: &Path, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fixture"))
            .env("FLOW_HOME", home)
            .envs(env.iter().copied())
            .args(["serve", "--port", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let stderr = Arc::new(Mutex::new(String::new()));
        let base = loop {
            let line = lines
                .next()
                .expect("serve ended before printing its URL")
                .unwrap();
            stderr.lock().unwrap().push_str(&line);
            if let Some(url) = line.strip_prefix("serving the API at ") {
                break url.trim_end_matches("/api/v2").to_string();
            }
        };
        // Keep reading, so the server never blocks on a full pipe.
        let rest = stderr.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut rest = rest.lock().unwrap();
                rest.push_str(&line);
                rest.push('\n');
            }
        });
        Self {
            child,
            base,
            stderr,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// The status and JSON body of a request (`null` for an empty body).
fn answer(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, Value) {
    let mut response = response.unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };
    (status, body)
}

fn get(server: &Server, path: &str) -> (u16, Value) {
    answer(agent().get(&server.url(path)).call())
}

fn send(server: &Server, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let url = server.url(path);
    let agent = agent();
    answer(match method {
        "POST" => agent.post(&url).send_json(body),
        "PATCH" => agent.patch(&url).send_json(body),
        _ => unreachable!("{method}"),
    })
}

/// Asserts that a command succeeded, showing its output if not.
fn succeeded(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the fixture's `dags test DAG` in `home`.
fn run_dag(home: &Path, dag: &str) {
    succeeded(
        &Command::new(env!("CARGO_BIN_EXE_fixture"))
            .env("FLOW_HOME", home)
            .env("FLOW_LOG", "warn")
            .args(["dags", "test", dag])
            .output()
            .unwrap(),
    );
}

#[test]
fn the_api_lists_dags_runs_instances_logs_and_xcoms() {
    let home = tempfile::tempdir().unwrap();
    run_dag(home.path(), "mapped");
    let server = Server::start(home.path(), &[]);

    let (status, dags) = get(&server, "/api/v2/dags?limit=100");
    assert_eq!(status, 200, "{dags}");
    let chain = dags["dags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["dag_id"] == "chain")
        .unwrap();
    assert_eq!(chain["timetable_summary"], "@daily");
    assert_eq!(chain["tags"], json!(["fixture"]));
    assert_eq!(chain["is_paused"], false);
    let mapped = dags["dags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["dag_id"] == "mapped");
    assert_eq!(
        mapped.unwrap()["timetable_summary"],
        Value::Null,
        "triggered only"
    );
    assert_eq!(
        chain["task_ids"],
        json!(["produce", "sort", "scale", "total"])
    );
    assert!(dags["total_entries"].as_u64().unwrap() > 10);
    let (_, page) = get(&server, "/api/v2/dags?limit=2&offset=1");
    assert_eq!(page["dags"].as_array().unwrap().len(), 2);
    assert_eq!(page["dags"][0]["dag_id"], dags["dags"][1]["dag_id"]);

    let (status, runs) = get(&server, "/api/v2/dags/mapped/dagRuns");
    assert_eq!(status, 200, "{runs}");
    assert_eq!(runs["total_entries"], 1);
    let run = &runs["dag_runs"][0];
    assert_eq!(run["state"], "success");
    assert_eq!(run["run_type"], "manual");
    let run_id = run["dag_run_id"].as_str().unwrap();
    // A run id as a path segment, percent-encoded (`+` and `:`).
    let encoded: String = run_id
        .bytes()
        .map(|b| match b {
            b'+' => "%2B".to_string(),
            b':' => "%3A".to_string(),
            b => (b as char).to_string(),
        })
        .collect();
    let (status, by_id) = get(&server, &format!("/api/v2/dags/mapped/dagRuns/{encoded}"));
    assert_eq!(status, 200, "{by_id}");
    assert_eq!(&by_id, run);

    let (status, instances) = get(&server, "/api/v2/dags/mapped/dagRuns/latest/taskInstances");
    assert_eq!(status, 200, "{instances}");
    assert_eq!(instances["total_entries"], 5);
    let rows: Vec<(String, i64, String)> = instances["task_instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ti| {
            (
                ti["task_id"].as_str().unwrap().to_string(),
                ti["map_index"].as_i64().unwrap(),
                ti["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        rows.contains(&("process_partition".into(), 2, "success".into())),
        "{rows:?}"
    );
    assert!(
        rows.contains(&("combine".into(), -1, "success".into())),
        "{rows:?}"
    );
    let (_, second_page) = get(
        &server,
        "/api/v2/dags/mapped/dagRuns/latest/taskInstances?limit=2&offset=2",
    );
    assert_eq!(second_page["task_instances"].as_array().unwrap().len(), 2);
    assert_eq!(second_page["total_entries"], 5);

    let (status, log) = get(
        &server,
        "/api/v2/dags/mapped/dagRuns/latest/taskInstances/process_partition/logs/1?map_index=1",
    );
    assert_eq!(status, 200, "{log}");
    assert_eq!(log["state"], "success");
    assert!(
        log["content"].as_array().unwrap().iter().any(|l| l["event"]
            == "processing partition 1 as map index Some(1)"
            && l["level"] == "INFO"),
        "{log}"
    );

    let (status, xcoms) = get(
        &server,
        "/api/v2/dags/mapped/dagRuns/latest/taskInstances/combine/xcomEntries",
    );
    assert_eq!(status, 200, "{xcoms}");
    assert_eq!(xcoms["xcom_entries"][0]["key"], "return_value");
    assert_eq!(xcoms["xcom_entries"][0]["value"], "[30, 10, 20]");
    let (_, mapped) = get(
        &server,
        "/api/v2/dags/mapped/dagRuns/latest/taskInstances/process_partition/xcomEntries?map_index=0",
    );
    assert_eq!(mapped["xcom_entries"][0]["value"], 30);
    assert_eq!(mapped["xcom_entries"][0]["map_index"], 0);

    let (status, pools) = get(&server, "/api/v2/pools");
    assert_eq!(status, 200, "{pools}");
    assert!(
        pools["pools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "default_pool")
    );
    let (status, health) = get(&server, "/api/v2/monitor/health");
    assert_eq!(status, 200);
    assert_eq!(health["metadatabase"]["status"], "healthy");
}

#[test]
fn trigger_pause_clear_and_delete_act_through_the_api() {
    let home = tempfile::tempdir().unwrap();
    run_dag(home.path(), "chain");
    let server = Server::start(home.path(), &[]);

    // Triggering queues a run, its conf checked against the params.
    let (status, run) = send(
        &server,
        "POST",
        "/api/v2/dags/with_params/dagRuns",
        &json!({"logical_date": "2026-03-01T00:00:00Z", "conf": {"label": "api"}}),
    );
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["state"], "queued");
    assert_eq!(run["logical_date"], "2026-03-01T00:00:00Z");
    assert_eq!(run["conf"]["label"], "api");
    assert_eq!(run["conf"]["threshold"], 0.8, "defaults filled in: {run}");
    let (status, refused) = send(
        &server,
        "POST",
        "/api/v2/dags/with_params/dagRuns",
        &json!({"conf": {"label": "api", "threshold": "high"}}),
    );
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["detail"].as_str().unwrap().contains("threshold"),
        "{refused}"
    );
    let (status, missing) = send(
        &server,
        "POST",
        "/api/v2/dags/with_params/dagRuns",
        &json!({}),
    );
    assert_eq!(status, 400, "{missing}");
    assert!(
        missing["detail"].as_str().unwrap().contains("label"),
        "{missing}"
    );
    let (_, runs) = get(&server, "/api/v2/dags/with_params/dagRuns");
    assert_eq!(runs["total_entries"], 1, "refused triggers record nothing");

    // Pausing.
    let (status, paused) = send(
        &server,
        "PATCH",
        "/api/v2/dags/chain",
        &json!({"is_paused": true}),
    );
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["is_paused"], true);
    assert_eq!(get(&server, "/api/v2/dags/chain").1["is_paused"], true);
    send(
        &server,
        "PATCH",
        "/api/v2/dags/chain",
        &json!({"is_paused": false}),
    );
    assert_eq!(get(&server, "/api/v2/dags/chain").1["is_paused"], false);

    // Clearing with downstream queues the run again; a dry run changes nothing.
    let clear = json!({"dag_run_id": "latest", "task_ids": ["scale"], "include_downstream": true, "dry_run": true});
    let (status, would) = send(
        &server,
        "POST",
        "/api/v2/dags/chain/clearTaskInstances",
        &clear,
    );
    assert_eq!(status, 200, "{would}");
    assert_eq!(would["task_ids"], json!(["scale", "total"]));
    assert_eq!(
        get(&server, "/api/v2/dags/chain/dagRuns/latest").1["state"],
        "success"
    );
    let mut clear = clear;
    clear["dry_run"] = json!(false);
    let (status, cleared) = send(
        &server,
        "POST",
        "/api/v2/dags/chain/clearTaskInstances",
        &clear,
    );
    assert_eq!(status, 200, "{cleared}");
    let (_, run) = get(&server, "/api/v2/dags/chain/dagRuns/latest");
    assert_eq!(run["state"], "queued");
    let (_, instances) = get(&server, "/api/v2/dags/chain/dagRuns/latest/taskInstances");
    let state = |task: &str| {
        instances["task_instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|ti| ti["task_id"] == task)
            .unwrap()["state"]
            .clone()
    };
    assert_eq!(state("sort"), "success");
    assert_eq!(state("scale"), Value::Null);
    assert_eq!(state("total"), Value::Null);

    // Deleting.
    let run_id = run["dag_run_id"].as_str().unwrap().replace('+', "%2B");
    let path = format!("/api/v2/dags/chain/dagRuns/{run_id}");
    let (status, body) = answer(agent().delete(&server.url(&path)).call());
    assert_eq!((status, body), (204, Value::Null));
    let (status, gone) = get(&server, &path);
    assert_eq!(status, 404, "{gone}");
    assert_eq!(
        get(&server, "/api/v2/dags/chain/dagRuns").1["total_entries"],
        0
    );
}

#[test]
fn errors_are_json_with_their_status_and_what_to_do() {
    let home = tempfile::tempdir().unwrap();
    run_dag(home.path(), "mapped");
    let server = Server::start(home.path(), &[]);
    let detail = |(status, body): (u16, Value)| {
        assert_eq!(body["status"], status, "{body}");
        (status, body["detail"].as_str().unwrap().to_string())
    };

    let (status, text) = detail(get(&server, "/api/v2/dags/mapd"));
    assert_eq!(status, 404);
    assert!(
        text.contains("no DAG `mapd`") && text.contains("mapped"),
        "{text}"
    );
    let (status, text) = detail(get(&server, "/api/v2/dags/mapped/dagRuns/nope"));
    assert_eq!(status, 404);
    assert!(text.contains("no run `nope`"), "{text}");
    let (status, text) = detail(get(&server, "/api/v2/dags/chain/dagRuns/latest"));
    assert_eq!(status, 404);
    assert!(text.contains("no recorded runs"), "{text}");
    let (status, text) = detail(get(&server, "/api/v2/nothing"));
    assert_eq!(status, 404);
    assert!(text.contains("/api/v2"), "{text}");
    let (status, _) = detail(answer(agent().delete(&server.url("/api/v2/dags")).call()));
    assert_eq!(status, 405);
    let (status, text) = detail(get(&server, "/api/v2/dags?limit=0"));
    assert_eq!(status, 400);
    assert!(text.contains("`limit` must be 1 to 100"), "{text}");
    let (status, text) = detail(get(&server, "/api/v2/dags?limt=5"));
    assert_eq!(status, 400);
    assert!(text.contains("limt"), "{text}");
    let (status, text) = detail(get(
        &server,
        "/api/v2/dags/mapped/dagRuns/latest/taskInstances/process_partition/xcomEntries",
    ));
    assert_eq!(status, 404);
    assert!(
        text.contains("is mapped") && text.contains("map_index"),
        "{text}"
    );
    let (status, text) = detail(get(
        &server,
        "/api/v2/dags/mapped/dagRuns/latest/taskInstances/combine/logs/7",
    ));
    assert_eq!(status, 404);
    assert!(text.contains("no try 7"), "{text}");
    let (status, text) = detail(get(
        &server,
        "/api/v2/dags/mapped/dagRuns/latest/taskInstances/combine/xcomEntries?map_index=-5",
    ));
    assert_eq!(status, 400);
    assert!(text.contains("map_index"), "{text}");
    let (status, _) = detail(answer(
        agent()
            .post(&server.url("/api/v2/dags/mapped/dagRuns"))
            .header("Content-Type", "application/json")
            .send("{not json"),
    ));
    assert_eq!(status, 400);
    let (status, text) = detail(send(
        &server,
        "POST",
        "/api/v2/dags/mapped/dagRuns",
        &json!([null, null]),
    ));
    assert_eq!(status, 400);
    assert!(
        text.contains("must be a JSON object, not an array"),
        "{text}"
    );
    let (status, text) = detail(send(
        &server,
        "PATCH",
        "/api/v2/dags/mapped",
        &json!({"paused": true}),
    ));
    assert_eq!(status, 400);
    assert!(text.contains("paused"), "{text}");
    let (status, text) = detail(send(
        &server,
        "POST",
        "/api/v2/dags/mapped/clearTaskInstances",
        &json!({"dag_run_id": "latest", "task_ids": ["combin"]}),
    ));
    assert_eq!(status, 404);
    assert!(
        text.contains("no task `combin`") && text.contains("combine"),
        "{text}"
    );
}

#[test]
fn a_token_guards_every_request_and_is_needed_beyond_loopback() {
    let home = tempfile::tempdir().unwrap();
    let serve = |args: &[&str], env: &[(&str, &str)]| {
        let out = Command::new(env!("CARGO_BIN_EXE_fixture"))
            .env("FLOW_HOME", home.path())
            .envs(env.iter().copied())
            .arg("serve")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // No token: loopback only (refused before anything listens).
    let (code, err) = serve(&["--bind", "0.0.0.0", "--port", "0"], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("refusing to serve on 0.0.0.0:0 without a token"),
        "{err}"
    );
    assert!(err.contains("FLOW_API_TOKEN"), "{err}");
    // A token too short to guess at is refused, without repeating it.
    let (code, err) = serve(&["--port", "0"], &[("FLOW_API_TOKEN", "short-secret")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("FLOW_API_TOKEN must be at least 16"), "{err}");
    assert!(!err.contains("short-secret"), "{err}");

    let token = "0123456789abcdef-not-guessable";
    let server = Server::start(home.path(), &[("FLOW_API_TOKEN", token)]);
    let call = |auth: Option<&str>| {
        let mut request = agent().get(&server.url("/api/v2/dags"));
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        let mut response = request.call().unwrap();
        let challenge = response
            .headers()
            .get("WWW-Authenticate")
            .map(|v| v.to_str().unwrap().to_string());
        let body = response.body_mut().read_to_string().unwrap();
        (response.status().as_u16(), challenge, body)
    };
    let (status, challenge, body) = call(None);
    assert_eq!(
        (status, challenge.as_deref()),
        (401, Some("Bearer")),
        "{body}"
    );
    assert!(body.contains("Authorization: Bearer"), "{body}");
    assert_eq!(call(Some("Bearer wrong-token-of-some-length")).0, 401);
    assert_eq!(call(Some(token)).0, 401, "the scheme is needed");
    let (status, _, body) = call(Some(&format!("Bearer {token}")));
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains(token));
    assert!(!server.stderr.lock().unwrap().contains(token));
}

/// Every operation of the OpenAPI document answers (not the fallback's 404 or a 405),
/// with a status the document lists for it; the document is the one served.
#[test]
fn every_operation_of_the_openapi_document_answers_as_documented() {
    let home = tempfile::tempdir().unwrap();
    run_dag(home.path(), "mapped");
    let server = Server::start(home.path(), &[]);
    let (status, served) = get(&server, "/api/v2/openapi.json");
    assert_eq!(status, 200);
    let document: Value = serde_json::from_str(flow_runtime::serve::OPENAPI).unwrap();
    assert_eq!(served, document);
    // Deletions last: the others read the run they would delete.
    let mut operations: Vec<(&String, &String, &Value)> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, methods)| {
            let methods = methods.as_object().unwrap();
            methods.iter().map(move |(method, op)| (path, method, op))
        })
        .collect();
    operations.sort_by_key(|(_, method, _)| *method == "delete");
    assert_eq!(operations.len(), 15);
    for (path, method, operation) in operations {
        {
            let concrete = path
                .replace("{dag_id}", "mapped")
                .replace("{dag_run_id}", "latest")
                .replace("{task_id}", "combine")
                .replace("{try_number}", "1");
            let url = server.url(&concrete);
            let body = match path.as_str() {
                "/api/v2/dags/{dag_id}" => json!({"is_paused": false}),
                "/api/v2/dags/{dag_id}/clearTaskInstances" => {
                    json!({"dag_run_id": "latest", "dry_run": true})
                }
                // Older than the recorded run, which stays `latest`.
                "/api/v2/dags/{dag_id}/dagRuns" => json!({"logical_date": "2020-01-01T00:00:00Z"}),
                _ => json!({}),
            };
            let agent = agent();
            if path == "/api/v2/events" {
                // A stream: its headers only.
                let response = agent.get(&url).call().unwrap();
                assert_eq!(response.status(), 200);
                let kind = response.headers().get("content-type").unwrap();
                assert_eq!(kind.to_str().unwrap(), "text/event-stream");
                continue;
            }
            let (status, answer) = answer(match method.as_str() {
                "get" => agent.get(&url).call(),
                "delete" => agent.delete(&url).call(),
                "post" => agent.post(&url).send_json(&body),
                "patch" => agent.patch(&url).send_json(&body),
                other => panic!("undocumented method {other}"),
            });
            assert!(
                operation["responses"].get(status.to_string()).is_some(),
                "{method} {path}: {status} is not documented: {answer}"
            );
            assert!(
                status < 400,
                "{method} {path} answers {status} to a good request: {answer}"
            );
        }
    }
}

/// The schemathesis command: `FLOW_SCHEMATHESIS` (which .ci/run sets), else `schemathesis`
/// on the PATH. Without it the test says so and passes, except in CI, where it fails.
fn schemathesis() -> Option<std::path::PathBuf> {
    let command = std::env::var_os("FLOW_SCHEMATHESIS").unwrap_or_else(|| "schemathesis".into());
    let found = Command::new(&command)
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    match found {
        true => Some(command.into()),
        false if std::env::var_os("CI").is_some() => {
            panic!("CI must provide schemathesis (.ci/run installs it and sets FLOW_SCHEMATHESIS)")
        }
        false => {
            eprintln!(
                "skipped: no schemathesis (pip install schemathesis, or set FLOW_SCHEMATHESIS)"
            );
            None
        }
    }
}

/// schemathesis (PyPI) generates requests from the OpenAPI document, valid and invalid,
/// alone and in sequences, and checks every answer against it: no server error, a
/// documented status and content type, a body of the documented shape, invalid input
/// refused and valid input taken (see `tests/schemathesis/schemathesis.toml` for the one
/// exception). A fixed seed keeps CI repeatable.
#[test]
fn schemathesis_finds_nothing_wrong_with_the_api() {
    let Some(schemathesis) = schemathesis() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    run_dag(home.path(), "mapped");
    run_dag(home.path(), "chain");
    let server = Server::start(home.path(), &[]);
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schemathesis/schemathesis.toml"
    );
    let out = Command::new(schemathesis)
        // Its own files (`.hypothesis`) go with the home, not into the checkout.
        .current_dir(home.path())
        .env("NO_COLOR", "1")
        .args(["--config-file", config, "run"])
        .arg(server.url("/api/v2/openapi.json"))
        .args(["--max-examples", "30", "--seed", "1", "--workers", "1"])
        .output()
        .unwrap();
    succeeded(&out);
}

#[test]
fn lists_of_runs_are_filtered_and_ordered() {
    let home = tempfile::tempdir().unwrap();
    for date in ["2025-01-01", "2025-01-02", "2025-01-03"] {
        succeeded(
            &Command::new(env!("CARGO_BIN_EXE_fixture"))
                .env("FLOW_HOME", home.path())
                .env("FLOW_LOG", "warn")
                .args(["dags", "test", "chain", "--date", date])
                .output()
                .unwrap(),
        );
    }
    let server = Server::start(home.path(), &[]);
    send(
        &server,
        "POST",
        "/api/v2/dags/chain/dagRuns",
        &json!({"logical_date": "2025-01-04T00:00:00Z"}),
    );
    let dates = |query: &str| -> (Vec<String>, Value) {
        let (status, body) = get(&server, &format!("/api/v2/dags/chain/dagRuns?{query}"));
        assert_eq!(status, 200, "{query}: {body}");
        let dates = body["dag_runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["logical_date"].as_str().unwrap()[..10].to_string())
            .collect();
        (dates, body["total_entries"].clone())
    };
    assert_eq!(
        dates("").0,
        ["2025-01-04", "2025-01-03", "2025-01-02", "2025-01-01"]
    );
    assert_eq!(
        dates("order_by=logical_date&limit=2"),
        (vec!["2025-01-01".into(), "2025-01-02".into()], json!(4))
    );
    assert_eq!(
        dates("state=queued").0,
        ["2025-01-04"],
        "the triggered run waits for a scheduler"
    );
    assert_eq!(dates("state=success&state=failed").1, json!(3));
    assert_eq!(dates("state=success,queued").1, json!(4));
    assert_eq!(
        dates("logical_date_gte=2025-01-02T00:00:00Z&logical_date_lte=2025-01-03T00:00:00Z").0,
        ["2025-01-03", "2025-01-02"]
    );
    assert_eq!(dates("run_type=scheduled").1, json!(0));
    // Not started: last when the latest start comes first.
    assert_eq!(
        dates("order_by=-start_date").0.last().unwrap(),
        "2025-01-04"
    );
    for (query, wanted) in [
        (
            "state=done",
            "`state` must be one of queued, running, success, failed",
        ),
        ("order_by=size", "`order_by` must be logical_date"),
        (
            "logical_date_gte=yesterday",
            "`logical_date_gte` must be a date",
        ),
        ("colour=red", "unknown query parameter `colour`"),
        ("limit=many", "`limit` must be a whole number"),
    ] {
        let (status, body) = get(&server, &format!("/api/v2/dags/chain/dagRuns?{query}"));
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains(wanted),
            "{query}: {body}"
        );
    }
}

/// The `event:` and `data:` of each event a stream sends, read until `enough` says so.
fn follow(
    server: &Server,
    path: &str,
    mut enough: impl FnMut(&[(String, Value)]) -> bool,
) -> Vec<(String, Value)> {
    let response = agent().get(&server.url(path)).call().unwrap();
    assert_eq!(response.status(), 200);
    let mut lines = BufReader::new(response.into_body().into_reader()).lines();
    let mut events = Vec::new();
    let mut name = String::new();
    while !enough(&events) {
        let line = lines.next().expect("the stream ended").unwrap();
        if let Some(event) = line.strip_prefix("event: ") {
            name = event.to_string();
        } else if let Some(data) = line.strip_prefix("data: ") {
            events.push((name.clone(), serde_json::from_str(data).unwrap()));
        }
    }
    events
}

#[test]
fn a_run_in_another_process_streams_its_changes() {
    let home = tempfile::tempdir().unwrap();
    run_dag(home.path(), "mapped");
    let server = Server::start(home.path(), &[]);
    let (status, refused) = get(&server, "/api/v2/events?dag_id=chian");
    assert_eq!(status, 404, "{refused}");
    // The runs start once the stream is open and its poller has read the store once: a
    // thread waits a while, then runs `mapped` (filtered out) and `chain` (followed).
    let dir = home.path().to_path_buf();
    let runner = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        run_dag(&dir, "mapped");
        run_dag(&dir, "chain");
    });
    let events = follow(&server, "/api/v2/events?dag_id=chain", |events| {
        events
            .iter()
            .any(|(name, run)| name == "dag_run" && run["state"] == "success")
    });
    runner.join().unwrap();
    assert!(
        events.iter().all(|(_, e)| e["dag_id"] == "chain"),
        "{events:?}"
    );
    let done: Vec<&str> = events
        .iter()
        .filter(|(name, ti)| name == "task_instance" && ti["state"] == "success")
        .map(|(_, ti)| ti["task_id"].as_str().unwrap())
        .collect();
    for task in ["produce", "sort", "scale", "total"] {
        assert!(done.contains(&task), "{task} not seen done: {events:?}");
    }
    // The run's own event comes after its instances'.
    assert_eq!(events.last().unwrap().0, "dag_run");
}

#[test]
fn a_stop_ends_the_event_streams_and_the_server() {
    let home = tempfile::tempdir().unwrap();
    let mut server = Server::start(home.path(), &[]);
    let url = server.url("/api/v2/events");
    let listener = std::thread::spawn(move || {
        let response = agent().get(&url).call().unwrap();
        // Read to the end: the server ends the stream when it stops.
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut response.into_body().into_reader(), &mut rest)
            .map(|_| rest)
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    let stopped = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    // Generous: a server waiting for its streams' clients would never exit.
    let mut exited = None;
    for _ in 0..600 {
        exited = server.child.try_wait().unwrap();
        if exited.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(exited.is_some_and(|status| status.success()), "{exited:?}");
    assert!(listener.join().unwrap().is_ok(), "the stream ended cleanly");
    assert!(server.stderr.lock().unwrap().contains("server stopped"));
}

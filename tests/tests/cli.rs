//! End-to-end through the CLI of the `fixture` binary.

use assert_cmd::Command;
use predicates::prelude::*;
use predicates::str::contains;

/// A fixture command with its own, fresh FLOW_HOME.
fn fixture() -> Command {
    Home::new().cmd()
}

/// A FLOW_HOME kept for several commands.
struct Home(tempfile::TempDir);

impl Home {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }

    fn cmd(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fixture"));
        cmd.env("FLOW_HOME", self.0.path()).env("FLOW_LOG", "warn");
        cmd
    }

    fn stdout(&self, args: &[&str]) -> String {
        let output = self.cmd().args(args).assert().success();
        String::from_utf8_lossy(&output.get_output().stdout).to_string()
    }
}

#[test]
fn dags_list_shows_every_dag() {
    fixture().args(["dags", "list"]).assert().success().stdout(
        contains("chain")
            .and(contains("@daily"))
            .and(contains("failing"))
            .and(contains("retrying")),
    );
}

#[test]
fn dags_show_prints_a_tree_dot_mermaid_and_svg() {
    fixture()
        .args(["dags", "show", "chain"])
        .assert()
        .success()
        .stdout(contains("chain (schedule: @daily)\n└── produce\n    └── sort\n        └── scale\n            └── total\n"));
    fixture()
        .args(["dags", "show", "chain", "--format", "dot"])
        .assert()
        .success()
        .stdout(contains("digraph \"chain\"").and(contains("\"scale\" -> \"total\";")));
    fixture()
        .args(["dags", "show", "chain", "--format", "mermaid"])
        .assert()
        .success()
        .stdout(contains("flowchart LR\n").and(contains("  t2 --> t3\n")));
    fixture()
        .args(["dags", "show", "chain", "--format", "svg"])
        .assert()
        .success()
        .stdout(
            contains("<svg xmlns=\"http://www.w3.org/2000/svg\"")
                .and(contains("<title>chain</title>"))
                .and(contains(">total</text>")),
        );
}

#[test]
fn dags_test_runs_with_live_states_and_a_summary() {
    let output = fixture()
        .args(["dags", "test", "chain", "--date", "2025-01-02"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&output.get_output().stdout).to_string();
    for line in [
        "running          produce (try 1)",
        "success          total (try 1)",
    ] {
        assert!(stdout.contains(line), "missing `{line}` in:\n{stdout}");
    }
    assert!(
        stdout.contains("Run manual__2025-01-02T00:00:00+00:00 success"),
        "{stdout}"
    );
    let summary_row = stdout.lines().find(|l| l.starts_with("scale ")).unwrap();
    assert!(
        summary_row.contains("success") && summary_row.contains("  1  "),
        "{summary_row}"
    );
}

#[test]
fn a_failed_run_exits_non_zero_with_its_errors() {
    fixture()
        .args(["dags", "test", "failing"])
        .assert()
        .code(1)
        .stdout(contains("upstream_failed").and(contains("task panicked: index out of range")))
        // Logs into a pipe are plain text: no colour codes.
        .stderr(contains("ended failed").and(contains("\u{1b}[").not()));
}

#[test]
fn unknown_ids_list_the_known_ones_closest_first() {
    fixture()
        .args(["dags", "test", "chian"])
        .assert()
        .code(2)
        .stderr(contains(
            "no DAG `chian` in this binary; known DAGs: chain,",
        ));
    fixture()
        .args(["tasks", "test", "chain", "sortt"])
        .assert()
        .code(2)
        .stderr(contains("no task `sortt` in DAG `chain`; its tasks: sort,"));
}

#[test]
fn tasks_list_shows_inputs_outputs_and_upstream() {
    fixture()
        .args(["tasks", "list", "chain"])
        .assert()
        .success()
        .stdout(
            contains("scale")
                .and(contains("batch: Batch, factor: i64"))
                .and(contains("Batch")),
        );
}

#[test]
fn tasks_test_runs_one_task_from_json_inputs() {
    fixture()
        .args([
            "tasks",
            "test",
            "chain",
            "sort",
            "--input",
            r#"batch={"values":[5,4],"source":"cli"}"#,
        ])
        .assert()
        .success()
        .stdout(contains("\"values\": [\n    4,\n    5\n  ]"));
    // A literal argument needs no --input.
    fixture()
        .args([
            "tasks",
            "test",
            "chain",
            "scale",
            "--input",
            r#"batch={"values":[2],"source":"cli"}"#,
        ])
        .assert()
        .success()
        .stdout(contains("20"));
}

#[test]
fn tasks_test_says_which_inputs_are_missing_and_how_to_give_them() {
    fixture()
        .args(["tasks", "test", "chain", "total"])
        .assert()
        .code(2)
        .stderr(
            contains("task `total` needs inputs that are not available")
                .and(contains("batch: flow_tests::Batch (the return value of `scale`, which no recorded run has stored)"))
                .and(contains("--input NAME=JSON")),
        );
}

#[test]
fn bad_inputs_and_dates_are_usage_errors() {
    for (args, message) in [
        (
            vec!["tasks", "test", "chain", "sort", "--input", "batch"],
            "write NAME=JSON",
        ),
        (
            vec!["tasks", "test", "chain", "sort", "--input", "batch={"],
            "invalid JSON",
        ),
        (
            vec!["tasks", "test", "chain", "sort", "--input", "batch=[1]"],
            "not a valid `flow_tests::Batch`",
        ),
        (
            vec!["tasks", "test", "chain", "sort", "--input", "nope=1"],
            "has no input `nope`; its inputs: batch",
        ),
        (
            vec!["dags", "test", "chain", "--date", "yesterday"],
            "invalid --date `yesterday`",
        ),
    ] {
        fixture()
            .args(&args)
            .assert()
            .code(2)
            .stderr(contains(message));
    }
}

#[test]
fn a_failing_task_test_exits_one() {
    fixture()
        .args(["tasks", "test", "failing", "explode"])
        .assert()
        .code(1)
        .stderr(contains("task `explode` failed: source unavailable on"));
}

#[test]
fn runs_are_recorded_and_their_history_is_queryable() {
    let home = Home::new();
    home.cmd()
        .args(["dags", "test", "chain", "--date", "2025-01-02"])
        .assert()
        .success();
    let runs = home.stdout(&["runs", "list", "chain"]);
    assert!(
        runs.contains("manual__2025-01-02T00:00:00+00:00") && runs.contains("success"),
        "{runs}"
    );
    let states = home.stdout(&["tasks", "states", "chain", "latest"]);
    let row = states.lines().find(|l| l.starts_with("scale ")).unwrap();
    assert!(row.contains("success  1"), "{states}");
    let logs = home.stdout(&["tasks", "logs", "chain", "latest", "sort"]);
    assert!(
        logs.contains("--- try 1 (success) ---") && logs.contains("INFO  sorting values=3"),
        "{logs}"
    );
    // A recorded run feeds `tasks test`.
    let test = home.stdout(&["tasks", "test", "chain", "total"]);
    assert!(
        test.contains("input `batch` from the return value of `scale` in run manual__2025-01-02"),
        "{test}"
    );
    assert!(test.contains("chain/total/try1: 60"), "{test}");
    // The same logical date again is refused clearly.
    home.cmd()
        .args(["dags", "test", "chain", "--date", "2025-01-02"])
        .assert()
        .code(2)
        .stderr(contains(
            "already exists; resume it with `dags test chain --resume manual__2025-01-02",
        ));
}

#[test]
fn clearing_reruns_tasks_and_keeps_earlier_tries() {
    let home = Home::new();
    home.cmd()
        .args(["dags", "test", "chain", "--date", "2025-01-03"])
        .assert()
        .success();
    let cleared = home.stdout(&[
        "tasks",
        "clear",
        "chain",
        "latest",
        "--task",
        "sort",
        "--downstream",
    ]);
    assert!(
        cleared.contains("cleared 3 task instance(s)") && cleared.contains("sort, scale, total"),
        "{cleared}"
    );
    let states = home.stdout(&["tasks", "states", "chain", "latest"]);
    let tries = |task: &str| {
        let row = states
            .lines()
            .find(|l| l.starts_with(&format!("{task} ")))
            .unwrap();
        row.split_whitespace().nth(2).unwrap().to_string()
    };
    assert_eq!(
        (tries("produce"), tries("sort"), tries("total")),
        ("1".into(), "2".into(), "2".into()),
        "{states}"
    );
    let logs = home.stdout(&["tasks", "logs", "chain", "latest", "sort"]);
    assert!(
        logs.contains("--- try 1 (success) ---") && logs.contains("--- try 2 (success) ---"),
        "{logs}"
    );
    home.cmd()
        .args(["tasks", "logs", "chain", "latest", "sort", "--try", "7"])
        .assert()
        .code(2)
        .stderr(contains("has no try 7").and(contains("tries made: 1, 2")));
    home.cmd()
        .args(["tasks", "states", "chain", "manual__1999"])
        .assert()
        .code(2)
        .stderr(contains(
            "has no run `manual__1999`; its runs, closest first: manual__2025-01-03",
        ));
    home.cmd()
        .args(["dags", "test", "chain", "--resume", "latest"])
        .assert()
        .code(2)
        .stderr(contains("already ended success"));
}

#[test]
fn in_memory_runs_leave_no_database() {
    let home = Home::new();
    home.cmd()
        .args(["dags", "test", "chain", "--in-memory"])
        .assert()
        .success();
    assert!(!home.0.path().join("flow.db").exists());
    home.cmd()
        .args(["runs", "list"])
        .assert()
        .success()
        .stdout(contains("manual__").not());
}

#[test]
fn a_foreign_database_is_refused_untouched() {
    let home = Home::new();
    let db = home.0.path().join("flow.db");
    std::fs::write(
        &db,
        "my notes, not a database, long enough to look like a file header",
    )
    .unwrap();
    home.cmd()
        .args(["runs", "list"])
        .assert()
        .code(2)
        .stderr(contains("is not a flow database"));
    assert!(
        std::fs::read_to_string(&db)
            .unwrap()
            .starts_with("my notes")
    );
}

#[test]
fn db_commands_report_and_migrate() {
    use flow_runtime::store::SCHEMA_VERSION;
    let home = Home::new();
    home.cmd()
        .args(["db", "migrate"])
        .assert()
        .success()
        .stdout(contains(format!(
            "is up to date (schema version {SCHEMA_VERSION})"
        )));
    home.cmd()
        .args(["db", "info"])
        .assert()
        .success()
        .stdout(contains(format!("schema version: {SCHEMA_VERSION}")));
}

#[test]
fn an_older_database_is_refused_with_the_command_that_migrates_it() {
    let home = Home::new();
    flow_runtime::store::SqliteStore::create_at_version(&home.0.path().join("flow.db"), 1).unwrap();
    home.cmd().args(["runs", "list"]).assert().code(2).stderr(
        contains("has schema version 1; this binary needs").and(contains("run `db migrate` first")),
    );
    home.cmd().args(["db", "migrate"]).assert().success();
    home.cmd().args(["runs", "list"]).assert().success();
}

#[test]
fn bad_settings_are_refused_whatever_the_command() {
    // An invalid log filter used to fall back to `info` silently.
    for args in [
        &["dags", "list"][..],
        &["dags", "test", "chain", "--in-memory"],
    ] {
        fixture()
            .env("FLOW_LOG", "[[[")
            .args(args)
            .assert()
            .code(2)
            .stderr(contains("FLOW_LOG must be a log filter").and(contains("(found `[[[`)")));
    }
    // An in-memory run uses no object store, and still refuses one that cannot work.
    let home = Home::new();
    home.cmd()
        .env("FLOW_OBJECT_STORE", "ftp://x")
        .args(["dags", "test", "chain", "--in-memory"])
        .assert()
        .code(2)
        .stdout(contains("Running").not())
        .stderr(contains("invalid object store URL `ftp://x`"));
    home.cmd()
        .env("FLOW_MAX_MAP_LENGTH", "0")
        .args(["dags", "list"])
        .assert()
        .code(2)
        .stderr(contains("FLOW_MAX_MAP_LENGTH must be a whole number").and(contains("`0`")));
    // Mail settings are checked whole when any is set, not when the first alert is sent.
    home.cmd()
        .env("FLOW_SMTP_PORT", "587")
        .env_remove("FLOW_SMTP_HOST")
        .args(["dags", "list"])
        .assert()
        .code(2)
        .stderr(contains("FLOW_SMTP_HOST is not set"));
    assert!(!home.0.path().join("flow.db").exists());
}

#[test]
fn reading_history_creates_no_database() {
    let home = Home::new();
    home.cmd().args(["runs", "list"]).assert().success();
    home.cmd()
        .args(["tasks", "states", "chain", "latest"])
        .assert()
        .code(2)
        .stderr(contains("DAG `chain` has no recorded runs yet"));
    assert!(!home.0.path().join("flow.db").exists());
}

#[test]
fn a_parallelism_of_zero_is_refused() {
    fixture()
        .args(["dags", "test", "chain", "--in-memory", "--parallelism", "0"])
        .assert()
        .code(2)
        .stdout(contains("Running").not())
        .stderr(contains("--parallelism").and(contains("0 is not in 1..")));
    fixture()
        .args(["dags", "test", "chain", "--in-memory", "--parallelism", "1"])
        .assert()
        .success();
}

#[test]
fn two_dags_with_one_id_refuse_to_start() {
    Command::new(env!("CARGO_BIN_EXE_duplicate_dags"))
        .args(["dags", "list"])
        .assert()
        .code(2)
        .stderr(contains("DAG id `twice` is defined twice").and(contains("duplicate_dags.rs")));
}

#[test]
fn mapped_tasks_show_their_instances_and_logs_by_map_index() {
    let home = Home::new();
    let out = home.stdout(&["dags", "test", "mapped", "--date", "2025-01-02"]);
    assert!(out.contains("process_partition[2]"), "{out}");
    assert!(out.contains("process_partition [3 mapped]"), "{out}");
    assert!(out.contains("3 success"), "{out}");
    let states = home.stdout(&["tasks", "states", "mapped", "latest"]);
    for i in 0..3 {
        assert!(
            states.contains(&format!("process_partition[{i}]")),
            "{states}"
        );
    }
    let logs = home.stdout(&[
        "tasks",
        "logs",
        "mapped",
        "latest",
        "process_partition",
        "--map-index",
        "1",
    ]);
    assert!(
        logs.contains("processing partition 1 as map index Some(1)"),
        "{logs}"
    );
    home.cmd()
        .args(["tasks", "logs", "mapped", "latest", "process_partition"])
        .assert()
        .code(2)
        .stderr(contains("is mapped (3 instances").and(contains("--map-index")));
    home.cmd()
        .args([
            "tasks",
            "logs",
            "mapped",
            "latest",
            "combine",
            "--map-index",
            "0",
        ])
        .assert()
        .code(2)
        .stderr(contains("`combine` is not mapped"));
}

#[test]
fn max_map_length_comes_from_the_environment_and_bad_values_are_refused() {
    let home = Home::new();
    let output = home
        .cmd()
        .env("FLOW_MAX_MAP_LENGTH", "2")
        .args(["dags", "test", "mapped"])
        .assert()
        .failure();
    let out = String::from_utf8_lossy(&output.get_output().stdout).to_string();
    assert!(
        out.contains("`process_partition` would expand to 3 instances, over the limit of 2"),
        "{out}"
    );
    home.cmd()
        .env("FLOW_MAX_MAP_LENGTH", "many")
        .args(["dags", "test", "mapped"])
        .assert()
        .code(2)
        .stderr(contains("FLOW_MAX_MAP_LENGTH must be a whole number").and(contains("`many`")));
}

#[test]
fn tasks_test_runs_one_instance_of_a_mapped_task_with_its_element_given() {
    let home = Home::new();
    home.cmd()
        .args(["tasks", "test", "mapped", "process_partition"])
        .assert()
        .code(2)
        .stderr(contains(
            "partition: u32 (one element of the list the task is mapped over)",
        ));
    let out = home.stdout(&[
        "tasks",
        "test",
        "mapped",
        "process_partition",
        "--input",
        "partition=4",
    ]);
    assert!(out.contains("40"), "{out}");
}

#[test]
fn a_running_tasks_log_is_readable_from_another_process_while_it_runs() {
    let home = Home::new();
    let release = home.0.path().join("release");
    let mut run = std::process::Command::new(env!("CARGO_BIN_EXE_fixture"))
        .args(["dags", "test", "long_logger"])
        .env("FLOW_HOME", home.0.path())
        .env("FLOW_LOG", "warn")
        .env("FLOW_TEST_RELEASE_FILE", &release)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Another process reads the log while the task waits; it waits for us, so it is
    // still running whatever this machine's speed (the loop only guards against a hang).
    let read = |home: &Home| {
        let output = home
            .cmd()
            .args(["tasks", "logs", "long_logger", "latest", "wait_for_release"])
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    };
    let mut seen = String::new();
    for _ in 0..600 {
        seen = read(&home);
        if seen.contains("waiting for release") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(seen.contains("waiting for release"), "{seen}");
    assert!(!seen.contains("released"), "{seen}");
    let states = home.stdout(&["tasks", "states", "long_logger", "latest"]);
    assert!(states.contains("running"), "{states}");
    std::fs::write(&release, "go").unwrap();
    assert!(run.wait().unwrap().success());
    let logs = read(&home);
    assert_eq!(logs.matches("waiting for release").count(), 1, "{logs}");
    let waiting = logs.find("waiting for release").unwrap();
    let released = logs.find("INFO  released").expect(&logs);
    assert!(waiting < released, "{logs}");
}

#[test]
fn tasks_xcoms_shows_the_return_value_pushed_values_and_the_branch_decision() {
    let home = Home::new();
    home.cmd()
        .args(["dags", "test", "steering"])
        .assert()
        .success();
    let listed = home.stdout(&["tasks", "xcoms", "steering", "latest", "choose"]);
    assert!(listed.contains(r#"return_value ["right"]"#), "{listed}");
    assert!(
        listed.contains(r#"skipmixin_key {"followed":["right"]}"#),
        "{listed}"
    );
    assert!(listed.contains("rows 3"), "{listed}");
    // A task returning `()` stores no return value.
    let right = home.stdout(&["tasks", "xcoms", "steering", "latest", "right"]);
    assert_eq!(right, "");
    home.cmd()
        .args(["tasks", "xcoms", "steering", "latest", "nope"])
        .assert()
        .failure()
        .stderr(contains("nope"));
}

/// On a terminal (a pseudo-terminal made by util-linux's `script`), `dags test` draws its
/// progress below the state lines; into a pipe it prints the plain lines only.
#[test]
fn dags_test_shows_progress_on_a_terminal_only() {
    let script = std::path::Path::new("/usr/bin/script");
    if !script.exists() {
        eprintln!("skipped: /usr/bin/script (util-linux) is needed to make a terminal");
        return;
    }
    let home = Home::new();
    let command = format!(
        "{} dags test chain --in-memory",
        env!("CARGO_BIN_EXE_fixture")
    );
    let output = std::process::Command::new(script)
        .args(["-qec", &command, "/dev/null"])
        .env("FLOW_HOME", home.0.path())
        .env("FLOW_LOG", "warn")
        .env("TERM", "xterm")
        .output()
        .unwrap();
    let terminal = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{terminal}");
    assert!(
        terminal.contains("task instances done") && terminal.contains("success          total"),
        "{terminal}"
    );
    let piped = home.stdout(&["dags", "test", "chain", "--in-memory"]);
    assert!(!piped.contains("task instances done"), "{piped}");
    assert!(!piped.contains('\u{1b}'), "{piped}");
}

/// The body of `GET http://{addr}{path}`, with its status line.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// The value of the sample `name{labels}` in a scrape, if there is one.
fn sample(scrape: &str, name_and_labels: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

#[test]
fn metrics_are_scraped_while_a_run_goes_on() {
    use std::io::BufRead as _;
    let home = Home::new();
    let release = home.0.path().join("release");
    let mut run = std::process::Command::new(env!("CARGO_BIN_EXE_fixture"))
        .args(["dags", "test", "observed", "--metrics", "127.0.0.1:0"])
        .env("FLOW_HOME", home.0.path())
        .env("FLOW_LOG", "warn")
        .env("FLOW_TEST_RELEASE_FILE", &release)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Every line of stderr, read on a thread so the pipe never fills.
    let (lines_tx, lines) = std::sync::mpsc::channel();
    let stderr = run.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines_tx.send(line);
        }
    });
    let url = lines
        .iter()
        .find_map(|line| line.strip_prefix("metrics: ").map(str::to_string))
        .expect("the metrics URL on stderr");
    let addr = url
        .strip_prefix("http://")
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap()
        .to_string();
    // `hold` waits for us, so the run is still going whatever this machine's speed (the
    // loop only guards against a hang).
    let mut scrape = String::new();
    for _ in 0..600 {
        scrape = http_get(&addr, "/metrics");
        if sample(
            &scrape,
            "flow_pool_slots{pool=\"default_pool\",state=\"used\"}",
        ) == Some(1.0)
            && scrape.contains("task_id=\"process_partition\",state=\"success\"} 3")
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        scrape.lines().next().unwrap().ends_with(" 200 OK"),
        "{scrape}"
    );
    assert!(
        scrape.contains("Content-Type: application/openmetrics-text"),
        "{scrape}"
    );
    let tries = |task: &str, state: &str| {
        let labels = format!("{{dag_id=\"observed\",task_id=\"{task}\",state=\"{state}\"}}");
        sample(&scrape, &format!("flow_task_tries_total{labels}"))
    };
    assert_eq!(
        tries("fails_first_try", "up_for_retry"),
        Some(1.0),
        "{scrape}"
    );
    assert_eq!(tries("fails_first_try", "success"), Some(1.0), "{scrape}");
    assert_eq!(tries("process_partition", "success"), Some(3.0), "{scrape}");
    assert_eq!(tries("hold", "success"), None, "{scrape}");
    assert_eq!(
        sample(
            &scrape,
            "flow_task_duration_seconds_count{dag_id=\"observed\",task_id=\"fails_first_try\"}"
        ),
        Some(2.0),
        "{scrape}"
    );
    // Seven tries began: two of `fails_first_try`, `partitions`, three mapped, `hold`.
    assert_eq!(
        sample(
            &scrape,
            "flow_task_claim_to_start_seconds_count{dag_id=\"observed\"}"
        ),
        Some(7.0),
        "{scrape}"
    );
    assert!(
        sample(&scrape, "flow_scheduler_loop_seconds_count{kind=\"run\"}")
            .is_some_and(|turns| turns > 0.0),
        "{scrape}"
    );
    assert_eq!(sample(&scrape, "flow_queue_depth"), Some(0.0), "{scrape}");
    assert_eq!(
        sample(
            &scrape,
            "flow_pool_slots{pool=\"default_pool\",state=\"open\"}"
        ),
        Some(127.0),
        "{scrape}"
    );
    assert_eq!(
        sample(
            &scrape,
            "flow_dag_runs{dag_id=\"observed\",state=\"running\"}"
        ),
        Some(1.0),
        "{scrape}"
    );
    let missing = http_get(&addr, "/nothing");
    assert!(
        missing.lines().next().unwrap().contains(" 404 "),
        "{missing}"
    );
    assert!(missing.contains("metrics are at /metrics"), "{missing}");

    // The address is taken: a second process says so and runs nothing.
    home.cmd()
        .args(["dags", "test", "observed", "--metrics", &addr])
        .assert()
        .code(2)
        .stderr(contains(format!("cannot serve metrics on {addr}")));

    std::fs::write(&release, "go").unwrap();
    assert!(run.wait().unwrap().success());
    home.cmd()
        .args(["dags", "test", "observed", "--metrics", "everywhere"])
        .assert()
        .code(2)
        .stderr(contains(
            "invalid value 'everywhere' for '--metrics <ADDR>'",
        ));
}

//! The command line every pipeline binary gets from `flow_runtime::cli::main()`, modelled on
//! Airflow's: `dags list|show|test`, `tasks list|test|states|clear|logs`, `runs list|delete`,
//! `db migrate|info`.
//!
//! Runs are recorded in `$FLOW_HOME/flow.db` (see [`crate::home`]), their large XComs and
//! artifacts in the object store `FLOW_OBJECT_STORE` names, default `$FLOW_HOME/objects`
//! (see [`crate::objects`]). Exit codes: 0 success,
//! 1 a run or task failed, 2 bad input (unknown id, bad date, bad JSON, missing inputs), a
//! refused database, or a DAG definition error found at start-up.

mod history;
mod render;
mod scheduling;

use std::process::ExitCode;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};

use crate::error::RunError;
use crate::graph::{BoundInput, Dag};
use crate::home::{FlowHome, HomeError};
use crate::ids::RunId;
use crate::objects::{ObjectError, ObjectStoreConfig, Objects};
use crate::registry::{Registry, closest};
use crate::runtime::{Executor, RunRequest, RunSummary};
use crate::state::RunState;
use crate::store::{MemoryStore, OpenMode, SqliteStore, Store, StoreError};
use crate::time::parse_date;
use crate::xcom::{RETURN_VALUE, XComBlob};

/// A flow pipeline binary: runs and inspects the DAGs compiled into it.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Inspect and run DAGs.
    #[command(subcommand)]
    Dags(DagsCommand),
    /// Inspect, run, clear and read the logs of tasks.
    #[command(subcommand)]
    Tasks(TasksCommand),
    /// The history of DAG runs.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// The metadata database in FLOW_HOME.
    #[command(subcommand)]
    Db(DbCommand),
    /// Named pools of slots that bound how many tasks run at once.
    #[command(subcommand)]
    Pools(PoolsCommand),
    /// Create and run scheduled runs, and runs queued by `dags trigger`, until stopped
    /// (Ctrl-C or SIGTERM: running tasks get a grace period; the rest resumes on restart).
    Scheduler {
        /// How often to look for triggered runs, in seconds.
        #[arg(long, default_value_t = 2.0)]
        poll: f64,
        /// How long running tasks may finish after a stop request, in seconds.
        #[arg(long, default_value_t = 30.0)]
        grace: f64,
    },
}

#[derive(Subcommand, Debug)]
enum DagsCommand {
    /// List every DAG of this binary.
    List,
    /// Show a DAG's tasks and dependencies.
    Show {
        /// The DAG id.
        dag_id: String,
        /// `text` (a tree) or `dot` (Graphviz).
        #[arg(long, value_enum, default_value_t = ShowFormat::Text)]
        format: ShowFormat,
    },
    /// Run a DAG once, in this process, printing each task's state as it changes.
    Test {
        /// The DAG id.
        dag_id: String,
        /// The logical date (`2025-01-01` or RFC 3339); default: now.
        #[arg(long, conflicts_with = "resume")]
        date: Option<String>,
        /// Continue an unfinished run (its id, or `latest`) instead of starting one.
        #[arg(long, value_name = "RUN")]
        resume: Option<String>,
        /// Keep the run in memory only; nothing is written to FLOW_HOME.
        #[arg(long, conflicts_with = "resume")]
        in_memory: bool,
        /// The most tasks running at once; default: the number of cores.
        #[arg(long)]
        parallelism: Option<usize>,
        /// The run's params as a JSON object, checked against the DAG's params.
        #[arg(long, conflicts_with = "resume")]
        conf: Option<String>,
    },
    /// Queue a manual run for a running scheduler (or run it now with `--run`).
    Trigger {
        /// The DAG id.
        dag_id: String,
        /// The run's params as a JSON object, checked against the DAG's params.
        #[arg(long)]
        conf: Option<String>,
        /// The logical date (`2025-01-01` or RFC 3339); default: now.
        #[arg(long)]
        date: Option<String>,
        /// Run it in this process now instead of leaving it to the scheduler.
        #[arg(long)]
        run: bool,
    },
    /// Create and run the runs of every interval between two dates, skipping intervals
    /// that already succeeded.
    Backfill {
        /// The DAG id.
        dag_id: String,
        /// The first logical date.
        #[arg(long)]
        from: String,
        /// The last logical date.
        #[arg(long)]
        to: String,
        /// Run intervals whose run failed again.
        #[arg(long)]
        rerun_failed: bool,
        /// Only print what would run.
        #[arg(long)]
        dry_run: bool,
    },
    /// Stop scheduling a DAG's runs.
    Pause {
        /// The DAG id.
        dag_id: String,
    },
    /// Resume scheduling a DAG's runs.
    Unpause {
        /// The DAG id.
        dag_id: String,
    },
}

#[derive(Subcommand, Debug)]
enum TasksCommand {
    /// List a DAG's tasks with their inputs and outputs.
    List {
        /// The DAG id.
        dag_id: String,
    },
    /// Run one task by itself and print its return value as JSON; nothing is recorded.
    /// Inputs come from `--input`, else from the latest run that stored them.
    Test {
        /// The DAG id.
        dag_id: String,
        /// The task id.
        task_id: String,
        /// The logical date (`2025-01-01` or RFC 3339); default: now.
        #[arg(long)]
        date: Option<String>,
        /// An input as `NAME=JSON`, e.g. `--input rows=42`; repeat for each input.
        #[arg(long = "input", value_name = "NAME=JSON")]
        inputs: Vec<String>,
    },
    /// The state, tries and times of every task instance of a run.
    States {
        /// The DAG id.
        dag_id: String,
        /// The run id, or `latest`.
        run: String,
    },
    /// Reset task instances of a run and run them again; earlier tries stay in the history.
    Clear {
        /// The DAG id.
        dag_id: String,
        /// The run id, or `latest`.
        run: String,
        /// Only these tasks (repeatable); default: every task of the run.
        #[arg(long = "task", value_name = "TASK")]
        tasks: Vec<String>,
        /// Also clear every task downstream of the chosen ones.
        #[arg(long)]
        downstream: bool,
        /// Only reset; do not run them now.
        #[arg(long)]
        no_run: bool,
    },
    /// The log lines of a task instance's tries.
    Logs {
        /// The DAG id.
        dag_id: String,
        /// The run id, or `latest`.
        run: String,
        /// The task id.
        task_id: String,
        /// Only this try; default: every try.
        #[arg(long = "try", value_name = "N")]
        try_number: Option<u32>,
        /// The instance of a mapped task.
        #[arg(long = "map-index", value_name = "I")]
        map_index: Option<u32>,
    },
}

#[derive(Subcommand, Debug)]
enum RunsCommand {
    /// List runs, newest first.
    List {
        /// Only this DAG's runs.
        dag_id: Option<String>,
    },
    /// Delete a run's history: its records, and its objects (large XComs, artifacts).
    Delete {
        /// The DAG id.
        dag_id: String,
        /// The run id, or `latest`.
        run: String,
    },
}

#[derive(Subcommand, Debug)]
enum PoolsCommand {
    /// Create a pool or change its size.
    Set {
        /// The pool's name.
        name: String,
        /// How many slots it has.
        slots: u32,
        /// What it is for.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List the pools.
    List,
    /// Delete a pool.
    Delete {
        /// The pool's name.
        name: String,
    },
}

#[derive(Subcommand, Debug)]
enum DbCommand {
    /// Upgrade the database schema to this binary's version.
    Migrate,
    /// Print where the database is and its schema version.
    Info,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ShowFormat {
    Text,
    Dot,
}

/// A command that failed, with its exit code.
#[derive(Debug)]
pub(crate) struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Self {
        Self {
            code: 2,
            message: message.into(),
        }
    }
    fn failed(message: impl Into<String>) -> Self {
        Self {
            code: 1,
            message: message.into(),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Backend(_)
            | StoreError::DiskFull(_)
            | StoreError::IllegalTransition { .. } => Failure::failed(e.to_string()),
            _ => Failure::usage(e.to_string()),
        }
    }
}

impl From<HomeError> for Failure {
    fn from(e: HomeError) -> Self {
        match e {
            HomeError::Store(e) => e.into(),
            e => Failure::usage(e.to_string()),
        }
    }
}

impl From<ObjectError> for Failure {
    fn from(e: ObjectError) -> Self {
        match e {
            // The store did not do what was asked: a failed command, which may be repeated.
            ObjectError::Failed { .. }
            | ObjectError::NotFound { .. }
            | ObjectError::ArtifactMissing { .. }
            | ObjectError::File { .. }
            | ObjectError::Runtime(_) => Failure::failed(e.to_string()),
            // Settings that cannot work.
            _ => Failure::usage(e.to_string()),
        }
    }
}

impl From<RunError> for Failure {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Store(e) => e.into(),
            RunError::Objects(e) => e.into(),
            RunError::Runtime(_) => Failure::failed(e.to_string()),
            _ => Failure::usage(e.to_string()),
        }
    }
}

/// Parses the process arguments and runs the command over every registered DAG.
pub fn main() -> ExitCode {
    run(std::env::args_os())
}

/// Runs the CLI with explicit arguments (the first one is the program name).
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    init_logging();
    let registry = match Registry::load() {
        Ok(registry) => registry,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match execute(cli.command, &registry) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

/// Logs go to stderr, filtered by `FLOW_LOG` (default `info`); every task's lines at INFO
/// and above are also captured into its try's log in the store.
fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::{EnvFilter, Layer as _, filter::LevelFilter};

    let filter = EnvFilter::try_from_env("FLOW_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false)
                .with_filter(filter),
        )
        .with(crate::logs::CaptureLayer.with_filter(LevelFilter::INFO))
        .try_init();
}

fn execute(command: Command, registry: &Registry) -> Result<(), Failure> {
    match command {
        Command::Dags(DagsCommand::List) => {
            print!("{}", render::dag_table(registry.dags()));
            Ok(())
        }
        Command::Dags(DagsCommand::Show { dag_id, format }) => {
            let dag = find_dag(registry, &dag_id)?;
            print!(
                "{}",
                match format {
                    ShowFormat::Text => render::tree(dag),
                    ShowFormat::Dot => render::dot(dag),
                }
            );
            Ok(())
        }
        Command::Dags(DagsCommand::Test {
            dag_id,
            date,
            resume,
            in_memory,
            parallelism,
            conf,
        }) => {
            let dag = find_dag(registry, &dag_id)?;
            if let Some(run) = resume {
                return history::resume(dag, &run, parallelism);
            }
            let conf = scheduling::parse_conf(conf.as_deref())?;
            let request = RunRequest::manual(dag, logical_date(date.as_deref())?, conf.as_ref())?;
            if in_memory {
                let executor = live_executor(
                    Arc::new(MemoryStore::new()),
                    Objects::in_memory(),
                    parallelism,
                )?;
                dags_test(dag, &executor, request)
            } else {
                dags_test_recorded(dag, &FlowHome::from_env()?, request, parallelism)
            }
        }
        Command::Dags(DagsCommand::Trigger {
            dag_id,
            conf,
            date,
            run,
        }) => scheduling::trigger(
            find_dag(registry, &dag_id)?,
            conf.as_deref(),
            date.as_deref(),
            run,
        ),
        Command::Dags(DagsCommand::Backfill {
            dag_id,
            from,
            to,
            rerun_failed,
            dry_run,
        }) => scheduling::backfill(
            find_dag(registry, &dag_id)?,
            &from,
            &to,
            rerun_failed,
            dry_run,
        ),
        Command::Dags(DagsCommand::Pause { dag_id }) => {
            scheduling::pause(find_dag(registry, &dag_id)?, true)
        }
        Command::Dags(DagsCommand::Unpause { dag_id }) => {
            scheduling::pause(find_dag(registry, &dag_id)?, false)
        }
        Command::Scheduler { poll, grace } => {
            let seconds = |flag: &str, v: f64| {
                if v.is_finite() && v > 0.0 {
                    Ok(std::time::Duration::from_secs_f64(v))
                } else {
                    Err(Failure::usage(format!(
                        "--{flag} must be a positive number of seconds, not {v}"
                    )))
                }
            };
            scheduling::scheduler(registry, seconds("poll", poll)?, seconds("grace", grace)?)
        }
        Command::Tasks(TasksCommand::List { dag_id }) => {
            print!("{}", render::task_table(find_dag(registry, &dag_id)?));
            Ok(())
        }
        Command::Tasks(TasksCommand::Test {
            dag_id,
            task_id,
            date,
            inputs,
        }) => tasks_test(
            find_dag(registry, &dag_id)?,
            &task_id,
            date.as_deref(),
            &inputs,
        ),
        Command::Tasks(TasksCommand::States { dag_id, run }) => {
            history::states(find_dag(registry, &dag_id)?, &run)
        }
        Command::Tasks(TasksCommand::Clear {
            dag_id,
            run,
            tasks,
            downstream,
            no_run,
        }) => history::clear(
            find_dag(registry, &dag_id)?,
            &run,
            &tasks,
            downstream,
            no_run,
        ),
        Command::Tasks(TasksCommand::Logs {
            dag_id,
            run,
            task_id,
            try_number,
            map_index,
        }) => history::logs(
            find_dag(registry, &dag_id)?,
            &run,
            &task_id,
            try_number,
            map_index,
        ),
        Command::Runs(RunsCommand::List { dag_id }) => {
            if let Some(id) = &dag_id {
                find_dag(registry, id)?;
            }
            history::runs(dag_id.as_deref())
        }
        Command::Runs(RunsCommand::Delete { dag_id, run }) => {
            history::delete(find_dag(registry, &dag_id)?, &run)
        }
        Command::Pools(command) => scheduling::pools(command),
        Command::Db(DbCommand::Migrate) => db_migrate(),
        Command::Db(DbCommand::Info) => {
            let home = FlowHome::from_env()?;
            let store = home.open_store()?;
            println!("database: {}", store.path().display());
            println!("schema version: {}", store.schema_version()?);
            Ok(())
        }
    }
}

fn find_dag<'a>(registry: &'a Registry, id: &str) -> Result<&'a Dag, Failure> {
    registry.get(id).ok_or_else(|| {
        Failure::usage(format!(
            "no DAG `{id}` in this binary; known DAGs: {}",
            closest(id, registry.ids()).join(", ")
        ))
    })
}

fn find_task(dag: &Dag, id: &str) -> Result<usize, Failure> {
    dag.task_index(id).ok_or_else(|| {
        Failure::usage(format!(
            "no task `{id}` in DAG `{}`; its tasks: {}",
            dag.id(),
            closest(id, dag.tasks().iter().map(|t| t.id().as_str())).join(", ")
        ))
    })
}

fn logical_date(date: Option<&str>) -> Result<DateTime<Utc>, Failure> {
    match date {
        None => Ok(Utc::now()),
        Some(text) => parse_date(text).ok_or_else(|| {
            Failure::usage(format!(
                "invalid --date `{text}`: expected a date like 2025-01-01 or 2025-01-01T02:00:00Z"
            ))
        }),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::failed(format!("cannot start the async runtime: {e}")))
}

/// The object store of recorded runs: `FLOW_OBJECT_STORE`, else `$FLOW_HOME/objects`.
fn objects(home: &FlowHome) -> Result<Objects, Failure> {
    Ok(ObjectStoreConfig::from_env(home)?.connect()?)
}

/// An executor printing a line per task state change.
fn live_executor(
    store: Arc<dyn Store>,
    objects: Objects,
    parallelism: Option<usize>,
) -> Result<Executor, Failure> {
    let executor = configured(Executor::new(store))?
        .object_store(objects)
        .on_event(|event| println!("{}", render::event_line(event)));
    Ok(match parallelism {
        Some(n) => executor.parallelism(n),
        None => executor,
    })
}

/// An executor with the settings of the environment: `FLOW_MAX_MAP_LENGTH`.
fn configured(executor: Executor) -> Result<Executor, Failure> {
    match std::env::var("FLOW_MAX_MAP_LENGTH") {
        Ok(text) => match text.trim().parse::<usize>() {
            Ok(limit) if limit > 0 => Ok(executor.max_map_length(limit)),
            _ => Err(Failure::usage(format!(
                "FLOW_MAX_MAP_LENGTH must be a whole number of instances, at least 1 (found `{text}`)"
            ))),
        },
        Err(_) => Ok(executor),
    }
}

/// Prints the summary; a failed run is a failed command.
fn report(summary: &RunSummary) -> Result<(), Failure> {
    print!("{}", render::summary(summary));
    match summary.state {
        RunState::Success => Ok(()),
        state => Err(Failure::failed(format!(
            "run `{}` ended {state}",
            summary.run_id
        ))),
    }
}

fn dags_test(dag: &Dag, executor: &Executor, request: RunRequest) -> Result<(), Failure> {
    println!(
        "Running DAG `{}` for logical date {}",
        dag.id(),
        request.logical_date.to_rfc3339()
    );
    let summary = runtime()?.block_on(executor.run_request(dag, request))?;
    report(&summary)
}

fn dags_test_recorded(
    dag: &Dag,
    home: &FlowHome,
    request: RunRequest,
    parallelism: Option<usize>,
) -> Result<(), Failure> {
    let logical_date = request.logical_date;
    let store: Arc<dyn Store> = Arc::new(home.open_store()?);
    let executor = live_executor(store, objects(home)?, parallelism)?;
    let run_id = Executor::manual_run_id(logical_date);
    let _lock = home.lock_run(dag.id(), &run_id)?;
    println!(
        "Running DAG `{}` for logical date {} (run {run_id}, recorded in {})",
        dag.id(),
        logical_date.to_rfc3339(),
        home.database().display()
    );
    let summary = runtime()?.block_on(executor.run_request(dag, request))?;
    report(&summary)
}

fn db_migrate() -> Result<(), Failure> {
    let home = FlowHome::from_env()?;
    let store = SqliteStore::open_with(
        &home.database(),
        OpenMode::ForMigration,
        crate::store::DEFAULT_BUSY_TIMEOUT,
    )?;
    let (from, to) = store.migrate()?;
    if from == to {
        println!(
            "{} is up to date (schema version {to})",
            store.path().display()
        );
    } else {
        println!(
            "migrated {} from schema version {from} to {to}",
            store.path().display()
        );
    }
    Ok(())
}

/// Where one input of `tasks test` comes from.
enum Provided {
    Given(XComBlob),
    Missing(String),
}

fn tasks_test(
    dag: &Dag,
    task_id: &str,
    date: Option<&str>,
    given: &[String],
) -> Result<(), Failure> {
    let index = find_task(dag, task_id)?;
    let task = &dag.tasks()[index];
    let params = task.spec().params();
    let mut provided: Vec<Option<XComBlob>> = vec![None; params.len()];
    for arg in given {
        let Some((name, json)) = arg.split_once('=') else {
            return Err(Failure::usage(format!(
                "invalid --input `{arg}`: write NAME=JSON, e.g. --input rows=42"
            )));
        };
        let Some(position) = params.iter().position(|p| p.name() == name) else {
            let names: Vec<&str> = params.iter().map(|p| p.name()).collect();
            return Err(Failure::usage(format!(
                "task `{task_id}` has no input `{name}`; its inputs: {}",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )));
        };
        let value: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| Failure::usage(format!("--input {name}: invalid JSON `{json}`: {e}")))?;
        let blob = params[position]
            .from_json(value)
            .map_err(|e| Failure::usage(format!("--input {name}: {e}")))?;
        provided[position] = Some(blob);
    }
    // Inputs not given come from literals, then from the latest recorded run.
    let needs_store = params
        .iter()
        .zip(task.inputs())
        .zip(&provided)
        .any(|((_, bound), given)| given.is_none() && matches!(bound, BoundInput::Upstream(_)));
    let recorded: Option<(SqliteStore, FlowHome)> =
        if needs_store && FlowHome::from_env()?.database().exists() {
            let home = FlowHome::from_env()?;
            Some((home.open_store()?, home))
        } else {
            None
        };
    let mut inputs = Vec::with_capacity(params.len());
    let mut missing = Vec::new();
    for ((param, bound), given) in params.iter().zip(task.inputs()).zip(provided) {
        let found = match (given, bound) {
            (Some(blob), _) => Provided::Given(blob),
            (None, BoundInput::Literal(blob)) => Provided::Given(blob.clone()),
            // One instance of a mapped task takes one element: the user says which.
            (None, BoundInput::Mapped(_)) => Provided::Missing(format!(
                "  {}: {} (one element of the list the task is mapped over)",
                param.name(),
                param.type_name(),
            )),
            (None, BoundInput::Upstream(producer)) => {
                let producer = dag.tasks()[*producer].id();
                let latest = match &recorded {
                    Some((store, home)) => crate::store::XComStore::latest_xcom(
                        store,
                        dag.id(),
                        producer,
                        RETURN_VALUE,
                    )?
                    .map(|(run, stored)| -> Result<_, Failure> {
                        match stored.as_inline() {
                            Some(blob) => Ok((run, blob.clone())),
                            None => Ok((run, objects(home)?.load_blocking(&stored)?)),
                        }
                    })
                    .transpose()?,
                    None => None,
                };
                match latest {
                    Some((run, blob)) => {
                        println!(
                            "input `{}` from the return value of `{producer}` in run {run}",
                            param.name()
                        );
                        Provided::Given(blob)
                    }
                    None => Provided::Missing(format!(
                        "  {}: {} (the return value of `{producer}`, which no recorded run has stored)",
                        param.name(),
                        param.type_name(),
                    )),
                }
            }
        };
        match found {
            Provided::Given(blob) => inputs.push(blob),
            Provided::Missing(line) => missing.push(line),
        }
    }
    if !missing.is_empty() {
        return Err(Failure::usage(format!(
            "task `{task_id}` needs inputs that are not available:\n{}\nprovide each as JSON with --input NAME=JSON, \
             or record a run first with `dags test {}`",
            missing.join("\n"),
            dag.id()
        )));
    }
    let logical_date = logical_date(date)?;
    // Nothing is recorded: artifacts the task puts stay in memory too.
    let executor = Executor::new(Arc::new(MemoryStore::new())).object_store(Objects::in_memory());
    let outcome = runtime()?.block_on(executor.test_task(dag, index, inputs, logical_date));
    match outcome {
        Ok((output, pushed)) => {
            let json = task
                .spec()
                .output()
                .to_json(&output)
                .map_err(Failure::failed)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&json).unwrap_or_else(|_| json.to_string())
            );
            for (key, blob) in pushed {
                println!(
                    "pushed XCom `{key}` ({} bytes, {})",
                    blob.bytes().len(),
                    blob.type_name()
                );
            }
            Ok(())
        }
        Err(e) => Err(Failure::failed(format!("task `{task_id}` failed: {e}"))),
    }
}

/// Resolves a run argument: an id, or `latest` for the DAG's newest run.
fn resolve_run(store: &dyn Store, dag: &Dag, run: &str) -> Result<RunId, Failure> {
    if run == "latest" {
        return store
            .runs(Some(dag.id()))?
            .into_iter()
            .next()
            .map(|r| r.run_id)
            .ok_or_else(|| Failure::usage(format!("DAG `{}` has no recorded runs yet", dag.id())));
    }
    let run_id = RunId::new(run);
    if store.run(dag.id(), &run_id)?.is_none() {
        let runs = store.runs(Some(dag.id()))?;
        let known: Vec<&str> = runs.iter().map(|r| r.run_id.as_str()).collect();
        return Err(Failure::usage(format!(
            "DAG `{}` has no run `{run}`; {}",
            dag.id(),
            if known.is_empty() {
                "it has no recorded runs".to_string()
            } else {
                format!(
                    "its runs, closest first: {}",
                    closest(run, known)
                        .into_iter()
                        .take(5)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        )));
    }
    Ok(run_id)
}

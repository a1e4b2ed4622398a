//! The command line every pipeline binary gets from `flow_runtime::cli::main()`, modelled on
//! Airflow's: `dags list|show|test`, `tasks list|test|states|clear|logs`, `runs list|delete`,
//! `db migrate|info`.
//!
//! Runs are recorded in `$FLOW_HOME/flow.db` (see [`crate::home`]), their large XComs and
//! artifacts in the object store `FLOW_OBJECT_STORE` names, default `$FLOW_HOME/objects`
//! (see [`crate::objects`]). Exit codes: 0 success,
//! 1 a run or task failed, 2 bad input (unknown id, bad date, bad JSON, missing inputs), a
//! refused database, or a DAG definition error found at start-up.

mod draw;
mod failure;
mod history;
mod progress;
mod render;
mod scheduling;
#[cfg(feature = "serve")]
mod serving;

use std::process::ExitCode;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};

use crate::graph::Dag;
use crate::home::FlowHome;
use crate::metrics::{Metrics, MetricsEndpoint};
use crate::objects::Objects;
use crate::ops;
use crate::registry::{Registry, closest};
use crate::runtime::{Executor, RunSummary};
use crate::settings::Settings;
use crate::state::RunState;
use crate::store::{MemoryStore, OpenMode, SqliteStore, Store};
use crate::time::parse_date;

pub(crate) use failure::Failure;

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
        #[command(flatten)]
        observe: Observe,
    },
    /// Serve the REST API (`/api/v2`, after Airflow's) over the runs FLOW_HOME records,
    /// until stopped. Without FLOW_API_TOKEN it serves loopback only.
    #[cfg(feature = "serve")]
    Serve {
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
        /// The port (0 picks a free one; the URL is printed on stderr).
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
}

/// What a command that runs tasks shows of itself while it runs.
#[derive(clap::Args, Debug, Clone, Copy, Default)]
struct Observe {
    /// Serve Prometheus metrics at http://ADDR/metrics while the command runs, e.g.
    /// `127.0.0.1:9464` (port 0 picks a free port; the URL is printed on stderr).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
}

impl Observe {
    /// Starts the metrics endpoint, if asked for, and has `executor` count into it; the
    /// endpoint listens until it is dropped.
    fn start(
        self,
        executor: Executor,
        store: &Arc<dyn Store>,
    ) -> Result<(Executor, Option<MetricsEndpoint>), Failure> {
        let Some(addr) = self.metrics else {
            return Ok((executor, None));
        };
        let metrics = Arc::new(Metrics::new());
        let endpoint =
            MetricsEndpoint::start(addr, metrics.clone(), store.clone()).map_err(|e| {
                Failure::usage(format!(
                    "cannot serve metrics on {addr}: {e}; pick another --metrics address"
                ))
            })?;
        eprintln!("metrics: {}", endpoint.url());
        Ok((executor.metrics(metrics), Some(endpoint)))
    }
}

#[derive(Subcommand, Debug)]
enum DagsCommand {
    /// List every DAG of this binary.
    List,
    /// Show a DAG's tasks and dependencies.
    Show {
        /// The DAG id.
        dag_id: String,
        /// `text` (a tree), `dot` (Graphviz), `mermaid`, or `svg` (a picture laid out
        /// here, for a browser).
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
        /// The most tasks running at once (at least 1); default: the number of cores.
        #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
        parallelism: Option<usize>,
        /// The run's params as a JSON object, checked against the DAG's params.
        #[arg(long, conflicts_with = "resume")]
        conf: Option<String>,
        #[command(flatten)]
        observe: Observe,
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
        #[command(flatten)]
        observe: Observe,
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
    /// The XComs a task instance stored (its return value, values it pushed, and what a
    /// branch or short-circuit decided under `skipmixin_key`), one `NAME VALUE` a line.
    Xcoms {
        /// The DAG id.
        dag_id: String,
        /// The run id, or `latest`.
        run: String,
        /// The task id.
        task_id: String,
        /// The instance of a mapped task.
        #[arg(long = "map-index", value_name = "I")]
        map_index: Option<u32>,
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
    Mermaid,
    Svg,
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
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    // The service name of traces, when OTEL_SERVICE_NAME gives none.
    let program = args
        .first()
        .and_then(|arg0| std::path::Path::new(arg0).file_stem())
        .map_or_else(
            || "flow".to_string(),
            |name| name.to_string_lossy().into_owned(),
        );
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    // Every setting is checked before anything runs, whatever the command.
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(e) => {
            let failure = Failure::from(e);
            eprintln!("error: {}", failure.message);
            return ExitCode::from(failure.code);
        }
    };
    // Held to the end: dropping it sends the spans still batched.
    let _traces = match init_logging(&settings, &program) {
        Ok(traces) => traces,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let registry = match Registry::load() {
        Ok(registry) => registry,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match execute(cli.command, &registry, &settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

/// What sends traces while the command runs: the OTLP exporter, with the `otel` feature
/// and an endpoint set.
#[cfg(feature = "otel")]
type Traces = Option<crate::traces::OtlpExporter>;
#[cfg(not(feature = "otel"))]
type Traces = Option<std::convert::Infallible>;

/// Logs go to stderr, filtered by `FLOW_LOG` (default `info`), coloured only on a
/// terminal; every task's lines at INFO and above are also captured into its try's log
/// in the store; spans of runs and tries (and the tasks' own) go to an OTLP collector
/// when the settings name one.
fn init_logging(settings: &Settings, program: &str) -> Result<Traces, String> {
    use tracing_subscriber::filter::{FilterExt as _, LevelFilter, filter_fn};
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::{EnvFilter, Layer as _};

    #[cfg(feature = "otel")]
    let traces = settings
        .otlp()
        .map(|otlp| crate::traces::OtlpExporter::start(otlp, program))
        .transpose()?;
    #[cfg(not(feature = "otel"))]
    let traces: Traces = {
        let _ = program;
        None
    };
    #[cfg(feature = "otel")]
    let otel_layer = traces
        .as_ref()
        .map(|exporter| exporter.layer().with_filter(LevelFilter::INFO));
    #[cfg(not(feature = "otel"))]
    let otel_layer: Option<tracing_subscriber::layer::Identity> = None;

    // The filter was checked by the settings; `info` only if that check and this disagree.
    let filter =
        EnvFilter::try_new(settings.log_filter()).unwrap_or_else(|_| EnvFilter::new("info"));
    // Run spans are for traces: in a log line they would repeat the try's fields.
    let not_run_span = || filter_fn(|metadata| !crate::traces::is_run_span(metadata));
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                // Around the progress bar, when one is drawn.
                .with_writer(|| progress::LogWriter)
                // Colours only for a person at a terminal: a file or a pipe gets plain
                // text (and `NO_COLOR`, the common convention, turns them off).
                .with_ansi(
                    std::io::IsTerminal::is_terminal(&std::io::stderr()) && settings.colour(),
                )
                .with_target(false)
                .with_filter(filter.and(not_run_span())),
        )
        .with(crate::logs::CaptureLayer.with_filter(LevelFilter::INFO.and(not_run_span())))
        .with(otel_layer)
        .try_init();
    if let Some(var) = settings.otlp_ignored() {
        tracing::warn!(
            "{var} is set, but this binary was built without flow's `otel` feature: no traces are sent"
        );
    }
    Ok(traces)
}

fn execute(command: Command, registry: &Registry, settings: &Settings) -> Result<(), Failure> {
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
                    ShowFormat::Dot => draw::dot(dag),
                    ShowFormat::Mermaid => draw::mermaid(dag),
                    ShowFormat::Svg => draw::svg(dag),
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
            observe,
        }) => {
            let dag = find_dag(registry, &dag_id)?;
            if let Some(run) = resume {
                return history::resume(settings, dag, &run, parallelism, observe);
            }
            let conf = conf.as_deref().map(ops::trigger::parse_conf).transpose()?;
            let request =
                ops::trigger::request(dag, logical_date(date.as_deref())?, conf.as_ref())?;
            if in_memory {
                println!(
                    "Running DAG `{}` for logical date {}",
                    dag.id(),
                    request.logical_date.to_rfc3339()
                );
                let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
                let (executor, progress) = live_executor(
                    settings,
                    dag,
                    store.clone(),
                    Objects::in_memory(),
                    parallelism,
                );
                let (executor, _metrics) = observe.start(executor, &store)?;
                let summary = runtime()?.block_on(executor.run_request(dag, request))?;
                progress.finish();
                report(&summary)
            } else {
                let (home, store) = open(settings)?;
                let objects = settings.connect_objects()?;
                let run_id = Executor::manual_run_id(request.logical_date);
                let _lock = home.lock_run(dag.id(), &run_id)?;
                println!(
                    "Running DAG `{}` for logical date {} (run {run_id}, recorded in {})",
                    dag.id(),
                    request.logical_date.to_rfc3339(),
                    home.database().display()
                );
                let (executor, progress) =
                    live_executor(settings, dag, store.clone(), objects, parallelism);
                let (executor, _metrics) = observe.start(executor, &store)?;
                let summary = runtime()?.block_on(executor.run_request(dag, request))?;
                progress.finish();
                report(&summary)
            }
        }
        Command::Dags(DagsCommand::Trigger {
            dag_id,
            conf,
            date,
            run,
        }) => scheduling::trigger(
            settings,
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
            observe,
        }) => scheduling::backfill(
            settings,
            find_dag(registry, &dag_id)?,
            (&from, &to),
            rerun_failed,
            dry_run,
            observe,
        ),
        Command::Dags(DagsCommand::Pause { dag_id }) => {
            scheduling::pause(settings, find_dag(registry, &dag_id)?, true)
        }
        Command::Dags(DagsCommand::Unpause { dag_id }) => {
            scheduling::pause(settings, find_dag(registry, &dag_id)?, false)
        }
        Command::Scheduler {
            poll,
            grace,
            observe,
        } => {
            let seconds = |flag: &str, v: f64| {
                if v.is_finite() && v > 0.0 {
                    Ok(std::time::Duration::from_secs_f64(v))
                } else {
                    Err(Failure::usage(format!(
                        "--{flag} must be a positive number of seconds, not {v}"
                    )))
                }
            };
            scheduling::scheduler(
                settings,
                registry,
                seconds("poll", poll)?,
                seconds("grace", grace)?,
                observe,
            )
        }
        #[cfg(feature = "serve")]
        Command::Serve { bind, port } => serving::serve(settings, registry, bind, port),
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
            settings,
            find_dag(registry, &dag_id)?,
            &task_id,
            date.as_deref(),
            &inputs,
        ),
        Command::Tasks(TasksCommand::States { dag_id, run }) => {
            history::states(settings, find_dag(registry, &dag_id)?, &run)
        }
        Command::Tasks(TasksCommand::Clear {
            dag_id,
            run,
            tasks,
            downstream,
            no_run,
        }) => history::clear(
            settings,
            find_dag(registry, &dag_id)?,
            &run,
            &tasks,
            downstream,
            no_run,
        ),
        Command::Tasks(TasksCommand::Xcoms {
            dag_id,
            run,
            task_id,
            map_index,
        }) => history::xcoms(
            settings,
            find_dag(registry, &dag_id)?,
            &run,
            &task_id,
            map_index,
        ),
        Command::Tasks(TasksCommand::Logs {
            dag_id,
            run,
            task_id,
            try_number,
            map_index,
        }) => history::logs(
            settings,
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
            history::runs(settings, dag_id.as_deref())
        }
        Command::Runs(RunsCommand::Delete { dag_id, run }) => {
            history::delete(settings, find_dag(registry, &dag_id)?, &run)
        }
        Command::Pools(command) => scheduling::pools(settings, command),
        Command::Db(DbCommand::Migrate) => db_migrate(settings),
        Command::Db(DbCommand::Info) => {
            let store = settings.home()?.open_store()?;
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

/// The home and the store of recorded runs.
fn open(settings: &Settings) -> Result<(FlowHome, Arc<dyn Store>), Failure> {
    let home = settings.home()?.clone();
    let store = settings.open_store()?;
    Ok((home, store))
}

/// An executor with the settings, printing a line per task state change of `dag`'s run,
/// with the run's progress below them on a terminal (cleared by [`progress::Progress::finish`]
/// or once both are dropped).
fn live_executor(
    settings: &Settings,
    dag: &Dag,
    store: Arc<dyn Store>,
    objects: Objects,
    parallelism: Option<usize>,
) -> (Executor, progress::Progress) {
    let progress = progress::Progress::start(dag, 1, true);
    let events = progress.clone();
    let executor = settings
        .executor(store)
        .object_store(objects)
        .on_event(move |event| events.on_event(event));
    let executor = match parallelism {
        Some(n) => executor.parallelism(n),
        None => executor,
    };
    (executor, progress)
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

fn db_migrate(settings: &Settings) -> Result<(), Failure> {
    let store = SqliteStore::open_with(
        &settings.home()?.database(),
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

fn tasks_test(
    settings: &Settings,
    dag: &Dag,
    task_id: &str,
    date: Option<&str>,
    given: &[String],
) -> Result<(), Failure> {
    let mut pairs = Vec::with_capacity(given.len());
    for arg in given {
        let Some((name, json)) = arg.split_once('=') else {
            return Err(Failure::usage(format!(
                "invalid --input `{arg}`: write NAME=JSON, e.g. --input rows=42"
            )));
        };
        pairs.push((name.to_string(), json.to_string()));
    }
    let decoded = ops::test_task::decode_inputs(dag, task_id, &pairs)?;
    // Inputs not given come from literals, then from the latest recorded run, if any.
    let store = if decoded.needs_recorded(dag) {
        settings.open_existing_store()?
    } else {
        None
    };
    let recorded = match &store {
        Some(store) => Some(ops::test_task::Recorded {
            xcoms: store.as_ref(),
            objects: settings.object_store()?,
        }),
        None => None,
    };
    let inputs = ops::test_task::resolve_inputs(dag, decoded, recorded)?;
    for (name, source) in &inputs.sources {
        if let ops::test_task::InputSource::Recorded { producer, run_id } = source {
            println!("input `{name}` from the return value of `{producer}` in run {run_id}");
        }
    }
    let logical_date = logical_date(date)?;
    let output = runtime()?.block_on(ops::test_task::run(dag, inputs, logical_date))?;
    println!(
        "{}",
        serde_json::to_string_pretty(&output.output).unwrap_or_else(|_| output.output.to_string())
    );
    for pushed in output.pushed {
        println!(
            "pushed XCom `{}` ({} bytes, {})",
            pushed.key, pushed.bytes, pushed.type_name
        );
    }
    Ok(())
}

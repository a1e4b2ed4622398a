//! The command line every pipeline binary gets from `flow_runtime::cli::main()`, modelled on
//! Airflow's: `dags list|show|test`, `tasks list|test`.
//!
//! Exit codes: 0 success, 1 a run or task failed, 2 bad input (unknown id, bad date, bad
//! JSON, missing inputs) or a DAG definition error found at start-up.

mod render;

use std::process::ExitCode;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};

use crate::dag::{BoundInput, Dag, parse_date};
use crate::executor::Executor;
use crate::registry::{Registry, closest};
use crate::state::RunState;
use crate::store::MemoryStore;
use crate::xcom::XComBlob;

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
    /// Inspect and run single tasks.
    #[command(subcommand)]
    Tasks(TasksCommand),
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
        #[arg(long)]
        date: Option<String>,
        /// The most tasks running at once; default: the number of cores.
        #[arg(long)]
        parallelism: Option<usize>,
    },
}

#[derive(Subcommand, Debug)]
enum TasksCommand {
    /// List a DAG's tasks with their inputs and outputs.
    List {
        /// The DAG id.
        dag_id: String,
    },
    /// Run one task by itself and print its return value as JSON.
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
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ShowFormat {
    Text,
    Dot,
}

/// A command that failed, with its exit code.
#[derive(Debug)]
struct Failure {
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

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FLOW_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
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
            parallelism,
        }) => dags_test(find_dag(registry, &dag_id)?, date.as_deref(), parallelism),
        Command::Tasks(TasksCommand::List { dag_id }) => {
            print!("{}", render::task_table(find_dag(registry, &dag_id)?));
            Ok(())
        }
        Command::Tasks(TasksCommand::Test {
            dag_id,
            task_id,
            date,
            inputs,
        }) => tasks_test(find_dag(registry, &dag_id)?, &task_id, date.as_deref(), &inputs),
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

fn dags_test(dag: &Dag, date: Option<&str>, parallelism: Option<usize>) -> Result<(), Failure> {
    let logical_date = logical_date(date)?;
    let mut executor = Executor::new(Arc::new(MemoryStore::new())).on_event(|event| println!("{}", render::event_line(event)));
    if let Some(n) = parallelism {
        executor = executor.parallelism(n);
    }
    println!("Running DAG `{}` for logical date {}", dag.id(), logical_date.to_rfc3339());
    let summary = runtime()?
        .block_on(executor.run(dag, logical_date))
        .map_err(|e| Failure::failed(e.to_string()))?;
    print!("{}", render::summary(&summary));
    match summary.state {
        RunState::Success => Ok(()),
        state => Err(Failure::failed(format!("run `{}` ended {state}", summary.run_id))),
    }
}

fn tasks_test(dag: &Dag, task_id: &str, date: Option<&str>, given: &[String]) -> Result<(), Failure> {
    let index = find_task(dag, task_id)?;
    let task = &dag.tasks()[index];
    let params = task.spec().params();
    let mut provided: Vec<Option<XComBlob>> = vec![None; params.len()];
    for arg in given {
        let Some((name, json)) = arg.split_once('=') else {
            return Err(Failure::usage(format!("invalid --input `{arg}`: write NAME=JSON, e.g. --input rows=42")));
        };
        let Some(position) = params.iter().position(|p| p.name() == name) else {
            let names: Vec<&str> = params.iter().map(|p| p.name()).collect();
            return Err(Failure::usage(format!(
                "task `{task_id}` has no input `{name}`; its inputs: {}",
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            )));
        };
        let value: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| Failure::usage(format!("--input {name}: invalid JSON `{json}`: {e}")))?;
        let blob = params[position]
            .from_json(value)
            .map_err(|e| Failure::usage(format!("--input {name}: {e}")))?;
        provided[position] = Some(blob);
    }
    let mut inputs = Vec::with_capacity(params.len());
    let mut missing = Vec::new();
    for ((param, bound), given) in params.iter().zip(task.inputs()).zip(provided) {
        match (given, bound) {
            (Some(blob), _) => inputs.push(blob),
            (None, BoundInput::Literal(blob)) => inputs.push(blob.clone()),
            (None, BoundInput::Upstream(producer)) => missing.push(format!(
                "  {}: {} (the return value of `{}`)",
                param.name(),
                param.type_name(),
                dag.tasks()[*producer].id()
            )),
        }
    }
    if !missing.is_empty() {
        return Err(Failure::usage(format!(
            "task `{task_id}` needs inputs that are not available:\n{}\nprovide each as JSON with --input NAME=JSON, \
             or run the whole DAG with `dags test {}`",
            missing.join("\n"),
            dag.id()
        )));
    }
    let logical_date = logical_date(date)?;
    let executor = Executor::new(Arc::new(MemoryStore::new()));
    let outcome = runtime()?.block_on(executor.test_task(dag, index, inputs, logical_date));
    match outcome {
        Ok((output, pushed)) => {
            let json = task.spec().output().to_json(&output).map_err(Failure::failed)?;
            println!("{}", serde_json::to_string_pretty(&json).unwrap_or_else(|_| json.to_string()));
            for (key, blob) in pushed {
                println!("pushed XCom `{key}` ({} bytes, {})", blob.bytes().len(), blob.type_name());
            }
            Ok(())
        }
        Err(e) => Err(Failure::failed(format!("task `{task_id}` failed: {e}"))),
    }
}

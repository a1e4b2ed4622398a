//! The model of a `#[task]` function: its checked signature and options, as data; the
//! phases in [`super`] build it and generate code from it.

use proc_macro2::{Span, TokenStream};
use syn::{Ident, LitInt, Type};

use super::args::{CallbackArgs, SensorArgs, TaskArgs};
use crate::attr::TaskOptionArgs;

/// A `#[task]` function, checked.
pub(super) struct Task {
    pub(super) root: TokenStream,
    pub(super) function: Ident,
    pub(super) vis: syn::Visibility,
    pub(super) cfgs: Vec<syn::Attribute>,
    pub(super) name: String,
    /// The `async` keyword's span, for an async function.
    pub(super) asyncness: Option<Span>,
    /// The function's parameters, in order.
    pub(super) inputs: Vec<Input>,
    pub(super) output: Output,
    pub(super) doc: Option<String>,
    pub(super) options: TaskOptionArgs,
    /// `branch` or `short_circuit` (with the flag's span): what the output means to the
    /// executor.
    pub(super) special: Option<(Special, Span)>,
    /// `shell` or `container`: the function describes work the runtime runs.
    pub(super) runs: Option<Runs>,
    /// For a `sensor`: the function returns `Poke<T>` and the runtime pokes it.
    pub(super) sensor: Option<Sensor>,
    pub(super) pool_slots: Option<LitInt>,
    pub(super) callbacks: CallbackArgs,
    /// `retry_policy = path`: a `fn() -> RetryPolicy`, called when the spec is built.
    pub(super) retry_policy: Option<syn::ExprPath>,
    /// `outlets = [ASSET, ..]`: expressions of type `Asset`.
    pub(super) outlets: Option<Vec<syn::Expr>>,
    /// The `multiple_outputs` flag's span: the node is a `MultiNode`, a `Node` per field.
    pub(super) multiple_outputs: Option<Span>,
    /// A short-circuit task's `ignore_downstream_trigger_rules`, if given.
    pub(super) ignore_downstream_trigger_rules: Option<syn::LitBool>,
    /// The setter of a setup or teardown task: `.as_setup()`, `.as_teardown_with(..)`.
    pub(super) role: Option<proc_macro2::TokenStream>,
}

/// A `#[task(sensor)]`: its options, and `T` of the `Poke<T>` it returns, the task's
/// output.
pub(super) struct Sensor {
    pub(super) options: SensorArgs,
    pub(super) ready: Box<Type>,
}

/// A task whose output steers the tasks downstream of it.
#[derive(Clone, Copy)]
pub(super) enum Special {
    /// `#[task(branch)]`: returns the `Branch` to follow.
    Branch,
    /// `#[task(short_circuit)]`: returns whether to go on.
    ShortCircuit,
}

impl Special {
    pub(super) fn of(args: &TaskArgs) -> Option<(Self, Span)> {
        match (args.branch, args.short_circuit) {
            (Some(flag), None) => Some((Special::Branch, flag)),
            (None, Some(flag)) => Some((Special::ShortCircuit, flag)),
            _ => None,
        }
    }

    /// Why a task of this kind needs a return type, and which.
    pub(super) fn missing_output(self) -> &'static str {
        match self {
            Special::Branch => {
                "a `#[task(branch)]` returns `Branch`, the downstream tasks to follow: add \
                 `-> Branch` and return `Branch::to(\"task_id\")`"
            }
            Special::ShortCircuit => {
                "a `#[task(short_circuit)]` returns `bool`, whether the tasks downstream run: \
                 add `-> bool`"
            }
        }
    }
}

pub(super) enum Input {
    /// `&TaskContext`: given by the runtime.
    Context,
    /// A value: an upstream output or a literal.
    Value { name: Ident, ty: Box<Type> },
}

pub(super) enum Output {
    /// No return type, or `()`.
    Unit,
    /// A value stored as is.
    Plain(Box<Type>),
    /// A type named `Result` (`anyhow::Result<T>`, `io::Result<T>`, `Result<T, E>`): `Ok`
    /// is stored, `Err` fails the try. `ok` is its first type argument, when written.
    Result {
        written: Box<Type>,
        ok: Option<Box<Type>>,
    },
}

impl Task {
    pub(super) fn values(&self) -> impl Iterator<Item = (&Ident, &Type)> {
        self.inputs.iter().filter_map(|input| match input {
            Input::Value { name, ty } => Some((name, &**ty)),
            Input::Context => None,
        })
    }
}

/// What a `shell` or `container` task's function returns, for the runtime to run: the
/// kind, and the flag's span.
#[derive(Clone, Copy)]
pub(crate) struct Runs {
    pub(crate) kind: RunsKind,
    pub(crate) span: Span,
}

/// The kinds of work a task's function can describe for the runtime to run.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunsKind {
    /// A `ShellCommand` (Airflow's `@task.bash`).
    Shell,
    /// A `ContainerSpec` (Airflow's `DockerOperator`).
    Container,
}

impl RunsKind {
    /// The flag that marks the task.
    pub(crate) fn flag(self) -> &'static str {
        match self {
            RunsKind::Shell => "shell",
            RunsKind::Container => "container",
        }
    }

    /// The type the function returns.
    pub(crate) fn type_name(self) -> &'static str {
        match self {
            RunsKind::Shell => "ShellCommand",
            RunsKind::Container => "ContainerSpec",
        }
    }

    /// What it describes, in a message.
    pub(crate) fn noun(self) -> &'static str {
        match self {
            RunsKind::Shell => "command",
            RunsKind::Container => "container",
        }
    }

    /// How one is made.
    pub(crate) fn example(self) -> &'static str {
        match self {
            RunsKind::Shell => "ShellCommand::bash(\"..\")",
            RunsKind::Container => "ContainerSpec::new(\"image\")",
        }
    }

    /// The names of the generated helper trait, its method and the function that calls it
    /// (they appear in the compiler's notes).
    pub(crate) fn helper_names(self) -> [&'static str; 3] {
        match self {
            RunsKind::Shell => [
                "__FlowShellOutput",
                "__flow_into_command",
                "__flow_shell_command",
            ],
            RunsKind::Container => [
                "__FlowContainerOutput",
                "__flow_into_container",
                "__flow_container_spec",
            ],
        }
    }

    /// The `TaskSpec` constructor that runs it.
    pub(crate) fn constructor(self) -> &'static str {
        match self {
            RunsKind::Shell => "from_shell",
            RunsKind::Container => "from_container",
        }
    }
}

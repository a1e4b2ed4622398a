//! The model of a `#[task]` function: its checked signature and options.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{Ident, ItemFn, LitInt, LitStr, ReturnType, Type};

use super::args::{CallbackArgs, SensorArgs, TaskArgs, settle_sensor_conflict};
use super::check::{check_shell, check_signature, default_name, inputs, output, poked_type};
use super::expand::output_type;
use super::fallback::{Stub, value_arity};
use crate::attr::{self, TaskOptionArgs};
use crate::error::Errors;
use crate::syntax::{cfg_attributes, doc_text};

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
    /// The `shell` flag's span: the function returns a command, the runtime runs it.
    pub(super) shell: Option<Span>,
    /// For a `sensor`: the function returns `Poke<T>` and the runtime pokes it.
    pub(super) sensor: Option<Sensor>,
    pub(super) pool_slots: Option<LitInt>,
    pub(super) callbacks: CallbackArgs,
    /// The `multiple_outputs` flag's span: the node is a `MultiNode`, a `Node` per field.
    pub(super) multiple_outputs: Option<Span>,
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
    /// Checks the function. If its signature cannot make a task (the reasons are in
    /// `errors`), returns what can stand in for it, if anything.
    pub(super) fn new(
        function: &ItemFn,
        mut args: TaskArgs,
        errors: &mut Errors,
    ) -> Result<Self, Option<Box<Stub>>> {
        let before = errors.len();
        let sig = &function.sig;
        check_signature(sig, errors);
        let inputs = inputs(sig, errors);
        let after_inputs = errors.len();
        let output = output(&sig.output, errors);
        let output_ok = errors.len() == after_inputs;
        let sound = errors.len() == before;
        settle_sensor_conflict(&mut args, &output);
        let mut special = Special::of(&args);
        if let (Some((kind, _)), Output::Unit) = (special, &output) {
            match &sig.output {
                ReturnType::Default => errors.at(&sig.ident, kind.missing_output()),
                ReturnType::Type(_, ty) => errors.at(ty, kind.missing_output()),
            }
            special = None;
        }
        let shell_ok = args.shell.is_none_or(|_| check_shell(sig, &output, errors));
        let sensor = args.sensor.and_then(|_| {
            let ready = poked_type(sig, &output, errors)?;
            Some(Sensor {
                options: args.sensor_options,
                ready: Box::new(ready),
            })
        });

        let name = args
            .task_id
            .as_ref()
            .map_or_else(|| default_name(sig, errors), LitStr::value);
        let root = attr::root(args.krate.as_ref());
        if !sound || !shell_ok {
            // No stand-in with generics (the output type may not be nameable) or `self`
            // (the function is in an `impl` block, where a struct cannot go).
            let stub = (output_ok && sig.generics.params.is_empty() && sig.receiver().is_none())
                .then(|| {
                    Box::new(Stub {
                        output: if args.shell.is_some() {
                            quote!(::std::string::String)
                        } else {
                            output_type(&root, &output)
                        },
                        root,
                        function: sig.ident.clone(),
                        vis: function.vis.clone(),
                        cfgs: cfg_attributes(&function.attrs),
                        arity: value_arity(sig),
                    })
                });
            return Err(stub);
        }
        Ok(Task {
            root,
            function: sig.ident.clone(),
            vis: function.vis.clone(),
            cfgs: cfg_attributes(&function.attrs),
            name,
            asyncness: sig.asyncness.map(|token| token.span),
            inputs,
            output,
            doc: doc_text(&function.attrs),
            options: args.options,
            special,
            shell: args.shell,
            multiple_outputs: args.multiple_outputs,
            sensor,
            pool_slots: args.pool_slots,
            callbacks: args.callbacks,
        })
    }

    pub(super) fn values(&self) -> impl Iterator<Item = (&Ident, &Type)> {
        self.inputs.iter().filter_map(|input| match input {
            Input::Value { name, ty } => Some((name, &**ty)),
            Input::Context => None,
        })
    }
}

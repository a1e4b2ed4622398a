//! `#[task]`: options -> a validated model of the function -> the descriptor struct.
//!
//! The user's function is emitted exactly as written. Beside it goes a braced struct of the
//! same name (a braced struct lives in the type namespace only, so it does not clash with
//! the function) whose `node` adds the task to a `DagBuilder` and whose `spec` describes
//! it, and an `inventory` registration.

use proc_macro2::{Delimiter, Group, Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::parse::ParseStream;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{FnArg, Ident, Item, ItemFn, LitInt, LitStr, Pat, ReturnType, Signature, Token, Type};

use crate::attr::{self, Options, TaskOptionArgs, kw};
use crate::error::{Errors, with_errors};
use crate::spans;

/// Expands `#[task(args)] item`.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let options = parse_args(args, &mut errors);
    let function = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(function)) => function,
        Ok(other) => {
            errors.at(
                item_head(&other),
                "`#[task]` goes on a function: `#[task] fn load() -> Rows { .. }`",
            );
            return with_errors(item, &errors);
        }
        Err(error) => {
            errors.push(error);
            return with_errors(item, &errors);
        }
    };
    match Task::new(&function, options, &mut errors) {
        // A sound model is generated even if some options were wrong (they are left
        // out), so that code calling `name::node` does not fail too.
        Ok(task) => with_errors(quote!(#function #task), &errors),
        // Otherwise the function as written, and a stand-in for DAGs that call it.
        Err(stub) => with_errors(quote!(#item #stub), &errors),
    }
}

// ---------------------------------------------------------------------------------------
// Options

/// The options of `#[task(..)]`.
#[derive(Default)]
struct TaskArgs {
    krate: Option<syn::Path>,
    task_id: Option<LitStr>,
    options: TaskOptionArgs,
    /// The `branch` flag.
    branch: Option<Span>,
    /// The `short_circuit` flag.
    short_circuit: Option<Span>,
    /// The `shell` flag.
    shell: Option<Span>,
    /// The `sensor` flag.
    sensor: Option<Span>,
    sensor_options: SensorArgs,
    pool_slots: Option<LitInt>,
    callbacks: CallbackArgs,
}

/// The options of a `sensor` task, each with its key's span.
#[derive(Default)]
struct SensorArgs {
    poke_interval: Option<(Span, attr::DurationLit)>,
    timeout: Option<(Span, attr::DurationLit)>,
    mode: Option<(Span, attr::SensorModeLit)>,
    soft_fail: Option<Span>,
    exponential_backoff: Option<Span>,
}

impl SensorArgs {
    /// The keys of the options given, with their spans, in the documentation's order.
    fn given(&self) -> Vec<(&'static str, Span)> {
        [
            (
                "poke_interval",
                self.poke_interval.as_ref().map(|(k, _)| *k),
            ),
            ("timeout", self.timeout.as_ref().map(|(k, _)| *k)),
            ("mode", self.mode.as_ref().map(|(k, _)| *k)),
            ("soft_fail", self.soft_fail),
            ("exponential_backoff", self.exponential_backoff),
        ]
        .into_iter()
        .filter_map(|(key, span)| Some((key, span?)))
        .collect()
    }

    /// `SensorOptions::default().with_poke_interval(..)..`: Airflow's defaults where an
    /// option is not given.
    fn tokens(&self, root: &TokenStream) -> TokenStream {
        let mut tokens = quote!(#root::__private::SensorOptions::default());
        if let Some((_, interval)) = &self.poke_interval {
            let value = attr::duration_tokens(root, interval);
            tokens.extend(quote!(.with_poke_interval(#value)));
        }
        if let Some((_, timeout)) = &self.timeout {
            let value = attr::duration_tokens(root, timeout);
            tokens.extend(quote!(.with_timeout(#value)));
        }
        if let Some((_, mode)) = &self.mode {
            let variant = Ident::new(mode.variant, mode.span);
            tokens.extend(quote!(.with_mode(#root::__private::SensorMode::#variant)));
        }
        if self.soft_fail.is_some() {
            tokens.extend(quote!(.with_soft_fail(true)));
        }
        if self.exponential_backoff.is_some() {
            tokens.extend(quote!(.with_exponential_backoff(true)));
        }
        tokens
    }
}

/// `on_success = path`, `on_failure = path`, `on_retry = path`.
#[derive(Default)]
struct CallbackArgs {
    on_success: Option<syn::ExprPath>,
    on_failure: Option<syn::ExprPath>,
    on_retry: Option<syn::ExprPath>,
}

impl CallbackArgs {
    /// `.on_failure(path)`, located at the path, so that a function of the wrong
    /// signature is reported there.
    fn setters(&self) -> TokenStream {
        [
            ("on_success", &self.on_success),
            ("on_failure", &self.on_failure),
            ("on_retry", &self.on_retry),
        ]
        .into_iter()
        .filter_map(|(setter, path)| {
            let path = path.as_ref()?;
            let setter = Ident::new(setter, path.span());
            Some(quote_spanned!(path.span()=> .#setter(#path)))
        })
        .collect()
    }
}

impl Options for TaskArgs {
    const ATTRIBUTE: &'static str = "#[task]";
    const KEYS: &'static [&'static str] = attr::TASK_KEYS;
    const PLANNED: &'static [&'static str] = &["queue", "multiple_outputs"];
    const RENAMED: &'static [(&'static str, &'static str)] = &[
        ("on_success_callback", "on_success"),
        ("on_failure_callback", "on_failure"),
        ("on_retry_callback", "on_retry"),
    ];
    const ELSEWHERE: &'static [(&'static str, &'static str)] = &[(
        "bash",
        "a task that runs a command is marked `shell` and returns a `ShellCommand`: \
         write `#[task(shell)]`",
    )];

    fn parse_one(&mut self, input: ParseStream, _: &mut Errors) -> syn::Result<()> {
        if input.peek(kw::task_id) {
            let key: kw::task_id = input.parse()?;
            self.task_id = Some(attr::id(input, "task_id", key.span, "task")?);
        } else if input.peek(Token![crate]) {
            let key: Token![crate] = input.parse()?;
            self.krate = Some(attr::crate_path(input, key.span)?);
        } else if input.peek(kw::branch) {
            let key: kw::branch = input.parse()?;
            self.branch = Some(flag(input, "branch", key.span)?);
        } else if input.peek(kw::short_circuit) {
            let key: kw::short_circuit = input.parse()?;
            self.short_circuit = Some(flag(input, "short_circuit", key.span)?);
        } else if input.peek(kw::shell) {
            let key: kw::shell = input.parse()?;
            self.shell = Some(flag(input, "shell", key.span)?);
        } else if input.peek(kw::sensor) {
            let key: kw::sensor = input.parse()?;
            // Still a sensor after `sensor = true`, so that its output type is read as one.
            self.sensor = Some(key.span);
            flag(input, "sensor", key.span)?;
        } else if input.peek(kw::poke_interval) {
            let key: kw::poke_interval = input.parse()?;
            let interval = sensor_duration(input, "poke_interval", key.span, "30s", "60s")?;
            self.sensor_options.poke_interval = Some((key.span, interval));
        } else if input.peek(kw::timeout) {
            let key: kw::timeout = input.parse()?;
            let timeout = sensor_duration(input, "timeout", key.span, "1h", "7 days")?;
            self.sensor_options.timeout = Some((key.span, timeout));
        } else if input.peek(kw::mode) {
            let key: kw::mode = input.parse()?;
            let mode = attr::sensor_mode(input, "mode", key.span)?;
            self.sensor_options.mode = Some((key.span, mode));
        } else if input.peek(kw::soft_fail) {
            let key: kw::soft_fail = input.parse()?;
            self.sensor_options.soft_fail = Some(key.span);
            flag(input, "soft_fail", key.span)?;
        } else if input.peek(kw::exponential_backoff) {
            let key: kw::exponential_backoff = input.parse()?;
            self.sensor_options.exponential_backoff = Some(key.span);
            flag(input, "exponential_backoff", key.span)?;
        } else if input.peek(kw::pool_slots) {
            let key: kw::pool_slots = input.parse()?;
            let hint = " (a try takes this many slots of its pool)";
            self.pool_slots = Some(attr::count_from(input, "pool_slots", key.span, 1, hint)?);
        } else if input.peek(kw::on_success) {
            let key: kw::on_success = input.parse()?;
            self.callbacks.on_success = Some(attr::callback(input, "on_success", key.span)?);
        } else if input.peek(kw::on_failure) {
            let key: kw::on_failure = input.parse()?;
            self.callbacks.on_failure = Some(attr::callback(input, "on_failure", key.span)?);
        } else if input.peek(kw::on_retry) {
            let key: kw::on_retry = input.parse()?;
            self.callbacks.on_retry = Some(attr::callback(input, "on_retry", key.span)?);
        } else if !self.options.parse_one(input)? {
            return Err(input.error("expected an option"));
        }
        Ok(())
    }
}

/// `= "30s"`: a sensor's duration, longer than zero (`default` is Airflow's).
fn sensor_duration(
    input: ParseStream,
    key: &str,
    key_span: Span,
    example: &str,
    default: &str,
) -> syn::Result<attr::DurationLit> {
    let duration = attr::duration(input, key, key_span)?;
    if duration.value.is_zero() {
        return Err(syn::Error::new(
            duration.span,
            format!(
                "{key} must be longer than 0s: `{key} = \"{example}\"`, or leave it out for \
                 Airflow's default of {default}"
            ),
        ));
    }
    Ok(duration)
}

/// A bare flag: `branch`, not `branch = true`.
fn flag(input: ParseStream, key: &str, key_span: Span) -> syn::Result<Span> {
    if input.peek(Token![=]) {
        let eq: Token![=] = input.parse()?;
        let value: syn::Expr = input.parse()?;
        return Err(syn::Error::new_spanned(
            quote!(#eq #value),
            format!("`{key}` is a flag and takes no value: write `#[task({key})]`"),
        ));
    }
    Ok(key_span)
}

fn parse_args(args: TokenStream, errors: &mut Errors) -> TaskArgs {
    let mut args: TaskArgs = attr::parse_all(args, errors);
    check_sensor(&mut args, errors);
    if let (Some(_), Some(short_circuit)) = (args.branch, args.short_circuit) {
        errors.push(syn::Error::new(
            short_circuit,
            "a task is either `branch` (it returns the downstream tasks to follow) or \
             `short_circuit` (it returns whether to go on), not both: remove one",
        ));
        args.branch = None;
        args.short_circuit = None;
    }
    if let Some(shell) = args.shell {
        let other = match (args.branch, args.short_circuit) {
            (Some(_), _) => "branch",
            (_, Some(_)) => "short_circuit",
            _ => return args,
        };
        errors.push(syn::Error::new(
            shell,
            format!(
                "a task is either `shell` (it returns a command to run) or `{other}` (its \
                 output steers the tasks downstream), not both: remove one"
            ),
        ));
        args.branch = None;
        args.short_circuit = None;
        args.shell = None;
    }
    args
}

/// Sensor options need the `sensor` flag, and a sensor steers nothing and runs no
/// command.
fn check_sensor(args: &mut TaskArgs, errors: &mut Errors) {
    let Some(sensor) = args.sensor else {
        for (key, span) in args.sensor_options.given() {
            errors.push(syn::Error::new(
                span,
                format!(
                    "`{key}` is an option of sensors: mark the task `sensor` and return \
                     `Poke<T>`, as in `#[task(sensor, {key}{})]`",
                    match key {
                        "poke_interval" => " = \"30s\"",
                        "timeout" => " = \"1h\"",
                        "mode" => " = \"reschedule\"",
                        _ => "",
                    }
                ),
            ));
        }
        args.sensor_options = SensorArgs::default();
        return;
    };
    let other = match (args.branch, args.short_circuit, args.shell) {
        (Some(_), _, _) => "branch` (its output steers the tasks downstream",
        (_, Some(_), _) => "short_circuit` (its output steers the tasks downstream",
        (_, _, Some(_)) => "shell` (it returns a command to run",
        _ => return,
    };
    errors.push(syn::Error::new(
        sensor,
        format!(
            "a task is either `sensor` (it returns `Poke<T>`, whether its condition holds) or \
             `{other}), not both: remove one"
        ),
    ));
}

/// After a conflict between `sensor` and another kind (reported by [`check_sensor`]), the
/// kind the return type fits, so that the conflict is the only error.
fn settle_sensor_conflict(args: &mut TaskArgs, output: &Output) {
    if args.sensor.is_none()
        || (args.branch.is_none() && args.short_circuit.is_none() && args.shell.is_none())
    {
        return;
    }
    let returns_poke = match output {
        Output::Plain(ty) | Output::Result { ok: Some(ty), .. } => matches!(&**ty,
            Type::Path(path) if path.path.segments.last().is_some_and(|s| s.ident == "Poke")),
        _ => false,
    };
    if returns_poke {
        args.branch = None;
        args.short_circuit = None;
        args.shell = None;
    } else {
        args.sensor = None;
        args.sensor_options = SensorArgs::default();
    }
}

// ---------------------------------------------------------------------------------------
// Model

/// A `#[task]` function, checked.
struct Task {
    root: TokenStream,
    function: Ident,
    vis: syn::Visibility,
    cfgs: Vec<syn::Attribute>,
    name: String,
    /// The `async` keyword's span, for an async function.
    asyncness: Option<Span>,
    /// The function's parameters, in order.
    inputs: Vec<Input>,
    output: Output,
    doc: Option<String>,
    options: TaskOptionArgs,
    /// `branch` or `short_circuit` (with the flag's span): what the output means to the
    /// executor.
    special: Option<(Special, Span)>,
    /// The `shell` flag's span: the function returns a command, the runtime runs it.
    shell: Option<Span>,
    /// For a `sensor`: the function returns `Poke<T>` and the runtime pokes it.
    sensor: Option<Sensor>,
    pool_slots: Option<LitInt>,
    callbacks: CallbackArgs,
}

/// A `#[task(sensor)]`: its options, and `T` of the `Poke<T>` it returns, the task's
/// output.
struct Sensor {
    options: SensorArgs,
    ready: Box<Type>,
}

/// A task whose output steers the tasks downstream of it.
#[derive(Clone, Copy)]
enum Special {
    /// `#[task(branch)]`: returns the `Branch` to follow.
    Branch,
    /// `#[task(short_circuit)]`: returns whether to go on.
    ShortCircuit,
}

impl Special {
    fn of(args: &TaskArgs) -> Option<(Self, Span)> {
        match (args.branch, args.short_circuit) {
            (Some(flag), None) => Some((Special::Branch, flag)),
            (None, Some(flag)) => Some((Special::ShortCircuit, flag)),
            _ => None,
        }
    }

    /// Why a task of this kind needs a return type, and which.
    fn missing_output(self) -> &'static str {
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

enum Input {
    /// `&TaskContext`: given by the runtime.
    Context,
    /// A value: an upstream output or a literal.
    Value { name: Ident, ty: Box<Type> },
}

enum Output {
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
    fn new(
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
            sensor,
            pool_slots: args.pool_slots,
            callbacks: args.callbacks,
        })
    }

    fn values(&self) -> impl Iterator<Item = (&Ident, &Type)> {
        self.inputs.iter().filter_map(|input| match input {
            Input::Value { name, ty } => Some((name, &**ty)),
            Input::Context => None,
        })
    }
}

/// Whether a `shell` task's function can build a command: it is not `async` and returns
/// something.
fn check_shell(sig: &Signature, output: &Output, errors: &mut Errors) -> bool {
    let before = errors.len();
    if let Some(asyncness) = &sig.asyncness {
        errors.at(
            asyncness,
            "a shell task builds its command synchronously; remove `async` (the runtime runs \
             the command without blocking)",
        );
    }
    if let Output::Unit = output {
        let message = "a `#[task(shell)]` returns `ShellCommand`, the command to run: add \
                       `-> ShellCommand` and return `ShellCommand::bash(\"..\")`";
        match &sig.output {
            ReturnType::Default => errors.at(&sig.ident, message),
            ReturnType::Type(_, ty) => errors.at(ty, message),
        }
    }
    errors.len() == before
}

/// `T` of the `Poke<T>` (or `Result<Poke<T>, E>`) a sensor returns; an error at the
/// return type otherwise (the task is then checked as an ordinary one).
fn poked_type(sig: &Signature, output: &Output, errors: &mut Errors) -> Option<Type> {
    let message = |found: &str| {
        format!(
            "a `#[task(sensor)]` returns `Poke<T>` (or a `Result` of one): `Poke::Ready(value)` \
             when its condition holds, `Poke::NotYet` to poke again{found}"
        )
    };
    let written = match output {
        Output::Plain(ty) | Output::Result { ok: Some(ty), .. } => &**ty,
        Output::Result { written, ok: None } => {
            errors.at(written, message(""));
            return None;
        }
        Output::Unit => {
            let add = message("; add `-> Poke<T>`");
            match &sig.output {
                ReturnType::Default => errors.at(&sig.ident, add),
                ReturnType::Type(_, ty) => errors.at(ty, add),
            }
            return None;
        }
    };
    let poked = match written {
        Type::Path(path)
            if path.qself.is_none()
                && path.path.segments.last().is_some_and(|s| s.ident == "Poke") =>
        {
            first_type_argument(written)
        }
        _ => None,
    };
    if poked.is_none() {
        errors.at(written, message(&format!(", not `{}`", type_text(written))));
    }
    poked
}

/// The function's name as the task's name, if it is a valid task id.
fn default_name(sig: &Signature, errors: &mut Errors) -> String {
    let name = sig.ident.unraw().to_string();
    if let Err(reason) = attr::check_id(&name) {
        errors.at(
            &sig.ident,
            format!(
                "the function name `{name}` is not a valid task id: {reason}; \
                 set one with `#[task(task_id = \"...\")]`"
            ),
        );
    }
    name
}

/// Qualifiers and generics a task cannot have.
fn check_signature(sig: &Signature, errors: &mut Errors) {
    if let Some(constness) = &sig.constness {
        errors.at(constness, "a task cannot be a `const fn`: remove `const`");
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.at(
            unsafety,
            "a task cannot be an `unsafe fn`, the runtime calls it like any safe function: \
             remove `unsafe` and use an `unsafe { .. }` block inside",
        );
    }
    if let Some(abi) = &sig.abi {
        errors.at(abi, "a task cannot have an `extern` ABI: remove it");
    }
    if let Some(variadic) = &sig.variadic {
        errors.at(
            variadic,
            "a task cannot be variadic: give it named parameters",
        );
    }
    for param in &sig.generics.params {
        let message = match param {
            syn::GenericParam::Lifetime(_) => {
                "a task cannot have lifetime parameters: its parameters are owned values decoded \
                 from upstream outputs; take owned types (`String`, not `&'a str`)"
            }
            syn::GenericParam::Type(_) => {
                "a task cannot be generic: the runtime decodes its parameters into concrete types; \
                 use a concrete type instead of a type parameter"
            }
            syn::GenericParam::Const(_) => {
                "a task cannot have const parameters: use a concrete type, or pass the value \
                 as a parameter"
            }
        };
        errors.at(param, message);
    }
    if let Some(clause) = &sig.generics.where_clause {
        errors.at(
            clause,
            "a task cannot have a `where` clause: its parameter types must be concrete",
        );
    }
}

/// The parameters: one optional `&TaskContext`, and owned values with plain names.
fn inputs(sig: &Signature, errors: &mut Errors) -> Vec<Input> {
    let mut inputs = Vec::with_capacity(sig.inputs.len());
    let mut context_seen = false;
    for arg in &sig.inputs {
        let arg = match arg {
            FnArg::Receiver(receiver) => {
                errors.at(
                    receiver,
                    "a task cannot take `self`: a task is a free function; move it out of the \
                     `impl` block and pass what it needs as parameters",
                );
                continue;
            }
            FnArg::Typed(arg) => arg,
        };
        match input_kind(&arg.ty) {
            Kind::Context => {
                if context_seen {
                    errors.at(
                        arg,
                        "a task takes at most one `&TaskContext` parameter: remove this one",
                    );
                }
                context_seen = true;
                inputs.push(Input::Context);
            }
            Kind::Invalid(message) => errors.at(&arg.ty, message),
            Kind::Value => match &*arg.pat {
                Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => {
                    inputs.push(Input::Value {
                        name: pat.ident.clone(),
                        ty: arg.ty.clone(),
                    });
                }
                other => errors.at(
                    other,
                    "a task parameter must be a plain name, like `rows: Vec<Row>`: the name is \
                     the parameter's name in the DAG; destructure the value inside the function",
                ),
            },
        }
    }
    inputs
}

enum Kind {
    Context,
    Value,
    Invalid(String),
}

fn input_kind(ty: &Type) -> Kind {
    match ty {
        Type::Reference(reference) if names_context(&reference.elem) => {
            match reference.mutability {
                Some(_) => Kind::Invalid(
                    "the task context is shared: take `&TaskContext`, not `&mut TaskContext`"
                        .into(),
                ),
                None => Kind::Context,
            }
        }
        Type::Reference(reference) => Kind::Invalid(format!(
            "a task parameter must be an owned value (it is decoded from an upstream output \
             or a literal): take `{}` instead of a reference",
            owned_suggestion(&reference.elem)
        )),
        ty if names_context(ty) => {
            Kind::Invalid("take the task context by reference: `ctx: &TaskContext`".into())
        }
        ty if contains_impl_trait(ty) => Kind::Invalid(
            "a task parameter cannot be `impl Trait`: the runtime decodes it into one concrete \
             type; write that type"
                .into(),
        ),
        _ => Kind::Value,
    }
}

/// Whether `ty` is a path whose last segment is `TaskContext`.
fn names_context(ty: &Type) -> bool {
    match ty {
        Type::Path(path) if path.qself.is_none() => path
            .path
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "TaskContext"),
        Type::Paren(inner) => names_context(&inner.elem),
        Type::Group(inner) => names_context(&inner.elem),
        _ => false,
    }
}

/// The owned counterpart of a borrowed type, for messages: `str` -> `String`.
fn owned_suggestion(elem: &Type) -> String {
    match elem {
        Type::Path(path) if path.path.is_ident("str") => "String".into(),
        Type::Path(path) if path.path.segments.last().is_some_and(|s| s.ident == "Path") => {
            "PathBuf".into()
        }
        Type::Slice(slice) => format!("Vec<{}>", type_text(&slice.elem)),
        other => type_text(other),
    }
}

/// A type as a person would write it (`Vec<u8>`, not `Vec < u8 >`).
pub(crate) fn type_text(ty: &Type) -> String {
    let mut text = ty.to_token_stream().to_string();
    for (from, to) in [
        (" < ", "<"),
        ("< ", "<"),
        (" >", ">"),
        (" , ", ", "),
        (" :: ", "::"),
        (":: ", "::"),
        ("& ", "&"),
    ] {
        text = text.replace(from, to);
    }
    text
}

fn contains_impl_trait(ty: &Type) -> bool {
    struct Finder(bool);
    impl Visit<'_> for Finder {
        fn visit_type_impl_trait(&mut self, _: &syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut finder = Finder(false);
    finder.visit_type(ty);
    finder.0
}

fn output(output: &ReturnType, errors: &mut Errors) -> Output {
    let ty = match output {
        ReturnType::Default => return Output::Unit,
        ReturnType::Type(_, ty) => &**ty,
    };
    if matches!(ty, Type::Tuple(tuple) if tuple.elems.is_empty()) {
        return Output::Unit;
    }
    if contains_impl_trait(ty) {
        errors.at(
            ty,
            "a task cannot return `impl Trait`: its output is stored, so it needs a concrete \
             type; write that type",
        );
        return Output::Unit;
    }
    if is_result(ty) {
        Output::Result {
            written: Box::new(ty.clone()),
            ok: first_type_argument(ty).map(Box::new),
        }
    } else {
        Output::Plain(Box::new(ty.clone()))
    }
}

/// Whether `ty` is a path whose last segment is `Result`.
fn is_result(ty: &Type) -> bool {
    matches!(ty, Type::Path(path) if path.qself.is_none()
        && path.path.segments.last().is_some_and(|last| last.ident == "Result"))
}

/// The first type argument of a type (`T` of `anyhow::Result<T>`), if written.
fn first_type_argument(ty: &Type) -> Option<Type> {
    let Type::Path(path) = ty else { return None };
    match &path.path.segments.last()?.arguments {
        syn::PathArguments::AngleBracketed(args) => args.args.iter().find_map(|arg| match arg {
            syn::GenericArgument::Type(ty) => Some(ty.clone()),
            _ => None,
        }),
        _ => None,
    }
}

/// Where an unfit error type is reported: the error type if written (`Result<T, E>`),
/// else the `Result` of `anyhow::Result<T>`.
fn error_type_span(written: &Type) -> (Span, Span) {
    let Type::Path(path) = written else {
        return spans::first_last(written);
    };
    let Some(last) = path.path.segments.last() else {
        return spans::first_last(written);
    };
    let error = match &last.arguments {
        syn::PathArguments::AngleBracketed(args) => args
            .args
            .iter()
            .filter(|arg| matches!(arg, syn::GenericArgument::Type(_)))
            .nth(1),
        _ => None,
    };
    match error {
        Some(error) => spans::first_last(error),
        None => (last.ident.span(), last.ident.span()),
    }
}

/// The `#[cfg]`s of the function, repeated on everything generated beside it.
pub(crate) fn cfg_attributes(attrs: &[syn::Attribute]) -> Vec<syn::Attribute> {
    attrs
        .iter()
        .filter(|attr| attr.path().is_ident("cfg"))
        .cloned()
        .collect()
}

/// The text of the `///` comments, without the one space after `///`.
pub(crate) fn doc_text(attrs: &[syn::Attribute]) -> Option<String> {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|attr| attr.path().is_ident("doc"))
        .filter_map(|attr| match &attr.meta {
            syn::Meta::NameValue(syn::MetaNameValue {
                value:
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(text),
                        ..
                    }),
                ..
            }) => Some(text.value()),
            _ => None,
        })
        // `split`, not `lines`: an empty `///` line is an empty string, and a paragraph break.
        .flat_map(|text| {
            text.split('\n')
                .map(|line| line.trim_end_matches('\r').to_owned())
                .collect::<Vec<_>>()
        })
        .map(|line| line.strip_prefix(' ').map(str::to_owned).unwrap_or(line))
        .collect();
    let text = lines.join("\n").trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// The tokens to point at when an attribute is on the wrong kind of item: its keyword and
/// name (not its attributes or body).
pub(crate) fn item_head(item: &Item) -> TokenStream {
    match item {
        Item::Struct(s) => pair(s.struct_token, &s.ident),
        Item::Enum(e) => pair(e.enum_token, &e.ident),
        Item::Union(u) => pair(u.union_token, &u.ident),
        Item::Trait(t) => pair(t.trait_token, &t.ident),
        Item::Mod(m) => pair(m.mod_token, &m.ident),
        Item::Const(c) => pair(c.const_token, &c.ident),
        Item::Static(s) => pair(s.static_token, &s.ident),
        Item::Type(t) => pair(t.type_token, &t.ident),
        Item::Impl(i) => pair(i.impl_token, &i.self_ty),
        Item::Use(u) => pair(u.use_token, &u.tree),
        other => other.to_token_stream(),
    }
}

fn pair(first: impl ToTokens, second: impl ToTokens) -> TokenStream {
    quote!(#first #second)
}

// ---------------------------------------------------------------------------------------
// Code generation

impl ToTokens for Task {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        let Task {
            root,
            function,
            vis,
            cfgs,
            name,
            ..
        } = self;
        let struct_doc = format!(
            "The task `{name}` (generated by `#[task]`): `{function}::node` adds it to a \
             `DagBuilder`, `{function}::spec` describes it."
        );
        let node = self.node();
        let call = self.call();
        let spec = self.spec();
        let (partial, mapping) = self.mapping();
        tokens.extend(quote! {
            #(#cfgs)*
            #[doc = #struct_doc]
            #[allow(non_camel_case_types, dead_code)]
            #vis struct #function {}

            #(#cfgs)*
            #[allow(dead_code)]
            impl #function {
                #node
                #call
                #partial
                #spec
            }

            #(#cfgs)*
            #mapping

            #(#cfgs)*
            #root::__private::inventory::submit! {
                #root::__private::TaskRegistration {
                    name: #name,
                    module: ::core::module_path!(),
                    spec: #function::spec,
                }
            }
        });
    }
}

/// The type of the stored output.
fn output_type(root: &TokenStream, output: &Output) -> TokenStream {
    match output {
        Output::Unit => quote!(()),
        Output::Plain(ty) | Output::Result { ok: Some(ty), .. } => ty.to_token_stream(),
        Output::Result { written, ok: None } => {
            quote!(<#written as #root::__private::TaskReturn>::Output)
        }
    }
}

/// How many arguments a DAG passes to the function: its parameters but `self` and the
/// context (even a wrongly written one).
fn value_arity(sig: &Signature) -> usize {
    sig.inputs
        .iter()
        .filter(|arg| match arg {
            FnArg::Typed(arg) => {
                !(names_context(&arg.ty)
                    || matches!(&*arg.ty, Type::Reference(r) if names_context(&r.elem)))
            }
            FnArg::Receiver(_) => false,
        })
        .count()
}

/// What stands in for the descriptor of a function that cannot be a task: a
/// `__flow_call` taking as many arguments as the function, so that a DAG calling the
/// task reports nothing beyond the task's own errors.
struct Stub {
    root: TokenStream,
    function: Ident,
    vis: syn::Visibility,
    cfgs: Vec<syn::Attribute>,
    arity: usize,
    output: TokenStream,
}

impl ToTokens for Stub {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        let Stub {
            root,
            function,
            vis,
            cfgs,
            arity,
            output,
        } = self;
        let params = (0..*arity).map(|_| quote!(_: impl ::core::marker::Sized));
        tokens.extend(quote! {
            #(#cfgs)*
            #[doc(hidden)]
            #[allow(non_camel_case_types, dead_code)]
            #vis struct #function {}

            #(#cfgs)*
            #[allow(dead_code, clippy::too_many_arguments)]
            impl #function {
                #[doc(hidden)]
                #vis fn __flow_call(#(#params),*)
                    -> #root::__private::Box<dyn ::core::ops::FnOnce(&mut #root::__private::DagBuilder) -> #root::__private::Node<#output>>
                {
                    ::core::unreachable!("the task `{}` does not compile", ::core::stringify!(#function))
                }
            }
        });
    }
}

impl Task {
    /// The type of the stored output: a shell task's is the last line its command prints.
    fn output_type(&self) -> TokenStream {
        if self.shell.is_some() {
            return quote!(::std::string::String);
        }
        if let Some(sensor) = &self.sensor {
            return sensor.ready.to_token_stream();
        }
        output_type(&self.root, &self.output)
    }

    /// `name: impl IntoInput<Ty>`, located at the user's `Ty`: a mismatched argument's
    /// error then notes "required by this bound" at the task's own parameter.
    fn param_decl(&self, name: &Ident, ty: &Type) -> TokenStream {
        let (first, last) = spans::first_last(ty);
        let root = spans::respan(self.root.clone(), first);
        let open = quote_spanned!(first=> impl #root::__private::IntoInput<);
        let close = quote_spanned!(last=> >);
        quote!(#name: #open #ty #close)
    }

    /// `fn node(dag, args..) -> Node<Out>`: the public way to add the task to a DAG.
    fn node(&self) -> TokenStream {
        let root = &self.root;
        let vis = &self.vis;
        let dag = Ident::new("__flow_dag", Span::mixed_site());
        let task = Ident::new("__flow_task", Span::mixed_site());
        // Located at the function's name, so notes about `node` show the user's function.
        let node = Ident::new("node", self.function.span());
        let out = self.output_type();
        let params = self.values().map(|(name, ty)| self.param_decl(name, ty));
        let body = if self.values().next().is_none() {
            quote!(#dag.add_task(Self::spec()).finish())
        } else {
            let inputs = self
                .values()
                .map(|(name, ty)| quote!(#task.input::<#ty>(#name);));
            quote! {
                let mut #task = #dag.add_task(Self::spec());
                #(#inputs)*
                #task.finish()
            }
        };
        let doc = format!(
            "Adds the task `{}` to a `DagBuilder`. Each argument is either a value or the \
             output of an upstream task (a `Node` of the parameter's type); returns the \
             task's output.",
            self.name
        );
        quote! {
            #[doc = #doc]
            #[allow(clippy::too_many_arguments)]
            #vis fn #node(#dag: &mut #root::__private::DagBuilder, #(#params),*) -> #root::__private::Node<#out> {
                #body
            }
        }
    }

    /// `fn __flow_call(args..) -> Box<dyn FnOnce(&mut DagBuilder) -> Node<Out>>`: what
    /// `#[dag]` calls, `node` with the builder applied last. The compiler then counts a
    /// call's arguments as the user wrote them, and a task call nested in another's
    /// arguments takes the builder before the outer one does. (A boxed closure rather than
    /// an `impl FnOnce`, whose type would carry the argument types and have the compiler
    /// report a mismatched argument twice.)
    fn call(&self) -> TokenStream {
        let root = &self.root;
        let vis = &self.vis;
        let dag = Ident::new("__flow_dag", Span::mixed_site());
        let call = Ident::new("__flow_call", self.function.span());
        // Located at the user's tokens, so notes about `__flow_call` show the function.
        let located =
            |span: Span| syn::Lifetime::new("'__flow", Span::mixed_site().located_at(span));
        let lifetime = located(self.function.span());
        let out = self.output_type();
        let params = self.values().map(|(name, ty)| {
            let param = self.param_decl(name, ty);
            let (_, last) = spans::first_last(ty);
            let bound = located(last);
            let plus = quote_spanned!(last=> +);
            quote!(#param #plus #bound)
        });
        let names = self.values().map(|(name, _)| name);
        quote! {
            #[doc(hidden)]
            #[allow(clippy::too_many_arguments)]
            #vis fn #call<#lifetime>(#(#params),*)
                -> #root::__private::Box<dyn ::core::ops::FnOnce(&mut #root::__private::DagBuilder) -> #root::__private::Node<#out> + #lifetime>
            {
                #root::__private::Box::new(move |#dag: &mut #root::__private::DagBuilder| Self::node(#dag, #(#names),*))
            }
        }
    }

    /// Dynamic task mapping: `fn __flow_partial()` on the task, and two argument
    /// collectors with a method per parameter, named as the parameter: on the first
    /// (`.partial(a = 1)`) each takes one value, on the second (`.expand(b = list)`) a
    /// list. A wrong name is then a missing method, and a list of the wrong type an unmet
    /// `IntoMapped` bound, both at the user's tokens.
    fn mapping(&self) -> (TokenStream, TokenStream) {
        let root = &self.root;
        let vis = &self.vis;
        let function = &self.function;
        let out = self.output_type();
        let partial = format_ident!(
            "__flow_partial_{}",
            function.unraw(),
            span = Span::mixed_site()
        );
        let expand = format_ident!(
            "__flow_expand_{}",
            function.unraw(),
            span = Span::mixed_site()
        );
        let count = self.values().count();
        let fixed = self.values().enumerate().map(|(position, (name, ty))| {
            let param = self.param_decl(name, ty);
            quote! {
                #vis fn #name(mut self, #param) -> Self {
                    self.0.fixed(#position, #root::__private::IntoInput::<#ty>::into_input(#name));
                    self
                }
            }
        });
        let mapped = self.values().enumerate().map(|(position, (name, ty))| {
            let (first, last) = spans::first_last(ty);
            let bound_root = spans::respan(root.clone(), first);
            let open = quote_spanned!(first=> impl #bound_root::__private::IntoMapped<);
            let close = quote_spanned!(last=> >);
            quote! {
                #vis fn #name(mut self, #name: #open #ty #close) -> Self {
                    self.0.mapped(#position, #root::__private::IntoMapped::<#ty>::into_mapped(#name));
                    self
                }
            }
        });
        let doc = "Arguments of a mapped call of the task (generated by `#[task]`).";
        let on_task = quote! {
            #[doc(hidden)]
            #vis fn __flow_partial() -> #partial {
                #partial(#root::__private::MapCall::new(#count))
            }
        };
        let types = quote! {
            #[doc = #doc]
            #[doc(hidden)]
            #[allow(non_camel_case_types)]
            #vis struct #partial(#root::__private::MapCall);

            #[doc = #doc]
            #[doc(hidden)]
            #[allow(non_camel_case_types)]
            #vis struct #expand(#root::__private::MapCall);

            #[allow(dead_code, clippy::wrong_self_convention)]
            impl #partial {
                #(#fixed)*
                #vis fn __flow_expand(self) -> #expand {
                    #expand(self.0)
                }
            }

            #[allow(dead_code)]
            impl #expand {
                #(#mapped)*
                #vis fn __flow_finish(self, dag: &mut #root::__private::DagBuilder) -> #root::__private::MappedNode<#out> {
                    self.0.finish(dag, #function::spec(), #root::__private::MapMode::Product)
                }
                #vis fn __flow_finish_zip(self, dag: &mut #root::__private::DagBuilder) -> #root::__private::MappedNode<#out> {
                    self.0.finish(dag, #function::spec(), #root::__private::MapMode::Zip)
                }
            }
        };
        (on_task, types)
    }

    /// `fn spec() -> TaskSpec`.
    fn spec(&self) -> TokenStream {
        let root = &self.root;
        let vis = &self.vis;
        let name = &self.name;
        let out = self.output_type();
        let checks = self.checks();
        let special_check = self.special_check();
        let special = self.special.map(|(special, _)| match special {
            Special::Branch => quote!(.branch()),
            Special::ShortCircuit => quote!(.short_circuit()),
        });
        let function = self.task_fn();
        let params = self.values().map(|(param, ty)| {
            let param = param.unraw().to_string();
            quote!(.param::<#ty>(#param))
        });
        let setters = self.options.spec_setters(root, self.pool_slots.as_ref());
        let callbacks = self.callbacks.setters();
        let doc = self.doc.as_ref().map(|doc| quote!(.doc(#doc)));
        let spec_doc = format!(
            "The definition of the task `{name}`: its name, typed parameters and output, \
             options, and the function the runtime calls."
        );
        let (shell_helpers, new) = match (self.shell, &self.sensor) {
            (Some(flag), _) => (
                Some(self.shell_helpers(flag)),
                quote!(#root::__private::TaskSpec::from_shell(#name, #function)),
            ),
            (None, Some(sensor)) => {
                let options = sensor.options.tokens(root);
                let constructor = if self.asyncness.is_some() {
                    quote!(async_sensor)
                } else {
                    quote!(sensor)
                };
                (
                    None,
                    quote!(#root::__private::TaskSpec::#constructor(#name, #options, #function)),
                )
            }
            (None, None) => (
                None,
                quote!(#root::__private::TaskSpec::new::<#out>(#name, #function)),
            ),
        };
        quote! {
            #[doc = #spec_doc]
            #[must_use]
            #vis fn spec() -> #root::__private::TaskSpec {
                #shell_helpers
                #(#checks)*
                #special_check
                #new
                    #(#params)*
                    #setters
                    #special
                    #callbacks
                    #doc
            }
        }
    }

    /// `assert_xcom_value::<Ty>()` for each parameter and the output, at the user's
    /// tokens. The code after them repeats the same tokens, so the compiler reports an
    /// unfit type once (per missing trait), at the type.
    fn checks(&self) -> Vec<TokenStream> {
        let root = &self.root;
        let check = |ty: &dyn ToTokens, at: Span| quote_spanned!(at=> #root::__private::assert_xcom_value::<#ty>(););
        let mut checks: Vec<TokenStream> =
            self.values().map(|(_, ty)| check(ty, ty.span())).collect();
        if let Some((ty, at)) = self.stored_output().filter(|_| self.shell.is_none()) {
            checks.push(check(&ty, at));
        }
        checks
    }

    /// For a `shell` task, the function that turns what the user's function returns into
    /// a `ShellCommand`; it takes only a `ShellCommand`, and says so at the return type.
    fn shell_helpers(&self, flag: Span) -> TokenStream {
        let root = &self.root;
        let output = Ident::new("__FlowShellOutput", flag);
        let command = Ident::new("__flow_shell_command", flag);
        spans::respan(
            quote! {
                #[diagnostic::on_unimplemented(
                    message = "a `#[task(shell)]` returns `ShellCommand`, not `{Self}`",
                    label = "this is not a `ShellCommand`",
                    note = "a shell task returns the command to run, `ShellCommand::bash(\"..\")`, \
                            or a `Result` of a `ShellCommand`; its output is the last line the \
                            command prints"
                )]
                trait #output {
                    fn __flow_into_command(self) -> #root::__private::ShellCommand;
                }
                impl #output for #root::__private::ShellCommand {
                    fn __flow_into_command(self) -> #root::__private::ShellCommand {
                        self
                    }
                }
                fn #command<T: #output>(value: T) -> #root::__private::ShellCommand {
                    value.__flow_into_command()
                }
            },
            flag,
        )
    }

    /// The stored output's type and where to report it: the `Ok` type of a `Result`, or
    /// the written type. `None` for a task that returns nothing.
    fn stored_output(&self) -> Option<(TokenStream, Span)> {
        if let Some(sensor) = &self.sensor {
            return Some((sensor.ready.to_token_stream(), sensor.ready.span()));
        }
        match &self.output {
            Output::Unit => None,
            Output::Plain(ty) | Output::Result { ok: Some(ty), .. } => {
                Some((ty.to_token_stream(), ty.span()))
            }
            Output::Result { written, ok: None } => Some((self.output_type(), written.span())),
        }
    }

    /// For a `branch` (`short_circuit`) task, a check that its output is a `Branch`
    /// (`bool`), reported at the return type with a message that says so.
    fn special_check(&self) -> Option<TokenStream> {
        let root = &self.root;
        let (ty, at) = self.stored_output()?;
        let (special, flag) = self.special?;
        let (expected, message, label, note) = match special {
            Special::Branch => (
                quote!(#root::__private::Branch),
                "a `#[task(branch)]` returns `Branch`, not `{Self}`",
                "this is not a `Branch`",
                "a branch task returns the downstream tasks to follow, `Branch::to(\"task_id\")`, \
                 or a `Result` of a `Branch`",
            ),
            Special::ShortCircuit => (
                quote!(::core::primitive::bool),
                "a `#[task(short_circuit)]` returns `bool`, not `{Self}`",
                "this is not a `bool`",
                "a short-circuit task returns `true` to go on or `false` to skip every task \
                 downstream, or a `Result` of a `bool`",
            ),
        };
        // The helpers are located at the flag, where the compiler's "required by this
        // bound" note then points; the call is located at the return type.
        let output = match special {
            Special::Branch => Ident::new("__FlowBranchOutput", flag),
            Special::ShortCircuit => Ident::new("__FlowShortCircuitOutput", flag),
        };
        let assert = Ident::new("__flow_assert_output", flag);
        let helpers = spans::respan(
            quote! {
                #[diagnostic::on_unimplemented(message = #message, label = #label, note = #note)]
                trait #output {}
                impl #output for #expected {}
                fn #assert<T: #output>() {}
            },
            flag,
        );
        let call = quote_spanned!(at=> #assert::<#ty>(););
        // A block, so that its items come before any statement (`items_after_statements`).
        Some(quote!({ #helpers #call }))
    }

    /// The `TaskFn`: a closure that decodes the inputs, calls the user's function (with
    /// the context where it takes one) and encodes its output.
    fn task_fn(&self) -> TokenStream {
        let root = &self.root;
        let ctx = Ident::new("__flow_ctx", Span::mixed_site());
        let inputs = Ident::new("__flow_inputs", Span::mixed_site());
        let arg = |index: usize| format_ident!("__flow_arg_{}", index, span = Span::mixed_site());
        let decode = self.values().enumerate().map(|(index, (_, ty))| {
            let arg = arg(index);
            quote!(let #arg = #inputs.get::<#ty>(#index)?;)
        });
        let mut values = 0..;
        let call_args = self.inputs.iter().map(|input| match input {
            Input::Context if self.asyncness.is_some() => quote!(&#ctx),
            Input::Context => quote!(#ctx),
            Input::Value { .. } => {
                let arg = arg(values.next().unwrap_or_default());
                quote!(#arg)
            }
        });
        let function = &self.function;
        let mut call = quote!(#function(#(#call_args),*));
        if self.asyncness.is_some() {
            call.extend(quote!(.await));
        }
        let finish = self.finish(&call);
        let result = match &self.sensor {
            // What `TaskSpec::sensor` and `async_sensor` take: one poke's answer.
            Some(sensor) => {
                let ready = &sensor.ready;
                quote!(#root::__private::Result<#root::__private::Poke<#ready>, #root::__private::TaskError>)
            }
            None => {
                quote!(#root::__private::Result<#root::__private::XComBlob, #root::__private::TaskError>)
            }
        };
        if self.shell.is_some() {
            // What `TaskSpec::from_shell` takes: builds the command, which the runtime runs.
            let command = quote!(#root::__private::Result<#root::__private::ShellCommand, #root::__private::TaskError>);
            return quote! {
                |#ctx: &#root::__private::TaskContext, #inputs: #root::__private::Inputs| -> #command {
                    #(#decode)*
                    #finish
                }
            };
        }
        if let Some(span) = self.asyncness {
            // The async block is located at the user's `async`, where "future cannot be
            // sent between threads safely" then points.
            let async_move = quote_spanned!(span=> async move);
            let mut body = Group::new(Delimiter::Brace, quote!(#(#decode)* #finish));
            body.set_span(span);
            let pin = spans::respan(quote!(#root::__private::Box::pin), span);
            let mut pinned = Group::new(Delimiter::Parenthesis, quote!(#async_move #body));
            pinned.set_span(span);
            let closure = quote! {
                |#ctx: #root::__private::TaskContext, #inputs: #root::__private::Inputs| -> #root::__private::BoxFuture<#result> {
                    #pin #pinned
                }
            };
            if self.sensor.is_some() {
                return closure;
            }
            quote!(#root::__private::TaskFn::Async(#root::__private::Arc::new(#closure)))
        } else if self.sensor.is_some() {
            // Poked again and again, so it borrows its inputs.
            quote! {
                |#ctx: &#root::__private::TaskContext, #inputs: &#root::__private::Inputs| -> #result {
                    #(#decode)*
                    #finish
                }
            }
        } else {
            quote! {
                #root::__private::TaskFn::Sync(#root::__private::Arc::new(
                    |#ctx: &#root::__private::TaskContext, #inputs: #root::__private::Inputs| -> #result {
                        #(#decode)*
                        #finish
                    },
                ))
            }
        }
    }

    /// Calls the function and encodes what it returns: a value as is, a `Result` split
    /// into output or error.
    fn finish(&self, call: &TokenStream) -> TokenStream {
        let root = &self.root;
        let value = Ident::new("__flow_value", Span::mixed_site());
        match &self.output {
            Output::Unit => quote! {
                #call;
                #root::__private::encode_output::<()>(())
            },
            Output::Plain(ty) if self.shell.is_some() || self.sensor.is_some() => {
                let tail = self.tail(&value, ty);
                quote! {
                    let #value: #ty = #call;
                    #tail
                }
            }
            Output::Plain(ty) => quote! {
                #root::__private::encode_output::<#ty>(#call)
            },
            Output::Result {
                written,
                ok: Some(ok),
            } => {
                // A match rather than `TaskReturn`, so that an unfit `Ok` type is reported
                // once, at the type, and an unfit error type at the error type.
                let ok_value = Ident::new("__flow_ok", Span::mixed_site());
                let error = Ident::new("__flow_error", Span::mixed_site());
                let (first, last) = error_type_span(written);
                let located_error = spans::located_field(&error, first, last);
                let from_error =
                    spans::respan(quote!(#root::__private::TaskError::from_error), first);
                let tail = self.tail(&value, ok);
                quote! {
                    let #value: #ok = match #call {
                        ::core::result::Result::Ok(#ok_value) => #ok_value,
                        ::core::result::Result::Err(#error) => {
                            let #error = (#error,);
                            return ::core::result::Result::Err(#from_error(#located_error));
                        }
                    };
                    #tail
                }
            }
            Output::Result { written, ok: None } => {
                let out = output_type(root, &self.output);
                let tail = self.tail(&value, &out);
                quote! {
                    let #value = <#written as #root::__private::TaskReturn>::into_task_result(#call)?;
                    #tail
                }
            }
        }
    }
}

impl Task {
    /// What the task function does with the value the user's function gave, of type `ty`:
    /// encodes it as the output, or, for a shell task, returns it as the command to run
    /// (checked at the user's type).
    fn tail(&self, value: &Ident, ty: &impl ToTokens) -> TokenStream {
        let root = &self.root;
        if self.sensor.is_some() {
            // The poke's answer, which the runtime reads.
            return quote!(::core::result::Result::Ok(#value));
        }
        match self.shell {
            Some(flag) => {
                let command = Ident::new("__flow_shell_command", flag);
                let (first, last) = spans::first_last(ty);
                let call = quote_spanned!(first=> #command::<#ty>);
                let mut args = Group::new(Delimiter::Parenthesis, value.to_token_stream());
                args.set_span(last);
                quote!(::core::result::Result::Ok(#call #args))
            }
            None => quote!(#root::__private::encode_output::<#ty>(#value)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn expand_str(args: TokenStream, item: TokenStream) -> String {
        expand(args, item).to_string()
    }

    #[test]
    fn result_types_are_recognised_by_their_last_segment() {
        for ty in [
            parse_quote!(Result<u32, String>),
            parse_quote!(anyhow::Result<u32>),
            parse_quote!(std::io::Result<u32>),
            parse_quote!(std::fmt::Result),
        ] {
            assert!(is_result(&ty), "{}", type_text(&ty));
        }
        let plain: Type = parse_quote!(Outcome<u32>);
        assert!(!is_result(&plain));
        let ok = first_type_argument(&parse_quote!(anyhow::Result<Vec<u8>>)).unwrap();
        assert_eq!(type_text(&ok), "Vec<u8>");
        assert!(first_type_argument(&parse_quote!(std::fmt::Result)).is_none());
    }

    #[test]
    fn borrowed_parameters_get_an_owned_suggestion() {
        assert_eq!(owned_suggestion(&parse_quote!(str)), "String");
        assert_eq!(owned_suggestion(&parse_quote!([u8])), "Vec<u8>");
        assert_eq!(owned_suggestion(&parse_quote!(std::path::Path)), "PathBuf");
        assert_eq!(owned_suggestion(&parse_quote!(Rows)), "Rows");
    }

    #[test]
    fn docs_keep_their_paragraphs() {
        let attrs: Vec<syn::Attribute> = vec![
            parse_quote!(#[doc = " Loads rows."]),
            parse_quote!(#[doc = ""]),
            parse_quote!(#[doc = " From the source."]),
            parse_quote!(#[inline]),
        ];
        assert_eq!(doc_text(&attrs).unwrap(), "Loads rows.\n\nFrom the source.");
        assert_eq!(doc_text(&[]), None);
    }

    #[test]
    fn the_function_is_kept_and_the_descriptor_added() {
        let out = expand_str(
            quote!(retries = 2, retry_delay = "5m"),
            quote!(
                async fn load(ctx: &TaskContext, source: String) -> anyhow::Result<Rows> {
                    unreachable!()
                }
            ),
        );
        assert!(
            out.starts_with("async fn load (ctx : & TaskContext , source : String)"),
            "{out}"
        );
        assert!(out.contains("struct load { }"), "{out}");
        assert!(out.contains("fn node (__flow_dag : & mut :: flow_runtime :: __private :: DagBuilder , source : impl :: flow_runtime :: __private :: IntoInput < String >)"), "{out}");
        assert!(
            out.contains("TaskSpec :: new :: < Rows > (\"load\""),
            "{out}"
        );
        assert!(
            out.contains("load (& __flow_ctx , __flow_arg_0) . await"),
            "{out}"
        );
        assert!(
            out.contains(". param :: < String > (\"source\") . retries (2) . retry_delay"),
            "{out}"
        );
        assert!(out.contains("TaskRegistration"), "{out}");
        assert!(!out.contains("compile_error"), "{out}");
    }

    #[test]
    fn branch_and_short_circuit_mark_the_spec_and_check_the_output() {
        let out = expand_str(
            quote!(branch),
            quote!(
                fn choose(x: u32) -> anyhow::Result<Branch> {
                    unreachable!()
                }
            ),
        );
        assert!(out.contains(". branch ()"), "{out}");
        assert!(out.contains("trait __FlowBranchOutput"), "{out}");
        assert!(
            out.contains("__flow_assert_output :: < Branch > ()"),
            "{out}"
        );
        assert!(!out.contains("compile_error"), "{out}");

        let out = expand_str(
            quote!(short_circuit),
            quote!(
                fn go() -> bool {
                    true
                }
            ),
        );
        assert!(out.contains(". short_circuit ()"), "{out}");
        assert!(
            out.contains("impl __FlowShortCircuitOutput for :: core :: primitive :: bool"),
            "{out}"
        );

        let out = expand_str(
            quote!(branch, short_circuit),
            quote!(
                fn go() -> bool {
                    true
                }
            ),
        );
        assert_eq!(out.matches("compile_error").count(), 1, "{out}");
        assert!(
            !out.contains(". branch ()") && !out.contains(". short_circuit ()"),
            "{out}"
        );

        let out = expand_str(
            quote!(branch),
            quote!(
                fn go() {}
            ),
        );
        assert!(out.contains("add `-> Branch`"), "{out}");
        assert!(!out.contains(". branch ()"), "{out}");
    }

    #[test]
    fn shell_tasks_build_a_command_the_runtime_runs() {
        let out = expand_str(
            quote!(shell, pool_slots = 2, on_failure = alerts::page),
            quote!(
                fn greet(name: String) -> ShellCommand {
                    unreachable!()
                }
            ),
        );
        assert!(!out.contains("compile_error"), "{out}");
        assert!(
            out.contains(":: flow_runtime :: __private :: TaskSpec :: from_shell (\"greet\""),
            "{out}"
        );
        assert!(
            out.contains("-> :: flow_runtime :: __private :: Node < :: std :: string :: String >"),
            "{out}"
        );
        assert!(
            out.contains("__flow_shell_command :: < ShellCommand > (__flow_value)"),
            "{out}"
        );
        assert!(
            out.contains(". pool (:: flow_runtime :: __private :: DEFAULT_POOL , 2) . on_failure (alerts :: page)"),
            "{out}"
        );

        for (args, item, message) in [
            (
                quote!(shell),
                quote!(
                    async fn greet() -> ShellCommand {
                        unreachable!()
                    }
                ),
                "remove `async`",
            ),
            (
                quote!(shell),
                quote!(
                    fn greet() {}
                ),
                "add `-> ShellCommand`",
            ),
            (
                quote!(shell, short_circuit),
                quote!(
                    fn greet() -> bool {
                        true
                    }
                ),
                "either `shell`",
            ),
        ] {
            let out = expand_str(args, item);
            assert_eq!(out.matches("compile_error").count(), 1, "{out}");
            assert!(out.contains(message), "{out}");
        }
    }

    #[test]
    fn a_broken_signature_leaves_the_function_alone() {
        let item = quote!(
            fn pair((a, b): (u8, u8), text: &str) -> u8 {
                a + b
            }
        );
        let out = expand_str(quote!(retires = 1), item.clone());
        assert!(out.starts_with(&item.to_string()), "{out}");
        assert!(!out.contains("fn spec"), "{out}");
        assert!(out.contains("fn __flow_call (_ : impl :: core :: marker :: Sized , _ : impl :: core :: marker :: Sized)"), "{out}");
        assert_eq!(out.matches("compile_error").count(), 3, "{out}");
        let generic = expand_str(
            quote!(),
            quote!(
                fn id<T>(x: T) -> T {
                    x
                }
            ),
        );
        assert!(
            !generic.contains("struct id"),
            "no stand-in for generics: {generic}"
        );
    }
}

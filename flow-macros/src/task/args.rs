//! The options of `#[task(..)]`, read into typed values, and the rules between them.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::parse::ParseStream;
use syn::spanned::Spanned;
use syn::{Ident, LitBool, LitInt, LitStr, Token};

use super::model::{Runs, RunsKind};
use crate::attr::{self, Options, TaskOptionArgs, kw};
use crate::error::Errors;

/// The options of `#[task(..)]`.
#[derive(Default)]
pub(super) struct TaskArgs {
    pub(super) krate: Option<syn::Path>,
    pub(super) task_id: Option<LitStr>,
    pub(super) options: TaskOptionArgs,
    /// The `branch` flag.
    pub(super) branch: Option<Span>,
    /// The `short_circuit` flag.
    pub(super) short_circuit: Option<Span>,
    /// `ignore_downstream_trigger_rules = ..` of a short-circuit task, with the key's span.
    pub(super) ignore_downstream_trigger_rules: Option<(Span, LitBool)>,
    /// The `shell` or `container` flag.
    pub(super) runs: Option<Runs>,
    /// The `sensor` flag.
    pub(super) sensor: Option<Span>,
    /// The `multiple_outputs` flag.
    pub(super) multiple_outputs: Option<Span>,
    /// The `setup` flag.
    pub(super) setup: Option<Span>,
    /// The `teardown` flag.
    pub(super) teardown: Option<Span>,
    /// `on_failure_fail_dagrun = ..` of a teardown task, with the key's span.
    pub(super) on_failure_fail_dagrun: Option<(Span, LitBool)>,
    pub(super) sensor_options: SensorArgs,
    pub(super) pool_slots: Option<LitInt>,
    pub(super) callbacks: CallbackArgs,
    /// `retry_policy = path` of a `fn() -> RetryPolicy`.
    pub(super) retry_policy: Option<syn::ExprPath>,
    /// `outlets = [ASSET, ..]`: the assets the task updates.
    pub(super) outlets: Option<Vec<syn::Expr>>,
}

/// The options of a `sensor` task, each with its key's span.
#[derive(Default)]
pub(super) struct SensorArgs {
    pub(super) poke_interval: Option<(Span, attr::DurationLit)>,
    pub(super) timeout: Option<(Span, attr::DurationLit)>,
    pub(super) mode: Option<(Span, attr::SensorModeLit)>,
    pub(super) soft_fail: Option<Span>,
    pub(super) exponential_backoff: Option<Span>,
}

impl SensorArgs {
    /// The keys of the options given, with their spans, in the documentation's order.
    pub(super) fn given(&self) -> Vec<(&'static str, Span)> {
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
    pub(super) fn tokens(&self, root: &TokenStream) -> TokenStream {
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
pub(super) struct CallbackArgs {
    pub(super) on_success: Option<syn::ExprPath>,
    pub(super) on_failure: Option<syn::ExprPath>,
    pub(super) on_retry: Option<syn::ExprPath>,
}

impl CallbackArgs {
    /// `.on_failure(path)`, located at the path, so that a function of the wrong
    /// signature is reported there.
    pub(super) fn setters(&self) -> TokenStream {
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
    const PLANNED: &'static [&'static str] = &["queue"];
    const RENAMED: &'static [(&'static str, &'static str)] = &[
        ("on_success_callback", "on_success"),
        ("on_failure_callback", "on_failure"),
        ("on_retry_callback", "on_retry"),
    ];
    const ELSEWHERE: &'static [(&'static str, &'static str)] = &[
        (
            "bash",
            "a task that runs a command is marked `shell` and returns a `ShellCommand`: \
             write `#[task(shell)]`",
        ),
        (
            "docker",
            "a task that runs a container is marked `container` and returns a \
             `ContainerSpec`: write `#[task(container)]`",
        ),
    ];

    fn parse_one(&mut self, input: ParseStream, errors: &mut Errors) -> syn::Result<()> {
        if input.peek(kw::task_id) {
            let key: kw::task_id = input.parse()?;
            self.task_id = Some(attr::id(input, "task_id", key.span, "task")?);
        } else if input.peek(Token![crate]) {
            let key: Token![crate] = input.parse()?;
            self.krate = Some(attr::crate_path(input, key.span)?);
        } else if input.peek(kw::branch) {
            let key: kw::branch = input.parse()?;
            self.branch = Some(flag(input, "branch", key.span)?);
        } else if input.peek(kw::multiple_outputs) {
            let key: kw::multiple_outputs = input.parse()?;
            self.multiple_outputs = Some(flag(input, "multiple_outputs", key.span)?);
        } else if input.peek(kw::short_circuit) {
            let key: kw::short_circuit = input.parse()?;
            self.short_circuit = Some(flag(input, "short_circuit", key.span)?);
        } else if input.peek(kw::ignore_downstream_trigger_rules) {
            let key: kw::ignore_downstream_trigger_rules = input.parse()?;
            let key_name = "ignore_downstream_trigger_rules";
            let value = attr::boolean(input, key_name, key.span, false)?;
            self.ignore_downstream_trigger_rules = Some((key.span, value));
        } else if input.peek(kw::setup) {
            let key: kw::setup = input.parse()?;
            self.setup = Some(flag(input, "setup", key.span)?);
        } else if input.peek(kw::teardown) {
            let key: kw::teardown = input.parse()?;
            self.teardown = Some(flag(input, "teardown", key.span)?);
        } else if input.peek(kw::on_failure_fail_dagrun) {
            let key: kw::on_failure_fail_dagrun = input.parse()?;
            let value = attr::boolean(input, "on_failure_fail_dagrun", key.span, true)?;
            self.on_failure_fail_dagrun = Some((key.span, value));
        } else if input.peek(kw::shell) {
            let key: kw::shell = input.parse()?;
            self.set_runs(RunsKind::Shell, flag(input, "shell", key.span)?, errors);
        } else if input.peek(kw::container) {
            let key: kw::container = input.parse()?;
            self.set_runs(
                RunsKind::Container,
                flag(input, "container", key.span)?,
                errors,
            );
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
        } else if input.peek(kw::outlets) {
            let key: kw::outlets = input.parse()?;
            let example =
                "`outlets = [ORDERS]`, where `const ORDERS: Asset = Asset::new(\"s3://..\")`";
            if input.parse::<Option<syn::Token![=]>>()?.is_none()
                || !input.peek(syn::token::Bracket)
            {
                return Err(syn::Error::new(
                    key.span,
                    format!("`outlets` takes a list of assets: {example}"),
                ));
            }
            self.outlets = Some(attr::asset_list(input, "outlets", example)?);
        } else if input.peek(kw::retry_policy) {
            let key: kw::retry_policy = input.parse()?;
            let example = "`retry_policy = api_policy`, where `fn api_policy() -> RetryPolicy`";
            let path = attr::function_path(input, "retry_policy", key.span, example)?;
            self.retry_policy = Some(path);
        } else if !self.options.parse_one(input)? {
            return Err(input.error("expected an option"));
        }
        Ok(())
    }
}

/// `= "30s"`: a sensor's duration, longer than zero (`default` is Airflow's).
pub(super) fn sensor_duration(
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

impl TaskArgs {
    /// Marks the task `shell` or `container`; both is an error, and the task is then
    /// checked as neither (so the conflict is the only error).
    fn set_runs(&mut self, kind: RunsKind, span: Span, errors: &mut Errors) {
        if let Some(earlier) = self.runs
            && earlier.kind != kind
        {
            errors.push(syn::Error::new(
                span,
                format!(
                    "a task is either `{}` (it returns a {} to run) or `{}` (it returns a {} \
                     to run), not both: remove one",
                    earlier.kind.flag(),
                    earlier.kind.noun(),
                    kind.flag(),
                    kind.noun()
                ),
            ));
            self.runs = None;
            return;
        }
        self.runs = Some(Runs { kind, span });
    }
}

/// A bare flag: `branch`, not `branch = true`.
pub(super) fn flag(input: ParseStream, key: &str, key_span: Span) -> syn::Result<Span> {
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

pub(super) fn parse_args(args: TokenStream, errors: &mut Errors) -> TaskArgs {
    let mut args: TaskArgs = attr::parse_all(args, errors);
    check_sensor(&mut args, errors);
    if let (Some((key, _)), None) = (&args.ignore_downstream_trigger_rules, args.short_circuit) {
        errors.push(syn::Error::new(
            *key,
            "`ignore_downstream_trigger_rules` is an option of a `short_circuit` task: \
             write `#[task(short_circuit, ignore_downstream_trigger_rules = false)]`, or remove it",
        ));
        args.ignore_downstream_trigger_rules = None;
    }
    if let Some(flag) = args.multiple_outputs {
        let other = match (args.branch, args.short_circuit, args.runs) {
            (Some(_), _, _) => Some("branch` task returns a `Branch".to_string()),
            (_, Some(_), _) => Some("short_circuit` task returns a `bool".to_string()),
            (_, _, Some(runs)) => Some(format!(
                "{}` task returns the last line its {} prints, a `String",
                runs.kind.flag(),
                runs.kind.noun()
            )),
            _ => None,
        };
        if let Some(other) = other {
            errors.push(syn::Error::new(
                flag,
                format!(
                    "`multiple_outputs` needs a task returning a struct whose fields \
                     downstream tasks take, and a `{other}`: remove one"
                ),
            ));
            args.multiple_outputs = None;
        }
    }
    check_roles(&mut args, errors);
    if let (Some(_), Some(short_circuit)) = (args.branch, args.short_circuit) {
        errors.push(syn::Error::new(
            short_circuit,
            "a task is either `branch` (it returns the downstream tasks to follow) or \
             `short_circuit` (it returns whether to go on), not both: remove one",
        ));
        args.branch = None;
        args.short_circuit = None;
    }
    if let Some(runs) = args.runs {
        let other = match (args.branch, args.short_circuit) {
            (Some(_), _) => "branch",
            (_, Some(_)) => "short_circuit",
            _ => return args,
        };
        errors.push(syn::Error::new(
            runs.span,
            format!(
                "a task is either `{}` (it returns a {} to run) or `{other}` (its \
                 output steers the tasks downstream), not both: remove one",
                runs.kind.flag(),
                runs.kind.noun()
            ),
        ));
        args.branch = None;
        args.short_circuit = None;
        args.runs = None;
    }
    args
}

/// A task is a setup or a teardown, not both; only a teardown takes
/// `on_failure_fail_dagrun`, and a teardown's trigger rule is not its own.
fn check_roles(args: &mut TaskArgs, errors: &mut Errors) {
    if let (Some(_), Some(teardown)) = (args.setup, args.teardown) {
        errors.push(syn::Error::new(
            teardown,
            "a task either sets a resource up (`setup`) or tears it down (`teardown`), not \
             both: remove one",
        ));
        args.setup = None;
        args.teardown = None;
    }
    if let (Some((key, _)), None) = (&args.on_failure_fail_dagrun, args.teardown) {
        errors.push(syn::Error::new(
            *key,
            "`on_failure_fail_dagrun` is an option of a `teardown` task: write \
             `#[task(teardown, on_failure_fail_dagrun = true)]`, or remove it",
        ));
        args.on_failure_fail_dagrun = None;
    }
    if let (Some(_), Some(rule)) = (args.teardown, &args.options.trigger_rule) {
        errors.push(syn::Error::new(
            rule.span,
            "a teardown runs once every upstream task is done, if one of its setups \
             succeeded (trigger rule `all_done_setup_success`): remove `trigger_rule`",
        ));
        args.options.trigger_rule = None;
    }
}

/// Sensor options need the `sensor` flag, and a sensor steers nothing and runs no
/// command.
pub(super) fn check_sensor(args: &mut TaskArgs, errors: &mut Errors) {
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
    let other = match (args.branch, args.short_circuit, args.runs) {
        (Some(_), _, _) => "branch` (its output steers the tasks downstream".to_string(),
        (_, Some(_), _) => "short_circuit` (its output steers the tasks downstream".to_string(),
        (_, _, Some(runs)) => format!(
            "{}` (it returns a {} to run",
            runs.kind.flag(),
            runs.kind.noun()
        ),
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

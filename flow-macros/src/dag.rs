//! `#[dag]`: options -> a checked signature -> the body rewrite -> the builder function.
//!
//! The function becomes `fn NAME() -> Result<Dag, DagError>`: it creates a `DagBuilder`
//! from the options, runs the user's statements with every task call `f(args..)`
//! rewritten into `<f>::__flow_call(args..)(&mut builder)` (the task's `node`, with the
//! user's argument tokens) and every `a >> b` statement into `set_downstream` calls, and
//! builds the DAG. See the `dag` macro's documentation for which calls are task calls.

use proc_macro2::{Delimiter, Group, Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::parse::ParseStream;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{
    BinOp, Block, Expr, ExprCall, Ident, Item, ItemFn, LitBool, LitInt, LitStr, Stmt, Token,
};

use crate::attr::{self, DurationLit, Options, TaskOptionArgs, kw};
use crate::check::{schedule, timezone};
use crate::error::{Errors, with_errors};
use crate::params::{self, ParamArg};
use crate::spans;
use crate::task::{cfg_attributes, doc_text, item_head};

/// Expands `#[dag(args)] item`.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let options = parse_args(args, &mut errors);
    check_dates(&options, &mut errors);
    let mut function = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(function)) => function,
        Ok(other) => {
            errors.at(
                item_head(&other),
                "`#[dag]` goes on a function: `#[dag] fn pipeline() { let rows = load(); save(rows); }`",
            );
            return with_errors(item, &errors);
        }
        Err(error) => {
            errors.push(error);
            return with_errors(item, &errors);
        }
    };
    check_signature(&function, &mut errors);
    let id = dag_id(&function, &options, &mut errors);
    let body_errors = errors.len();
    let dag = Ident::new("__flow_dag", Span::mixed_site());
    let mut body = Body {
        root: attr::root(options.krate.as_ref()),
        dag: &dag,
        errors: &mut errors,
        task_calls: 0,
    };
    body.check(&function.block);
    body.block(&mut function.block, true);
    if body.task_calls == 0 {
        errors.at(
            &function.sig.ident,
            "this DAG has no tasks: call `#[task]` functions in its body, \
             like `let rows = extract(); load(rows);`",
        );
    }
    let body_ok = errors.len() == body_errors;
    let sound = errors.is_empty();
    let output = codegen(&function, &options, &id, &dag, sound, body_ok);
    with_errors(output, &errors)
}

// ---------------------------------------------------------------------------------------
// Options

/// `schedule = ".."` or `schedule = None`.
enum ScheduleArg {
    None,
    Cron(LitStr),
}

/// The options of `#[dag(..)]`.
#[derive(Default)]
struct DagArgs {
    krate: Option<syn::Path>,
    id: Option<LitStr>,
    description: Option<LitStr>,
    schedule: Option<ScheduleArg>,
    /// The name, and the zone if it is one.
    timezone: Option<(LitStr, Option<chrono_tz::Tz>)>,
    start_date: Option<DateArg>,
    end_date: Option<DateArg>,
    catchup: Option<LitBool>,
    max_active_runs: Option<LitInt>,
    max_active_tasks: Option<LitInt>,
    on_success: Option<syn::ExprPath>,
    on_failure: Option<syn::ExprPath>,
    dagrun_timeout: Option<DurationLit>,
    tags: Option<Vec<LitStr>>,
    params: Option<Vec<ParamArg>>,
    default_args: Option<TaskOptionArgs>,
}

impl Options for DagArgs {
    const ATTRIBUTE: &'static str = "#[dag]";
    const KEYS: &'static [&'static str] = &[
        "id",
        "description",
        "schedule",
        "timezone",
        "start_date",
        "end_date",
        "catchup",
        "max_active_runs",
        "max_active_tasks",
        "dagrun_timeout",
        "tags",
        "params",
        "default_args",
        "on_success",
        "on_failure",
        "crate",
    ];
    const RENAMED: &'static [(&'static str, &'static str)] = &[
        ("dag_id", "id"),
        ("schedule_interval", "schedule"),
        ("doc_md", "description"),
        ("max_active_runs_per_dag", "max_active_runs"),
        ("concurrency", "max_active_tasks"),
        ("on_success_callback", "on_success"),
        ("on_failure_callback", "on_failure"),
    ];
    const PLANNED: &'static [&'static str] = &["is_paused_upon_creation"];
    const ELSEWHERE: &'static [(&'static str, &'static str)] = &[
        (
            "pool",
            "pools are for tasks; write `default_args(pool = \"..\")` for every task, or \
             `#[task(pool = \"..\")]` on one",
        ),
        (
            "priority_weight",
            "priority weights are for tasks; write `default_args(priority_weight = ..)` for \
             every task, or `#[task(priority_weight = ..)]` on one",
        ),
        (
            "on_retry",
            "a run is not retried, a task is; write `#[task(on_retry = ..)]` on the task",
        ),
    ];

    fn parse_one(&mut self, input: ParseStream, errors: &mut Errors) -> syn::Result<()> {
        if input.peek(kw::id) {
            let key: kw::id = input.parse()?;
            self.id = Some(attr::id(input, "id", key.span, "DAG")?);
        } else if input.peek(kw::description) {
            let key: kw::description = input.parse()?;
            self.description = Some(attr::string(
                input,
                "description",
                key.span,
                "\"Trains the model every night\"",
            )?);
        } else if input.peek(kw::schedule) {
            let key: kw::schedule = input.parse()?;
            self.schedule = Some(parse_schedule(input, key.span)?);
        } else if input.peek(kw::timezone) {
            let key: kw::timezone = input.parse()?;
            let name = attr::string(input, "timezone", key.span, "\"Europe/Amsterdam\"")?;
            match timezone::check(&name.value()) {
                Ok(tz) => self.timezone = Some((name, Some(tz))),
                Err(message) => {
                    errors.at(&name, message);
                    // Known to be set, so dates are not compared in a wrong zone.
                    self.timezone = Some((name, None));
                }
            }
        } else if input.peek(kw::start_date) {
            let key: kw::start_date = input.parse()?;
            let date = attr::string(input, "start_date", key.span, "\"2025-01-01\"")?;
            self.start_date = Some(check_date("start_date", date)?);
        } else if input.peek(kw::end_date) {
            let key: kw::end_date = input.parse()?;
            let date = attr::string(input, "end_date", key.span, "\"2025-12-31\"")?;
            self.end_date = Some(check_date("end_date", date)?);
        } else if input.peek(kw::catchup) {
            let key: kw::catchup = input.parse()?;
            self.catchup = Some(attr::boolean(input, "catchup", key.span, false)?);
        } else if input.peek(kw::max_active_runs) {
            let key: kw::max_active_runs = input.parse()?;
            let runs = attr::count_from(
                input,
                "max_active_runs",
                key.span,
                1,
                " (Airflow's default is 16; `max_active_runs = 1` runs one at a time)",
            )?;
            self.max_active_runs = Some(runs);
        } else if input.peek(kw::max_active_tasks) {
            let key: kw::max_active_tasks = input.parse()?;
            let tasks = attr::count_from(
                input,
                "max_active_tasks",
                key.span,
                1,
                " (how many tasks of one run may run at once; Airflow's default is 16)",
            )?;
            self.max_active_tasks = Some(tasks);
        } else if input.peek(kw::on_success) {
            let key: kw::on_success = input.parse()?;
            self.on_success = Some(attr::callback(input, "on_success", key.span)?);
        } else if input.peek(kw::on_failure) {
            let key: kw::on_failure = input.parse()?;
            self.on_failure = Some(attr::callback(input, "on_failure", key.span)?);
        } else if input.peek(kw::dagrun_timeout) {
            let key: kw::dagrun_timeout = input.parse()?;
            self.dagrun_timeout = Some(attr::duration(input, "dagrun_timeout", key.span)?);
        } else if input.peek(kw::tags) {
            let key: kw::tags = input.parse()?;
            self.tags = Some(attr::string_list(
                input,
                "tags",
                key.span,
                "[\"ml\", \"daily\"]",
            )?);
        } else if input.peek(kw::params) {
            let key: kw::params = input.parse()?;
            if !input.peek(syn::token::Paren) {
                return Err(params::usage_error(key.span));
            }
            let content;
            syn::parenthesized!(content in input);
            self.params = Some(params::parse_list(&content, errors));
        } else if input.peek(kw::default_args) {
            let key: kw::default_args = input.parse()?;
            if !input.peek(syn::token::Paren) {
                return Err(syn::Error::new(
                    key.span,
                    "write `default_args(owner = \"ml-team\", retries = 2, retry_delay = \"5m\")`",
                ));
            }
            let content;
            syn::parenthesized!(content in input);
            let DefaultArgs(options) = attr::parse_options::<DefaultArgs>(&content, errors);
            self.default_args = Some(options);
        } else if input.peek(Token![crate]) {
            let key: Token![crate] = input.parse()?;
            self.krate = Some(attr::crate_path(input, key.span)?);
        } else {
            return Err(input.error("expected an option"));
        }
        Ok(())
    }
}

/// The options inside `default_args(..)`: those of `#[task]` that a DAG can default.
#[derive(Default)]
struct DefaultArgs(TaskOptionArgs);

impl Options for DefaultArgs {
    const ATTRIBUTE: &'static str = "default_args(..)";
    const KEYS: &'static [&'static str] = TaskOptionArgs::KEYS;
    const ELSEWHERE: &'static [(&'static str, &'static str)] = &[
        (
            "branch",
            "it marks one task; write `#[task(branch)]` on that task",
        ),
        (
            "short_circuit",
            "it marks one task; write `#[task(short_circuit)]` on that task",
        ),
        (
            "task_id",
            "each task has its own; write `#[task(task_id = \"..\")]`",
        ),
        (
            "pool_slots",
            "a DAG cannot default it; write `#[task(pool = \"..\", pool_slots = 2)]` on each \
             task that takes more than one slot (`default_args(pool = \"..\")` sets the pool)",
        ),
        (
            "shell",
            "it marks one task; write `#[task(shell)]` on that task",
        ),
        (
            "on_success",
            "a task's callbacks are its own; write `#[task(on_success = ..)]` on the task, \
             or `#[dag(on_success = ..)]` for the run",
        ),
        (
            "on_failure",
            "a task's callbacks are its own; write `#[task(on_failure = ..)]` on the task, \
             or `#[dag(on_failure = ..)]` for the run",
        ),
        (
            "on_retry",
            "a task's callbacks are its own; write `#[task(on_retry = ..)]` on the task",
        ),
    ];
    const PLANNED: &'static [&'static str] = &["queue", "depends_on_past", "on_failure_callback"];

    fn parse_one(&mut self, input: ParseStream, _: &mut Errors) -> syn::Result<()> {
        if self.0.parse_one(input)? {
            Ok(())
        } else {
            Err(input.error("expected an option"))
        }
    }
}

fn parse_args(args: TokenStream, errors: &mut Errors) -> DagArgs {
    attr::parse_all(args, errors)
}

fn parse_schedule(input: ParseStream, key_span: Span) -> syn::Result<ScheduleArg> {
    if input.peek(Token![=]) && input.peek2(kw::None) {
        input.parse::<Token![=]>()?;
        input.parse::<kw::None>()?;
        return Ok(ScheduleArg::None);
    }
    if input.peek(Token![=]) && !input.peek2(syn::LitStr) {
        input.parse::<Token![=]>()?;
        let value: Expr = input.parse()?;
        return Err(syn::Error::new_spanned(
            value,
            "`schedule` takes a string, like `schedule = \"0 2 * * *\"` or \
             `schedule = \"@daily\"`, or `schedule = None` for manual runs only",
        ));
    }
    let text = attr::string(input, "schedule", key_span, "\"0 2 * * *\"")?;
    match schedule::message(&text.value()) {
        Ok(()) => Ok(ScheduleArg::Cron(text)),
        Err(message) => Err(syn::Error::new_spanned(&text, message)),
    }
}

/// A `start_date` or `end_date`, checked.
struct DateArg {
    lit: LitStr,
    value: DateValue,
}

/// A date as the runtime reads it.
enum DateValue {
    /// `2025-01-01`: midnight in the DAG's time zone.
    Day(chrono::NaiveDate),
    /// An RFC 3339 time, whose offset says where it is.
    Instant(chrono::DateTime<chrono::Utc>),
}

impl DateValue {
    /// The instant, read in `tz` as the runtime reads it: a day starts at its first
    /// instant (midnight, or the end of a change of the clocks that skips it).
    fn instant(&self, tz: chrono_tz::Tz) -> Option<chrono::DateTime<chrono::Utc>> {
        use chrono::TimeZone;
        match self {
            DateValue::Instant(at) => Some(*at),
            DateValue::Day(day) => {
                let midnight = day.and_hms_opt(0, 0, 0)?;
                (0..=2 * 24 * 60)
                    .filter_map(|m| midnight.checked_add_signed(chrono::TimeDelta::minutes(m)))
                    .find_map(|local| tz.from_local_datetime(&local).earliest())
                    .map(|at| at.with_timezone(&chrono::Utc))
            }
        }
    }
}

/// Checks a date as the runtime reads it: `2025-01-01` (midnight in the DAG's time zone)
/// or RFC 3339.
fn check_date(key: &str, date: LitStr) -> syn::Result<DateArg> {
    let text = date.value();
    let text = text.trim();
    let day = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d");
    let time = chrono::DateTime::parse_from_rfc3339(text);
    match (day, time) {
        (Ok(day), _) => Ok(DateArg {
            lit: date,
            value: DateValue::Day(day),
        }),
        (_, Ok(time)) => Ok(DateArg {
            lit: date,
            value: DateValue::Instant(time.with_timezone(&chrono::Utc)),
        }),
        (Err(day), Err(time)) => {
            // Name the reason of the format the user was closer to.
            let reason = if text.len() <= 10 { day } else { time };
            Err(syn::Error::new_spanned(
                date,
                format!(
                    "invalid {key} `{text}`: expected a date like `2025-01-01` or \
                     `2025-01-01T02:00:00Z` ({reason})"
                ),
            ))
        }
    }
}

/// An `end_date` before the `start_date` (compared in the DAG's time zone, as the runtime
/// compares them) is an error at the end date.
fn check_dates(options: &DagArgs, errors: &mut Errors) {
    let (Some(start), Some(end)) = (&options.start_date, &options.end_date) else {
        return;
    };
    let tz = match &options.timezone {
        None => chrono_tz::Tz::UTC,
        Some((_, Some(tz))) => *tz,
        // Already an error; the dates cannot be placed.
        Some((_, None)) => return,
    };
    if let (Some(s), Some(e)) = (start.value.instant(tz), end.value.instant(tz))
        && e < s
    {
        errors.at(
            &end.lit,
            format!(
                "end_date `{}` is before start_date `{}`, so no run would ever be scheduled; \
                 set an end_date at or after the start_date, or none",
                end.lit.value(),
                start.lit.value()
            ),
        );
    }
}

// ---------------------------------------------------------------------------------------
// Checks

/// A DAG function takes nothing, returns nothing and is not async: the macro gives it its
/// signature.
fn check_signature(function: &ItemFn, errors: &mut Errors) {
    let sig = &function.sig;
    if let Some(asyncness) = &sig.asyncness {
        errors.at(
            asyncness,
            "a `#[dag]` function cannot be `async`: it only declares tasks and runs once at \
             start-up; make the tasks `async` instead",
        );
    }
    if let Some(constness) = &sig.constness {
        errors.at(
            constness,
            "a `#[dag]` function cannot be a `const fn`: remove `const`",
        );
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.at(
            unsafety,
            "a `#[dag]` function cannot be `unsafe`: remove `unsafe`",
        );
    }
    if let Some(abi) = &sig.abi {
        errors.at(
            abi,
            "a `#[dag]` function cannot have an `extern` ABI: remove it",
        );
    }
    if !sig.generics.params.is_empty() {
        errors.at(
            &sig.generics,
            "a `#[dag]` function cannot be generic: remove the generic parameters",
        );
    }
    if let Some(clause) = &sig.generics.where_clause {
        errors.at(
            clause,
            "a `#[dag]` function cannot have a `where` clause: remove it",
        );
    }
    if !sig.inputs.is_empty() || sig.variadic.is_some() {
        errors.at(
            &sig.inputs,
            "a `#[dag]` function takes no parameters: the DAG is built once when the binary \
             starts; pass values to tasks as literal arguments, like `load(\"orders.csv\")`",
        );
    }
    if let syn::ReturnType::Type(arrow, ty) = &sig.output {
        errors.at(
            quote!(#arrow #ty),
            "a `#[dag]` function has no return type: the macro makes it return \
             `Result<Dag, DagError>`; remove `-> ..`",
        );
    }
}

/// The DAG's id: the `id` option, or the function's name.
fn dag_id(function: &ItemFn, options: &DagArgs, errors: &mut Errors) -> String {
    if let Some(id) = &options.id {
        return id.value();
    }
    let name = function.sig.ident.unraw().to_string();
    if let Err(reason) = attr::check_id(&name) {
        errors.at(
            &function.sig.ident,
            format!(
                "the function name `{name}` is not a valid DAG id: {reason}; \
                 set one with `#[dag(id = \"...\")]`"
            ),
        );
    }
    name
}

// ---------------------------------------------------------------------------------------
// Body rewrite

/// Rewrites task calls and `>>` orderings of one DAG body.
struct Body<'a> {
    root: TokenStream,
    /// The builder variable, hygienic so user code can neither see nor shadow it.
    dag: &'a Ident,
    errors: &'a mut Errors,
    task_calls: usize,
}

impl Body<'_> {
    /// Reports what a DAG body cannot contain: `return`, and dynamic task mapping.
    fn check(&mut self, block: &Block) {
        struct Checker<'e>(&'e mut Errors);
        impl<'ast> Visit<'ast> for Checker<'_> {
            fn visit_expr_return(&mut self, node: &'ast syn::ExprReturn) {
                self.0.at(
                    node.return_token,
                    "`return` cannot be used in a `#[dag]` body: the macro ends the function by \
                     building the DAG; use `if`/`else` to leave tasks out",
                );
                syn::visit::visit_expr_return(self, node);
            }
            fn visit_expr_method_call(&mut self, node: &'ast syn::ExprMethodCall) {
                if node.method == "expand_kwargs" && is_task_path_receiver(&node.receiver) {
                    self.0.at(
                        &node.method,
                        "`.expand_kwargs(..)` is not supported: name each mapped argument, \
                         `.expand(a = list_a, b = list_b)` for every combination or \
                         `.expand_zip(a = list_a, b = list_b)` element by element",
                    );
                    // One message per mapping chain.
                    return;
                }
                syn::visit::visit_expr_method_call(self, node);
            }
            // Closures and nested items have their own `return`s.
            fn visit_expr_closure(&mut self, _: &'ast syn::ExprClosure) {}
            fn visit_item(&mut self, _: &'ast Item) {}
        }
        Checker(self.errors).visit_block(block);
    }

    /// Rewrites the statements of `block`. `top` is the function body, whose last
    /// statement is followed by `build()`.
    fn block(&mut self, block: &mut Block, top: bool) {
        let last = block.stmts.len().saturating_sub(1);
        for (index, stmt) in block.stmts.iter_mut().enumerate() {
            match stmt {
                Stmt::Local(local) => {
                    if let Some(init) = &mut local.init {
                        self.task_call(&mut init.expr);
                    }
                }
                Stmt::Expr(expr, semi) => match self.statement(expr) {
                    // A task call as a statement: its node is not needed (`let _`, for
                    // `unused_results`), and the statement ends with `;` even as a tail.
                    Rewritten::TaskCall => {
                        *stmt = Stmt::Expr(Expr::Verbatim(quote!(let _ = #expr;)), None);
                    }
                    // As a tail, an ordering still ends with `;`, and so does any tail of
                    // the function body, which `build()` follows.
                    rewritten => {
                        let ordering = matches!(rewritten, Rewritten::Ordering);
                        if index == last
                            && semi.is_none()
                            && (ordering || (top && !block_like(expr)))
                        {
                            *semi = Some(Token![;](Span::mixed_site()));
                        }
                    }
                },
                Stmt::Macro(mac) => {
                    // `build()` follows the body's last statement.
                    let braced = matches!(mac.mac.delimiter, syn::MacroDelimiter::Brace(_));
                    if top && index == last && mac.semi_token.is_none() && !braced {
                        mac.semi_token = Some(Token![;](Span::mixed_site()));
                    }
                }
                Stmt::Item(_) => {}
            }
        }
    }

    /// Rewrites an expression statement.
    fn statement(&mut self, expr: &mut Expr) -> Rewritten {
        match expr {
            Expr::Binary(binary) if is_ordering(&binary.op) => {
                let ordering = self.ordering(expr.clone());
                *expr = Expr::Verbatim(ordering);
                Rewritten::Ordering
            }
            Expr::Call(_) | Expr::MethodCall(_) => {
                if self.task_call(expr) {
                    Rewritten::TaskCall
                } else {
                    Rewritten::Other
                }
            }
            Expr::Block(inner) => {
                self.block(&mut inner.block, false);
                Rewritten::Other
            }
            Expr::If(inner) => {
                self.block(&mut inner.then_branch, false);
                if let Some((_, otherwise)) = &mut inner.else_branch {
                    self.statement(otherwise);
                }
                Rewritten::Other
            }
            Expr::ForLoop(inner) => {
                self.block(&mut inner.body, false);
                Rewritten::Other
            }
            Expr::While(inner) => {
                self.block(&mut inner.body, false);
                Rewritten::Other
            }
            Expr::Loop(inner) => {
                self.block(&mut inner.body, false);
                Rewritten::Other
            }
            _ => Rewritten::Other,
        }
    }

    /// Rewrites `expr` if it is a task call (`f(..)`, `steps::f(..)`), then its arguments
    /// that are task calls; returns whether it was one.
    fn task_call(&mut self, expr: &mut Expr) -> bool {
        if let Expr::MethodCall(call) = expr {
            return self.mapped_call(expr_method(call).cloned(), expr);
        }
        let Expr::Call(call) = expr else { return false };
        let Some(path) = task_path(call) else {
            return false;
        };
        if let Some(message) = not_a_task(path) {
            self.errors.at(&call.func, message);
            return false;
        }
        if let Some(arguments) = path.segments.iter().find(|s| !s.arguments.is_none()) {
            self.errors.at(
                &arguments.arguments,
                "a task call takes no generic arguments: tasks are not generic",
            );
            return false;
        }
        let path = path.clone();
        for arg in &mut call.args {
            self.task_call(arg);
        }
        self.task_calls += 1;
        // `<path>::__flow_call(args..)(&mut dag)`, every part located at the user's call:
        // `<`..`>` at the path, the arguments in the user's parentheses, the builder
        // applied in a group located at the closing parenthesis.
        let (first, last) = spans::first_last(&path);
        let open = quote_spanned!(first=> <);
        let close = quote_spanned!(last=> >);
        let function = Ident::new("__flow_call", last);
        let mut args = Group::new(Delimiter::Parenthesis, call.args.to_token_stream());
        args.set_span(call.paren_token.span.join());
        let dag = self.dag;
        let mut apply = Group::new(Delimiter::Parenthesis, quote!(&mut #dag));
        apply.set_span(call.paren_token.span.close());
        *expr = Expr::Verbatim(quote!(#open #path #close :: #function #args #apply));
        true
    }

    /// Rewrites `task.expand(b = list)`, `task.partial(a = 1).expand(b = list)` and
    /// `.expand_zip(..)` into the task's argument collectors:
    /// `<task>::__flow_partial().a(1).__flow_expand().b(list).__flow_finish(&mut dag)`.
    /// `method` is the outer method's name; returns whether `expr` was a mapped call.
    fn mapped_call(&mut self, method: Option<Ident>, expr: &mut Expr) -> bool {
        let Some(method) = method else { return false };
        let Expr::MethodCall(call) = expr else {
            return false;
        };
        let zip = match method.to_string().as_str() {
            "expand" => false,
            "expand_zip" => true,
            "partial" if is_task_path_receiver(&call.receiver) => {
                self.errors.at(
                    &method,
                    "`.partial(..)` fixes some arguments of a mapped task: follow it with \
                     `.expand(name = list)` for the arguments to map over",
                );
                return false;
            }
            _ => return false,
        };
        let (path, partial) = match &*call.receiver {
            Expr::Path(path) if path.qself.is_none() => (path.path.clone(), None),
            Expr::MethodCall(inner) if inner.method == "partial" => match &*inner.receiver {
                Expr::Path(path) if path.qself.is_none() => {
                    (path.path.clone(), Some(inner.args.clone()))
                }
                _ => return false,
            },
            _ => return false,
        };
        if let Some(message) = not_a_task(&path) {
            self.errors.at(&path, message);
            return false;
        }
        let mut names: Vec<Ident> = Vec::new();
        let fixed = self.named_arguments(partial.unwrap_or_default(), "partial", &mut names);
        if call.args.is_empty() {
            self.errors.at(
                &method,
                format!("`.{method}()` needs a list to map over: `.{method}(name = list)`"),
            );
        }
        let mapped = self.named_arguments(call.args.clone(), &method.to_string(), &mut names);
        self.task_calls += 1;
        let (first, last) = spans::first_last(&path);
        let open = quote_spanned!(first=> <);
        let close = quote_spanned!(last=> >);
        let start = Ident::new("__flow_partial", last);
        let switch = Ident::new("__flow_expand", method.span());
        let finish = Ident::new(
            if zip {
                "__flow_finish_zip"
            } else {
                "__flow_finish"
            },
            method.span(),
        );
        let dag = self.dag;
        let mut apply = Group::new(Delimiter::Parenthesis, quote!(&mut #dag));
        apply.set_span(call.paren_token.span.close());
        *expr = Expr::Verbatim(quote!(
            #open #path #close :: #start() #(#fixed)* . #switch () #(#mapped)* . #finish #apply
        ));
        true
    }

    /// `.name(value)` for each `name = value` of a mapped call's arguments; a task call in
    /// a value is rewritten too. Reports arguments that are not `name = value` and names
    /// given twice (`names` spans `.partial` and `.expand`).
    fn named_arguments(
        &mut self,
        args: syn::punctuated::Punctuated<Expr, Token![,]>,
        method: &str,
        names: &mut Vec<Ident>,
    ) -> Vec<TokenStream> {
        let mut calls = Vec::new();
        for arg in args {
            let Expr::Assign(assign) = arg else {
                self.errors.at(
                    &arg,
                    format!(
                        "`.{method}(..)` takes named arguments, the task's parameter names: \
                         `.{method}(name = value)`"
                    ),
                );
                continue;
            };
            let name = match &*assign.left {
                Expr::Path(path) if path.qself.is_none() => path.path.get_ident().cloned(),
                _ => None,
            };
            let Some(name) = name else {
                self.errors.at(
                    &assign.left,
                    "the left of `=` names a parameter of the task: `name = value`",
                );
                continue;
            };
            if names.contains(&name) {
                self.errors.at(
                    &name,
                    format!("argument `{name}` is given twice: give each parameter once"),
                );
                continue;
            }
            names.push(name.clone());
            let mut value = *assign.right;
            self.task_call(&mut value);
            let mut group = Group::new(Delimiter::Parenthesis, value.to_token_stream());
            group.set_span(value.span());
            calls.push(quote!(. #name #group));
        }
        calls
    }

    /// `a >> b >> [c, d]` as a statement: `set_downstream` for each consecutive pair of
    /// groups, each group evaluated once, in source order.
    fn ordering(&mut self, expr: Expr) -> TokenStream {
        let mut operands = Vec::new();
        let mut ops = Vec::new();
        let mut rest = expr;
        while let Expr::Binary(binary) = rest {
            if !is_ordering(&binary.op) {
                rest = Expr::Binary(binary);
                break;
            }
            operands.push(*binary.right);
            ops.push(binary.op);
            rest = *binary.left;
        }
        operands.push(rest);
        operands.reverse();
        ops.reverse();

        let root = self.root.clone();
        let dag = self.dag;
        let mut lets = Vec::new();
        let mut groups = Vec::new();
        for (index, operand) in operands.into_iter().enumerate() {
            let elements = match operand {
                Expr::Array(array) => array.elems.into_iter().collect(),
                single => vec![single],
            };
            let group = format_ident!("__flow_group_{}", index, span = Span::mixed_site());
            let len = elements.len();
            let nodes: Vec<TokenStream> = elements
                .into_iter()
                .map(|mut element| {
                    if let Expr::Lit(literal) = &element {
                        self.errors.at(
                            literal,
                            "`>>` and `<<` order tasks, and this is a literal: put a task call \
                             or a variable bound to one here",
                        );
                    }
                    self.task_call(&mut element);
                    // Located at the element, so "not a task node" points at it.
                    let (first, last) = spans::first_last(&element);
                    let root = spans::respan(root.clone(), first);
                    let function = quote_spanned!(first=> #root::__private::NodeRef::any_node);
                    let reference = quote_spanned!(first=> &);
                    let mut arg = Group::new(Delimiter::Parenthesis, quote!(#reference #element));
                    arg.set_span(last);
                    quote!(#function #arg)
                })
                .collect();
            lets.push(quote! {
                let #group: [#root::__private::AnyNode; #len] = [#(#nodes),*];
            });
            groups.push(group);
        }
        let edges = ops.iter().zip(groups.windows(2)).map(|(op, pair)| {
            let (upstream, downstream) = match op {
                BinOp::Shl(_) => (&pair[1], &pair[0]),
                _ => (&pair[0], &pair[1]),
            };
            quote!(#dag.set_downstream(&#upstream, &#downstream);)
        });
        quote!({ #(#lets)* #(#edges)* })
    }
}

/// What [`Body::statement`] made of a statement.
enum Rewritten {
    TaskCall,
    Ordering,
    Other,
}

fn is_ordering(op: &BinOp) -> bool {
    matches!(op, BinOp::Shr(_) | BinOp::Shl(_))
}

/// The path of `f(..)` / `steps::f(..)`, if the callee is a plain path.
fn task_path(call: &ExprCall) -> Option<&syn::Path> {
    match &*call.func {
        Expr::Path(path) if path.qself.is_none() && path.attrs.is_empty() => Some(&path.path),
        _ => None,
    }
}

/// Why a call in a task position is certainly not a task call: tasks are functions with
/// `snake_case` names, so a path with a capitalised segment (`String::from`, `Some`) is a
/// constructor or an associated function.
fn not_a_task(path: &syn::Path) -> Option<String> {
    let capitalised = path
        .segments
        .iter()
        .any(|s| s.ident.to_string().starts_with(|c: char| c.is_uppercase()));
    if !capitalised {
        return None;
    }
    let text = path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect::<Vec<_>>()
        .join("::");
    Some(format!(
        "`{text}(..)` is not a task: in a `#[dag]` body, a call as a statement, as a `let` \
         initializer, around `>>` or as an argument of a task call is a task call; to pass \
         the value of an ordinary call, wrap it in braces: `{{ {text}(..) }}`"
    ))
}

/// The method of a method call whose receiver is a task named by path.
fn expr_method(call: &syn::ExprMethodCall) -> Option<&Ident> {
    is_task_path_receiver(&call.receiver).then_some(&call.method)
}

/// Whether a method receiver is a task named by path (`process.partial(..)`), possibly
/// after `.partial(..)`.
fn is_task_path_receiver(receiver: &Expr) -> bool {
    match receiver {
        Expr::Path(_) => true,
        Expr::MethodCall(inner) if inner.method == "partial" => {
            is_task_path_receiver(&inner.receiver)
        }
        _ => false,
    }
}

/// Expressions that end a statement without a `;`.
fn block_like(expr: &Expr) -> bool {
    matches!(
        expr,
        Expr::Block(_)
            | Expr::If(_)
            | Expr::ForLoop(_)
            | Expr::While(_)
            | Expr::Loop(_)
            | Expr::Match(_)
            | Expr::Unsafe(_)
            | Expr::TryBlock(_)
            | Expr::Const(_)
    )
}

// ---------------------------------------------------------------------------------------
// Code generation

fn codegen(
    function: &ItemFn,
    options: &DagArgs,
    id: &str,
    dag: &Ident,
    sound: bool,
    body_ok: bool,
) -> TokenStream {
    let root = attr::root(options.krate.as_ref());
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
        ..
    } = function;
    let ident = &sig.ident;

    let mut setters = TokenStream::new();
    let description = options
        .description
        .as_ref()
        .map(LitStr::value)
        .or_else(|| doc_text(attrs).map(|doc| first_paragraph(&doc)));
    if let Some(description) = description {
        setters.extend(quote!(.description(#description)));
    }
    if let Some(ScheduleArg::Cron(schedule)) = &options.schedule {
        setters.extend(quote!(.schedule(#schedule)));
    }
    if let Some((timezone, Some(_))) = &options.timezone {
        setters.extend(quote!(.timezone(#timezone)));
    }
    if let Some(date) = &options.start_date {
        let date = &date.lit;
        setters.extend(quote!(.start_date(#date)));
    }
    if let Some(date) = &options.end_date {
        let date = &date.lit;
        setters.extend(quote!(.end_date(#date)));
    }
    if let Some(catchup) = &options.catchup {
        setters.extend(quote!(.catchup(#catchup)));
    }
    if let Some(runs) = &options.max_active_runs {
        setters.extend(quote!(.max_active_runs(#runs)));
    }
    if let Some(tasks) = &options.max_active_tasks {
        setters.extend(quote!(.max_active_tasks(#tasks)));
    }
    if let Some(timeout) = &options.dagrun_timeout {
        let timeout = attr::duration_tokens(&root, timeout);
        setters.extend(quote!(.dagrun_timeout(#timeout)));
    }
    if let Some(tags) = options.tags.as_ref().filter(|tags| !tags.is_empty()) {
        setters.extend(quote!(.tags([#(#tags),*])));
    }
    if let Some(params) = &options.params {
        setters.extend(params::setters(&root, params));
    }
    if let Some(defaults) = &options.default_args {
        let defaults = defaults.task_options(&root);
        setters.extend(quote!(.default_args(#defaults)));
    }
    for (setter, path) in [
        ("on_success", &options.on_success),
        ("on_failure", &options.on_failure),
    ] {
        if let Some(path) = path {
            // Located at the path, so that a function of the wrong signature is reported there.
            let setter = Ident::new(setter, path.span());
            setters.extend(quote_spanned!(path.span()=> .#setter(#path)));
        }
    }

    let errors_doc = format!(
        "# Errors\n\nEvery problem `DagBuilder::build` finds in the DAG `{id}` (generated by `#[dag]`)."
    );
    let returns = quote!(::core::result::Result<#root::__private::Dag, #root::__private::DagError>);
    let stmts = &block.stmts;
    let body = if body_ok {
        quote! {
            let mut #dag = #root::__private::DagBuilder::new(#id) #setters;
            #(#stmts)*
            #dag.build()
        }
    } else {
        quote!(::core::panic!(
            "this DAG's body has errors; the compiler reported them"
        ))
    };
    // Keep what the user wrote where it does not conflict with the generated signature, so
    // that a wrong signature gives its own message only.
    let mut sig = sig.clone();
    sig.output = syn::parse_quote!(-> #returns);
    let registration = sound.then(|| {
        let cfgs = cfg_attributes(attrs);
        quote! {
            #(#cfgs)*
            #root::__private::inventory::submit! {
                #root::__private::DagRegistration {
                    id: #id,
                    build: #ident,
                    location: ::core::concat!(::core::file!(), ":", ::core::line!()),
                }
            }
        }
    });
    // On error, parameters are kept (see above) and may go unused.
    let allow = (!sound).then(|| quote!(#[allow(unused_variables)]));
    quote! {
        #(#attrs)*
        #[doc = ""]
        #[doc = #errors_doc]
        #allow
        #vis #sig {
            #body
        }
        #registration
    }
}

/// The first paragraph of a doc comment, on one line.
fn first_paragraph(doc: &str) -> String {
    doc.split("\n\n")
        .next()
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn expand_str(args: TokenStream, item: TokenStream) -> String {
        expand(args, item).to_string()
    }

    #[test]
    fn descriptions_take_the_first_paragraph() {
        assert_eq!(
            first_paragraph("Trains\nthe model.\n\nDetails."),
            "Trains the model."
        );
        assert_eq!(first_paragraph(""), "");
    }

    #[test]
    fn task_calls_become_node_calls_and_orderings_set_downstream() {
        let out = expand_str(
            quote!(schedule = "@daily"),
            quote!(
                fn etl() {
                    let rows = extract("orders");
                    let n = steps::count(rows, { String::from("x") });
                    report(total(n)) >> [notify(), archive(rows)];
                    done()
                }
            ),
        );
        assert!(
            out.contains("< extract > :: __flow_call (\"orders\") (& mut __flow_dag)"),
            "{out}"
        );
        assert!(out.contains("< steps :: count > :: __flow_call (rows , { String :: from (\"x\") }) (& mut __flow_dag)"), "{out}");
        assert!(out.contains("< report > :: __flow_call (< total > :: __flow_call (n) (& mut __flow_dag)) (& mut __flow_dag)"), "{out}");
        assert!(
            out.contains("set_downstream (& __flow_group_0 , & __flow_group_1)"),
            "{out}"
        );
        assert!(
            out.contains("let _ = < done > :: __flow_call () (& mut __flow_dag) ;"),
            "{out}"
        );
        assert!(out.contains(". schedule (\"@daily\")"), "{out}");
        assert!(!out.contains("compile_error"), "{out}");
    }

    #[test]
    fn scheduling_options_and_params_become_builder_calls() {
        let out = expand_str(
            quote!(
                timezone = "Europe/Amsterdam",
                start_date = "2025-01-01",
                end_date = "2025-12-31",
                max_active_runs = 1,
                dagrun_timeout = "2h",
                params(threshold: f64 = 0.8, epochs: u32)
            ),
            quote!(
                fn training() {
                    train();
                }
            ),
        );
        for setter in [
            ". timezone (\"Europe/Amsterdam\")",
            ". end_date (\"2025-12-31\")",
            ". max_active_runs (1)",
            ". dagrun_timeout (:: flow_runtime :: __private :: Duration :: from_millis (7_200_000))",
            ". param (:: flow_runtime :: __private :: DagParam :: new :: < f64 > (\"threshold\") . default (0.8))",
            ". param (:: flow_runtime :: __private :: DagParam :: new :: < u32 > (\"epochs\"))",
        ] {
            assert!(out.contains(setter), "{setter} in {out}");
        }
        assert!(!out.contains("compile_error"), "{out}");
    }

    #[test]
    fn end_dates_are_compared_in_the_time_zone() {
        let expand_dates = |timezone: &str, start: &str, end: &str| {
            expand_str(
                quote!(timezone = #timezone, start_date = #start, end_date = #end),
                quote!(
                    fn d() {
                        t();
                    }
                ),
            )
        };
        // Midnight in New York is 05:00 UTC.
        let out = expand_dates("America/New_York", "2025-01-01", "2025-01-01T02:00:00Z");
        assert!(out.contains("is before start_date"), "{out}");
        let out = expand_dates("UTC", "2025-01-01", "2025-01-01T02:00:00Z");
        assert!(!out.contains("compile_error"), "{out}");
        // An unknown zone is one error, not a second one about the dates.
        let out = expand_dates("Mars/Olympus", "2025-01-02", "2025-01-01");
        assert_eq!(out.matches("compile_error").count(), 1, "{out}");
    }

    #[test]
    fn every_problem_is_reported() {
        let out = expand_str(
            quote!(
                schedule = "0 2 * *",
                start_date = "2025-13-01",
                sheduled = 1,
                timezone = "Europe/Amsterdm",
                max_active_runs = 0,
                dagrun_timeout = "soon",
                params(x = 1)
            ),
            quote!(
                async fn etl(x: u32) -> u32 {
                    5 >> load();
                    let parts = process.partial(scale = 2.0).expand(parts);
                    process.expand_kwargs(parts);
                    return 1;
                }
            ),
        );
        for message in [
            "invalid schedule `0 2 * *`: expected 5 fields",
            "invalid start_date `2025-13-01`",
            "unknown option `sheduled`",
            "unknown time zone `Europe/Amsterdm`; did you mean `Europe/Amsterdam`",
            "`max_active_runs` must be a whole number from 1",
            "invalid dagrun_timeout `soon`",
            "param `x` needs a type: write `x: u32 = 1`",
            "cannot be `async`",
            "takes no parameters",
            "has no return type",
            "is a literal",
            "`.expand(..)` takes named arguments",
            "`.expand_kwargs(..)` is not supported",
            "`return` cannot be used",
        ] {
            assert!(out.contains(message), "{message} in {out}");
        }
        assert!(
            !out.contains("inventory"),
            "no registration on error: {out}"
        );
    }
}

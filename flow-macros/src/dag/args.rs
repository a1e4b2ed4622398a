//! The options of `#[dag(..)]` and of its `default_args(..)`, read into typed values:
//! ids, the schedule and time zone (checked in `crate::check`), dates, limits.

use proc_macro2::{Span, TokenStream};
use syn::parse::ParseStream;
use syn::{Expr, LitBool, LitInt, LitStr, Token};

use super::params::{self, ParamArg};
use crate::attr::{self, DurationLit, Options, TaskOptionArgs, kw};
use crate::check::{schedule, timezone};
use crate::error::Errors;

/// `schedule = ".."`, `schedule = None` or `schedule = [ASSET, ..]`.
pub(super) enum ScheduleArg {
    None,
    Cron(LitStr),
    /// The assets the DAG is scheduled on (expressions of type `Asset`).
    Assets(Vec<Expr>),
}

/// The options of `#[dag(..)]`.
#[derive(Default)]
pub(super) struct DagArgs {
    pub(super) krate: Option<syn::Path>,
    pub(super) id: Option<LitStr>,
    pub(super) description: Option<LitStr>,
    pub(super) schedule: Option<ScheduleArg>,
    /// The name, and the zone if it is one.
    pub(super) timezone: Option<(LitStr, Option<chrono_tz::Tz>)>,
    pub(super) start_date: Option<DateArg>,
    pub(super) end_date: Option<DateArg>,
    pub(super) catchup: Option<LitBool>,
    pub(super) max_active_runs: Option<LitInt>,
    pub(super) max_active_tasks: Option<LitInt>,
    pub(super) on_success: Option<syn::ExprPath>,
    pub(super) on_failure: Option<syn::ExprPath>,
    pub(super) dagrun_timeout: Option<DurationLit>,
    pub(super) tags: Option<Vec<LitStr>>,
    pub(super) params: Option<Vec<ParamArg>>,
    pub(super) default_args: Option<TaskOptionArgs>,
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
            let example = r#"owner = "ml-team", retries = 2, retry_delay = "5m""#;
            self.default_args = Some(default_args(input, key.span, example, errors)?);
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
pub(crate) struct DefaultArgs(pub(crate) TaskOptionArgs);

/// `(..)` after `default_args`, of a DAG or a task group; `example` shows the options in
/// the message for a missing list.
pub(crate) fn default_args(
    input: ParseStream,
    key: Span,
    example: &str,
    errors: &mut Errors,
) -> syn::Result<TaskOptionArgs> {
    if !input.peek(syn::token::Paren) {
        return Err(syn::Error::new(
            key,
            format!("write `default_args({example})`"),
        ));
    }
    let content;
    syn::parenthesized!(content in input);
    let DefaultArgs(options) = attr::parse_options::<DefaultArgs>(&content, errors);
    Ok(options)
}

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
            "container",
            "it marks one task; write `#[task(container)]` on that task",
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
    const PLANNED: &'static [&'static str] = &["queue", "on_failure_callback"];

    fn parse_one(&mut self, input: ParseStream, _: &mut Errors) -> syn::Result<()> {
        if self.0.parse_one(input)? {
            Ok(())
        } else {
            Err(input.error("expected an option"))
        }
    }
}

pub(super) fn parse_args(args: TokenStream, errors: &mut Errors) -> DagArgs {
    attr::parse_all(args, errors)
}

pub(super) fn parse_schedule(input: ParseStream, key_span: Span) -> syn::Result<ScheduleArg> {
    if input.peek(Token![=]) && input.peek2(kw::None) {
        input.parse::<Token![=]>()?;
        input.parse::<kw::None>()?;
        return Ok(ScheduleArg::None);
    }
    if input.peek(Token![=]) && input.peek2(syn::token::Bracket) {
        input.parse::<Token![=]>()?;
        let example =
            "`schedule = [ORDERS]`, where `const ORDERS: Asset = Asset::new(\"s3://..\")`";
        return Ok(ScheduleArg::Assets(attr::asset_list(
            input, "schedule", example,
        )?));
    }
    if input.peek(Token![=]) && !input.peek2(syn::LitStr) {
        input.parse::<Token![=]>()?;
        let value: Expr = input.parse()?;
        return Err(syn::Error::new_spanned(
            value,
            "`schedule` takes a string, like `schedule = \"0 2 * * *\"` or \
             `schedule = \"@daily\"`, a list of assets, like `schedule = [ORDERS]`, \
             or `schedule = None` for manual runs only",
        ));
    }
    let text = attr::string(input, "schedule", key_span, "\"0 2 * * *\"")?;
    match schedule::message(&text.value()) {
        Ok(()) => Ok(ScheduleArg::Cron(text)),
        Err(message) => Err(syn::Error::new_spanned(&text, message)),
    }
}

/// A `start_date` or `end_date`, checked.
pub(super) struct DateArg {
    pub(super) lit: LitStr,
    pub(super) value: DateValue,
}

/// A date as the runtime reads it.
pub(super) enum DateValue {
    /// `2025-01-01`: midnight in the DAG's time zone.
    Day(chrono::NaiveDate),
    /// An RFC 3339 time, whose offset says where it is.
    Instant(chrono::DateTime<chrono::Utc>),
}

impl DateValue {
    /// The instant, read in `tz` as the runtime reads it: a day starts at its first
    /// instant (midnight, or the end of a change of the clocks that skips it).
    pub(super) fn instant(&self, tz: chrono_tz::Tz) -> Option<chrono::DateTime<chrono::Utc>> {
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
pub(super) fn check_date(key: &str, date: LitStr) -> syn::Result<DateArg> {
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
pub(super) fn check_dates(options: &DagArgs, errors: &mut Errors) {
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

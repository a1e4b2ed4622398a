//! Typed parsing of attribute arguments, shared by `#[task]`, `#[dag]` and `default_args(..)`.
//!
//! An attribute's arguments are a comma-separated list of options. [`parse_options`] reads
//! the list once for every attribute: it checks that each key is known (listing the valid
//! ones, with a suggestion for a typo), that no key is given twice, and hands each option
//! to the attribute's [`Options::parse_one`], which reads the value with the typed value
//! parsers of this module. A bad option is recorded and skipped, so every mistake of one
//! attribute is reported at once.

use std::time::Duration;

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote};
use syn::ext::IdentExt;
use syn::parse::ParseStream;
use syn::punctuated::Punctuated;
use syn::{Ident, Lit, LitBool, LitInt, LitStr, Token};

use crate::error::Errors;

/// The keys of every option, as `syn` keywords.
pub(crate) mod kw {
    syn::custom_keyword!(task_id);
    syn::custom_keyword!(retries);
    syn::custom_keyword!(retry_delay);
    syn::custom_keyword!(owner);
    syn::custom_keyword!(trigger_rule);
    syn::custom_keyword!(retry_exponential_backoff);
    syn::custom_keyword!(max_retry_delay);
    syn::custom_keyword!(execution_timeout);
    syn::custom_keyword!(branch);
    syn::custom_keyword!(short_circuit);
    syn::custom_keyword!(id);
    syn::custom_keyword!(description);
    syn::custom_keyword!(schedule);
    syn::custom_keyword!(start_date);
    syn::custom_keyword!(end_date);
    syn::custom_keyword!(timezone);
    syn::custom_keyword!(max_active_runs);
    syn::custom_keyword!(dagrun_timeout);
    syn::custom_keyword!(params);
    syn::custom_keyword!(catchup);
    syn::custom_keyword!(tags);
    syn::custom_keyword!(default_args);
    syn::custom_keyword!(None);
    syn::custom_keyword!(pool);
    syn::custom_keyword!(pool_slots);
    syn::custom_keyword!(priority_weight);
    syn::custom_keyword!(max_active_tasks);
    syn::custom_keyword!(shell);
    syn::custom_keyword!(on_success);
    syn::custom_keyword!(on_failure);
    syn::custom_keyword!(on_retry);
    syn::custom_keyword!(sensor);
    syn::custom_keyword!(poke_interval);
    syn::custom_keyword!(timeout);
    syn::custom_keyword!(mode);
    syn::custom_keyword!(soft_fail);
    syn::custom_keyword!(exponential_backoff);
    syn::custom_keyword!(email);
    syn::custom_keyword!(email_on_failure);
    syn::custom_keyword!(email_on_retry);
}

/// The options one attribute accepts.
pub(crate) trait Options: Default {
    /// The attribute, as named in messages: `#[task]`.
    const ATTRIBUTE: &'static str;
    /// The accepted keys, in the order the documentation lists them.
    const KEYS: &'static [&'static str];
    /// Keys of options that a later version will accept: these get "not supported yet"
    /// rather than "unknown".
    const PLANNED: &'static [&'static str];
    /// Airflow's names of options that have another name here: `(theirs, ours)`.
    const RENAMED: &'static [(&'static str, &'static str)] = &[];
    /// Options of another attribute that do not belong here: `(key, what to write)`.
    const ELSEWHERE: &'static [(&'static str, &'static str)] = &[];

    /// Parses one option whose key, one of [`Options::KEYS`], is next in `input`.
    /// Problems inside a nested list go to `errors`; a returned error makes the caller
    /// skip the rest of the option.
    fn parse_one(&mut self, input: ParseStream, errors: &mut Errors) -> syn::Result<()>;
}

/// Reads a comma-separated list of options, recording every problem in `errors`.
pub(crate) fn parse_options<O: Options>(input: ParseStream, errors: &mut Errors) -> O {
    let mut options = O::default();
    let mut seen: Vec<String> = Vec::new();
    while !input.is_empty() {
        match input.fork().call(Ident::parse_any) {
            Err(_) => {
                errors.push(input.error(format!(
                    "expected an option of `{}`: {}",
                    O::ATTRIBUTE,
                    key_list(O::KEYS)
                )));
                skip_option(input);
            }
            Ok(key) => {
                let name = key.unraw().to_string();
                if !O::KEYS.contains(&name.as_str()) {
                    errors.push(unknown_option::<O>(&key, &name));
                    skip_option(input);
                } else if seen.contains(&name) {
                    errors.at(
                        &key,
                        format!("duplicate option `{name}`: give each option once"),
                    );
                    // Still read the value, so a second mistake in it is reported too.
                    let mut ignored = O::default();
                    if let Err(error) = ignored.parse_one(input, errors) {
                        errors.push(error);
                        skip_option(input);
                    }
                } else {
                    seen.push(name);
                    if let Err(error) = options.parse_one(input, errors) {
                        errors.push(error);
                        skip_option(input);
                    }
                }
            }
        }
        if input.is_empty() {
            break;
        }
        if input.parse::<Token![,]>().is_err() {
            errors.push(input.error("expected `,` between options"));
            skip_option(input);
            // The loop guard and the skip above make progress; a failed `,` parse
            // here only means the input ended.
            let _ = input.parse::<Option<Token![,]>>();
        }
    }
    options
}

/// Reads an attribute's whole argument list.
pub(crate) fn parse_all<O: Options>(args: TokenStream, errors: &mut Errors) -> O {
    let mut parsed = None;
    let result = syn::parse::Parser::parse2(
        |input: ParseStream| {
            parsed = Some(parse_options::<O>(input, errors));
            Ok(())
        },
        args,
    );
    // `parse_options` consumes every token and records its own errors, so this is only
    // a safety net.
    if let Err(error) = result {
        errors.push(error);
    }
    parsed.unwrap_or_default()
}

/// Consumes tokens up to the next top-level `,` (not included) or the end.
fn skip_option(input: ParseStream) {
    while !input.is_empty() && !input.peek(Token![,]) {
        if input.parse::<TokenTree>().is_err() {
            break;
        }
    }
}

fn unknown_option<O: Options>(key: &Ident, name: &str) -> syn::Error {
    let valid = key_list(O::KEYS);
    let renamed = O::RENAMED.iter().find(|(theirs, _)| *theirs == name);
    let elsewhere = O::ELSEWHERE.iter().find(|(key, _)| *key == name);
    let message = if let Some((_, instead)) = elsewhere {
        format!("`{name}` does not go in `{}`: {instead}", O::ATTRIBUTE)
    } else if let Some((_, ours)) = renamed {
        format!(
            "`{name}` is called `{ours}` in `{}`: write `{ours} = ..`",
            O::ATTRIBUTE
        )
    } else if O::PLANNED.contains(&name) {
        format!(
            "option `{name}` is not supported yet by `{}`; the options are: {valid}",
            O::ATTRIBUTE
        )
    } else if let Some(close) = closest(name, O::KEYS) {
        format!(
            "unknown option `{name}` for `{}`: did you mean `{close}`? The options are: {valid}",
            O::ATTRIBUTE
        )
    } else {
        format!(
            "unknown option `{name}` for `{}`; the options are: {valid}",
            O::ATTRIBUTE
        )
    };
    syn::Error::new(key.span(), message)
}

/// `` `a`, `b`, `c` ``.
pub(crate) fn key_list(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The candidate closest to `wanted`, if it is close enough to be a likely typo.
pub(crate) fn closest<'a>(wanted: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(wanted, c), *c))
        .filter(|(distance, c)| *distance <= (c.len().max(wanted.len()) / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

// ---------------------------------------------------------------------------------------
// Values. Each reader takes the stream just after the key, reads `= value` and checks it.

/// Reads `= <literal>`; `example` is a correct value, shown in messages.
fn literal(input: ParseStream, key: &str, key_span: Span, example: &str) -> syn::Result<Lit> {
    if input.parse::<Option<Token![=]>>()?.is_none() {
        return Err(syn::Error::new(
            key_span,
            format!("expected `=` after `{key}`: `{key} = {example}`"),
        ));
    }
    if input.peek(Lit) {
        return input.parse();
    }
    let value: syn::Expr = input.parse()?;
    Err(syn::Error::new_spanned(
        value,
        format!(
            "`{key}` takes a literal: `{key} = {example}` (constants and expressions are not supported)"
        ),
    ))
}

/// `= "text"`.
pub(crate) fn string(
    input: ParseStream,
    key: &str,
    key_span: Span,
    example: &str,
) -> syn::Result<LitStr> {
    match literal(input, key, key_span, example)? {
        Lit::Str(s) => Ok(s),
        other => Err(syn::Error::new_spanned(
            &other,
            format!("`{key}` takes a string: `{key} = {example}`"),
        )),
    }
}

/// `= 3`: a whole number from 0 to `u32::MAX`.
pub(crate) fn count(input: ParseStream, key: &str, key_span: Span) -> syn::Result<LitInt> {
    count_from(input, key, key_span, 0, "")
}

/// `= 3`: a whole number from `min` to `u32::MAX`; `hint` follows the message of a number
/// out of range.
pub(crate) fn count_from(
    input: ParseStream,
    key: &str,
    key_span: Span,
    min: u32,
    hint: &str,
) -> syn::Result<LitInt> {
    let example = "3";
    let lit = literal(input, key, key_span, example)?;
    let message = match &lit {
        Lit::Int(int) => match int.base10_parse::<u32>() {
            Ok(n) if n >= min => return Ok(LitInt::new(&n.to_string(), int.span())),
            _ => format!(
                "`{key}` must be a whole number from {min} to {}{hint}",
                u32::MAX
            ),
        },
        Lit::Str(s) if s.value().trim().parse::<u32>().is_ok() => format!(
            "`{key}` takes a number, not a string: `{key} = {}`",
            s.value().trim()
        ),
        _ => format!("`{key}` takes a whole number: `{key} = {example}`"),
    };
    Err(syn::Error::new_spanned(lit, message))
}

/// A whole number that may be negative, checked at compile time, with its literal's span.
pub(crate) struct WeightLit {
    pub(crate) value: i32,
    pub(crate) span: Span,
}

impl WeightLit {
    /// `10`, or `-5` as a minus and a literal, at the user's literal.
    pub(crate) fn tokens(&self) -> TokenStream {
        let mut magnitude = proc_macro2::Literal::u32_unsuffixed(self.value.unsigned_abs());
        magnitude.set_span(self.span);
        if self.value < 0 {
            quote::quote_spanned!(self.span=> -#magnitude)
        } else {
            magnitude.into_token_stream()
        }
    }
}

/// `= 10` or `= -5`: a whole number that fits an `i32`.
pub(crate) fn weight(input: ParseStream, key: &str, key_span: Span) -> syn::Result<WeightLit> {
    let example = "10";
    if input.parse::<Option<Token![=]>>()?.is_none() {
        return Err(syn::Error::new(
            key_span,
            format!("expected `=` after `{key}`: `{key} = {example}`"),
        ));
    }
    let minus: Option<Token![-]> = input.parse()?;
    if !input.peek(Lit) {
        let value: syn::Expr = input.parse()?;
        return Err(syn::Error::new_spanned(
            quote!(#minus #value),
            format!(
                "`{key}` takes a literal: `{key} = {example}` (constants and expressions are not supported)"
            ),
        ));
    }
    let lit: Lit = input.parse()?;
    let sign = if minus.is_some() { "-" } else { "" };
    let message = match &lit {
        Lit::Int(int) => match format!("{sign}{}", int.base10_digits()).parse::<i32>() {
            Ok(value) => {
                return Ok(WeightLit {
                    value,
                    span: int.span(),
                });
            }
            Err(_) => format!(
                "`{key}` must be a whole number from {} to {}",
                i32::MIN,
                i32::MAX
            ),
        },
        Lit::Str(s) if s.value().trim().parse::<i32>().is_ok() => format!(
            "`{key}` takes a number, not a string: `{key} = {}`",
            s.value().trim()
        ),
        _ => format!("`{key}` takes a whole number: `{key} = {example}`"),
    };
    Err(syn::Error::new_spanned(quote!(#minus #lit), message))
}

/// `= "gpu"`: the name of a pool, written like an id.
pub(crate) fn pool_name(input: ParseStream, key: &str, key_span: Span) -> syn::Result<LitStr> {
    let lit = string(input, key, key_span, "\"gpu\"")?;
    match check_id(&lit.value()) {
        Ok(()) => Ok(lit),
        Err(reason) => Err(syn::Error::new_spanned(
            &lit,
            format!("invalid pool name `{}`: {reason}", lit.value()),
        )),
    }
}

/// `= notify`: the path of a function taking `&CallbackEvent`.
pub(crate) fn callback(
    input: ParseStream,
    key: &str,
    key_span: Span,
) -> syn::Result<syn::ExprPath> {
    let example = format!("`{key} = notify_team`, where `fn notify_team(event: &CallbackEvent)`");
    if input.parse::<Option<Token![=]>>()?.is_none() {
        return Err(syn::Error::new(
            key_span,
            format!("expected `=` after `{key}`: {example}"),
        ));
    }
    if input.peek(LitStr) {
        let lit: LitStr = input.parse()?;
        let written = lit.parse::<syn::ExprPath>().map_or_else(
            |_| "notify_team".to_string(),
            |path| path.to_token_stream().to_string().replace(' ', ""),
        );
        return Err(syn::Error::new_spanned(
            lit,
            format!(
                "`{key}` takes the path of a function, not a string: write `{key} = {written}` without quotes"
            ),
        ));
    }
    match input.parse::<syn::Expr>()? {
        syn::Expr::Path(path) => Ok(path),
        other => Err(syn::Error::new_spanned(
            other,
            format!("`{key}` takes the path of a function: {example}"),
        )),
    }
}

/// `= true` or `= false`; `example` is the value shown in messages.
pub(crate) fn boolean(
    input: ParseStream,
    key: &str,
    key_span: Span,
    example: bool,
) -> syn::Result<LitBool> {
    let lit = literal(input, key, key_span, &example.to_string())?;
    let message = match &lit {
        Lit::Bool(b) => return Ok(b.clone()),
        Lit::Str(s) if matches!(s.value().as_str(), "true" | "false") => format!(
            "`{key}` takes `true` or `false` without quotes: `{key} = {}`",
            s.value()
        ),
        _ => format!("`{key}` takes `true` or `false`: `{key} = {example}`"),
    };
    Err(syn::Error::new_spanned(lit, message))
}

/// A duration checked at compile time, with the literal it came from.
pub(crate) struct DurationLit {
    pub(crate) value: Duration,
    pub(crate) span: Span,
}

/// `= "5m"`: a human-readable duration (`30s`, `5m`, `1h 30m`).
pub(crate) fn duration(input: ParseStream, key: &str, key_span: Span) -> syn::Result<DurationLit> {
    let example = "\"5m\"";
    let lit = literal(input, key, key_span, example)?;
    let message = match &lit {
        Lit::Str(s) => match parse_duration(&s.value()) {
            Ok(value) => {
                return Ok(DurationLit {
                    value,
                    span: s.span(),
                });
            }
            Err(reason) => format!("invalid {key} `{}`: {reason}", s.value()),
        },
        Lit::Int(int) => format!(
            "`{key}` takes a duration string with a unit: `{key} = \"{}s\"` (write durations like `30s`, `5m`, `1h 30m`)",
            int.base10_digits()
        ),
        _ => format!(
            "`{key}` takes a duration string: `{key} = {example}` (write durations like `30s`, `5m`, `1h 30m`)"
        ),
    };
    Err(syn::Error::new_spanned(lit, message))
}

/// `= "10m"`: a duration longer than zero.
pub(crate) fn positive_duration(
    input: ParseStream,
    key: &str,
    key_span: Span,
) -> syn::Result<DurationLit> {
    let duration = duration(input, key, key_span)?;
    if duration.value.is_zero() {
        return Err(syn::Error::new(
            duration.span,
            format!(
                "{key} must be longer than 0s: `{key} = \"10m\"`, or leave it out for no limit"
            ),
        ));
    }
    Ok(duration)
}

/// Airflow's trigger rules: `(name, variant of flow_runtime::TriggerRule)`. The one list
/// of them in this crate; it mirrors `TriggerRule::ALL` of the runtime.
pub(crate) const TRIGGER_RULES: [(&str, &str); 11] = [
    ("all_success", "AllSuccess"),
    ("all_failed", "AllFailed"),
    ("all_done", "AllDone"),
    ("all_skipped", "AllSkipped"),
    ("one_success", "OneSuccess"),
    ("one_failed", "OneFailed"),
    ("one_done", "OneDone"),
    ("none_failed", "NoneFailed"),
    ("none_failed_min_one_success", "NoneFailedMinOneSuccess"),
    ("none_skipped", "NoneSkipped"),
    ("always", "Always"),
];

/// A trigger rule checked at compile time: the variant of `TriggerRule`, at the literal.
pub(crate) struct TriggerRuleLit {
    pub(crate) variant: &'static str,
    pub(crate) span: Span,
}

/// `= "all_done"`: one of Airflow's trigger rules, by name.
pub(crate) fn trigger_rule(
    input: ParseStream,
    key: &str,
    key_span: Span,
) -> syn::Result<TriggerRuleLit> {
    let names: Vec<&str> = TRIGGER_RULES.iter().map(|(name, _)| *name).collect();
    let valid = key_list(&names);
    if input.parse::<Option<Token![=]>>()?.is_none() {
        return Err(syn::Error::new(
            key_span,
            format!("expected `=` after `{key}`: `{key} = \"all_done\"`"),
        ));
    }
    if input.peek(LitStr) {
        let lit: LitStr = input.parse()?;
        let name = lit.value();
        if let Some((_, variant)) = TRIGGER_RULES.iter().find(|(n, _)| *n == name) {
            return Ok(TriggerRuleLit {
                variant,
                span: lit.span(),
            });
        }
        let message = match closest(&name, &names).or_else(|| rule_named(&name)) {
            Some(close) => format!(
                "unknown trigger rule `{name}`: did you mean `{close}`? The rules are: {valid}"
            ),
            None => format!("unknown trigger rule `{name}`; the rules are: {valid}"),
        };
        return Err(syn::Error::new(lit.span(), message));
    }
    let value: syn::Expr = input.parse()?;
    // `TriggerRule::AllDone`, `TriggerRule.ALL_DONE`, `all_done`: a rule, but not a string.
    let named = match &value {
        syn::Expr::Path(path) => path.path.segments.last().map(|s| s.ident.to_string()),
        syn::Expr::Field(field) => match &field.member {
            syn::Member::Named(ident) => Some(ident.to_string()),
            syn::Member::Unnamed(_) => None,
        },
        _ => None,
    };
    let message = match named.as_deref().and_then(rule_named) {
        Some(name) => format!("`{key}` takes the rule's name as a string: `{key} = \"{name}\"`"),
        None => format!("`{key}` takes a string, one of: {valid}"),
    };
    Err(syn::Error::new_spanned(value, message))
}

/// Airflow's sensor modes: `(name, variant of flow_runtime::sensor::SensorMode)`.
pub(crate) const SENSOR_MODES: [(&str, &str); 2] = [("poke", "Poke"), ("reschedule", "Reschedule")];

/// A sensor mode checked at compile time: the variant of `SensorMode`, at the literal.
pub(crate) struct SensorModeLit {
    pub(crate) variant: &'static str,
    pub(crate) span: Span,
}

/// `= "reschedule"`: one of Airflow's sensor modes, by name.
pub(crate) fn sensor_mode(
    input: ParseStream,
    key: &str,
    key_span: Span,
) -> syn::Result<SensorModeLit> {
    let names: Vec<&str> = SENSOR_MODES.iter().map(|(name, _)| *name).collect();
    let valid = key_list(&names);
    let lit = string(input, key, key_span, "\"reschedule\"")?;
    let name = lit.value();
    if let Some((_, variant)) = SENSOR_MODES.iter().find(|(n, _)| *n == name.trim()) {
        return Ok(SensorModeLit {
            variant,
            span: lit.span(),
        });
    }
    let message = match closest(&name.to_ascii_lowercase(), &names) {
        Some(close) => {
            format!("unknown sensor mode `{name}`: did you mean `{close}`? The modes are: {valid}")
        }
        None => format!(
            "unknown sensor mode `{name}`; the modes are: {valid} (`poke` keeps the slot \
             between pokes, `reschedule` gives it back)"
        ),
    };
    Err(syn::Error::new(lit.span(), message))
}

/// The rule written in any case, with or without `_`: `AllDone`, `ALL_DONE` -> `all_done`.
fn rule_named(written: &str) -> Option<&'static str> {
    let squash = |s: &str| s.replace('_', "").to_ascii_lowercase();
    let wanted = squash(written);
    TRIGGER_RULES
        .iter()
        .find(|(name, _)| squash(name) == wanted)
        .map(|(name, _)| *name)
}

/// Parses a duration as the runtime does, with a reason and a hint on failure.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("{e} (write durations like `30s`, `5m`, `1h 30m`)"))
}

/// `= "load_data"`: an id of a DAG or task (`what`), checked like the runtime checks it.
pub(crate) fn id(input: ParseStream, key: &str, key_span: Span, what: &str) -> syn::Result<LitStr> {
    let lit = string(input, key, key_span, "\"load_data\"")?;
    match check_id(&lit.value()) {
        Ok(()) => Ok(lit),
        Err(reason) if lit.value().is_empty() => Err(syn::Error::new_spanned(
            &lit,
            format!("invalid {what} id: {reason}"),
        )),
        Err(reason) => Err(syn::Error::new_spanned(
            &lit,
            format!("invalid {what} id `{}`: {reason}", lit.value()),
        )),
    }
}

/// Why `id` is not a valid DAG or task id, mirroring the runtime's rule: 1 to 250 ASCII
/// letters, digits, `_`, `-` and `.`.
pub(crate) fn check_id(id: &str) -> Result<(), String> {
    const RULE: &str = "use letters, digits, `_`, `-` and `.` only";
    if id.is_empty() {
        return Err(format!("an id cannot be empty; {RULE}"));
    }
    if id.len() > 250 {
        return Err(format!(
            "an id has at most 250 characters, this one has {}",
            id.len()
        ));
    }
    match id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        Some(bad) => Err(format!("{RULE} (found {bad:?})")),
        None => Ok(()),
    }
}

/// `= ["a", "b"]`.
pub(crate) fn string_list(
    input: ParseStream,
    key: &str,
    key_span: Span,
    example: &str,
) -> syn::Result<Vec<LitStr>> {
    if input.parse::<Option<Token![=]>>()?.is_none() {
        return Err(syn::Error::new(
            key_span,
            format!("expected `=` after `{key}`: `{key} = {example}`"),
        ));
    }
    if !input.peek(syn::token::Bracket) {
        let value: syn::Expr = input.parse()?;
        return Err(syn::Error::new_spanned(
            value,
            format!("`{key}` takes a list of strings: `{key} = {example}`"),
        ));
    }
    let content;
    syn::bracketed!(content in input);
    let items = Punctuated::<syn::Expr, Token![,]>::parse_terminated(&content)?;
    let mut strings = Vec::with_capacity(items.len());
    for item in items {
        match item {
            syn::Expr::Lit(syn::ExprLit {
                lit: Lit::Str(s), ..
            }) => strings.push(s),
            other => {
                return Err(syn::Error::new_spanned(
                    other,
                    format!("`{key}` takes string literals: `{key} = {example}`"),
                ));
            }
        }
    }
    Ok(strings)
}

/// `= ["ops@example.com"]`: the addresses are checked fully when the DAG is built; here
/// only that each looks like one.
fn email_list(input: ParseStream, key_span: Span) -> syn::Result<Vec<LitStr>> {
    let addresses = string_list(input, "email", key_span, "[\"ops@example.com\"]")?;
    if let Some(bad) = addresses.iter().find(|a| !a.value().contains('@')) {
        return Err(syn::Error::new_spanned(
            bad,
            format!(
                "`email` takes email addresses, and `{}` has no `@`: `email = [\"ops@example.com\"]`",
                bad.value()
            ),
        ));
    }
    Ok(addresses)
}

/// `crate = "::path::to::flow_runtime"`: where the generated code finds the runtime.
pub(crate) fn crate_path(input: ParseStream, key_span: Span) -> syn::Result<syn::Path> {
    let lit = string(input, "crate", key_span, "\"::flow_runtime\"")?;
    lit.parse_with(syn::Path::parse_mod_style).map_err(|_| {
        syn::Error::new_spanned(
            &lit,
            "`crate` takes the path of the flow runtime crate: `crate = \"::flow_runtime\"`",
        )
    })
}

/// The root path of generated code: `::flow_runtime` unless `crate = ".."` says otherwise.
pub(crate) fn root(krate: Option<&syn::Path>) -> TokenStream {
    krate.map_or_else(|| quote!(::flow_runtime), ToTokens::to_token_stream)
}

// ---------------------------------------------------------------------------------------
// Options shared by `#[task]` and `default_args(..)`.

/// The options a task sets itself or inherits from its DAG's `default_args(..)`.
#[derive(Default)]
pub(crate) struct TaskOptionArgs {
    pub(crate) retries: Option<LitInt>,
    pub(crate) retry_delay: Option<DurationLit>,
    pub(crate) owner: Option<LitStr>,
    pub(crate) trigger_rule: Option<TriggerRuleLit>,
    pub(crate) retry_exponential_backoff: Option<LitBool>,
    pub(crate) max_retry_delay: Option<DurationLit>,
    pub(crate) execution_timeout: Option<DurationLit>,
    pub(crate) pool: Option<LitStr>,
    pub(crate) priority_weight: Option<WeightLit>,
    pub(crate) email: Option<Vec<LitStr>>,
    pub(crate) email_on_failure: Option<LitBool>,
    pub(crate) email_on_retry: Option<LitBool>,
}

impl TaskOptionArgs {
    /// The keys read by [`TaskOptionArgs::parse_one`].
    pub(crate) const KEYS: [&'static str; 12] = [
        "retries",
        "retry_delay",
        "owner",
        "trigger_rule",
        "retry_exponential_backoff",
        "max_retry_delay",
        "execution_timeout",
        "pool",
        "priority_weight",
        "email",
        "email_on_failure",
        "email_on_retry",
    ];

    /// Reads one of [`TaskOptionArgs::KEYS`] if it is next; `Ok(false)` otherwise.
    pub(crate) fn parse_one(&mut self, input: ParseStream) -> syn::Result<bool> {
        if input.peek(kw::retries) {
            let key: kw::retries = input.parse()?;
            self.retries = Some(count(input, "retries", key.span)?);
        } else if input.peek(kw::retry_delay) {
            let key: kw::retry_delay = input.parse()?;
            self.retry_delay = Some(duration(input, "retry_delay", key.span)?);
        } else if input.peek(kw::owner) {
            let key: kw::owner = input.parse()?;
            let owner = string(input, "owner", key.span, "\"ml-team\"")?;
            if owner.value().trim().is_empty() {
                return Err(syn::Error::new_spanned(owner, "`owner` cannot be empty"));
            }
            self.owner = Some(owner);
        } else if input.peek(kw::trigger_rule) {
            let key: kw::trigger_rule = input.parse()?;
            self.trigger_rule = Some(trigger_rule(input, "trigger_rule", key.span)?);
        } else if input.peek(kw::retry_exponential_backoff) {
            let key: kw::retry_exponential_backoff = input.parse()?;
            let on = boolean(input, "retry_exponential_backoff", key.span, true)?;
            self.retry_exponential_backoff = Some(on);
        } else if input.peek(kw::max_retry_delay) {
            let key: kw::max_retry_delay = input.parse()?;
            self.max_retry_delay = Some(duration(input, "max_retry_delay", key.span)?);
        } else if input.peek(kw::execution_timeout) {
            let key: kw::execution_timeout = input.parse()?;
            let timeout = positive_duration(input, "execution_timeout", key.span)?;
            self.execution_timeout = Some(timeout);
        } else if input.peek(kw::pool) {
            let key: kw::pool = input.parse()?;
            self.pool = Some(pool_name(input, "pool", key.span)?);
        } else if input.peek(kw::priority_weight) {
            let key: kw::priority_weight = input.parse()?;
            self.priority_weight = Some(weight(input, "priority_weight", key.span)?);
        } else if input.peek(kw::email_on_failure) {
            let key: kw::email_on_failure = input.parse()?;
            self.email_on_failure = Some(boolean(input, "email_on_failure", key.span, true)?);
        } else if input.peek(kw::email_on_retry) {
            let key: kw::email_on_retry = input.parse()?;
            self.email_on_retry = Some(boolean(input, "email_on_retry", key.span, false)?);
        } else if input.peek(kw::email) {
            let key: kw::email = input.parse()?;
            self.email = Some(email_list(input, key.span)?);
        } else {
            return Ok(false);
        }
        Ok(true)
    }

    /// The options as `(setter, argument)` pairs, in the order of [`TaskOptionArgs::KEYS`].
    fn setters(&self, root: &TokenStream) -> Vec<(&'static str, TokenStream)> {
        let mut setters = Vec::new();
        if let Some(retries) = &self.retries {
            setters.push(("retries", retries.to_token_stream()));
        }
        if let Some(delay) = &self.retry_delay {
            setters.push(("retry_delay", duration_tokens(root, delay)));
        }
        if let Some(owner) = &self.owner {
            setters.push(("owner", owner.to_token_stream()));
        }
        if let Some(rule) = &self.trigger_rule {
            let variant = Ident::new(rule.variant, rule.span);
            setters.push((
                "trigger_rule",
                quote!(#root::__private::TriggerRule::#variant),
            ));
        }
        if let Some(on) = &self.retry_exponential_backoff {
            setters.push(("retry_exponential_backoff", on.to_token_stream()));
        }
        if let Some(delay) = &self.max_retry_delay {
            setters.push(("max_retry_delay", duration_tokens(root, delay)));
        }
        if let Some(timeout) = &self.execution_timeout {
            setters.push(("execution_timeout", duration_tokens(root, timeout)));
        }
        if let Some(weight) = &self.priority_weight {
            setters.push(("priority_weight", weight.tokens()));
        }
        if let Some(email) = &self.email {
            // `[""; 0]` gives an empty list its element type.
            let list = if email.is_empty() {
                quote!([""; 0])
            } else {
                quote!([#(#email),*])
            };
            setters.push(("email", list));
        }
        if let Some(on) = &self.email_on_failure {
            setters.push(("email_on_failure", on.to_token_stream()));
        }
        if let Some(on) = &self.email_on_retry {
            setters.push(("email_on_retry", on.to_token_stream()));
        }
        setters
    }

    /// The options as `TaskSpec` setters: `.retries(2).retry_delay(..).owner(..)`. A task
    /// sets its pool with the slots it takes: `.pool("gpu", 2)`; `pool_slots` alone takes
    /// slots of `default_pool`.
    pub(crate) fn spec_setters(
        &self,
        root: &TokenStream,
        pool_slots: Option<&LitInt>,
    ) -> TokenStream {
        let mut tokens: TokenStream = self
            .setters(root)
            .into_iter()
            .map(|(setter, value)| {
                let setter = Ident::new(setter, Span::call_site());
                quote!(.#setter(#value))
            })
            .collect();
        let slots = pool_slots.map_or_else(|| quote!(1), ToTokens::to_token_stream);
        match (&self.pool, pool_slots) {
            (Some(pool), _) => tokens.extend(quote!(.pool(#pool, #slots))),
            (None, Some(_)) => {
                tokens.extend(quote!(.pool(#root::__private::DEFAULT_POOL, #slots)));
            }
            (None, None) => {}
        }
        tokens
    }

    /// The options as a `TaskOptions` value: `TaskOptions::default().with_retries(2)..`.
    pub(crate) fn task_options(&self, root: &TokenStream) -> TokenStream {
        let mut tokens = quote!(#root::__private::TaskOptions::default());
        if let Some(pool) = &self.pool {
            tokens.extend(quote!(.with_pool(#pool)));
        }
        for (setter, value) in self.setters(root) {
            let setter = format_ident!("with_{}", setter);
            tokens.extend(quote!(.#setter(#value)));
        }
        tokens
    }
}

/// `Duration::from_millis(300_000)` (or `Duration::new(s, ns)` below a millisecond).
pub(crate) fn duration_tokens(root: &TokenStream, duration: &DurationLit) -> TokenStream {
    let span = duration.span;
    let value = duration.value;
    match u64::try_from(value.as_millis()) {
        Ok(millis) if value.subsec_nanos().is_multiple_of(1_000_000) => {
            let millis = LitInt::new(&grouped(u128::from(millis)), span);
            quote!(#root::__private::Duration::from_millis(#millis))
        }
        _ => {
            let secs = LitInt::new(&grouped(u128::from(value.as_secs())), span);
            let nanos = LitInt::new(&grouped(u128::from(value.subsec_nanos())), span);
            quote!(#root::__private::Duration::new(#secs, #nanos))
        }
    }
}

/// `300000` as `300_000`, so generated literals pass `clippy::unreadable_literal`.
fn grouped(n: u128) -> String {
    let digits = n.to_string();
    if digits.len() <= 4 {
        return digits;
    }
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('_');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_the_runtime_reads_them() {
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration(" 30s "), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        let err = parse_duration("5 minutes please").unwrap_err();
        assert!(err.contains("`30s`, `5m`"), "{err}");
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn ids_follow_the_runtime_rule() {
        assert!(check_id("load_data").is_ok());
        assert!(check_id("etl.v2-daily").is_ok());
        assert!(check_id("Load9").is_ok());
        assert!(check_id("load data").unwrap_err().contains("found ' '"));
        assert!(check_id("données").unwrap_err().contains("found 'é'"));
        assert!(check_id("").unwrap_err().contains("empty"));
        assert!(check_id(&"a".repeat(251)).unwrap_err().contains("250"));
        assert!(check_id(&"a".repeat(250)).is_ok());
    }

    #[test]
    fn typos_get_a_suggestion_and_strangers_do_not() {
        let keys = ["task_id", "retries", "retry_delay", "owner", "crate"];
        assert_eq!(closest("retires", &keys), Some("retries"));
        assert_eq!(closest("retry_dealy", &keys), Some("retry_delay"));
        assert_eq!(closest("taskid", &keys), Some("task_id"));
        assert_eq!(closest("ownr", &keys), Some("owner"));
        assert_eq!(closest("pool", &keys), None);
        assert_eq!(closest("schedule", &keys), None);
    }

    #[test]
    fn trigger_rules_are_airflows() {
        let names: Vec<&str> = TRIGGER_RULES.iter().map(|(name, _)| *name).collect();
        for (name, variant) in TRIGGER_RULES {
            assert_eq!(rule_named(name), Some(name));
            assert_eq!(rule_named(variant), Some(name), "{variant}");
            assert_eq!(names.iter().filter(|n| **n == name).count(), 1, "{name}");
        }
        assert_eq!(rule_named("ALL_DONE"), Some("all_done"));
        assert_eq!(rule_named("whenever"), None);
        assert_eq!(closest("all_don", &names), Some("all_done"));
        assert_eq!(closest("non_failed", &names), Some("none_failed"));
        assert_eq!(closest("whenever", &names), None);
    }

    #[test]
    fn long_literals_get_separators() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(5000), "5000");
        assert_eq!(grouped(30_000), "30_000");
        assert_eq!(grouped(300_000), "300_000");
        assert_eq!(grouped(1_234_567), "1_234_567");
    }

    fn parse_task_options(tokens: TokenStream) -> (TaskOptionArgs, Vec<String>) {
        #[derive(Default)]
        struct Only(TaskOptionArgs);
        impl Options for Only {
            const ATTRIBUTE: &'static str = "#[test]";
            const KEYS: &'static [&'static str] = &TaskOptionArgs::KEYS;
            const PLANNED: &'static [&'static str] = &["queue"];
            fn parse_one(&mut self, input: ParseStream, _: &mut Errors) -> syn::Result<()> {
                self.0.parse_one(input).map(drop)
            }
        }
        let mut errors = Errors::default();
        let parsed = syn::parse::Parser::parse2(
            |input: ParseStream| Ok(parse_options::<Only>(input, &mut errors)),
            tokens,
        )
        .unwrap();
        let messages = errors
            .to_compile_errors()
            .into_iter()
            .filter_map(|tree| match tree {
                TokenTree::Group(g) => Some(g.stream().to_string()),
                _ => None,
            })
            .collect();
        (parsed.0, messages)
    }

    #[test]
    fn every_mistake_of_an_attribute_is_reported() {
        let (options, errors) = parse_task_options(quote!(
            retries = "2",
            retry_delay = "5 minutes please",
            queue = "x",
            retires = 1,
            owner = "a",
            owner = "b"
        ));
        assert_eq!(errors.len(), 5, "{errors:#?}");
        assert!(errors[0].contains("takes a number, not a string: `retries = 2`"));
        assert!(errors[1].contains("invalid retry_delay `5 minutes please`"));
        assert!(errors[2].contains("not supported yet"));
        assert!(errors[3].contains("did you mean `retries`?"));
        assert!(errors[4].contains("duplicate option `owner`"));
        assert_eq!(options.owner.map(|o| o.value()).as_deref(), Some("a"));
    }

    #[test]
    fn valid_options_are_typed() {
        let (options, errors) =
            parse_task_options(quote!(retries = 2, retry_delay = "1h 30m", owner = "ml"));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            options
                .retries
                .map(|r| r.base10_digits().to_string())
                .as_deref(),
            Some("2")
        );
        assert_eq!(
            options.retry_delay.map(|d| d.value),
            Some(Duration::from_secs(5400))
        );
        let root = quote!(::flow_runtime);
        let (options, _) = parse_task_options(quote!(retry_delay = "5m"));
        assert_eq!(
            options.spec_setters(&root, None).to_string(),
            quote!(.retry_delay(::flow_runtime::__private::Duration::from_millis(300_000)))
                .to_string()
        );
    }

    #[test]
    fn email_options_become_setters() {
        let (options, errors) = parse_task_options(quote!(
            email = ["ops@example.com", "Oncall <oncall@example.com>"],
            email_on_failure = true,
            email_on_retry = false
        ));
        assert!(errors.is_empty(), "{errors:?}");
        let root = quote!(::flow_runtime);
        assert_eq!(
            options.spec_setters(&root, None).to_string(),
            quote!(
                .email(["ops@example.com", "Oncall <oncall@example.com>"])
                .email_on_failure(true)
                .email_on_retry(false)
            )
            .to_string()
        );
        let (none, _) = parse_task_options(quote!(email = []));
        assert_eq!(
            none.task_options(&root).to_string(),
            quote!(::flow_runtime::__private::TaskOptions::default().with_email([""; 0]))
                .to_string()
        );
    }

    #[test]
    fn steering_options_are_typed() {
        let (options, errors) = parse_task_options(quote!(
            trigger_rule = "all_done",
            retry_exponential_backoff = true,
            max_retry_delay = "1h",
            execution_timeout = "10m"
        ));
        assert!(errors.is_empty(), "{errors:?}");
        let root = quote!(::flow_runtime);
        assert_eq!(
            options.spec_setters(&root, None).to_string(),
            quote!(
                .trigger_rule(::flow_runtime::__private::TriggerRule::AllDone)
                .retry_exponential_backoff(true)
                .max_retry_delay(::flow_runtime::__private::Duration::from_millis(3_600_000))
                .execution_timeout(::flow_runtime::__private::Duration::from_millis(600_000))
            )
            .to_string()
        );
        let defaults = options.task_options(&root).to_string();
        assert!(
            defaults.starts_with(
                &quote!(
                    ::flow_runtime::__private::TaskOptions::default()
                        .with_trigger_rule(::flow_runtime::__private::TriggerRule::AllDone)
                        .with_retry_exponential_backoff(true)
                )
                .to_string()
            ),
            "{defaults}"
        );
    }

    #[test]
    fn pools_and_weights_are_typed() {
        let (options, errors) = parse_task_options(quote!(pool = "gpu", priority_weight = -5));
        assert!(errors.is_empty(), "{errors:?}");
        let root = quote!(::flow_runtime);
        let slots = LitInt::new("2", Span::call_site());
        assert_eq!(
            options.spec_setters(&root, Some(&slots)).to_string(),
            quote!(.priority_weight(-5).pool("gpu", 2)).to_string()
        );
        assert_eq!(
            options.task_options(&root).to_string(),
            quote!(
                ::flow_runtime::__private::TaskOptions::default()
                    .with_pool("gpu")
                    .with_priority_weight(-5)
            )
            .to_string()
        );
        let (options, _) = parse_task_options(quote!(priority_weight = 10));
        assert_eq!(
            options.spec_setters(&root, Some(&slots)).to_string(),
            quote!(.priority_weight(10).pool(::flow_runtime::__private::DEFAULT_POOL, 2))
                .to_string()
        );
        let (_, errors) = parse_task_options(quote!(
            pool = "a b",
            priority_weight = -3000000000,
            priority_weight = x
        ));
        assert_eq!(errors.len(), 4, "{errors:#?}");
        assert!(errors[0].contains("invalid pool name"), "{}", errors[0]);
        assert!(errors[3].contains("takes a literal"), "{}", errors[3]);
        assert!(errors[1].contains("from -2147483648"), "{}", errors[1]);
        assert!(errors[2].contains("duplicate"), "{}", errors[2]);
    }

    #[test]
    fn steering_mistakes_are_explained() {
        let (options, errors) = parse_task_options(quote!(
            trigger_rule = "all_don",
            retry_exponential_backoff = "yes",
            max_retry_delay = 60,
            execution_timeout = "0s",
            trigger_rule = TriggerRule::OneFailed
        ));
        assert_eq!(errors.len(), 6, "{errors:#?}");
        assert!(
            errors[5].contains("`trigger_rule = \\\"one_failed\\\"`"),
            "{}",
            errors[5]
        );
        assert!(
            errors[0].contains("did you mean `all_done`?"),
            "{}",
            errors[0]
        );
        assert!(
            errors[1].contains("takes `true` or `false`"),
            "{}",
            errors[1]
        );
        assert!(
            errors[2].contains("max_retry_delay = \\\"60s\\\""),
            "{}",
            errors[2]
        );
        assert!(errors[3].contains("longer than 0s"), "{}", errors[3]);
        assert!(
            errors[4].contains("duplicate option `trigger_rule`"),
            "{}",
            errors[4]
        );
        assert!(options.trigger_rule.is_none() && options.execution_timeout.is_none());
    }
}

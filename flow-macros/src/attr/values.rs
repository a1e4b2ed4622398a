//! Typed value readers: each takes the stream just after an option's key, reads
//! `= value` and checks it at compile time, with a message that shows a correct value.

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Lit, LitBool, LitInt, LitStr, Token};

use super::{closest, key_list};

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

/// `= "ml-team"`: who is responsible for a task, not empty.
pub(crate) fn owner(input: ParseStream, key: &str, key_span: Span) -> syn::Result<LitStr> {
    let owner = string(input, key, key_span, "\"ml-team\"")?;
    if owner.value().trim().is_empty() {
        return Err(syn::Error::new_spanned(
            owner,
            format!("`{key}` cannot be empty"),
        ));
    }
    Ok(owner)
}

/// `= notify`: the path of a function taking `&CallbackEvent`.
pub(crate) fn callback(
    input: ParseStream,
    key: &str,
    key_span: Span,
) -> syn::Result<syn::ExprPath> {
    let example = format!("`{key} = notify_team`, where `fn notify_team(event: &CallbackEvent)`");
    function_path(input, key, key_span, &example)
}

/// `= path` of a function (not a string, not a call); `example` shows one in messages.
pub(crate) fn function_path(
    input: ParseStream,
    key: &str,
    key_span: Span,
    example: &str,
) -> syn::Result<syn::ExprPath> {
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
pub(crate) const TRIGGER_RULES: [(&str, &str); 13] = [
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
    ("all_done_min_one_success", "AllDoneMinOneSuccess"),
    ("always", "Always"),
    ("all_done_setup_success", "AllDoneSetupSuccess"),
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
pub(crate) fn rule_named(written: &str) -> Option<&'static str> {
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
pub(crate) fn email_list(
    input: ParseStream,
    key: &str,
    key_span: Span,
) -> syn::Result<Vec<LitStr>> {
    let addresses = string_list(input, key, key_span, "[\"ops@example.com\"]")?;
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
pub(crate) fn grouped(n: u128) -> String {
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

/// `[a, b, ..]`: at least one asset, each an expression of type `Asset` (a string is
/// refused with the way to write it); `example` shows a list in messages.
pub(crate) fn asset_list(
    input: ParseStream,
    key: &str,
    example: &str,
) -> syn::Result<Vec<syn::Expr>> {
    let content;
    let brackets = syn::bracketed!(content in input);
    let items = content.parse_terminated(syn::Expr::parse, Token![,])?;
    if items.is_empty() {
        return Err(syn::Error::new(
            brackets.span.join(),
            format!("`{key}` lists at least one asset: {example}"),
        ));
    }
    for item in &items {
        if let syn::Expr::Lit(syn::ExprLit {
            lit: Lit::Str(uri), ..
        }) = item
        {
            return Err(syn::Error::new_spanned(
                uri,
                format!(
                    "an asset is an `Asset`, not a string: write `Asset::new({})`, or name a \
                     `const` holding it",
                    uri.to_token_stream()
                ),
            ));
        }
    }
    Ok(items.into_iter().collect())
}

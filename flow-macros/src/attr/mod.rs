//! Typed parsing of attribute arguments, shared by `#[task]`, `#[dag]` and `default_args(..)`.
//!
//! An attribute's arguments are a comma-separated list of options. [`parse_options`] reads
//! the list once for every attribute: it checks that each key is known (listing the valid
//! ones, with a suggestion for a typo), that no key is given twice, and hands each option
//! to the attribute's [`Options::parse_one`], which reads the value with the typed value
//! readers of [`values`]. A bad option is recorded and skipped, so every mistake of one
//! attribute is reported at once. The options of tasks, shared by `#[task]` and
//! `default_args(..)`, come from one table, [`table`].

mod table;
mod values;

use proc_macro2::{TokenStream, TokenTree};
use syn::ext::IdentExt;
use syn::parse::ParseStream;
use syn::{Ident, Token};

use crate::error::Errors;

pub(crate) use table::{TASK_KEYS, TaskOptionArgs};
pub(crate) use values::*;

/// The keys of every option, as `syn` keywords: those of `#[dag]` here, every task
/// option's from the table.
pub(crate) mod kw {
    use super::table::{task_option_keywords, task_option_table};

    task_option_table!(task_option_keywords);
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
    syn::custom_keyword!(max_active_tasks);
    syn::custom_keyword!(group_id);
    syn::custom_keyword!(prefix_group_id);
    syn::custom_keyword!(tooltip);
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use proc_macro2::Span;
    use quote::quote;
    use syn::LitInt;

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
            const KEYS: &'static [&'static str] = TaskOptionArgs::KEYS;
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

//! Unit tests of `#[dag]`: expansions and messages.

use proc_macro2::TokenStream;
use quote::quote;

use super::expand::first_paragraph;
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

//! Unit tests of `#[task]`: expansions and the helpers that read types.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Type, parse_quote};

use super::check::{first_type_argument, is_result, owned_suggestion, type_text};
use super::*;
use crate::syntax::doc_text;

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
fn container_tasks_describe_a_container_the_runtime_runs() {
    let out = expand_str(
        quote!(container, retries = 1),
        quote!(
            fn train(rows: u64) -> anyhow::Result<ContainerSpec> {
                unreachable!()
            }
        ),
    );
    assert!(!out.contains("compile_error"), "{out}");
    assert!(
        out.contains(":: flow_runtime :: __private :: TaskSpec :: from_container (\"train\""),
        "{out}"
    );
    assert!(
        out.contains("-> :: flow_runtime :: __private :: Node < :: std :: string :: String >"),
        "{out}"
    );
    assert!(
        out.contains("__flow_container_spec :: < ContainerSpec >"),
        "{out}"
    );
    for (args, message) in [
        (quote!(shell, container), "either `shell`"),
        (quote!(container, shell), "either `container`"),
        (quote!(container, branch), "either `container`"),
        (quote!(docker), "write `#[task(container)]`"),
    ] {
        let out = expand_str(
            args,
            quote!(
                fn train() -> ContainerSpec {
                    unreachable!()
                }
            ),
        );
        assert_eq!(out.matches("compile_error").count(), 1, "{out}");
        assert!(out.contains(message), "{out}");
    }
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

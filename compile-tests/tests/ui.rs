//! Compile tests of `#[task]` and `#[dag]` (trybuild): what they accept (`ui/*/pass`,
//! built and run) and what they reject, with the exact messages (`ui/*/fail/*.stderr`).
//!
//! After a deliberate change of a message, regenerate the expected output with
//! `TRYBUILD=overwrite cargo test -p flow-compile-tests --test ui` and read every changed file.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui/*/pass/*.rs");
    t.compile_fail("ui/*/fail/*.rs");
}

/// The lint case, compiled here as well so that `cargo clippy --all-targets` checks the
/// macros' output under its `#![deny(clippy::pedantic)]` (trybuild runs rustc only).
#[path = "../ui/dag/pass/lints.rs"]
pub mod lints;

#[test]
fn lint_case_runs() {
    lints::main();
}

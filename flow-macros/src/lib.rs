//! The `#[task]` and `#[dag]` attribute macros of flow. Use them through `flow-runtime`,
//! which re-exports them.

mod attr;
mod dag;
mod error;
mod schedule;
mod spans;
mod task;

use proc_macro::TokenStream;

/// Makes a function a task.
#[proc_macro_attribute]
pub fn task(args: TokenStream, item: TokenStream) -> TokenStream {
    task::expand(args.into(), item.into()).into()
}

/// Makes a function a DAG.
#[proc_macro_attribute]
pub fn dag(args: TokenStream, item: TokenStream) -> TokenStream {
    dag::expand(args.into(), item.into()).into()
}

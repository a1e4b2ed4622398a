//! `#[task]`: options (`args`) -> a validated model of the function (`model`, `check`) ->
//! the descriptor struct (`expand`), or a stand-in when the function cannot be a task
//! (`fallback`).
//!
//! The user's function is emitted exactly as written. Beside it goes a braced struct of the
//! same name (a braced struct lives in the type namespace only, so it does not clash with
//! the function) whose `node` adds the task to a `DagBuilder` and whose `spec` describes
//! it, and an `inventory` registration.

mod args;
mod check;
mod expand;
mod fallback;
mod model;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

use proc_macro2::TokenStream;
use quote::quote;
use syn::Item;

use crate::error::{Errors, with_errors};
use crate::syntax::item_head;
use args::parse_args;
use model::Task;

/// Expands `#[task(args)] item`.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let options = parse_args(args, &mut errors);
    let function = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(function)) => function,
        Ok(other) => {
            errors.at(
                item_head(&other),
                "`#[task]` goes on a function: `#[task] fn load() -> Rows { .. }`",
            );
            return with_errors(item, &errors);
        }
        Err(error) => {
            errors.push(error);
            return with_errors(item, &errors);
        }
    };
    match Task::new(&function, options, &mut errors) {
        // A sound model is generated even if some options were wrong (they are left
        // out), so that code calling `name::node` does not fail too.
        Ok(task) => with_errors(quote!(#function #task), &errors),
        // Otherwise the function as written, and a stand-in for DAGs that call it.
        Err(stub) => with_errors(quote!(#item #stub), &errors),
    }
}

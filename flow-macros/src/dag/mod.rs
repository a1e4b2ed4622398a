//! `#[dag]`: options (`args`, `params`) -> a checked signature (here) -> the body rewrite
//! (`body`) -> the builder function (`expand`).
//!
//! The function becomes `fn NAME() -> Result<Dag, DagError>`: it creates a `DagBuilder`
//! from the options, runs the user's statements with every task call `f(args..)`
//! rewritten into `<f>::__flow_call(args..)(&mut builder)` (the task's `node`, with the
//! user's argument tokens) and every `a >> b` statement into `set_downstream` calls, and
//! builds the DAG. See the `dag` macro's documentation for which calls are task calls.

pub(crate) mod args;
pub(crate) mod body;
mod expand;
mod params;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::ext::IdentExt;
use syn::{Ident, Item, ItemFn};

use crate::attr;
use crate::error::{Errors, with_errors};
use crate::syntax::item_head;

use args::{DagArgs, check_dates, parse_args};
use body::Body;
use expand::codegen;

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
        value_tail: false,
        group: false,
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
    crate::syntax::check_declaring_qualifiers(sig, "a `#[dag]` function", errors);
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

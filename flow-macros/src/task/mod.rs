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
use syn::{Item, ItemFn, LitStr, ReturnType};

use crate::attr;
use crate::error::{Errors, with_errors};
use crate::syntax::{cfg_attributes, doc_text, item_head};
use args::{TaskArgs, parse_args};
use check::{
    check_runs, check_signature, default_name, inputs, output, poked_type, settle_sensor_conflict,
};
use expand::output_type;
use fallback::{Stub, value_arity};
use model::{Output, Sensor, Special, Task};

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
    match build(&function, options, &mut errors) {
        // A sound model is generated even if some options were wrong (they are left
        // out), so that code calling `name::node` does not fail too.
        Ok(task) => with_errors(quote!(#function #task), &errors),
        // Otherwise the function as written, and a stand-in for DAGs that call it.
        Err(stub) => with_errors(quote!(#item #stub), &errors),
    }
}

/// Checks the function and builds its model. If its signature cannot make a task (the
/// reasons are in `errors`), returns what can stand in for it, if anything.
fn build(
    function: &ItemFn,
    mut args: TaskArgs,
    errors: &mut Errors,
) -> Result<Task, Option<Box<Stub>>> {
    let before = errors.len();
    let sig = &function.sig;
    check_signature(sig, errors);
    let inputs = inputs(sig, errors);
    let after_inputs = errors.len();
    let output = output(&sig.output, errors);
    let output_ok = errors.len() == after_inputs;
    let sound = errors.len() == before;
    settle_sensor_conflict(&mut args, &output);
    let mut special = Special::of(&args);
    if let (Some((kind, _)), Output::Unit) = (special, &output) {
        match &sig.output {
            ReturnType::Default => errors.at(&sig.ident, kind.missing_output()),
            ReturnType::Type(_, ty) => errors.at(ty, kind.missing_output()),
        }
        special = None;
    }
    let runs_ok = args
        .runs
        .is_none_or(|runs| check_runs(runs.kind, sig, &output, errors));
    let sensor = args.sensor.and_then(|_| {
        let ready = poked_type(sig, &output, errors)?;
        Some(Sensor {
            options: args.sensor_options,
            ready: Box::new(ready),
        })
    });

    let name = args
        .task_id
        .as_ref()
        .map_or_else(|| default_name(sig, errors), LitStr::value);
    let root = attr::root(args.krate.as_ref());
    if !sound || !runs_ok {
        // No stand-in with generics (the output type may not be nameable) or `self`
        // (the function is in an `impl` block, where a struct cannot go).
        let stub =
            (output_ok && sig.generics.params.is_empty() && sig.receiver().is_none()).then(|| {
                Box::new(Stub {
                    output: if args.runs.is_some() {
                        quote!(::std::string::String)
                    } else {
                        output_type(&root, &output)
                    },
                    root,
                    function: sig.ident.clone(),
                    vis: function.vis.clone(),
                    cfgs: cfg_attributes(&function.attrs),
                    arity: value_arity(sig),
                })
            });
        return Err(stub);
    }
    Ok(Task {
        root,
        function: sig.ident.clone(),
        vis: function.vis.clone(),
        cfgs: cfg_attributes(&function.attrs),
        name,
        asyncness: sig.asyncness.map(|token| token.span),
        inputs,
        output,
        doc: doc_text(&function.attrs),
        options: args.options,
        special,
        runs: args.runs,
        multiple_outputs: args.multiple_outputs,
        ignore_downstream_trigger_rules: args
            .ignore_downstream_trigger_rules
            .map(|(_, value)| value),
        role: match (args.setup, args.teardown, args.on_failure_fail_dagrun) {
            (Some(span), _, _) => Some(quote::quote_spanned!(span=> .as_setup())),
            (_, Some(span), Some((_, fail))) => {
                Some(quote::quote_spanned!(span=> .as_teardown_with(#fail)))
            }
            (_, Some(span), None) => Some(quote::quote_spanned!(span=> .as_teardown())),
            _ => None,
        },
        sensor,
        pool_slots: args.pool_slots,
        callbacks: args.callbacks,
        retry_policy: args.retry_policy,
        outlets: args.outlets,
    })
}

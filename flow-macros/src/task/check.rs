//! The checks of a task function's signature: qualifiers, parameters, return type.

use proc_macro2::Span;
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::visit::Visit;
use syn::{FnArg, Pat, ReturnType, Signature, Type};

use super::args::{SensorArgs, TaskArgs};
use super::model::{Input, Output, RunsKind};
use crate::attr;
use crate::error::Errors;
use crate::spans;

/// Whether a `shell` or `container` task's function can describe its work: it is not
/// `async` and returns something.
pub(super) fn check_runs(
    kind: RunsKind,
    sig: &Signature,
    output: &Output,
    errors: &mut Errors,
) -> bool {
    let before = errors.len();
    let (flag, noun, ty) = (kind.flag(), kind.noun(), kind.type_name());
    if let Some(asyncness) = &sig.asyncness {
        errors.at(
            asyncness,
            format!(
                "a {flag} task builds its {noun} synchronously; remove `async` (the runtime \
                 runs the {noun} without blocking)"
            ),
        );
    }
    if let Output::Unit = output {
        let message = format!(
            "a `#[task({flag})]` returns `{ty}`, the {noun} to run: add `-> {ty}` and return \
             `{}`",
            kind.example()
        );
        match &sig.output {
            ReturnType::Default => errors.at(&sig.ident, message),
            ReturnType::Type(_, ty) => errors.at(ty, message),
        }
    }
    errors.len() == before
}

/// `T` of the `Poke<T>` (or `Result<Poke<T>, E>`) a sensor returns; an error at the
/// return type otherwise (the task is then checked as an ordinary one).
pub(super) fn poked_type(sig: &Signature, output: &Output, errors: &mut Errors) -> Option<Type> {
    let message = |found: &str| {
        format!(
            "a `#[task(sensor)]` returns `Poke<T>` (or a `Result` of one): `Poke::Ready(value)` \
             when its condition holds, `Poke::NotYet` to poke again{found}"
        )
    };
    let written = match output {
        Output::Plain(ty) | Output::Result { ok: Some(ty), .. } => &**ty,
        Output::Result { written, ok: None } => {
            errors.at(written, message(""));
            return None;
        }
        Output::Unit => {
            let add = message("; add `-> Poke<T>`");
            match &sig.output {
                ReturnType::Default => errors.at(&sig.ident, add),
                ReturnType::Type(_, ty) => errors.at(ty, add),
            }
            return None;
        }
    };
    let poked = match written {
        Type::Path(path)
            if path.qself.is_none()
                && path.path.segments.last().is_some_and(|s| s.ident == "Poke") =>
        {
            first_type_argument(written)
        }
        _ => None,
    };
    if poked.is_none() {
        errors.at(written, message(&format!(", not `{}`", type_text(written))));
    }
    poked
}

/// The function's name as the task's name, if it is a valid task id.
pub(super) fn default_name(sig: &Signature, errors: &mut Errors) -> String {
    let name = sig.ident.unraw().to_string();
    if let Err(reason) = attr::check_id(&name) {
        errors.at(
            &sig.ident,
            format!(
                "the function name `{name}` is not a valid task id: {reason}; \
                 set one with `#[task(task_id = \"...\")]`"
            ),
        );
    }
    name
}

/// Qualifiers and generics a task cannot have.
pub(super) fn check_signature(sig: &Signature, errors: &mut Errors) {
    if let Some(constness) = &sig.constness {
        errors.at(constness, "a task cannot be a `const fn`: remove `const`");
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.at(
            unsafety,
            "a task cannot be an `unsafe fn`, the runtime calls it like any safe function: \
             remove `unsafe` and use an `unsafe { .. }` block inside",
        );
    }
    if let Some(abi) = &sig.abi {
        errors.at(abi, "a task cannot have an `extern` ABI: remove it");
    }
    if let Some(variadic) = &sig.variadic {
        errors.at(
            variadic,
            "a task cannot be variadic: give it named parameters",
        );
    }
    for param in &sig.generics.params {
        let message = match param {
            syn::GenericParam::Lifetime(_) => {
                "a task cannot have lifetime parameters: its parameters are owned values decoded \
                 from upstream outputs; take owned types (`String`, not `&'a str`)"
            }
            syn::GenericParam::Type(_) => {
                "a task cannot be generic: the runtime decodes its parameters into concrete types; \
                 use a concrete type instead of a type parameter"
            }
            syn::GenericParam::Const(_) => {
                "a task cannot have const parameters: use a concrete type, or pass the value \
                 as a parameter"
            }
        };
        errors.at(param, message);
    }
    if let Some(clause) = &sig.generics.where_clause {
        errors.at(
            clause,
            "a task cannot have a `where` clause: its parameter types must be concrete",
        );
    }
}

/// The parameters: one optional `&TaskContext`, and owned values with plain names.
pub(super) fn inputs(sig: &Signature, errors: &mut Errors) -> Vec<Input> {
    let mut inputs = Vec::with_capacity(sig.inputs.len());
    let mut context_seen = false;
    for arg in &sig.inputs {
        let arg = match arg {
            FnArg::Receiver(receiver) => {
                errors.at(
                    receiver,
                    "a task cannot take `self`: a task is a free function; move it out of the \
                     `impl` block and pass what it needs as parameters",
                );
                continue;
            }
            FnArg::Typed(arg) => arg,
        };
        match input_kind(&arg.ty) {
            Kind::Context => {
                if context_seen {
                    errors.at(
                        arg,
                        "a task takes at most one `&TaskContext` parameter: remove this one",
                    );
                }
                context_seen = true;
                inputs.push(Input::Context);
            }
            Kind::Invalid(message) => errors.at(&arg.ty, message),
            Kind::Value => match &*arg.pat {
                Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => {
                    inputs.push(Input::Value {
                        name: pat.ident.clone(),
                        ty: arg.ty.clone(),
                    });
                }
                other => errors.at(
                    other,
                    "a task parameter must be a plain name, like `rows: Vec<Row>`: the name is \
                     the parameter's name in the DAG; destructure the value inside the function",
                ),
            },
        }
    }
    inputs
}

pub(super) enum Kind {
    Context,
    Value,
    Invalid(String),
}

pub(super) fn input_kind(ty: &Type) -> Kind {
    match ty {
        Type::Reference(reference) if names_context(&reference.elem) => {
            match reference.mutability {
                Some(_) => Kind::Invalid(
                    "the task context is shared: take `&TaskContext`, not `&mut TaskContext`"
                        .into(),
                ),
                None => Kind::Context,
            }
        }
        Type::Reference(reference) => Kind::Invalid(format!(
            "a task parameter must be an owned value (it is decoded from an upstream output \
             or a literal): take `{}` instead of a reference",
            owned_suggestion(&reference.elem)
        )),
        ty if names_context(ty) => {
            Kind::Invalid("take the task context by reference: `ctx: &TaskContext`".into())
        }
        ty if contains_impl_trait(ty) => Kind::Invalid(
            "a task parameter cannot be `impl Trait`: the runtime decodes it into one concrete \
             type; write that type"
                .into(),
        ),
        _ => Kind::Value,
    }
}

/// Whether `ty` is a path whose last segment is `TaskContext`.
pub(super) fn names_context(ty: &Type) -> bool {
    match ty {
        Type::Path(path) if path.qself.is_none() => path
            .path
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "TaskContext"),
        Type::Paren(inner) => names_context(&inner.elem),
        Type::Group(inner) => names_context(&inner.elem),
        _ => false,
    }
}

/// The owned counterpart of a borrowed type, for messages: `str` -> `String`.
pub(super) fn owned_suggestion(elem: &Type) -> String {
    match elem {
        Type::Path(path) if path.path.is_ident("str") => "String".into(),
        Type::Path(path) if path.path.segments.last().is_some_and(|s| s.ident == "Path") => {
            "PathBuf".into()
        }
        Type::Slice(slice) => format!("Vec<{}>", type_text(&slice.elem)),
        other => type_text(other),
    }
}

/// A type as a person would write it (`Vec<u8>`, not `Vec < u8 >`).
pub(super) fn type_text(ty: &Type) -> String {
    let mut text = ty.to_token_stream().to_string();
    for (from, to) in [
        (" < ", "<"),
        ("< ", "<"),
        (" >", ">"),
        (" , ", ", "),
        (" :: ", "::"),
        (":: ", "::"),
        ("& ", "&"),
    ] {
        text = text.replace(from, to);
    }
    text
}

pub(super) fn contains_impl_trait(ty: &Type) -> bool {
    struct Finder(bool);
    impl Visit<'_> for Finder {
        fn visit_type_impl_trait(&mut self, _: &syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut finder = Finder(false);
    finder.visit_type(ty);
    finder.0
}

pub(super) fn output(output: &ReturnType, errors: &mut Errors) -> Output {
    let ty = match output {
        ReturnType::Default => return Output::Unit,
        ReturnType::Type(_, ty) => &**ty,
    };
    if matches!(ty, Type::Tuple(tuple) if tuple.elems.is_empty()) {
        return Output::Unit;
    }
    if contains_impl_trait(ty) {
        errors.at(
            ty,
            "a task cannot return `impl Trait`: its output is stored, so it needs a concrete \
             type; write that type",
        );
        return Output::Unit;
    }
    if is_result(ty) {
        Output::Result {
            written: Box::new(ty.clone()),
            ok: first_type_argument(ty).map(Box::new),
        }
    } else {
        Output::Plain(Box::new(ty.clone()))
    }
}

/// Whether `ty` is a path whose last segment is `Result`.
pub(super) fn is_result(ty: &Type) -> bool {
    matches!(ty, Type::Path(path) if path.qself.is_none()
        && path.path.segments.last().is_some_and(|last| last.ident == "Result"))
}

/// The first type argument of a type (`T` of `anyhow::Result<T>`), if written.
pub(super) fn first_type_argument(ty: &Type) -> Option<Type> {
    let Type::Path(path) = ty else { return None };
    match &path.path.segments.last()?.arguments {
        syn::PathArguments::AngleBracketed(args) => args.args.iter().find_map(|arg| match arg {
            syn::GenericArgument::Type(ty) => Some(ty.clone()),
            _ => None,
        }),
        _ => None,
    }
}

/// Where an unfit error type is reported: the error type if written (`Result<T, E>`),
/// else the `Result` of `anyhow::Result<T>`.
pub(super) fn error_type_span(written: &Type) -> (Span, Span) {
    let Type::Path(path) = written else {
        return spans::first_last(written);
    };
    let Some(last) = path.path.segments.last() else {
        return spans::first_last(written);
    };
    let error = match &last.arguments {
        syn::PathArguments::AngleBracketed(args) => args
            .args
            .iter()
            .filter(|arg| matches!(arg, syn::GenericArgument::Type(_)))
            .nth(1),
        _ => None,
    };
    match error {
        Some(error) => spans::first_last(error),
        None => (last.ident.span(), last.ident.span()),
    }
}

/// After a conflict between `sensor` and another kind (reported by `args::check_sensor`), the
/// kind the return type fits, so that the conflict is the only error.
pub(super) fn settle_sensor_conflict(args: &mut TaskArgs, output: &Output) {
    if args.sensor.is_none()
        || (args.branch.is_none() && args.short_circuit.is_none() && args.runs.is_none())
    {
        return;
    }
    let returns_poke = match output {
        Output::Plain(ty) | Output::Result { ok: Some(ty), .. } => matches!(&**ty,
            Type::Path(path) if path.path.segments.last().is_some_and(|s| s.ident == "Poke")),
        _ => false,
    };
    if returns_poke {
        args.branch = None;
        args.short_circuit = None;
        args.runs = None;
    } else {
        args.sensor = None;
        args.sensor_options = SensorArgs::default();
    }
}

//! `params(threshold: f64 = 0.8, epochs: u32)`: the typed params of a `#[dag]`.
//!
//! Each entry is `name: Type`, with an optional `= default` and optional doc comments
//! (the param's description). Entries are checked here (names given once, a type that is
//! an owned value); the compiler checks the rest at the user's tokens: that the type can
//! be a param (`Serialize + DeserializeOwned`) and that the default has the param's type.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::parse::ParseStream;
use syn::{Expr, Ident, Lit, Token, Type};

use crate::error::Errors;
use crate::spans;

/// How a list of params is written, for messages.
pub(super) const EXAMPLE: &str = "params(threshold: f64 = 0.8, epochs: u32)";

/// One entry of `params(..)`.
pub(super) struct ParamArg {
    name: Ident,
    ty: Type,
    default: Option<Expr>,
    description: Option<String>,
}

/// Reads the entries inside `params(..)`, recording every problem and keeping the good
/// entries.
pub(super) fn parse_list(input: ParseStream, errors: &mut Errors) -> Vec<ParamArg> {
    let mut params: Vec<ParamArg> = Vec::new();
    while !input.is_empty() {
        match parse_entry(input, errors) {
            Ok(Some(param)) => {
                let name = param.name.unraw().to_string();
                if params.iter().any(|p| p.name.unraw() == name) {
                    errors.at(
                        &param.name,
                        format!("duplicate param `{name}`: give each param its own name"),
                    );
                } else {
                    params.push(param);
                }
            }
            Ok(None) => skip_entry(input),
            Err(error) => {
                errors.push(error);
                skip_entry(input);
            }
        }
        if input.is_empty() {
            break;
        }
        if input.parse::<Token![,]>().is_err() {
            errors.push(input.error(format!("expected `,` between params: `{EXAMPLE}`")));
            skip_entry(input);
            let _ = input.parse::<Option<Token![,]>>();
        }
    }
    params
}

/// Reads `/// doc  name: Type = default`; `Ok(None)` when the entry had a problem that is
/// already recorded.
fn parse_entry(input: ParseStream, errors: &mut Errors) -> syn::Result<Option<ParamArg>> {
    let mut description: Vec<String> = Vec::new();
    for attr in input.call(syn::Attribute::parse_outer)? {
        match &attr.meta {
            syn::Meta::NameValue(doc) if doc.path.is_ident("doc") => {
                if let Expr::Lit(syn::ExprLit {
                    lit: Lit::Str(text),
                    ..
                }) = &doc.value
                {
                    description.push(text.value().trim().to_string());
                }
            }
            _ => errors.at(
                &attr,
                "a param takes no attributes; describe it with a `///` comment",
            ),
        }
    }
    if !input.peek(Ident) {
        return Err(input.error(format!(
            "expected a param: `name: Type` or `name: Type = default`, like `{EXAMPLE}`"
        )));
    }
    let name: Ident = input.parse()?;
    let text = name.unraw().to_string();
    if !input.peek(Token![:]) || input.peek(Token![::]) {
        let message = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            let default: Expr = input.parse()?;
            let ty = guess_type(&default);
            format!(
                "param `{text}` needs a type: write `{text}: {ty} = {}`",
                default.to_token_stream()
            )
        } else if input.is_empty() || input.peek(Token![,]) {
            format!(
                "param `{text}` needs a type: write `{text}: Type`, like `{text}: u32`, \
                 optionally with a default: `{text}: u32 = 10`"
            )
        } else {
            format!(
                "expected `:` and the type of param `{text}`: `{text}: Type` or \
                 `{text}: Type = default`, like `{EXAMPLE}`"
            )
        };
        errors.at(&name, message);
        return Ok(None);
    }
    input.parse::<Token![:]>()?;
    let ty: Type = input.parse()?;
    if let Some(message) = unsupported_type(&text, &ty) {
        errors.at(&ty, message);
        return Ok(None);
    }
    let default = if input.peek(Token![=]) {
        let eq: Token![=] = input.parse()?;
        if input.is_empty() || input.peek(Token![,]) {
            errors.at(
                eq,
                format!("expected the default of param `{text}` after `=`: `{text}: .. = value`"),
            );
            return Ok(None);
        }
        Some(input.parse::<Expr>()?)
    } else {
        None
    };
    if !(input.is_empty() || input.peek(Token![,])) {
        return Err(input.error(format!(
            "expected `,` after param `{text}`: write params like `{EXAMPLE}`"
        )));
    }
    let description = description
        .into_iter()
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    Ok(Some(ParamArg {
        name,
        ty,
        default,
        description: (!description.is_empty()).then_some(description),
    }))
}

/// Why `ty` cannot be the type of a param, if it cannot.
fn unsupported_type(name: &str, ty: &Type) -> Option<String> {
    match ty {
        Type::Reference(reference) => {
            let owned = match &*reference.elem {
                Type::Path(path) if path.path.is_ident("str") => "String".to_string(),
                other => other.to_token_stream().to_string(),
            };
            Some(format!(
                "param `{name}` must be an owned value, as it is read from a run's JSON conf: \
                 write `{name}: {owned}`"
            ))
        }
        Type::ImplTrait(_) | Type::Infer(_) | Type::Never(_) | Type::TraitObject(_) => {
            Some(format!(
                "param `{name}` needs a concrete type that serde can read from JSON, like `u32`, \
             `f64`, `String`, `Vec<String>` or a `#[derive(Deserialize)]` struct"
            ))
        }
        _ => None,
    }
}

/// A type to suggest for a default written without one.
fn guess_type(default: &Expr) -> &'static str {
    match default {
        Expr::Lit(lit) => match &lit.lit {
            Lit::Str(_) => "String",
            Lit::Float(_) => "f64",
            Lit::Int(_) => "u32",
            Lit::Bool(_) => "bool",
            _ => "Type",
        },
        _ => "Type",
    }
}

/// Consumes tokens up to the next top-level `,` (not included) or the end.
fn skip_entry(input: ParseStream) {
    while !input.is_empty() && !input.peek(Token![,]) {
        if input.parse::<TokenTree>().is_err() {
            break;
        }
    }
}

/// `.param(DagParam::new::<Type>("name").default(value).description(".."))` per param.
///
/// The type is placed on the user's type, so "cannot be a param" points at it, and the
/// default on the user's expression, so a default of another type is reported there.
pub(super) fn setters(root: &TokenStream, params: &[ParamArg]) -> TokenStream {
    let mut tokens = TokenStream::new();
    for param in params {
        let name = param.name.unraw().to_string();
        let name = syn::LitStr::new(&name, param.name.span());
        let ty = &param.ty;
        let (first, _) = spans::first_last(ty);
        let root_at_ty = spans::respan(root.clone(), first);
        let new = quote_spanned!(first=> #root_at_ty::__private::DagParam::new::<#ty>);
        let mut param_tokens = quote!(#new(#name));
        if let Some(default) = &param.default {
            let (first, last) = spans::first_last(default);
            let method = Ident::new("default", first);
            let mut args = proc_macro2::Group::new(
                proc_macro2::Delimiter::Parenthesis,
                default.to_token_stream(),
            );
            args.set_span(last);
            param_tokens.extend(quote!(.#method #args));
        }
        if let Some(description) = &param.description {
            param_tokens.extend(quote!(.description(#description)));
        }
        tokens.extend(quote!(.param(#param_tokens)));
    }
    tokens
}

/// The error for `params` not followed by a list in parentheses.
pub(super) fn usage_error(span: Span) -> syn::Error {
    syn::Error::new(
        span,
        format!("write `{EXAMPLE}`: each param is `name: Type`, with an optional `= default`"),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(tokens: TokenStream) -> (Vec<ParamArg>, String) {
        let mut errors = Errors::default();
        let params = syn::parse::Parser::parse2(
            |input: ParseStream| Ok(parse_list(input, &mut errors)),
            tokens,
        )
        .unwrap();
        (params, errors.to_compile_errors().to_string())
    }

    #[test]
    fn entries_are_typed_with_optional_defaults_and_descriptions() {
        let (params, errors) = parse(quote!(
            /// The minimum
            /// accuracy.
            threshold: f64 = 0.8,
            models_dir: String = "models",
            epochs: u32,
            window: std::collections::HashMap<String, u32> = Default::default(),
        ));
        assert!(errors.is_empty(), "{errors}");
        let names: Vec<String> = params.iter().map(|p| p.name.to_string()).collect();
        assert_eq!(names, ["threshold", "models_dir", "epochs", "window"]);
        assert_eq!(
            params[0].description.as_deref(),
            Some("The minimum accuracy.")
        );
        assert!(params[2].default.is_none());
        let out = setters(&quote!(::flow_runtime), &params).to_string();
        assert!(
            out.contains(
                ". param (:: flow_runtime :: __private :: DagParam :: new :: < f64 > (\"threshold\") . default (0.8) . description (\"The minimum accuracy.\"))"
            ),
            "{out}"
        );
        assert!(out.contains("new :: < u32 > (\"epochs\"))"), "{out}");
    }

    #[test]
    fn every_mistake_is_reported_and_good_entries_kept() {
        let (params, errors) = parse(quote!(
            threshold = 0.8,
            epochs,
            "quoted": u32,
            name: &str = "x",
            threshold: f64,
            ok: u32 = 1,
            ok: u64,
            after: u32 = ,
            last: u32 = 1 2
        ));
        for message in [
            "param `threshold` needs a type: write `threshold: f64 = 0.8`",
            "param `epochs` needs a type: write `epochs: Type`",
            "expected a param: `name: Type`",
            "param `name` must be an owned value, as it is read from a run's JSON conf: write `name: String`",
            "duplicate param `ok`",
            "expected the default of param `after` after `=`",
            "expected `,` after param `last`",
        ] {
            assert!(errors.contains(message), "{message} in {errors}");
        }
        let names: Vec<String> = params.iter().map(|p| p.name.to_string()).collect();
        assert_eq!(names, ["threshold", "ok"]);
    }
}

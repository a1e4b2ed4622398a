//! Helpers both attributes use on the user's item.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::Item;

use crate::error::Errors;

/// The `#[cfg]`s of the function, repeated on everything generated beside it.
pub(crate) fn cfg_attributes(attrs: &[syn::Attribute]) -> Vec<syn::Attribute> {
    attrs
        .iter()
        .filter(|attr| attr.path().is_ident("cfg"))
        .cloned()
        .collect()
}

/// The text of the `///` comments, without the one space after `///`.
pub(crate) fn doc_text(attrs: &[syn::Attribute]) -> Option<String> {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|attr| attr.path().is_ident("doc"))
        .filter_map(|attr| match &attr.meta {
            syn::Meta::NameValue(syn::MetaNameValue {
                value:
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(text),
                        ..
                    }),
                ..
            }) => Some(text.value()),
            _ => None,
        })
        // `split`, not `lines`: an empty `///` line is an empty string, and a paragraph break.
        .flat_map(|text| {
            text.split('\n')
                .map(|line| line.trim_end_matches('\r').to_owned())
                .collect::<Vec<_>>()
        })
        .map(|line| line.strip_prefix(' ').map(str::to_owned).unwrap_or(line))
        .collect();
    let text = lines.join("\n").trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// The tokens to point at when an attribute is on the wrong kind of item: its keyword and
/// name (not its attributes or body).
pub(crate) fn item_head(item: &Item) -> TokenStream {
    match item {
        Item::Struct(s) => pair(s.struct_token, &s.ident),
        Item::Enum(e) => pair(e.enum_token, &e.ident),
        Item::Union(u) => pair(u.union_token, &u.ident),
        Item::Trait(t) => pair(t.trait_token, &t.ident),
        Item::Mod(m) => pair(m.mod_token, &m.ident),
        Item::Const(c) => pair(c.const_token, &c.ident),
        Item::Static(s) => pair(s.static_token, &s.ident),
        Item::Type(t) => pair(t.type_token, &t.ident),
        Item::Impl(i) => pair(i.impl_token, &i.self_ty),
        Item::Use(u) => pair(u.use_token, &u.tree),
        other => other.to_token_stream(),
    }
}

fn pair(first: impl ToTokens, second: impl ToTokens) -> TokenStream {
    quote!(#first #second)
}

/// Reports `const`, `unsafe` and `extern` on a function that only declares tasks (a
/// `#[dag]` or `#[task_group]` function, named by `what`).
pub(crate) fn check_declaring_qualifiers(sig: &syn::Signature, what: &str, errors: &mut Errors) {
    if let Some(constness) = &sig.constness {
        errors.at(
            constness,
            format!("{what} cannot be a `const fn`: remove `const`"),
        );
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.at(
            unsafety,
            format!("{what} cannot be `unsafe`: remove `unsafe`"),
        );
    }
    if let Some(abi) = &sig.abi {
        errors.at(
            abi,
            format!("{what} cannot have an `extern` ABI: remove it"),
        );
    }
}

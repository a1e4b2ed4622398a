//! Placing generated tokens on the user's code, so that the compiler's type errors about
//! generated code point at what the user wrote.
//!
//! The compiler reports an expression or a type at the range from its first token to its
//! last. Giving the first and last generated tokens the spans of the first and last tokens
//! of a user's type or expression makes the whole generated construct point at it.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote};
use syn::Ident;

/// The spans of the first and last tokens of `tokens` (call site if there are none).
pub(crate) fn first_last(tokens: &impl ToTokens) -> (Span, Span) {
    let mut iter = tokens.to_token_stream().into_iter();
    let first = iter.next().map_or_else(Span::call_site, |t| t.span());
    let last = iter.last().map_or(first, |t| t.span());
    (first, last)
}

/// `tokens` with every token, at any depth, given `span`.
pub(crate) fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|token| match token {
            TokenTree::Group(group) => {
                let mut new = Group::new(group.delimiter(), respan(group.stream(), span));
                new.set_span(span);
                TokenTree::Group(new)
            }
            mut other => {
                other.set_span(span);
                other
            }
        })
        .collect()
}

/// `tuple.0` for a local `tuple` bound to a 1-tuple, located from `first` to `last`: an
/// expression the compiler reports at that range, as if it were the user's own.
pub(crate) fn located_field(tuple: &Ident, first: Span, last: Span) -> TokenStream {
    let tuple = Ident::new(&tuple.to_string(), tuple.span().located_at(first));
    let field = syn::Index {
        index: 0,
        span: last,
    };
    quote!(#tuple.#field)
}

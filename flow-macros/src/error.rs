//! Collecting errors, and what a macro emits when there are some.
//!
//! Every phase pushes its errors into one [`Errors`] and carries on, so a user sees every
//! mistake of one attribute at once. On error a macro still emits the user's item (plus
//! whatever of the expansion is sound), so one mistake gives one message and
//! rust-analyzer keeps working on the rest of the code.

use proc_macro2::TokenStream;

/// The errors found so far while expanding one attribute.
#[derive(Default)]
pub(crate) struct Errors {
    errors: Vec<syn::Error>,
}

impl Errors {
    /// Records an error and carries on.
    pub(crate) fn push(&mut self, error: syn::Error) {
        self.errors.push(error);
    }

    /// Records an error at the span of `tokens`.
    pub(crate) fn at(&mut self, tokens: impl quote::ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// How many errors were recorded.
    pub(crate) fn len(&self) -> usize {
        self.errors.len()
    }

    /// Whether no error was recorded.
    pub(crate) fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// One `compile_error!` per recorded error (nothing when there are none).
    pub(crate) fn to_compile_errors(&self) -> TokenStream {
        self.errors
            .iter()
            .map(syn::Error::to_compile_error)
            .collect()
    }
}

/// `tokens` followed by every recorded error: the fallback output of a macro.
pub(crate) fn with_errors(mut tokens: TokenStream, errors: &Errors) -> TokenStream {
    tokens.extend(errors.to_compile_errors());
    tokens
}

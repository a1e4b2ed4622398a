//! What stands in for a function that cannot be a task, so that DAGs calling it report
//! nothing beyond the task's own errors.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::{FnArg, Ident, Signature, Type};

use super::check::names_context;

/// How many arguments a DAG passes to the function: its parameters but `self` and the
/// context (even a wrongly written one).
pub(super) fn value_arity(sig: &Signature) -> usize {
    sig.inputs
        .iter()
        .filter(|arg| match arg {
            FnArg::Typed(arg) => {
                !(names_context(&arg.ty)
                    || matches!(&*arg.ty, Type::Reference(r) if names_context(&r.elem)))
            }
            FnArg::Receiver(_) => false,
        })
        .count()
}

/// What stands in for the descriptor of a function that cannot be a task: a
/// `__flow_call` taking as many arguments as the function, so that a DAG calling the
/// task reports nothing beyond the task's own errors.
pub(super) struct Stub {
    pub(super) root: TokenStream,
    pub(super) function: Ident,
    pub(super) vis: syn::Visibility,
    pub(super) cfgs: Vec<syn::Attribute>,
    pub(super) arity: usize,
    pub(super) output: TokenStream,
}

impl ToTokens for Stub {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        let Stub {
            root,
            function,
            vis,
            cfgs,
            arity,
            output,
        } = self;
        let params: Vec<TokenStream> = (0..*arity)
            .map(|_| quote!(_: impl ::core::marker::Sized))
            .collect();
        tokens.extend(quote! {
            #(#cfgs)*
            #[doc(hidden)]
            #[allow(non_camel_case_types, dead_code)]
            #vis struct #function {}

            #(#cfgs)*
            #[allow(dead_code, clippy::too_many_arguments)]
            impl #function {
                #[doc(hidden)]
                #vis fn __flow_call(#(#params),*)
                    -> #root::__private::Box<dyn ::core::ops::FnOnce(&mut #root::__private::DagBuilder) -> #root::__private::Node<#output>>
                {
                    ::core::unreachable!("the task `{}` does not compile", ::core::stringify!(#function))
                }
                #[doc(hidden)]
                #vis fn __flow_call_with(_: #root::__private::TaskOverride, #(#params),*)
                    -> #root::__private::Box<dyn ::core::ops::FnOnce(&mut #root::__private::DagBuilder) -> #root::__private::Node<#output>>
                {
                    ::core::unreachable!("the task `{}` does not compile", ::core::stringify!(#function))
                }
            }
        });
    }
}

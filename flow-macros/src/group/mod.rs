//! `#[task_group]`: options -> a checked signature -> the body rewrite (the `#[dag]`
//! body's, `dag::body`) -> the group function and its descriptor struct.
//!
//! `#[task_group] fn prep(raw: Node<Raw>) -> Node<Clean> { .. }` becomes
//! `fn prep(builder: &mut DagBuilder, raw: Node<Raw>) -> Node<Clean>`, which runs the
//! rewritten body inside `builder.group(TaskGroup::new("prep")..)`, and beside it a struct
//! `prep {}` whose `node` is that function and whose `__flow_call` is what a `#[dag]` or
//! `#[task_group]` body calls, exactly as for a task. A group function that returns
//! nothing returns the group's `GroupRef`, so `prep() >> next()` orders the whole group;
//! one that returns a value returns that value (Airflow's `@task_group` does the same).

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::parse::ParseStream;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{FnArg, Ident, Item, ItemFn, LitBool, LitStr, ReturnType, Token, Type};

use crate::attr::{self, Options, TaskOptionArgs, kw};
use crate::dag::args::default_args;
use crate::dag::body::Body;
use crate::error::{Errors, with_errors};
use crate::spans;
use crate::syntax::{doc_text, item_head};

/// The options of `#[task_group(..)]`.
#[derive(Default)]
struct GroupArgs {
    krate: Option<syn::Path>,
    group_id: Option<LitStr>,
    prefix_group_id: Option<LitBool>,
    tooltip: Option<LitStr>,
    default_args: Option<TaskOptionArgs>,
}

impl Options for GroupArgs {
    const ATTRIBUTE: &'static str = "#[task_group]";
    const KEYS: &'static [&'static str] = &[
        "group_id",
        "prefix_group_id",
        "tooltip",
        "default_args",
        "crate",
    ];
    const PLANNED: &'static [&'static str] = &["ui_color", "ui_fgcolor"];
    const RENAMED: &'static [(&'static str, &'static str)] = &[("id", "group_id")];
    const ELSEWHERE: &'static [(&'static str, &'static str)] = &[
        (
            "retries",
            "a group's tasks inherit options from `default_args(..)`: write \
             `#[task_group(default_args(retries = 2))]`",
        ),
        (
            "schedule",
            "a task group runs as part of its DAG: schedule the DAG, `#[dag(schedule = \"..\")]`",
        ),
    ];

    fn parse_one(&mut self, input: ParseStream, errors: &mut Errors) -> syn::Result<()> {
        if input.peek(kw::group_id) {
            let key: kw::group_id = input.parse()?;
            self.group_id = Some(attr::string(input, "group_id", key.span, "\"prepare\"")?);
        } else if input.peek(kw::prefix_group_id) {
            let key: kw::prefix_group_id = input.parse()?;
            self.prefix_group_id = Some(attr::boolean(input, "prefix_group_id", key.span, false)?);
        } else if input.peek(kw::tooltip) {
            let key: kw::tooltip = input.parse()?;
            self.tooltip = Some(attr::string(
                input,
                "tooltip",
                key.span,
                "\"cleans the raw rows\"",
            )?);
        } else if input.peek(kw::default_args) {
            let key: kw::default_args = input.parse()?;
            let example = r#"retries = 2, retry_delay = "5m""#;
            self.default_args = Some(default_args(input, key.span, example, errors)?);
        } else if input.peek(Token![crate]) {
            let key: Token![crate] = input.parse()?;
            self.krate = Some(attr::crate_path(input, key.span)?);
        } else {
            return Err(input.error("expected an option"));
        }
        Ok(())
    }
}

/// Expands `#[task_group(args)] item`.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let options: GroupArgs = attr::parse_all(args, &mut errors);
    let mut function = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(function)) => function,
        Ok(other) => {
            errors.at(
                item_head(&other),
                "`#[task_group]` goes on a function: \
                 `#[task_group] fn prepare(raw: Node<Raw>) -> Node<Clean> { clean(raw) }`",
            );
            return with_errors(item, &errors);
        }
        Err(error) => {
            errors.push(error);
            return with_errors(item, &errors);
        }
    };
    let root = attr::root(options.krate.as_ref());
    let signature_ok = check_signature(&function, &mut errors);
    let id = group_id(&function, &options, &mut errors);
    let returns = !matches!(function.sig.output, ReturnType::Default);
    let dag = Ident::new("__flow_dag", Span::mixed_site());
    let mut body = Body {
        root: root.clone(),
        dag: &dag,
        errors: &mut errors,
        task_calls: 0,
        value_tail: returns,
        group: true,
    };
    body.check(&function.block);
    body.block(&mut function.block, true);
    if body.task_calls == 0 {
        errors.at(
            &function.sig.ident,
            "this task group has no tasks: call `#[task]` functions (or other task groups) \
             in its body, like `let rows = clean(raw); check(rows);`",
        );
    }
    let output = codegen(&function, &options, &root, &id, &dag, signature_ok);
    with_errors(output, &errors)
}

/// A group function is a plain `fn` whose parameters and return value are owned values
/// without lifetimes (nodes, or values passed on to its tasks). Returns whether the
/// signature can be generated as written.
fn check_signature(function: &ItemFn, errors: &mut Errors) -> bool {
    let before = errors.len();
    let sig = &function.sig;
    let what = "a `#[task_group]` function";
    if let Some(asyncness) = &sig.asyncness {
        errors.at(
            asyncness,
            format!("{what} cannot be `async`: it only declares tasks; make the tasks `async`"),
        );
    }
    crate::syntax::check_declaring_qualifiers(sig, what, errors);
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.at(
            &sig.generics,
            format!("{what} cannot be generic: name the types of its parameters"),
        );
    }
    if let Some(variadic) = &sig.variadic {
        errors.at(variadic, format!("{what} cannot be variadic"));
    }
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => errors.at(
                receiver,
                format!("{what} is a free function: remove `self`"),
            ),
            FnArg::Typed(typed) => borrowed(&typed.ty, errors),
        }
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        borrowed(ty, errors);
    }
    errors.len() == before
}

/// Reports a reference, lifetime or `impl Trait` in a parameter or return type: the
/// group's arguments are kept until the DAG body applies the builder.
fn borrowed(ty: &Type, errors: &mut Errors) {
    struct Finder(Option<TokenStream>);
    impl<'ast> Visit<'ast> for Finder {
        // `&'static str` is fine: it outlives the DAG body.
        fn visit_type_reference(&mut self, node: &'ast syn::TypeReference) {
            if node.lifetime.as_ref().is_some_and(|l| l.ident == "static") {
                syn::visit::visit_type_reference(self, node);
            } else {
                self.0
                    .get_or_insert_with(|| quote::ToTokens::to_token_stream(node));
            }
        }
        fn visit_lifetime(&mut self, node: &'ast syn::Lifetime) {
            if node.ident != "static" {
                self.0
                    .get_or_insert_with(|| quote::ToTokens::to_token_stream(node));
            }
        }
        fn visit_type_impl_trait(&mut self, node: &'ast syn::TypeImplTrait) {
            self.0
                .get_or_insert_with(|| quote::ToTokens::to_token_stream(node));
        }
    }
    let mut finder = Finder(None);
    finder.visit_type(ty);
    if let Some(found) = finder.0 {
        errors.at(
            found,
            "a task group's parameters and return value are owned values without lifetimes \
             or `impl Trait`: nodes (`Node<T>`, `MappedNode<T>`) or values its tasks take \
             (`String` or `&'static str`, not `&str`)",
        );
    }
}

/// The group id: `group_id = ".."` or the function's name; it prefixes task ids unless
/// `prefix_group_id = false`, so it has no `.` then.
fn group_id(function: &ItemFn, options: &GroupArgs, errors: &mut Errors) -> String {
    let prefix = options.prefix_group_id.as_ref().is_none_or(LitBool::value);
    let (id, at): (String, TokenStream) = match &options.group_id {
        Some(id) => (id.value(), quote::ToTokens::to_token_stream(id)),
        None => (
            function.sig.ident.unraw().to_string(),
            quote::ToTokens::to_token_stream(&function.sig.ident),
        ),
    };
    let problem = if prefix {
        let fits = !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
        (!fits).then(|| {
            format!(
                "invalid task group id `{id}`: it prefixes its tasks' ids (`{id}.task`), so \
                 use letters, digits, `_` and `-` only, or write `prefix_group_id = false`"
            )
        })
    } else {
        attr::check_id(&id)
            .err()
            .map(|reason| format!("invalid task group id `{id}`: {reason}"))
    };
    if let Some(problem) = problem {
        errors.at(at, problem);
    }
    id
}

fn codegen(
    function: &ItemFn,
    options: &GroupArgs,
    root: &TokenStream,
    id: &str,
    dag: &Ident,
    signature_ok: bool,
) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = function;
    let name = &sig.ident;
    let cfgs = crate::syntax::cfg_attributes(attrs);
    let builder = quote!(#root::__private::DagBuilder);

    let mut setters = quote!(.add_suffix_on_collision(true));
    if let Some(prefix) = &options.prefix_group_id {
        setters.extend(quote!(.prefix_group_id(#prefix)));
    }
    let tooltip = options
        .tooltip
        .as_ref()
        .map(LitStr::value)
        .or_else(|| doc_text(attrs));
    if let Some(tooltip) = tooltip {
        setters.extend(quote!(.tooltip(#tooltip)));
    }
    if let Some(defaults) = &options.default_args {
        let defaults = defaults.task_options(root);
        setters.extend(quote!(.default_args(#defaults)));
    }

    // Returning nothing, the function returns the group; else what the body returns.
    let (returned, body_type, field) = match &sig.output {
        ReturnType::Default => (
            quote!(#root::__private::GroupRef),
            quote!(()),
            quote!(group),
        ),
        ReturnType::Type(_, ty) => (quote!(#ty), quote!(#ty), quote!(output)),
    };
    // A parameter keeps its name where it has one (what rustdoc and editors show); a
    // pattern such as `(a, b)` gets a generated one.
    let typed: Vec<(Ident, &Type)> = sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(typed) => Some(typed),
            FnArg::Receiver(_) => None,
        })
        .enumerate()
        .map(|(index, typed)| {
            let name = match &*typed.pat {
                syn::Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => {
                    pat.ident.clone()
                }
                _ => format_ident!("__flow_arg_{}", index, span = Span::mixed_site()),
            };
            (name, &*typed.ty)
        })
        .collect();
    let names: Vec<&Ident> = typed.iter().map(|(name, _)| name).collect();
    let params: Vec<TokenStream> = typed.iter().map(|(name, ty)| quote!(#name: #ty)).collect();

    let doc = format!(
        "The task group `{id}` (generated by `#[task_group]`): `{name}::node(&mut builder, \
         args..)` adds it to a `DagBuilder`, as calling `{name}(args..)` in a `#[dag]` body does."
    );
    let node_doc = format!(
        "Adds the task group `{id}` to a `DagBuilder`: its tasks get ids `{id}.task`; returns \
         what the group function returns (the group's `GroupRef` if nothing)."
    );
    if !signature_ok {
        // A stand-in that `#[dag]` bodies can call, so that the signature's error is the
        // only one: it adds the group, empty.
        let stub_params = typed.iter().map(|_| quote!(_: impl ::core::marker::Sized));
        return quote! {
            #(#attrs)*
            #[allow(dead_code, unused_variables)]
            #vis fn #name() {}

            #(#cfgs)*
            #[doc = #doc]
            #[allow(non_camel_case_types, dead_code)]
            #vis struct #name {}

            #(#cfgs)*
            #[allow(dead_code)]
            impl #name {
                #[doc(hidden)]
                #vis fn __flow_call(#(#stub_params),*)
                    -> #root::__private::Box<dyn ::core::ops::FnOnce(&mut #builder) -> #root::__private::GroupRef>
                {
                    #root::__private::Box::new(|#dag: &mut #builder| {
                        #dag.group(#root::__private::TaskGroup::new(#id), |_| ()).group
                    })
                }
            }
        };
    }

    let inputs = &sig.inputs;
    let stmts = &block.stmts;
    let call = Ident::new("__flow_call", name.span());
    let node = Ident::new("node", name.span());
    let body_fn = Ident::new("__flow_body", Span::mixed_site());
    let mut group_sig = sig.clone();
    group_sig.inputs = syn::parse_quote!(#dag: &mut #builder, #(#params),*);
    group_sig.output = syn::parse_quote!(-> #returned);
    // The body keeps the user's spans and parameter patterns; the plain call and the
    // mapped one (`.expand(..)`) both run it inside their group. The body's task calls
    // take `&mut builder` (a `&mut &mut DagBuilder` here, which coerces), as in a `#[dag]`
    // body where the builder is a value.
    let body_head = quote_spanned!(block.span()=>
        #vis fn #body_fn(mut #dag: &mut #builder, #inputs) -> #body_type
    );
    let mapped = mapped_call(function, root, id, &setters, dag, &typed);
    quote! {
        #(#attrs)*
        #[allow(clippy::too_many_arguments, clippy::needless_pass_by_value)]
        #vis #group_sig {
            #dag.group(
                #root::__private::TaskGroup::new(#id) #setters,
                move |#dag: &mut #builder| #name::#body_fn(#dag, #(#names),*),
            ).#field
        }

        #(#cfgs)*
        #[doc = #doc]
        #[allow(non_camel_case_types, dead_code)]
        #vis struct #name {}

        #(#cfgs)*
        #[allow(dead_code)]
        impl #name {
            #[doc = #node_doc]
            #[allow(clippy::too_many_arguments)]
            #vis fn #node(#dag: &mut #builder, #(#params),*) -> #returned {
                #name(#dag, #(#names),*)
            }

            #[doc(hidden)]
            #[allow(clippy::too_many_arguments)]
            #vis fn #call(#(#params),*)
                -> #root::__private::Box<dyn ::core::ops::FnOnce(&mut #builder) -> #returned>
            {
                #root::__private::Box::new(move |#dag: &mut #builder| #name(#dag, #(#names),*))
            }

            #[doc(hidden)]
            #[allow(clippy::too_many_arguments, clippy::needless_pass_by_value, unused_mut)]
            #body_head {
                #(#stmts)*
            }
        }

        #mapped
    }
}

/// The mapped call of a group (`prep.partial(a = 1).expand(b = list)` in a `#[dag]` body,
/// rewritten to `<prep>::__flow_partial().a(1).__flow_expand().b(list).__flow_finish(&mut
/// dag)`): two argument collectors with a method per parameter, named as the parameter,
/// the first taking one value, the second a list (for a parameter declared `Node<T>`);
/// finishing adds the group with `DagBuilder::expand_group`, whose body binds the
/// parameters and runs the group's body once, declaring each list.
fn mapped_call(
    function: &ItemFn,
    root: &TokenStream,
    id: &str,
    setters: &TokenStream,
    dag: &Ident,
    typed: &[(Ident, &Type)],
) -> TokenStream {
    let vis = &function.vis;
    let name = &function.sig.ident;
    let cfgs = crate::syntax::cfg_attributes(&function.attrs);
    let builder = quote!(#root::__private::DagBuilder);
    let partial = format_ident!(
        "__flow_group_partial_{}",
        name.unraw(),
        span = Span::mixed_site()
    );
    let expand = format_ident!(
        "__flow_group_expand_{}",
        name.unraw(),
        span = Span::mixed_site()
    );
    let map = Ident::new("__flow_map", Span::mixed_site());
    // The macro's own locals, apart from the parameters' names.
    let zip = Ident::new("__flow_zip", Span::mixed_site());
    let source = Ident::new("__flow_source", Span::mixed_site());
    let element = Ident::new("__FlowElement", Span::mixed_site());
    // Only parameters named by an identifier can be named in `.partial(..)`/`.expand(..)`.
    let named: Vec<(&Ident, Option<Ident>, &Type)> = function
        .sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(typed) => Some(typed),
            FnArg::Receiver(_) => None,
        })
        .zip(typed)
        .map(|(input, (field, ty))| {
            let param = match &*input.pat {
                syn::Pat::Ident(pat) => Some(pat.ident.clone()),
                _ => None,
            };
            (field, param, *ty)
        })
        .collect();
    let fields = named
        .iter()
        .map(|(field, _, ty)| quote!(#field: #root::__private::GroupArg<#ty>));
    let missing = named
        .iter()
        .map(|(field, _, _)| quote!(#field: #root::__private::GroupArg::Missing));
    let fixed = named.iter().filter_map(|(field, param, ty)| {
        let param = param.as_ref()?;
        Some(quote! {
            #vis fn #param(mut self, #param: #ty) -> Self {
                self.#field = #root::__private::GroupArg::Value(#param);
                self
            }
        })
    });
    let lists = named.iter().filter_map(|(field, param, ty)| {
        let param = param.as_ref()?;
        let (first, last) = spans::first_last(*ty);
        let bound_root = spans::respan(root.clone(), first);
        let open = quote_spanned!(first=> #bound_root::__private::GroupParamOf<);
        let close = quote_spanned!(last=> >);
        Some(quote! {
            #vis fn #param<#element: #root::__private::XComValue>(
                mut self,
                #param: impl #root::__private::IntoMapped<#element>,
            ) -> Self
            where
                #ty: #open #element #close,
            {
                let #source = #root::__private::IntoMapped::<#element>::into_mapped(#param);
                self.0.#field = #root::__private::GroupArg::List(#root::__private::Box::new(
                    move |#map: &mut #root::__private::GroupMap| {
                        <#ty as #root::__private::GroupParamOf<#element>>::of_argument(
                            #map.expand_source::<#element>(#source),
                        )
                    },
                ));
                self
            }
        })
    });
    let takes = named.iter().map(|(field, param, _)| {
        let label = param
            .as_ref()
            .map_or_else(|| field.to_string(), |p| p.unraw().to_string());
        quote!(#field.take(#map, #label))
    });
    let names: Vec<&Ident> = named.iter().map(|(field, _, _)| *field).collect();
    // The body's type is a parameter of the collector, so that a group returning what a
    // mapped group cannot (a tuple) is an error only where it is expanded.
    let body = Ident::new("__FlowBody", Span::mixed_site());
    let (body_type, mapped_type, field) = match &function.sig.output {
        ReturnType::Default => (
            quote!(()),
            quote!(#root::__private::GroupRef),
            quote!(group),
        ),
        ReturnType::Type(_, ty) => (
            quote!(#ty),
            quote!(<#body as #root::__private::MappedGroupOutput>::Mapped),
            quote!(output),
        ),
    };
    let bind = if names.is_empty() {
        quote!()
    } else {
        quote! {
            let (#(#names,)*) = (#(#takes,)*);
            let (#(::core::option::Option::Some(#names),)*) = (#(#names,)*) else {
                return <#body as #root::__private::MappedGroupOutput>::unbuilt();
            };
        }
    };
    quote! {
        #(#cfgs)*
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #vis struct #partial { #(#fields),* }

        #(#cfgs)*
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #vis struct #expand<#body>(#partial, ::core::marker::PhantomData<fn() -> #body>);

        #(#cfgs)*
        #[allow(dead_code)]
        impl #name {
            #[doc(hidden)]
            #vis fn __flow_partial() -> #partial {
                #partial { #(#missing),* }
            }
        }

        #(#cfgs)*
        #[allow(dead_code, clippy::wrong_self_convention)]
        impl #partial {
            #(#fixed)*
            #vis fn __flow_expand(self) -> #expand<#body_type> {
                #expand(self, ::core::marker::PhantomData)
            }
        }

        #(#cfgs)*
        #[allow(dead_code)]
        impl<#body> #expand<#body> {
            #(#lists)*
            #vis fn __flow_finish(self, #dag: &mut #builder) -> #mapped_type
            where
                #body: #root::__private::MappedGroupOutput + ::core::convert::From<#body_type>,
            {
                self.__flow_add(#dag, false)
            }
            #vis fn __flow_finish_zip(self, #dag: &mut #builder) -> #mapped_type
            where
                #body: #root::__private::MappedGroupOutput + ::core::convert::From<#body_type>,
            {
                self.__flow_add(#dag, true)
            }
            fn __flow_add(self, #dag: &mut #builder, #zip: bool) -> #mapped_type
            where
                #body: #root::__private::MappedGroupOutput + ::core::convert::From<#body_type>,
            {
                let #partial { #(#names),* } = self.0;
                #dag.expand_group(
                    #root::__private::TaskGroup::new(#id) #setters,
                    move |#dag: &mut #builder, #map: &mut #root::__private::GroupMap| -> #body {
                        if #zip {
                            #map.zip();
                        }
                        #bind
                        #body::from(#name::__flow_body(#dag, #(#names),*))
                    },
                ).#field
            }
        }
    }
}

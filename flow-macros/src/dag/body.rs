//! The body rewrite: task calls become `<task>::__flow_call(args..)(&mut builder)`,
//! `a >> b` statements become `set_downstream` calls, and what cannot be in a DAG body
//! is reported.

use proc_macro2::{Delimiter, Group, Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{BinOp, Block, Expr, ExprCall, Ident, Item, Stmt, Token};

use crate::attr::{self, TaskOptionArgs};
use crate::error::Errors;
use crate::spans;

/// Rewrites task calls and `>>` orderings of one DAG body.
pub(crate) struct Body<'a> {
    pub(crate) root: TokenStream,
    /// The builder variable, hygienic so user code can neither see nor shadow it.
    pub(crate) dag: &'a Ident,
    pub(crate) errors: &'a mut Errors,
    pub(crate) task_calls: usize,
    /// The body's tail expression is its value (a `#[task_group]` that returns one): a
    /// task call there, or in a tuple there, is rewritten and kept, not dropped.
    pub(crate) value_tail: bool,
    /// The body is a `#[task_group]`'s (for messages).
    pub(crate) group: bool,
}

impl Body<'_> {
    /// Reports what a DAG body cannot contain: `return`, and dynamic task mapping.
    pub(crate) fn check(&mut self, block: &Block) {
        struct Checker<'e>(&'e mut Errors, bool);
        impl<'ast> Visit<'ast> for Checker<'_> {
            fn visit_expr_return(&mut self, node: &'ast syn::ExprReturn) {
                let message = if self.1 {
                    "`return` cannot be used in a `#[task_group]` body: the group's value is \
                     its body's tail expression; use `if`/`else` to leave tasks out"
                } else {
                    "`return` cannot be used in a `#[dag]` body: the macro ends the function by \
                     building the DAG; use `if`/`else` to leave tasks out"
                };
                self.0.at(node.return_token, message);
                syn::visit::visit_expr_return(self, node);
            }
            fn visit_expr_method_call(&mut self, node: &'ast syn::ExprMethodCall) {
                if node.method == "expand_kwargs" && is_task_path_receiver(&node.receiver) {
                    self.0.at(
                        &node.method,
                        "`.expand_kwargs(..)` is not supported: name each mapped argument, \
                         `.expand(a = list_a, b = list_b)` for every combination or \
                         `.expand_zip(a = list_a, b = list_b)` element by element",
                    );
                    // One message per mapping chain.
                    return;
                }
                syn::visit::visit_expr_method_call(self, node);
            }
            // Closures and nested items have their own `return`s.
            fn visit_expr_closure(&mut self, _: &'ast syn::ExprClosure) {}
            fn visit_item(&mut self, _: &'ast Item) {}
        }
        Checker(self.errors, self.group).visit_block(block);
    }

    /// Rewrites the statements of `block`. `top` is the function body, whose last
    /// statement is followed by `build()`.
    pub(crate) fn block(&mut self, block: &mut Block, top: bool) {
        let last = block.stmts.len().saturating_sub(1);
        for (index, stmt) in block.stmts.iter_mut().enumerate() {
            if let Stmt::Expr(expr, None) = stmt
                && top
                && self.value_tail
                && index == last
            {
                match expr {
                    Expr::Tuple(tuple) => {
                        for element in &mut tuple.elems {
                            self.task_call(element);
                        }
                    }
                    _ => {
                        self.task_call(expr);
                    }
                }
                continue;
            }
            match stmt {
                Stmt::Local(local) => {
                    if let Some(init) = &mut local.init {
                        self.task_call(&mut init.expr);
                    }
                }
                Stmt::Expr(expr, semi) => match self.statement(expr) {
                    // A task call as a statement: its node is not needed (`let _`, for
                    // `unused_results`), and the statement ends with `;` even as a tail.
                    Rewritten::TaskCall => {
                        *stmt = Stmt::Expr(Expr::Verbatim(quote!(let _ = #expr;)), None);
                    }
                    // As a tail, an ordering still ends with `;`, and so does any tail of
                    // the function body, which `build()` follows.
                    rewritten => {
                        let ordering = matches!(rewritten, Rewritten::Ordering);
                        if index == last
                            && semi.is_none()
                            && (ordering || (top && !block_like(expr)))
                        {
                            *semi = Some(Token![;](Span::mixed_site()));
                        }
                    }
                },
                Stmt::Macro(mac) => {
                    // `build()` follows the body's last statement.
                    let braced = matches!(mac.mac.delimiter, syn::MacroDelimiter::Brace(_));
                    if top && index == last && mac.semi_token.is_none() && !braced {
                        mac.semi_token = Some(Token![;](Span::mixed_site()));
                    }
                }
                Stmt::Item(_) => {}
            }
        }
    }

    /// Rewrites an expression statement.
    pub(super) fn statement(&mut self, expr: &mut Expr) -> Rewritten {
        match expr {
            Expr::Binary(binary) if is_ordering(&binary.op) => {
                let ordering = self.ordering(expr.clone());
                *expr = Expr::Verbatim(ordering);
                Rewritten::Ordering
            }
            Expr::Call(_) | Expr::MethodCall(_) => {
                if self.task_call(expr) {
                    Rewritten::TaskCall
                } else {
                    Rewritten::Other
                }
            }
            Expr::Block(inner) => {
                self.block(&mut inner.block, false);
                Rewritten::Other
            }
            Expr::If(inner) => {
                self.block(&mut inner.then_branch, false);
                if let Some((_, otherwise)) = &mut inner.else_branch {
                    self.statement(otherwise);
                }
                Rewritten::Other
            }
            Expr::ForLoop(inner) => {
                self.block(&mut inner.body, false);
                Rewritten::Other
            }
            Expr::While(inner) => {
                self.block(&mut inner.body, false);
                Rewritten::Other
            }
            Expr::Loop(inner) => {
                self.block(&mut inner.body, false);
                Rewritten::Other
            }
            _ => Rewritten::Other,
        }
    }

    /// Rewrites `expr` if it is a task call (`f(..)`, `steps::f(..)`), then its arguments
    /// that are task calls; returns whether it was one.
    pub(super) fn task_call(&mut self, expr: &mut Expr) -> bool {
        if let Expr::MethodCall(call) = expr {
            return self.mapped_call(expr_method(call).cloned(), expr);
        }
        let Expr::Call(call) = expr else { return false };
        if let Expr::MethodCall(method) = &*call.func
            && method.method.unraw() == "override"
        {
            return self.override_call(expr);
        }
        let Some(path) = task_path(call) else {
            return false;
        };
        if let Some(message) = not_a_task(path) {
            self.errors.at(&call.func, message);
            return false;
        }
        if let Some(arguments) = path.segments.iter().find(|s| !s.arguments.is_none()) {
            self.errors.at(
                &arguments.arguments,
                "a task call takes no generic arguments: tasks are not generic",
            );
            return false;
        }
        let path = path.clone();
        for arg in &mut call.args {
            self.task_call(arg);
        }
        self.task_calls += 1;
        // `<path>::__flow_call(args..)(&mut dag)`, every part located at the user's call:
        // `<`..`>` at the path, the arguments in the user's parentheses, the builder
        // applied in a group located at the closing parenthesis.
        let (first, last) = spans::first_last(&path);
        let open = quote_spanned!(first=> <);
        let close = quote_spanned!(last=> >);
        let function = Ident::new("__flow_call", last);
        let mut args = Group::new(Delimiter::Parenthesis, call.args.to_token_stream());
        args.set_span(call.paren_token.span.join());
        let dag = self.dag;
        let mut apply = Group::new(Delimiter::Parenthesis, quote!(&mut #dag));
        apply.set_span(call.paren_token.span.close());
        *expr = Expr::Verbatim(quote!(#open #path #close :: #function #args #apply));
        true
    }

    /// Rewrites `task.r#override(task_id = "b", retries = 3)(args..)` into
    /// `<task>::__flow_call_with(TaskOverride::new()..., args..)(&mut dag)`; returns
    /// whether `expr` was one.
    fn override_call(&mut self, expr: &mut Expr) -> bool {
        let Expr::Call(call) = expr else { return false };
        let Expr::MethodCall(method) = &*call.func else {
            return false;
        };
        let path = match &*method.receiver {
            Expr::Path(path) if path.qself.is_none() => path.path.clone(),
            other => {
                self.errors.at(
                    other,
                    "`.r#override(..)` goes on a task named by its path: \
                     `load.r#override(task_id = \"load_eu\")(args..)`",
                );
                return false;
            }
        };
        if let Some(message) = not_a_task(&path) {
            self.errors.at(&path, message);
            return false;
        }
        let over = self.override_options(&method.method, method.args.clone());
        for arg in &mut call.args {
            self.task_call(arg);
        }
        self.task_calls += 1;
        let (first, last) = spans::first_last(&path);
        let open = quote_spanned!(first=> <);
        let close = quote_spanned!(last=> >);
        let function = Ident::new("__flow_call_with", method.method.span());
        let user_args = &call.args;
        let comma = (!user_args.is_empty()).then(|| quote!(,));
        let mut args = Group::new(Delimiter::Parenthesis, quote!(#over #comma #user_args));
        args.set_span(call.paren_token.span.join());
        let dag = self.dag;
        let mut apply = Group::new(Delimiter::Parenthesis, quote!(&mut #dag));
        apply.set_span(call.paren_token.span.close());
        *expr = Expr::Verbatim(quote!(#open #path #close :: #function #args #apply));
        true
    }

    /// The `TaskOverride` of `.r#override(name = value, ..)`: `task_id` and the options of
    /// `#[task]` that do not change what the task is. A literal value is checked as in
    /// `#[task(..)]`; any other expression is passed to the option's setter, which takes
    /// the option's type (`Duration`, `TriggerRule`, ..).
    pub(super) fn override_options(
        &mut self,
        method: &Ident,
        args: syn::punctuated::Punctuated<Expr, Token![,]>,
    ) -> TokenStream {
        const KIND: &[&str] = &[
            "branch",
            "short_circuit",
            "shell",
            "container",
            "sensor",
            "poke_interval",
            "timeout",
            "mode",
            "soft_fail",
            "exponential_backoff",
        ];
        const CALLBACKS: &[&str] = &["on_success", "on_failure", "on_retry"];
        let root = self.root.clone();
        let mut valid: Vec<&str> = vec!["task_id"];
        valid.extend(TaskOptionArgs::KEYS);
        valid.push("pool_slots");
        if args.is_empty() {
            self.errors.at(
                method,
                format!(
                    "`.r#override()` needs what to override: `.r#override(task_id = \"..\", \
                     retries = 3)`; the options are: {}",
                    attr::key_list(&valid)
                ),
            );
        }
        let mut literals = TaskOptionArgs::default();
        let mut setters = TokenStream::new();
        let mut task_id = None;
        let mut seen: Vec<String> = Vec::new();
        for arg in args {
            let Some((key, value)) = self.name_and_value(
                arg,
                "`.r#override(..)` takes named options: `.r#override(task_id = \"load_eu\", \
                 retries = 3)`",
                "the left of `=` names an option of the task: `retries = 3`",
            ) else {
                continue;
            };
            let value = &value;
            let name = key.unraw().to_string();
            if seen.contains(&name) {
                self.errors.at(
                    &key,
                    format!("duplicate option `{name}`: give each option once"),
                );
                continue;
            }
            seen.push(name.clone());
            if KIND.contains(&name.as_str()) {
                self.errors.at(
                    &key,
                    format!(
                        "`{name}` cannot be overridden: it makes the task another kind of \
                         task; write another `#[task({name}..)]` function"
                    ),
                );
            } else if CALLBACKS.contains(&name.as_str()) {
                self.errors.at(
                    &key,
                    format!(
                        "`{name}` cannot be overridden yet: a task's callbacks are its own, \
                         `#[task({name} = ..)]`"
                    ),
                );
            } else if name == "task_id" {
                if let Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(id),
                    ..
                }) = value
                    && let Err(reason) = attr::check_id(&id.value())
                {
                    self.errors
                        .at(id, format!("invalid task id `{}`: {reason}", id.value()));
                }
                let setter = Ident::new("task_id", key.span());
                task_id = Some(quote!(.#setter(#value)));
            } else if !valid.contains(&name.as_str()) {
                let message = match attr::closest(&name, &valid) {
                    Some(close) => format!(
                        "unknown option `{name}` for `.r#override(..)`: did you mean \
                         `{close}`? The options are: {}",
                        attr::key_list(&valid)
                    ),
                    None => format!(
                        "unknown option `{name}` for `.r#override(..)`; the options are: {}",
                        attr::key_list(&valid)
                    ),
                };
                self.errors.at(&key, message);
            } else if is_literal(value) && name != "pool_slots" {
                // Checked as `#[task(..)]` checks it.
                let tokens = quote!(#key = #value);
                let parsed = syn::parse::Parser::parse2(
                    |input: syn::parse::ParseStream| literals.parse_one(input),
                    tokens,
                );
                if let Err(error) = parsed {
                    self.errors.push(error);
                }
            } else {
                // Typed by the setter, which takes the option's type.
                let setter = format_ident!("with_{}", name, span = key.span());
                let mut group = Group::new(Delimiter::Parenthesis, value.to_token_stream());
                group.set_span(value.span());
                setters.extend(quote!(.#setter #group));
            }
        }
        let options = literals.task_options(&root);
        quote!(#root::__private::TaskOverride::new() #task_id .options(#options #setters))
    }

    /// Rewrites `task.expand(b = list)`, `task.partial(a = 1).expand(b = list)` and
    /// `.expand_zip(..)` into the task's argument collectors:
    /// `<task>::__flow_partial().a(1).__flow_expand().b(list).__flow_finish(&mut dag)`.
    /// `method` is the outer method's name; returns whether `expr` was a mapped call.
    pub(super) fn mapped_call(&mut self, method: Option<Ident>, expr: &mut Expr) -> bool {
        let Some(method) = method else { return false };
        let Expr::MethodCall(call) = expr else {
            return false;
        };
        let zip = match method.to_string().as_str() {
            "expand" => false,
            "expand_zip" => true,
            "partial" if is_task_path_receiver(&call.receiver) => {
                self.errors.at(
                    &method,
                    "`.partial(..)` fixes some arguments of a mapped task: follow it with \
                     `.expand(name = list)` for the arguments to map over",
                );
                return false;
            }
            _ => return false,
        };
        let (base, partial) = match &*call.receiver {
            Expr::MethodCall(inner) if inner.method == "partial" => {
                (&*inner.receiver, Some(inner.args.clone()))
            }
            other => (other, None),
        };
        // The task, possibly with `.r#override(..)`.
        let (path, over) = match base {
            Expr::Path(path) if path.qself.is_none() => (path.path.clone(), None),
            Expr::MethodCall(inner) if inner.method.unraw() == "override" => {
                match &*inner.receiver {
                    Expr::Path(path) if path.qself.is_none() => (
                        path.path.clone(),
                        Some((inner.method.clone(), inner.args.clone())),
                    ),
                    _ => return false,
                }
            }
            _ => return false,
        };
        if let Some(message) = not_a_task(&path) {
            self.errors.at(&path, message);
            return false;
        }
        let over = over.map(|(method, args)| {
            let options = self.override_options(&method, args);
            let switch = Ident::new("__flow_override", method.span());
            quote!(. #switch (#options))
        });
        let mut names: Vec<Ident> = Vec::new();
        let fixed = self.named_arguments(partial.unwrap_or_default(), "partial", &mut names);
        if call.args.is_empty() {
            self.errors.at(
                &method,
                format!("`.{method}()` needs a list to map over: `.{method}(name = list)`"),
            );
        }
        let mapped = self.named_arguments(call.args.clone(), &method.to_string(), &mut names);
        self.task_calls += 1;
        let (first, last) = spans::first_last(&path);
        let open = quote_spanned!(first=> <);
        let close = quote_spanned!(last=> >);
        let start = Ident::new("__flow_partial", last);
        let switch = Ident::new("__flow_expand", method.span());
        let finish = Ident::new(
            if zip {
                "__flow_finish_zip"
            } else {
                "__flow_finish"
            },
            method.span(),
        );
        let dag = self.dag;
        let mut apply = Group::new(Delimiter::Parenthesis, quote!(&mut #dag));
        apply.set_span(call.paren_token.span.close());
        *expr = Expr::Verbatim(quote!(
            #open #path #close :: #start() #over #(#fixed)* . #switch () #(#mapped)* . #finish #apply
        ));
        true
    }

    /// `name = value` as its name and value, or `None` after reporting an argument that is
    /// not an assignment (`usage`) or whose left is not a name (`left`).
    fn name_and_value(&mut self, arg: Expr, usage: &str, left: &str) -> Option<(Ident, Expr)> {
        let Expr::Assign(assign) = arg else {
            self.errors.at(&arg, usage);
            return None;
        };
        let name = match &*assign.left {
            Expr::Path(path) if path.qself.is_none() => path.path.get_ident().cloned(),
            _ => None,
        };
        let Some(name) = name else {
            self.errors.at(&assign.left, left);
            return None;
        };
        Some((name, *assign.right))
    }

    /// `.name(value)` for each `name = value` of a mapped call's arguments; a task call in
    /// a value is rewritten too. Reports arguments that are not `name = value` and names
    /// given twice (`names` spans `.partial` and `.expand`).
    pub(super) fn named_arguments(
        &mut self,
        args: syn::punctuated::Punctuated<Expr, Token![,]>,
        method: &str,
        names: &mut Vec<Ident>,
    ) -> Vec<TokenStream> {
        let mut calls = Vec::new();
        for arg in args {
            let Some((name, mut value)) = self.name_and_value(
                arg,
                &format!(
                    "`.{method}(..)` takes named arguments, the task's parameter names: \
                     `.{method}(name = value)`"
                ),
                "the left of `=` names a parameter of the task: `name = value`",
            ) else {
                continue;
            };
            if names.contains(&name) {
                self.errors.at(
                    &name,
                    format!("argument `{name}` is given twice: give each parameter once"),
                );
                continue;
            }
            names.push(name.clone());
            self.task_call(&mut value);
            let mut group = Group::new(Delimiter::Parenthesis, value.to_token_stream());
            group.set_span(value.span());
            calls.push(quote!(. #name #group));
        }
        calls
    }

    /// `a >> b >> [c, d]` as a statement: `set_downstream` for each consecutive pair of
    /// groups, each group evaluated once, in source order.
    pub(super) fn ordering(&mut self, expr: Expr) -> TokenStream {
        let mut operands = Vec::new();
        let mut ops = Vec::new();
        let mut rest = expr;
        while let Expr::Binary(binary) = rest {
            if !is_ordering(&binary.op) {
                rest = Expr::Binary(binary);
                break;
            }
            operands.push(*binary.right);
            ops.push(binary.op);
            rest = *binary.left;
        }
        operands.push(rest);
        operands.reverse();
        ops.reverse();

        let root = self.root.clone();
        let dag = self.dag;
        let mut lets = Vec::new();
        let mut groups = Vec::new();
        for (index, operand) in operands.into_iter().enumerate() {
            let elements = match operand {
                Expr::Array(array) => array.elems.into_iter().collect(),
                single => vec![single],
            };
            let group = format_ident!("__flow_group_{}", index, span = Span::mixed_site());
            let len = elements.len();
            let nodes: Vec<TokenStream> = elements
                .into_iter()
                .map(|mut element| {
                    if let Expr::Lit(literal) = &element {
                        self.errors.at(
                            literal,
                            "`>>` and `<<` order tasks, and this is a literal: put a task call \
                             or a variable bound to one here",
                        );
                    }
                    self.task_call(&mut element);
                    // Located at the element, so "not a task node" points at it.
                    let (first, last) = spans::first_last(&element);
                    let root = spans::respan(root.clone(), first);
                    let function = quote_spanned!(first=> #root::__private::NodeRef::any_node);
                    let reference = quote_spanned!(first=> &);
                    let mut arg = Group::new(Delimiter::Parenthesis, quote!(#reference #element));
                    arg.set_span(last);
                    quote!(#function #arg)
                })
                .collect();
            lets.push(quote! {
                let #group: [#root::__private::AnyNode; #len] = [#(#nodes),*];
            });
            groups.push(group);
        }
        let edges = ops.iter().zip(groups.windows(2)).map(|(op, pair)| {
            let (upstream, downstream) = match op {
                BinOp::Shl(_) => (&pair[1], &pair[0]),
                _ => (&pair[0], &pair[1]),
            };
            quote!(#dag.set_downstream(&#upstream, &#downstream);)
        });
        quote!({ #(#lets)* #(#edges)* })
    }
}

/// What [`Body::statement`] made of a statement.
pub(super) enum Rewritten {
    TaskCall,
    Ordering,
    Other,
}

pub(super) fn is_ordering(op: &BinOp) -> bool {
    matches!(op, BinOp::Shr(_) | BinOp::Shl(_))
}

/// The path of `f(..)` / `steps::f(..)`, if the callee is a plain path.
pub(super) fn task_path(call: &ExprCall) -> Option<&syn::Path> {
    match &*call.func {
        Expr::Path(path) if path.qself.is_none() && path.attrs.is_empty() => Some(&path.path),
        _ => None,
    }
}

/// Why a call in a task position is certainly not a task call: tasks are functions with
/// `snake_case` names, so a path with a capitalised segment (`String::from`, `Some`) is a
/// constructor or an associated function.
pub(super) fn not_a_task(path: &syn::Path) -> Option<String> {
    let capitalised = path
        .segments
        .iter()
        .any(|s| s.ident.to_string().starts_with(|c: char| c.is_uppercase()));
    if !capitalised {
        return None;
    }
    let text = path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect::<Vec<_>>()
        .join("::");
    Some(format!(
        "`{text}(..)` is not a task: in a `#[dag]` body, a call as a statement, as a `let` \
         initializer, around `>>` or as an argument of a task call is a task call; to pass \
         the value of an ordinary call, wrap it in braces: `{{ {text}(..) }}`"
    ))
}

/// The method of a method call whose receiver is a task named by path.
pub(super) fn expr_method(call: &syn::ExprMethodCall) -> Option<&Ident> {
    is_task_path_receiver(&call.receiver).then_some(&call.method)
}

/// Whether a method receiver is a task named by path (`process.partial(..)`), possibly
/// after `.partial(..)`.
pub(super) fn is_task_path_receiver(receiver: &Expr) -> bool {
    match receiver {
        Expr::Path(_) => true,
        Expr::MethodCall(inner) if inner.method == "partial" => {
            is_task_path_receiver(&inner.receiver)
        }
        Expr::MethodCall(inner) if inner.method.unraw() == "override" => {
            matches!(&*inner.receiver, Expr::Path(_))
        }
        _ => false,
    }
}

/// A literal option value, checked at compile time as in `#[task(..)]`: `3`, `"5m"`,
/// `-5`, `true`, `["a@b.c"]`.
fn is_literal(value: &Expr) -> bool {
    match value {
        Expr::Lit(_) => true,
        Expr::Unary(unary) => {
            matches!(unary.op, syn::UnOp::Neg(_)) && matches!(&*unary.expr, Expr::Lit(_))
        }
        Expr::Array(array) => array.elems.iter().all(|e| matches!(e, Expr::Lit(_))),
        _ => false,
    }
}

/// Expressions that end a statement without a `;`.
pub(super) fn block_like(expr: &Expr) -> bool {
    matches!(
        expr,
        Expr::Block(_)
            | Expr::If(_)
            | Expr::ForLoop(_)
            | Expr::While(_)
            | Expr::Loop(_)
            | Expr::Match(_)
            | Expr::Unsafe(_)
            | Expr::TryBlock(_)
            | Expr::Const(_)
    )
}

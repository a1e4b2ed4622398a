//! THE table of task options: every option of `#[task]`, in the order the documentation
//! and the "unknown option" messages list them.
//!
//! A row `key: Type = reader;` is an option a task sets and a DAG can default in
//! `default_args(..)`: the table makes its keyword, its field of [`TaskOptionArgs`], its
//! parser arm (the reader takes the stream after the key, the key and its span) and its
//! setter in the generated code (`.key(value)` on `TaskSpec`, `.with_key(value)` on
//! `TaskOptions`, the value rendered by [`SetterArg`]). A row `key: task;` is an option
//! of one task only (a flag, a sensor option, a callback): the table makes its keyword and
//! lists it, and `task.rs` reads it.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote};
use syn::parse::ParseStream;
use syn::{Ident, LitBool, LitInt, LitStr};

use super::{
    DurationLit, TriggerRuleLit, WeightLit, boolean, count, duration, duration_tokens, email_list,
    owner, pool_name, positive_duration, trigger_rule, weight,
};

/// The rows, fed to `$callback!` as `[all keys] [shared rows]`.
macro_rules! task_option_table {
    ($callback:ident) => {
        $crate::attr::table::task_option_table!(@rows $callback [] []
            task_id: task;
            /// How many times a failed try is retried.
            retries: LitInt = count;
            /// The pause before a retry.
            retry_delay: DurationLit = duration;
            /// Who is responsible for the task; not empty.
            owner: LitStr = owner;
            /// When the task runs, given its upstream tasks' states.
            trigger_rule: TriggerRuleLit = trigger_rule;
            /// Whether each retry waits twice as long as the one before.
            retry_exponential_backoff: LitBool = |input, key, span| boolean(input, key, span, true);
            /// The longest pause before a retry when backing off.
            max_retry_delay: DurationLit = duration;
            /// How long one try may run; longer than 0s.
            execution_timeout: DurationLit = positive_duration;
            branch: task;
            short_circuit: task;
            ignore_downstream_trigger_rules: task;
            shell: task;
            container: task;
            sensor: task;
            poke_interval: task;
            timeout: task;
            mode: task;
            soft_fail: task;
            exponential_backoff: task;
            multiple_outputs: task;
            setup: task;
            teardown: task;
            on_failure_fail_dagrun: task;
            /// The pool whose slots a try takes (a task's setter also takes its slots).
            pool: LitStr = pool_name;
            pool_slots: task;
            /// Which waiting task starts first when slots are short; may be negative.
            priority_weight: WeightLit = weight;
            /// Who is mailed when the task fails or a try is retried.
            email: Vec<LitStr> = email_list;
            /// Whether `email` is mailed when the task fails for good.
            email_on_failure: LitBool = |input, key, span| boolean(input, key, span, true);
            /// Whether `email` is mailed when a try fails and another follows.
            email_on_retry: LitBool = |input, key, span| boolean(input, key, span, false);
            /// Whether an instance waits for the run before's instance to succeed or skip.
            depends_on_past: LitBool = |input, key, span| boolean(input, key, span, true);
            /// Whether it also waits for the run before's direct downstream instances.
            wait_for_downstream: LitBool = |input, key, span| boolean(input, key, span, true);
            on_success: task;
            on_failure: task;
            on_retry: task;
            retry_policy: task;
            outlets: task;
        );
    };
    // Sorts the rows, one at a time, into every key and the shared rows.
    (@rows $callback:ident [$($all:ident)*] [$($shared:tt)*]) => {
        $callback! { [$($all)*] [$($shared)*] }
    };
    (@rows $callback:ident [$($all:ident)*] [$($shared:tt)*]
        $key:ident: task; $($rest:tt)*) => {
        $crate::attr::table::task_option_table!(@rows $callback [$($all)* $key] [$($shared)*] $($rest)*);
    };
    (@rows $callback:ident [$($all:ident)*] [$($shared:tt)*]
        $(#[doc = $doc:literal])* $key:ident: $ty:ty = $reader:expr; $($rest:tt)*) => {
        $crate::attr::table::task_option_table!(@rows $callback [$($all)* $key]
            [$($shared)* { $(#[doc = $doc])* $key: $ty = $reader }] $($rest)*);
    };
}
pub(crate) use task_option_table;

/// The keywords of every task option (for `attr::kw`).
macro_rules! task_option_keywords {
    ([$($all:ident)*] [$($shared:tt)*]) => {
        $(syn::custom_keyword!($all);)*
    };
}
pub(crate) use task_option_keywords;

/// `TaskOptionArgs`, its key lists, its parser and its setters.
macro_rules! task_option_args {
    ([$($all:ident)*] [$({ $(#[doc = $doc:literal])* $key:ident: $ty:ty = $reader:expr })*]) => {
        /// The options a task sets itself or inherits from its DAG's `default_args(..)`.
        #[derive(Default)]
        pub(crate) struct TaskOptionArgs {
            $($(#[doc = $doc])* pub(crate) $key: Option<$ty>,)*
        }

        /// The keys of `#[task]`, in the documentation's order.
        pub(crate) const TASK_KEYS: &[&str] = &[$(stringify!($all),)* "crate"];

        impl TaskOptionArgs {
            /// The keys read by [`TaskOptionArgs::parse_one`]: those of `default_args(..)`.
            pub(crate) const KEYS: &'static [&'static str] = &[$(stringify!($key)),*];

            /// Reads one of [`TaskOptionArgs::KEYS`] if it is next; `Ok(false)` otherwise.
            pub(crate) fn parse_one(&mut self, input: ParseStream) -> syn::Result<bool> {
                $(
                    if input.peek(super::kw::$key) {
                        let key: super::kw::$key = input.parse()?;
                        let read: fn(ParseStream, &str, Span) -> syn::Result<$ty> = $reader;
                        self.$key = Some(read(input, stringify!($key), key.span)?);
                        return Ok(true);
                    }
                )*
                Ok(false)
            }

            /// The options given, as `(key, argument of its setter)`, in the table's order.
            fn setters(&self, root: &TokenStream) -> Vec<(&'static str, TokenStream)> {
                let mut setters = Vec::new();
                $(
                    if let Some(value) = &self.$key {
                        setters.push((stringify!($key), SetterArg::tokens(value, root)));
                    }
                )*
                setters
            }
        }
    };
}

task_option_table!(task_option_args);

/// How a value of an option is written as the argument of its setter.
pub(crate) trait SetterArg {
    /// The argument, in the generated code.
    fn tokens(&self, root: &TokenStream) -> TokenStream;
}

macro_rules! as_written {
    ($($ty:ty),*) => {
        $(impl SetterArg for $ty {
            fn tokens(&self, _: &TokenStream) -> TokenStream {
                self.to_token_stream()
            }
        })*
    };
}
as_written!(LitInt, LitStr, LitBool);

impl SetterArg for DurationLit {
    fn tokens(&self, root: &TokenStream) -> TokenStream {
        duration_tokens(root, self)
    }
}

impl SetterArg for TriggerRuleLit {
    fn tokens(&self, root: &TokenStream) -> TokenStream {
        let variant = Ident::new(self.variant, self.span);
        quote!(#root::__private::TriggerRule::#variant)
    }
}

impl SetterArg for WeightLit {
    fn tokens(&self, _: &TokenStream) -> TokenStream {
        WeightLit::tokens(self)
    }
}

impl SetterArg for Vec<LitStr> {
    fn tokens(&self, _: &TokenStream) -> TokenStream {
        // `[""; 0]` gives an empty list its element type.
        let items = self;
        if items.is_empty() {
            quote!([""; 0])
        } else {
            quote!([#(#items),*])
        }
    }
}

impl TaskOptionArgs {
    /// The options as `TaskSpec` setters: `.retries(2).retry_delay(..).owner(..)`. A task
    /// sets its pool with the slots it takes: `.pool("gpu", 2)`; `pool_slots` alone takes
    /// slots of `default_pool`.
    pub(crate) fn spec_setters(
        &self,
        root: &TokenStream,
        pool_slots: Option<&LitInt>,
    ) -> TokenStream {
        let mut tokens: TokenStream = self
            .setters(root)
            .into_iter()
            .filter(|(setter, _)| *setter != "pool")
            .map(|(setter, value)| {
                let setter = Ident::new(setter, Span::call_site());
                quote!(.#setter(#value))
            })
            .collect();
        let slots = pool_slots.map_or_else(|| quote!(1), ToTokens::to_token_stream);
        match (&self.pool, pool_slots) {
            (Some(pool), _) => tokens.extend(quote!(.pool(#pool, #slots))),
            (None, Some(_)) => {
                tokens.extend(quote!(.pool(#root::__private::DEFAULT_POOL, #slots)));
            }
            (None, None) => {}
        }
        tokens
    }

    /// The options as a `TaskOptions` value: `TaskOptions::default().with_retries(2)..`.
    pub(crate) fn task_options(&self, root: &TokenStream) -> TokenStream {
        let mut tokens = quote!(#root::__private::TaskOptions::default());
        for (setter, value) in self.setters(root) {
            let setter = format_ident!("with_{}", setter);
            tokens.extend(quote!(.#setter(#value)));
        }
        tokens
    }
}

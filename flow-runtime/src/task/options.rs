//! THE table of task options, and the [`TaskOptions`] it makes.

use std::time::Duration;

/// THE table of the options a task declares and a DAG defaults in `default_args`: each row
/// makes a field of [`TaskOptions`] (unset ones fall back to `default_args`), its
/// `with_..` builder, its part of [`TaskOptions::or`] and, where named after `spec`, its
/// setter on [`TaskSpec`]. (`pool` and `pool_slots` are set together on a task:
/// [`TaskSpec::pool`].) What an unset option means is said where it is read, in
/// `dag::Task`.
///
/// The table is handed to `$callback`, a macro taking its rows, so that each part of the
/// code that needs every option is generated from this one list.
macro_rules! task_option_table {
    ($callback:ident) => {
        $callback! {
            /// How many times a failed try is retried.
            retries: u32, with_retries(retries: u32) => retries, spec retries;
            /// The pause before a retry.
            retry_delay: Duration, with_retry_delay(delay: Duration) => delay, spec retry_delay;
            /// Who is responsible for the task.
            owner: String, with_owner(owner: impl Into<String>) => owner.into(), spec owner;
            /// When the task runs, given its upstream tasks' states.
            trigger_rule: crate::trigger::TriggerRule,
                with_trigger_rule(rule: crate::trigger::TriggerRule) => rule, spec trigger_rule;
            /// Whether each retry waits twice as long as the one before (with jitter), up to
            /// `max_retry_delay` (Airflow's `retry_exponential_backoff`).
            retry_exponential_backoff: bool,
                with_retry_exponential_backoff(on: bool) => on, spec retry_exponential_backoff;
            /// The longest pause before a retry when backing off.
            max_retry_delay: Duration,
                with_max_retry_delay(delay: Duration) => delay, spec max_retry_delay;
            /// How long one try may run before it fails.
            execution_timeout: Duration,
                with_execution_timeout(timeout: Duration) => timeout, spec execution_timeout;
            /// The pool whose slots a try takes (default `default_pool`).
            pool: String, with_pool(pool: impl Into<String>) => pool.into();
            /// How many slots of the pool a try takes (default 1).
            pool_slots: u32, with_pool_slots(slots: u32) => slots;
            /// Who starts first when slots are short: higher first, counting every downstream
            /// task's weight too (Airflow's `weight_rule = "downstream"`); default 1.
            priority_weight: i32, with_priority_weight(weight: i32) => weight, spec priority_weight;
            /// Who is mailed when the task fails or is retried (Airflow's `email`, sent through
            /// the executor's SMTP server: see [`crate::notify`]); an empty list mails no one,
            /// overriding `default_args`. Every address is checked when the DAG is built.
            email: Vec<String>,
                with_email(to: impl IntoIterator<Item = impl Into<String>>)
                    => to.into_iter().map(Into::into).collect(), spec email;
            /// Whether `email` is mailed when the task fails for good (default true).
            email_on_failure: bool, with_email_on_failure(on: bool) => on, spec email_on_failure;
            /// Whether `email` is mailed when a try fails and another follows (default true).
            email_on_retry: bool, with_email_on_retry(on: bool) => on, spec email_on_retry;
            /// Whether an instance waits until the same instance of the run before (by
            /// logical date) succeeded or was skipped (Airflow's `depends_on_past`).
            depends_on_past: bool, with_depends_on_past(on: bool) => on, spec depends_on_past;
            /// Whether an instance also waits for the run before's instances of the task's
            /// direct downstream tasks (Airflow's `wait_for_downstream`; implies
            /// `depends_on_past`).
            wait_for_downstream: bool,
                with_wait_for_downstream(on: bool) => on, spec wait_for_downstream;
        }
    };
}
pub(crate) use task_option_table;

/// Makes [`TaskOptions`] from the table's rows.
macro_rules! options_struct {
    ($(
        $(#[doc = $doc:literal])*
        $field:ident: $ty:ty, $with:ident($arg:ident: $arg_ty:ty) => $value:expr
        $(, spec $spec:ident)?;
    )*) => {
        /// Options a task declares; unset ones fall back to the DAG's `default_args`.
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct TaskOptions {
            $($(#[doc = $doc])* pub $field: Option<$ty>,)*
        }

        impl TaskOptions {
            $(
                #[doc = concat!("Sets [`TaskOptions::", stringify!($field), "`].")]
                pub fn $with(mut self, $arg: $arg_ty) -> Self {
                    self.$field = Some($value);
                    self
                }
            )*

            /// Fills every unset option from `defaults`.
            pub fn or(&self, defaults: &TaskOptions) -> TaskOptions {
                TaskOptions {
                    $($field: self.$field.as_ref().or(defaults.$field.as_ref()).cloned(),)*
                }
            }
        }
    };
}

task_option_table!(options_struct);

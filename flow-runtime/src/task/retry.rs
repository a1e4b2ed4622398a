//! Retry policies by error (Airflow 3's `retry_policy`): rules that look at the error a
//! failed try returned and decide whether it is retried, after how long, or failed at once.
//!
//! A rule matches an error type, anywhere in the returned error's chain of causes (Rust's
//! counterpart of Airflow matching subclasses), or only the error itself with
//! [`RetryRule::exact`]; [`RetryRule::when`] also looks at the value. Rules are tried in
//! order and the first match decides; when none matches, [`RetryPolicy::otherwise`] does
//! (the task's own retries by default). As in Airflow, a policy can fail a task before its
//! retries run out but never retry it more often than `retries` allows, and a
//! [`super::FailTask`] or a sensor's timeout fails it whatever the policy says.
//!
//! ```
//! use std::time::Duration;
//! use flow_runtime::task::retry::{RetryPolicy, RetryRule};
//!
//! #[derive(Debug, thiserror::Error)]
//! #[error("token expired")]
//! struct AuthError;
//!
//! let policy = RetryPolicy::new()
//!     .rule(RetryRule::on::<AuthError>().fail().reason("auth failure, not retryable"))
//!     .rule(
//!         RetryRule::when(|e: &std::io::Error| e.kind() == std::io::ErrorKind::TimedOut)
//!             .retry_after(Duration::from_secs(30)),
//!     );
//! let decision = policy.decide(&anyhow::Error::from(AuthError).context("calling the API"));
//! assert_eq!(decision.reason.as_deref(), Some("auth failure, not retryable"));
//! ```

use std::error::Error;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// What follows a failed try.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryAction {
    /// Retry (after the rule's delay, if it has one), while the task's retries last; once
    /// they are used up, the same as [`RetryAction::Default`].
    Retry,
    /// Fail at once, without the retries left.
    Fail,
    /// The task's own retry settings decide.
    Default,
}

/// What a [`RetryPolicy`] decided about one error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryDecision {
    /// What follows.
    pub action: RetryAction,
    /// The pause before the retry, instead of the task's `retry_delay`.
    pub delay: Option<Duration>,
    /// Why, for the try's log and the instance's error.
    pub reason: Option<String>,
}

type Matcher = dyn Fn(&(dyn Error + 'static)) -> bool + Send + Sync;

/// One error type (or condition on it) and what follows when a try fails with it.
#[derive(Clone)]
pub struct RetryRule {
    matches: Arc<Matcher>,
    /// The type the rule matches, for `Debug` and default reasons.
    type_name: &'static str,
    exact: bool,
    action: RetryAction,
    delay: Option<Duration>,
    reason: Option<String>,
}

impl std::fmt::Debug for RetryRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryRule")
            .field("error", &self.type_name)
            .field("exact", &self.exact)
            .field("action", &self.action)
            .field("delay", &self.delay)
            .field("reason", &self.reason)
            .finish()
    }
}

impl RetryRule {
    /// Matches an error of type `E` anywhere in the chain of causes; retries by default.
    pub fn on<E: Error + 'static>() -> Self {
        Self::when(|_: &E| true)
    }

    /// Matches an error of type `E`, anywhere in the chain of causes, for which `condition`
    /// holds (an HTTP status, an I/O error kind); retries by default.
    pub fn when<E: Error + 'static>(
        condition: impl Fn(&E) -> bool + Send + Sync + 'static,
    ) -> Self {
        Self {
            matches: Arc::new(move |error| error.downcast_ref::<E>().is_some_and(&condition)),
            type_name: std::any::type_name::<E>(),
            exact: false,
            action: RetryAction::Retry,
            delay: None,
            reason: None,
        }
    }

    /// Matches only the error the task returned, not its causes (Airflow's
    /// `match_subclasses=False`).
    pub fn exact(mut self) -> Self {
        self.exact = true;
        self
    }

    /// Retries (the default), after the task's own `retry_delay`.
    pub fn retry(mut self) -> Self {
        self.action = RetryAction::Retry;
        self
    }

    /// Retries after `delay` instead of the task's `retry_delay`.
    pub fn retry_after(mut self, delay: Duration) -> Self {
        self.action = RetryAction::Retry;
        self.delay = Some(delay);
        self
    }

    /// Fails at once, without the retries left.
    pub fn fail(mut self) -> Self {
        self.action = RetryAction::Fail;
        self.delay = None;
        self
    }

    /// Leaves the decision to the task's retry settings (a rule that stops later rules
    /// from matching).
    pub fn default_action(mut self) -> Self {
        self.action = RetryAction::Default;
        self.delay = None;
        self
    }

    /// Why, logged with the decision and kept with the instance's error.
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    fn matches(&self, error: &anyhow::Error) -> bool {
        if self.exact {
            let outer: &(dyn Error + 'static) = error.as_ref();
            (self.matches)(outer)
        } else {
            error.chain().any(|cause| (self.matches)(cause))
        }
    }
}

/// Rules tried in order on a failed try's error; the first that matches decides.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    rules: Vec<RetryRule>,
    otherwise: RetryAction,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl RetryPolicy {
    /// A policy without rules: the task's retry settings decide.
    pub fn new() -> Self {
        Self {
            rules: Vec::new(),
            otherwise: RetryAction::Default,
        }
    }

    /// Adds a rule, tried after the ones before it.
    pub fn rule(mut self, rule: RetryRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// What follows an error no rule matches ([`RetryAction::Default`] unless set): with
    /// [`RetryAction::Fail`], only the errors the rules name are retried.
    pub fn otherwise(mut self, action: RetryAction) -> Self {
        self.otherwise = action;
        self
    }

    /// The decision about `error`, the error a try returned.
    pub fn decide(&self, error: &anyhow::Error) -> RetryDecision {
        match self.rules.iter().find(|rule| rule.matches(error)) {
            Some(rule) => RetryDecision {
                action: rule.action,
                delay: rule.delay,
                reason: Some(
                    rule.reason
                        .clone()
                        .unwrap_or_else(|| format!("matched the rule for `{}`", rule.type_name)),
                ),
            },
            None => RetryDecision {
                action: self.otherwise,
                delay: None,
                reason: (self.otherwise == RetryAction::Fail)
                    .then(|| "no rule of the retry policy matched".to_string()),
            },
        }
    }
}

tokio::task_local! {
    static POLICY: Arc<RetryPolicy>;
}

/// Runs an async try with `policy` as the policy its errors are judged by.
pub(crate) async fn scope<F: Future>(policy: Option<Arc<RetryPolicy>>, future: F) -> F::Output {
    match policy {
        Some(policy) => POLICY.scope(policy, future).await,
        None => future.await,
    }
}

/// Runs a sync try with `policy` as the policy its errors are judged by.
pub(crate) fn sync_scope<R>(policy: Option<Arc<RetryPolicy>>, call: impl FnOnce() -> R) -> R {
    match policy {
        Some(policy) => POLICY.sync_scope(policy, call),
        None => call(),
    }
}

/// The decision of the policy of the try running here about `error`, if it has one.
pub(crate) fn decide(error: &anyhow::Error) -> Option<RetryDecision> {
    POLICY.try_with(|policy| policy.decide(error)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("rate limited")]
    struct RateLimited;

    #[derive(Debug, thiserror::Error)]
    #[error("bad token")]
    struct BadToken;

    fn policy() -> RetryPolicy {
        RetryPolicy::new()
            .rule(
                RetryRule::on::<RateLimited>()
                    .retry_after(Duration::from_secs(300))
                    .reason("rate limit, backing off"),
            )
            .rule(RetryRule::on::<BadToken>().fail())
            .rule(
                RetryRule::when(|e: &std::io::Error| e.kind() == std::io::ErrorKind::TimedOut)
                    .retry_after(Duration::from_secs(30)),
            )
    }

    #[test]
    fn the_first_matching_rule_decides_anywhere_in_the_chain() {
        let wrapped = anyhow::Error::from(RateLimited).context("calling the API");
        let decision = policy().decide(&wrapped);
        assert_eq!(decision.action, RetryAction::Retry);
        assert_eq!(decision.delay, Some(Duration::from_secs(300)));
        assert_eq!(decision.reason.as_deref(), Some("rate limit, backing off"));
        let decision = policy().decide(&anyhow::Error::from(BadToken));
        assert_eq!(decision.action, RetryAction::Fail);
        assert!(
            decision.reason.unwrap().contains("BadToken"),
            "a default reason names the type"
        );
    }

    #[test]
    fn a_condition_looks_at_the_value_and_no_match_falls_through() {
        let timeout = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow");
        assert_eq!(
            policy().decide(&anyhow::Error::from(timeout)).delay,
            Some(Duration::from_secs(30))
        );
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "no");
        let decision = policy().decide(&anyhow::Error::from(refused));
        assert_eq!(decision.action, RetryAction::Default);
        assert_eq!(decision.reason, None);
        let strict = policy().otherwise(RetryAction::Fail);
        assert_eq!(
            strict.decide(&anyhow::anyhow!("unknown")).action,
            RetryAction::Fail
        );
    }

    #[test]
    fn an_exact_rule_ignores_the_causes() {
        let policy = RetryPolicy::new().rule(RetryRule::on::<BadToken>().exact().fail());
        assert_eq!(
            policy.decide(&anyhow::Error::from(BadToken)).action,
            RetryAction::Fail
        );
        let wrapped = anyhow::Error::from(BadToken).context("calling the API");
        assert_eq!(policy.decide(&wrapped).action, RetryAction::Default);
    }
}

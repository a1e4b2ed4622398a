//! The deciding side: which task instances of a run are ready, what an outcome means
//! (retries, skips, trigger rules, mapping, reschedules, timeouts), and the loop that
//! commits those decisions before it offers work to an executor.
//!
//! - [`tracker`]: one run's decisions as a pure state machine (no tokio, no store);
//! - [`run_loop`]: the coordinating loop around it, which does the I/O: commits, reads of
//!   inputs, pool admission, timers, log flushing and events.
//!
//! The long-running loop that creates scheduled runs and drives them is
//! [`crate::runtime::Scheduler`], on top of the public facade.

pub(crate) mod lease;
mod reschedule;
pub(crate) mod run_loop;
pub(crate) mod tracker;
#[cfg(test)]
mod tracker_tests;

//! The options that steer runs: trigger rules, retry backoff, timeouts, branch and
//! short-circuit tasks; on tasks and in `default_args(..)`.

use std::time::Duration;

use flow_runtime::branch::TaskKind;
use flow_runtime::prelude::*;
use flow_runtime::TriggerRule;

#[derive(Serialize, Deserialize)]
struct Metrics {
    accuracy: f64,
}

#[task(retry_exponential_backoff = true, max_retry_delay = "1h", retry_delay = "1s")]
fn evaluate() -> Metrics {
    Metrics { accuracy: 0.93 }
}

/// Picks where to deploy.
#[task(branch)]
fn choose(m: Metrics) -> Branch {
    if m.accuracy > 0.9 {
        Branch::to("deploy_production")
    } else {
        Branch::to("deploy_staging")
    }
}

#[task(branch, task_id = "choose_fallibly")]
fn choose_result(m: Metrics) -> anyhow::Result<flow_runtime::Branch> {
    anyhow::ensure!(m.accuracy >= 0.0, "negative accuracy");
    Ok(Branch::to_all(["deploy_production", "deploy_staging"]))
}

#[task(short_circuit)]
fn worth_it(m: Metrics) -> Result<bool, std::io::Error> {
    Ok(m.accuracy > 0.5)
}

#[task(short_circuit, trigger_rule = "none_failed_min_one_success")]
fn still_worth_it() -> bool {
    true
}

#[task(short_circuit, ignore_downstream_trigger_rules = false)]
fn only_the_next() -> bool {
    false
}

#[task(execution_timeout = "10m")]
fn deploy_production() {}

#[task]
fn deploy_staging() {}

#[task(trigger_rule = "all_done", retry_exponential_backoff = false)]
fn notify() {}

#[task(trigger_rule = "always", execution_timeout = "250ms")]
fn cleanup() {}

#[dag(default_args(
    trigger_rule = "none_failed",
    retry_exponential_backoff = true,
    max_retry_delay = "30m",
    execution_timeout = "2h"
))]
fn deploy() {
    let metrics = evaluate();
    let choice = choose(metrics);
    choice >> [deploy_production(), deploy_staging()] >> notify();
    choose_result(evaluate());
    worth_it(evaluate()) >> still_worth_it() >> cleanup();
    only_the_next() >> deploy_staging();
}

fn main() {
    let dag = deploy().unwrap();
    let task = |id: &str| dag.task(id).unwrap();

    assert_eq!(task("choose").spec().kind(), TaskKind::Branch);
    assert_eq!(task("choose_fallibly").spec().kind(), TaskKind::Branch);
    let short_circuit = TaskKind::ShortCircuit {
        ignore_downstream_trigger_rules: true,
    };
    assert_eq!(task("worth_it").spec().kind(), short_circuit);
    assert_eq!(task("still_worth_it").spec().kind(), short_circuit);
    assert_eq!(
        task("only_the_next").spec().kind(),
        TaskKind::ShortCircuit {
            ignore_downstream_trigger_rules: false,
        }
    );
    assert_eq!(task("notify").spec().kind(), TaskKind::Normal);
    assert_eq!(choose::spec().documentation(), Some("Picks where to deploy."));

    // A task's own rule wins; the others take the DAG's default.
    assert_eq!(task("notify").trigger_rule(), TriggerRule::AllDone);
    assert_eq!(task("cleanup").trigger_rule(), TriggerRule::Always);
    assert_eq!(
        task("still_worth_it").trigger_rule(),
        TriggerRule::NoneFailedMinOneSuccess
    );
    assert_eq!(task("deploy_staging").trigger_rule(), TriggerRule::NoneFailed);
    assert_eq!(
        notify::spec().options().trigger_rule,
        Some(TriggerRule::AllDone)
    );
    assert_eq!(deploy_staging::spec().options().trigger_rule, None);

    // Timeouts.
    assert_eq!(
        task("deploy_production").execution_timeout(),
        Some(Duration::from_secs(600))
    );
    assert_eq!(
        task("cleanup").execution_timeout(),
        Some(Duration::from_millis(250))
    );
    assert_eq!(
        task("notify").execution_timeout(),
        Some(Duration::from_secs(7200))
    );

    // Backoff: the task's own cap of an hour; the DAG's 30 minutes elsewhere; none for
    // a task that turns it off.
    let evaluate_options = evaluate::spec().options().clone();
    assert_eq!(evaluate_options.retry_exponential_backoff, Some(true));
    assert_eq!(
        evaluate_options.max_retry_delay,
        Some(Duration::from_secs(3600))
    );
    let evaluate_task = task("evaluate");
    assert_eq!(evaluate_task.retry_delay_for(1, 0), Duration::from_secs(1));
    assert_eq!(evaluate_task.retry_delay_for(3, 0), Duration::from_secs(4));
    assert_eq!(
        evaluate_task.retry_delay_for(30, 0),
        Duration::from_secs(3600)
    );
    assert_eq!(
        task("deploy_staging").retry_delay_for(30, 0),
        Duration::from_secs(1800)
    );
    assert_eq!(
        task("notify").retry_delay_for(30, 0),
        task("notify").retry_delay()
    );
}

//! The builder's tests: edges, checks and the DAG they produce.

use std::time::Duration;

use chrono_tz::Tz;

use super::*;
use crate::ids::TaskIndex;
use crate::task::{TaskError, TaskOptions, TaskSpec};
use crate::time::parse_date;
use crate::time::timetable::Restriction;
use crate::trigger::TriggerRule;

/// A task returning 1.
pub(super) fn source(name: &str) -> TaskSpec {
    TaskSpec::from_sync(name, |_, _| Ok::<u64, TaskError>(1))
}
/// A task adding 1 to its input `x`.
pub(super) fn sink(name: &str) -> TaskSpec {
    TaskSpec::from_sync(name, |_, inputs| {
        Ok::<u64, TaskError>(inputs.get::<u64>(0)? + 1)
    })
    .param::<u64>("x")
}

fn problems(builder: DagBuilder) -> Vec<DagDefinitionError> {
    builder.build().unwrap_err().errors().to_vec()
}

#[test]
fn data_and_order_edges_become_upstreams() {
    let mut b = DagBuilder::new("d");
    let a = b.add_task(source("a")).finish::<u64>();
    let mut t = b.add_task(sink("b"));
    t.input(a);
    let bn = t.finish::<u64>();
    let c = b.add_task(source("c")).finish::<u64>();
    b.set_downstream(&[a.any(), c.any()], &[bn.any()]);
    let dag = b.build().unwrap();
    let ix = TaskIndex::new;
    assert_eq!(dag.task("b").unwrap().upstream(), &[ix(0), ix(2)]);
    assert_eq!(dag.task("a").unwrap().downstream(), &[ix(1)]);
    assert_eq!(dag.task_index("c"), Some(ix(2)));
    assert_eq!(dag[ix(2)].id().as_str(), "c");
}

#[test]
fn reused_tasks_get_airflow_suffixes_and_explicit_duplicates_fail() {
    let mut b = DagBuilder::new("d");
    for _ in 0..3 {
        b.add_task(source("load"));
    }
    let dag = b.build().unwrap();
    let ids: Vec<_> = dag.tasks().iter().map(|t| t.id().to_string()).collect();
    assert_eq!(ids, ["load", "load__1", "load__2"]);

    let mut b = DagBuilder::new("d");
    b.add_task(source("x"));
    b.add_task(source("y")).task_id("x");
    assert_eq!(
        problems(b),
        [DagDefinitionError::DuplicateTaskId("x".into())]
    );
}

#[test]
fn every_cycle_is_reported_with_all_other_problems() {
    let mut b = DagBuilder::new("bad id!")
        .schedule("every day")
        .start_date("yesterday");
    let nodes: Vec<AnyNode> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| b.add_task(source(n)).finish::<u64>().any())
        .collect();
    b.chain(&[&[nodes[0]], &[nodes[1]], &[nodes[0]]]);
    b.chain(&[&[nodes[2]], &[nodes[3]], &[nodes[2]]]);
    let errs = problems(b);
    assert!(matches!(errs[0], DagDefinitionError::InvalidId { .. }));
    assert!(matches!(
        errs[1],
        DagDefinitionError::InvalidSchedule { .. }
    ));
    assert!(matches!(errs[2], DagDefinitionError::InvalidDate { .. }));
    let DagDefinitionError::Cycle(cycles) = &errs[3] else {
        panic!("{errs:?}")
    };
    assert_eq!(cycles.len(), 2);
}

#[test]
fn missing_arguments_foreign_nodes_and_empty_dags_are_errors() {
    let mut other = DagBuilder::new("other");
    let foreign = other.add_task(source("a")).finish::<u64>();
    let mut b = DagBuilder::new("d");
    b.add_task(sink("no_arg"));
    b.add_task(sink("foreign")).input(foreign);
    let errs = problems(b);
    assert!(matches!(&errs[0], DagDefinitionError::MissingArgument { param, .. } if param == "x"));
    assert!(matches!(&errs[1], DagDefinitionError::ForeignNode { .. }));
    assert_eq!(
        problems(DagBuilder::new("empty")),
        [DagDefinitionError::Empty]
    );
}

#[test]
fn exponential_backoff_doubles_with_stable_jitter_and_a_cap() {
    let mut b = DagBuilder::new("d");
    b.add_task(source("plain").retry_delay(Duration::from_secs(10)));
    b.add_task(
        source("backoff")
            .retry_delay(Duration::from_secs(10))
            .retry_exponential_backoff(true),
    );
    b.add_task(
        source("capped")
            .retry_delay(Duration::from_secs(10))
            .retry_exponential_backoff(true)
            .max_retry_delay(Duration::from_secs(25)),
    );
    let dag = b.build().unwrap();
    let plain = dag.task("plain").unwrap();
    assert_eq!(plain.retry_delay_for(3, 12345), Duration::from_secs(10));
    let backoff = dag.task("backoff").unwrap();
    for (retry, low) in [(1, 10), (2, 20), (3, 40), (4, 80)] {
        let delay = backoff.retry_delay_for(retry, 987_654_321);
        assert!(
            delay >= Duration::from_secs(low) && delay < Duration::from_secs(2 * low),
            "retry {retry}: {delay:?}"
        );
        assert_eq!(
            delay,
            backoff.retry_delay_for(retry, 987_654_321),
            "stable for the same seed"
        );
    }
    assert_ne!(
        backoff.retry_delay_for(2, 1),
        backoff.retry_delay_for(2, 2),
        "jitter"
    );
    assert_eq!(
        dag.task("capped").unwrap().retry_delay_for(4, 7),
        Duration::from_secs(25)
    );
    assert!(
        backoff.retry_delay_for(200, u64::MAX) > Duration::ZERO,
        "no overflow"
    );
}

#[test]
fn default_args_fill_unset_options_only() {
    let mut b = DagBuilder::new("d").default_args(
        TaskOptions::default()
            .with_retries(2)
            .with_retry_delay(Duration::from_secs(1))
            .with_owner("ml-team")
            .with_trigger_rule(TriggerRule::AllDone),
    );
    b.add_task(source("a"));
    b.add_task(source("b").retries(5));
    let dag = b.build().unwrap();
    assert_eq!(dag.task("a").unwrap().retries(), 2);
    assert_eq!(dag.task("b").unwrap().retries(), 5);
    assert_eq!(dag.task("b").unwrap().owner(), "ml-team");
    assert_eq!(dag.task("a").unwrap().retry_delay(), Duration::from_secs(1));
    assert_eq!(dag.task("a").unwrap().trigger_rule(), TriggerRule::AllDone);
}

#[test]
fn email_options_default_like_airflow_and_a_task_can_opt_out() {
    let mut b = DagBuilder::new("d").default_args(
        TaskOptions::default()
            .with_email(["team@example.com"])
            .with_email_on_retry(false),
    );
    b.add_task(source("a"));
    b.add_task(source("b").email(Vec::<String>::new()));
    b.add_task(source("c").email_on_failure(false).email_on_retry(true));
    b.add_task(source("d").email(["ops@example.com"]));
    #[cfg(not(feature = "email"))]
    assert_eq!(
        problems(b),
        ["a", "c", "d"].map(|t| DagDefinitionError::EmailFeatureOff(t.into()))
    );
    #[cfg(feature = "email")]
    {
        use crate::state::TaskState;
        let dag = b.build().unwrap();
        let task = |id: &str| dag.task(id).unwrap();
        assert_eq!(task("a").email(), ["team@example.com"]);
        assert!(task("a").emails_on(TaskState::Failed));
        assert!(!task("a").emails_on(TaskState::UpForRetry));
        assert!(
            !task("b").emails_on(TaskState::Failed),
            "`email = []` opts out"
        );
        assert!(!task("c").emails_on(TaskState::Failed));
        assert!(task("c").emails_on(TaskState::UpForRetry));
        assert_eq!(task("d").email(), ["ops@example.com"]);
        assert!(!task("d").emails_on(TaskState::Success));
    }
}

fn one_task(b: DagBuilder) -> DagBuilder {
    let mut b = b;
    b.add_task(source("a"));
    b
}

#[test]
fn scheduling_options_have_airflows_defaults() {
    let dag = one_task(DagBuilder::new("d")).build().unwrap();
    assert_eq!(dag.timezone(), Tz::UTC);
    assert_eq!(dag.end_date(), None);
    assert_eq!(dag.max_active_runs(), 16);
    assert_eq!(dag.dagrun_timeout(), None);
    assert!(dag.params().is_empty());
    assert_eq!(dag.restriction(), Restriction::default());
    assert_eq!(dag.timetable().timezone(), Tz::UTC);
}

#[test]
fn scheduling_options_reach_the_dag_its_timetable_and_restriction() {
    let dag = one_task(
        DagBuilder::new("d")
            .schedule("0 2 * * *")
            .timezone("Europe/Amsterdam")
            .start_date("2025-01-01")
            .end_date("2025-06-30T12:00:00Z")
            .catchup(true)
            .max_active_runs(1)
            .dagrun_timeout(Duration::from_secs(7200)),
    )
    .build()
    .unwrap();
    assert_eq!(dag.timezone(), Tz::Europe__Amsterdam);
    // A day without a time is midnight in the DAG's time zone (UTC+1 in winter).
    assert_eq!(
        dag.start_date().unwrap().to_rfc3339(),
        "2024-12-31T23:00:00+00:00"
    );
    assert_eq!(
        dag.end_date().unwrap().to_rfc3339(),
        "2025-06-30T12:00:00+00:00"
    );
    assert_eq!(dag.max_active_runs(), 1);
    assert_eq!(dag.dagrun_timeout(), Some(Duration::from_secs(7200)));
    let restriction = dag.restriction();
    assert_eq!(
        restriction,
        Restriction {
            start_date: dag.start_date(),
            end_date: dag.end_date(),
            catchup: true,
        }
    );
    // 02:00 in Amsterdam: 01:00 UTC in winter.
    let timetable = dag.timetable();
    assert_eq!(timetable.timezone(), Tz::Europe__Amsterdam);
    let now = parse_date("2025-01-03T12:00:00Z").unwrap();
    let due = timetable.due_intervals(None, &restriction, now);
    assert_eq!(due.len(), 2);
    assert_eq!(due[0].start.to_rfc3339(), "2025-01-01T01:00:00+00:00");
}

#[test]
fn bad_scheduling_options_are_collected() {
    let errs = problems(one_task(
        DagBuilder::new("d")
            .timezone("Europe/Amsterdm")
            .start_date("2025-01-01")
            .end_date("2025-02-30")
            .max_active_runs(0),
    ));
    assert_eq!(errs.len(), 3, "{errs:?}");
    let message = errs[0].to_string();
    assert!(
        message.starts_with("unknown time zone `Europe/Amsterdm`; did you mean `Europe/Amsterdam`"),
        "{message}"
    );
    assert_eq!(
        errs[1],
        DagDefinitionError::InvalidDate {
            field: "end_date",
            value: "2025-02-30".into()
        }
    );
    assert_eq!(errs[2], DagDefinitionError::ZeroMaxActiveRuns);

    let errs = problems(one_task(
        DagBuilder::new("d")
            .start_date("2025-01-01")
            .end_date("2024-12-31"),
    ));
    assert_eq!(
        errs,
        [DagDefinitionError::EndBeforeStart {
            start_date: "2025-01-01".into(),
            end_date: "2024-12-31".into()
        }]
    );
    assert_eq!(
        errs[0].to_string(),
        "end_date `2024-12-31` is before start_date `2025-01-01`, so no run would ever be \
         scheduled; set an end_date at or after the start_date, or none"
    );
    // Equal dates are one run, not an error; so is an end date without a start date.
    assert!(
        one_task(
            DagBuilder::new("d")
                .start_date("2025-01-01")
                .end_date("2025-01-01")
        )
        .build()
        .is_ok()
    );
    assert!(
        one_task(DagBuilder::new("d").end_date("2025-01-01"))
            .build()
            .is_ok()
    );
}

#[test]
fn params_are_declared_once_each_with_usable_defaults() {
    use crate::params::DagParam;
    let dag = one_task(
        DagBuilder::new("d")
            .param(DagParam::new::<f64>("threshold").default(0.8))
            .param(DagParam::new::<String>("models_dir").default("models"))
            .param(DagParam::new::<u32>("epochs")),
    )
    .build()
    .unwrap();
    let names: Vec<&str> = dag.params().iter().map(|p| p.name()).collect();
    assert_eq!(names, ["threshold", "models_dir", "epochs"]);
    assert_eq!(
        dag.params().get("models_dir").unwrap().default_value(),
        Some(&serde_json::json!("models"))
    );

    let errs = problems(one_task(
        DagBuilder::new("d")
            .param(DagParam::new::<f64>("x"))
            .param(DagParam::new::<u32>("x"))
            .param(DagParam::new::<u32>("x"))
            .param(DagParam::new::<f64>("nan").default(f64::NAN))
            .param(DagParam::new::<u32>("no spaces")),
    ));
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert_eq!(errs[0], DagDefinitionError::DuplicateParam("x".into()));
    assert_eq!(
        errs[0].to_string(),
        "param `x` is declared twice; give each param its own name"
    );
    assert!(
        matches!(&errs[1], DagDefinitionError::InvalidParamDefault { param, .. } if param == "nan")
    );
    assert!(
        matches!(&errs[2], DagDefinitionError::InvalidId { what: "param", id } if id == "no spaces")
    );
}

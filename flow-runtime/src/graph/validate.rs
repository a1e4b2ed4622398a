//! The checks of [`DagBuilder::build`](super::DagBuilder::build), one function per
//! concern. Each adds what it finds to `errors`, so a build reports every problem at once,
//! in the order these run.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::algo;
use super::dag::Task;
use super::error::DagDefinitionError;
use super::params::DagParam;
use crate::assets::Asset;
use crate::branch::TaskKind;
use crate::ids::{DagId, TaskId};
use crate::task::{TaskOptions, TaskSpec};
use crate::time::parse_date_in;
use crate::time::schedule::Schedule;
use crate::time::timetable::Timetable;

/// The DAG's id is a valid id.
pub(super) fn dag_id(id: &DagId, errors: &mut Vec<DagDefinitionError>) {
    if !valid_id(id.as_str()) {
        errors.push(DagDefinitionError::InvalidId {
            what: "DAG",
            id: id.to_string(),
        });
    }
}

/// The schedule parses (no schedule: manual runs only).
pub(super) fn schedule(text: Option<&str>, errors: &mut Vec<DagDefinitionError>) -> Schedule {
    match text.map(Schedule::parse) {
        None => Schedule::Manual,
        Some(Ok(schedule)) => schedule,
        Some(Err(reason)) => {
            errors.push(DagDefinitionError::InvalidSchedule {
                schedule: text.unwrap_or_default().to_string(),
                reason,
            });
            Schedule::Manual
        }
    }
}

/// A schedule on assets: at least one, each a valid URI, and no time schedule besides.
pub(super) fn asset_schedule(
    assets: &[Asset],
    timed: bool,
    errors: &mut Vec<DagDefinitionError>,
) -> Schedule {
    if timed {
        errors.push(DagDefinitionError::AssetSchedule(
            "a DAG runs on a time schedule or on assets, not both: drop `schedule` or `schedule_on`",
        ));
    }
    if assets.is_empty() {
        errors.push(DagDefinitionError::AssetSchedule(
            "`schedule_on` needs at least one asset; for manual runs only, set no schedule",
        ));
    }
    asset_uris(assets, "the schedule", errors);
    let mut assets = assets.to_vec();
    assets.sort();
    assets.dedup();
    Schedule::Assets(assets)
}

/// A task's outlets are valid asset URIs.
pub(super) fn outlets(task: &TaskId, outlets: &[Asset], errors: &mut Vec<DagDefinitionError>) {
    asset_uris(outlets, &format!("the outlets of task `{task}`"), errors);
}

fn asset_uris(assets: &[Asset], place: &str, errors: &mut Vec<DagDefinitionError>) {
    for asset in assets {
        if let Some(reason) = asset.problem() {
            errors.push(DagDefinitionError::InvalidAsset {
                uri: asset.uri().to_string(),
                place: place.to_string(),
                reason,
            });
        }
    }
}

/// The time zone is a known IANA name (none: UTC).
pub(super) fn timezone(name: Option<&str>, errors: &mut Vec<DagDefinitionError>) -> Tz {
    match name.map(Timetable::parse_timezone) {
        None => Tz::UTC,
        Some(Ok(tz)) => tz,
        Some(Err(e)) => {
            errors.push(DagDefinitionError::Timezone(e));
            Tz::UTC
        }
    }
}

/// `start_date` and `end_date` parse in `timezone`, and the end is not before the start.
pub(super) fn dates(
    start: Option<&str>,
    end: Option<&str>,
    timezone: Tz,
    errors: &mut Vec<DagDefinitionError>,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let mut date = |field: &'static str, text: Option<&str>| {
        let text = text?;
        let parsed = parse_date_in(text, timezone);
        if parsed.is_none() {
            errors.push(DagDefinitionError::InvalidDate {
                field,
                value: text.to_string(),
            });
        }
        parsed
    };
    let start_date = date("start_date", start);
    let end_date = date("end_date", end);
    if let (Some(first), Some(last)) = (start_date, end_date)
        && last < first
    {
        errors.push(DagDefinitionError::EndBeforeStart {
            start_date: start.unwrap_or_default().to_string(),
            end_date: end.unwrap_or_default().to_string(),
        });
    }
    (start_date, end_date)
}

/// `max_active_runs` and `max_active_tasks` are at least 1.
pub(super) fn limits(
    max_active_runs: u32,
    max_active_tasks: u32,
    errors: &mut Vec<DagDefinitionError>,
) {
    if max_active_runs == 0 {
        errors.push(DagDefinitionError::ZeroMaxActiveRuns);
    }
    if max_active_tasks == 0 {
        errors.push(DagDefinitionError::ZeroMaxActiveTasks);
    }
}

/// Every param has a valid name of its own and a default of its type.
pub(super) fn params(params: &[DagParam], errors: &mut Vec<DagDefinitionError>) {
    let mut declared: HashMap<&str, usize> = HashMap::new();
    for param in params {
        if !valid_id(param.name()) {
            errors.push(DagDefinitionError::InvalidId {
                what: "param",
                id: param.name().to_string(),
            });
        }
        let count = declared.entry(param.name()).or_insert(0);
        *count += 1;
        if *count == 2 {
            errors.push(DagDefinitionError::DuplicateParam(param.name().to_string()));
        }
        if let Some(reason) = param.invalid_default() {
            errors.push(DagDefinitionError::InvalidParamDefault {
                param: param.name().to_string(),
                reason: reason.to_string(),
            });
        }
    }
}

/// There is a task, every task id is valid, and no id set explicitly is used twice
/// (`(id, explicit)` per task, in the order they were added).
pub(super) fn task_ids<'a>(
    ids: impl ExactSizeIterator<Item = (&'a TaskId, bool)>,
    errors: &mut Vec<DagDefinitionError>,
) {
    if ids.len() == 0 {
        errors.push(DagDefinitionError::Empty);
    }
    let mut seen: HashMap<&TaskId, bool> = HashMap::new();
    for (id, explicit) in ids {
        if !valid_id(id.as_str()) {
            errors.push(DagDefinitionError::InvalidId {
                what: "task",
                id: id.to_string(),
            });
        }
        if let Some(prev_explicit) = seen.insert(id, explicit)
            && (prev_explicit || explicit)
        {
            errors.push(DagDefinitionError::DuplicateTaskId(id.to_string()));
        }
    }
}

/// A task's kind fits it: a mapped task has a mapped argument, a branch or short-circuit
/// task is not mapped and returns what its kind needs.
pub(super) fn kind(
    task: &TaskId,
    spec: &TaskSpec,
    map_mode_set: bool,
    mapped: bool,
    errors: &mut Vec<DagDefinitionError>,
) {
    let found = spec.output().type_name();
    let required = match spec.kind() {
        TaskKind::Normal => None,
        TaskKind::Branch => Some(("branch", std::any::type_name::<crate::branch::Branch>())),
        TaskKind::ShortCircuit { .. } => Some(("short-circuit", std::any::type_name::<bool>())),
    };
    if map_mode_set && !mapped {
        errors.push(DagDefinitionError::MappedWithoutList {
            task: task.to_string(),
        });
    }
    if let Some((kind, _)) = required
        && mapped
    {
        errors.push(DagDefinitionError::MappedKind {
            task: task.to_string(),
            kind,
        });
    }
    if let Some((kind, expected)) = required
        && found != expected
    {
        errors.push(DagDefinitionError::KindOutput {
            task: task.to_string(),
            kind,
            expected,
            found,
        });
    }
}

/// A task's resolved options: pool slots at least 1, email recipients valid.
pub(super) fn task_options(
    task: &TaskId,
    options: &TaskOptions,
    errors: &mut Vec<DagDefinitionError>,
) {
    if options.pool_slots == Some(0) {
        errors.push(DagDefinitionError::ZeroPoolSlots(task.to_string()));
    }
    check_email(task, options.email.as_deref().unwrap_or(&[]), errors);
}

/// The graph has no cycle (every one is listed, by task ids).
pub(super) fn cycles(tasks: &[Task], errors: &mut Vec<DagDefinitionError>) {
    let cycles = algo::cycles(&tasks.iter().map(Task::downstream).collect::<Vec<_>>());
    if !cycles.is_empty() {
        errors.push(DagDefinitionError::Cycle(
            cycles
                .into_iter()
                .map(|cycle| {
                    cycle
                        .into_iter()
                        .map(|i| tasks[i.get()].id().clone())
                        .collect()
                })
                .collect(),
        ));
    }
}

/// Checks a task's email recipients, or that this build can send email at all.
fn check_email(task: &TaskId, email: &[String], errors: &mut Vec<DagDefinitionError>) {
    if email.is_empty() {
        return;
    }
    #[cfg(feature = "email")]
    for address in email {
        if let Err(crate::notify::NotifyError::InvalidAddress { reason, .. }) =
            crate::notify::check_address(address)
        {
            errors.push(DagDefinitionError::InvalidEmail {
                task: task.to_string(),
                address: address.clone(),
                reason,
            });
        }
    }
    #[cfg(not(feature = "email"))]
    errors.push(DagDefinitionError::EmailFeatureOff(task.to_string()));
}

/// Task group ids: each fits its use (a prefix of task ids holds no `.`), and none is used
/// twice or by a task.
pub(super) fn group_ids<'a>(
    groups: impl Iterator<Item = (&'a str, &'a str, bool)>,
    tasks: &std::collections::HashSet<&str>,
    duplicates: &[String],
    errors: &mut Vec<DagDefinitionError>,
) {
    for (label, id, prefix) in groups {
        let fits = if prefix {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        } else {
            valid_id(label)
        };
        if !fits {
            errors.push(DagDefinitionError::InvalidGroupId {
                id: label.to_string(),
            });
        }
        if tasks.contains(id) {
            errors.push(DagDefinitionError::DuplicateGroupId(id.to_string()));
        }
    }
    for id in duplicates {
        errors.push(DagDefinitionError::DuplicateGroupId(id.clone()));
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 250
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

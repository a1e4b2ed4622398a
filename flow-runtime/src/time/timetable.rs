//! Which scheduled runs of a DAG are due: Airflow's data-interval timetables.
//!
//! A scheduled run covers a *data interval* `[start, end)`. The run is created once the
//! interval is over, at `end`, and its *logical date* is `start`: the `@daily` run for
//! 2025-01-01 covers `[2025-01-01 00:00, 2025-01-02 00:00)` and is created at midnight
//! on January 2nd. This module works out those intervals from a DAG's [`Schedule`], its
//! time zone and its [`Restriction`] (start date, end date, catchup), exactly as
//! Airflow's `CronDataIntervalTimetable`, `OnceTimetable` and `NullTimetable` do.
//!
//! Everything here is pure: no I/O and no clock reads. The caller passes `now`, so a
//! scheduler built on it can be tested with an injected clock.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use flow_runtime::time::schedule::Schedule;
//! use flow_runtime::time::timetable::{Restriction, Timetable};
//!
//! let tz = Timetable::parse_timezone("Europe/Amsterdam").unwrap();
//! let timetable = Timetable::new(&Schedule::parse("0 2 * * *").unwrap(), tz);
//! let restriction = Restriction {
//!     start_date: Some(Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap()),
//!     end_date: None,
//!     catchup: true,
//! };
//! let now = Utc.with_ymd_and_hms(2025, 1, 3, 12, 0, 0).unwrap();
//! let due = timetable.due_intervals(None, &restriction, now);
//! // 02:00 in Amsterdam is 01:00 UTC in winter; the run for Jan 2 is due at 01:00 UTC on Jan 3.
//! assert_eq!(due.len(), 2);
//! assert_eq!(due[0].logical_date(), Utc.with_ymd_and_hms(2025, 1, 1, 1, 0, 0).unwrap());
//! assert_eq!(due[1].end, Utc.with_ymd_and_hms(2025, 1, 3, 1, 0, 0).unwrap());
//! // The scheduler sleeps until the next interval is over.
//! assert_eq!(
//!     timetable.next_due_time(due.last(), &restriction),
//!     Some(Utc.with_ymd_and_hms(2025, 1, 4, 1, 0, 0).unwrap())
//! );
//! ```
//!
//! # Semantics
//!
//! * **Cron** (`0 2 * * *`, `@daily`, ...): the intervals run from one match of the
//!   expression to the next. The first interval starts at the first match at or after
//!   `start_date`; after a run, the next one starts where the last one ended.
//! * **Catchup** (`catchup = true`): every interval since `start_date` gets its run, in
//!   order. Without a `start_date` and without an earlier run there is nowhere to catch up
//!   from, so nothing is scheduled (as in Airflow).
//! * **No catchup** (`catchup = false`): missed intervals are skipped. The next run is for
//!   the latest interval that is already over at `now`, but never one that starts before
//!   `start_date` or before the end of the last run. So at most one run is due at a time,
//!   also after the scheduler was down for a week.
//! * **`end_date`**: an interval is scheduled only if it *starts* at or before `end_date`
//!   (Airflow compares the logical date with `end_date`).
//! * **`@once`**: one run, at `start_date`, with the empty interval
//!   `[start_date, start_date]`, whether or not catchup is on; nothing after it, and
//!   nothing without a `start_date`.
//! * **Manual** (no schedule): never due; runs are only triggered by hand, and their
//!   interval comes from [`Timetable::manual_interval`].
//!
//! # Time zones and daylight saving time
//!
//! The cron expression is read on the wall clock of the DAG's time zone (UTC by default),
//! so `0 2 * * *` in `Europe/Amsterdam` runs at 02:00 local time all year: 01:00 UTC in
//! winter (+01:00) and 00:00 UTC in summer (+02:00). Around a change of the clocks:
//!
//! * A schedule that leaves out some hour of the day (`0 2 * * *`, `@daily`,
//!   `0 2,14 * * *`, `*/30 2 * * 1-5`) follows the wall clock: every matching local time
//!   gives exactly one run. When it does not exist (spring forward: in Amsterdam on
//!   2025-03-30 the clock jumps from 02:00 to 03:00), the run happens at the first instant
//!   after the gap, 03:00 local (01:00 UTC); several missing times (02:00 and 02:30)
//!   become that one run. When it happens twice (fall back: on 2025-10-26, 02:00-03:00
//!   is repeated), the run happens at the first of the two, 02:00 +02:00 (00:00 UTC).
//!   So a daily run is neither skipped nor doubled, and the intervals around a change are
//!   23 or 25 hours long. For one fixed time a day this is croner's rule and what Airflow
//!   does (pendulum moves a missing local time forward, and takes the first of a repeated
//!   one); for several times a day Airflow drifts by the hour gained or lost, which this
//!   module does not copy.
//! * A schedule that runs in every hour of the day (`@hourly`, `*/15 * * * *`) follows
//!   elapsed time: a local time that does not exist is skipped and one that happens
//!   twice runs twice, so `@hourly` runs once every real hour, 23 times on the
//!   spring-forward day and 25 times on the fall-back day.

use std::str::FromStr;

use chrono::{
    DateTime, Datelike, LocalResult, NaiveDateTime, Offset, SubsecRound, TimeDelta, TimeZone, Utc,
};
use chrono_tz::Tz;
use croner::Cron;
use serde::{Deserialize, Serialize};

use crate::time::schedule::Schedule;

/// The span of time a scheduled run covers: `[start, end)`.
///
/// The run is due at `end`; its logical date (Airflow's `logical_date`, the `ds` of its
/// tasks) is `start`. For `@once` and manual runs, `start == end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DataInterval {
    /// The first instant the run covers; also its logical date.
    pub start: DateTime<Utc>,
    /// The end of the interval (exclusive); the run is created once this has passed.
    pub end: DateTime<Utc>,
}

impl DataInterval {
    /// An interval from `start` to `end`.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        DataInterval { start, end }
    }

    /// The empty interval `[at, at]` of a `@once` or manual run.
    pub fn exact(at: DateTime<Utc>) -> Self {
        DataInterval { start: at, end: at }
    }

    /// The run's logical date: the start of its interval.
    pub fn logical_date(&self) -> DateTime<Utc> {
        self.start
    }

    /// Whether the interval is over at `now`, so its run may be created.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        self.end <= now
    }
}

/// The bounds a DAG puts on its scheduled runs: Airflow's `TimeRestriction`.
///
/// `Restriction::default()` has no bounds and no catchup (Airflow 3's default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Restriction {
    /// No interval starts before this (the DAG's `start_date`).
    pub start_date: Option<DateTime<Utc>>,
    /// No interval starts after this (the DAG's `end_date`).
    pub end_date: Option<DateTime<Utc>>,
    /// Whether every missed interval gets its run (`true`) or only the latest (`false`).
    pub catchup: bool,
}

/// What can go wrong setting up a timetable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimetableError {
    /// A time zone name that is not in the IANA database.
    #[error(
        "unknown time zone `{name}`{}; time zones are IANA names such as `UTC`, `Europe/Amsterdam` or `America/New_York`",
        did_you_mean(.suggestions)
    )]
    UnknownTimezone {
        /// The name as given.
        name: String,
        /// Valid names close to it, closest first.
        suggestions: Vec<String>,
    },
}

/// Renders `; did you mean `A`, `B` or `C`?` for an error message.
fn did_you_mean(suggestions: &[String]) -> String {
    let quoted: Vec<String> = suggestions.iter().map(|s| format!("`{s}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => format!("; did you mean {last}?"),
        Some((last, rest)) => format!("; did you mean {} or {last}?", rest.join(", ")),
    }
}

/// The longest gap, in minutes, a change of the clocks may leave in local time (Samoa
/// skipped a whole day in 2011).
const MAX_GAP_MINUTES: u32 = 2 * 24 * 60;

/// How many close names an unknown time zone error lists.
const TIMEZONE_SUGGESTIONS: usize = 3;

/// A DAG's schedule in its time zone: computes its data intervals and when they are due.
///
/// Built from a [`Schedule`] with [`Timetable::new`]; see the [module docs](self) for the
/// exact semantics.
#[derive(Clone, Debug)]
pub struct Timetable {
    kind: Kind,
    tz: Tz,
}

/// The timetable's rule, after Airflow's timetable classes.
#[derive(Clone, Debug)]
enum Kind {
    /// `NullTimetable`: no scheduled runs.
    Manual,
    /// `OnceTimetable`: one run at the start date.
    Once,
    /// `CronDataIntervalTimetable`: intervals between matches of the expression.
    Cron(Box<CronRule>),
}

/// A cron expression and how it meets changes of the clocks.
#[derive(Clone, Debug)]
struct CronRule {
    cron: Cron,
    /// Whether the schedule skips some hour of the day, and so follows the wall clock
    /// (one run per matching local time) rather than elapsed time (see the module docs).
    wall_clock: bool,
}

impl CronRule {
    fn new(cron: &Cron) -> Self {
        let every_hour = (0..24).all(|hour| cron.pattern.hour_match(hour).unwrap_or(false));
        CronRule {
            cron: cron.clone(),
            wall_clock: !every_hour,
        }
    }
}

impl From<&Schedule> for Timetable {
    /// The schedule's timetable in UTC.
    fn from(schedule: &Schedule) -> Self {
        Timetable::new(schedule, Tz::UTC)
    }
}

impl Timetable {
    /// The timetable of `schedule`, with cron expressions read on the wall clock of `tz`.
    pub fn new(schedule: &Schedule, tz: Tz) -> Self {
        let kind = match schedule {
            // Asset updates, not the clock, start an asset-scheduled DAG's runs.
            Schedule::Manual | Schedule::Assets(_) => Kind::Manual,
            Schedule::Once => Kind::Once,
            Schedule::Cron(cron) => Kind::Cron(Box::new(CronRule::new(cron.cron()))),
        };
        Timetable { kind, tz }
    }

    /// Reads an IANA time zone name (`UTC`, `Europe/Amsterdam`), exactly as spelt in the
    /// IANA database.
    ///
    /// An unknown name is an error that lists the closest valid names.
    pub fn parse_timezone(name: &str) -> Result<Tz, TimetableError> {
        let trimmed = name.trim();
        Tz::from_str(trimmed).map_err(|_| TimetableError::UnknownTimezone {
            name: name.to_string(),
            suggestions: closest_timezones(trimmed),
        })
    }

    /// The time zone the schedule is read in.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The next interval whose run is due at `now`, after the last scheduled run `last`
    /// (or the first one, when there was none): Airflow's `next_dagrun_info`, keeping only
    /// an interval that is over (`end <= now`).
    ///
    /// `None` when nothing is due yet, past `end_date`, for a manual schedule, and for
    /// `@once` after its run.
    pub fn next_interval(
        &self,
        last: Option<&DataInterval>,
        restriction: &Restriction,
        now: DateTime<Utc>,
    ) -> Option<DataInterval> {
        self.candidate(last, restriction, Some(now))
            .filter(|interval| interval.is_due(now))
    }

    /// The interval of the run scheduled after the one of `current`, due or not: Airflow's
    /// `next_dagrun_info` starting at `current`'s end. `None` for a manual schedule, after
    /// `@once`'s run, and past `end_date`.
    pub fn following_interval(
        &self,
        current: &DataInterval,
        restriction: &Restriction,
    ) -> Option<DataInterval> {
        let every_interval = Restriction {
            catchup: true,
            ..*restriction
        };
        self.candidate(Some(current), &every_interval, None)
    }

    /// Every interval due at `now` after `last`, oldest first: what a scheduler creates
    /// runs for. Without catchup this is at most one interval.
    pub fn due_intervals(
        &self,
        last: Option<&DataInterval>,
        restriction: &Restriction,
        now: DateTime<Utc>,
    ) -> Vec<DataInterval> {
        let mut due = Vec::new();
        let mut last = last.copied();
        while let Some(next) = self.next_interval(last.as_ref(), restriction, now) {
            due.push(next);
            last = Some(next);
        }
        due
    }

    /// Every interval whose start lies in `[from, to]`, oldest first, regardless of
    /// `now`, start date and catchup: the runs of a backfill.
    ///
    /// A cron schedule gives its intervals from the first match at or after `from`;
    /// `@once` gives the one interval `[from, from]` (as Airflow's backfill does); a
    /// manual schedule gives none.
    pub fn intervals_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DataInterval> {
        let mut intervals = Vec::new();
        if from > to {
            return intervals;
        }
        match &self.kind {
            Kind::Manual => {}
            Kind::Once => intervals.push(DataInterval::exact(from)),
            Kind::Cron(rule) => {
                let mut start = self.align_next(rule, from);
                while let Some(s) = start.filter(|s| *s <= to) {
                    let Some(end) = self.next_after(rule, s) else {
                        break;
                    };
                    intervals.push(DataInterval::new(s, end));
                    start = Some(end);
                }
            }
        }
        intervals
    }

    /// When the next scheduled run after `last` becomes due: the time a scheduler should
    /// wake up at. A time in the past means "now" (runs were missed while it was down).
    ///
    /// `None` when no scheduled run will ever come: a manual schedule, `@once` after its
    /// run, past `end_date`, or nothing to start from (no `last` and no `start_date`; a
    /// scheduler asks [`due_intervals`](Self::due_intervals) when it starts in any case).
    pub fn next_due_time(
        &self,
        last: Option<&DataInterval>,
        restriction: &Restriction,
    ) -> Option<DateTime<Utc>> {
        self.candidate(last, restriction, None)
            .map(|interval| interval.end)
    }

    /// The interval of a run triggered by hand at `run_after` (Airflow's
    /// `infer_manual_data_interval`): for a cron schedule, the latest complete interval
    /// that ends at or before `run_after` (a `@daily` DAG triggered at 01:00 on the 25th
    /// covers the 24th); otherwise the empty interval `[run_after, run_after]`.
    pub fn manual_interval(&self, run_after: DateTime<Utc>) -> DataInterval {
        match &self.kind {
            Kind::Manual | Kind::Once => DataInterval::exact(run_after),
            Kind::Cron(rule) => self
                .align_prev(rule, run_after)
                .and_then(|end| Some(DataInterval::new(self.prev_before(rule, end)?, end)))
                .unwrap_or_else(|| DataInterval::exact(run_after)),
        }
    }

    /// The interval Airflow's `next_dagrun_info` would plan after `last`, due or not.
    ///
    /// `now` is only used without catchup, to skip to the latest complete interval; with
    /// `None`, nothing is skipped (the earliest possible next interval).
    fn candidate(
        &self,
        last: Option<&DataInterval>,
        restriction: &Restriction,
        now: Option<DateTime<Utc>>,
    ) -> Option<DataInterval> {
        let after_end_date =
            |start: DateTime<Utc>| restriction.end_date.is_some_and(|end| start > end);
        match &self.kind {
            Kind::Manual => None,
            Kind::Once => {
                let at = restriction.start_date.filter(|_| last.is_none())?;
                (!after_end_date(at)).then(|| DataInterval::exact(at))
            }
            Kind::Cron(rule) => {
                let mut earliest = match restriction.start_date {
                    // A schedule that never matches after the start date has no runs.
                    Some(start_date) => Some(self.align_next(rule, start_date)?),
                    None => None,
                };
                if !restriction.catchup
                    && let Some(now) = now
                {
                    earliest = earliest.max(self.latest_complete_start(rule, now));
                }
                let start = match last {
                    None => earliest?,
                    Some(last) => {
                        // Aligned, for a last run made under an earlier schedule.
                        let after_last = self.align_prev(rule, last.end)?;
                        earliest.map_or(after_last, |e| e.max(after_last))
                    }
                };
                if after_end_date(start) {
                    return None;
                }
                Some(DataInterval::new(start, self.next_after(rule, start)?))
            }
        }
    }

    /// The start of the latest interval that is over at `now`.
    fn latest_complete_start(&self, rule: &CronRule, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let end = self.align_prev(rule, now)?;
        self.prev_before(rule, end)
    }

    /// The first run time strictly after `t`.
    fn next_after(&self, rule: &CronRule, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Matches fall on whole seconds, and croner ignores fractions of a second, so the
        // first match after `t` is the first one after its whole second.
        let whole = within_cron_years(t)?.trunc_subsecs(0);
        if !rule.wall_clock {
            let local = whole.with_timezone(&self.tz);
            let next = rule.cron.find_next_occurrence(&local, false).ok()?;
            return Some(next.with_timezone(&Utc));
        }
        // Walk the matching wall clock times after `t`'s. None before it can run after
        // `t` (`run_time` keeps their order), and one after it may run at or before `t`
        // only if `t` lies in a repeated hour, so this stops within an hour or so of them.
        let mut wall = whole.with_timezone(&self.tz).naive_local();
        loop {
            wall = rule.cron.find_next_occurrence(&wall, false).ok()?;
            let at = self.run_time(wall)?;
            if at > t {
                return Some(at);
            }
        }
    }

    /// The last run time strictly before `t`.
    fn prev_before(&self, rule: &CronRule, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let whole = within_cron_years(t)?.trunc_subsecs(0);
        if !rule.wall_clock {
            // With a fraction, `t`'s whole second itself lies before `t`.
            let local = whole.with_timezone(&self.tz);
            let prev = rule.cron.find_previous_occurrence(&local, whole < t).ok()?;
            return Some(prev.with_timezone(&Utc));
        }
        // In a repeated hour, wall clock times up to the size of the repeat after `t`'s
        // already ran (their first occurrence), so the walk back starts that far ahead.
        let local = whole.with_timezone(&self.tz);
        let mut wall = local
            .naive_local()
            .checked_add_signed(self.clock_set_back(whole))?;
        let mut inclusive = true;
        loop {
            wall = rule.cron.find_previous_occurrence(&wall, inclusive).ok()?;
            inclusive = false;
            let at = self.run_time(wall)?;
            if at < t {
                return Some(at);
            }
        }
    }

    /// When a wall clock-schedule runs for the local time `wall`: at that time; at its
    /// first occurrence when the clocks were set back and it happens twice; at the first
    /// instant after the gap when the clocks were set forward and it does not exist.
    ///
    /// Later wall clock times never run earlier, which the searches above rely on.
    fn run_time(&self, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
        match self.tz.from_local_datetime(&wall) {
            LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => Some(at.with_timezone(&Utc)),
            LocalResult::None => {
                // Find the end of the gap: minute by minute (gaps are whole minutes, an
                // hour at most in practice), then the first valid second before it.
                let minute = TimeDelta::minutes(1);
                let mut after = wall;
                for _ in 0..MAX_GAP_MINUTES {
                    after = after.checked_add_signed(minute)?;
                    if self.tz.from_local_datetime(&after).earliest().is_some() {
                        let first = (0..60)
                            .map(|s| after - TimeDelta::seconds(59 - s))
                            .find_map(|w| self.tz.from_local_datetime(&w).earliest())?;
                        return Some(first.with_timezone(&Utc));
                    }
                }
                None
            }
        }
    }

    /// How far the clocks were set back in a change shortly before `t`: zero outside the
    /// repeated hour of an autumn change (and a harmless over-estimate just after it).
    fn clock_set_back(&self, t: DateTime<Utc>) -> TimeDelta {
        let offset = |at: DateTime<Utc>| {
            i64::from(
                self.tz
                    .offset_from_utc_datetime(&at.naive_utc())
                    .fix()
                    .local_minus_utc(),
            )
        };
        let now = offset(t);
        let set_back = [1, 3, 6, 12, 24]
            .into_iter()
            .filter_map(|hours| t.checked_sub_signed(TimeDelta::hours(hours)))
            .map(|before| offset(before) - now)
            .max()
            .unwrap_or(0);
        TimeDelta::seconds(set_back.max(0))
    }

    /// `t` if it is a match, else the first match after it (Airflow's `_align_to_next`).
    ///
    /// Decided by searching back from the next match rather than by matching `t`'s wall
    /// clock, so a run moved out of a DST gap (03:00 for a 02:00 schedule) counts as a
    /// match, consistently in both directions.
    fn align_next(&self, rule: &CronRule, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let next = self.next_after(rule, t)?;
        Some(if self.prev_before(rule, next) == Some(t) {
            t
        } else {
            next
        })
    }

    /// `t` if it is a match, else the last match before it (Airflow's `_align_to_prev`).
    fn align_prev(&self, rule: &CronRule, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let prev = self.prev_before(rule, t)?;
        Some(if self.next_after(rule, prev) == Some(t) {
            t
        } else {
            prev
        })
    }
}

/// `t`, if it lies in the years croner searches (1 to 5000): outside them a schedule has
/// no matches (and local times may not even be representable).
fn within_cron_years(t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    (croner::YEAR_LOWER_LIMIT..croner::YEAR_UPPER_LIMIT)
        .contains(&t.year())
        .then_some(t)
}

/// The valid time zone names closest to `name`, closest first.
///
/// Compares without case, with the whole name and with its last part, so `amsterdam`
/// and `europe/amsterdm` both suggest `Europe/Amsterdam`.
fn closest_timezones(name: &str) -> Vec<String> {
    let wanted = name.to_ascii_lowercase();
    let mut scored: Vec<(f64, &'static str)> = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|tz| {
            let candidate = tz.name();
            let lower = candidate.to_ascii_lowercase();
            let city = lower.rsplit('/').next().unwrap_or(&lower);
            let score =
                strsim::jaro_winkler(&wanted, &lower).max(strsim::jaro_winkler(&wanted, city));
            (score, candidate)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored
        .into_iter()
        .take(TIMEZONE_SUGGESTIONS)
        .map(|(_, candidate)| candidate.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, Duration, FixedOffset, NaiveDate, TimeZone, Timelike, Weekday};

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn timetable(schedule: &str) -> Timetable {
        Timetable::new(&Schedule::parse(schedule).unwrap(), Tz::UTC)
    }

    fn in_zone(schedule: &str, zone: &str) -> Timetable {
        let tz = Timetable::parse_timezone(zone).unwrap();
        Timetable::new(&Schedule::parse(schedule).unwrap(), tz)
    }

    fn from(start_date: DateTime<Utc>, catchup: bool) -> Restriction {
        Restriction {
            start_date: Some(start_date),
            end_date: None,
            catchup,
        }
    }

    /// Drives the timetable like a scheduler with a moving clock: at each tick, creates
    /// runs for whatever is due, remembering the last one.
    fn simulate(
        timetable: &Timetable,
        restriction: &Restriction,
        ticks: impl IntoIterator<Item = DateTime<Utc>>,
    ) -> Vec<DataInterval> {
        let mut runs: Vec<DataInterval> = Vec::new();
        for now in ticks {
            let due = timetable.due_intervals(runs.last(), restriction, now);
            assert!(
                due.iter().all(|i| i.end <= now),
                "a run created before its time"
            );
            runs.extend(due);
        }
        runs
    }

    #[test]
    fn daily_with_catchup_runs_every_day_since_the_start_date() {
        let daily = timetable("@daily");
        let restriction = from(utc(2025, 1, 1, 0, 0), true);
        let now = utc(2025, 1, 31, 0, 0);

        let runs = daily.due_intervals(None, &restriction, now);
        assert_eq!(runs.len(), 30);
        for (day, run) in runs.iter().enumerate() {
            let start = utc(2025, 1, 1, 0, 0) + Duration::days(day as i64);
            assert_eq!(*run, DataInterval::new(start, start + Duration::days(1)));
            assert_eq!(run.logical_date(), start);
        }
        // The interval ending exactly now is due; the one after it is not.
        assert_eq!(runs.last().unwrap().end, now);
        assert_eq!(daily.next_interval(runs.last(), &restriction, now), None);

        // A scheduler woken every hour for those 30 days creates the same 30 runs, once.
        let hourly_ticks = (0..=30 * 24).map(|h| utc(2025, 1, 1, 0, 0) + Duration::hours(h));
        assert_eq!(simulate(&daily, &restriction, hourly_ticks), runs);
    }

    #[test]
    fn daily_without_catchup_runs_only_the_latest_interval() {
        let daily = timetable("@daily");
        let restriction = from(utc(2025, 1, 1, 0, 0), false);
        let now = utc(2025, 1, 31, 10, 30);

        let latest = DataInterval::new(utc(2025, 1, 30, 0, 0), utc(2025, 1, 31, 0, 0));
        assert_eq!(daily.due_intervals(None, &restriction, now), vec![latest]);
        // Also after a scheduler that was down since January 3rd: missed days are skipped.
        let old = DataInterval::new(utc(2025, 1, 2, 0, 0), utc(2025, 1, 3, 0, 0));
        assert_eq!(
            daily.due_intervals(Some(&old), &restriction, now),
            vec![latest]
        );
        // Right on a boundary, the interval that just ended is the latest.
        assert_eq!(
            daily.next_interval(None, &restriction, utc(2025, 1, 31, 0, 0)),
            Some(latest)
        );
        // Once it ran, nothing until the next midnight.
        assert_eq!(daily.next_interval(Some(&latest), &restriction, now), None);
        assert_eq!(
            daily.next_due_time(Some(&latest), &restriction),
            Some(utc(2025, 2, 1, 0, 0))
        );
        // Never before the start date: a DAG starting tomorrow has nothing due today.
        let later = from(utc(2025, 2, 1, 0, 0), false);
        assert_eq!(daily.next_interval(None, &later, now), None);
        assert_eq!(
            daily.next_due_time(None, &later),
            Some(utc(2025, 2, 2, 0, 0))
        );

        // A scheduler ticking every hour for 30 days creates one run per day, each on time.
        let ticks = (0..=30 * 24).map(|h| utc(2025, 1, 1, 0, 0) + Duration::hours(h));
        let runs = simulate(&daily, &restriction, ticks);
        assert_eq!(runs.len(), 30);
        assert_eq!(runs[0].logical_date(), utc(2025, 1, 1, 0, 0));
    }

    /// The local wall clock of an interval's end, as `(date, hour, UTC offset in hours)`.
    fn local_end(run: &DataInterval, tz: Tz) -> (NaiveDate, u32, i32) {
        let local = run.end.with_timezone(&tz);
        let offset = local.fixed_offset().offset().local_minus_utc() / 3600;
        (local.date_naive(), local.hour(), offset)
    }

    #[test]
    fn amsterdam_02_00_runs_once_a_day_across_spring_forward() {
        let nightly = in_zone("0 2 * * *", "Europe/Amsterdam");
        let tz = nightly.timezone();
        // Start at midnight local time on March 27th.
        let start = tz
            .with_ymd_and_hms(2025, 3, 27, 0, 0, 0)
            .unwrap()
            .with_timezone(&Utc);
        let runs = nightly.due_intervals(None, &from(start, true), utc(2025, 4, 2, 12, 0));

        let ends: Vec<_> = runs.iter().map(|r| local_end(r, tz)).collect();
        let day = |d| NaiveDate::from_ymd_opt(2025, 3, d).unwrap();
        let april1 = NaiveDate::from_ymd_opt(2025, 4, 1).unwrap();
        let april2 = NaiveDate::from_ymd_opt(2025, 4, 2).unwrap();
        assert_eq!(
            ends,
            vec![
                (day(28), 2, 1),
                (day(29), 2, 1),
                // 02:00 does not exist on March 30th: the run is at 03:00 +02:00, once.
                (day(30), 3, 2),
                (day(31), 2, 2),
                (april1, 2, 2),
                (april2, 2, 2),
            ]
        );
        // The first run covers March 27th from 02:00 local (01:00 UTC).
        assert_eq!(runs[0].logical_date(), utc(2025, 3, 27, 1, 0));
        // Before the change 02:00 local is 01:00 UTC, after it 00:00 UTC.
        assert_eq!(runs[1].end, utc(2025, 3, 29, 1, 0));
        assert_eq!(runs[2].end, utc(2025, 3, 30, 1, 0));
        assert_eq!(runs[3].end, utc(2025, 3, 31, 0, 0));
        assert_eq!(runs[3].end - runs[3].start, Duration::hours(23));
        // Intervals chain without gaps or overlaps.
        assert!(runs.windows(2).all(|w| w[0].end == w[1].start));
    }

    #[test]
    fn amsterdam_02_00_runs_once_a_day_across_fall_back() {
        let nightly = in_zone("0 2 * * *", "Europe/Amsterdam");
        let tz = nightly.timezone();
        let start = tz
            .with_ymd_and_hms(2025, 10, 23, 0, 0, 0)
            .unwrap()
            .with_timezone(&Utc);
        let runs = nightly.due_intervals(None, &from(start, true), utc(2025, 10, 29, 12, 0));

        let ends: Vec<_> = runs.iter().map(|r| local_end(r, tz)).collect();
        let day = |d| NaiveDate::from_ymd_opt(2025, 10, d).unwrap();
        assert_eq!(
            ends,
            vec![
                (day(24), 2, 2),
                (day(25), 2, 2),
                // 02:00 happens twice on October 26th: one run, at the first (+02:00).
                (day(26), 2, 2),
                (day(27), 2, 1),
                (day(28), 2, 1),
                (day(29), 2, 1),
            ]
        );
        assert_eq!(runs[2].end, utc(2025, 10, 26, 0, 0));
        assert_eq!(runs[3].end, utc(2025, 10, 27, 1, 0));
        assert_eq!(runs[3].end - runs[3].start, Duration::hours(25));
        assert!(runs.windows(2).all(|w| w[0].end == w[1].start));

        // A scheduler woken every 10 minutes through the night of the change creates
        // exactly one run for October 26th, at its first 02:00.
        let night = (0..=6 * 6).map(|m| utc(2025, 10, 25, 22, 0) + Duration::minutes(10 * m));
        let last = runs[1];
        let mut created = vec![last];
        for now in night {
            let due = nightly.due_intervals(created.last(), &from(start, true), now);
            created.extend(due);
        }
        assert_eq!(&created[1..], &[runs[2]]);
    }

    /// The local wall clock times of the ends of `runs`, as `MM-DD HH:MM+OO`.
    fn local_ends(runs: &[DataInterval], tz: Tz) -> Vec<String> {
        runs.iter()
            .map(|r| {
                r.end
                    .with_timezone(&tz)
                    .format("%m-%d %H:%M%:::z")
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn twice_a_day_in_amsterdam_runs_each_time_once_across_dst() {
        let twice = in_zone("0 2,14 * * *", "Europe/Amsterdam");
        let tz = twice.timezone();
        let start = tz
            .with_ymd_and_hms(2025, 3, 29, 0, 0, 0)
            .unwrap()
            .with_timezone(&Utc);
        let restriction = from(start, true);
        let runs = twice.due_intervals(None, &restriction, utc(2025, 3, 31, 11, 0));
        assert_eq!(
            local_ends(&runs, tz),
            [
                "03-29 14:00+01",
                "03-30 03:00+02", // 02:00 does not exist: the first instant after the gap
                "03-30 14:00+02",
                "03-31 02:00+02",
            ]
        );
        assert_eq!(runs[0].logical_date(), utc(2025, 3, 29, 1, 0));

        let start = tz
            .with_ymd_and_hms(2025, 10, 25, 0, 0, 0)
            .unwrap()
            .with_timezone(&Utc);
        let runs = twice.due_intervals(None, &from(start, true), utc(2025, 10, 27, 12, 0));
        assert_eq!(
            local_ends(&runs, tz),
            [
                "10-25 14:00+02",
                "10-26 02:00+02", // 02:00 happens twice: one run, at the first
                "10-26 14:00+01",
                "10-27 02:00+01",
            ]
        );
        assert!(runs.windows(2).all(|w| w[0].end == w[1].start));
    }

    #[test]
    fn missing_local_times_collapse_into_one_run_after_the_gap() {
        let half_hourly_at_two = in_zone("*/30 2 * * *", "Europe/Amsterdam");
        let tz = half_hourly_at_two.timezone();
        let spring =
            half_hourly_at_two.intervals_between(utc(2025, 3, 29, 0, 0), utc(2025, 3, 31, 0, 0));
        assert_eq!(
            local_ends(&spring, tz),
            [
                "03-29 02:30+01",
                "03-30 03:00+02",
                "03-31 02:00+02",
                "03-31 02:30+02"
            ]
        );
        let fall =
            half_hourly_at_two.intervals_between(utc(2025, 10, 25, 0, 0), utc(2025, 10, 27, 0, 0));
        assert_eq!(
            local_ends(&fall, tz),
            [
                "10-25 02:30+02",
                "10-26 02:00+02",
                "10-26 02:30+02",
                "10-27 02:00+01",
            ]
        );
    }

    #[test]
    fn a_scheduler_woken_inside_the_repeated_hour_neither_repeats_nor_misses_a_run() {
        let nightly = in_zone("30 2 * * *", "Europe/Amsterdam");
        let restriction = Restriction::default();
        // 02:30 +02:00 on October 26th is 00:30 UTC; an hour later the clock shows 02:30 again.
        let first = utc(2025, 10, 26, 0, 30);
        let repeated = utc(2025, 10, 26, 1, 40);
        let day_before = DataInterval::new(utc(2025, 10, 24, 0, 30), utc(2025, 10, 25, 0, 30));
        // Woken in the repeated hour, the run for the 25th is due (it ran at the first 02:30)...
        let due = nightly.due_intervals(Some(&day_before), &restriction, repeated);
        assert_eq!(
            due,
            vec![DataInterval::new(utc(2025, 10, 25, 0, 30), first)]
        );
        // ... and nothing more, whoever asks.
        assert!(
            nightly
                .due_intervals(due.last(), &restriction, repeated)
                .is_empty()
        );
        assert_eq!(
            nightly.next_due_time(due.last(), &restriction),
            Some(utc(2025, 10, 27, 1, 30))
        );
        // A manual trigger in the repeated hour covers the day that ended at the first 02:30.
        assert_eq!(nightly.manual_interval(repeated), due[0]);
        // Without catchup, the latest complete interval seen from the repeated hour is the same.
        assert_eq!(
            nightly.next_interval(None, &restriction, repeated),
            Some(due[0])
        );
    }

    #[test]
    fn fixed_times_agree_with_croner_around_dst() {
        // For one fixed time a day croner has the same rule; compare from every 10 minutes.
        let tz = Timetable::parse_timezone("Europe/Amsterdam").unwrap();
        for expression in ["0 2 * * *", "30 2 * * *", "15 3 * * *", "0 1 * * *"] {
            let schedule = Schedule::parse(expression).unwrap();
            let Schedule::Cron(cron) = &schedule else {
                unreachable!()
            };
            let ours = Timetable::new(&schedule, tz);
            let Kind::Cron(rule) = &ours.kind else {
                unreachable!()
            };
            assert!(rule.wall_clock);
            for (month, day) in [(3, 29), (10, 25)] {
                let start = utc(2025, month, day, 0, 0);
                for step in 0..(3 * 24 * 6) {
                    let t = start + Duration::minutes(10 * step);
                    let local = t.with_timezone(&tz);
                    let theirs =
                        |found: Result<DateTime<Tz>, _>| found.ok().map(|d| d.with_timezone(&Utc));
                    assert_eq!(
                        ours.next_after(rule, t),
                        theirs(cron.cron().find_next_occurrence(&local, false)),
                        "{expression}: next after {t}"
                    );
                    assert_eq!(
                        ours.prev_before(rule, t),
                        theirs(cron.cron().find_previous_occurrence(&local, false)),
                        "{expression}: previous before {t}"
                    );
                }
            }
        }
    }

    #[test]
    fn hourly_in_amsterdam_follows_real_hours_across_dst() {
        let hourly = in_zone("@hourly", "Europe/Amsterdam");
        let tz = hourly.timezone();
        let local_day = |m, d| {
            let start = tz
                .with_ymd_and_hms(2025, m, d, 0, 0, 0)
                .unwrap()
                .with_timezone(&Utc);
            let end = tz
                .with_ymd_and_hms(2025, m, d + 1, 0, 0, 0)
                .unwrap()
                .with_timezone(&Utc);
            hourly.intervals_between(start, end - Duration::seconds(1))
        };
        let spring = local_day(3, 30);
        assert_eq!(spring.len(), 23);
        let fall = local_day(10, 26);
        assert_eq!(fall.len(), 25);
        assert!(
            spring
                .iter()
                .chain(&fall)
                .all(|i| i.end - i.start == Duration::hours(1))
        );
    }

    #[test]
    fn feb_29_runs_only_in_leap_years() {
        let leap_day = timetable("0 0 29 2 *");
        let starts: Vec<_> = leap_day
            .intervals_between(utc(2024, 1, 1, 0, 0), utc(2028, 12, 31, 0, 0))
            .iter()
            .map(DataInterval::logical_date)
            .collect();
        assert_eq!(starts, vec![utc(2024, 2, 29, 0, 0), utc(2028, 2, 29, 0, 0)]);

        let restriction = from(utc(2024, 1, 1, 0, 0), true);
        let runs = leap_day.due_intervals(None, &restriction, utc(2032, 3, 1, 0, 0));
        assert_eq!(
            runs,
            vec![
                DataInterval::new(utc(2024, 2, 29, 0, 0), utc(2028, 2, 29, 0, 0)),
                DataInterval::new(utc(2028, 2, 29, 0, 0), utc(2032, 2, 29, 0, 0)),
            ]
        );
        assert_eq!(
            leap_day.next_due_time(runs.last(), &restriction),
            Some(utc(2036, 2, 29, 0, 0))
        );
    }

    #[test]
    fn every_15_minutes() {
        let quarterly = timetable("*/15 * * * *");
        let restriction = from(utc(2025, 1, 1, 0, 0), true);
        let runs = quarterly.due_intervals(None, &restriction, utc(2025, 1, 1, 1, 7));
        let starts: Vec<_> = runs
            .iter()
            .map(|r| (r.start.hour(), r.start.minute()))
            .collect();
        assert_eq!(starts, vec![(0, 0), (0, 15), (0, 30), (0, 45)]);
        assert!(
            runs.iter()
                .all(|r| r.end - r.start == Duration::minutes(15))
        );
        // A start date between two matches aligns to the next one.
        let odd = from(utc(2025, 1, 1, 0, 7), true);
        assert_eq!(
            quarterly.next_interval(None, &odd, utc(2025, 1, 1, 1, 0)),
            Some(DataInterval::new(
                utc(2025, 1, 1, 0, 15),
                utc(2025, 1, 1, 0, 30)
            ))
        );
    }

    #[test]
    fn once_runs_a_single_time_at_the_start_date() {
        let once = timetable("@once");
        let start = utc(2025, 6, 1, 12, 0);
        for catchup in [true, false] {
            let restriction = from(start, catchup);
            assert_eq!(
                once.next_interval(None, &restriction, utc(2025, 6, 1, 11, 59)),
                None
            );
            assert_eq!(once.next_due_time(None, &restriction), Some(start));
            let runs = once.due_intervals(None, &restriction, utc(2025, 9, 1, 0, 0));
            assert_eq!(runs, vec![DataInterval::exact(start)]);
            assert_eq!(
                once.next_interval(runs.last(), &restriction, utc(2026, 1, 1, 0, 0)),
                None
            );
            assert_eq!(once.next_due_time(runs.last(), &restriction), None);
        }
        // No start date, no run; a start date past the end date, no run.
        assert_eq!(
            once.next_interval(None, &Restriction::default(), utc(2026, 1, 1, 0, 0)),
            None
        );
        let ended = Restriction {
            end_date: Some(utc(2025, 5, 1, 0, 0)),
            ..from(start, true)
        };
        assert_eq!(
            once.next_interval(None, &ended, utc(2026, 1, 1, 0, 0)),
            None
        );
    }

    #[test]
    fn manual_schedules_are_never_due() {
        let manual = Timetable::from(&Schedule::Manual);
        let restriction = from(utc(2025, 1, 1, 0, 0), true);
        let now = utc(2026, 1, 1, 0, 0);
        assert_eq!(manual.next_interval(None, &restriction, now), None);
        assert!(manual.due_intervals(None, &restriction, now).is_empty());
        assert!(
            manual
                .intervals_between(utc(2025, 1, 1, 0, 0), now)
                .is_empty()
        );
        assert_eq!(manual.next_due_time(None, &restriction), None);
        // A run triggered by hand covers the instant it was triggered at.
        assert_eq!(manual.manual_interval(now), DataInterval::exact(now));
    }

    #[test]
    fn end_date_stops_runs() {
        let daily = timetable("@daily");
        let restriction = Restriction {
            end_date: Some(utc(2025, 1, 5, 0, 0)),
            ..from(utc(2025, 1, 1, 0, 0), true)
        };
        let runs = daily.due_intervals(None, &restriction, utc(2025, 3, 1, 0, 0));
        // Airflow compares the logical date (the start) with the end date.
        let starts: Vec<_> = runs.iter().map(|r| r.start.day()).collect();
        assert_eq!(starts, vec![1, 2, 3, 4, 5]);
        assert_eq!(daily.next_due_time(runs.last(), &restriction), None);

        // Without catchup, an end date in the past means no run at all.
        let no_catchup = Restriction {
            catchup: false,
            ..restriction
        };
        assert_eq!(
            daily.next_interval(None, &no_catchup, utc(2025, 3, 1, 0, 0)),
            None
        );
    }

    #[test]
    fn weekdays_are_monday_to_friday() {
        let weekdays = timetable("0 9 * * 1-5");
        // 2025-01-06 is a Monday; two weeks of runs, the last due on Monday the 20th.
        let restriction = from(utc(2025, 1, 6, 0, 0), true);
        let runs = weekdays.due_intervals(None, &restriction, utc(2025, 1, 20, 9, 0));
        let days: Vec<_> = runs.iter().map(|r| r.start.weekday()).collect();
        use Weekday::*;
        assert_eq!(days, vec![Mon, Tue, Wed, Thu, Fri, Mon, Tue, Wed, Thu, Fri]);
        assert!(
            runs.iter()
                .all(|r| r.start.hour() == 9 && r.end.hour() == 9)
        );
        // Friday's interval runs over the weekend to Monday.
        assert_eq!(runs[4].end, utc(2025, 1, 13, 9, 0));
    }

    #[test]
    fn hourly_and_weekly_intervals() {
        let hourly = timetable("@hourly");
        let runs = hourly.due_intervals(
            None,
            &from(utc(2025, 1, 1, 0, 0), true),
            utc(2025, 1, 1, 3, 30),
        );
        assert_eq!(runs.len(), 3);
        assert_eq!(
            runs[2],
            DataInterval::new(utc(2025, 1, 1, 2, 0), utc(2025, 1, 1, 3, 0))
        );

        // @weekly is midnight between Saturday and Sunday; 2025-01-05 is a Sunday.
        let weekly = timetable("@weekly");
        let runs = weekly.due_intervals(
            None,
            &from(utc(2025, 1, 1, 0, 0), true),
            utc(2025, 2, 1, 0, 0),
        );
        assert_eq!(runs.len(), 3);
        assert_eq!(
            runs[0],
            DataInterval::new(utc(2025, 1, 5, 0, 0), utc(2025, 1, 12, 0, 0))
        );
        assert!(runs.iter().all(|r| r.start.weekday() == Weekday::Sun));
        assert!(runs.iter().all(|r| r.end - r.start == Duration::days(7)));
    }

    #[test]
    fn next_due_time_is_when_the_next_interval_ends() {
        let daily = timetable("@daily");
        let restriction = from(utc(2025, 1, 1, 0, 0), true);
        assert_eq!(
            daily.next_due_time(None, &restriction),
            Some(utc(2025, 1, 2, 0, 0))
        );
        let first = DataInterval::new(utc(2025, 1, 1, 0, 0), utc(2025, 1, 2, 0, 0));
        assert_eq!(
            daily.next_due_time(Some(&first), &restriction),
            Some(utc(2025, 1, 3, 0, 0))
        );
        // An unaligned start date waits for the first whole interval.
        let noon = from(utc(2025, 1, 1, 12, 0), true);
        assert_eq!(
            daily.next_due_time(None, &noon),
            Some(utc(2025, 1, 3, 0, 0))
        );
        // With catchup and no start date there is nothing to start from.
        assert_eq!(
            daily.next_due_time(
                None,
                &Restriction {
                    catchup: true,
                    ..Restriction::default()
                }
            ),
            None
        );

        // In Amsterdam, the run after March 29th is due at 03:00 local on the 30th.
        let nightly = in_zone("0 2 * * *", "Europe/Amsterdam");
        let march29 = DataInterval::new(utc(2025, 3, 28, 1, 0), utc(2025, 3, 29, 1, 0));
        let wake = nightly
            .next_due_time(Some(&march29), &Restriction::default())
            .unwrap();
        assert_eq!(wake, utc(2025, 3, 30, 1, 0));
        let offset = FixedOffset::east_opt(2 * 3600).unwrap();
        assert_eq!(
            wake.with_timezone(&offset),
            offset.with_ymd_and_hms(2025, 3, 30, 3, 0, 0).unwrap()
        );
        // And the wake-up time is when that interval becomes due, not a second earlier.
        let r = Restriction::default();
        assert_eq!(
            nightly.next_interval(Some(&march29), &r, wake - Duration::seconds(1)),
            None
        );
        assert_eq!(
            nightly
                .next_interval(Some(&march29), &r, wake)
                .map(|i| i.end),
            Some(wake)
        );
    }

    #[test]
    fn intervals_between_gives_a_backfill_range() {
        let daily = timetable("@daily");
        let range = daily.intervals_between(utc(2025, 1, 10, 0, 0), utc(2025, 1, 12, 0, 0));
        let starts: Vec<_> = range.iter().map(|r| r.start.day()).collect();
        assert_eq!(starts, vec![10, 11, 12]);
        assert_eq!(range[2].end, utc(2025, 1, 13, 0, 0));
        // An unaligned start begins at the next match.
        let range = daily.intervals_between(utc(2025, 1, 10, 12, 0), utc(2025, 1, 12, 23, 0));
        assert_eq!(range.first().map(|r| r.start), Some(utc(2025, 1, 11, 0, 0)));
        assert_eq!(range.len(), 2);
        // An empty or reversed range has no intervals.
        assert!(
            daily
                .intervals_between(utc(2025, 1, 10, 1, 0), utc(2025, 1, 10, 23, 0))
                .is_empty()
        );
        assert!(
            daily
                .intervals_between(utc(2025, 1, 12, 0, 0), utc(2025, 1, 10, 0, 0))
                .is_empty()
        );
        // @once backfills one run at the start of the range.
        let at = utc(2025, 1, 10, 0, 0);
        assert_eq!(
            timetable("@once").intervals_between(at, utc(2025, 2, 1, 0, 0)),
            vec![DataInterval::exact(at)]
        );
    }

    #[test]
    fn manual_trigger_covers_the_latest_complete_interval() {
        let daily = timetable("@daily");
        assert_eq!(
            daily.manual_interval(utc(2025, 1, 25, 1, 0)),
            DataInterval::new(utc(2025, 1, 24, 0, 0), utc(2025, 1, 25, 0, 0))
        );
        assert_eq!(
            daily.manual_interval(utc(2025, 1, 25, 0, 0)),
            DataInterval::new(utc(2025, 1, 24, 0, 0), utc(2025, 1, 25, 0, 0))
        );
    }

    #[test]
    fn fractions_of_a_second_do_not_shift_intervals() {
        let daily = timetable("@daily");
        let restriction = from(utc(2025, 1, 1, 0, 0), false);
        let now = utc(2025, 1, 10, 0, 0) + Duration::milliseconds(500);
        assert_eq!(
            daily.next_interval(None, &restriction, now),
            Some(DataInterval::new(
                utc(2025, 1, 9, 0, 0),
                utc(2025, 1, 10, 0, 0)
            ))
        );
        let late_start = from(utc(2025, 1, 1, 0, 0) + Duration::milliseconds(1), true);
        assert_eq!(
            daily.next_due_time(None, &late_start),
            Some(utc(2025, 1, 3, 0, 0))
        );
    }

    #[test]
    fn extreme_dates_give_no_interval_rather_than_a_panic() {
        for timetable in [
            timetable("@daily"),
            in_zone("0 2 * * *", "Europe/Amsterdam"),
        ] {
            let restriction = from(DateTime::<Utc>::MIN_UTC, true);
            assert!(
                timetable
                    .due_intervals(None, &restriction, DateTime::<Utc>::MIN_UTC)
                    .is_empty()
            );
            assert!(
                timetable
                    .next_interval(None, &Restriction::default(), DateTime::<Utc>::MAX_UTC)
                    .is_none()
            );
            assert!(
                timetable
                    .intervals_between(DateTime::<Utc>::MAX_UTC, DateTime::<Utc>::MAX_UTC)
                    .is_empty()
            );
            let _ = timetable.manual_interval(DateTime::<Utc>::MIN_UTC);
        }
    }

    #[test]
    fn unknown_time_zone_lists_close_names() {
        assert_eq!(Timetable::parse_timezone("UTC").unwrap(), Tz::UTC);
        assert_eq!(
            Timetable::parse_timezone("Europe/Amsterdam").unwrap(),
            Tz::Europe__Amsterdam
        );
        for typo in ["Europe/Amsterdm", "europe/amsterdam", "Amsterdam"] {
            let err = Timetable::parse_timezone(typo).unwrap_err();
            let TimetableError::UnknownTimezone { name, suggestions } = &err;
            assert_eq!(name, typo);
            assert_eq!(
                suggestions.first().map(String::as_str),
                Some("Europe/Amsterdam")
            );
            assert_eq!(suggestions.len(), TIMEZONE_SUGGESTIONS);
            let message = err.to_string();
            assert!(
                message.contains(&format!("unknown time zone `{typo}`")),
                "{message}"
            );
            assert!(
                message.contains("did you mean `Europe/Amsterdam`, `"),
                "{message}"
            );
        }
    }
}

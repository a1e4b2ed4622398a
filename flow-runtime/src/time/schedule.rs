//! A DAG's schedule: a cron expression, an Airflow preset, `@once`, or none (manual only).
//!
//! Cron strings are read as Unix cron (minute first, day-of-week 0 or 7 = Sunday, names of
//! days and months), with an optional leading seconds field, as Airflow reads them.

use std::fmt;

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// When a DAG runs on its own.
#[derive(Clone, Debug)]
pub enum Schedule {
    /// Never on its own; runs are triggered by hand (Airflow's `schedule=None`).
    Manual,
    /// Exactly one run, at the start date (`@once`).
    Once,
    /// On every match of a cron expression.
    Cron(Box<CronSchedule>),
    /// Once every one of these assets was updated since the last asset-triggered run
    /// (Airflow's `schedule=[Asset(..), ..]`).
    Assets(Vec<crate::assets::Asset>),
}

/// A parsed cron schedule, keeping the expression as written.
#[derive(Clone, Debug)]
pub struct CronSchedule {
    expression: String,
    cron: Cron,
}

impl CronSchedule {
    /// The expression as the user wrote it (`@daily`, `0 2 * * *`).
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The parsed pattern.
    pub fn cron(&self) -> &Cron {
        &self.cron
    }
}

/// Airflow's presets that croner does not know, with their cron meaning.
const EXTRA_PRESETS: &[(&str, &str)] = &[("@quarterly", "0 0 1 */3 *"), ("@midnight", "0 0 * * *")];

/// The presets a schedule may name, for error messages.
pub const PRESETS: &[&str] = &[
    "@once",
    "@hourly",
    "@daily",
    "@midnight",
    "@weekly",
    "@monthly",
    "@quarterly",
    "@yearly",
    "@annually",
];

/// What follows the reason a cron expression is refused.
const CRON_HINT: &str = "; write a cron expression like `0 2 * * *` (minute hour day-of-month \
                         month day-of-week: every day at 02:00) or a preset like `@daily`";

impl Schedule {
    /// Parses a schedule string: `@once`, a preset, or a 5-field (or 6-field, with seconds)
    /// cron expression.
    ///
    /// The reason of an error is the one `#[dag(schedule = "..")]` gives at compile time
    /// (flow-macros' test `check::tests` compares them).
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        if trimmed.eq_ignore_ascii_case("@once") {
            return Ok(Schedule::Once);
        }
        let expanded = EXTRA_PRESETS
            .iter()
            .find(|(name, _)| trimmed.eq_ignore_ascii_case(name))
            .map_or(trimmed, |(_, cron)| cron);
        if expanded.starts_with('@') && !PRESETS.iter().any(|p| p.eq_ignore_ascii_case(expanded)) {
            let hint = closest_preset(&expanded.to_ascii_lowercase())
                .map_or_else(|| "use".to_string(), |p| format!("did you mean `{p}`? Use"));
            return Err(format!(
                "unknown preset; {hint} one of {}",
                PRESETS.join(", ")
            ));
        }
        // A preset expands to a valid expression, so only what the user wrote as cron
        // gets the hint.
        let hint = if trimmed.starts_with('@') {
            ""
        } else {
            CRON_HINT
        };
        let fields = expanded.split_whitespace().count();
        if !expanded.starts_with('@') && !(5..=6).contains(&fields) {
            return Err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first, found {fields}{hint}"
            ));
        }
        let parser = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build();
        let cron = parser
            .parse(expanded)
            .map_err(|e| format!("{}{hint}", e.to_string().trim_end_matches('.')))?;
        Ok(Schedule::Cron(Box::new(CronSchedule {
            expression: trimmed.to_string(),
            cron,
        })))
    }
}

/// The preset closest to `wanted`, if it is close enough to be a likely typo.
fn closest_preset(wanted: &str) -> Option<&'static str> {
    PRESETS
        .iter()
        .map(|p| (strsim::levenshtein(wanted, p), *p))
        .filter(|(distance, p)| *distance <= (p.len().max(wanted.len()) / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, p)| p)
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Manual => f.write_str("None"),
            Schedule::Once => f.write_str("@once"),
            Schedule::Cron(cron) => f.write_str(&cron.expression),
            Schedule::Assets(assets) => {
                let uris: Vec<&str> = assets.iter().map(|a| a.uri()).collect();
                write!(f, "[{}]", uris.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn next_after(schedule: &str, after: chrono::DateTime<Utc>) -> chrono::DateTime<Utc> {
        match Schedule::parse(schedule).unwrap() {
            Schedule::Cron(c) => c.cron().find_next_occurrence(&after, false).unwrap(),
            other => panic!("not cron: {other}"),
        }
    }

    #[test]
    fn reads_airflow_style_schedules() {
        let jan1 = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(
            next_after("0 2 * * *", jan1),
            Utc.with_ymd_and_hms(2025, 1, 1, 2, 0, 0).unwrap()
        );
        // 1-5 is Monday to Friday, as in Unix cron: 2025-01-04 is a Saturday.
        let sat = Utc.with_ymd_and_hms(2025, 1, 4, 0, 0, 0).unwrap();
        assert_eq!(
            next_after("0 9 * * 1-5", sat),
            Utc.with_ymd_and_hms(2025, 1, 6, 9, 0, 0).unwrap()
        );
        assert_eq!(
            next_after("@daily", jan1),
            Utc.with_ymd_and_hms(2025, 1, 2, 0, 0, 0).unwrap()
        );
        assert_eq!(
            next_after("@quarterly", jan1),
            Utc.with_ymd_and_hms(2025, 4, 1, 0, 0, 0).unwrap()
        );
        assert_eq!(
            next_after("*/15 * * * *", jan1),
            Utc.with_ymd_and_hms(2025, 1, 1, 0, 15, 0).unwrap()
        );
        assert!(matches!(Schedule::parse("@once").unwrap(), Schedule::Once));
    }

    #[test]
    fn rejects_bad_schedules_with_reasons() {
        assert!(
            Schedule::parse("@fortnightly")
                .unwrap_err()
                .contains("@daily")
        );
        assert!(Schedule::parse("0 2 * *").unwrap_err().contains("5 fields"));
        let typo = Schedule::parse("@dialy").unwrap_err();
        assert!(typo.contains("did you mean `@daily`?"), "{typo}");
        let cron = Schedule::parse("61 * * * *").unwrap_err();
        assert!(cron.ends_with("or a preset like `@daily`"), "{cron}");
        assert!(Schedule::parse("61 * * * *").is_err());
        assert!(Schedule::parse("0 0 2 * * * 2025").is_err());
    }
}

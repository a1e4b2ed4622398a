//! The compile-time check of a `schedule`, mirroring `flow_runtime::schedule::Schedule::parse`
//! so that a schedule accepted here is accepted when the binary starts, with the same
//! reasons (the test of [`super`] compares them).

use croner::parser::{CronParser, Seconds, Year};

/// Airflow's presets that croner does not know, with their cron meaning.
const EXTRA_PRESETS: &[(&str, &str)] = &[("@quarterly", "0 0 1 */3 *"), ("@midnight", "0 0 * * *")];

/// The presets a schedule may name.
const PRESETS: &[&str] = &[
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

/// Why `text` is not a schedule the runtime accepts: `@once`, a preset, or a 5-field cron
/// expression (6 with seconds first).
pub(crate) fn check(text: &str) -> Result<(), String> {
    let trimmed = text.trim();
    if trimmed.eq_ignore_ascii_case("@once") {
        return Ok(());
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
    // A preset expands to a valid expression, so only what the user wrote as cron gets
    // the hint.
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
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(expanded)
        .map(drop)
        .map_err(|e| format!("{}{hint}", e.to_string().trim_end_matches('.')))
}

/// The message of a schedule the runtime refuses: `DagDefinitionError::InvalidSchedule`'s.
pub(crate) fn message(text: &str) -> Result<(), String> {
    check(text).map_err(|reason| format!("invalid schedule `{text}`: {reason}"))
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::check;

    #[test]
    fn accepts_what_airflow_users_write() {
        for ok in [
            "0 2 * * *",
            "*/15 * * * *",
            "0 9 * * 1-5",
            "0 9 * * MON-FRI",
            "0 0 1 JAN *",
            "30 0 2 * * *",
            " 0 2 * * * ",
            "@once",
            "@hourly",
            "@daily",
            "@DAILY",
            "@midnight",
            "@weekly",
            "@monthly",
            "@quarterly",
            "@yearly",
            "@annually",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_with_the_runtime_reasons() {
        let unknown = check("@fortnightly").unwrap_err();
        assert!(
            unknown.starts_with("unknown preset; use one of @once"),
            "{unknown}"
        );
        let typo = check("@dialy").unwrap_err();
        assert!(typo.contains("did you mean `@daily`?"), "{typo}");
        assert!(check("0 2 * *").unwrap_err().contains("expected 5 fields"));
        assert!(check("0 0 2 * * * 2025").unwrap_err().contains("found 7"));
        assert!(check("").unwrap_err().contains("found 0"));
        assert!(check("61 * * * *").is_err());
        assert!(check("0 25 * * *").is_err());
        assert!(check("every day").is_err());
        assert!(check("0 2 * * mon-fry").is_err());
    }
}

//! The compile-time check of a `schedule`, mirroring `flow_runtime::schedule::Schedule::parse`
//! so that a schedule accepted here is accepted when the binary starts, with the same
//! messages.

use croner::parser::{CronParser, Seconds, Year};

/// Airflow's presets that croner does not know, with their cron meaning.
const EXTRA_PRESETS: &[(&str, &str)] = &[("@quarterly", "0 0 1 */3 *"), ("@midnight", "0 0 * * *")];

/// The presets a schedule may name.
pub(crate) const PRESETS: &[&str] = &[
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
    if expanded.starts_with('@') {
        if PRESETS.iter().any(|p| p.eq_ignore_ascii_case(expanded)) {
            return parse(expanded);
        }
        let hint = crate::attr::closest(&expanded.to_ascii_lowercase(), PRESETS)
            .map_or_else(|| "use".to_string(), |p| format!("did you mean `{p}`? Use"));
        return Err(format!(
            "unknown preset; {hint} one of {}",
            PRESETS.join(", ")
        ));
    }
    let fields = expanded.split_whitespace().count();
    if !(5..=6).contains(&fields) {
        return Err(format!(
            "expected 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first, found {fields}"
        ));
    }
    parse(expanded)
}

fn parse(cron: &str) -> Result<(), String> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(cron)
        .map(drop)
        .map_err(|e| e.to_string())
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

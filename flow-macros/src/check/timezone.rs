//! The compile-time check of a `timezone`, mirroring
//! `flow_runtime::timetable::Timetable::parse_timezone`: the same database (chrono-tz),
//! the same suggestions and the same message (the test of [`super`] compares them).

use chrono_tz::Tz;

/// How many close names an unknown time zone error lists.
const SUGGESTIONS: usize = 3;

/// The time zone named `name` (surrounding spaces ignored), or the runtime's message.
pub(crate) fn check(name: &str) -> Result<Tz, String> {
    let trimmed = name.trim();
    trimmed.parse::<Tz>().map_err(|_| {
        format!(
            "unknown time zone `{name}`{}; time zones are IANA names such as `UTC`, \
             `Europe/Amsterdam` or `America/New_York`",
            did_you_mean(&closest(trimmed))
        )
    })
}

/// `; did you mean `A`, `B` or `C`?`.
fn did_you_mean(suggestions: &[&str]) -> String {
    let quoted: Vec<String> = suggestions.iter().map(|s| format!("`{s}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => format!("; did you mean {last}?"),
        Some((last, rest)) => format!("; did you mean {} or {last}?", rest.join(", ")),
    }
}

/// The valid names closest to `name`, closest first: compared without case, with the
/// whole name and with its last part, so `amsterdam` suggests `Europe/Amsterdam`.
fn closest(name: &str) -> Vec<&'static str> {
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
        .take(SUGGESTIONS)
        .map(|(_, candidate)| candidate)
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::check;

    #[test]
    fn iana_names_pass_and_typos_get_suggestions() {
        assert_eq!(check("UTC").unwrap(), chrono_tz::Tz::UTC);
        assert_eq!(
            check(" Europe/Amsterdam ").unwrap(),
            chrono_tz::Tz::Europe__Amsterdam
        );
        for typo in ["Europe/Amsterdm", "europe/amsterdam", "Amsterdam"] {
            let message = check(typo).unwrap_err();
            assert!(
                message.starts_with(&format!(
                    "unknown time zone `{typo}`; did you mean `Europe/Amsterdam`, `"
                )),
                "{message}"
            );
            assert_eq!(message.matches('`').count(), 2 + 2 * 3 + 6, "{message}");
        }
    }
}

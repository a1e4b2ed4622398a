//! Compile-time checks of values the runtime reads again when the binary starts: a DAG's
//! `schedule` and `timezone`. Each mirrors the runtime's parser, so that what compiles
//! also starts, and says what is wrong in the runtime's words; the test below fails if
//! the two drift apart.

pub(crate) mod schedule;
pub(crate) mod timezone;

#[cfg(test)]
mod tests {
    use flow_runtime::DagBuilder;
    use flow_runtime::graph::DagDefinitionError;

    /// What the runtime says of a DAG with these settings, for the errors `pick` keeps.
    fn runtime_messages(builder: DagBuilder, pick: fn(&DagDefinitionError) -> bool) -> Vec<String> {
        match builder.build() {
            Ok(_) => Vec::new(),
            Err(error) => error
                .errors()
                .iter()
                .filter(|e| pick(e))
                .map(ToString::to_string)
                .collect(),
        }
    }

    #[test]
    fn schedules_are_refused_in_the_runtimes_words() {
        for text in [
            "0 2 * *",
            "0 0 2 * * * 2025",
            "",
            "   ",
            "61 * * * *",
            "0 25 * * *",
            "every day",
            "0 2 * * mon-fry",
            "0 9 * * MON-FRY",
            "*/0 * * * *",
            "@fortnightly",
            "@dialy",
            "@HOURLY2",
            "@",
            " @weekly ",
            "@daily",
            "0 2 * * *",
            "@once",
        ] {
            let runtime = runtime_messages(DagBuilder::new("d").schedule(text), |e| {
                matches!(e, DagDefinitionError::InvalidSchedule { .. })
            });
            let compile_time: Vec<String> =
                super::schedule::message(text).err().into_iter().collect();
            assert_eq!(compile_time, runtime, "schedule {text:?}");
        }
    }

    #[test]
    fn time_zones_are_refused_in_the_runtimes_words() {
        for name in [
            "Europe/Amsterdm",
            "europe/amsterdam",
            "Amsterdam",
            "UTC+2",
            "",
            "Mars/Olympus_Mons",
            " Europe/Amsterdam ",
            "UTC",
        ] {
            let runtime = runtime_messages(DagBuilder::new("d").timezone(name), |e| {
                matches!(e, DagDefinitionError::Timezone(_))
            });
            let compile_time: Vec<String> =
                super::timezone::check(name).err().into_iter().collect();
            assert_eq!(compile_time, runtime, "time zone {name:?}");
        }
    }
}

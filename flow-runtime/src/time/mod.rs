//! Time: cron schedules, timetables (when runs happen and which data interval each
//! covers) and the dates DAG definitions are written in.

mod dates;
pub mod schedule;
pub mod timetable;

pub use dates::{parse_date, parse_date_in};

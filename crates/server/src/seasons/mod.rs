//! Seasons of real-time play: when each starts and ends (this file: a cron-style schedule from
//! configuration, `season_schedule`, evaluated in UTC), and the rating and win-rate boards kept
//! per season (`boards.rs`: the current season's standings, the previous season's final boards).
//!
//! Pure and synchronous, like the `game` crate: the time is passed in as Unix milliseconds, so
//! the schedule's arithmetic (month ends, leap years) and the rollover are tested without a
//! clock. UTC has no daylight saving, so a season is never skipped or repeated by a clock
//! change. A module of its own, below the three that use it: configuration validates the
//! schedule, `realtime::records` feeds the boards from finished matches (the hub owns them), and
//! the HTTP surface renders them (`GET /leaderboard/rating`, `GET /leaderboard/win-rate`).
//!
//! A season runs from one occurrence of the schedule (inclusive) to the next (exclusive). Its
//! id is its start in UTC to the minute, ISO 8601 style: `2026-12-01T00:00Z`. The schedule has
//! minute resolution (five fields, no seconds), so no two seasons share an id, and ids sort as
//! their seasons do.

use std::fmt;

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde::Serialize;

pub mod boards;

pub use boards::{Board, BoardEntry, BoardKind, SeasonBoards, SeasonSettings, SeasonView, Which};

/// The default schedule: monthly, at 00:00 UTC on the 1st.
pub const DEFAULT_SCHEDULE: &str = "0 0 1 * *";

/// A parsed `season_schedule`.
#[derive(Clone)]
pub struct Schedule {
    cron: Cron,
    expression: String,
}

/// Why a `season_schedule` cannot be used.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum InvalidSchedule {
    #[error(
        "must be a five-field cron expression (minute hour day-of-month month day-of-week, in \
         UTC), such as \"0 0 1 * *\" for monthly: {0}"
    )]
    Syntax(String),
    #[error("{0:?} never occurs near the current time, so a season would never start or end")]
    NeverOccurs(String),
}

/// One season: from `starts_at_ms` (inclusive) to `ends_at_ms` (exclusive), Unix milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Season {
    pub starts_at_ms: u64,
    pub ends_at_ms: u64,
}

impl Season {
    /// Its id: the start in UTC to the minute, `2026-12-01T00:00Z`.
    pub fn id(&self) -> SeasonId {
        SeasonId(self.starts_at_ms)
    }

    pub fn contains(&self, now_ms: u64) -> bool {
        (self.starts_at_ms..self.ends_at_ms).contains(&now_ms)
    }
}

/// A season's id, written as its start in UTC to the minute (`2026-12-01T00:00Z`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SeasonId(u64);

impl fmt::Display for SeasonId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match to_datetime(self.0) {
            Some(start) => write!(f, "{}", start.format("%Y-%m-%dT%H:%MZ")),
            // Past chrono's range (about 262,000 years): not a time a schedule yields.
            None => write!(f, "{}", self.0),
        }
    }
}

impl Serialize for SeasonId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl Schedule {
    /// Parses a five-field cron expression (minute, hour, day of month, month, day of week;
    /// names such as `MON` and `JAN`, ranges, steps, `L`, `W` and `#` as croner reads them;
    /// day of month and day of week combine by OR, as in Vixie cron). No seconds and no year
    /// field: a season lasts at least a minute.
    pub fn parse(expression: &str) -> Result<Schedule, InvalidSchedule> {
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(expression)
            .map_err(|error| InvalidSchedule::Syntax(error.to_string()))?;
        Ok(Schedule {
            cron,
            expression: expression.trim().to_owned(),
        })
    }

    /// Parses `expression` and checks it yields a season at `now_ms` and the one before it
    /// (a pattern such as `0 0 30 2 *`, February 30th, parses but never occurs).
    pub fn parse_at(expression: &str, now_ms: u64) -> Result<Schedule, InvalidSchedule> {
        let schedule = Schedule::parse(expression)?;
        let occurs = schedule
            .season_at(now_ms)
            .and_then(|season| schedule.season_before(season))
            .is_some();
        if !occurs {
            return Err(InvalidSchedule::NeverOccurs(schedule.expression));
        }
        Ok(schedule)
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The season `now_ms` falls in: the latest occurrence at or before it, to the first one
    /// after it. `None` when the pattern has no occurrence on one side within croner's search
    /// (the years 1 to 5000).
    pub fn season_at(&self, now_ms: u64) -> Option<Season> {
        // Occurrences are whole minutes: searching from the whole second is exact.
        let now = to_datetime(now_ms - now_ms % 1000)?;
        let start = self.cron.find_previous_occurrence(&now, true).ok()?;
        let end = self.cron.find_next_occurrence(&now, false).ok()?;
        Some(Season {
            starts_at_ms: to_unix_ms(start)?,
            ends_at_ms: to_unix_ms(end)?,
        })
    }

    /// The season that ended when `season` started.
    pub fn season_before(&self, season: Season) -> Option<Season> {
        let start = to_datetime(season.starts_at_ms)?;
        let before = self.cron.find_previous_occurrence(&start, false).ok()?;
        Some(Season {
            starts_at_ms: to_unix_ms(before)?,
            ends_at_ms: season.starts_at_ms,
        })
    }
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule::parse(DEFAULT_SCHEDULE).unwrap_or_else(|_| unreachable!("the default parses"))
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Schedule").field(&self.expression).finish()
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression
    }
}

fn to_datetime(unix_ms: u64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(i64::try_from(unix_ms).ok()?)
}

fn to_unix_ms(time: DateTime<Utc>) -> Option<u64> {
    u64::try_from(time.timestamp_millis()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn ms(year: i32, month: u32, day: u32, hour: u32, minute: u32) -> u64 {
        to_unix_ms(
            Utc.with_ymd_and_hms(year, month, day, hour, minute, 0)
                .unwrap(),
        )
        .unwrap()
    }

    fn monthly() -> Schedule {
        Schedule::default()
    }

    #[test]
    fn the_default_is_monthly_from_midnight_on_the_first() {
        let season = monthly().season_at(ms(2026, 12, 15, 13, 5) + 123).unwrap();
        assert_eq!(season.starts_at_ms, ms(2026, 12, 1, 0, 0));
        assert_eq!(season.ends_at_ms, ms(2027, 1, 1, 0, 0));
        assert_eq!(season.id().to_string(), "2026-12-01T00:00Z");
    }

    #[test]
    fn a_season_starts_at_its_first_millisecond_and_ends_before_the_next_start() {
        let start = ms(2027, 3, 1, 0, 0);
        let at_start = monthly().season_at(start).unwrap();
        assert_eq!(at_start.starts_at_ms, start);
        let last_ms = monthly().season_at(start - 1).unwrap();
        assert_eq!(last_ms.ends_at_ms, start);
        assert_eq!(last_ms.starts_at_ms, ms(2027, 2, 1, 0, 0));
    }

    #[test]
    fn months_have_their_own_lengths_and_february_knows_leap_years() {
        let day = 86_400_000;
        let length = |year, month| {
            let season = monthly().season_at(ms(year, month, 10, 0, 0)).unwrap();
            (season.ends_at_ms - season.starts_at_ms) / day
        };
        assert_eq!(length(2027, 2), 28);
        assert_eq!(length(2028, 2), 29);
        assert_eq!(length(2100, 2), 28);
        assert_eq!(length(2000, 2), 29);
        assert_eq!(length(2026, 4), 30);
        assert_eq!(length(2026, 12), 31);
    }

    #[test]
    fn the_last_day_of_the_month_and_leap_days_are_schedulable() {
        let last_day = Schedule::parse("0 12 L * *").unwrap();
        let season = last_day.season_at(ms(2028, 3, 1, 0, 0)).unwrap();
        assert_eq!(season.starts_at_ms, ms(2028, 2, 29, 12, 0));
        assert_eq!(season.ends_at_ms, ms(2028, 3, 31, 12, 0));
        let leap_day = Schedule::parse_at("0 0 29 2 *", ms(2026, 12, 1, 0, 0)).unwrap();
        let season = leap_day.season_at(ms(2026, 12, 1, 0, 0)).unwrap();
        assert_eq!(season.starts_at_ms, ms(2024, 2, 29, 0, 0));
        assert_eq!(season.ends_at_ms, ms(2028, 2, 29, 0, 0));
    }

    #[test]
    fn weekly_seasons_start_on_the_named_day() {
        let weekly = Schedule::parse("30 6 * * mon").unwrap();
        // Tuesday 2026-12-01.
        let season = weekly.season_at(ms(2026, 12, 1, 0, 0)).unwrap();
        assert_eq!(season.starts_at_ms, ms(2026, 11, 30, 6, 30));
        assert_eq!(season.ends_at_ms, ms(2026, 12, 7, 6, 30));
        assert_eq!(season.id().to_string(), "2026-11-30T06:30Z");
    }

    #[test]
    fn the_season_before_ends_where_the_next_begins() {
        let season = monthly().season_at(ms(2027, 1, 20, 0, 0)).unwrap();
        let before = monthly().season_before(season).unwrap();
        assert_eq!(before.starts_at_ms, ms(2026, 12, 1, 0, 0));
        assert_eq!(before.ends_at_ms, season.starts_at_ms);
    }

    #[test]
    fn bad_expressions_are_refused_with_a_reason() {
        for bad in [
            "",
            "0 0 1 *",
            "0 0 0 1 * *",
            "61 0 1 * *",
            "0 0 1 13 *",
            "every month",
        ] {
            assert!(
                matches!(Schedule::parse(bad), Err(InvalidSchedule::Syntax(_))),
                "{bad:?}"
            );
        }
        assert_eq!(
            Schedule::parse_at("0 0 30 2 *", ms(2026, 12, 1, 0, 0)).err(),
            Some(InvalidSchedule::NeverOccurs("0 0 30 2 *".into()))
        );
    }

    proptest::proptest! {
        /// Every moment belongs to exactly one season: it lies inside the season found for it,
        /// and the seasons before and after touch it without a gap or an overlap.
        #[test]
        fn seasons_tile_time(
            now in 946_684_800_000u64..4_102_444_800_000, // 2000 to 2100
            expression in proptest::sample::select(vec![
                "0 0 1 * *", "0 0 * * 0", "15 */6 * * *", "0 0 1 */3 *", "0 0 L * *", "* * * * *",
            ]),
        ) {
            let schedule = Schedule::parse(expression).unwrap();
            let season = schedule.season_at(now).unwrap();
            proptest::prop_assert!(season.contains(now), "{season:?} {now}");
            proptest::prop_assert_eq!(season.starts_at_ms % 60_000, 0);
            let before = schedule.season_before(season).unwrap();
            proptest::prop_assert_eq!(before.ends_at_ms, season.starts_at_ms);
            proptest::prop_assert_eq!(schedule.season_at(before.starts_at_ms), Some(before));
            proptest::prop_assert_eq!(schedule.season_at(season.ends_at_ms - 1), Some(season));
            let after = schedule.season_at(season.ends_at_ms).unwrap();
            proptest::prop_assert_eq!(after.starts_at_ms, season.ends_at_ms);
            proptest::prop_assert!(before.id() < season.id() && season.id() < after.id());
        }
    }
}

//! What the store keeps: game records, player stats, leaderboard windows and entries.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::game_id::GameId;
use crate::game::{Choice, Winner};

/// A validated player id held inline (ids are at most 64 bytes), so queuing a named play's
/// result allocates nothing.
pub type PlayerId = arrayvec::ArrayString<64>;

/// One played round of a named player, as queued for the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GameRecord {
    pub game_id: GameId,
    pub player: PlayerId,
    pub player_choice: Choice,
    pub computer_choice: Choice,
    pub winner: Winner,
}

impl GameRecord {
    /// The day the game was played in: days since 1970-01-01 (UTC).
    pub fn day(&self) -> u32 {
        Window::Day.index_at(self.game_id.unix_time())
    }

    /// The week the game was played in: the day number of its Monday.
    pub fn week(&self) -> u32 {
        Window::Week.index_at(self.game_id.unix_time())
    }

    /// The game as `GET /players/{id}/games` lists it.
    pub fn summary(&self) -> GameSummary {
        GameSummary::of(
            self.game_id,
            self.player_choice,
            self.computer_choice,
            self.winner,
        )
    }
}

/// A game in a player's history. `game_id` is a decimal string: JSON numbers lose precision
/// past 2^53 in most clients.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GameSummary {
    pub game_id: String,
    pub played_at: String,
    pub player_choice: String,
    pub computer_choice: String,
    pub winner: String,
}

impl GameSummary {
    pub fn of(
        game_id: GameId,
        player_choice: Choice,
        computer_choice: Choice,
        winner: Winner,
    ) -> Self {
        Self {
            game_id: game_id.0.to_string(),
            played_at: humantime::format_rfc3339_millis(UNIX_EPOCH + game_id.unix_time())
                .to_string(),
            player_choice: player_choice.name().to_owned(),
            computer_choice: computer_choice.name().to_owned(),
            winner: winner.name().to_owned(),
        }
    }
}

/// A player's totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlayerStats {
    pub rounds: u64,
    pub wins: u64,
    pub losses: u64,
    pub ties: u64,
    pub current_streak: u64,
    pub best_streak: u64,
    /// Rounds per choice, indexed by `Choice as usize`.
    pub choices: [u64; 3],
}

impl PlayerStats {
    /// Counts one round.
    pub fn count(&mut self, choice: Choice, winner: Winner) {
        self.rounds += 1;
        self.choices[choice as usize] += 1;
        match winner {
            Winner::Player => {
                self.wins += 1;
                self.current_streak += 1;
                self.best_streak = self.best_streak.max(self.current_streak);
            }
            Winner::Computer => {
                self.losses += 1;
                self.current_streak = 0;
            }
            Winner::Tie => {
                self.ties += 1;
                self.current_streak = 0;
            }
        }
    }

    /// Wins over rounds played (ties included), 0 before the first round.
    pub fn win_rate(&self) -> f64 {
        if self.rounds == 0 {
            0.0
        } else {
            self.wins as f64 / self.rounds as f64
        }
    }
}

/// The span of a leaderboard: all time, the current UTC day, the current week (from Monday,
/// UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Window {
    All,
    Day,
    Week,
}

impl Window {
    pub fn parse(text: &str) -> Option<Window> {
        match text {
            "all" => Some(Window::All),
            "day" => Some(Window::Day),
            "week" => Some(Window::Week),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Window::All => "all",
            Window::Day => "day",
            Window::Week => "week",
        }
    }

    /// The window holding `unix_time` as a number: 0 for all time, the day number (days since
    /// 1970-01-01, UTC), or the day number of the week's Monday.
    pub fn index_at(self, unix_time: Duration) -> u32 {
        let days = (unix_time.as_secs() / 86_400) as u32;
        match self {
            Window::All => 0,
            Window::Day => days,
            // 1970-01-01 was a Thursday: three days after a Monday.
            Window::Week => ((days + 3) / 7 * 7).saturating_sub(3),
        }
    }

    /// The key naming window `index` (from [`Self::index_at`]): "all", the day ("2026-11-22")
    /// or the week's Monday ("2026-11-16"). Keys of one window sort in time order.
    pub fn key_of(self, index: u32) -> String {
        match self {
            Window::All => "all".to_owned(),
            Window::Day | Window::Week => civil_date(u64::from(index)),
        }
    }

    /// The current window's index.
    pub fn current_index(self) -> u32 {
        self.index_at(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
        )
    }

    /// How long a window's board is kept after the window began: it expires on its own.
    pub const fn retention(self) -> Option<Duration> {
        match self {
            Window::All => None,
            Window::Day => Some(Duration::from_secs(2 * 86_400)),
            Window::Week => Some(Duration::from_secs(14 * 86_400)),
        }
    }
}

/// `YYYY-MM-DD` of a day counted from 1970-01-01 (Howard Hinnant's civil-from-days).
fn civil_date(days: u64) -> String {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// One line of a leaderboard. Ranks follow competition ranking ("1, 1, 3"): a player's rank
/// is one more than the number of players with strictly more wins. Players with equal wins
/// are listed by player id, ascending.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ranked {
    pub rank: u64,
    pub player_id: String,
    pub wins: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(20_414), "2025-11-22");
        assert_eq!(civil_date(11_016), "2000-02-29");
    }

    #[test]
    fn weeks_start_on_monday() {
        let day = |d: u64| Duration::from_secs(d * 86_400 + 3_600);
        let key_at = |window: Window, time: Duration| window.key_of(window.index_at(time));
        // 2026-11-16 is a Monday (day 20,773); 2026-11-22 the Sunday after it.
        assert_eq!(key_at(Window::Day, day(20_773)), "2026-11-16");
        for d in 20_773..20_780 {
            assert_eq!(key_at(Window::Week, day(d)), "2026-11-16", "day {d}");
        }
        assert_eq!(key_at(Window::Week, day(20_780)), "2026-11-23");
        assert_eq!(key_at(Window::All, day(20_780)), "all");
    }

    #[test]
    fn streaks_and_rates() {
        let mut stats = PlayerStats::default();
        for winner in [
            Winner::Player,
            Winner::Player,
            Winner::Tie,
            Winner::Player,
            Winner::Computer,
        ] {
            stats.count(Choice::Rock, winner);
        }
        assert_eq!((stats.wins, stats.losses, stats.ties), (3, 1, 1));
        assert_eq!((stats.current_streak, stats.best_streak), (0, 2));
        assert_eq!(stats.choices, [5, 0, 0]);
        assert!((stats.win_rate() - 0.6).abs() < 1e-9);
        assert_eq!(PlayerStats::default().win_rate(), 0.0);
    }
}

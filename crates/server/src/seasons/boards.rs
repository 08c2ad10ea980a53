//! The season boards: each account's standing in the current season, ordered two ways (by
//! season rating, and by win rate), and the previous season's final boards, frozen.
//!
//! Pure and synchronous: the real-time hub owns one (in `realtime::records`, behind its lock)
//! and passes the time in. Seasons roll over lazily: every record and every read first checks `now_ms`
//! against the current season's end (one comparison), so no timer is needed, and a season in
//! which nothing happened on this instance still ends on time.
//!
//! What counts: rated matches between two people (a no contest is not rated; a match against a
//! bot never is, so a bot cannot be farmed for a win rate). A season starts everyone afresh: a
//! full reset of the season rating to Glicko-2's defaults (1500, deviation 350), updated match by
//! match against the opponent's season rating. The lifetime rating that matchmaking and
//! `match_result` use is not reset.
//!
//! Bounds: the current season holds one standing per account that played a rated match in it
//! (at most one per account, as `Records` already keeps), indexed twice, so a record costs two
//! B-tree updates and a read walks only the entries it returns. A board lists at most
//! `board_size` entries; a finished season keeps exactly those, its final standings, and the
//! rest of its standings are dropped. Only the season just ended is kept.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};

use game::rating::{self, Rating, Score};
use serde::Serialize;

use super::{Schedule, Season, SeasonId};
use crate::accounts::AccountId;

/// What the boards are told by configuration (README's settings table).
#[derive(Clone, Debug, PartialEq)]
pub struct SeasonSettings {
    /// `season_schedule`.
    pub schedule: Schedule,
    /// `win_rate_min_matches`: rated matches an account plays in a season before it is listed
    /// on the win-rate board (at least 1).
    pub win_rate_min_matches: u64,
    /// `season_board_size`: entries a board lists, and a finished season keeps, per board.
    pub board_size: usize,
}

impl Default for SeasonSettings {
    fn default() -> Self {
        SeasonSettings {
            schedule: Schedule::default(),
            win_rate_min_matches: 20,
            board_size: 100,
        }
    }
}

/// Which board.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoardKind {
    /// Highest season rating first.
    Rating,
    /// Highest share of rated matches won first, among accounts with at least
    /// `win_rate_min_matches`.
    WinRate,
}

/// Which season's board.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    Current,
    /// The season that ended when the current one began: its final standings.
    Previous,
}

/// A board as read: the season it belongs to and its first entries.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Board {
    pub season: SeasonView,
    /// Fewest rated matches an account needs to be listed: 1 on the rating board.
    pub min_matches: u64,
    pub entries: Vec<BoardEntry>,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SeasonView {
    pub id: SeasonId,
    pub starts_at_ms: u64,
    pub ends_at_ms: u64,
    /// Whether the season has ended and its board is final.
    pub ended: bool,
}

/// One place on a board. Equal keys (the same rating; the same win rate over the same number
/// of matches) share a rank and are listed by account id.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BoardEntry {
    pub rank: u64,
    pub account: String,
    pub rating: f64,
    pub deviation: f64,
    pub wins: u64,
    pub losses: u64,
    /// `wins / (wins + losses)`.
    pub win_rate: f64,
}

/// An account's standing in a season.
#[derive(Clone, Copy, Debug)]
struct Standing {
    rating: Rating,
    wins: u64,
    losses: u64,
}

impl Standing {
    fn matches(&self) -> u64 {
        self.wins + self.losses
    }
}

/// The rating board's order: highest rating first, then by account id.
#[derive(Clone, Copy, Debug)]
struct ByRating {
    rating: f64,
    account: AccountId,
}

/// The win-rate board's order: highest `wins / matches` first (compared exactly, as
/// fractions), then more matches, then by account id.
#[derive(Clone, Copy, Debug)]
struct ByWinRate {
    wins: u64,
    matches: u64,
    account: AccountId,
}

/// A board's key: how two standings compare (the account id aside), and whose it is.
trait BoardKey: Ord {
    fn standing_cmp(&self, other: &Self) -> Ordering;
    fn account(&self) -> AccountId;
}

impl BoardKey for ByRating {
    fn standing_cmp(&self, other: &Self) -> Ordering {
        other.rating.total_cmp(&self.rating)
    }
    fn account(&self) -> AccountId {
        self.account
    }
}

impl BoardKey for ByWinRate {
    fn standing_cmp(&self, other: &Self) -> Ordering {
        let mine = u128::from(self.wins) * u128::from(other.matches);
        let theirs = u128::from(other.wins) * u128::from(self.matches);
        theirs
            .cmp(&mine)
            .then_with(|| other.matches.cmp(&self.matches))
    }
    fn account(&self) -> AccountId {
        self.account
    }
}

macro_rules! ordered_by_standing_then_account {
    ($key:ty) => {
        impl Ord for $key {
            fn cmp(&self, other: &Self) -> Ordering {
                self.standing_cmp(other)
                    .then_with(|| self.account.cmp(&other.account))
            }
        }
        impl PartialOrd for $key {
            fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
                Some(self.cmp(other))
            }
        }
        impl PartialEq for $key {
            fn eq(&self, other: &Self) -> bool {
                self.cmp(other) == Ordering::Equal
            }
        }
        impl Eq for $key {}
    };
}
ordered_by_standing_then_account!(ByRating);
ordered_by_standing_then_account!(ByWinRate);

/// The season being played.
struct Running {
    season: Season,
    standings: HashMap<AccountId, Standing>,
    by_rating: BTreeSet<ByRating>,
    by_win_rate: BTreeSet<ByWinRate>,
}

/// A season that ended: its boards as they stood, `board_size` entries each.
struct Ended {
    season: Season,
    rating: Vec<BoardEntry>,
    win_rate: Vec<BoardEntry>,
}

/// The current season's standings and the previous season's final boards.
pub struct SeasonBoards {
    settings: SeasonSettings,
    /// Until the first record or read, [`Season::NONE`].
    current: Running,
    previous: Ended,
}

impl SeasonBoards {
    pub fn new(settings: SeasonSettings) -> Self {
        SeasonBoards {
            settings: SeasonSettings {
                win_rate_min_matches: settings.win_rate_min_matches.max(1),
                board_size: settings.board_size.max(1),
                ..settings
            },
            current: Running::new(Season::NONE),
            previous: Ended {
                season: Season::NONE,
                rating: Vec::new(),
                win_rate: Vec::new(),
            },
        }
    }

    /// Counts a rated match between two people at `now_ms`: the winner's and the loser's
    /// season records and season ratings change together.
    pub fn record(&mut self, winner: &AccountId, loser: &AccountId, now_ms: u64) {
        self.roll(now_ms);
        let running = &mut self.current;
        let winner_before = running.standing(winner);
        let loser_before = running.standing(loser);
        let winner_after = Standing {
            rating: rating::update(winner_before.rating, &[(loser_before.rating, Score::Win)]),
            wins: winner_before.wins + 1,
            ..winner_before
        };
        let loser_after = Standing {
            rating: rating::update(loser_before.rating, &[(winner_before.rating, Score::Loss)]),
            losses: loser_before.losses + 1,
            ..loser_before
        };
        let min_matches = self.settings.win_rate_min_matches;
        running.replace(winner, winner_after, min_matches);
        running.replace(loser, loser_after, min_matches);
    }

    /// The first `limit` entries (at most `board_size`) of a board, as of `now_ms`.
    pub fn board(&mut self, kind: BoardKind, which: Which, limit: usize, now_ms: u64) -> Board {
        let limit = limit.min(self.settings.board_size);
        let min_matches = match kind {
            BoardKind::Rating => 1,
            BoardKind::WinRate => self.settings.win_rate_min_matches,
        };
        self.roll(now_ms);
        let (season, ended, entries) = match which {
            Which::Current => (
                self.current.season,
                false,
                self.current.entries(kind, limit),
            ),
            Which::Previous => {
                let entries = match kind {
                    BoardKind::Rating => &self.previous.rating,
                    BoardKind::WinRate => &self.previous.win_rate,
                };
                let entries = entries.iter().take(limit).cloned().collect();
                (self.previous.season, true, entries)
            }
        };
        Board {
            season: SeasonView {
                id: season.id(),
                starts_at_ms: season.starts_at_ms,
                ends_at_ms: season.ends_at_ms,
                ended,
            },
            min_matches,
            entries,
        }
    }

    /// Rolls the running season over if it has ended by `now_ms`: its final boards become the
    /// previous season's when it is the season just before the new one; otherwise no season
    /// between was played here, and the previous boards are empty.
    fn roll(&mut self, now_ms: u64) {
        // A clock that steps back leaves the season as it is.
        if now_ms < self.current.season.ends_at_ms {
            return;
        }
        let season = self.season_at(now_ms);
        let ended = std::mem::replace(&mut self.current, Running::new(season));
        let size = self.settings.board_size;
        self.previous = if ended.season.ends_at_ms == season.starts_at_ms {
            Ended {
                season: ended.season,
                rating: ended.entries(BoardKind::Rating, size),
                win_rate: ended.entries(BoardKind::WinRate, size),
            }
        } else {
            Ended {
                season: self.season_before(season),
                rating: Vec::new(),
                win_rate: Vec::new(),
            }
        };
    }

    /// The season of `now_ms`; a schedule with no occurrence after it (none before the year
    /// 5000) leaves one endless season.
    fn season_at(&self, now_ms: u64) -> Season {
        self.settings
            .schedule
            .season_at(now_ms)
            .unwrap_or(Season::ENDLESS)
    }

    fn season_before(&self, season: Season) -> Season {
        self.settings
            .schedule
            .season_before(season)
            .unwrap_or(Season {
                starts_at_ms: 0,
                ends_at_ms: season.starts_at_ms,
            })
    }
}

impl Season {
    /// A season that never ends, for a schedule that has stopped occurring.
    const ENDLESS: Season = Season {
        starts_at_ms: 0,
        ends_at_ms: u64::MAX,
    };
    /// An empty season that ended at the epoch: the boards' state before the first record or
    /// read, which rolls it over like any other.
    const NONE: Season = Season {
        starts_at_ms: 0,
        ends_at_ms: 0,
    };
}

impl Running {
    fn new(season: Season) -> Self {
        Running {
            season,
            standings: HashMap::new(),
            by_rating: BTreeSet::new(),
            by_win_rate: BTreeSet::new(),
        }
    }

    fn standing(&self, account: &AccountId) -> Standing {
        self.standings.get(account).copied().unwrap_or(Standing {
            rating: Rating::default(),
            wins: 0,
            losses: 0,
        })
    }

    /// Sets `account`'s standing, keeping both indexes in step with the map.
    fn replace(&mut self, account: &AccountId, standing: Standing, min_matches: u64) {
        if let Some(old) = self.standings.insert(*account, standing) {
            self.by_rating.remove(&ByRating {
                rating: old.rating.rating,
                account: *account,
            });
            self.by_win_rate.remove(&ByWinRate {
                wins: old.wins,
                matches: old.matches(),
                account: *account,
            });
        }
        self.by_rating.insert(ByRating {
            rating: standing.rating.rating,
            account: *account,
        });
        if standing.matches() >= min_matches {
            self.by_win_rate.insert(ByWinRate {
                wins: standing.wins,
                matches: standing.matches(),
                account: *account,
            });
        }
    }

    fn entries(&self, kind: BoardKind, limit: usize) -> Vec<BoardEntry> {
        match kind {
            BoardKind::Rating => self.ranked(&self.by_rating, limit),
            BoardKind::WinRate => self.ranked(&self.by_win_rate, limit),
        }
    }

    /// The first `limit` keys as entries, with competition ranks (equal standings share one).
    fn ranked<K: BoardKey>(&self, keys: &BTreeSet<K>, limit: usize) -> Vec<BoardEntry> {
        let mut entries: Vec<BoardEntry> = Vec::with_capacity(limit.min(keys.len()));
        let mut last: Option<&K> = None;
        for (position, key) in keys.iter().take(limit).enumerate() {
            let rank = match (last, entries.last()) {
                (Some(last), Some(entry)) if last.standing_cmp(key) == Ordering::Equal => {
                    entry.rank
                }
                _ => position as u64 + 1,
            };
            last = Some(key);
            let standing = self.standing(&key.account());
            entries.push(BoardEntry {
                rank,
                account: key.account().to_string(),
                rating: standing.rating.rating,
                deviation: standing.rating.deviation,
                wins: standing.wins,
                losses: standing.losses,
                win_rate: standing.wins as f64 / standing.matches().max(1) as f64,
            });
        }
        entries
    }
}

#[cfg(test)]
mod tests;

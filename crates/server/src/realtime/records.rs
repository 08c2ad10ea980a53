//! What real-time play leaves behind: each account's rating and match record, the season
//! boards (`crate::seasons`), and the transcripts of finished matches, all bounded.
//!
//! Kept in this instance's memory (as the in-memory store keeps `/play` results); the next
//! step moves them to Redis with the matches themselves.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use game::matches::Event;
use game::rating::{self, Rating, Score};
use serde::Serialize;

use crate::accounts::AccountId;
use crate::seasons::boards::{Board, BoardKind, SeasonBoards, SeasonSettings, Which};

/// Matches listed per account, newest first.
pub const HISTORY_KEPT: usize = 50;

/// One account's real-time record: apart from its `/play` stats against the computer.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Record {
    pub rating: Rating,
    /// Rated matches against people.
    pub wins: u64,
    pub losses: u64,
    pub bot_wins: u64,
    pub bot_losses: u64,
    /// Matches that ended without a result (drained, abandoned, round limit).
    pub no_contest: u64,
    /// Match ids, newest first.
    pub matches: VecDeque<String>,
}

impl Record {
    fn remember(&mut self, match_id: &str) {
        self.matches.push_front(match_id.to_owned());
        self.matches.truncate(HISTORY_KEPT);
    }
}

/// A finished match: its public transcript and who sat where.
#[derive(Clone, Debug, Serialize)]
pub struct Finished {
    pub match_id: String,
    pub seats: game::matches::PerSeat<SeatSummary>,
    pub events: Vec<Event>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SeatSummary {
    /// `human` or `bot`.
    pub kind: &'static str,
    /// The account id (people) or the bot's strategy.
    pub id: String,
    pub name: String,
}

/// How one seat's side of a finished match is recorded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SideResult {
    Won,
    Lost,
    NoContest,
}

/// What recording a match changed for one account.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Change {
    pub before: f64,
    pub after: f64,
    pub rated: bool,
}

pub struct Records {
    accounts: HashMap<AccountId, Record>,
    finished: HashMap<String, Arc<Finished>>,
    order: VecDeque<String>,
    kept: usize,
    seasons: SeasonBoards,
}

impl Records {
    /// Records keeping `kept` transcripts, with the default seasons.
    #[cfg(test)]
    pub fn new(kept: usize) -> Self {
        Records::with_seasons(kept, SeasonSettings::default())
    }

    pub fn with_seasons(kept: usize, seasons: SeasonSettings) -> Self {
        Records {
            accounts: HashMap::new(),
            finished: HashMap::new(),
            order: VecDeque::new(),
            kept: kept.max(1),
            seasons: SeasonBoards::new(seasons),
        }
    }

    pub fn rating(&self, account: &AccountId) -> Rating {
        self.accounts
            .get(account)
            .map_or_else(Rating::default, |record| record.rating)
    }

    pub fn record(&self, account: &AccountId) -> Option<&Record> {
        self.accounts.get(account)
    }

    pub fn transcript(&self, match_id: &str) -> Option<Arc<Finished>> {
        self.finished.get(match_id).cloned()
    }

    /// Records a match between two people that ended at `now_ms`: both records and ratings
    /// (Glicko-2, one game as a rating period) change together, once, and a rated match counts
    /// on the boards of the season `now_ms` falls in.
    pub fn record_human_match_at(
        &mut self,
        match_id: &str,
        a: &AccountId,
        b: &AccountId,
        result_a: SideResult,
        now_ms: u64,
    ) -> (Change, Change) {
        match result_a {
            SideResult::Won => self.seasons.record(a, b, now_ms),
            SideResult::Lost => self.seasons.record(b, a, now_ms),
            SideResult::NoContest => {}
        }
        self.record_human_match(match_id, a, b, result_a)
    }

    /// The first `limit` entries of a season board as of `now_ms` (rolling the season over
    /// first if it has ended).
    pub fn season_board(
        &mut self,
        kind: BoardKind,
        which: Which,
        limit: usize,
        now_ms: u64,
    ) -> Board {
        self.seasons.board(kind, which, limit, now_ms)
    }

    /// Records a match between two people: both records and ratings (Glicko-2, one game as a
    /// rating period) change together, once. The season boards are not told.
    fn record_human_match(
        &mut self,
        match_id: &str,
        a: &AccountId,
        b: &AccountId,
        result_a: SideResult,
    ) -> (Change, Change) {
        let (rating_a, rating_b) = (self.rating(a), self.rating(b));
        let (score_a, score_b) = match result_a {
            SideResult::Won => (Some(Score::Win), Some(Score::Loss)),
            SideResult::Lost => (Some(Score::Loss), Some(Score::Win)),
            SideResult::NoContest => (None, None),
        };
        let after_a = score_a.map_or(rating_a, |s| rating::update(rating_a, &[(rating_b, s)]));
        let after_b = score_b.map_or(rating_b, |s| rating::update(rating_b, &[(rating_a, s)]));
        for (account, after, result) in [(a, after_a, result_a), (b, after_b, flip(result_a))] {
            let record = self.accounts.entry(*account).or_default();
            record.rating = after;
            match result {
                SideResult::Won => record.wins += 1,
                SideResult::Lost => record.losses += 1,
                SideResult::NoContest => record.no_contest += 1,
            }
            record.remember(match_id);
        }
        let rated = result_a != SideResult::NoContest;
        (
            Change {
                before: rating_a.rating,
                after: after_a.rating,
                rated,
            },
            Change {
                before: rating_b.rating,
                after: after_b.rating,
                rated,
            },
        )
    }

    /// Records a match against a bot: counted apart, never rated.
    pub fn record_bot_match(
        &mut self,
        match_id: &str,
        account: &AccountId,
        result: SideResult,
    ) -> Change {
        let record = self.accounts.entry(*account).or_default();
        match result {
            SideResult::Won => record.bot_wins += 1,
            SideResult::Lost => record.bot_losses += 1,
            SideResult::NoContest => record.no_contest += 1,
        }
        record.remember(match_id);
        Change {
            before: record.rating.rating,
            after: record.rating.rating,
            rated: false,
        }
    }

    /// Keeps a finished match's transcript, forgetting the oldest past the bound.
    pub fn keep(&mut self, finished: Finished) {
        let id = finished.match_id.clone();
        self.finished.insert(id.clone(), Arc::new(finished));
        self.order.push_back(id);
        while self.order.len() > self.kept {
            if let Some(oldest) = self.order.pop_front() {
                self.finished.remove(&oldest);
            }
        }
    }

    pub fn transcripts_kept(&self) -> usize {
        self.finished.len()
    }
}

fn flip(result: SideResult) -> SideResult {
    match result {
        SideResult::Won => SideResult::Lost,
        SideResult::Lost => SideResult::Won,
        SideResult::NoContest => SideResult::NoContest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> AccountId {
        AccountId::from(text).unwrap()
    }

    #[test]
    fn a_rated_match_moves_both_ratings_in_opposite_directions() {
        let mut records = Records::new(10);
        let (a, b) = records.record_human_match("m1", &id("a"), &id("b"), SideResult::Won);
        assert!(a.rated && b.rated);
        assert!(a.after > a.before && b.after < b.before);
        // Equal players: symmetric changes.
        assert!(((a.after - 1500.0) + (b.after - 1500.0)).abs() < 1e-9);
        let record = records.record(&id("a")).unwrap();
        assert_eq!((record.wins, record.losses), (1, 0));
        assert_eq!(records.record(&id("b")).unwrap().losses, 1);
    }

    #[test]
    fn no_contest_and_bots_are_not_rated() {
        let mut records = Records::new(10);
        let (a, _) = records.record_human_match("m1", &id("a"), &id("b"), SideResult::NoContest);
        assert!(!a.rated);
        assert_eq!(a.before, a.after);
        let change = records.record_bot_match("m2", &id("a"), SideResult::Won);
        assert!(!change.rated);
        let record = records.record(&id("a")).unwrap();
        assert_eq!((record.no_contest, record.bot_wins, record.wins), (1, 1, 0));
        assert_eq!(record.matches, ["m2", "m1"]);
    }

    #[test]
    fn rated_matches_between_people_count_on_the_season_boards() {
        let mut records = Records::with_seasons(
            10,
            SeasonSettings {
                win_rate_min_matches: 1,
                ..SeasonSettings::default()
            },
        );
        // 2026-12-01T00:00Z.
        let now = 1_796_083_200_000;
        records.record_human_match_at("m1", &id("a"), &id("b"), SideResult::Lost, now);
        records.record_human_match_at("m2", &id("c"), &id("d"), SideResult::NoContest, now);
        records.record_bot_match("m3", &id("e"), SideResult::Won);
        let board = records.season_board(BoardKind::WinRate, Which::Current, 10, now);
        let listed: Vec<&str> = board.entries.iter().map(|e| e.account.as_str()).collect();
        assert_eq!(listed, ["b", "a"]);
        assert_eq!(board.season.id.to_string(), "2026-12-01T00:00Z");
        // The lifetime record moved as well.
        assert_eq!(records.record(&id("b")).unwrap().wins, 1);
    }

    #[test]
    fn transcripts_are_bounded() {
        let mut records = Records::new(2);
        for n in 0..3 {
            records.keep(Finished {
                match_id: format!("m{n}"),
                seats: game::matches::PerSeat::new(seat(), seat()),
                events: Vec::new(),
            });
        }
        assert_eq!(records.transcripts_kept(), 2);
        assert!(records.transcript("m0").is_none());
        assert!(records.transcript("m2").is_some());
    }

    fn seat() -> SeatSummary {
        SeatSummary {
            kind: "bot",
            id: "random".into(),
            name: "random".into(),
        }
    }
}

//! The embedded store: everything in this process's memory, nothing to install.
//!
//! Every structure is bounded: players (`max_players`; records of players beyond it are dropped
//! and counted), games kept per player, idempotency keys (`max_keys`; past it the oldest key is
//! forgotten first). Windowed boards older than the current window are dropped as they age.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::idempotency::{self, Begin, Fingerprint, StoredAnswer};
use super::model::{GameRecord, GameSummary, PlayerStats, Ranked, Window};
use crate::game::Winner;

#[derive(Clone, Copy, Debug)]
pub struct MemoryLimits {
    pub max_players: usize,
    pub games_kept: usize,
    pub max_keys: usize,
}

#[derive(Debug, Default)]
struct Player {
    stats: PlayerStats,
    games: VecDeque<GameRecord>,
    /// The player's wins in their latest day and week: (window key, wins).
    day: (String, u64),
    week: (String, u64),
}

/// One leaderboard: wins per player, and the same ordered for listing (most wins first, then
/// player id ascending).
#[derive(Debug, Default)]
struct Board {
    scores: HashMap<Box<str>, u64>,
    order: BTreeSet<(Reverse<u64>, Box<str>)>,
}

impl Board {
    fn set(&mut self, player: &str, wins: u64) {
        if let Some(old) = self.scores.get_mut(player) {
            if *old >= wins {
                return;
            }
            self.order.remove(&(Reverse(*old), Box::from(player)));
            *old = wins;
        } else {
            self.scores.insert(Box::from(player), wins);
        }
        self.order.insert((Reverse(wins), Box::from(player)));
    }

    fn higher_than(&self, wins: u64) -> u64 {
        self.order.range(..(Reverse(wins), Box::from(""))).count() as u64
    }
}

#[derive(Debug, Default)]
struct State {
    players: HashMap<Box<str>, Player>,
    boards: HashMap<(Window, String), Board>,
}

#[derive(Debug, Default)]
struct Keys {
    records: HashMap<String, (Instant, Vec<u8>)>,
    /// Keys in the order they expire (a key whose expiry moved appears again later).
    expiry: VecDeque<(Instant, String)>,
}

impl Keys {
    fn sweep(&mut self, now: Instant, max_keys: usize) {
        while let Some((expires, key)) = self.expiry.front() {
            let expired = *expires <= now;
            if !expired && self.records.len() < max_keys {
                break;
            }
            if self
                .records
                .get(key)
                .is_some_and(|(current, _)| current == expires)
            {
                self.records.remove(key);
            }
            self.expiry.pop_front();
        }
    }

    fn put(&mut self, key: &str, ttl: Duration, record: Vec<u8>, now: Instant) {
        let expires = now + ttl;
        self.records.insert(key.to_owned(), (expires, record));
        self.expiry.push_back((expires, key.to_owned()));
    }
}

#[derive(Debug)]
pub struct MemoryStore {
    limits: MemoryLimits,
    state: Mutex<State>,
    keys: Mutex<Keys>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MemoryStore {
    pub fn new(limits: MemoryLimits) -> Self {
        Self {
            limits,
            state: Mutex::default(),
            keys: Mutex::default(),
        }
    }

    /// Applies a batch; returns how many records were dropped for the player bound.
    pub fn apply(&self, batch: &[GameRecord]) -> u64 {
        let mut dropped = 0;
        let mut state = lock(&self.state);
        let State { players, boards } = &mut *state;
        for record in batch {
            if !players.contains_key(&*record.player) && players.len() >= self.limits.max_players {
                dropped += 1;
                continue;
            }
            let player = players.entry(record.player.clone()).or_default();
            player.stats.count(record.player_choice, record.winner);
            if player.games.len() >= self.limits.games_kept {
                player.games.pop_back();
            }
            player.games.push_front(record.clone());
            let won = u64::from(record.winner == Winner::Player);
            for (window, key, slot) in [
                (Window::Day, record.day(), &mut player.day),
                (Window::Week, record.week(), &mut player.week),
            ] {
                // Same rule as the Redis script: a newer window starts from zero, an older one
                // (a record that waited out an outage past midnight) no longer counts.
                if key > slot.0 {
                    *slot = (key, 0);
                } else if key < slot.0 {
                    continue;
                }
                slot.1 += won;
                boards
                    .entry((window, slot.0.clone()))
                    .or_default()
                    .set(&record.player, slot.1);
            }
            boards
                .entry((Window::All, "all".to_owned()))
                .or_default()
                .set(&record.player, player.stats.wins);
        }
        let day = Window::Day.current_key();
        let week = Window::Week.current_key();
        boards.retain(|(window, key), _| match window {
            Window::All => true,
            Window::Day => *key >= day,
            Window::Week => *key >= week,
        });
        dropped
    }

    pub fn stats(&self, player: &str) -> Option<PlayerStats> {
        lock(&self.state).players.get(player).map(|p| p.stats)
    }

    pub fn games(&self, player: &str, limit: usize) -> Option<Vec<GameSummary>> {
        let state = lock(&self.state);
        let player = state.players.get(player)?;
        Some(
            player
                .games
                .iter()
                .take(limit)
                .map(GameRecord::summary)
                .collect(),
        )
    }

    pub fn leaderboard(&self, window: Window, key: &str, limit: usize) -> Vec<Ranked> {
        let state = lock(&self.state);
        let Some(board) = state.boards.get(&(window, key.to_owned())) else {
            return Vec::new();
        };
        let mut entries: Vec<Ranked> = Vec::with_capacity(limit.min(board.order.len()));
        for (index, (Reverse(wins), player)) in board.order.iter().take(limit).enumerate() {
            let rank = match entries.last() {
                Some(previous) if previous.wins == *wins => previous.rank,
                _ => index as u64 + 1,
            };
            entries.push(Ranked {
                rank,
                player_id: player.to_string(),
                wins: *wins,
            });
        }
        entries
    }

    pub fn rank(&self, window: Window, key: &str, player: &str) -> Option<Ranked> {
        let state = lock(&self.state);
        let board = state.boards.get(&(window, key.to_owned()))?;
        let wins = *board.scores.get(player)?;
        Some(Ranked {
            rank: board.higher_than(wins) + 1,
            player_id: player.to_owned(),
            wins,
        })
    }

    pub fn begin(&self, key: &str, fingerprint: &Fingerprint) -> Begin {
        let now = Instant::now();
        let mut keys = lock(&self.keys);
        keys.sweep(now, self.limits.max_keys);
        if let Some((_, record)) = keys.records.get(key) {
            return idempotency::judge_existing(record, fingerprint);
        }
        keys.put(
            key,
            idempotency::IN_FLIGHT_TTL,
            idempotency::encode_in_flight(fingerprint),
            now,
        );
        Begin::Started
    }

    pub fn complete(&self, key: &str, fingerprint: &Fingerprint, answer: &StoredAnswer) {
        let now = Instant::now();
        lock(&self.keys).put(
            key,
            idempotency::KEY_TTL,
            idempotency::encode_done(fingerprint, answer),
            now,
        );
    }

    pub fn abort(&self, key: &str) {
        lock(&self.keys).records.remove(key);
    }

    /// Idempotency keys held now (for tests of the bound).
    pub fn keys_held(&self) -> usize {
        lock(&self.keys).records.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::Choice;
    use crate::http::wire::Format;
    use crate::store::game_id::GameIds;

    fn store(max_players: usize) -> MemoryStore {
        MemoryStore::new(MemoryLimits {
            max_players,
            games_kept: 3,
            max_keys: 2,
        })
    }

    fn record(ids: &GameIds, player: &str, winner: Winner) -> GameRecord {
        GameRecord {
            game_id: ids.next(),
            player: player.into(),
            player_choice: Choice::Rock,
            computer_choice: Choice::Paper,
            winner,
        }
    }

    #[test]
    fn the_player_bound_drops_new_players_only() {
        let ids = GameIds::new(0);
        let store = store(1);
        assert_eq!(store.apply(&[record(&ids, "a", Winner::Player)]), 0);
        assert_eq!(store.apply(&[record(&ids, "b", Winner::Player)]), 1);
        assert_eq!(store.apply(&[record(&ids, "a", Winner::Tie)]), 0);
        assert_eq!(store.stats("a").unwrap().rounds, 2);
        assert!(store.stats("b").is_none());
    }

    #[test]
    fn games_are_kept_to_the_bound_newest_first() {
        let ids = GameIds::new(0);
        let store = store(10);
        let batch: Vec<_> = (0..5).map(|_| record(&ids, "a", Winner::Tie)).collect();
        store.apply(&batch);
        let games = store.games("a", 10).unwrap();
        assert_eq!(games.len(), 3);
        assert_eq!(games[0].game_id, batch[4].game_id.to_string());
        assert_eq!(store.games("a", 1).unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn keys_expire_and_are_bounded() {
        let store = store(10);
        let fp = idempotency::fingerprint(b"x");
        assert_eq!(store.begin("k1", &fp), Begin::Started);
        assert_eq!(store.begin("k1", &fp), Begin::InFlight);
        tokio::time::advance(idempotency::IN_FLIGHT_TTL).await;
        assert_eq!(
            store.begin("k1", &fp),
            Begin::Started,
            "a stale claim lapses"
        );
        let answer = StoredAnswer {
            status: 200,
            format: Format::Json,
            body: b"{}".to_vec(),
        };
        store.complete("k1", &fp, &answer);
        tokio::time::advance(idempotency::KEY_TTL - Duration::from_secs(1)).await;
        assert_eq!(store.begin("k1", &fp), Begin::Replay(answer));
        assert_eq!(store.begin("k2", &fp), Begin::Started);
        assert_eq!(store.begin("k3", &fp), Begin::Started);
        assert!(store.keys_held() <= 2, "{}", store.keys_held());
    }
}

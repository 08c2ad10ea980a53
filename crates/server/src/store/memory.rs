//! The embedded store: everything in this process's memory, nothing to install.
//!
//! Every structure is bounded: players (`max_players`; a new player past it evicts the least
//! recently active one, with its stats, history and board places, and the eviction is
//! counted), games kept per player, idempotency keys (`max_keys`; past it the key that expires
//! first is forgotten first, and every key, an in-flight claim above all, ends on its own
//! lifetime). Windowed boards older than the current window are dropped as they age.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::game_id::GameId;
use super::idempotency::{self, Begin, Fingerprint, StoredAnswer};
use super::model::{GameRecord, GameSummary, PlayerStats, Ranked, Window};
use crate::game::{Choice, Winner};

#[derive(Clone, Copy, Debug)]
pub struct MemoryLimits {
    pub max_players: usize,
    pub games_kept: usize,
    pub max_keys: usize,
}

#[derive(Debug, Default)]
struct Player {
    stats: PlayerStats,
    /// Newest first, at most `games_kept`.
    games: VecDeque<Game>,
    /// The player's wins in their latest day and week: (window index, wins).
    day: (u32, u64),
    week: (u32, u64),
    /// When the player last played, as a position in `State::recency`.
    active: u64,
}

/// A game in a player's history, without the player (the map key says who).
#[derive(Clone, Copy, Debug)]
struct Game {
    game_id: GameId,
    player_choice: Choice,
    computer_choice: Choice,
    winner: Winner,
}

/// One leaderboard: wins per player, and the players grouped by wins for listing (most wins
/// first, then player id ascending) and ranking (count the players in higher groups).
#[derive(Debug, Default)]
struct Board {
    scores: HashMap<Box<str>, u64, Hasher>,
    by_wins: BTreeMap<Reverse<u64>, BTreeSet<Box<str>>>,
}

impl Board {
    /// Takes `player` off the board.
    fn remove(&mut self, player: &str) {
        let Some(wins) = self.scores.remove(player) else {
            return;
        };
        if let Some(group) = self.by_wins.get_mut(&Reverse(wins)) {
            group.remove(player);
            if group.is_empty() {
                self.by_wins.remove(&Reverse(wins));
            }
        }
    }

    /// Raises `player`'s score to `wins` (scores never go down). Allocates only for a player
    /// new to the board: a moving player's id moves between groups.
    fn set(&mut self, player: &str, wins: u64) {
        let moved = match self.scores.get_mut(player) {
            Some(old) if *old >= wins => return,
            Some(old) => {
                let previous = std::mem::replace(old, wins);
                let group = self.by_wins.get_mut(&Reverse(previous));
                let id = group.and_then(|group| group.take(player));
                if self
                    .by_wins
                    .get(&Reverse(previous))
                    .is_some_and(BTreeSet::is_empty)
                {
                    self.by_wins.remove(&Reverse(previous));
                }
                id
            }
            None => {
                self.scores.insert(Box::from(player), wins);
                None
            }
        };
        self.by_wins
            .entry(Reverse(wins))
            .or_default()
            .insert(moved.unwrap_or_else(|| Box::from(player)));
    }

    fn higher_than(&self, wins: u64) -> u64 {
        self.by_wins
            .range(..Reverse(wins))
            .map(|(_, group)| group.len() as u64)
            .sum()
    }
}

/// Player ids come from clients, so maps keyed by them need a hash seeded per process;
/// foldhash is that (hashbrown's default) at a fraction of SipHash's cost per lookup.
type Hasher = foldhash::fast::RandomState;

#[derive(Debug, Default)]
struct State {
    players: HashMap<Box<str>, Player, Hasher>,
    /// Boards by window and window index (0 for all time).
    boards: HashMap<(Window, u32), Board, Hasher>,
    /// Players by when they last played, least recent first: who makes room for a new one.
    recency: BTreeMap<u64, Box<str>>,
    /// The next recency position.
    clock: u64,
}

#[derive(Debug, Default)]
struct Keys {
    records: HashMap<String, (Instant, Vec<u8>)>,
    /// Keys by when they expire, soonest first. Sorted rather than in insertion order: a
    /// 60-second in-flight claim made after a 24-hour answer must not wait behind it. A key
    /// whose expiry moved is found again under its new time; its old entry is skipped.
    expiry: BTreeSet<(Instant, String)>,
}

impl Keys {
    fn sweep(&mut self, now: Instant, max_keys: usize) {
        while let Some((expires, _)) = self.expiry.first() {
            let expired = *expires <= now;
            if !expired && self.records.len() < max_keys {
                break;
            }
            let Some((expires, key)) = self.expiry.pop_first() else {
                break;
            };
            if self
                .records
                .get(&key)
                .is_some_and(|(current, _)| *current == expires)
            {
                self.records.remove(&key);
            }
        }
    }

    /// The record under `key` while it lives.
    fn live(&self, key: &str, now: Instant) -> Option<&[u8]> {
        self.records
            .get(key)
            .filter(|(expires, _)| *expires > now)
            .map(|(_, record)| record.as_slice())
    }

    fn put(&mut self, key: &str, ttl: Duration, record: Vec<u8>, now: Instant) {
        let expires = now + ttl;
        self.records.insert(key.to_owned(), (expires, record));
        self.expiry.insert((expires, key.to_owned()));
    }
}

#[derive(Debug)]
pub struct MemoryStore {
    limits: MemoryLimits,
    state: Mutex<State>,
    keys: Mutex<Keys>,
}

/// Locks, recovering from a poisoned lock: every critical section leaves the state valid.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
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

    /// Applies a batch; returns how many players were evicted to make room for new ones.
    pub fn apply(&self, batch: &[GameRecord]) -> u64 {
        let mut evicted = 0;
        let mut state = lock(&self.state);
        let State {
            players,
            boards,
            recency,
            clock,
        } = &mut *state;
        for record in batch {
            let name = record.player.as_str();
            if !players.contains_key(name) {
                if players.len() >= self.limits.max_players
                    && let Some((_, oldest)) = recency.pop_first()
                {
                    // The least recently active player makes room: a full store must not
                    // lock new players out for good.
                    players.remove(&oldest);
                    for board in boards.values_mut() {
                        board.remove(&oldest);
                    }
                    evicted += 1;
                }
                players.insert(Box::from(name), Player::default());
            }
            let Some(player) = players.get_mut(name) else {
                continue;
            };
            *clock += 1;
            let previous = std::mem::replace(&mut player.active, *clock);
            let id = recency.remove(&previous).unwrap_or_else(|| Box::from(name));
            recency.insert(*clock, id);
            let first_round = player.stats.rounds == 0;
            player.stats.count(record.player_choice, record.winner);
            if player.games.len() >= self.limits.games_kept {
                player.games.pop_back();
            }
            player.games.push_front(Game {
                game_id: record.game_id,
                player_choice: record.player_choice,
                computer_choice: record.computer_choice,
                winner: record.winner,
            });
            let won = u64::from(record.winner == Winner::Player);
            for (window, index, slot) in [
                (Window::Day, record.day(), &mut player.day),
                (Window::Week, record.week(), &mut player.week),
            ] {
                // Same rule as the Redis script: a newer window starts from zero, an older one
                // (a record that waited out an outage past midnight) no longer counts.
                let entered = index > slot.0 || first_round;
                if entered {
                    *slot = (index, 0);
                } else if index < slot.0 {
                    continue;
                }
                slot.1 += won;
                // Only a win or a first appearance changes a board.
                if won == 1 || entered {
                    boards.entry((window, index)).or_default().set(name, slot.1);
                }
            }
            if won == 1 || first_round {
                boards
                    .entry((Window::All, 0))
                    .or_default()
                    .set(name, player.stats.wins);
            }
        }
        let day = Window::Day.current_index();
        let week = Window::Week.current_index();
        boards.retain(|(window, index), _| match window {
            Window::All => true,
            Window::Day => *index >= day,
            Window::Week => *index >= week,
        });
        evicted
    }

    /// Erases a player: stats, history and board places. Returns whether it was known.
    pub fn forget(&self, player: &str) -> bool {
        let mut state = lock(&self.state);
        let State {
            players,
            boards,
            recency,
            ..
        } = &mut *state;
        let Some(gone) = players.remove(player) else {
            return false;
        };
        recency.remove(&gone.active);
        for board in boards.values_mut() {
            board.remove(player);
        }
        true
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
                .map(|game| {
                    GameSummary::of(
                        game.game_id,
                        game.player_choice,
                        game.computer_choice,
                        game.winner,
                    )
                })
                .collect(),
        )
    }

    pub fn leaderboard(&self, window: Window, index: u32, limit: usize) -> Vec<Ranked> {
        let state = lock(&self.state);
        let Some(board) = state.boards.get(&(window, index)) else {
            return Vec::new();
        };
        let mut entries: Vec<Ranked> = Vec::with_capacity(limit.min(board.scores.len()));
        let listed = board
            .by_wins
            .iter()
            .flat_map(|(Reverse(wins), group)| group.iter().map(move |player| (*wins, player)));
        for (index, (wins, player)) in listed.take(limit).enumerate() {
            let rank = match entries.last() {
                Some(previous) if previous.wins == wins => previous.rank,
                _ => index as u64 + 1,
            };
            entries.push(Ranked {
                rank,
                player_id: player.to_string(),
                wins,
            });
        }
        entries
    }

    pub fn rank(&self, window: Window, index: u32, player: &str) -> Option<Ranked> {
        let state = lock(&self.state);
        let board = state.boards.get(&(window, index))?;
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
        if let Some(record) = keys.live(key, now) {
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
    #[cfg(test)]
    fn keys_held(&self) -> usize {
        lock(&self.keys).records.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Format;
    use crate::store::game_id::GameIds;
    use crate::store::model::PlayerId;

    fn store(max_players: usize) -> MemoryStore {
        MemoryStore::new(MemoryLimits {
            max_players,
            games_kept: 3,
            max_keys: 2,
        })
    }

    fn record(ids: &GameIds, player: &str, winner: Winner) -> GameRecord {
        GameRecord {
            game_id: ids.next().expect("an unleased node id"),
            player: PlayerId::from(player).unwrap(),
            player_choice: Choice::Rock,
            computer_choice: Choice::Paper,
            winner,
        }
    }

    #[test]
    fn a_new_player_past_the_bound_evicts_the_least_recently_active() {
        let ids = GameIds::new(0);
        let store = store(2);
        assert_eq!(store.apply(&[record(&ids, "a", Winner::Player)]), 0);
        assert_eq!(store.apply(&[record(&ids, "b", Winner::Player)]), 0);
        // "a" plays again: "b" is now the least recently active.
        assert_eq!(store.apply(&[record(&ids, "a", Winner::Tie)]), 0);
        assert_eq!(store.apply(&[record(&ids, "c", Winner::Player)]), 1);
        assert_eq!(store.stats("a").unwrap().rounds, 2);
        assert_eq!(store.stats("c").unwrap().rounds, 1);
        assert!(store.stats("b").is_none(), "evicted");
        assert!(
            store.rank(Window::All, 0, "b").is_none(),
            "off the board too"
        );
        let board = store.leaderboard(Window::All, 0, 10);
        assert_eq!(board.len(), 2);
        // New players keep coming in: never locked out.
        for player in ["d", "e", "f"] {
            assert_eq!(store.apply(&[record(&ids, player, Winner::Player)]), 1);
            assert_eq!(store.stats(player).unwrap().rounds, 1);
        }
        let state = lock(&store.state);
        assert_eq!(state.players.len(), 2);
        assert_eq!(state.recency.len(), 2);
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

    proptest::proptest! {
        /// Whatever the games and however they are batched, the all-time board lists every
        /// player by wins (ties by id) with competition ranks, and `rank` agrees with it.
        #[test]
        fn boards_follow_competition_ranking(
            games in proptest::collection::vec((0usize..6, 0usize..3), 1..120),
            batch in 1usize..20,
        ) {
            let ids = GameIds::new(0);
            let store = store(100);
            let winners = [Winner::Player, Winner::Computer, Winner::Tie];
            let records: Vec<GameRecord> = games
                .iter()
                .map(|&(player, winner)| record(&ids, &format!("p{player}"), winners[winner]))
                .collect();
            for chunk in records.chunks(batch) {
                store.apply(chunk);
            }
            let mut wins: HashMap<String, u64> = HashMap::new();
            for &(player, winner) in &games {
                *wins.entry(format!("p{player}")).or_default() += u64::from(winner == 0);
            }
            let mut expected: Vec<(String, u64)> = wins.into_iter().collect();
            expected.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let board = store.leaderboard(Window::All, 0, 100);
            proptest::prop_assert_eq!(board.len(), expected.len());
            for (entry, (player, wins)) in board.iter().zip(&expected) {
                let higher = expected.iter().filter(|(_, w)| w > wins).count() as u64;
                proptest::prop_assert_eq!(&entry.player_id, player);
                proptest::prop_assert_eq!(entry.wins, *wins);
                proptest::prop_assert_eq!(entry.rank, higher + 1);
                let ranked = store.rank(Window::All, 0, player).unwrap();
                proptest::prop_assert_eq!(ranked.rank, higher + 1);
            }
            let rounds: u64 = expected
                .iter()
                .map(|(player, _)| store.stats(player).unwrap().rounds)
                .sum();
            proptest::prop_assert_eq!(rounds, games.len() as u64);
        }
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

    #[tokio::test(start_paused = true)]
    async fn an_in_flight_claim_lapses_on_its_own_lifetime_behind_longer_lived_keys() {
        let store = store(10);
        let fp = idempotency::fingerprint(b"x");
        let answer = StoredAnswer {
            status: 200,
            format: Format::Json,
            body: b"{}".to_vec(),
        };
        // A key answered (kept 24 h), then a claim that is never completed (its request died).
        assert_eq!(store.begin("done", &fp), Begin::Started);
        store.complete("done", &fp, &answer);
        assert_eq!(store.begin("stuck", &fp), Begin::Started);
        tokio::time::advance(idempotency::IN_FLIGHT_TTL).await;
        assert_eq!(
            store.begin("stuck", &fp),
            Begin::Started,
            "the claim lapsed though a longer-lived key came before it"
        );
        assert_eq!(store.begin("done", &fp), Begin::Replay(answer));
    }
}

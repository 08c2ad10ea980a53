//! Matchmaking: pairs queued players of the same mode whose ratings are close, with a window
//! that widens the longer they wait, and ends every ticket explicitly (matched, a bot after
//! `bot_at_ms`, or expired at `expires_ms`).
//!
//! Behind the [`Matchmaker`] trait so the next step (matchmaking shared by instances through
//! Redis) replaces the implementation, not the hub. This one is one instance's memory: per mode
//! an ordered map by rating, so a newcomer finds its nearest acceptable opponent in O(log n),
//! and a sweep once a second widens windows and ends tickets.

use std::collections::{BTreeMap, HashMap};

use game::matches::Mode;
use protocol::{MoveMode, Opponent};

use crate::accounts::AccountId;

/// A player waiting for a match.
#[derive(Clone, Debug, PartialEq)]
pub struct Ticket {
    pub id: String,
    pub account: AccountId,
    pub mode: Mode,
    pub opponent: Opponent,
    pub moves: MoveMode,
    pub rating: f64,
    /// The whole Glicko-2 state behind `rating` (a clustered match records from it).
    pub standing: game::rating::Rating,
    pub queued_ms: u64,
    pub expires_ms: u64,
    /// With [`Opponent::Any`]: when a bot takes the other seat if no person was found.
    pub bot_at_ms: Option<u64>,
}

/// How a ticket left the queue.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// Two tickets, to be seated against each other (the earlier one in seat A).
    Matched(Ticket, Ticket),
    /// Nobody was found by `bot_at_ms`: play a bot.
    BotFallback(Ticket),
    /// Nobody was found in the ticket's lifetime.
    Expired(Ticket),
}

/// The queue is at its bound.
#[derive(Debug, PartialEq, Eq)]
pub struct QueueFull;

/// How rating windows widen.
#[derive(Clone, Copy, Debug)]
pub struct Windows {
    /// Rating difference accepted at once.
    pub initial: f64,
    /// Added per second waited.
    pub per_second: f64,
    /// Never wider than this.
    pub max: f64,
}

impl Default for Windows {
    fn default() -> Self {
        Windows {
            initial: 100.0,
            per_second: 50.0,
            max: 1000.0,
        }
    }
}

impl Windows {
    fn at(&self, ticket: &Ticket, now_ms: u64) -> f64 {
        let waited = now_ms.saturating_sub(ticket.queued_ms) as f64 / 1000.0;
        (self.initial + self.per_second * waited).min(self.max)
    }
}

/// Finding opponents for queued players.
pub trait Matchmaker: Send {
    /// Queues `ticket`, and matches it at once if an acceptable opponent is waiting.
    fn enqueue(&mut self, ticket: Ticket, now_ms: u64) -> Result<Option<Outcome>, QueueFull>;
    /// Takes the ticket out of the queue, if it is still there.
    fn cancel(&mut self, ticket_id: &str) -> Option<Ticket>;
    /// Widens windows and ends due tickets: every outcome reached by `now_ms`.
    fn poll(&mut self, now_ms: u64) -> Vec<Outcome>;
    /// When [`Self::poll`] next has something to do.
    fn next_deadline(&self) -> Option<u64>;
    /// Tickets waiting, per mode (best of 1, 3, 5).
    fn depth(&self) -> [usize; 3];
    /// Takes every ticket out (draining).
    fn drain(&mut self) -> Vec<Ticket>;
}

/// How often waiting tickets are looked at again as their windows widen.
const SWEEP_MS: u64 = 1000;

fn mode_index(mode: Mode) -> usize {
    match mode {
        Mode::BestOf1 => 0,
        Mode::BestOf3 => 1,
        Mode::BestOf5 => 2,
    }
}

/// A rating as an ordered key (hundredths; ratings are far inside i64's range).
fn rating_key(rating: f64) -> i64 {
    (rating * 100.0).round() as i64
}

/// One instance's queue.
pub struct LocalMatchmaker {
    windows: Windows,
    capacity: usize,
    tickets: HashMap<String, Ticket>,
    /// Per mode: (rating key, arrival number) to ticket id, for tickets that take a person.
    by_rating: [BTreeMap<(i64, u64), String>; 3],
    /// Ticket id to its key in `by_rating`.
    keys: HashMap<String, (i64, u64)>,
    arrivals: u64,
    last_sweep_ms: u64,
}

impl LocalMatchmaker {
    pub fn new(windows: Windows, capacity: usize) -> Self {
        LocalMatchmaker {
            windows,
            capacity,
            tickets: HashMap::new(),
            by_rating: Default::default(),
            keys: HashMap::new(),
            arrivals: 0,
            last_sweep_ms: 0,
        }
    }

    fn remove(&mut self, ticket_id: &str) -> Option<Ticket> {
        let ticket = self.tickets.remove(ticket_id)?;
        if let Some(key) = self.keys.remove(ticket_id) {
            self.by_rating[mode_index(ticket.mode)].remove(&key);
        }
        Some(ticket)
    }

    /// The closest acceptable opponent for `ticket` among those waiting (not itself, not the
    /// same account).
    fn partner(&self, ticket: &Ticket, now_ms: u64) -> Option<String> {
        let window = self.windows.at(ticket, now_ms);
        let board = &self.by_rating[mode_index(ticket.mode)];
        let low = rating_key(ticket.rating - self.windows.max);
        let high = rating_key(ticket.rating + self.windows.max);
        let mut best: Option<(f64, &String)> = None;
        for ((_, _), id) in board.range((low, 0)..=(high, u64::MAX)) {
            let Some(other) = self.tickets.get(id) else {
                continue;
            };
            if other.id == ticket.id || other.account == ticket.account {
                continue;
            }
            let gap = (other.rating - ticket.rating).abs();
            // Either side's window suffices: a long wait widens what a player accepts.
            if gap > window.max(self.windows.at(other, now_ms)) {
                continue;
            }
            if best.is_none_or(|(best_gap, _)| gap < best_gap) {
                best = Some((gap, id));
            }
        }
        best.map(|(_, id)| id.clone())
    }

    fn pair(&mut self, first: &str, second: &str) -> Option<Outcome> {
        let first = self.remove(first)?;
        let second = self.remove(second)?;
        // The player who waited longer sits in seat A.
        Some(if first.queued_ms <= second.queued_ms {
            Outcome::Matched(first, second)
        } else {
            Outcome::Matched(second, first)
        })
    }
}

impl Matchmaker for LocalMatchmaker {
    fn enqueue(&mut self, ticket: Ticket, now_ms: u64) -> Result<Option<Outcome>, QueueFull> {
        if self.tickets.len() >= self.capacity {
            return Err(QueueFull);
        }
        if let Some(partner) = self.partner(&ticket, now_ms) {
            let id = ticket.id.clone();
            self.tickets.insert(id.clone(), ticket);
            return Ok(self.pair(&partner, &id));
        }
        self.arrivals += 1;
        let key = (rating_key(ticket.rating), self.arrivals);
        self.by_rating[mode_index(ticket.mode)].insert(key, ticket.id.clone());
        self.keys.insert(ticket.id.clone(), key);
        self.tickets.insert(ticket.id.clone(), ticket);
        Ok(None)
    }

    fn cancel(&mut self, ticket_id: &str) -> Option<Ticket> {
        self.remove(ticket_id)
    }

    fn poll(&mut self, now_ms: u64) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        // Due tickets first: a ticket past its lifetime is not matched late.
        let due: Vec<String> = self
            .tickets
            .values()
            .filter(|t| t.expires_ms <= now_ms || t.bot_at_ms.is_some_and(|at| at <= now_ms))
            .map(|t| t.id.clone())
            .collect();
        for id in due {
            if let Some(ticket) = self.remove(&id) {
                outcomes.push(if ticket.bot_at_ms.is_some_and(|at| at <= now_ms) {
                    Outcome::BotFallback(ticket)
                } else {
                    Outcome::Expired(ticket)
                });
            }
        }
        if now_ms >= self.last_sweep_ms + SWEEP_MS || !outcomes.is_empty() {
            self.last_sweep_ms = now_ms;
            // Longest waiting first, so windows favour those who waited.
            let mut waiting: Vec<(u64, String)> = self
                .tickets
                .values()
                .map(|t| (t.queued_ms, t.id.clone()))
                .collect();
            waiting.sort_unstable();
            for (_, id) in waiting {
                let Some(ticket) = self.tickets.get(&id) else {
                    continue;
                };
                if let Some(partner) = self.partner(ticket, now_ms)
                    && let Some(outcome) = self.pair(&id, &partner)
                {
                    outcomes.push(outcome);
                }
            }
        }
        outcomes
    }

    fn next_deadline(&self) -> Option<u64> {
        let due = self
            .tickets
            .values()
            .map(|t| t.bot_at_ms.map_or(t.expires_ms, |at| at.min(t.expires_ms)))
            .min()?;
        Some(due.min(self.last_sweep_ms + SWEEP_MS))
    }

    fn depth(&self) -> [usize; 3] {
        let mut depth = [0; 3];
        for ticket in self.tickets.values() {
            depth[mode_index(ticket.mode)] += 1;
        }
        depth
    }

    fn drain(&mut self) -> Vec<Ticket> {
        self.by_rating = Default::default();
        self.keys.clear();
        self.tickets.drain().map(|(_, ticket)| ticket).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(id: &str, rating: f64, queued_ms: u64) -> Ticket {
        Ticket {
            id: id.to_owned(),
            account: AccountId::from(id).unwrap(),
            mode: Mode::BestOf3,
            opponent: Opponent::Human,
            moves: MoveMode::Sealed,
            rating,
            standing: game::rating::Rating {
                rating,
                ..game::rating::Rating::default()
            },
            queued_ms,
            expires_ms: queued_ms + 30_000,
            bot_at_ms: None,
        }
    }

    fn matched_ids(outcome: &Outcome) -> (&str, &str) {
        match outcome {
            Outcome::Matched(a, b) => (&a.id, &b.id),
            other => panic!("not a match: {other:?}"),
        }
    }

    #[test]
    fn close_ratings_match_at_once_and_the_earlier_sits_in_seat_a() {
        let mut queue = LocalMatchmaker::new(Windows::default(), 100);
        assert_eq!(queue.enqueue(ticket("a", 1500.0, 0), 0), Ok(None));
        let outcome = queue.enqueue(ticket("b", 1550.0, 10), 10).unwrap().unwrap();
        assert_eq!(matched_ids(&outcome), ("a", "b"));
        assert_eq!(queue.depth(), [0, 0, 0]);
    }

    #[test]
    fn the_nearest_rating_is_preferred_and_modes_never_mix() {
        let mut queue = LocalMatchmaker::new(Windows::default(), 100);
        queue.enqueue(ticket("far", 1590.0, 0), 0).unwrap();
        queue.enqueue(ticket("near", 1510.0, 0), 0).unwrap_or(None);
        let mut other_mode = ticket("bo5", 1500.0, 0);
        other_mode.mode = Mode::BestOf5;
        // "far" and "near" are 80 apart: they matched each other.
        assert_eq!(queue.depth(), [0, 0, 0]);
        assert_eq!(queue.enqueue(other_mode, 0), Ok(None));
        queue.enqueue(ticket("x", 1000.0, 0), 0).unwrap();
        assert_eq!(queue.depth(), [0, 1, 1]);
    }

    #[test]
    fn the_window_widens_while_waiting() {
        let mut queue = LocalMatchmaker::new(Windows::default(), 100);
        queue.enqueue(ticket("low", 1200.0, 0), 0).unwrap();
        assert_eq!(queue.enqueue(ticket("high", 1500.0, 1), 1), Ok(None));
        // 300 apart: needs 100 + 50 * 4 s.
        assert!(queue.poll(3_000).is_empty());
        let outcomes = queue.poll(4_000);
        assert_eq!(outcomes.len(), 1);
        assert_eq!(matched_ids(&outcomes[0]), ("low", "high"));
    }

    #[test]
    fn every_ticket_ends_explicitly() {
        let mut queue = LocalMatchmaker::new(Windows::default(), 100);
        queue.enqueue(ticket("alone", 1500.0, 0), 0).unwrap();
        let mut any = ticket("any", 3000.0, 0);
        any.opponent = Opponent::Any;
        any.bot_at_ms = Some(5_000);
        queue.enqueue(any, 0).unwrap();
        assert_eq!(queue.next_deadline(), Some(1_000));
        let outcomes = queue.poll(5_000);
        assert!(matches!(&outcomes[..], [Outcome::BotFallback(t)] if t.id == "any"));
        let outcomes = queue.poll(30_000);
        assert!(matches!(&outcomes[..], [Outcome::Expired(t)] if t.id == "alone"));
        assert_eq!(queue.next_deadline(), None);
    }

    #[test]
    fn cancel_bound_and_one_account_never_meets_itself() {
        let mut queue = LocalMatchmaker::new(Windows::default(), 2);
        queue.enqueue(ticket("a", 1500.0, 0), 0).unwrap();
        let mut again = ticket("a2", 1500.0, 0);
        again.account = AccountId::from("a").unwrap();
        assert_eq!(queue.enqueue(again, 0), Ok(None));
        assert_eq!(queue.enqueue(ticket("c", 0.0, 0), 0), Err(QueueFull));
        assert_eq!(queue.cancel("a").map(|t| t.id), Some("a".to_owned()));
        assert_eq!(queue.cancel("a"), None);
        assert_eq!(queue.drain().len(), 1);
    }
}

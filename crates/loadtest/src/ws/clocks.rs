//! What the two players of one match share when both are this run's: the send times of the
//! current round (for move-to-result latency, see `player.rs`) and whether the match's result
//! has been counted, so a match is counted once however many of its players see it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};

use game::Seat;
use game::matches::PerSeat;
use tokio::time::Instant;

/// The send times of a match's current round, one per seat.
#[derive(Debug, Default)]
pub struct RoundTimes {
    round: u32,
    sent: PerSeat<Option<Instant>>,
    /// A player of the match has counted its result.
    pub result_counted: bool,
}

impl RoundTimes {
    pub fn record(&mut self, round: u32, seat: Seat, at: Instant) {
        if round != self.round {
            self.round = round;
            self.sent = PerSeat::default();
        }
        self.sent[seat] = Some(at);
    }

    /// When `round`'s later move was sent, and whether both seats' times are known.
    pub fn second_move(&self, round: u32, own: Instant) -> (Instant, bool) {
        if round != self.round {
            return (own, false);
        }
        match (self.sent.a, self.sent.b) {
            (Some(a), Some(b)) => (a.max(b), true),
            _ => (own, false),
        }
    }
}

/// The round times of matches whose second player has not yet seen `matched`. The first
/// player keeps the only strong reference; the second takes it out, so an entry lives from one
/// `matched` to the other, and entries whose opponent is not this process's die with their
/// match and are swept. Bounded by the number of players.
#[derive(Debug, Default)]
pub struct MatchClocks {
    waiting: HashMap<String, Weak<RefCell<RoundTimes>>>,
    players: usize,
}

impl MatchClocks {
    pub fn new(players: usize) -> Self {
        MatchClocks {
            waiting: HashMap::new(),
            players,
        }
    }

    /// The match's shared notes, and whether this is the first of its players to join.
    pub fn join(&mut self, match_id: &str) -> (Rc<RefCell<RoundTimes>>, bool) {
        if let Some(times) = self
            .waiting
            .remove(match_id)
            .and_then(|weak| weak.upgrade())
        {
            return (times, false);
        }
        if self.waiting.len() >= self.players {
            self.waiting.retain(|_, weak| weak.strong_count() > 0);
        }
        let times = Rc::new(RefCell::new(RoundTimes::default()));
        self.waiting
            .insert(match_id.to_owned(), Rc::downgrade(&times));
        (times, true)
    }

    #[cfg(test)]
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

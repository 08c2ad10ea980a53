//! What a match is set up with before its first round: who sits where and how they move, how
//! many round wins decide it, and how long a round waits. Recorded in the log's first event, so
//! a transcript carries everything needed to check it.

use std::ops::{Index, IndexMut};

use serde::{Deserialize, Serialize};

use crate::Seat;

/// The longest a match id may be. It is hashed into every commitment and stored in every
/// log's first event, so it is bounded even though the server, not a peer, chooses it.
pub const MAX_MATCH_ID_BYTES: usize = 128;
/// The longest a round may wait for its moves. The round timeout is what guarantees that a
/// match with absent players ends; an hour is far past any reasonable one, so a value above it
/// is a setting in the wrong unit.
pub const MAX_ROUND_TIMEOUT_MS: u64 = 60 * 60 * 1000;

/// One value for each seat. Serialized as `{"a": .., "b": ..}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PerSeat<T> {
    pub a: T,
    pub b: T,
}

impl<T> PerSeat<T> {
    pub const fn new(a: T, b: T) -> Self {
        PerSeat { a, b }
    }

    pub fn map<U>(self, mut f: impl FnMut(Seat, T) -> U) -> PerSeat<U> {
        PerSeat {
            a: f(Seat::A, self.a),
            b: f(Seat::B, self.b),
        }
    }
}

impl<T> Index<Seat> for PerSeat<T> {
    type Output = T;
    fn index(&self, seat: Seat) -> &T {
        match seat {
            Seat::A => &self.a,
            Seat::B => &self.b,
        }
    }
}

impl<T> IndexMut<Seat> for PerSeat<T> {
    fn index_mut(&mut self, seat: Seat) -> &mut T {
        match seat {
            Seat::A => &mut self.a,
            Seat::B => &mut self.b,
        }
    }
}

/// How many round wins decide the match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mode {
    #[serde(rename = "best_of_1")]
    BestOf1,
    #[serde(rename = "best_of_3")]
    BestOf3,
    #[serde(rename = "best_of_5")]
    BestOf5,
}

impl Mode {
    /// Round wins that decide the match: once one side has them, the other cannot catch up.
    pub const fn wins_needed(self) -> u32 {
        match self {
            Mode::BestOf1 => 1,
            Mode::BestOf3 => 2,
            Mode::BestOf5 => 3,
        }
    }
}

/// How a seat's moves reach the match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeatKind {
    /// The player sends the move itself; the server keeps it sealed until the reveal. The
    /// player trusts the server not to leak it.
    Sealed,
    /// The player first sends a commitment, then opens it with the move and salt; the server
    /// never learns the move before the player chooses to reveal it.
    CommitReveal,
    /// The server plays for the seat. Its move and salt are fixed before the round opens, and
    /// the round's opening event publishes the commitment, so the human can check afterwards
    /// that the bot did not move after seeing theirs.
    Bot,
}

/// The settings of one match.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MatchConfig {
    /// Bound into every commitment, so a commitment from one match cannot be replayed in another.
    pub match_id: String,
    pub mode: Mode,
    /// How long each round waits for moves, from when it opens.
    pub round_timeout_ms: u64,
    pub seats: PerSeat<SeatKind>,
}

/// A setting of [`MatchConfig`] outside what the match can work with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("match_id must be 1 to {MAX_MATCH_ID_BYTES} bytes")]
    MatchIdLength,
    #[error("round_timeout_ms must be 1 to {MAX_ROUND_TIMEOUT_MS}")]
    RoundTimeout,
}

impl MatchConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.match_id.is_empty() || self.match_id.len() > MAX_MATCH_ID_BYTES {
            return Err(ConfigError::MatchIdLength);
        }
        // A zero timeout would open rounds already past their deadline.
        if !(1..=MAX_ROUND_TIMEOUT_MS).contains(&self.round_timeout_ms) {
            return Err(ConfigError::RoundTimeout);
        }
        Ok(())
    }

    /// The seats the server plays, in seat order.
    pub fn bot_seats(&self) -> impl Iterator<Item = Seat> + '_ {
        Seat::BOTH
            .into_iter()
            .filter(|&seat| self.seats[seat] == SeatKind::Bot)
    }
}

//! The entries of a match's log.
//!
//! The log is the match: [`super::Match::replay`] rebuilds the state from it, and a transcript
//! given to players is the same log with the server-only entries taken out ([`public`]). Every
//! entry is public except [`EventKind::MoveSealed`], which carries a move the server holds
//! before its round is revealed. A move or salt appears in a public entry only in
//! [`EventKind::RoundRevealed`], after both seats have moved or the deadline has passed.

use serde::{Deserialize, Serialize};

use super::config::{MatchConfig, PerSeat};
use crate::fairness::{Commitment, Salt};
use crate::{Choice, Seat, Winner, judge};

/// One entry of a match's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the match's log, from 0 and without gaps. The public view keeps the numbers,
    /// so it has gaps where server-only entries were; each such gap sits next to a public entry
    /// (`Locked` or `RoundOpened`) that already says a move arrived, so it gives nothing away.
    pub seq: u64,
    /// When the match applied the command that produced the entry, in Unix milliseconds. Never
    /// decreases along a log, even if the callers' clocks do.
    pub at_ms: u64,
    pub kind: EventKind,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// Always the first entry: the settings the rest of the log is checked against.
    MatchStarted {
        config: MatchConfig,
    },
    /// Round `round` takes moves until `deadline_ms` (exclusive). A bot seat's commitment is
    /// published here, before the human moves.
    RoundOpened {
        round: u32,
        deadline_ms: u64,
        bot_commitments: PerSeat<Option<Commitment>>,
    },
    /// Server-only: the move a seat made, held until the round is revealed. Written for a
    /// sealed lock, an accepted reveal and a bot's move, so replaying the log can rebuild a
    /// round in progress. `salt` is the committed salt for commit-reveal and bot seats.
    MoveSealed {
        seat: Seat,
        round: u32,
        choice: Choice,
        salt: Option<Salt>,
    },
    /// The seat's move for the round is final and held by the server: a sealed lock, or a
    /// commit-reveal seat's verified reveal. All the opponent learns is that it happened.
    Locked {
        seat: Seat,
        round: u32,
    },
    /// A commit-reveal seat committed; the commitment is published so anyone can check the
    /// reveal against it.
    Committed {
        seat: Seat,
        round: u32,
        commitment: Commitment,
    },
    /// The round's moves, judged. A `None` move is a seat that did not move in time (or never
    /// revealed); `salts` open the commitments of the seats that had one. `score` is the match
    /// score after this round.
    RoundRevealed {
        round: u32,
        moves: PerSeat<Option<Choice>>,
        salts: PerSeat<Option<Salt>>,
        winner: RoundWinner,
        score: PerSeat<u32>,
    },
    /// Always the last entry.
    MatchEnded {
        outcome: MatchOutcome,
        reason: EndReason,
        score: PerSeat<u32>,
    },
    /// The seat's connection dropped; its opponent is told so it knows why nothing happens.
    OpponentDisconnected {
        seat: Seat,
    },
    OpponentReconnected {
        seat: Seat,
    },
}

impl EventKind {
    /// Whether players and spectators may see the entry.
    pub const fn is_public(&self) -> bool {
        !matches!(self, EventKind::MoveSealed { .. })
    }
}

/// The transcript players and spectators may see: the log without its server-only entries.
pub fn public(log: &[Event]) -> Vec<Event> {
    log.iter()
        .filter(|event| event.kind.is_public())
        .cloned()
        .collect()
}

/// Who took a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoundWinner {
    A,
    B,
    Tie,
    /// Neither seat moved in time: nobody scores, and [`MAX_VOID_ROUNDS`] of these in a row end
    /// the match as no contest.
    BothForfeit,
}

impl RoundWinner {
    /// The seat that scores a point, if any.
    pub const fn scorer(self) -> Option<Seat> {
        match self {
            RoundWinner::A => Some(Seat::A),
            RoundWinner::B => Some(Seat::B),
            RoundWinner::Tie | RoundWinner::BothForfeit => None,
        }
    }
}

/// Consecutive rounds in which neither seat moved that end the match as no contest. Without a
/// limit, a match whose two players both vanished would tick on for ever.
pub const MAX_VOID_ROUNDS: u32 = 3;
/// The most rounds a match may have; after that it ends as no contest. Ties do not score, so
/// two players tying on purpose could otherwise grow the log without end.
pub const MAX_ROUNDS: u32 = 100;

/// Judges a round from the moves that arrived in time: a seat without a move forfeits the round
/// to the other, and if neither moved it is void.
pub fn round_winner(moves: PerSeat<Option<Choice>>) -> RoundWinner {
    match (moves.a, moves.b) {
        (Some(a), Some(b)) => match judge(a, b).winner {
            Winner::Player => RoundWinner::A,
            Winner::Computer => RoundWinner::B,
            Winner::Tie => RoundWinner::Tie,
        },
        (Some(_), None) => RoundWinner::A,
        (None, Some(_)) => RoundWinner::B,
        (None, None) => RoundWinner::BothForfeit,
    }
}

/// How a match came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchOutcome {
    Won(Seat),
    NoContest,
}

/// Why a match ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// A seat reached the round wins the mode needs.
    Decided,
    /// The seat left; the other wins.
    Left(Seat),
    /// The seat stayed disconnected past its grace period; the other wins.
    GraceExpired(Seat),
    /// [`MAX_VOID_ROUNDS`] rounds in a row with no move from either seat.
    Abandoned,
    /// [`MAX_ROUNDS`] rounds were played without a decision.
    RoundLimit,
    /// The server ended the match without a result, such as when draining for shutdown.
    Drained,
}

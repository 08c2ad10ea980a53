//! What the runtime asks of a match, and why the match may refuse.
//!
//! Commands are inputs, not log entries: a command the match accepts becomes zero or more
//! [`super::Event`]s, and a refused one changes nothing. Moves name the round they are for, so a
//! move sent just as its round closed is refused instead of landing in the next round.

use super::config::{ConfigError, SeatKind};
use crate::fairness::{Commitment, Salt};
use crate::{Choice, Seat};

/// An input to [`super::Match::apply`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// A sealed seat's move.
    Lock {
        seat: Seat,
        round: u32,
        choice: Choice,
    },
    /// A commit-reveal seat's commitment, from [`crate::fairness::commitment`].
    Commit {
        seat: Seat,
        round: u32,
        commitment: Commitment,
    },
    /// A commit-reveal seat opening its commitment.
    Reveal {
        seat: Seat,
        round: u32,
        choice: Choice,
        salt: Salt,
    },
    /// The server's move for a bot seat, with a fresh random salt, while the round waits to
    /// open ([`super::Match::bot_move_needed`]).
    BotMove {
        seat: Seat,
        round: u32,
        choice: Choice,
        salt: Salt,
    },
    /// Time has passed: closes the round if its deadline is due. The runtime sends one at
    /// [`super::Match::next_deadline`]; an early or repeated tick does nothing.
    Tick,
    /// The seat left the match; it forfeits the match.
    Leave {
        seat: Seat,
    },
    /// The seat's connection dropped. Only announced: the runtime decides when the grace
    /// period is over and says so with [`Command::GraceExpired`].
    Disconnect {
        seat: Seat,
    },
    Reconnect {
        seat: Seat,
    },
    /// The disconnected seat did not come back in time; it forfeits the match.
    GraceExpired {
        seat: Seat,
    },
    /// End the match without a result (the server is draining).
    NoContest,
}

/// Why a command was refused. A refused command leaves the match exactly as it was.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MatchError {
    #[error("invalid match configuration: {0}")]
    InvalidConfig(#[from] ConfigError),
    #[error("the match has ended")]
    Ended,
    #[error("the move is for round {got} but the match is in round {expected}")]
    WrongRound { expected: u32, got: u32 },
    #[error("the round is not open for moves yet")]
    RoundNotOpen,
    #[error("the round is already open")]
    RoundAlreadyOpen,
    #[error("the round closed at {deadline_ms}")]
    DeadlinePassed { deadline_ms: u64 },
    #[error("seat {seat:?} plays {kind:?} and cannot send that")]
    WrongSeatKind { seat: Seat, kind: SeatKind },
    #[error("seat {seat:?} has already moved this round")]
    AlreadyMoved { seat: Seat },
    #[error("seat {seat:?} has nothing committed to reveal")]
    NotCommitted { seat: Seat },
    #[error("seat {seat:?} revealed a move that does not match its commitment")]
    CommitmentMismatch { seat: Seat },
    #[error("seat {seat:?} is connected, so its grace period cannot have expired")]
    SeatConnected { seat: Seat },
}

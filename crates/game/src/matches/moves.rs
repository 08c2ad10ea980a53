//! The four ways a move reaches a round: a sealed lock, a commitment and its reveal, and a
//! bot's move. Each is checked in full (seat kind, round, phase, deadline, what the seat already
//! did) before anything changes, which is what lets [`Match::apply`] promise that a refused
//! command leaves no trace.

use super::command::MatchError;
use super::config::SeatKind;
use super::event::{Event, EventKind};
use super::round::Slot;
use super::{Match, Phase};
use crate::fairness::{Commitment, Salt, verify_commitment};
use crate::{Choice, Seat};

impl Match {
    pub(super) fn lock(
        &mut self,
        events: &mut Vec<Event>,
        now: u64,
        seat: Seat,
        round: u32,
        choice: Choice,
    ) -> Result<(), MatchError> {
        self.check_move(seat, round, now, SeatKind::Sealed)?;
        self.require_empty(seat)?;
        self.seal(events, now, seat, choice, None);
        self.emit(events, now, EventKind::Locked { seat, round });
        self.reveal_if_complete(events, now);
        Ok(())
    }

    pub(super) fn commit(
        &mut self,
        events: &mut Vec<Event>,
        now: u64,
        seat: Seat,
        round: u32,
        commitment: Commitment,
    ) -> Result<(), MatchError> {
        self.check_move(seat, round, now, SeatKind::CommitReveal)?;
        self.require_empty(seat)?;
        self.slots[seat] = Slot::Committed(commitment);
        let kind = EventKind::Committed {
            seat,
            round,
            commitment,
        };
        self.emit(events, now, kind);
        Ok(())
    }

    pub(super) fn reveal_move(
        &mut self,
        events: &mut Vec<Event>,
        now: u64,
        seat: Seat,
        round: u32,
        choice: Choice,
        salt: Salt,
    ) -> Result<(), MatchError> {
        self.check_move(seat, round, now, SeatKind::CommitReveal)?;
        let committed = match self.slots[seat] {
            Slot::Committed(committed) => committed,
            Slot::Empty => return Err(MatchError::NotCommitted { seat }),
            Slot::Moved { .. } => return Err(MatchError::AlreadyMoved { seat }),
        };
        // A reveal that does not open the commitment is refused, not counted: the seat may
        // still send the right one before the deadline, and otherwise has no move.
        let id = &self.config.match_id;
        if !verify_commitment(&committed, id, round, seat, choice, &salt) {
            return Err(MatchError::CommitmentMismatch { seat });
        }
        self.seal(events, now, seat, choice, Some(salt));
        self.emit(events, now, EventKind::Locked { seat, round });
        self.reveal_if_complete(events, now);
        Ok(())
    }

    pub(super) fn bot_move(
        &mut self,
        events: &mut Vec<Event>,
        now: u64,
        seat: Seat,
        round: u32,
        choice: Choice,
        salt: Salt,
    ) -> Result<(), MatchError> {
        self.check_kind(seat, SeatKind::Bot)?;
        self.check_round(round)?;
        if self.phase != Phase::AwaitingBots {
            return Err(MatchError::RoundAlreadyOpen);
        }
        self.require_empty(seat)?;
        self.seal(events, now, seat, choice, Some(salt));
        if self.bot_move_needed().is_none() {
            self.open_round(events, now);
        }
        Ok(())
    }

    fn check_kind(&self, seat: Seat, expected: SeatKind) -> Result<(), MatchError> {
        let kind = self.config.seats[seat];
        if kind != expected {
            return Err(MatchError::WrongSeatKind { seat, kind });
        }
        Ok(())
    }

    fn check_round(&self, round: u32) -> Result<(), MatchError> {
        if round != self.round {
            return Err(MatchError::WrongRound {
                expected: self.round,
                got: round,
            });
        }
        Ok(())
    }

    /// A human seat's move is accepted only for the open round, before its deadline.
    fn check_move(
        &self,
        seat: Seat,
        round: u32,
        now: u64,
        expected: SeatKind,
    ) -> Result<(), MatchError> {
        self.check_kind(seat, expected)?;
        self.check_round(round)?;
        match self.phase {
            Phase::Open { deadline_ms } if now >= deadline_ms => {
                Err(MatchError::DeadlinePassed { deadline_ms })
            }
            Phase::Open { .. } => Ok(()),
            Phase::AwaitingBots | Phase::Ended => Err(MatchError::RoundNotOpen),
        }
    }

    fn require_empty(&self, seat: Seat) -> Result<(), MatchError> {
        match self.slots[seat] {
            Slot::Empty => Ok(()),
            Slot::Committed(_) | Slot::Moved { .. } => Err(MatchError::AlreadyMoved { seat }),
        }
    }

    fn seal(
        &mut self,
        events: &mut Vec<Event>,
        now: u64,
        seat: Seat,
        choice: Choice,
        salt: Option<Salt>,
    ) {
        self.slots[seat] = Slot::Moved { choice, salt };
        let round = self.round;
        let kind = EventKind::MoveSealed {
            seat,
            round,
            choice,
            salt,
        };
        self.emit(events, now, kind);
    }
}

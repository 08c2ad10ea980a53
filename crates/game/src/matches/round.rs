//! A round's life after the moves: opening it (with the bot seats' commitments), revealing
//! and judging it, and what follows: the next round, or the end of the match. Also the one
//! place events are numbered and timed.

use super::config::{PerSeat, SeatKind};
use super::event::{
    EndReason, Event, EventKind, MAX_ROUNDS, MAX_VOID_ROUNDS, MatchOutcome, RoundWinner,
    round_winner,
};
use super::{Match, Phase};
use crate::fairness::{Commitment, Salt, commitment};
use crate::{Choice, Seat};

/// What a seat has done in the current round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Slot {
    Empty,
    Committed(Commitment),
    /// The move is final; `salt` opens a commitment (commit-reveal and bot seats).
    Moved {
        choice: Choice,
        salt: Option<Salt>,
    },
}

impl Slot {
    fn choice(self) -> Option<Choice> {
        match self {
            Slot::Moved { choice, .. } => Some(choice),
            Slot::Empty | Slot::Committed(_) => None,
        }
    }

    fn salt(self) -> Option<Salt> {
        match self {
            Slot::Moved { salt, .. } => salt,
            Slot::Empty | Slot::Committed(_) => None,
        }
    }
}

impl Match {
    pub(super) fn emit(&mut self, events: &mut Vec<Event>, now: u64, kind: EventKind) {
        events.push(Event {
            seq: self.next_seq,
            at_ms: now,
            kind,
        });
        self.next_seq += 1;
        self.last_at_ms = now;
    }

    pub(super) fn start_round(&mut self, events: &mut Vec<Event>, now: u64) {
        self.round += 1;
        self.slots = PerSeat::new(Slot::Empty, Slot::Empty);
        self.phase = Phase::AwaitingBots;
        if self.bot_move_needed().is_none() {
            self.open_round(events, now);
        }
    }

    pub(super) fn open_round(&mut self, events: &mut Vec<Event>, now: u64) {
        let deadline_ms = now.saturating_add(self.config.round_timeout_ms);
        self.phase = Phase::Open { deadline_ms };
        let bot_commitments =
            PerSeat::new(self.bot_commitment(Seat::A), self.bot_commitment(Seat::B));
        let kind = EventKind::RoundOpened {
            round: self.round,
            deadline_ms,
            bot_commitments,
        };
        self.emit(events, now, kind);
        // With two bot seats both moves are in before the round opens: it is revealed at once.
        self.reveal_if_complete(events, now);
    }

    /// The commitment to a bot seat's move, published as its round opens.
    fn bot_commitment(&self, seat: Seat) -> Option<Commitment> {
        if self.config.seats[seat] != SeatKind::Bot {
            return None;
        }
        let Slot::Moved {
            choice,
            salt: Some(salt),
        } = self.slots[seat]
        else {
            return None;
        };
        Some(commitment(
            &self.config.match_id,
            self.round,
            seat,
            choice,
            &salt,
        ))
    }

    pub(super) fn reveal_if_complete(&mut self, events: &mut Vec<Event>, now: u64) {
        if self.slots.a.choice().is_some() && self.slots.b.choice().is_some() {
            self.reveal(events, now);
        }
    }

    /// Judges the round, scores it, and either ends the match or starts the next round.
    pub(super) fn reveal(&mut self, events: &mut Vec<Event>, now: u64) {
        let moves = self.slots.map(|_, slot| slot.choice());
        let salts = self.slots.map(|_, slot| slot.salt());
        let winner = round_winner(moves);
        if let Some(seat) = winner.scorer() {
            self.score[seat] += 1;
        }
        self.void_streak = match winner {
            RoundWinner::BothForfeit => self.void_streak + 1,
            RoundWinner::A | RoundWinner::B | RoundWinner::Tie => 0,
        };
        let kind = EventKind::RoundRevealed {
            round: self.round,
            moves,
            salts,
            winner,
            score: self.score,
        };
        self.emit(events, now, kind);

        let wins_needed = self.config.mode.wins_needed();
        if let Some(seat) = Seat::BOTH
            .into_iter()
            .find(|&s| self.score[s] >= wins_needed)
        {
            self.end(events, now, MatchOutcome::Won(seat), EndReason::Decided);
        } else if self.void_streak >= MAX_VOID_ROUNDS {
            self.end(events, now, MatchOutcome::NoContest, EndReason::Abandoned);
        } else if self.round >= MAX_ROUNDS {
            self.end(events, now, MatchOutcome::NoContest, EndReason::RoundLimit);
        } else {
            self.start_round(events, now);
        }
    }

    pub(super) fn end(
        &mut self,
        events: &mut Vec<Event>,
        now: u64,
        outcome: MatchOutcome,
        reason: EndReason,
    ) {
        self.phase = Phase::Ended;
        let score = self.score;
        let kind = EventKind::MatchEnded {
            outcome,
            reason,
            score,
        };
        self.emit(events, now, kind);
    }
}

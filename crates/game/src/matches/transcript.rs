//! Checking a match's public transcript without the server's secrets.
//!
//! This is what a player's verifier does with the events it was sent: every commitment is
//! opened against the move and salt revealed for it, every round is judged again, every score
//! recounted, and every event is checked to be one the rules allow at its place (no move after
//! a deadline, no early reveal with a move missing, the end when and only when the rules say).
//! It is written apart from [`super::Match`] on purpose: a second reading of the rules that
//! shares only the judging, so that a fault in the state machine shows up as a rejected log.
//! Server-only entries are skipped; a partial transcript of a match still running verifies.

use super::config::{MatchConfig, PerSeat, SeatKind};
use super::event::{
    EndReason, Event, EventKind, MAX_ROUNDS, MAX_VOID_ROUNDS, MatchOutcome, RoundWinner,
    round_winner,
};
use crate::fairness::{Commitment, Salt, verify_commitment};
use crate::{Choice, Seat};

/// The first event of a transcript that breaks the rules, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("event {index}: {reason}")]
pub struct VerifyError {
    /// Index into the transcript that was checked.
    pub index: usize,
    pub reason: TranscriptFault,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TranscriptFault {
    #[error("the transcript does not start with the match's configuration")]
    MissingStart,
    #[error("the configuration is not one a match accepts")]
    InvalidConfig,
    #[error("a second match start")]
    DuplicateStart,
    #[error("sequence numbers do not increase")]
    SeqNotIncreasing,
    #[error("time goes backwards")]
    TimeWentBackwards,
    #[error("an event after the match ended")]
    AfterEnd,
    #[error("the match was decided, so its end must come next")]
    EndExpected,
    #[error("a round opened while another was open or the match was over")]
    UnexpectedRoundOpened,
    #[error("the round number is not the current round's")]
    WrongRoundNumber,
    #[error("the deadline is not the opening time plus the round timeout")]
    WrongDeadline,
    #[error("bot commitments are missing or present for the wrong seats")]
    WrongBotCommitments,
    #[error("no round is open")]
    NoOpenRound,
    #[error("a move after the round's deadline")]
    AfterDeadline,
    #[error("seat {0:?} moved twice in one round")]
    DuplicateMove(Seat),
    #[error("seat {0:?} cannot send that for how it plays")]
    NotAllowedForSeat(Seat),
    #[error("revealed before the deadline with a move missing")]
    RevealedEarly,
    #[error("seat {0:?}'s revealed move or salt does not match what it sent")]
    MoveMismatch(Seat),
    #[error("seat {0:?}'s revealed move does not open its commitment")]
    BadCommitment(Seat),
    #[error("the round's winner is not the one its moves give")]
    WrongWinner,
    #[error("the score is not the count of round wins")]
    WrongScore,
    #[error("the match's ending does not follow from the rounds")]
    WrongEnd,
    #[error("a connection change that changes nothing")]
    ConnectionMismatch,
}

/// Checks every event of a transcript, public or whole, against the rules of the match its
/// first event configures.
pub fn verify_transcript(events: &[Event]) -> Result<(), VerifyError> {
    let fail = |index, reason| VerifyError { index, reason };
    let Some(first) = events.first() else {
        return Err(fail(0, TranscriptFault::MissingStart));
    };
    let EventKind::MatchStarted { config } = &first.kind else {
        return Err(fail(0, TranscriptFault::MissingStart));
    };
    if config.validate().is_err() {
        return Err(fail(0, TranscriptFault::InvalidConfig));
    }
    let mut verifier = Verifier {
        config,
        last_seq: first.seq,
        last_at_ms: first.at_ms,
        round: 0,
        stage: Stage::BetweenRounds,
        score: PerSeat::default(),
        void_streak: 0,
        connected: PerSeat::new(true, true),
    };
    for (index, event) in events.iter().enumerate().skip(1) {
        verifier
            .check(event)
            .map_err(|reason| fail(index, reason))?;
    }
    Ok(())
}

struct Verifier<'a> {
    config: &'a MatchConfig,
    last_seq: u64,
    last_at_ms: u64,
    round: u32,
    stage: Stage,
    score: PerSeat<u32>,
    void_streak: u32,
    connected: PerSeat<bool>,
}

enum Stage {
    /// The next round's opening is due (it may wait for a bot's move first).
    BetweenRounds,
    Open(OpenRound),
    /// The last reveal decided the match: this end must be the next event.
    EndDue(MatchOutcome, EndReason),
    Ended,
}

struct OpenRound {
    deadline_ms: u64,
    bot_commitments: PerSeat<Option<Commitment>>,
    committed: PerSeat<Option<Commitment>>,
    locked: PerSeat<bool>,
}

impl Verifier<'_> {
    fn check(&mut self, event: &Event) -> Result<(), TranscriptFault> {
        if event.seq <= self.last_seq {
            return Err(TranscriptFault::SeqNotIncreasing);
        }
        if event.at_ms < self.last_at_ms {
            return Err(TranscriptFault::TimeWentBackwards);
        }
        (self.last_seq, self.last_at_ms) = (event.seq, event.at_ms);
        match self.stage {
            Stage::Ended => return Err(TranscriptFault::AfterEnd),
            Stage::EndDue(..) if !matches!(event.kind, EventKind::MatchEnded { .. }) => {
                return Err(TranscriptFault::EndExpected);
            }
            _ => {}
        }
        let at = event.at_ms;
        match &event.kind {
            EventKind::MatchStarted { .. } => Err(TranscriptFault::DuplicateStart),
            // Server-only entries are for replay; a public transcript does not have them.
            EventKind::MoveSealed { .. } => Ok(()),
            EventKind::RoundOpened {
                round,
                deadline_ms,
                bot_commitments,
            } => self.round_opened(at, *round, *deadline_ms, *bot_commitments),
            EventKind::Locked { seat, round } => self.locked(at, *seat, *round),
            EventKind::Committed {
                seat,
                round,
                commitment,
            } => self.committed(at, *seat, *round, *commitment),
            EventKind::RoundRevealed {
                round,
                moves,
                salts,
                winner,
                score,
            } => self.revealed(at, *round, *moves, *salts, *winner, *score),
            EventKind::MatchEnded {
                outcome,
                reason,
                score,
            } => self.ended(*outcome, *reason, *score),
            EventKind::OpponentDisconnected { seat } => self.connection(*seat, false),
            EventKind::OpponentReconnected { seat } => self.connection(*seat, true),
        }
    }

    fn round_opened(
        &mut self,
        at: u64,
        round: u32,
        deadline_ms: u64,
        bot_commitments: PerSeat<Option<Commitment>>,
    ) -> Result<(), TranscriptFault> {
        if !matches!(self.stage, Stage::BetweenRounds) {
            return Err(TranscriptFault::UnexpectedRoundOpened);
        }
        if Some(round) != self.round.checked_add(1) {
            return Err(TranscriptFault::WrongRoundNumber);
        }
        if deadline_ms != at.saturating_add(self.config.round_timeout_ms) {
            return Err(TranscriptFault::WrongDeadline);
        }
        for seat in Seat::BOTH {
            let is_bot = self.config.seats[seat] == SeatKind::Bot;
            if bot_commitments[seat].is_some() != is_bot {
                return Err(TranscriptFault::WrongBotCommitments);
            }
        }
        self.round = round;
        self.stage = Stage::Open(OpenRound {
            deadline_ms,
            bot_commitments,
            committed: PerSeat::default(),
            locked: PerSeat::default(),
        });
        Ok(())
    }

    /// The open round, if `round` names it and a move may still arrive at `at`.
    fn open_for_moves(&mut self, at: u64, round: u32) -> Result<&mut OpenRound, TranscriptFault> {
        let Stage::Open(open) = &mut self.stage else {
            return Err(TranscriptFault::NoOpenRound);
        };
        if round != self.round {
            return Err(TranscriptFault::WrongRoundNumber);
        }
        if at >= open.deadline_ms {
            return Err(TranscriptFault::AfterDeadline);
        }
        Ok(open)
    }

    fn locked(&mut self, at: u64, seat: Seat, round: u32) -> Result<(), TranscriptFault> {
        let kind = self.config.seats[seat];
        let open = self.open_for_moves(at, round)?;
        if open.locked[seat] {
            return Err(TranscriptFault::DuplicateMove(seat));
        }
        let allowed = match kind {
            SeatKind::Sealed => true,
            SeatKind::CommitReveal => open.committed[seat].is_some(),
            SeatKind::Bot => false,
        };
        if !allowed {
            return Err(TranscriptFault::NotAllowedForSeat(seat));
        }
        open.locked[seat] = true;
        Ok(())
    }

    fn committed(
        &mut self,
        at: u64,
        seat: Seat,
        round: u32,
        commitment: Commitment,
    ) -> Result<(), TranscriptFault> {
        let kind = self.config.seats[seat];
        let open = self.open_for_moves(at, round)?;
        if kind != SeatKind::CommitReveal {
            return Err(TranscriptFault::NotAllowedForSeat(seat));
        }
        if open.committed[seat].is_some() {
            return Err(TranscriptFault::DuplicateMove(seat));
        }
        open.committed[seat] = Some(commitment);
        Ok(())
    }

    fn revealed(
        &mut self,
        at: u64,
        round: u32,
        moves: PerSeat<Option<Choice>>,
        salts: PerSeat<Option<Salt>>,
        winner: RoundWinner,
        score: PerSeat<u32>,
    ) -> Result<(), TranscriptFault> {
        let Stage::Open(open) = &self.stage else {
            return Err(TranscriptFault::NoOpenRound);
        };
        if round != self.round {
            return Err(TranscriptFault::WrongRoundNumber);
        }
        for seat in Seat::BOTH {
            self.check_seat_reveal(open, seat, moves[seat], salts[seat])?;
        }
        let complete = moves.a.is_some() && moves.b.is_some();
        if !complete && at < open.deadline_ms {
            return Err(TranscriptFault::RevealedEarly);
        }
        if winner != round_winner(moves) {
            return Err(TranscriptFault::WrongWinner);
        }
        if let Some(seat) = winner.scorer() {
            self.score[seat] += 1;
        }
        if score != self.score {
            return Err(TranscriptFault::WrongScore);
        }
        self.void_streak = match winner {
            RoundWinner::BothForfeit => self.void_streak + 1,
            RoundWinner::A | RoundWinner::B | RoundWinner::Tie => 0,
        };
        let wins_needed = self.config.mode.wins_needed();
        self.stage = if let Some(seat) = Seat::BOTH.into_iter().find(|&s| score[s] >= wins_needed) {
            Stage::EndDue(MatchOutcome::Won(seat), EndReason::Decided)
        } else if self.void_streak >= MAX_VOID_ROUNDS {
            Stage::EndDue(MatchOutcome::NoContest, EndReason::Abandoned)
        } else if self.round >= MAX_ROUNDS {
            Stage::EndDue(MatchOutcome::NoContest, EndReason::RoundLimit)
        } else {
            Stage::BetweenRounds
        };
        Ok(())
    }

    /// A seat's revealed move must be there exactly when it moved in time, and must open the
    /// commitment it made (a bot's from the round's opening, a commit-reveal seat's own).
    fn check_seat_reveal(
        &self,
        open: &OpenRound,
        seat: Seat,
        choice: Option<Choice>,
        salt: Option<Salt>,
    ) -> Result<(), TranscriptFault> {
        let (moved, commitment) = match self.config.seats[seat] {
            SeatKind::Bot => (true, open.bot_commitments[seat]),
            SeatKind::CommitReveal => (open.locked[seat], open.committed[seat]),
            SeatKind::Sealed => (open.locked[seat], None),
        };
        if choice.is_some() != moved {
            return Err(TranscriptFault::MoveMismatch(seat));
        }
        match (choice, commitment) {
            (Some(choice), Some(commitment)) => {
                let salt = salt.ok_or(TranscriptFault::MoveMismatch(seat))?;
                let id = &self.config.match_id;
                if !verify_commitment(&commitment, id, self.round, seat, choice, &salt) {
                    return Err(TranscriptFault::BadCommitment(seat));
                }
            }
            // Nothing to open: a salt here would be one the seat never committed with.
            _ if salt.is_some() => return Err(TranscriptFault::MoveMismatch(seat)),
            _ => {}
        }
        Ok(())
    }

    fn ended(
        &mut self,
        outcome: MatchOutcome,
        reason: EndReason,
        score: PerSeat<u32>,
    ) -> Result<(), TranscriptFault> {
        if score != self.score {
            return Err(TranscriptFault::WrongScore);
        }
        let follows = match (&self.stage, reason) {
            (Stage::EndDue(due_outcome, due_reason), _) => {
                (*due_outcome, *due_reason) == (outcome, reason)
            }
            (_, EndReason::Left(seat)) => outcome == MatchOutcome::Won(seat.other()),
            (_, EndReason::GraceExpired(seat)) => {
                !self.connected[seat] && outcome == MatchOutcome::Won(seat.other())
            }
            (_, EndReason::Drained) => outcome == MatchOutcome::NoContest,
            (_, EndReason::Decided | EndReason::Abandoned | EndReason::RoundLimit) => false,
        };
        if !follows {
            return Err(TranscriptFault::WrongEnd);
        }
        self.stage = Stage::Ended;
        Ok(())
    }

    fn connection(&mut self, seat: Seat, connected: bool) -> Result<(), TranscriptFault> {
        if self.connected[seat] == connected {
            return Err(TranscriptFault::ConnectionMismatch);
        }
        self.connected[seat] = connected;
        Ok(())
    }
}

//! The match as this client has seen it, and where its moves come from.

use std::collections::VecDeque;

use game::matches::{EventKind, PerSeat};
use game::{Choice, Seat};

use super::super::narrate::Viewpoint;

/// Where moves come from.
pub enum Plan {
    /// `--moves`: in order, one per round, from the start again when they run out.
    Script { moves: Vec<Choice>, next: usize },
    /// Typed ahead, oldest first.
    Typed(VecDeque<Choice>),
}

impl Plan {
    pub(super) fn take(&mut self) -> Option<Choice> {
        match self {
            Plan::Script { moves, next } => {
                let choice = moves.get(*next % moves.len().max(1)).copied();
                *next += 1;
                choice
            }
            Plan::Typed(queue) => queue.pop_front(),
        }
    }
}

pub(super) struct Game {
    pub(super) match_id: String,
    pub(super) seat: Seat,
    pub(super) opponent: String,
    pub(super) last_seq: Option<u64>,
    pub(super) round: u32,
    /// The open round's deadline (server clock); `None` between rounds.
    pub(super) deadline_ms: Option<u64>,
    pub(super) locked: PerSeat<bool>,
    /// The round our move was sent for and not yet seen locked. Cleared when a connection
    /// drops: the replay says whether it arrived, and if not it is sent again.
    pub(super) sent_round: Option<u32>,
    /// The move taken from the plan for a round, so that sending it again sends the same one.
    pub(super) chosen: Option<(u32, Choice)>,
    pub(super) score: PerSeat<u32>,
    /// When `match_ended` was applied (local clock).
    pub(super) ended_at_ms: Option<u64>,
}

impl Game {
    pub(super) fn new(match_id: String, seat: Seat, opponent: String) -> Game {
        Game {
            match_id,
            seat,
            opponent,
            last_seq: None,
            round: 0,
            deadline_ms: None,
            locked: PerSeat::default(),
            sent_round: None,
            chosen: None,
            score: PerSeat::default(),
            ended_at_ms: None,
        }
    }

    pub(super) fn view(&self) -> Viewpoint<'_> {
        Viewpoint {
            seat: self.seat,
            opponent: &self.opponent,
        }
    }

    pub(super) fn running(&self) -> bool {
        self.ended_at_ms.is_none()
    }

    /// What an event changes of the game as this client tracks it.
    pub(super) fn apply(&mut self, kind: &EventKind, now: u64) {
        match kind {
            EventKind::RoundOpened {
                round, deadline_ms, ..
            } => {
                self.round = *round;
                self.deadline_ms = Some(*deadline_ms);
                self.locked = PerSeat::default();
                self.sent_round = None;
            }
            EventKind::Locked { seat, round } if *round == self.round => self.locked[*seat] = true,
            EventKind::RoundRevealed { score, .. } => {
                self.deadline_ms = None;
                self.score = *score;
            }
            EventKind::MatchEnded { score, .. } => {
                self.deadline_ms = None;
                self.score = *score;
                self.ended_at_ms = Some(now);
            }
            _ => {}
        }
    }
}

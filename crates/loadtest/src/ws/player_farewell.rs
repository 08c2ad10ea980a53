//! The end of a run for one player: leaving its match or the queue, and the messages that
//! still come, so the result of a match left at the stop is counted like any other.

use protocol::{ClientMessage, ServerMessage};
use tokio::time::Instant;

use super::{MatchClocks, Phase, Player, Schedule, Tally};

/// What a player does with a message that arrives after the run stopped.
#[derive(Debug, PartialEq)]
pub enum Farewell {
    Send(ClientMessage),
    /// Still waiting for the match's result or the ticket's end.
    Wait,
    Done,
}

impl Player {
    /// What to send before closing at the end of the run: leaving the match or the queue ends
    /// it on the server at once, rather than after the resume grace window, so a run that
    /// follows with the same accounts starts from a clean state, and the match's result is
    /// recorded while this run still counts it.
    pub fn farewell(&mut self) -> Option<ClientMessage> {
        let id = Some(self.next_id);
        self.next_id += 1;
        match &self.phase {
            _ if self.resuming.is_some() => None,
            Phase::Playing(playing) if !playing.ended => Some(ClientMessage::Leave { id }),
            Phase::Queueing => Some(ClientMessage::Cancel { id }),
            _ => None,
        }
    }

    /// Whether, after its farewell, the player still waits for something: its match's result,
    /// or the end of its ticket.
    pub fn lingers(&self) -> bool {
        self.resuming.is_none() && matches!(self.phase, Phase::Playing(_) | Phase::Queueing)
    }

    /// A message that arrived after the farewell: results are still counted, and a match that
    /// raced the cancel is left at once.
    pub fn on_farewell_message(
        &mut self,
        message: ServerMessage,
        now: Instant,
        schedule: &Schedule,
        tally: &mut Tally,
        clocks: &mut MatchClocks,
    ) -> Farewell {
        match message {
            ServerMessage::MatchResult { match_id, .. } => {
                if self.last_result.as_deref() != Some(match_id.as_str()) {
                    self.count_result(&match_id, tally);
                }
                self.phase = Phase::Stopped;
                Farewell::Done
            }
            ServerMessage::Matched { match_id, seat, .. } => {
                let known = self.last_result.as_deref() == Some(match_id.as_str())
                    || matches!(&self.phase, Phase::Playing(playing) if playing.match_id == match_id);
                if known {
                    return Farewell::Wait;
                }
                self.start_match(match_id, seat, now, schedule, tally, clocks);
                match self.farewell() {
                    Some(leave) => Farewell::Send(leave),
                    None => Farewell::Wait,
                }
            }
            ServerMessage::Cancelled { .. } | ServerMessage::QueueExpired { .. }
                if matches!(self.phase, Phase::Queueing) =>
            {
                self.phase = Phase::Stopped;
                Farewell::Done
            }
            _ => Farewell::Wait,
        }
    }
}

//! Resuming (see `player.rs`): the `resume` a new connection opens with, what `resumed` (or a
//! `welcome` nobody asked for) puts the player back into, and the end of a replay.

use game::Seat;
use protocol::ClientMessage;
use tokio::time::Instant;

use super::{MatchClocks, Phase, Player, Schedule, Tally};

impl Player {
    /// Whether a dropped connection should be followed by a resume: the player has a token
    /// and has not stopped (it is queued, playing, or about to queue).
    pub fn wants_resume(&self) -> bool {
        self.resume_token.is_some() && !matches!(self.phase, Phase::Stopped)
    }

    /// The `resume` opening a new connection; the player then waits for `resumed`.
    pub fn resume(&mut self, now: Instant, schedule: &Schedule) -> Option<ClientMessage> {
        let token = self.resume_token.clone()?;
        let id = self.next_id;
        self.next_id += 1;
        let last_seq = match &self.phase {
            Phase::Playing(playing) => playing.last_seq,
            _ => None,
        };
        self.resuming = Some(id);
        self.replay_remaining = 0;
        // An ack the old connection owed is not coming.
        self.pending_ack = None;
        self.waiting = Some((now + schedule.timeout, "resumed"));
        Some(ClientMessage::Resume {
            id: Some(id),
            token,
            last_seq,
        })
    }

    /// Why the player gave up, once; the caller counts it and drops the player.
    pub fn take_failure(&mut self) -> Option<String> {
        self.failure.take()
    }

    /// A `welcome` this player did not ask for (it only ever sends `hello` once, before it
    /// starts): the server greets it anew, and what it says comes again (`matched`, the whole
    /// log, or `queued`).
    pub(super) fn on_welcome(
        &mut self,
        match_id: Option<String>,
        queued: bool,
        now: Instant,
        schedule: &Schedule,
    ) {
        if let Phase::Playing(playing) = &self.phase
            && match_id.as_deref() == Some(playing.match_id.as_str())
        {
            self.resyncing = true;
            return;
        }
        if queued {
            self.phase = Phase::Queueing;
            self.waiting = Some((now + schedule.queue_timeout, "matched"));
        }
        // Another match: its `matched` follows and seats the player.
    }

    /// After `resumed`: back in the match (its missed events follow), still queued, or queue
    /// again.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_resumed(
        &mut self,
        match_id: Option<String>,
        seat: Option<Seat>,
        queued: bool,
        now: Instant,
        schedule: &Schedule,
        tally: &mut Tally,
        clocks: &mut MatchClocks,
    ) -> Option<ClientMessage> {
        if let Some(match_id) = match_id {
            let same =
                matches!(&self.phase, Phase::Playing(playing) if playing.match_id == match_id);
            if !same {
                // Matched while away (the ticket survived the drop).
                let Some(seat) = seat else {
                    tally.error("resumed_without_seat");
                    return self.queue(now, schedule);
                };
                self.start_match(match_id, seat, now, schedule, tally, clocks);
            }
            if self.replay_remaining == 0 {
                self.after_replay(now, schedule);
            }
            return None;
        }
        self.replay_remaining = 0;
        if queued {
            self.phase = Phase::Queueing;
            self.waiting = Some((now + schedule.queue_timeout, "matched"));
            return None;
        }
        match &self.phase {
            Phase::Ready { .. } => None,
            Phase::Playing(playing) if !playing.ended => {
                tally.error("resumed_without_match");
                self.queue(now, schedule)
            }
            _ => self.queue(now, schedule),
        }
    }

    /// Sets what the player waits for once a resume's replay has been played.
    pub(super) fn after_replay(&mut self, now: Instant, schedule: &Schedule) {
        let Phase::Playing(playing) = &mut self.phase else {
            return;
        };
        self.waiting = if playing.ended {
            Some((now + schedule.timeout, "match_result"))
        } else if let Some(round) = playing.open_round {
            if playing.locked_round == Some(round) {
                Some((now + schedule.interval + schedule.timeout, "round_revealed"))
            } else {
                // The move was never sent, or was lost with the old connection.
                if playing.moved_round == Some(round) {
                    self.resent_move = Some(self.next_id);
                }
                playing.move_due = Some(now.max(self.next_allowed));
                None
            }
        } else {
            Some((now + schedule.timeout, "next_round"))
        };
    }

    pub(super) fn displace(&mut self, now: Instant, schedule: &Schedule) {
        self.phase = Phase::Displaced;
        self.waiting = Some((now + schedule.timeout, "drain_close"));
    }
}

//! One `ws-play` player as a state machine: what it sends in answer to what the server says and
//! to its own move schedule, and what it records. No I/O, so it is tested message by message;
//! `session.rs` runs it on a connection, and on the next one when its instance goes away.
//!
//! A greeted player queues at its start time, plays the match it is given, and queues again
//! when the match's result arrives, until the run stops. Pacing: a player moves at most once
//! per `interval`, as soon as a round is open and its interval has passed, so each player makes
//! one move per interval while the server keeps up. Start times are spread over the first
//! interval so the players do not move in lockstep.
//!
//! Move-to-result latency: for each round, from the moment the round's second move was sent
//! (the later of the two players' sends; both players are in this process, on one clock, and
//! note their send times in the match's [`RoundTimes`]) to the moment a player receives the
//! `round_revealed` event; each of the two players records one sample. So it covers the second
//! move's trip to the server, the judging, and the fan-out of the result to both players. An
//! opponent that is not this process's leaves only the player's own send time, and those
//! samples are counted apart (`reveal_own_only`).
//!
//! Resuming: the player keeps the latest resume token (from `welcome` and every `resumed`) and
//! the highest event `seq` of its match. On a new connection it sends `resume` and nothing else
//! until `resumed` comes. The `replayed` events that follow may repeat ones already seen: those
//! are dropped. Ordering is checked on the live stream only: after the replay, an event whose
//! `seq` is not above the last one is a violation, as on a connection that never dropped. A move
//! sent before the drop whose `locked` never came is sent again. A queued player whose instance
//! drains (`queue_expired` with reason `draining`) waits for the close and queues again on the
//! next instance.

use std::time::Duration;

use game::matches::{EventKind, Mode};
use game::{Choice, Seat};
use protocol::{ClientMessage, ExpiredReason, Opponent, ServerMessage};
use tokio::time::Instant;

use super::clocks::{MatchClocks, RoundTimes};
use super::tally::Tally;
use std::cell::RefCell;
use std::rc::Rc;

/// How long a move the server could not take while its match moved between instances waits
/// before it is sent again.
const RESEND_PAUSE: Duration = Duration::from_millis(100);

/// What every player of a run shares.
#[derive(Clone, Debug)]
pub struct Schedule {
    pub mode: Mode,
    /// Each player moves at most once per interval.
    pub interval: Duration,
    /// No player queues or moves from then on.
    pub stop_at: Instant,
    /// Longest wait for an answer the server owes at once (welcome, next round, result).
    pub timeout: Duration,
    /// Longest wait for a match once queued.
    pub queue_timeout: Duration,
}

#[derive(Debug)]
struct InMatch {
    match_id: String,
    seat: Seat,
    last_seq: Option<u64>,
    /// The round taking moves, until its reveal.
    open_round: Option<u32>,
    moved_round: Option<u32>,
    /// The last round this seat's `locked` event named: the server holds its move.
    locked_round: Option<u32>,
    /// When this player's move for the open round is due.
    move_due: Option<Instant>,
    move_sent: Option<Instant>,
    /// `match_ended` arrived; the result is on its way.
    ended: bool,
    times: Rc<RefCell<RoundTimes>>,
}

#[derive(Debug)]
enum Phase {
    /// Greeted, queueing at `at`.
    Ready {
        at: Instant,
    },
    Queueing,
    Playing(InMatch),
    /// The instance is draining and ended the ticket: queue again after resuming elsewhere.
    Displaced,
    Stopped,
}

/// What woke the player, and what it does about it.
#[derive(Debug, PartialEq)]
pub enum Wake {
    Send(ClientMessage),
    /// An answer the server owed did not come: the report's kind; the player gives up.
    TimedOut(String),
    /// The draining instance did not close the connection in time: leave it and resume on the
    /// next one.
    Reconnect,
    Nothing,
}

#[derive(Debug)]
pub struct Player {
    phase: Phase,
    next_id: u64,
    /// The earliest time of this player's next move.
    next_allowed: Instant,
    pending_ack: Option<(u64, Instant)>,
    /// What the player waits for, and until when.
    waiting: Option<(Instant, &'static str)>,
    /// From the latest `welcome` or `resumed`.
    resume_token: Option<String>,
    /// The id of the `resume` sent on this connection, until `resumed` answers it.
    resuming: Option<u64>,
    /// Events still to come of the latest `resumed`'s replay.
    replay_remaining: u64,
    /// An unrequested `welcome` for the current match came: the whole log follows again, so
    /// events already seen are repeats, not violations, until the first new one.
    resyncing: bool,
    /// The id of a move sent again (after a resume, or when the match was moving between
    /// instances): the server may already hold it, and refusing it then is no error.
    resent_move: Option<u64>,
    /// The match whose `match_result` was counted last, so a repeated one is not.
    last_result: Option<String>,
    /// Why the player cannot go on, for the report; set by a refused resume.
    failure: Option<String>,
    rng: fastrand::Rng,
}

impl Player {
    /// A greeted player that queues at `start` and moves one interval later at the earliest.
    pub fn new(start: Instant, schedule: &Schedule, seed: u64) -> Self {
        Player {
            phase: Phase::Ready { at: start },
            next_id: 1,
            next_allowed: start + schedule.interval,
            pending_ack: None,
            waiting: None,
            resume_token: None,
            resuming: None,
            replay_remaining: 0,
            resyncing: false,
            resent_move: None,
            last_result: None,
            failure: None,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// The `welcome`'s token, for the first resume.
    pub fn with_resume_token(mut self, token: Option<String>) -> Self {
        self.resume_token = token;
        self
    }

    /// When the player next needs to act if nothing arrives.
    pub fn next_wake(&self) -> Option<Instant> {
        let own = match &self.phase {
            _ if self.resuming.is_some() => None,
            Phase::Ready { at } => Some(*at),
            Phase::Playing(playing) => playing.move_due,
            Phase::Queueing | Phase::Displaced | Phase::Stopped => None,
        };
        let waiting = self.waiting.map(|(until, _)| until);
        match (own, waiting) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn on_wake(&mut self, now: Instant, schedule: &Schedule, tally: &mut Tally) -> Wake {
        if let Some((until, what)) = self.waiting
            && now >= until
        {
            self.waiting = None;
            if what == "drain_close" {
                return Wake::Reconnect;
            }
            if self.resuming.take().is_some() {
                tally.continuity.resume_failures += 1;
            }
            self.phase = Phase::Stopped;
            return Wake::TimedOut(format!("timeout_{what}"));
        }
        if self.resuming.is_some() {
            return Wake::Nothing;
        }
        if let Phase::Ready { at } = self.phase
            && now >= at
        {
            return match self.queue(now, schedule) {
                Some(message) => Wake::Send(message),
                None => Wake::Nothing,
            };
        }
        match &mut self.phase {
            Phase::Playing(playing) => {
                let (Some(due), Some(round)) = (playing.move_due, playing.open_round) else {
                    return Wake::Nothing;
                };
                if now < due || now >= schedule.stop_at {
                    return Wake::Nothing;
                }
                let id = self.next_id;
                self.next_id += 1;
                if self.resent_move.is_some() {
                    // Sent again: the id answered by a refusal is this one.
                    self.resent_move = Some(id);
                    tally.continuity.moves_resent += 1;
                }
                playing.move_due = None;
                playing.moved_round = Some(round);
                playing.move_sent = Some(now);
                playing.times.borrow_mut().record(round, playing.seat, now);
                self.pending_ack = Some((id, now));
                // Scheduled from when the move was due, not sent, so timer lateness does not
                // slow the rate down.
                self.next_allowed = due + schedule.interval;
                self.waiting = Some((now + schedule.interval + schedule.timeout, "round_revealed"));
                tally.move_sent(now);
                let choice = Choice::ALL[self.rng.usize(..Choice::ALL.len())];
                Wake::Send(ClientMessage::Move {
                    id: Some(id),
                    round,
                    choice,
                })
            }
            _ => Wake::Nothing,
        }
    }

    /// Handles one message; returns what to send in answer.
    pub fn on_message(
        &mut self,
        message: ServerMessage,
        now: Instant,
        schedule: &Schedule,
        tally: &mut Tally,
        clocks: &mut MatchClocks,
    ) -> Option<ClientMessage> {
        match message {
            ServerMessage::Queued { .. } => None,
            ServerMessage::QueueExpired {
                reason: ExpiredReason::Draining,
                ..
            } => {
                self.displace(now, schedule);
                None
            }
            ServerMessage::QueueExpired { .. } => {
                tally.error("queue_expired");
                self.queue(now, schedule)
            }
            ServerMessage::Matched { match_id, seat, .. } => {
                if self.last_result.as_deref() == Some(match_id.as_str()) {
                    tally.continuity.repeats_after_result += 1;
                    return None;
                }
                if matches!(&self.phase, Phase::Playing(playing) if playing.match_id == match_id) {
                    return None;
                }
                self.start_match(match_id, seat, now, schedule, tally, clocks);
                None
            }
            ServerMessage::Event { match_id, event } => {
                self.on_event(&match_id, event, now, schedule, tally);
                None
            }
            ServerMessage::MatchResult { match_id, .. } => {
                if self.last_result.as_deref() == Some(match_id.as_str()) {
                    tally.continuity.repeats_after_result += 1;
                    return None;
                }
                if !self.count_result(&match_id, tally) {
                    tally.error("unexpected_match_result");
                }
                self.queue(now, schedule)
            }
            ServerMessage::Ack { id } => {
                if id.is_some() && id == self.resent_move {
                    self.resent_move = None;
                }
                if let Some((pending, sent)) = self.pending_ack
                    && id == Some(pending)
                {
                    self.pending_ack = None;
                    tally.ack(now, now - sent);
                }
                None
            }
            ServerMessage::Error { id, code, .. } => self.on_error(id, code, now, schedule, tally),
            ServerMessage::Warning { code, .. } => {
                tally.error(format!("warning_{code}"));
                None
            }
            ServerMessage::Draining { .. } => {
                tally.continuity.drain_notices += 1;
                None
            }
            ServerMessage::Resumed {
                resume_token,
                match_id,
                seat,
                replayed,
                queued,
                ..
            } => {
                if self.resuming.take().is_none() {
                    tally.error("unexpected_resumed");
                    return None;
                }
                self.resume_token = Some(resume_token);
                self.waiting = None;
                self.replay_remaining = replayed;
                tally.continuity.resumes += 1;
                self.on_resumed(match_id, seat, queued, now, schedule, tally, clocks)
            }
            ServerMessage::Welcome {
                resume_token,
                match_id,
                queued,
                ..
            } => {
                self.resume_token = Some(resume_token);
                tally.continuity.unrequested_welcomes += 1;
                self.on_welcome(match_id, queued, now, schedule);
                None
            }
            ServerMessage::Cancelled { .. }
            | ServerMessage::Chat { .. }
            | ServerMessage::Pong { .. } => None,
        }
    }

    fn on_error(
        &mut self,
        id: Option<u64>,
        code: String,
        now: Instant,
        schedule: &Schedule,
        tally: &mut Tally,
    ) -> Option<ClientMessage> {
        if self.resuming.is_some()
            && (id == self.resuming || code == protocol::codes::RESUME_UNKNOWN)
        {
            self.resuming = None;
            self.waiting = None;
            self.phase = Phase::Stopped;
            tally.continuity.resume_failures += 1;
            self.failure = Some(format!("error_{code}"));
            return None;
        }
        if code == protocol::codes::DRAINING && matches!(self.phase, Phase::Queueing) {
            // The queue raced the drain: the ticket was refused, not lost.
            self.displace(now, schedule);
            return None;
        }
        if code == protocol::codes::MOVE_REFUSED && id.is_some() && id == self.resent_move {
            // The move sent before the drop had arrived after all.
            self.resent_move = None;
            tally.continuity.resends_refused += 1;
            return None;
        }
        if code == protocol::codes::NOT_IN_MATCH
            && let Some((pending, _)) = self.pending_ack
            && id == Some(pending)
            && let Phase::Playing(playing) = &mut self.phase
            && !playing.ended
        {
            // The match is moving to another instance ("send it again"): the move is sent
            // again after a pause, as after a resume.
            self.pending_ack = None;
            playing.moved_round = None;
            playing.move_due = Some(now + RESEND_PAUSE);
            self.waiting = None;
            self.resent_move = Some(pending);
            return None;
        }
        tally.error(format!("error_{code}"));
        None
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn start_match(
        &mut self,
        match_id: String,
        seat: Seat,
        now: Instant,
        schedule: &Schedule,
        tally: &mut Tally,
        clocks: &mut MatchClocks,
    ) {
        let (times, first) = clocks.join(&match_id);
        if first {
            tally.continuity.matches_started += 1;
        }
        self.phase = Phase::Playing(InMatch {
            match_id,
            seat,
            last_seq: None,
            open_round: None,
            moved_round: None,
            locked_round: None,
            move_due: None,
            move_sent: None,
            ended: false,
            times,
        });
        self.waiting = Some((now + schedule.timeout, "round_opened"));
    }

    /// Counts `match_id`'s result if it is this player's match; false if it is not.
    pub(super) fn count_result(&mut self, match_id: &str, tally: &mut Tally) -> bool {
        let Phase::Playing(playing) = &self.phase else {
            return false;
        };
        if playing.match_id != match_id {
            return false;
        }
        tally.continuity.results += 1;
        let mut times = playing.times.borrow_mut();
        if !times.result_counted {
            times.result_counted = true;
            tally.continuity.matches_finished += 1;
        }
        self.last_result = Some(match_id.to_owned());
        true
    }

    fn on_event(
        &mut self,
        match_id: &str,
        event: game::matches::Event,
        now: Instant,
        schedule: &Schedule,
        tally: &mut Tally,
    ) {
        let replaying = self.replay_remaining > 0 || self.resyncing;
        let in_replay = self.replay_remaining > 0;
        self.replay_remaining = self.replay_remaining.saturating_sub(1);
        if self.last_result.as_deref() == Some(match_id) {
            // The log of a match whose result this player already has, sent again.
            tally.continuity.repeats_after_result += 1;
            return;
        }
        let Phase::Playing(playing) = &mut self.phase else {
            tally.error("event_outside_a_match");
            return;
        };
        if playing.match_id != match_id {
            tally.error("event_for_another_match");
            return;
        }
        let seen = playing.last_seq.is_some_and(|last| event.seq <= last);
        if !seen {
            self.resyncing = false;
        }
        if seen && replaying {
            // The replay may start before what this player saw; a repeat is not played twice.
            tally.continuity.replayed_duplicates += 1;
        } else {
            if seen {
                tally.ordering_violation();
            }
            playing.last_seq = Some(
                playing
                    .last_seq
                    .map_or(event.seq, |last| last.max(event.seq)),
            );
            Self::play_event(
                playing,
                self.next_allowed,
                &mut self.waiting,
                event.kind,
                now,
                schedule,
                tally,
            );
        }
        if in_replay && self.replay_remaining == 0 {
            self.after_replay(now, schedule);
        }
    }

    fn play_event(
        playing: &mut InMatch,
        next_allowed: Instant,
        waiting: &mut Option<(Instant, &'static str)>,
        kind: EventKind,
        now: Instant,
        schedule: &Schedule,
        tally: &mut Tally,
    ) {
        match kind {
            EventKind::RoundOpened { round, .. } => {
                playing.open_round = Some(round);
                playing.move_due = Some(now.max(next_allowed));
                *waiting = None;
            }
            EventKind::Locked { seat, round } if seat == playing.seat => {
                playing.locked_round = Some(round);
            }
            EventKind::RoundRevealed { round, moves, .. } => {
                if playing.moved_round == Some(round)
                    && let Some(own) = playing.move_sent.take()
                {
                    let (second, both) = playing.times.borrow().second_move(round, own);
                    tally.revealed(now, now.saturating_duration_since(second), both);
                }
                if moves[playing.seat].is_none() {
                    tally.missed_move(now);
                }
                if playing.seat == Seat::A {
                    tally.round(now);
                }
                playing.open_round = None;
                playing.move_due = None;
                *waiting = Some((now + schedule.timeout, "next_round"));
            }
            EventKind::MatchEnded { .. } => {
                playing.ended = true;
                if playing.seat == Seat::A {
                    tally.match_completed(now);
                }
                playing.open_round = None;
                playing.move_due = None;
                *waiting = Some((now + schedule.timeout, "match_result"));
            }
            EventKind::OpponentDisconnected { .. } => tally.continuity.seat_disconnects += 1,
            _ => {}
        }
    }

    /// Queues for a match, unless the run is stopping.
    pub(super) fn queue(&mut self, now: Instant, schedule: &Schedule) -> Option<ClientMessage> {
        if now >= schedule.stop_at {
            self.phase = Phase::Stopped;
            self.waiting = None;
            return None;
        }
        self.phase = Phase::Queueing;
        self.waiting = Some((now + schedule.queue_timeout, "matched"));
        let id = self.next_id;
        self.next_id += 1;
        Some(ClientMessage::Queue {
            id: Some(id),
            mode: schedule.mode,
            opponent: Opponent::Human,
            bot_after_ms: None,
            moves: protocol::MoveMode::Sealed,
        })
    }
}

#[path = "player_farewell.rs"]
mod farewell;
#[path = "player_resume.rs"]
mod resume;
#[cfg(test)]
#[path = "player_tests.rs"]
mod tests;

pub use self::farewell::Farewell;

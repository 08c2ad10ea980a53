//! One `ws-play` player as a state machine: what it sends in answer to what the server says and
//! to its own move schedule, and what it records. No I/O, so it is tested message by message;
//! `play.rs` runs it on a connection.
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

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::time::Duration;

use game::matches::{EventKind, Mode, PerSeat};
use game::{Choice, Seat};
use protocol::{ClientMessage, Opponent, ServerMessage};
use tokio::time::Instant;

use super::tally::Tally;

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

/// The send times of a match's current round, one per seat.
#[derive(Debug, Default)]
pub struct RoundTimes {
    round: u32,
    sent: PerSeat<Option<Instant>>,
}

impl RoundTimes {
    fn record(&mut self, round: u32, seat: Seat, at: Instant) {
        if round != self.round {
            self.round = round;
            self.sent = PerSeat::default();
        }
        self.sent[seat] = Some(at);
    }

    /// When `round`'s later move was sent, and whether both seats' times are known.
    fn second_move(&self, round: u32, own: Instant) -> (Instant, bool) {
        if round != self.round {
            return (own, false);
        }
        match (self.sent.a, self.sent.b) {
            (Some(a), Some(b)) => (a.max(b), true),
            _ => (own, false),
        }
    }
}

/// The round times of matches whose second player has not yet seen `matched`. The first
/// player keeps the only strong reference; the second takes it out, so an entry lives from one
/// `matched` to the other, and entries whose opponent is not this process's die with their
/// match and are swept. Bounded by the number of players.
#[derive(Debug, Default)]
pub struct MatchClocks {
    waiting: HashMap<String, Weak<RefCell<RoundTimes>>>,
    players: usize,
}

impl MatchClocks {
    pub fn new(players: usize) -> Self {
        MatchClocks {
            waiting: HashMap::new(),
            players,
        }
    }

    fn join(&mut self, match_id: &str) -> Rc<RefCell<RoundTimes>> {
        if let Some(times) = self
            .waiting
            .remove(match_id)
            .and_then(|weak| weak.upgrade())
        {
            return times;
        }
        if self.waiting.len() >= self.players {
            self.waiting.retain(|_, weak| weak.strong_count() > 0);
        }
        let times = Rc::new(RefCell::new(RoundTimes::default()));
        self.waiting
            .insert(match_id.to_owned(), Rc::downgrade(&times));
        times
    }

    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

#[derive(Debug)]
struct InMatch {
    match_id: String,
    seat: Seat,
    last_seq: Option<u64>,
    /// The round taking moves, until its reveal.
    open_round: Option<u32>,
    moved_round: Option<u32>,
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
    Stopped,
}

/// What woke the player, and what it does about it.
#[derive(Debug, PartialEq)]
pub enum Wake {
    Send(ClientMessage),
    /// An answer the server owed did not come: the report's kind; the player gives up.
    TimedOut(String),
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
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// When the player next needs to act if nothing arrives.
    pub fn next_wake(&self) -> Option<Instant> {
        let own = match &self.phase {
            Phase::Ready { at } => Some(*at),
            Phase::Playing(playing) => playing.move_due,
            Phase::Queueing | Phase::Stopped => None,
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
            self.phase = Phase::Stopped;
            return Wake::TimedOut(format!("timeout_{what}"));
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
            ServerMessage::QueueExpired { .. } => {
                tally.error("queue_expired");
                self.queue(now, schedule)
            }
            ServerMessage::Matched { match_id, seat, .. } => {
                let times = clocks.join(&match_id);
                self.phase = Phase::Playing(InMatch {
                    match_id,
                    seat,
                    last_seq: None,
                    open_round: None,
                    moved_round: None,
                    move_due: None,
                    move_sent: None,
                    ended: false,
                    times,
                });
                self.waiting = Some((now + schedule.timeout, "round_opened"));
                None
            }
            ServerMessage::Event { match_id, event } => {
                self.on_event(&match_id, event, now, schedule, tally);
                None
            }
            ServerMessage::MatchResult { .. } => {
                if !matches!(self.phase, Phase::Playing(_)) {
                    tally.error("unexpected_match_result");
                }
                self.queue(now, schedule)
            }
            ServerMessage::Ack { id } => {
                if let Some((pending, sent)) = self.pending_ack
                    && id == Some(pending)
                {
                    self.pending_ack = None;
                    tally.ack(now, now - sent);
                }
                None
            }
            ServerMessage::Error { code, .. } => {
                tally.error(format!("error_{code}"));
                None
            }
            ServerMessage::Warning { code, .. } => {
                tally.error(format!("warning_{code}"));
                None
            }
            ServerMessage::Draining { .. } => {
                tally.error("draining");
                None
            }
            ServerMessage::Welcome { .. } | ServerMessage::Resumed { .. } => {
                tally.error("unexpected_welcome");
                None
            }
            ServerMessage::Cancelled { .. }
            | ServerMessage::Chat { .. }
            | ServerMessage::Pong { .. } => None,
        }
    }

    fn on_event(
        &mut self,
        match_id: &str,
        event: game::matches::Event,
        now: Instant,
        schedule: &Schedule,
        tally: &mut Tally,
    ) {
        let Phase::Playing(playing) = &mut self.phase else {
            tally.error("event_outside_a_match");
            return;
        };
        if playing.match_id != match_id {
            tally.error("event_for_another_match");
            return;
        }
        if playing.last_seq.is_some_and(|last| event.seq <= last) {
            tally.ordering_violation();
        }
        playing.last_seq = Some(
            playing
                .last_seq
                .map_or(event.seq, |last| last.max(event.seq)),
        );
        match event.kind {
            EventKind::RoundOpened { round, .. } => {
                playing.open_round = Some(round);
                playing.move_due = Some(now.max(self.next_allowed));
                self.waiting = None;
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
                self.waiting = Some((now + schedule.timeout, "next_round"));
            }
            EventKind::MatchEnded { .. } => {
                playing.ended = true;
                if playing.seat == Seat::A {
                    tally.match_completed(now);
                }
                playing.open_round = None;
                playing.move_due = None;
                self.waiting = Some((now + schedule.timeout, "match_result"));
            }
            EventKind::OpponentDisconnected { .. } => tally.error("opponent_disconnected"),
            _ => {}
        }
    }

    /// What to send before closing at the end of the run: leaving the match or the queue ends
    /// it on the server at once, rather than after the resume grace window, so a run that
    /// follows with the same accounts starts from a clean state.
    pub fn farewell(&mut self) -> Option<ClientMessage> {
        let id = Some(self.next_id);
        self.next_id += 1;
        match &self.phase {
            Phase::Playing(playing) if !playing.ended => Some(ClientMessage::Leave { id }),
            Phase::Queueing => Some(ClientMessage::Cancel { id }),
            _ => None,
        }
    }

    /// Queues for a match, unless the run is stopping.
    fn queue(&mut self, now: Instant, schedule: &Schedule) -> Option<ClientMessage> {
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

#[cfg(test)]
#[path = "player_tests.rs"]
mod tests;

//! A real-time match between two seats, as a state machine that a runtime drives and a log
//! records.
//!
//! The runtime (a WebSocket room, later replicated through an append-only log in Redis) feeds
//! [`Command`]s to [`Match::apply`] with the current time and appends the [`Event`]s it returns,
//! all of one call together. Nothing here reads a clock, draws randomness or does I/O: time,
//! salts and bot moves are inputs, so the same commands at the same times give the same log.
//!
//! **The log.** Public events are what players and spectators see; the one server-only kind,
//! [`EventKind::MoveSealed`], records a move the server holds before its round is revealed.
//! Both kinds go into the one log so that [`Match::replay`] can rebuild a round in progress on
//! another instance; [`public`] strips the server-only entries for a client. Replay re-runs the
//! command each log entry stands for and requires the match to produce exactly the logged
//! entries, so a rebuilt match equals the original and a log that was tampered with or cut
//! mid-call is refused. [`verify_transcript`] checks a public transcript without the secrets.
//!
//! **Rounds.** Rounds count from 1. A round opens with a deadline `round_timeout_ms` ahead (for
//! bot seats, once the bot's move is in, so its commitment can be published) and is revealed
//! as soon as both seats have moved, or at the first [`Command::Tick`] at or after the
//! deadline. A seat without a move by then forfeits the round to the other; a commit-reveal
//! seat that committed but did not reveal has no move. If *neither* seat moved, the round is
//! void ([`RoundWinner::BothForfeit`]): nobody scores, and after [`MAX_VOID_ROUNDS`] void
//! rounds in a row the match ends as no contest, so a match whose players both vanished still
//! ends. The match ends as soon as one seat has the mode's wins, and after [`MAX_ROUNDS`]
//! rounds in any case.

mod command;
mod config;
mod event;
mod moves;
mod replay;
mod round;
mod transcript;

pub use command::{Command, MatchError};
pub use config::{
    ConfigError, MAX_MATCH_ID_BYTES, MAX_ROUND_TIMEOUT_MS, MatchConfig, Mode, PerSeat, SeatKind,
};
pub use event::{
    EndReason, Event, EventKind, MAX_ROUNDS, MAX_VOID_ROUNDS, MatchOutcome, RoundWinner, public,
    round_winner,
};
pub use replay::{ReplayError, ReplayFault};
pub use transcript::{TranscriptFault, VerifyError, verify_transcript};

use round::Slot;

use crate::Seat;

/// The state of one match. Equal states came from equal logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    config: MatchConfig,
    next_seq: u64,
    /// The time of the latest event; commands carrying an earlier time are taken to happen now,
    /// so event times never go backwards when instances' clocks disagree.
    last_at_ms: u64,
    round: u32,
    phase: Phase,
    slots: PerSeat<Slot>,
    score: PerSeat<u32>,
    void_streak: u32,
    connected: PerSeat<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The round's number is taken but it waits for the bot seats' moves.
    AwaitingBots,
    Open {
        deadline_ms: u64,
    },
    Ended,
}

impl Match {
    /// Starts a match at `now_ms`: its first entry records the configuration, and round 1
    /// opens at once unless it waits for a bot's move.
    pub fn new(config: MatchConfig, now_ms: u64) -> Result<(Match, Vec<Event>), MatchError> {
        config.validate()?;
        let mut started = Match {
            config: config.clone(),
            next_seq: 0,
            last_at_ms: now_ms,
            round: 0,
            phase: Phase::AwaitingBots,
            slots: PerSeat::new(Slot::Empty, Slot::Empty),
            score: PerSeat::default(),
            void_streak: 0,
            connected: PerSeat::new(true, true),
        };
        let mut events = Vec::new();
        started.emit(&mut events, now_ms, EventKind::MatchStarted { config });
        started.start_round(&mut events, now_ms);
        Ok((started, events))
    }

    /// Applies one command at `now_ms` and returns the events to append to the log, in order.
    /// On an error nothing changed and nothing is to be appended: every handler checks
    /// everything before it changes anything.
    pub fn apply(&mut self, command: Command, now_ms: u64) -> Result<Vec<Event>, MatchError> {
        let now = now_ms.max(self.last_at_ms);
        let mut events = Vec::new();
        if self.phase == Phase::Ended {
            // A timer may fire after the match ended; that is not the runtime's mistake.
            return match command {
                Command::Tick => Ok(events),
                _ => Err(MatchError::Ended),
            };
        }
        let out = &mut events;
        match command {
            Command::Lock {
                seat,
                round,
                choice,
            } => self.lock(out, now, seat, round, choice)?,
            Command::Commit {
                seat,
                round,
                commitment,
            } => self.commit(out, now, seat, round, commitment)?,
            Command::Reveal {
                seat,
                round,
                choice,
                salt,
            } => self.reveal_move(out, now, seat, round, choice, salt)?,
            Command::BotMove {
                seat,
                round,
                choice,
                salt,
            } => self.bot_move(out, now, seat, round, choice, salt)?,
            Command::Tick => {
                if let Phase::Open { deadline_ms } = self.phase
                    && now >= deadline_ms
                {
                    self.reveal(out, now);
                }
            }
            Command::Leave { seat } => {
                let outcome = MatchOutcome::Won(seat.other());
                self.end(out, now, outcome, EndReason::Left(seat));
            }
            Command::Disconnect { seat } => self.set_connected(out, now, seat, false),
            Command::Reconnect { seat } => self.set_connected(out, now, seat, true),
            Command::GraceExpired { seat } => {
                // The runtime's grace timer can fire just after the seat came back; the
                // match's own record of the connection decides.
                if self.connected[seat] {
                    return Err(MatchError::SeatConnected { seat });
                }
                let outcome = MatchOutcome::Won(seat.other());
                self.end(out, now, outcome, EndReason::GraceExpired(seat));
            }
            Command::NoContest => {
                self.end(out, now, MatchOutcome::NoContest, EndReason::Drained);
            }
        }
        Ok(events)
    }

    /// When the runtime must send [`Command::Tick`]: the open round's deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        match self.phase {
            Phase::Open { deadline_ms } => Some(deadline_ms),
            Phase::AwaitingBots | Phase::Ended => None,
        }
    }

    /// The bot seat (and round) the runtime must send [`Command::BotMove`] for before the round
    /// can open.
    pub fn bot_move_needed(&self) -> Option<(Seat, u32)> {
        if self.phase != Phase::AwaitingBots {
            return None;
        }
        self.config
            .bot_seats()
            .find(|&seat| self.slots[seat] == Slot::Empty)
            .map(|seat| (seat, self.round))
    }

    pub fn config(&self) -> &MatchConfig {
        &self.config
    }

    /// The current round, from 1.
    pub fn round(&self) -> u32 {
        self.round
    }

    pub fn score(&self) -> PerSeat<u32> {
        self.score
    }

    pub fn is_ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    fn set_connected(&mut self, events: &mut Vec<Event>, now: u64, seat: Seat, connected: bool) {
        // Repeated notices are expected from a flapping connection; only changes are news.
        if self.connected[seat] == connected {
            return;
        }
        self.connected[seat] = connected;
        let kind = if connected {
            EventKind::OpponentReconnected { seat }
        } else {
            EventKind::OpponentDisconnected { seat }
        };
        self.emit(events, now, kind);
    }
}

#[cfg(test)]
mod log_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod seat_tests;
#[cfg(test)]
mod tests;

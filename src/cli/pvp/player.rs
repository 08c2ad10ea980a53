//! The client's side of the real-time protocol, as a state machine without I/O.
//!
//! Server messages, the player's commands and clock ticks go in; a [`Step`] comes out: the
//! messages to send, the lines to print and, once the match is over, how it finished. Time is
//! an input (local Unix milliseconds), so every path, reconnection included, is tested without
//! a socket or a clock. The state outlives connections: when one drops, the next greets with
//! `resume` and the last event `seq` seen, and events are applied at most once by `seq`, so a
//! replay that repeats what was seen (a `hello` replays a match from its start) changes
//! nothing.

use std::time::Duration;

use game::Seat;
use game::matches::Mode;
use game::{Choice, matches::Event};
use protocol::{ClientMessage, MoveMode, Opponent, OpponentKind, OpponentView, ServerMessage};

use super::narrate::{printable, rating_change};

use crate::cli::names::{mode_name, seat_name};
use match_view::Game;
pub use match_view::Plan;

mod greeting;
mod match_view;

/// The client sends a `ping` this often: its `pong` refines the clock offset, and the silence
/// of a dead connection shows within a few of these rather than after a TCP timeout.
pub const PING_EVERY_MS: u64 = 5_000;
/// How long to wait for `match_result` after `match_ended` before reporting without it. The
/// server sends both in one go; this only bounds a server that does not.
const RESULT_WAIT_MS: u64 = 5_000;
/// Moves typed ahead of the rounds they are for, at most: enough to script a best-of-5 with
/// ties, small enough that a stuck key cannot queue a match's worth.
pub const MAX_PLANNED_MOVES: usize = 16;
/// The grace window assumed before a `welcome` says what it is (the server's default).
const DEFAULT_GRACE_MS: u64 = 30_000;

/// What the player asked for.
pub enum Command {
    Move(Choice),
    Chat(String),
    Leave,
}

/// How the command ends.
#[derive(Debug, PartialEq)]
pub enum Finish {
    /// The match was played (or left) to its result.
    Played,
    /// Left before a match started.
    Left,
    /// The match could not be played or followed to its end.
    Failed(String),
}

#[derive(Debug, Default)]
pub struct Step {
    pub send: Vec<ClientMessage>,
    pub print: Vec<String>,
    pub finish: Option<Finish>,
}

impl Step {
    fn say(&mut self, line: impl Into<String>) {
        self.print.push(line.into());
    }
}

/// The match wanted from the queue.
pub struct Wanted {
    pub mode: Mode,
    pub opponent: Opponent,
    pub bot_after_ms: Option<u64>,
}

pub struct Player {
    wanted: Wanted,
    plan: Plan,
    /// The server's base URL, for the `verify` hint at the end.
    server: String,
    next_id: u64,
    greeted: bool,
    greeted_before: bool,
    resume_token: Option<String>,
    /// The id of the `resume` sent on this connection, to tell its refusal from others'.
    resume_id: Option<u64>,
    queue_id: Option<u64>,
    grace_ms: u64,
    /// Server clock minus local clock.
    offset_ms: i64,
    /// The `ping` in flight: its id and when it left.
    ping: Option<(u64, u64)>,
    last_ping_ms: u64,
    /// After a `hello` that replaced a refused `resume`: the ping whose `pong` comes after
    /// anything the `hello` replays (the server sends its answers in order). Until it comes,
    /// nothing is sent on the strength of what may still be replayed.
    barrier: Option<u64>,
    /// Whether the server told of our ticket or match since the barrier went out.
    confirmed: bool,
    /// Events still to come from a `resume`.
    replay_left: Option<u64>,
    ticket: Option<String>,
    game: Option<Game>,
    leaving: bool,
}

impl Player {
    pub fn new(wanted: Wanted, plan: Plan, server: String) -> Player {
        Player {
            wanted,
            plan,
            server,
            next_id: 1,
            greeted: false,
            greeted_before: false,
            resume_token: None,
            resume_id: None,
            queue_id: None,
            grace_ms: DEFAULT_GRACE_MS,
            offset_ms: 0,
            ping: None,
            last_ping_ms: 0,
            barrier: None,
            confirmed: false,
            replay_left: None,
            ticket: None,
            game: None,
            leaving: false,
        }
    }

    /// How long the server keeps a dropped player's match: the time to reconnect in.
    pub fn grace(&self) -> Duration {
        Duration::from_millis(self.grace_ms)
    }

    fn id(&mut self) -> Option<u64> {
        let id = self.next_id;
        self.next_id += 1;
        Some(id)
    }

    fn server_now(&self, now: u64) -> i64 {
        now as i64 + self.offset_ms
    }

    pub fn on_server(&mut self, message: ServerMessage, now: u64) -> Step {
        let mut step = Step::default();
        match message {
            ServerMessage::Welcome {
                account,
                name,
                resume_token,
                grace_ms,
                server_time_ms,
                rating,
                ..
            } => {
                self.resume_token = Some(resume_token);
                self.grace_ms = grace_ms;
                self.offset_ms = server_time_ms as i64 - now as i64;
                self.welcomed(&mut step, &account, name.as_deref(), rating, now);
            }
            ServerMessage::Resumed {
                resume_token,
                match_id,
                seat,
                replayed,
                complete,
                queued,
                server_time_ms,
                ..
            } => {
                self.resume_token = Some(resume_token);
                self.offset_ms = server_time_ms as i64 - now as i64;
                self.greeted = true;
                self.resumed(&mut step, match_id, seat, replayed, complete, queued);
            }
            ServerMessage::Queued {
                ticket,
                mode,
                opponent,
                expires_at_ms,
                bot_at_ms,
                ..
            } => {
                self.ticket = Some(ticket);
                self.confirmed = true;
                let seconds = |at: u64| (at as i64 - self.server_now(now)).max(0) / 1000;
                let bot = bot_at_ms.map_or_else(String::new, |at| {
                    format!("; a bot takes the seat in {}s if nobody comes", seconds(at))
                });
                step.say(format!(
                    "looking for {} to play {}: the ticket lasts {}s{bot}",
                    opponent_wanted(opponent),
                    mode_name(mode),
                    seconds(expires_at_ms)
                ));
            }
            ServerMessage::Cancelled { .. } => self.ticket = None,
            ServerMessage::QueueExpired { reason, .. } => {
                self.ticket = None;
                let why = match reason {
                    protocol::ExpiredReason::Timeout => "nobody to play was found in time",
                    protocol::ExpiredReason::Draining => "the server is shutting down",
                };
                self.finish(&mut step, Finish::Failed(why.to_owned()));
            }
            ServerMessage::Matched {
                match_id,
                seat,
                opponent,
                bot_fallback,
                round_timeout_ms,
                ..
            } => self.matched(
                &mut step,
                match_id,
                seat,
                &opponent,
                bot_fallback,
                round_timeout_ms,
            ),
            ServerMessage::Event { match_id, event } => {
                self.event(&mut step, &match_id, event, now)
            }
            ServerMessage::MatchResult {
                match_id,
                result,
                rating_before,
                rating_after,
                rated,
            } => {
                let score = self.game.as_ref().map_or_else(String::new, |game| {
                    format!(
                        " {} against {}",
                        game.view().score(game.score),
                        game.opponent
                    )
                });
                let result = match result {
                    protocol::Result::Won => "you won",
                    protocol::Result::Lost => "you lost",
                    protocol::Result::NoContest => "no contest",
                };
                step.say(format!("result: {result}{score}"));
                step.say(format!(
                    "rating: {}",
                    rating_change(rating_before, rating_after, rated)
                ));
                let match_id = printable(&match_id);
                step.say(format!("match id: {match_id}"));
                step.say(format!(
                    "verify it: guess-game verify --match {match_id} --server {}",
                    self.server
                ));
                self.finish(&mut step, Finish::Played);
            }
            ServerMessage::Chat {
                from, name, text, ..
            } => {
                let mine = self.game.as_ref().is_some_and(|game| game.seat == from);
                let who = if mine {
                    "you".to_owned()
                } else {
                    printable(&name)
                };
                step.say(format!("{who}: {}", printable(&text)));
            }
            ServerMessage::Ack { .. } => {}
            ServerMessage::Pong { id, server_time_ms } => {
                self.pong(&mut step, id, server_time_ms, now);
            }
            ServerMessage::Error { id, code, message } => {
                self.error(&mut step, id, &code, &message)
            }
            ServerMessage::Warning { message, .. } => {
                step.say(format!("warning from the server: {}", printable(&message)));
            }
            ServerMessage::Draining { deadline_ms } => {
                let seconds = (deadline_ms as i64 - self.server_now(now)).max(0) / 1000;
                step.say(format!(
                    "the server is shutting down: a running match ends within {seconds}s"
                ));
            }
        }
        step
    }

    fn matched(
        &mut self,
        step: &mut Step,
        match_id: String,
        seat: Seat,
        opponent: &OpponentView,
        bot_fallback: bool,
        round_timeout_ms: u64,
    ) {
        self.ticket = None;
        self.confirmed = true;
        let name = printable(&opponent.name);
        if let Some(game) = &mut self.game
            && game.match_id == match_id
        {
            game.opponent = name;
            step.say("the match is replayed from its start; what was seen is skipped");
            return;
        }
        let who = match (opponent.kind, opponent.rating) {
            (OpponentKind::Human, Some(rating)) => format!("{name} (rated {rating:.0})"),
            (OpponentKind::Human, None) => name.clone(),
            (OpponentKind::Bot, _) if bot_fallback => {
                format!("the bot {name} (nobody else was found in time)")
            }
            (OpponentKind::Bot, _) => format!("the bot {name}"),
        };
        step.say(format!(
            "matched against {who}: you are seat {}, rounds last {}s (match {})",
            seat_name(seat),
            round_timeout_ms / 1000,
            printable(&match_id)
        ));
        self.game = Some(Game::new(match_id, seat, name));
    }

    fn event(&mut self, step: &mut Step, match_id: &str, event: Event, now: u64) {
        let replaying = self.replay_left.is_some();
        if let Some(left) = &mut self.replay_left {
            *left = left.saturating_sub(1);
        }
        let server_now = self.server_now(now);
        if let Some(game) = self.game.as_mut().filter(|game| game.match_id == match_id)
            && game.last_seq.is_none_or(|seen| event.seq > seen)
        {
            game.last_seq = Some(event.seq);
            game.apply(&event.kind, now);
            let left = game.deadline_ms.map_or(0.0, |deadline| {
                (deadline as i64 - server_now) as f64 / 1000.0
            });
            if let Some(line) = game.view().event(&event.kind, left.max(0.0)) {
                step.say(if replaying {
                    format!("(replayed) {line}")
                } else {
                    line
                });
            }
        }
        if self.replay_left == Some(0) {
            self.replay_left = None;
            if let Some(game) = &self.game {
                step.say(format!(
                    "caught up: round {}, score {}",
                    game.round,
                    game.view().score(game.score)
                ));
            }
        }
        self.maybe_move(step);
    }

    fn error(&mut self, step: &mut Step, id: Option<u64>, code: &str, message: &str) {
        let message = printable(message);
        if code == protocol::codes::RESUME_UNKNOWN && id.is_some() && id == self.resume_id {
            self.resume_refused(step, &message);
            return;
        }
        if id.is_some() && id == self.queue_id {
            match code {
                // The account was already waiting or playing: the server replays that.
                protocol::codes::IN_MATCH | protocol::codes::ALREADY_QUEUED => return,
                _ => {
                    let failure = format!("the server would not queue: {message} ({code})");
                    self.finish(step, Finish::Failed(failure));
                    return;
                }
            }
        }
        step.say(format!("the server refused: {message} ({code})"));
    }

    pub fn on_command(&mut self, command: Command) -> Step {
        let mut step = Step::default();
        match command {
            Command::Move(choice) => self.planned(&mut step, choice),
            Command::Chat(text) => {
                let running = self.game.as_ref().is_some_and(Game::running);
                if !self.greeted {
                    step.say("not connected: the line was not sent");
                } else if running {
                    let id = self.id();
                    step.send.push(ClientMessage::Chat { id, text });
                } else {
                    step.say("chat is for a running match");
                }
            }
            Command::Leave => self.leave(&mut step),
        }
        step
    }

    fn planned(&mut self, step: &mut Step, choice: Choice) {
        let Plan::Typed(queue) = &mut self.plan else {
            step.say("moves come from --moves");
            return;
        };
        if queue.len() >= MAX_PLANNED_MOVES {
            step.say(format!(
                "{MAX_PLANNED_MOVES} moves are waiting already: not kept"
            ));
            return;
        }
        queue.push_back(choice);
        let sent = step.send.len();
        self.maybe_move(step);
        if step.send.len() == sent {
            let which = match &self.game {
                Some(game) if game.deadline_ms.is_some() => "the next round",
                Some(_) => "the round about to open",
                None => "the first round",
            };
            step.say(format!("{choice} is kept for {which}"));
        }
    }

    fn leave(&mut self, step: &mut Step) {
        self.leaving = true;
        let running = self.game.as_ref().is_some_and(Game::running);
        if running && self.greeted {
            step.say("leaving: the match is forfeited");
            let id = self.id();
            step.send.push(ClientMessage::Leave { id });
        } else if running {
            step.say(
                "left while disconnected: the match is forfeited when the grace window passes",
            );
            step.finish = Some(Finish::Left);
        } else {
            // A queue request still unanswered: sent after it on the same connection, the
            // cancel is handled after it. A known ticket is cancelled by `finish`.
            let in_flight = self.queue_id.is_some() && self.ticket.is_none() && self.game.is_none();
            if self.greeted && in_flight {
                let id = self.id();
                step.send.push(ClientMessage::Cancel { id });
            }
            if self.greeted && (in_flight || self.ticket.is_some()) {
                step.say("left the queue");
            }
            self.finish(step, Finish::Left);
        }
    }

    /// Pings on schedule and gives up waiting for a result the server does not send.
    pub fn tick(&mut self, now: u64) -> Step {
        let mut step = Step::default();
        if self.greeted && now.saturating_sub(self.last_ping_ms) >= PING_EVERY_MS {
            let ping = self.ping_now(now);
            step.send.push(ping);
        }
        let overdue = self
            .game
            .as_ref()
            .and_then(|game| game.ended_at_ms)
            .is_some_and(|at| now.saturating_sub(at) >= RESULT_WAIT_MS);
        if overdue {
            step.say("the server sent no result for the match; its end is above");
            self.finish(&mut step, Finish::Played);
        }
        step
    }

    /// The line a terminal keeps at its bottom: the round, the time left and who has moved.
    pub fn status(&self, now: u64) -> String {
        if !self.greeted {
            return "connecting…".to_owned();
        }
        let Some(game) = &self.game else {
            return "looking for an opponent…  (q leaves)".to_owned();
        };
        if !game.running() {
            return "match over: waiting for the result".to_owned();
        }
        let score = game.view().score(game.score);
        let Some(deadline) = game.deadline_ms else {
            return format!("score {score}  ·  the next round opens soon");
        };
        let left = ((deadline as i64 - self.server_now(now)).max(0) as f64 / 1000.0).round();
        let state = |seat: Seat, waiting: &'static str| {
            if game.locked[seat] { "locked" } else { waiting }
        };
        let waiting = if game.sent_round == Some(game.round) {
            "sent"
        } else {
            "to move"
        };
        format!(
            "round {} · {left:.0}s left · you: {} · {}: {} · score {score}  [r/p/s, / chat, q]",
            game.round,
            state(game.seat, waiting),
            game.opponent,
            state(game.seat.other(), "thinking"),
        )
    }

    fn ping_now(&mut self, now: u64) -> ClientMessage {
        let id = self.id();
        self.ping = id.map(|id| (id, now));
        self.last_ping_ms = now;
        ClientMessage::Ping { id }
    }

    fn send_queue(&mut self, step: &mut Step) {
        if self.leaving {
            return;
        }
        let id = self.id();
        self.queue_id = id;
        step.send.push(ClientMessage::Queue {
            id,
            mode: self.wanted.mode,
            opponent: self.wanted.opponent,
            bot_after_ms: self.wanted.bot_after_ms,
            moves: MoveMode::Sealed,
        });
    }

    /// Sends the next planned move if a round is open for it and nothing may still be
    /// replayed that says it was already made.
    fn maybe_move(&mut self, step: &mut Step) {
        if !self.greeted || self.replay_left.is_some() || self.barrier.is_some() {
            return;
        }
        let Some(game) = self.game.as_mut().filter(|game| game.running()) else {
            return;
        };
        if game.deadline_ms.is_none()
            || game.locked[game.seat]
            || game.sent_round == Some(game.round)
        {
            return;
        }
        let round = game.round;
        let choice = match game.chosen {
            Some((chosen_round, choice)) if chosen_round == round => choice,
            _ => match self.plan.take() {
                Some(choice) => choice,
                None => return,
            },
        };
        game.chosen = Some((round, choice));
        game.sent_round = Some(round);
        step.say(format!("you play {choice} in round {round}"));
        let id = self.id();
        step.send.push(ClientMessage::Move { id, round, choice });
    }

    /// Ends the command; a ticket still waiting is cancelled so nobody is matched with a
    /// player who is gone.
    fn finish(&mut self, step: &mut Step, finish: Finish) {
        if self.ticket.take().is_some() && self.greeted {
            let id = self.id();
            step.send.push(ClientMessage::Cancel { id });
        }
        step.finish = Some(finish);
    }
}

fn opponent_wanted(opponent: Opponent) -> &'static str {
    match opponent {
        Opponent::Human => "a person",
        Opponent::Bot => "a bot",
        Opponent::Any => "an opponent",
    }
}

#[cfg(test)]
mod tests;

//! The players, the queue and the running matches of this instance, behind one lock.
//!
//! Connections call in synchronously (a message in, messages out through outboxes); one timer
//! task fires round deadlines, grace windows and the matchmaker's sweeps. Every operation is
//! short and never awaits under the lock; sending is a push onto an outbox.
//!
//! A match's state changes only through `game::matches::Match::apply`, and every event it
//! returns is appended to the room's log before it is sent, so the log is the truth that
//! `resume` replays and `GET /matches/{id}` returns.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use game::Seat;
use game::fairness::{Commitment, Salt};
use game::matches::{
    Command, EventKind, Match, MatchConfig, MatchError, MatchOutcome, PerSeat, SeatKind, public,
};
use protocol::{
    ClientMessage, ExpiredReason, Opponent, OpponentKind, OpponentView, ServerMessage, codes,
};
use tokio::sync::Notify;

use super::chat;
use super::experiment::Experiment;
use super::matchmaker::{LocalMatchmaker, Matchmaker, Outcome, Ticket, Windows};
use super::metrics::Metrics;
use super::outbox::{CloseOrder, Outbox};
use super::records::{Change, Finished, Records, SeatSummary, SideResult};
use super::{Clock, RealtimeSettings};
use crate::accounts::AccountId;

/// One connection, as the hub knows it.
#[derive(Clone, Debug)]
pub struct Link {
    pub id: u64,
    pub outbox: Arc<Outbox>,
}

/// Who a connection is: fixed at the upgrade.
#[derive(Clone, Debug)]
pub struct Caller {
    pub account: AccountId,
    pub name: String,
    pub link: Link,
}

/// What the connection must do after a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    Continue,
    /// The connection is now greeted (`hello` or `resume` accepted).
    Greeted,
    Close(CloseOrder),
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Room(String),
    Grace(AccountId),
    Queue,
    DrainEnd,
}

struct Player {
    name: String,
    link: Option<Link>,
    resume_token: String,
    ticket: Option<String>,
    room: Option<(String, Seat)>,
    /// A match that ended while the player was away: replayed on `hello` or `resume`.
    unseen: Option<Unseen>,
    grace_at: Option<u64>,
    chat: chat::Limiter,
}

struct Unseen {
    match_id: String,
    seat: Seat,
    /// The `matched` message, for a `hello` that replays the match from its start.
    matched: ServerMessage,
    result: ServerMessage,
}

enum Occupant {
    Human(AccountId),
    Bot {
        arm: usize,
        bot: Box<dyn game::bots::Bot + Send>,
    },
}

struct Room {
    game: Match,
    log: Vec<game::matches::Event>,
    seats: PerSeat<Occupant>,
    names: PerSeat<String>,
    ratings: PerSeat<f64>,
    deadline: Option<u64>,
    /// The bot's move this round, for it to learn from the reveal.
    bot_moves: PerSeat<Option<game::Choice>>,
    fallback: bool,
}

struct State {
    players: HashMap<AccountId, Player>,
    resume_tokens: HashMap<String, AccountId>,
    matchmaker: Box<dyn Matchmaker>,
    tickets: HashMap<String, Ticket>,
    rooms: HashMap<String, Room>,
    records: Records,
    timers: BTreeSet<(u64, Timer)>,
    queue_timer: Option<u64>,
    draining: Option<u64>,
}

pub struct Hub {
    state: Mutex<State>,
    /// Wakes the timer task when a timer was set.
    timer_set: Notify,
    settings: RealtimeSettings,
    clock: Clock,
    experiment: Experiment,
    pub(super) metrics: Metrics,
}

/// A random 128-bit id as 32 hex digits.
fn random_id() -> String {
    let mut bytes = [0u8; 16];
    fill_random(&mut bytes);
    game::fairness::to_hex(&bytes)
}

fn fill_random(bytes: &mut [u8]) {
    // The OS source failing is the machine failing; a zeroed salt is still refused nowhere, so
    // log it loudly rather than panic a connection.
    if let Err(error) = getrandom::fill(bytes) {
        tracing::error!(%error, "the OS random source failed");
    }
}

fn error(id: Option<u64>, code: &str, message: impl Into<String>) -> ServerMessage {
    ServerMessage::Error {
        id,
        code: code.to_owned(),
        message: message.into(),
    }
}

impl Hub {
    pub fn new(settings: RealtimeSettings, clock: Clock, experiment: Experiment) -> Hub {
        let matchmaker = LocalMatchmaker::new(Windows::default(), settings.max_queue);
        let kept = settings.matches_kept;
        Hub {
            state: Mutex::new(State {
                players: HashMap::new(),
                resume_tokens: HashMap::new(),
                matchmaker: Box::new(matchmaker),
                tickets: HashMap::new(),
                rooms: HashMap::new(),
                records: Records::new(kept),
                timers: BTreeSet::new(),
                queue_timer: None,
                draining: None,
            }),
            timer_set: Notify::new(),
            settings,
            clock,
            experiment,
            metrics: Metrics::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    pub fn settings(&self) -> &RealtimeSettings {
        &self.settings
    }

    pub fn experiment(&self) -> &Experiment {
        &self.experiment
    }

    /// One message from a connection. `greeted` says whether `hello`/`resume` was accepted.
    pub fn handle(&self, caller: &Caller, greeted: bool, message: ClientMessage) -> After {
        let now = self.now_ms();
        let id = message.id();
        let mut state = self.lock();
        let state = &mut *state;
        let send = |message| {
            caller.link.outbox.push(message);
        };
        match message {
            ClientMessage::Hello { .. } | ClientMessage::Resume { .. } if greeted => {
                send(error(id, codes::ALREADY_GREETED, "already greeted"));
                After::Continue
            }
            ClientMessage::Hello { id } => {
                self.hello(state, caller, id, now);
                After::Greeted
            }
            ClientMessage::Resume {
                id,
                token,
                last_seq,
            } => self.resume(state, caller, id, &token, last_seq, now),
            _ if !greeted => {
                send(error(id, codes::HELLO_FIRST, "send hello first"));
                After::Continue
            }
            ClientMessage::Ping { id } => {
                send(ServerMessage::Pong {
                    id,
                    server_time_ms: now,
                });
                After::Continue
            }
            ClientMessage::Queue {
                id,
                mode,
                opponent,
                bot_after_ms,
                moves,
            } => {
                self.queue(state, caller, id, mode, opponent, bot_after_ms, moves, now);
                After::Continue
            }
            ClientMessage::Cancel { id } => {
                let ticket = state
                    .players
                    .get_mut(&caller.account)
                    .and_then(|player| player.ticket.take());
                match ticket {
                    Some(ticket) => {
                        state.matchmaker.cancel(&ticket);
                        state.tickets.remove(&ticket);
                        send(ServerMessage::Cancelled { id, ticket });
                    }
                    None => send(error(id, codes::NOT_QUEUED, "no ticket is waiting")),
                }
                After::Continue
            }
            ClientMessage::Move { id, round, choice } => {
                self.seat_command(state, caller, id, now, |seat| Command::Lock {
                    seat,
                    round,
                    choice,
                })
            }
            ClientMessage::Commit {
                id,
                round,
                commitment,
            } => match Commitment::from_hex(&commitment) {
                Ok(commitment) => {
                    self.seat_command(state, caller, id, now, |seat| Command::Commit {
                        seat,
                        round,
                        commitment,
                    })
                }
                Err(_) => {
                    send(error(
                        id,
                        codes::INVALID_COMMITMENT,
                        "commitment must be 64 hex digits",
                    ));
                    After::Continue
                }
            },
            ClientMessage::Reveal {
                id,
                round,
                choice,
                salt,
            } => match Salt::from_hex(&salt) {
                Ok(salt) => self.seat_command(state, caller, id, now, |seat| Command::Reveal {
                    seat,
                    round,
                    choice,
                    salt,
                }),
                Err(_) => {
                    send(error(
                        id,
                        codes::INVALID_COMMITMENT,
                        "salt must be 64 hex digits",
                    ));
                    After::Continue
                }
            },
            ClientMessage::Leave { id } => {
                self.seat_command(state, caller, id, now, |seat| Command::Leave { seat })
            }
            ClientMessage::Chat { id, text } => self.chat(state, caller, id, &text, now),
        }
    }

    fn hello(&self, state: &mut State, caller: &Caller, id: Option<u64>, now: u64) {
        let token = self.attach(state, caller, now);
        let rating = state.records.rating(&caller.account).rating;
        caller.link.outbox.push(ServerMessage::Welcome {
            id,
            account: caller.account.to_string(),
            name: Some(caller.name.clone()),
            resume_token: token,
            grace_ms: self.settings.resume_grace_ms(),
            heartbeat_ms: self.settings.heartbeat_interval.as_millis() as u64,
            heartbeat_timeout_ms: self.settings.heartbeat_timeout.as_millis() as u64,
            server_time_ms: now,
            rating,
        });
        if let Some(deadline_ms) = state.draining {
            caller.link.outbox.push(ServerMessage::Draining { deadline_ms });
        }
        // A hello from an account already playing (a new device, a reload without the resume
        // token) picks its match or ticket up from the start.
        let Some(player) = state.players.get(&caller.account) else {
            return;
        };
        if let Some((room_id, seat)) = player.room.clone()
            && let Some(room) = state.rooms.get(&room_id)
        {
            let timeout = self.settings.round_timeout_ms();
            caller
                .link
                .outbox
                .push(matched_message(&room_id, room, seat, "", timeout));
            for event in room.log.iter().filter(|e| e.kind.is_public()) {
                caller.link.outbox.push(ServerMessage::Event {
                    match_id: room_id.clone(),
                    event: event.clone(),
                });
            }
        } else if let Some(ticket) = player.ticket.as_ref().and_then(|t| state.tickets.get(t)) {
            caller.link.outbox.push(queued_message(None, ticket));
        } else if let Some(unseen) = state
            .players
            .get_mut(&caller.account)
            .and_then(|player| player.unseen.take())
        {
            caller.link.outbox.push(unseen.matched);
            let events = state
                .records
                .transcript(&unseen.match_id)
                .map(|finished| finished.events.clone())
                .unwrap_or_default();
            for event in events {
                caller.link.outbox.push(ServerMessage::Event {
                    match_id: unseen.match_id.clone(),
                    event,
                });
            }
            caller.link.outbox.push(unseen.result);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn resume(
        &self,
        state: &mut State,
        caller: &Caller,
        id: Option<u64>,
        token: &str,
        last_seq: Option<u64>,
        now: u64,
    ) -> After {
        let known = state.resume_tokens.get(token) == Some(&caller.account)
            && state.players.contains_key(&caller.account);
        if !known {
            self.metrics.resumes(2);
            caller.link.outbox.push(error(
                id,
                codes::RESUME_UNKNOWN,
                "the resume token is unknown or expired: send hello",
            ));
            return After::Continue;
        }
        state.resume_tokens.remove(token);
        let token = self.attach(state, caller, now);
        let Some(player) = state.players.get_mut(&caller.account) else {
            return After::Continue;
        };
        let queued = player.ticket.is_some();
        // The live match, or the one that ended while the player was away.
        let (target, unseen) = match (&player.room, player.unseen.take()) {
            (Some(room), _) => (Some(room.clone()), None),
            (None, Some(ended)) => (Some((ended.match_id.clone(), ended.seat)), Some(ended)),
            (None, None) => (None, None),
        };
        let after = last_seq.map_or(0, |seq| seq + 1);
        let mut complete = true;
        let (events, match_id, seat) = match &target {
            Some((room_id, seat)) => {
                let log: Vec<game::matches::Event> = match state.rooms.get(room_id) {
                    Some(room) => room.log.clone(),
                    None => match state.records.transcript(room_id) {
                        Some(finished) => finished.events.clone(),
                        None => {
                            // Ended, and its transcript already forgotten (`matches_kept`).
                            complete = false;
                            Vec::new()
                        }
                    },
                };
                let missed: Vec<_> = public(&log)
                    .into_iter()
                    .filter(|event| event.seq >= after || last_seq.is_none())
                    .collect();
                (missed, Some(room_id.clone()), Some(*seat))
            }
            None => (Vec::new(), None, None),
        };
        self.metrics.resumes(if complete { 0 } else { 1 });
        caller.link.outbox.push(ServerMessage::Resumed {
            id,
            resume_token: token,
            match_id: match_id.clone(),
            seat,
            replayed: events.len() as u64,
            complete,
            queued,
            server_time_ms: now,
        });
        if let Some(match_id) = match_id {
            for event in events {
                caller.link.outbox.push(ServerMessage::Event {
                    match_id: match_id.clone(),
                    event,
                });
            }
        }
        if let Some(unseen) = unseen {
            caller.link.outbox.push(unseen.result);
        }
        After::Greeted
    }

    /// Makes `caller` the account's connection (closing an older one), ends a pending grace
    /// window, and returns a fresh resume token.
    fn attach(&self, state: &mut State, caller: &Caller, now: u64) -> String {
        let token = random_id();
        let chat_burst = self.settings.chat_burst;
        let player = state
            .players
            .entry(caller.account)
            .or_insert_with(|| Player {
                name: caller.name.clone(),
                link: None,
                resume_token: String::new(),
                ticket: None,
                room: None,
                unseen: None,
                grace_at: None,
                chat: chat::Limiter::new(chat_burst, now),
            });
        // Back from a drop: the opponent hears of it before this connection is the player's,
        // so the notice reaches this player only through the replay that follows.
        if player.link.is_none()
            && let Some((room_id, seat)) = player.room.clone()
        {
            let _ = self.run(state, &room_id, Command::Reconnect { seat }, now);
        }
        let Some(player) = state.players.get_mut(&caller.account) else {
            return token;
        };
        if let Some(old) = player.link.replace(caller.link.clone())
            && old.id != caller.link.id
        {
            self.metrics.takeovers();
            old.outbox.close(CloseOrder {
                code: protocol::close::REPLACED,
                reason: "another connection of this account took over",
            });
        }
        let old_token = std::mem::replace(&mut player.resume_token, token.clone());
        state.resume_tokens.remove(&old_token);
        state.resume_tokens.insert(token.clone(), caller.account);
        if let Some(at) = player.grace_at.take() {
            state.timers.remove(&(at, Timer::Grace(caller.account)));
        }
        token
    }

    /// The connection `link` of `account` ended.
    pub fn detach(&self, account: &AccountId, link: u64) {
        let now = self.now_ms();
        let mut state = self.lock();
        let state = &mut *state;
        let Some(player) = state.players.get_mut(account) else {
            return;
        };
        if player.link.as_ref().is_none_or(|l| l.id != link) {
            // Taken over: the newer connection is the player now.
            return;
        }
        player.link = None;
        let at = now + self.settings.resume_grace_ms();
        player.grace_at = Some(at);
        let room = player.room.clone();
        state.timers.insert((at, Timer::Grace(*account)));
        self.timer_set.notify_one();
        if let Some((room_id, seat)) = room {
            let _ = self.run(state, &room_id, Command::Disconnect { seat }, now);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn queue(
        &self,
        state: &mut State,
        caller: &Caller,
        id: Option<u64>,
        mode: game::matches::Mode,
        opponent: Opponent,
        bot_after_ms: Option<u64>,
        moves: protocol::MoveMode,
        now: u64,
    ) {
        let send = |message| {
            caller.link.outbox.push(message);
        };
        if state.draining.is_some() {
            send(error(
                id,
                codes::DRAINING,
                "the server is draining: reconnect to queue",
            ));
            return;
        }
        let Some(player) = state.players.get(&caller.account) else {
            return;
        };
        if player.room.is_some() {
            send(error(
                id,
                codes::IN_MATCH,
                "finish or leave the match first",
            ));
            return;
        }
        if player.ticket.is_some() {
            send(error(id, codes::ALREADY_QUEUED, "one ticket per account"));
            return;
        }
        let lifetime = self.settings.queue_lifetime_ms();
        let bot_after = bot_after_ms.unwrap_or(self.settings.bot_after.as_millis() as u64);
        if opponent == Opponent::Any && bot_after >= lifetime {
            send(error(
                id,
                codes::INVALID_QUEUE,
                format!("bot_after_ms must be below the ticket lifetime ({lifetime} ms)"),
            ));
            return;
        }
        let ticket = Ticket {
            id: random_id(),
            account: caller.account,
            mode,
            opponent,
            moves,
            rating: state.records.rating(&caller.account).rating,
            queued_ms: now,
            expires_ms: now + lifetime,
            bot_at_ms: (opponent == Opponent::Any).then_some(now + bot_after),
        };
        if opponent == Opponent::Bot {
            send(queued_message(id, &ticket));
            self.start_bot_match(state, ticket, false, now);
            return;
        }
        match state.matchmaker.enqueue(ticket.clone(), now) {
            Err(_) => {
                send(error(
                    id,
                    codes::QUEUE_FULL,
                    "the queue is full: try again later",
                ));
            }
            Ok(outcome) => {
                send(queued_message(id, &ticket));
                if let Some(player) = state.players.get_mut(&caller.account) {
                    player.ticket = Some(ticket.id.clone());
                }
                state.tickets.insert(ticket.id.clone(), ticket);
                self.metrics.queued();
                if let Some(outcome) = outcome {
                    self.settle(state, outcome, now);
                }
                self.reschedule_queue(state);
            }
        }
    }

    fn reschedule_queue(&self, state: &mut State) {
        let next = state.matchmaker.next_deadline();
        if next == state.queue_timer {
            return;
        }
        if let Some(old) = state.queue_timer.take() {
            state.timers.remove(&(old, Timer::Queue));
        }
        if let Some(at) = next {
            state.timers.insert((at, Timer::Queue));
            state.queue_timer = Some(at);
            self.timer_set.notify_one();
        }
    }

    /// Acts on how a ticket left the queue.
    fn settle(&self, state: &mut State, outcome: Outcome, now: u64) {
        match outcome {
            Outcome::Matched(a, b) => {
                for ticket in [&a, &b] {
                    self.untrack_ticket(state, ticket, now);
                }
                self.start_human_match(state, a, b, now);
            }
            Outcome::BotFallback(ticket) => {
                self.untrack_ticket(state, &ticket, now);
                self.start_bot_match(state, ticket, true, now);
            }
            Outcome::Expired(ticket) => {
                self.untrack_ticket(state, &ticket, now);
                self.metrics.queue_expired();
                self.send_to(
                    state,
                    &ticket.account,
                    ServerMessage::QueueExpired {
                        ticket: ticket.id.clone(),
                        reason: ExpiredReason::Timeout,
                    },
                );
            }
        }
    }

    fn untrack_ticket(&self, state: &mut State, ticket: &Ticket, now: u64) {
        state.tickets.remove(&ticket.id);
        if let Some(player) = state.players.get_mut(&ticket.account)
            && player.ticket.as_deref() == Some(&ticket.id)
        {
            player.ticket = None;
        }
        self.metrics
            .time_to_match(now.saturating_sub(ticket.queued_ms));
    }

    fn send_to(&self, state: &State, account: &AccountId, message: ServerMessage) {
        if let Some(link) = state.players.get(account).and_then(|p| p.link.as_ref()) {
            link.outbox.push(message);
        }
    }

    fn start_human_match(&self, state: &mut State, a: Ticket, b: Ticket, now: u64) {
        let name = |state: &State, t: &Ticket| {
            state
                .players
                .get(&t.account)
                .map_or_else(|| t.account.to_string(), |p| p.name.clone())
        };
        let names = PerSeat::new(name(state, &a), name(state, &b));
        let ratings = PerSeat::new(a.rating, b.rating);
        let kinds = PerSeat::new(a.moves.seat_kind(), b.moves.seat_kind());
        let seats = PerSeat::new(Occupant::Human(a.account), Occupant::Human(b.account));
        let tickets = PerSeat::new(a.id.clone(), b.id.clone());
        self.start_room(
            state, a.mode, kinds, seats, names, ratings, tickets, false, now,
        );
    }

    fn start_bot_match(&self, state: &mut State, ticket: Ticket, fallback: bool, now: u64) {
        let arm = self.experiment.assign(&ticket.account);
        self.experiment.count(arm, |arm| &arm.exposures);
        let strategy = self.experiment.arms[arm].strategy;
        let human = state
            .players
            .get(&ticket.account)
            .map_or_else(|| ticket.account.to_string(), |p| p.name.clone());
        let names = PerSeat::new(human, strategy.name().to_owned());
        let ratings = PerSeat::new(ticket.rating, game::rating::DEFAULT_RATING);
        let kinds = PerSeat::new(ticket.moves.seat_kind(), SeatKind::Bot);
        let seats = PerSeat::new(
            Occupant::Human(ticket.account),
            Occupant::Bot {
                arm,
                bot: strategy.bot(),
            },
        );
        let tickets = PerSeat::new(ticket.id.clone(), String::new());
        if fallback {
            self.metrics.bot_fallback();
        }
        self.start_room(
            state,
            ticket.mode,
            kinds,
            seats,
            names,
            ratings,
            tickets,
            fallback,
            now,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn start_room(
        &self,
        state: &mut State,
        mode: game::matches::Mode,
        kinds: PerSeat<SeatKind>,
        seats: PerSeat<Occupant>,
        names: PerSeat<String>,
        ratings: PerSeat<f64>,
        tickets: PerSeat<String>,
        fallback: bool,
        now: u64,
    ) {
        let match_id = random_id();
        let config = MatchConfig {
            match_id: match_id.clone(),
            mode,
            round_timeout_ms: self.settings.round_timeout_ms(),
            seats: kinds,
        };
        let (game, events) = match Match::new(config, now) {
            Ok(started) => started,
            Err(error) => {
                // The configuration is the server's own; validated settings make this
                // unreachable, but a refusal must not leave players waiting for nothing.
                tracing::error!(%error, "a match could not start");
                return;
            }
        };
        let human_seats: Vec<(Seat, AccountId)> = Seat::BOTH
            .into_iter()
            .filter_map(|seat| match &seats[seat] {
                Occupant::Human(account) => Some((seat, *account)),
                Occupant::Bot { .. } => None,
            })
            .collect();
        let room = Room {
            game,
            log: Vec::new(),
            seats,
            names,
            ratings,
            deadline: None,
            bot_moves: PerSeat::default(),
            fallback,
        };
        state.rooms.insert(match_id.clone(), room);
        self.metrics.match_started(mode, human_seats.len() == 2);
        for (seat, account) in &human_seats {
            let Some(player) = state.players.get_mut(account) else {
                continue;
            };
            player.room = Some((match_id.clone(), *seat));
            player.unseen = None;
            if let (Some(link), Some(room)) = (&player.link, state.rooms.get(&match_id)) {
                link.outbox.push(matched_message(
                    &match_id,
                    room,
                    *seat,
                    &tickets[*seat],
                    self.settings.round_timeout_ms(),
                ));
            }
        }
        self.append(state, &match_id, events, now);
        // A player matched while disconnected (within its grace window) starts away.
        for (seat, account) in &human_seats {
            if state.players.get(account).is_none_or(|p| p.link.is_none()) {
                let _ = self.run(state, &match_id, Command::Disconnect { seat: *seat }, now);
            }
        }
    }

    /// Applies `command` to the room's match and everything that follows from it.
    fn run(
        &self,
        state: &mut State,
        room_id: &str,
        command: Command,
        now: u64,
    ) -> Result<(), MatchError> {
        let Some(room) = state.rooms.get_mut(room_id) else {
            return Err(MatchError::Ended);
        };
        let events = room.game.apply(command, now)?;
        self.append(state, room_id, events, now);
        Ok(())
    }

    /// Appends `events` to the room's log, sends the public ones, lets bots move, keeps the
    /// deadline timer right, and finishes the match once it has ended.
    fn append(
        &self,
        state: &mut State,
        room_id: &str,
        mut events: Vec<game::matches::Event>,
        now: u64,
    ) {
        loop {
            let Some(room) = state.rooms.get_mut(room_id) else {
                return;
            };
            for event in &events {
                if let EventKind::RoundRevealed { moves, .. } = &event.kind {
                    for seat in Seat::BOTH {
                        if let Occupant::Bot { bot, .. } = &mut room.seats[seat]
                            && let (Some(own), Some(theirs)) =
                                (room.bot_moves[seat].take(), moves[seat.other()])
                        {
                            bot.observe(own, theirs);
                        }
                    }
                }
            }
            for event in events.drain(..) {
                if event.kind.is_public() {
                    for seat in Seat::BOTH {
                        if let Occupant::Human(account) = &room.seats[seat]
                            && let Some(link) =
                                state.players.get(account).and_then(|p| p.link.as_ref())
                        {
                            link.outbox.push(ServerMessage::Event {
                                match_id: room_id.to_owned(),
                                event: event.clone(),
                            });
                        }
                    }
                }
                room.log.push(event);
            }
            // A bot moves before its round opens, so its commitment is published first.
            let Some((seat, round)) = room.game.bot_move_needed() else {
                break;
            };
            let Occupant::Bot { bot, .. } = &mut room.seats[seat] else {
                break;
            };
            let trit = game::random::computer_choice().map_or(0, |choice| choice as u8);
            let choice = bot.choose(trit);
            room.bot_moves[seat] = Some(choice);
            let mut salt = [0u8; 32];
            fill_random(&mut salt);
            let command = Command::BotMove {
                seat,
                round,
                choice,
                salt: Salt(salt),
            };
            match room.game.apply(command, now) {
                Ok(more) => events = more,
                Err(error) => {
                    tracing::error!(%error, "a bot move was refused");
                    break;
                }
            }
        }
        let Some(room) = state.rooms.get_mut(room_id) else {
            return;
        };
        let next = room.game.next_deadline();
        if next != room.deadline {
            if let Some(old) = room.deadline.take() {
                state.timers.remove(&(old, Timer::Room(room_id.to_owned())));
            }
            if let Some(at) = next {
                room.deadline = Some(at);
                state.timers.insert((at, Timer::Room(room_id.to_owned())));
                self.timer_set.notify_one();
            }
        }
        if room.game.is_ended() {
            self.finish(state, room_id);
        }
    }

    /// Records a finished match once, tells its players, and keeps its transcript.
    fn finish(&self, state: &mut State, room_id: &str) {
        let Some(room) = state.rooms.remove(room_id) else {
            return;
        };
        if let Some(at) = room.deadline {
            state.timers.remove(&(at, Timer::Room(room_id.to_owned())));
        }
        let outcome = room.log.iter().rev().find_map(|event| match &event.kind {
            EventKind::MatchEnded {
                outcome, reason, ..
            } => Some((*outcome, *reason)),
            _ => None,
        });
        let (outcome, reason) =
            outcome.unwrap_or((MatchOutcome::NoContest, game::matches::EndReason::Drained));
        let result_of = |seat: Seat| match outcome {
            MatchOutcome::Won(winner) if winner == seat => SideResult::Won,
            MatchOutcome::Won(_) => SideResult::Lost,
            MatchOutcome::NoContest => SideResult::NoContest,
        };
        self.metrics.match_finished(outcome, reason);
        let mut changes: PerSeat<Option<Change>> = PerSeat::default();
        match (&room.seats.a, &room.seats.b) {
            (Occupant::Human(a), Occupant::Human(b)) => {
                let (change_a, change_b) =
                    state
                        .records
                        .record_human_match(room_id, a, b, result_of(Seat::A));
                changes = PerSeat::new(Some(change_a), Some(change_b));
            }
            _ => {
                for seat in Seat::BOTH {
                    match &room.seats[seat] {
                        Occupant::Human(account) => {
                            changes[seat] = Some(state.records.record_bot_match(
                                room_id,
                                account,
                                result_of(seat),
                            ));
                        }
                        Occupant::Bot { arm, .. } => match result_of(seat) {
                            SideResult::Won => self.experiment.count(*arm, |a| &a.bot_wins),
                            SideResult::Lost => self.experiment.count(*arm, |a| &a.human_wins),
                            SideResult::NoContest => {}
                        },
                    }
                }
            }
        }
        let summary = |seat: Seat| match &room.seats[seat] {
            Occupant::Human(account) => SeatSummary {
                kind: "human",
                id: account.to_string(),
                name: room.names[seat].clone(),
            },
            Occupant::Bot { .. } => SeatSummary {
                kind: "bot",
                id: room.names[seat].clone(),
                name: room.names[seat].clone(),
            },
        };
        for seat in Seat::BOTH {
            let (Occupant::Human(account), Some(change)) = (&room.seats[seat], changes[seat])
            else {
                continue;
            };
            let Some(player) = state.players.get_mut(account) else {
                continue;
            };
            player.room = None;
            let result = match result_of(seat) {
                SideResult::Won => protocol::Result::Won,
                SideResult::Lost => protocol::Result::Lost,
                SideResult::NoContest => protocol::Result::NoContest,
            };
            let message = ServerMessage::MatchResult {
                match_id: room_id.to_owned(),
                result,
                rating_before: change.before,
                rating_after: change.after,
                rated: change.rated,
            };
            match &player.link {
                Some(link) => {
                    link.outbox.push(message);
                }
                None => {
                    player.unseen = Some(Unseen {
                        match_id: room_id.to_owned(),
                        seat,
                        matched: matched_message(
                            room_id,
                            &room,
                            seat,
                            "",
                            self.settings.round_timeout_ms(),
                        ),
                        result: message,
                    });
                }
            }
        }
        let _ = room.fallback;
        state.records.keep(Finished {
            match_id: room_id.to_owned(),
            seats: PerSeat::new(summary(Seat::A), summary(Seat::B)),
            events: public(&room.log),
        });
    }

    fn seat_command(
        &self,
        state: &mut State,
        caller: &Caller,
        id: Option<u64>,
        now: u64,
        command: impl FnOnce(Seat) -> Command,
    ) -> After {
        let room = state
            .players
            .get(&caller.account)
            .and_then(|player| player.room.clone());
        let Some((room_id, seat)) = room else {
            caller
                .link
                .outbox
                .push(error(id, codes::NOT_IN_MATCH, "not in a match"));
            return After::Continue;
        };
        // The answer goes out ahead of the events the command caused: the caller's outbox is
        // emptied only by the caller's own task, which is in this call.
        let mark = caller.link.outbox.len();
        match self.run(state, &room_id, command(seat), now) {
            Ok(()) => {
                caller.link.outbox.insert(mark, ServerMessage::Ack { id });
            }
            Err(refused) => {
                caller
                    .link
                    .outbox
                    .push(error(id, codes::MOVE_REFUSED, refused.to_string()));
            }
        }
        After::Continue
    }

    fn chat(
        &self,
        state: &mut State,
        caller: &Caller,
        id: Option<u64>,
        text: &str,
        now: u64,
    ) -> After {
        let send = |message| {
            caller.link.outbox.push(message);
        };
        let Some(player) = state.players.get_mut(&caller.account) else {
            return After::Continue;
        };
        let Some((room_id, seat)) = player.room.clone() else {
            send(error(id, codes::NOT_IN_MATCH, "chat is in a match"));
            return After::Continue;
        };
        let line = match chat::clean(text) {
            Ok(line) => line,
            Err(chat::LineError::Empty) => {
                self.metrics.chat_refused(0);
                send(error(id, codes::CHAT_INVALID, "the line is empty"));
                return After::Continue;
            }
            Err(chat::LineError::TooLong) => {
                self.metrics.chat_refused(0);
                send(error(
                    id,
                    codes::CHAT_INVALID,
                    format!("at most {} characters", protocol::MAX_CHAT_CHARS),
                ));
                return After::Continue;
            }
        };
        let window = self.settings.chat_window.as_millis() as u64;
        match player.chat.check(self.settings.chat_burst, window, now) {
            chat::Verdict::Send => {}
            chat::Verdict::Warn => {
                self.metrics.chat_refused(1);
                send(ServerMessage::Warning {
                    code: codes::CHAT_RATE_LIMITED.to_owned(),
                    message: format!(
                        "at most {} lines per {} s; flooding again closes the connection",
                        self.settings.chat_burst,
                        window / 1000
                    ),
                });
                send(error(id, codes::CHAT_RATE_LIMITED, "slow down"));
                return After::Continue;
            }
            chat::Verdict::Close => {
                self.metrics.chat_refused(2);
                return After::Close(CloseOrder {
                    code: protocol::close::POLICY,
                    reason: "chat flooding",
                });
            }
        }
        let Some(room) = state.rooms.get(&room_id) else {
            return After::Continue;
        };
        let mark = caller.link.outbox.len();
        let message = ServerMessage::Chat {
            match_id: room_id.clone(),
            from: seat,
            name: room.names[seat].clone(),
            text: line,
            at_ms: now,
        };
        for other in Seat::BOTH {
            if let Occupant::Human(account) = &room.seats[other] {
                self.send_to(state, account, message.clone());
            }
        }
        caller.link.outbox.insert(mark, ServerMessage::Ack { id });
        After::Continue
    }

    /// Fires every timer due by now; returns when the next one is due.
    pub fn fire_due(&self) -> Option<u64> {
        let now = self.now_ms();
        let mut state = self.lock();
        let state = &mut *state;
        while let Some((at, _)) = state.timers.first()
            && *at <= now
        {
            let Some((_, timer)) = state.timers.pop_first() else {
                break;
            };
            match timer {
                Timer::Room(room_id) => {
                    if let Some(room) = state.rooms.get_mut(&room_id) {
                        room.deadline = None;
                    }
                    let _ = self.run(state, &room_id, Command::Tick, now);
                }
                Timer::Grace(account) => self.grace_expired(state, &account, now),
                Timer::Queue => {
                    state.queue_timer = None;
                    for outcome in state.matchmaker.poll(now) {
                        self.settle(state, outcome, now);
                    }
                    self.reschedule_queue(state);
                }
                Timer::DrainEnd => {
                    let rooms: Vec<String> = state.rooms.keys().cloned().collect();
                    for room_id in rooms {
                        let _ = self.run(state, &room_id, Command::NoContest, now);
                    }
                    for player in state.players.values() {
                        if let Some(link) = &player.link {
                            link.outbox.close(CloseOrder {
                                code: protocol::close::GOING_AWAY,
                                reason: "the server is shutting down",
                            });
                        }
                    }
                }
            }
        }
        state.timers.first().map(|(at, _)| *at)
    }

    fn grace_expired(&self, state: &mut State, account: &AccountId, now: u64) {
        let Some(player) = state.players.get_mut(account) else {
            return;
        };
        player.grace_at = None;
        if player.link.is_some() {
            return;
        }
        let room = player.room.clone();
        let ticket = player.ticket.take();
        if let Some((room_id, seat)) = room {
            let _ = self.run(state, &room_id, Command::GraceExpired { seat }, now);
        }
        if let Some(ticket) = ticket {
            state.matchmaker.cancel(&ticket);
            state.tickets.remove(&ticket);
            self.reschedule_queue(state);
        }
        if let Some(player) = state.players.remove(account) {
            state.resume_tokens.remove(&player.resume_token);
        }
    }

    /// Stops matchmaking and tells everyone; matches still running at `deadline_ms` end as no
    /// contest and every connection closes (1001).
    pub fn drain(&self, deadline_ms: u64) {
        let mut state = self.lock();
        let state = &mut *state;
        if state.draining.is_some() {
            return;
        }
        state.draining = Some(deadline_ms);
        let now = self.now_ms();
        for ticket in state.matchmaker.drain() {
            self.untrack_ticket(state, &ticket, now);
            self.send_to(
                state,
                &ticket.account,
                ServerMessage::QueueExpired {
                    ticket: ticket.id.clone(),
                    reason: ExpiredReason::Draining,
                },
            );
        }
        for player in state.players.values() {
            if let Some(link) = &player.link {
                link.outbox.push(ServerMessage::Draining { deadline_ms });
            }
        }
        let at = if state.rooms.is_empty() {
            now
        } else {
            deadline_ms
        };
        state.timers.insert((at, Timer::DrainEnd));
        self.timer_set.notify_one();
    }

    /// Whether a drain is done: no match runs and no connection is open.
    pub fn drained(&self) -> bool {
        let state = self.lock();
        state.rooms.is_empty() && state.players.values().all(|p| p.link.is_none())
    }

    /// Waits until a timer was set (or a wake-up was stored).
    pub async fn timer_set(&self) {
        self.timer_set.notified().await;
    }

    /// A finished match's transcript, or a running one's public log so far.
    pub fn transcript(&self, match_id: &str) -> Option<Arc<Finished>> {
        let state = self.lock();
        if let Some(finished) = state.records.transcript(match_id) {
            return Some(finished);
        }
        let room = state.rooms.get(match_id)?;
        let summary = |seat: Seat| SeatSummary {
            kind: match room.seats[seat] {
                Occupant::Human(_) => "human",
                Occupant::Bot { .. } => "bot",
            },
            id: match &room.seats[seat] {
                Occupant::Human(account) => account.to_string(),
                Occupant::Bot { .. } => room.names[seat].clone(),
            },
            name: room.names[seat].clone(),
        };
        Some(Arc::new(Finished {
            match_id: match_id.to_owned(),
            seats: PerSeat::new(summary(Seat::A), summary(Seat::B)),
            events: public(&room.log),
        }))
    }

    /// The account's real-time record.
    pub fn record(&self, account: &AccountId) -> super::records::Record {
        let state = self.lock();
        state.records.record(account).cloned().unwrap_or_default()
    }

    /// Figures for the metrics: connected players, queued tickets per mode, running matches.
    pub fn census(&self) -> Census {
        let state = self.lock();
        let mut census = Census {
            queue_depth: state.matchmaker.depth(),
            matches_running: state.rooms.len(),
            transcripts_kept: state.records.transcripts_kept(),
            ..Census::default()
        };
        for player in state.players.values() {
            match (&player.link, &player.room, &player.ticket) {
                (None, _, _) => census.away += 1,
                (Some(_), Some(_), _) => census.in_match += 1,
                (Some(_), None, Some(_)) => census.queued += 1,
                (Some(_), None, None) => census.idle += 1,
            }
        }
        census
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Census {
    pub idle: usize,
    pub queued: usize,
    pub in_match: usize,
    /// Disconnected, within their grace window.
    pub away: usize,
    pub queue_depth: [usize; 3],
    pub matches_running: usize,
    pub transcripts_kept: usize,
}

fn queued_message(id: Option<u64>, ticket: &Ticket) -> ServerMessage {
    ServerMessage::Queued {
        id,
        ticket: ticket.id.clone(),
        mode: ticket.mode,
        opponent: ticket.opponent,
        expires_at_ms: ticket.expires_ms,
        bot_at_ms: ticket.bot_at_ms,
    }
}

fn matched_message(
    match_id: &str,
    room: &Room,
    seat: Seat,
    ticket: &str,
    round_timeout_ms: u64,
) -> ServerMessage {
    let other = seat.other();
    let kind = match room.seats[other] {
        Occupant::Human(_) => OpponentKind::Human,
        Occupant::Bot { .. } => OpponentKind::Bot,
    };
    ServerMessage::Matched {
        ticket: ticket.to_owned(),
        match_id: match_id.to_owned(),
        seat,
        mode: room.game.config().mode,
        opponent: OpponentView {
            kind,
            name: room.names[other].clone(),
            rating: (kind == OpponentKind::Human).then_some(room.ratings[other]),
        },
        bot_fallback: room.fallback,
        round_timeout_ms,
    }
}

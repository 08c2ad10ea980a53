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
use game::matches::{Command, Match, PerSeat, public};
use protocol::{ClientMessage, OpponentKind, OpponentView, ServerMessage, codes};
use tokio::sync::Notify;

mod cluster;
mod queue;
mod rooms;
mod spectators;
mod timers;

pub use cluster::Port;

use super::chat;
use super::experiment::Experiment;
use super::matchmaker::{LocalMatchmaker, Matchmaker, Outcome, Ticket, Windows};
use super::metrics::{Census, Metrics};
use super::outbox::{CloseOrder, Outbox, WakeLater};
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
    /// Boxed: rare, and two messages large; every connected player carries the slot.
    unseen: Option<Box<Unseen>>,
    grace_at: Option<u64>,
    chat: chat::Limiter,
    /// Clustered, on the instance the player is connected to: the match runs elsewhere.
    remote: Option<Box<cluster::Remote>>,
    /// Clustered, on the match's owner: the player's connection is on another instance.
    gateway: Option<cluster::Gateway>,
    /// Clustered, on the gateway: the latest match whose result reached the connection.
    concluded: Option<String>,
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
    /// Connection drops per seat: each adds two entries to the log, so a seat that drops more
    /// than [`MAX_DROPS`] times forfeits rather than grow the log (and every replay) at will.
    drops: PerSeat<u32>,
    /// Clustered: the fencing token this instance holds the match under (0: not shared),
    /// the log's length in Redis (its meta entry included), and who sits where.
    fence: u64,
    persisted: u64,
    /// Clustered: Redis holds the match (its creation landed, or it was taken from there).
    /// Until then the keeper does not renew its lease: the creation, still in the ordered
    /// write queue, takes the lease itself, and a renewal that reached Redis first would find
    /// no fencing token and count the match as lost.
    stored: bool,
    meta: Option<Box<super::cluster::Meta>>,
    /// Read-only watchers: connections here, or relays to other instances'.
    spectators: Vec<spectators::Spectator>,
}

/// Drops a seat may have in one match before it forfeits it.
const MAX_DROPS: u32 = 20;

/// The hub's state, locked. The connections it queued messages for are woken once the lock
/// is let go (fields drop in order: the guard, then the [`WakeLater`]), so each finds all of
/// an operation's messages and writes them at once.
struct Locked<'a> {
    state: MutexGuard<'a, State>,
    _wake_later: WakeLater,
}

impl std::ops::Deref for Locked<'_> {
    type Target = State;

    fn deref(&self) -> &State {
        &self.state
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.state
    }
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
    /// Relayed players whose match ended: released at the next lock, after the answer to
    /// the command that ended it was queued behind the result.
    releasing: Vec<(AccountId, u64)>,
    /// What each connection here watches (`spectate`), by its link id.
    spectating: HashMap<u64, spectators::Watching>,
}

pub struct Hub {
    state: Mutex<State>,
    /// Wakes the timer task when a timer was set.
    timer_set: Notify,
    settings: RealtimeSettings,
    clock: Clock,
    experiment: Experiment,
    pub(super) metrics: Metrics,
    /// Set once when real-time play is shared through Redis.
    cluster: std::sync::OnceLock<Port>,
    /// The hub's own handle, for the cluster's tasks.
    me: std::sync::OnceLock<std::sync::Weak<Hub>>,
    /// Clustered: players online, queued, in a match, and matches running, over every
    /// instance (this one's own census alone when not clustered).
    presence: Mutex<Option<[u64; 4]>>,
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
                records: Records::with_seasons(kept, settings.seasons.clone()),
                timers: BTreeSet::new(),
                queue_timer: None,
                draining: None,
                releasing: Vec::new(),
                spectating: HashMap::new(),
            }),
            timer_set: Notify::new(),
            settings,
            clock,
            experiment,
            metrics: Metrics::default(),
            cluster: std::sync::OnceLock::new(),
            me: std::sync::OnceLock::new(),
            presence: Mutex::new(None),
        }
    }

    fn lock(&self) -> Locked<'_> {
        let wake_later = WakeLater::begin();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !state.releasing.is_empty() {
            cluster::release(&mut state);
        }
        Locked {
            state,
            _wake_later: wake_later,
        }
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
        if greeted {
            let current = state
                .players
                .get(&caller.account)
                .and_then(|p| p.link.as_ref());
            if current.is_none_or(|link| link.id != caller.link.id) {
                // Taken over: a connection that is no longer the player's acts for no one.
                return After::Close(CloseOrder {
                    code: protocol::close::REPLACED,
                    reason: "another connection of this account took over",
                });
            }
        } else if state.draining.is_some_and(|deadline| now >= deadline) {
            return After::Close(CloseOrder {
                code: protocol::close::GOING_AWAY,
                reason: "the server is shutting down",
            });
        }
        if let Some(port) = self.cluster.get()
            && let Some(after) = self.cluster_handle(port, state, caller, greeted, &message, now)
        {
            return after;
        }
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
            ClientMessage::Spectate { id, match_id } => {
                self.spectate(state, caller, id, &match_id);
                After::Continue
            }
            ClientMessage::Unspectate { id } => {
                if self.unspectate(state, caller.link.id) {
                    caller.link.outbox.push(ServerMessage::Ack { id });
                } else {
                    caller.link.outbox.push(error(
                        id,
                        codes::NOT_SPECTATING,
                        "not watching a match",
                    ));
                }
                After::Continue
            }
        }
    }

    fn hello(&self, state: &mut State, caller: &Caller, id: Option<u64>, now: u64) {
        let token = self.attach(state, caller, now);
        let rating = state.records.rating(&caller.account).rating;
        let following = state
            .players
            .get(&caller.account)
            .map_or((None, false), |player| {
                // In the order the replay below follows: a live match, else a ticket, else a
                // match that ended while the account was away.
                let live = player.room.as_ref().map(|(room, _)| room.clone());
                let queued = live.is_none() && player.ticket.is_some();
                let unseen = player.unseen.as_ref().map(|unseen| unseen.match_id.clone());
                (live.or(unseen.filter(|_| !queued)), queued)
            });
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
            match_id: following.0,
            queued: following.1,
        });
        if let Some(deadline_ms) = state.draining {
            caller
                .link
                .outbox
                .push(ServerMessage::Draining { deadline_ms });
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
                caller.link.outbox.push_replayed(ServerMessage::Event {
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
                caller.link.outbox.push_replayed(ServerMessage::Event {
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
        self.resume_verified(state, caller, id, last_seq, now)
    }

    /// The rest of a resume, once the token was found to be the account's (here, or by the
    /// gateway instance the player is connected to).
    fn resume_verified(
        &self,
        state: &mut State,
        caller: &Caller,
        id: Option<u64>,
        last_seq: Option<u64>,
        now: u64,
    ) -> After {
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
        let after = last_seq.map_or(0, |seq| seq.saturating_add(1));
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
                caller.link.outbox.push_replayed(ServerMessage::Event {
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
                remote: None,
                gateway: None,
                concluded: None,
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
        player.gateway = None;
        let old_token = std::mem::replace(&mut player.resume_token, token.clone());
        state.resume_tokens.remove(&old_token);
        state.resume_tokens.insert(token.clone(), caller.account);
        if let Some(port) = self.cluster.get() {
            port.write(super::cluster::Write::Token {
                token: token.clone(),
                account: caller.account.to_string(),
            });
        }
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
        self.unspectate(state, link);
        let Some(player) = state.players.get_mut(account) else {
            return;
        };
        if player.link.as_ref().is_none_or(|l| l.id != link) {
            // Taken over: the newer connection is the player now.
            return;
        }
        let link_was = player.link.take();
        let at = now + self.settings.resume_grace_ms();
        player.grace_at = Some(at);
        let room = player.room.clone();
        // A relay to another instance's connection ends with it.
        if let Some(was) = &link_was
            && player.gateway.take().is_some()
        {
            was.outbox.close(cluster::RELEASED);
        }
        if let Some(remote) = &player.remote
            && let (Some(port), Some(owner)) = (self.cluster.get(), remote.owner.clone())
        {
            port.send(
                &owner,
                super::cluster::Envelope::Detach {
                    from: port.instance().to_owned(),
                    account: account.to_string(),
                    link,
                },
            );
        }
        self.schedule(state, at, Timer::Grace(*account));
        if let Some((room_id, seat)) = room {
            let drops = state.rooms.get_mut(&room_id).map_or(0, |room| {
                room.drops[seat] += 1;
                room.drops[seat]
            });
            let command = if drops > MAX_DROPS {
                Command::Leave { seat }
            } else {
                Command::Disconnect { seat }
            };
            let _ = self.run(state, &room_id, command, now);
        }
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

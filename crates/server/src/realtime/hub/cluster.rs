//! The hub's side of real-time play shared by instances (`realtime/cluster` is the wire).
//!
//! A player is served by the instance its connection reached (its *gateway*); a match runs on
//! one instance, its *owner*, which holds the match's lease and fencing token. The owner keeps
//! the room exactly as on one instance; a player whose connection is elsewhere is, to it, a
//! player whose link is a *relay*: an outbox that a task empties into the gateway's inbox. The
//! gateway forwards the player's match messages to the owner and hands what comes back to the
//! connection. Every event the owner appends is written to the match's log in Redis under its
//! fencing token (one pipelined write per batch), so when the owner is lost, an instance that
//! holds one of the players takes the match once the lease expires, rebuilds the room from
//! the log (`Match::replay`), and carries on; a result is recorded in Redis once.
//!
//! Everything here is synchronous under the hub's lock except the tasks at the bottom, which
//! talk to Redis and call back in.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use game::matches::{EventKind, MatchConfig};
use game::rating::{Rating, Score};
use tokio::sync::mpsc;

use super::super::cluster::{
    Claim, Cluster, Envelope, Located, Meta, Refused, Rejoin, SeatMeta, SharedTicket, Write, Wrote,
};
use super::super::matchmaker::Windows;
use super::super::metrics::cluster_counter;
use super::super::records::{Change, SideResult};
use super::*;

/// The close order that ends a relay without closing the player's connection.
pub(super) const RELEASED: CloseOrder = CloseOrder {
    code: 0,
    reason: "released",
};

/// Writes waiting for the writer task; past it a write is dropped and counted.
const WRITES_QUEUED: usize = 1 << 16;
/// Relay link ids start here, far from the ids of this instance's own connections.
const RELAY_IDS: u64 = 1 << 62;

/// On the owner: where a relayed player's connection is.
#[derive(Clone, Debug)]
pub(super) struct Gateway {
    pub(super) instance: String,
    pub(super) link: u64,
    /// The last command with a request id forwarded from it: the gateway sends a command
    /// again to an owner it finds anew, and the copy must not be applied twice.
    pub(super) last_request: Option<Box<ClientMessage>>,
}

/// On the gateway: the match a player sits in elsewhere.
#[derive(Debug)]
pub(super) struct Remote {
    match_id: String,
    /// `None` while the owner is being looked for.
    pub(super) owner: Option<String>,
    /// The latest event handed to the connection.
    last_seq: Option<u64>,
    /// A hello or resume waiting for the owner's answer.
    awaiting: Option<Greeting>,
    /// The latest match command forwarded and not yet answered: sent again to a new owner.
    pending: Option<ClientMessage>,
    /// Times the greeting was sent to look for the match again, because the instance Redis
    /// named had let it go (a drain racing the lookup): bounded by [`RELOCATIONS`].
    relocations: u8,
    /// What the account's last connection missed (its gateway found it gone), for a resume
    /// that finds the match over.
    missed: Vec<ServerMessage>,
}

/// How long a drain waits, at most, for the owners of its players' matches to let go of them
/// before closing their connections.
pub(super) const DETACH_WAIT_MS: u64 = 1_000;

/// How often a greeting looks for its match again after the owner named turned it away,
/// before the player is greeted as seated nowhere.
const RELOCATIONS: u8 = 3;

#[derive(Clone, Copy, Debug)]
enum Greeting {
    Hello {
        id: Option<u64>,
    },
    Resume {
        id: Option<u64>,
        last_seq: Option<u64>,
    },
}

/// What connects the hub to the cluster: the ordered write queue and the runtime its tasks
/// run on.
pub struct Port {
    pub(super) cluster: Arc<Cluster>,
    writes: mpsc::Sender<Write>,
    pub(super) runtime: tokio::runtime::Handle,
    next_relay: AtomicU64,
    dropped: AtomicU64,
    /// Writes queued or being sent: a stopping instance waits for none.
    pending: Arc<AtomicU64>,
}

impl std::fmt::Debug for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Port")
            .field("instance", &self.cluster.instance)
            .finish_non_exhaustive()
    }
}

impl Port {
    pub fn instance(&self) -> &str {
        &self.cluster.instance
    }

    /// Queues a write; the writer sends queued writes in order, pipelined.
    pub(super) fn write(&self, write: Write) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        if self.writes.try_send(write).is_err() {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("the cluster write queue is full: a write was dropped");
        }
    }

    pub(super) fn send(&self, to: &str, envelope: Envelope) {
        self.write(Write::Send {
            to: to.to_owned(),
            envelope,
        });
    }

    /// Starts a shared match's log (fencing token 1): who sits where, for whoever takes it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn create(
        &self,
        match_id: &str,
        config: &MatchConfig,
        seats: &PerSeat<Occupant>,
        names: &PerSeat<String>,
        ratings: &PerSeat<f64>,
        standings: &PerSeat<Rating>,
        fallback: bool,
        now: u64,
    ) -> Box<Meta> {
        let seat = |seat: Seat| match &seats[seat] {
            Occupant::Human(account) => SeatMeta::Human {
                account: account.to_string(),
                name: names[seat].clone(),
                rating: standings[seat],
            },
            Occupant::Bot { arm, .. } => SeatMeta::Bot {
                arm: *arm,
                name: names[seat].clone(),
                rating: ratings[seat],
            },
        };
        let meta = Box::new(Meta {
            config: config.clone(),
            seats: PerSeat::new(seat(Seat::A), seat(Seat::B)),
            fallback,
            started_ms: now,
        });
        self.write(Write::Create {
            match_id: match_id.to_owned(),
            meta: meta.clone(),
            events: Vec::new(),
        });
        for seat in Seat::BOTH {
            if let Occupant::Human(account) = &seats[seat] {
                self.write(Write::Seat {
                    account: account.to_string(),
                    match_id: match_id.to_owned(),
                    taken: true,
                });
            }
        }
        meta
    }

    /// The rating changes of a match between two people, from the standings it started with;
    /// the result is recorded in Redis once (by whichever owner finishes it first).
    pub(super) fn record(
        &self,
        match_id: &str,
        meta: &Meta,
        result_a: SideResult,
    ) -> (Change, Change) {
        let standing = |seat: Seat| match &meta.seats[seat] {
            SeatMeta::Human {
                account, rating, ..
            } => (account.clone(), *rating),
            SeatMeta::Bot { name, rating, .. } => (
                name.clone(),
                Rating {
                    rating: *rating,
                    ..Rating::default()
                },
            ),
        };
        let ((a, before_a), (b, before_b)) = (standing(Seat::A), standing(Seat::B));
        let scores = match result_a {
            SideResult::Won => Some((Score::Win, Score::Loss)),
            SideResult::Lost => Some((Score::Loss, Score::Win)),
            SideResult::NoContest => None,
        };
        let (after_a, after_b) = scores.map_or((before_a, before_b), |(sa, sb)| {
            (
                game::rating::update(before_a, &[(before_b, sa)]),
                game::rating::update(before_b, &[(before_a, sb)]),
            )
        });
        let line = match result_a {
            SideResult::Won => format!("{a} beat {b}"),
            SideResult::Lost => format!("{b} beat {a}"),
            SideResult::NoContest => format!("{a} and {b}: no contest"),
        };
        let ratings = if scores.is_some() {
            vec![(a, after_a), (b, after_b)]
        } else {
            Vec::new()
        };
        // In the ordered write queue: after the log's last events, and flushed before a
        // stopping instance exits.
        self.write(Write::Record {
            match_id: match_id.to_owned(),
            result: line,
            ratings,
            now_ms: unix_ms(),
        });
        let rated = scores.is_some();
        (
            Change {
                before: before_a.rating,
                after: after_a.rating,
                rated,
            },
            Change {
                before: before_b.rating,
                after: after_b.rating,
                rated,
            },
        )
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

fn parse_account(text: &str) -> Option<AccountId> {
    AccountId::from(text).ok()
}

impl Hub {
    /// Joins this hub to the cluster: starts the writer, the inbox reader and the keeper on
    /// the current runtime. Once only.
    pub fn join_cluster(self: &Arc<Self>, cluster: Arc<Cluster>) {
        let (writes, queued) = mpsc::channel(WRITES_QUEUED);
        let port = Port {
            cluster: Arc::clone(&cluster),
            writes,
            runtime: tokio::runtime::Handle::current(),
            next_relay: AtomicU64::new(RELAY_IDS),
            dropped: AtomicU64::new(0),
            pending: Arc::new(AtomicU64::new(0)),
        };
        if self.cluster.set(port).is_err() {
            return;
        }
        let _ = self.me.set(Arc::downgrade(self));
        tokio::spawn(writer(Arc::clone(self), Arc::clone(&cluster), queued));
        tokio::spawn(reader(Arc::clone(self), Arc::clone(&cluster)));
        tokio::spawn(sweeper(Arc::clone(self), Arc::clone(&cluster)));
        tokio::spawn(keeper(Arc::clone(self), cluster));
    }

    pub fn instance(&self) -> Option<String> {
        self.cluster.get().map(|port| port.instance().to_owned())
    }

    /// Writes to Redis still queued or in flight (0 when not clustered).
    pub fn cluster_pending(&self) -> u64 {
        self.cluster
            .get()
            .map_or(0, |port| port.pending.load(Ordering::Acquire))
    }

    /// The messages the cluster changes the handling of; `None` leaves one to the local path.
    pub(super) fn cluster_handle(
        &self,
        port: &Port,
        state: &mut State,
        caller: &Caller,
        greeted: bool,
        message: &ClientMessage,
        now: u64,
    ) -> Option<After> {
        let local = state.players.get(&caller.account);
        let seated_here = local.is_some_and(|p| p.room.is_some() || p.ticket.is_some());
        match message {
            ClientMessage::Hello { id } if !greeted && !seated_here => {
                // Connected here; whether the account sits in a match elsewhere is Redis's to
                // say: the welcome waits for the answer.
                self.attach(state, caller, now);
                self.mark_locating(state, caller, Greeting::Hello { id: *id });
                self.spawn_locate(port, caller.clone(), None);
                Some(After::Greeted)
            }
            ClientMessage::Resume {
                id,
                token,
                last_seq,
            } if !greeted && !state.resume_tokens.contains_key(token.as_str()) => {
                // A token this instance did not issue: another instance's, maybe one that died.
                let greeting = Greeting::Resume {
                    id: *id,
                    last_seq: *last_seq,
                };
                self.spawn_resume(port, caller.clone(), token.clone(), greeting);
                Some(After::Continue)
            }
            ClientMessage::Move { id, .. }
            | ClientMessage::Commit { id, .. }
            | ClientMessage::Reveal { id, .. }
            | ClientMessage::Leave { id }
            | ClientMessage::Chat { id, .. }
                if greeted =>
            {
                let player = state.players.get_mut(&caller.account)?;
                let remote = player.remote.as_mut()?;
                match &remote.owner {
                    Some(owner) => {
                        remote.pending = Some(message.clone());
                        port.send(
                            owner,
                            Envelope::Forward {
                                from: port.instance().to_owned(),
                                account: caller.account.to_string(),
                                link: caller.link.id,
                                message: message.clone(),
                                resent: false,
                            },
                        );
                    }
                    None => {
                        caller.link.outbox.push(error(
                            *id,
                            codes::NOT_IN_MATCH,
                            "the match is moving to another instance: send it again",
                        ));
                    }
                }
                Some(After::Continue)
            }
            ClientMessage::Queue { id, .. }
                if greeted && local.is_some_and(|p| p.remote.is_some()) =>
            {
                if let Some(remote) = local.and_then(|p| p.remote.as_ref()) {
                    tracing::debug!(
                        account = %caller.account,
                        match_id = %remote.match_id,
                        owner = remote.owner.as_deref().unwrap_or(""),
                        awaiting = remote.awaiting.is_some(),
                        "a queue refused: the player's match runs elsewhere"
                    );
                }
                caller.link.outbox.push(error(
                    *id,
                    codes::IN_MATCH,
                    "finish or leave the match first",
                ));
                Some(After::Continue)
            }
            ClientMessage::Queue {
                id,
                mode,
                opponent,
                bot_after_ms,
                moves,
            } if greeted && *opponent != protocol::Opponent::Bot => {
                self.cluster_queue(
                    port,
                    state,
                    caller,
                    *id,
                    *mode,
                    *opponent,
                    *bot_after_ms,
                    *moves,
                    now,
                );
                Some(After::Continue)
            }
            ClientMessage::Cancel { id } if greeted => {
                let ticket = state
                    .players
                    .get(&caller.account)
                    .and_then(|p| p.ticket.clone())
                    .and_then(|t| state.tickets.get(&t).cloned());
                let Some(ticket) = ticket else {
                    caller
                        .link
                        .outbox
                        .push(error(*id, codes::NOT_QUEUED, "no ticket is waiting"));
                    return Some(After::Continue);
                };
                self.spawn_cancel(port, caller.clone(), *id, ticket);
                Some(After::Continue)
            }
            _ => None,
        }
    }

    fn mark_locating(&self, state: &mut State, caller: &Caller, greeting: Greeting) {
        if let Some(player) = state.players.get_mut(&caller.account) {
            player.remote = Some(Box::new(Remote {
                match_id: String::new(),
                owner: None,
                last_seq: None,
                awaiting: Some(greeting),
                pending: None,
                relocations: 0,
                missed: Vec::new(),
            }));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn cluster_queue(
        &self,
        port: &Port,
        state: &mut State,
        caller: &Caller,
        id: Option<u64>,
        mode: game::matches::Mode,
        opponent: protocol::Opponent,
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
        if let Some((match_id, _)) = &player.room {
            tracing::debug!(account = %caller.account, %match_id, "a queue refused: the player sits in a match here");
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
        if opponent == protocol::Opponent::Any && bot_after >= lifetime {
            send(error(
                id,
                codes::INVALID_QUEUE,
                format!("bot_after_ms must be below the ticket lifetime ({lifetime} ms)"),
            ));
            return;
        }
        if state.tickets.len() >= self.settings.max_queue {
            send(error(
                id,
                codes::QUEUE_FULL,
                "the queue is full: try again later",
            ));
            return;
        }
        let standing = state.records.rating(&caller.account);
        let ticket = Ticket {
            id: random_id(),
            account: caller.account,
            mode,
            opponent,
            moves,
            rating: standing.rating,
            standing,
            queued_ms: now,
            expires_ms: now + lifetime,
            bot_at_ms: (opponent == protocol::Opponent::Any).then_some(now + bot_after),
        };
        send(queued_message(id, &ticket));
        if let Some(player) = state.players.get_mut(&caller.account) {
            player.ticket = Some(ticket.id.clone());
        }
        state.tickets.insert(ticket.id.clone(), ticket.clone());
        self.metrics.queued();
        let shared = SharedTicket {
            id: ticket.id.clone(),
            account: caller.account.to_string(),
            name: caller.name.clone(),
            gateway: port.instance().to_owned(),
            link: caller.link.id,
            mode,
            opponent,
            moves,
            rating: standing,
            queued_ms: now,
            expires_ms: ticket.expires_ms,
            bot_at_ms: ticket.bot_at_ms,
        };
        let Some(hub) = self.arc() else {
            return;
        };
        let cluster = Arc::clone(&port.cluster);
        port.runtime.spawn(async move {
            // The rating the match will move is the shared one.
            let mut shared = shared;
            match cluster.ratings(&[shared.account.as_str()]).await {
                Ok(found) => {
                    if let Some(rating) = found.first() {
                        shared.rating = *rating;
                    }
                }
                Err(error) => tracing::warn!(%error, "reading a rating failed"),
            }
            hub.cluster_set_standing(&shared);
            let window = Windows::default().initial;
            match cluster
                .claim(&shared, window, shared.queued_ms, false)
                .await
            {
                Ok(Claim::Partner(partner)) => hub.cluster_matched(&shared.id, *partner),
                Ok(Claim::Queued) => {}
                // Withdrawn (a cancel, a drain) before this first claim arrived.
                Ok(Claim::Gone) => hub.cluster_withdrawn(&shared.id),
                Err(error) => {
                    tracing::warn!(%error, "queueing in the shared queue failed");
                    hub.cluster_ticket_failed(&shared.id);
                }
            }
        });
    }

    /// The hub's own handle, for the tasks it starts (set by `join_cluster`).
    pub(super) fn arc(&self) -> Option<Arc<Hub>> {
        self.me.get().and_then(std::sync::Weak::upgrade)
    }

    fn cluster_set_standing(&self, shared: &SharedTicket) {
        let mut state = self.lock();
        if let Some(ticket) = state.tickets.get_mut(&shared.id) {
            ticket.standing = shared.rating;
            ticket.rating = shared.rating.rating;
        }
    }

    /// The ticket's first claim found it withdrawn: a cancel raced it (and was told the ticket
    /// was matched, which it was not). The ticket ends here, and the player is told.
    fn cluster_withdrawn(&self, ticket_id: &str) {
        self.end_ticket(ticket_id, |ticket| ServerMessage::Cancelled {
            id: None,
            ticket: ticket.id.clone(),
        });
    }

    fn cluster_ticket_failed(&self, ticket_id: &str) {
        self.end_ticket(ticket_id, |_| {
            error(
                None,
                codes::QUEUE_FULL,
                "the shared queue is unavailable: try again",
            )
        });
    }

    /// Ends this instance's ticket `ticket_id`, if it still waits, and tells its player why.
    fn end_ticket(&self, ticket_id: &str, why: impl FnOnce(&Ticket) -> ServerMessage) {
        let now = self.now_ms();
        let mut state = self.lock();
        let state = &mut *state;
        if let Some(ticket) = state.tickets.get(ticket_id).cloned() {
            self.untrack_ticket(state, &ticket, now);
            self.send_to(state, &ticket.account, why(&ticket));
        }
    }

    /// The shared queue paired this instance's ticket `own` with `partner`: this instance
    /// owns the match.
    fn cluster_matched(&self, own: &str, partner: SharedTicket) {
        let now = self.now_ms();
        let port = self.cluster.get();
        let mut state = self.lock();
        let state = &mut *state;
        let Some(mine) = state.tickets.get(own).cloned() else {
            // Cancelled meanwhile: the partner goes back to the queue.
            self.requeue(partner);
            return;
        };
        let Some(account) = parse_account(&partner.account) else {
            return;
        };
        let Some(port) = port else {
            return;
        };
        let theirs = Ticket {
            id: partner.id.clone(),
            account,
            mode: partner.mode,
            opponent: partner.opponent,
            moves: partner.moves,
            rating: partner.rating.rating,
            standing: partner.rating,
            queued_ms: partner.queued_ms,
            expires_ms: partner.expires_ms,
            bot_at_ms: partner.bot_at_ms,
        };
        tracing::debug!(own, partner = %partner.account, gateway = %partner.gateway, "the shared queue paired a ticket of this instance");
        if partner.gateway == port.instance() {
            // Both players are here.
            if let Some(theirs) = state.tickets.get(&partner.id).cloned() {
                self.untrack_ticket(state, &theirs, now);
            }
        } else {
            let relay = self.relay(port, &partner.gateway, partner.link, &account, false);
            let chat_burst = self.settings.chat_burst;
            let player = state.players.entry(account).or_insert_with(|| Player {
                name: partner.name.clone(),
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
            if let Some(old) = player.link.replace(relay)
                && player.gateway.is_some()
            {
                old.outbox.close(RELEASED);
            }
            player.gateway = Some(Gateway {
                instance: partner.gateway.clone(),
                link: partner.link,
                last_request: None,
            });
            self.metrics
                .time_to_match(now.saturating_sub(theirs.queued_ms));
        }
        self.untrack_ticket(state, &mine, now);
        let (a, b) = if theirs.queued_ms < mine.queued_ms {
            (theirs, mine)
        } else {
            (mine, theirs)
        };
        self.start_human_match(state, a, b, now);
    }

    fn requeue(&self, partner: SharedTicket) {
        let Some(port) = self.cluster.get() else {
            return;
        };
        let cluster = Arc::clone(&port.cluster);
        port.runtime.spawn(async move {
            let window = Windows::default().initial;
            if let Err(error) = cluster.claim(&partner, window, unix_ms(), false).await {
                tracing::warn!(%error, "a ticket could not go back to the shared queue");
            }
        });
    }

    /// A relay link to a connection on `instance`: an outbox a task empties into its inbox.
    pub(super) fn relay(
        &self,
        port: &Port,
        instance: &str,
        link: u64,
        account: &AccountId,
        spectator: bool,
    ) -> Link {
        let outbox = Arc::new(Outbox::new(self.settings.outbox_capacity));
        let id = port.next_relay.fetch_add(1, Ordering::Relaxed);
        let writes = port.writes.clone();
        let pending = Arc::clone(&port.pending);
        let from = port.instance().to_owned();
        let to = instance.to_owned();
        let account = account.to_string();
        let task_outbox = Arc::clone(&outbox);
        port.runtime.spawn(async move {
            // The match of the last message carried: a release says which match it ends, so
            // a gateway can tell it from a newer relay's (two relay tasks are not ordered).
            let mut of_match: Option<String> = None;
            loop {
                // A relay nobody holds any more (its player forgotten) ends within a minute.
                let woke = tokio::time::timeout(Duration::from_secs(60), task_outbox.wait()).await;
                if woke.is_err() && Arc::strong_count(&task_outbox) == 1 {
                    return;
                }
                let taken = task_outbox.take();
                if taken.messages.is_empty() && taken.close.is_none() {
                    continue;
                }
                let release = taken.close.is_some_and(|c| c.code == RELEASED.code);
                let close = taken
                    .close
                    .filter(|c| c.code != RELEASED.code)
                    .map(|c| c.code);
                if let Some(last) = taken.messages.iter().rev().find_map(match_of)
                    && of_match.as_deref() != Some(last)
                {
                    of_match = Some(last.to_owned());
                }
                let envelope = Envelope::Deliver {
                    from: from.clone(),
                    account: account.clone(),
                    link,
                    messages: taken.messages.into(),
                    release,
                    close,
                    of_match: if release { of_match.take() } else { None },
                    spectator,
                };
                pending.fetch_add(1, Ordering::AcqRel);
                if writes
                    .send(Write::Send {
                        to: to.clone(),
                        envelope,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
                if taken.close.is_some() {
                    return;
                }
            }
        });
        Link { id, outbox }
    }

    /// An envelope from another instance.
    fn dispatch(&self, envelope: Envelope) {
        let Some(port) = self.cluster.get() else {
            return;
        };
        let now = self.now_ms();
        match envelope {
            Envelope::Forward {
                from,
                account,
                link,
                message,
                resent,
            } => {
                let Some(account) = parse_account(&account) else {
                    return;
                };
                let caller = {
                    let mut state = self.lock();
                    let Some(player) = state.players.get_mut(&account) else {
                        tracing::debug!(%account, %from, "a forwarded command for a player not here");
                        return;
                    };
                    let relay = player.link.clone();
                    let Some(gateway) = player
                        .gateway
                        .as_mut()
                        .filter(|g| g.instance == from && g.link == link)
                    else {
                        tracing::debug!(%account, %from, link, "a forwarded command from a connection not relayed");
                        return;
                    };
                    let Some(relay) = relay else {
                        return;
                    };
                    if message.id().is_some() {
                        if resent && gateway.last_request.as_deref() == Some(&message) {
                            // A copy the gateway sent again to this owner, found anew: this
                            // owner applied (and answered) it already.
                            tracing::debug!(%account, "a forwarded command again");
                            return;
                        }
                        gateway.last_request = Some(Box::new(message.clone()));
                    }
                    Caller {
                        account,
                        name: player.name.clone(),
                        link: relay,
                    }
                };
                if let After::Close(order) = self.handle(&caller, true, message) {
                    caller.link.outbox.close(order);
                }
            }
            Envelope::Detach {
                from,
                account,
                link,
            } => {
                let Some(account) = parse_account(&account) else {
                    return;
                };
                let relay = {
                    let state = self.lock();
                    state.players.get(&account).and_then(|player| {
                        let relayed = player
                            .gateway
                            .as_ref()
                            .is_some_and(|g| g.instance == from && g.link == link);
                        relayed
                            .then(|| player.link.as_ref().map(|l| l.id))
                            .flatten()
                    })
                };
                if let Some(relay) = relay {
                    self.detach(&account, relay);
                }
            }
            Envelope::Attach {
                from,
                account,
                name,
                link,
                how,
            } => {
                let Some(account) = parse_account(&account) else {
                    return;
                };
                let mut state = self.lock();
                let state = &mut *state;
                let seated = state
                    .players
                    .get(&account)
                    .is_some_and(|p| p.room.is_some() || p.unseen.is_some());
                tracing::debug!(%account, %from, link, seated, "a player attaches");
                if !seated {
                    // Not here (any more): the gateway greets the player itself.
                    port.send(
                        &from,
                        Envelope::Deliver {
                            from: port.instance().to_owned(),
                            account: account.to_string(),
                            link,
                            messages: Vec::new(),
                            release: true,
                            close: None,
                            of_match: None,
                            spectator: false,
                        },
                    );
                    return;
                }
                // Attached already from this very connection (two lookups raced): the same
                // relay, so taking the seat again closes nothing.
                let same = state.players.get(&account).and_then(|p| {
                    p.gateway
                        .as_ref()
                        .filter(|g| g.instance == from && g.link == link)
                        .and(p.link.clone())
                });
                let relay = match same {
                    Some(relay) => relay,
                    None => self.relay(port, &from, link, &account, false),
                };
                let caller = Caller {
                    account,
                    name,
                    link: relay,
                };
                match how {
                    Rejoin::Hello { request } => self.hello(state, &caller, request, now),
                    Rejoin::Resume { request, last_seq } => {
                        self.resume_verified(state, &caller, request, last_seq, now);
                    }
                    Rejoin::Follow { last_seq } => {
                        self.attach(state, &caller, now);
                        self.replay_since(state, &caller, last_seq);
                    }
                }
                if let Some(player) = state.players.get_mut(&account)
                    && player
                        .gateway
                        .as_ref()
                        .is_none_or(|g| g.instance != from || g.link != link)
                {
                    player.gateway = Some(Gateway {
                        instance: from,
                        link,
                        last_request: None,
                    });
                }
            }
            Envelope::Spectate {
                from,
                account,
                link,
                request,
                match_id,
            } => self.remote_spectate(port, &from, &account, link, request, &match_id, 0),
            Envelope::Unspectate {
                from,
                link,
                match_id,
            } => self.remote_unspectate(&from, link, &match_id),
            Envelope::Deliver {
                from,
                link,
                messages,
                release,
                spectator: true,
                ..
            } => self.delivered_to_spectator(&from, link, messages, release),
            Envelope::Deliver {
                from,
                account,
                link,
                messages,
                release,
                close,
                of_match,
                spectator: false,
            } => {
                let release = release.then_some(of_match);
                self.delivered(port, &from, &account, link, messages, release, close, now)
            }
        }
    }

    fn replay_since(&self, state: &State, caller: &Caller, last_seq: Option<u64>) {
        let Some((room_id, _)) = state
            .players
            .get(&caller.account)
            .and_then(|p| p.room.clone())
        else {
            return;
        };
        let Some(room) = state.rooms.get(&room_id) else {
            return;
        };
        let after = last_seq.map_or(0, |seq| seq.saturating_add(1));
        for event in public(&room.log)
            .into_iter()
            .filter(|event| event.seq >= after || last_seq.is_none())
        {
            caller.link.outbox.push_replayed(ServerMessage::Event {
                match_id: room_id.clone(),
                event,
            });
        }
    }

    /// Messages the owner relayed for one of this instance's connections.
    #[allow(clippy::too_many_arguments)]
    fn delivered(
        &self,
        port: &Port,
        from: &str,
        account: &str,
        link: u64,
        messages: Vec<ServerMessage>,
        release: Option<Option<String>>,
        close: Option<u16>,
        now: u64,
    ) {
        let Some(account) = parse_account(account) else {
            return;
        };
        let mut state = self.lock();
        let state = &mut *state;
        let Some(player) = state.players.get_mut(&account) else {
            return;
        };
        // A release (with the match it ends, when the relay knew it) counts only from the
        // current owner, for the match the player is in: a late one from the relay of a
        // match the player has left behind changes nothing (relays are not ordered).
        let released = release.is_some();
        let release = release.is_some_and(|of_match| {
            player.remote.as_ref().is_none_or(|remote| {
                remote.owner.as_deref().is_none_or(|owner| owner == from)
                    && of_match.is_none_or(|m| remote.match_id.is_empty() || m == remote.match_id)
            })
        });
        if released {
            tracing::debug!(%account, %from, release, "a relay's release");
        }
        let Some(local) = player.link.clone().filter(|l| l.id == link) else {
            // For a connection that is gone: the player resumes and gets it from the log
            // while the match runs. What a match that ended meanwhile said is kept in Redis
            // for the account's next greeting, wherever it lands.
            let missed: Vec<ServerMessage> = messages
                .into_iter()
                .filter(|m| match_of(m).is_some())
                .collect();
            if !missed.is_empty() {
                port.write(Write::Missed {
                    account: account.to_string(),
                    messages: missed,
                    kept_ms: self.settings.resume_grace_ms(),
                });
            }
            return;
        };
        let mut matched_ticket = None;
        let mut greet_here = None;
        let replaying = messages.iter().any(|m| {
            matches!(
                m,
                ServerMessage::Resumed { .. } | ServerMessage::Welcome { .. }
            )
        });
        for mut message in messages {
            // A match this connection has seen the result of is over for it: a late copy of
            // its messages (a replay racing the result) is dropped, not taken for a new seat.
            let of_match = match &message {
                ServerMessage::Matched { match_id, .. }
                | ServerMessage::Event { match_id, .. }
                | ServerMessage::MatchResult { match_id, .. } => Some(match_id.as_str()),
                _ => None,
            };
            if of_match.is_some() && of_match == player.concluded.as_deref() {
                continue;
            }
            match &mut message {
                ServerMessage::Matched {
                    match_id, ticket, ..
                } => {
                    matched_ticket = Some(ticket.clone());
                    let remote = player.remote.get_or_insert_with(|| {
                        Box::new(Remote {
                            match_id: String::new(),
                            owner: None,
                            last_seq: None,
                            awaiting: None,
                            pending: None,
                            relocations: 0,
                            missed: Vec::new(),
                        })
                    });
                    remote.match_id = match_id.clone();
                    remote.owner = Some(from.to_owned());
                }
                ServerMessage::Event { event, match_id } => {
                    if let Some(remote) = player.remote.as_mut()
                        && remote.match_id == *match_id
                    {
                        remote.last_seq = Some(event.seq);
                    }
                }
                ServerMessage::Welcome {
                    resume_token,
                    match_id,
                    ..
                }
                | ServerMessage::Resumed {
                    resume_token,
                    match_id,
                    ..
                } => {
                    // The token is this instance's (any instance honours it through Redis).
                    resume_token.clone_from(&player.resume_token);
                    if let Some(remote) = player.remote.as_mut() {
                        remote.awaiting = None;
                        remote.owner = Some(from.to_owned());
                        if let Some(id) = match_id {
                            remote.match_id.clone_from(id);
                        }
                    }
                    local.outbox.mark_greeted();
                }
                ServerMessage::Ack { id } | ServerMessage::Error { id, .. } => {
                    if let Some(remote) = player.remote.as_mut()
                        && remote.pending.as_ref().is_some_and(|p| p.id() == *id)
                    {
                        remote.pending = None;
                    }
                }
                ServerMessage::MatchResult { match_id, .. } => {
                    player.remote = None;
                    player.concluded = Some(match_id.clone());
                }
                _ => {}
            }
            if replaying && matches!(message, ServerMessage::Event { .. }) {
                local.outbox.push_replayed(message);
            } else {
                local.outbox.push(message);
            }
        }
        let mut relocate = false;
        if release && let Some(remote) = player.remote.as_mut() {
            match remote.awaiting {
                // The owner Redis named has no seat for the player, though Redis seated it in
                // a match: the owner let it go meanwhile (a drain). Look for it again.
                Some(_) if !remote.match_id.is_empty() && remote.relocations < RELOCATIONS => {
                    remote.relocations += 1;
                    remote.owner = None;
                    relocate = true;
                }
                // The owner has no seat for the player: greeted here.
                Some(greeting) => {
                    greet_here = Some(greeting);
                    player.remote = None;
                }
                // The owner let a running match go (a drain): the keeper finds who took it,
                // or takes it.
                None => remote.owner = None,
            }
        }
        if release
            && state.draining.is_some()
            && state.rooms.is_empty()
            && !state
                .players
                .values()
                .any(|p| p.link.is_some() && p.remote.as_ref().is_some_and(|r| r.owner.is_some()))
            && !state
                .timers
                .iter()
                .any(|(at, timer)| matches!(timer, Timer::DrainEnd) && *at <= now)
        {
            // Every owner has let go of this draining instance's players: close now.
            self.schedule(state, now, Timer::DrainEnd);
        }
        if let Some(code) = close {
            local.outbox.close(CloseOrder {
                code,
                reason: match code {
                    protocol::close::REPLACED => "another connection of this account took over",
                    protocol::close::SLOW_CONSUMER => "too many messages unread",
                    protocol::close::GOING_AWAY => "the server is shutting down",
                    _ => "closed by the match's instance",
                },
            });
        }
        if let Some(ticket) = matched_ticket.filter(|t| !t.is_empty())
            && let Some(ticket) = state.tickets.get(&ticket).cloned()
        {
            self.untrack_ticket(state, &ticket, now);
        }
        let caller = || Caller {
            account,
            name: state
                .players
                .get(&account)
                .map_or_else(String::new, |p| p.name.clone()),
            link: local.clone(),
        };
        if relocate {
            self.spawn_locate(port, caller(), None);
        }
        if let Some(greeting) = greet_here {
            let caller = caller();
            self.greet_here(port, state, &caller, greeting, now);
        }
    }

    /// Answers a hello or resume from this instance: the account sits in no shared match (or
    /// its match now runs here).
    fn greet_here(
        &self,
        _port: &Port,
        state: &mut State,
        caller: &Caller,
        greeting: Greeting,
        now: u64,
    ) {
        let mut missed = Vec::new();
        if let Some(player) = state.players.get_mut(&caller.account) {
            if let Some(remote) = player.remote.take()
                && player.room.is_none()
                && player.unseen.is_none()
            {
                missed = remote.missed;
            }
        }
        match greeting {
            Greeting::Hello { id } => self.hello(state, caller, id, now),
            Greeting::Resume { id, last_seq } => {
                if !self.resume_missed(state, caller, id, last_seq, missed, now) {
                    self.resume_verified(state, caller, id, last_seq, now);
                }
            }
        }
        caller.link.outbox.mark_greeted();
    }

    /// A resume whose match ended while the player was away, the end never handed to its
    /// connection (it had gone when the end reached its gateway): `resumed` into that match,
    /// the events after `last_seq` and the result, from what the gateway kept. False (nothing
    /// sent) when nothing was kept.
    fn resume_missed(
        &self,
        state: &mut State,
        caller: &Caller,
        id: Option<u64>,
        last_seq: Option<u64>,
        missed: Vec<ServerMessage>,
        now: u64,
    ) -> bool {
        let Some(match_id) = missed.iter().find_map(|m| match m {
            ServerMessage::MatchResult { match_id, .. } => Some(match_id.clone()),
            _ => None,
        }) else {
            return false;
        };
        let after = last_seq.map_or(0, |seq| seq.saturating_add(1));
        let mut seen = std::collections::BTreeSet::new();
        let mut events = Vec::new();
        let mut result = None;
        let mut seat = None;
        for message in missed {
            if match_of(&message) != Some(match_id.as_str()) {
                continue;
            }
            match message {
                ServerMessage::Event { ref event, .. }
                    if (last_seq.is_none() || event.seq >= after) && seen.insert(event.seq) =>
                {
                    events.push(message);
                }
                ServerMessage::Matched { seat: s, .. } => seat = Some(s),
                ServerMessage::MatchResult { .. } => result = Some(message),
                _ => {}
            }
        }
        let token = self.attach(state, caller, now);
        let queued = state
            .players
            .get(&caller.account)
            .is_some_and(|p| p.ticket.is_some());
        self.metrics.resumes(0);
        caller.link.outbox.push(ServerMessage::Resumed {
            id,
            resume_token: token,
            match_id: Some(match_id),
            seat,
            replayed: events.len() as u64,
            complete: true,
            queued,
            server_time_ms: now,
        });
        for event in events {
            caller.link.outbox.push_replayed(event);
        }
        if let Some(result) = result {
            caller.link.outbox.push(result);
        }
        true
    }

    fn spawn_locate(&self, port: &Port, caller: Caller, token: Option<String>) {
        let Some(hub) = self.arc() else {
            return;
        };
        let cluster = Arc::clone(&port.cluster);
        port.runtime.spawn(async move {
            let seat = match cluster.locate(token.as_deref(), &caller.account).await {
                Ok(found) => found.seat,
                Err(error) => {
                    tracing::warn!(%error, "locating a player's match failed");
                    None
                }
            };
            hub.located(&cluster, &caller, seat).await;
        });
    }

    fn spawn_resume(&self, port: &Port, caller: Caller, token: String, greeting: Greeting) {
        let Some(hub) = self.arc() else {
            return;
        };
        let cluster = Arc::clone(&port.cluster);
        port.runtime.spawn(async move {
            let found = match cluster.locate(Some(&token), &caller.account).await {
                Ok(found) => found,
                Err(error) => {
                    tracing::warn!(%error, "checking a resume token failed");
                    Located::default()
                }
            };
            let (owner_of_token, seat) = (found.owner_of_token, found.seat);
            let id = match greeting {
                Greeting::Resume { id, .. } | Greeting::Hello { id } => id,
            };
            if owner_of_token.as_deref() != Some(caller.account.as_str()) {
                hub.metrics.resumes(2);
                caller.link.outbox.push(error(
                    id,
                    codes::RESUME_UNKNOWN,
                    "the resume token is unknown or expired: send hello",
                ));
                return;
            }
            {
                let now = hub.now_ms();
                let mut state = hub.lock();
                let state = &mut *state;
                // A takeover here while the lookup was out seated the player (away) in the
                // very match Redis names, or ended it: the match is this instance's, so the
                // answer is too. Marked as locating instead, the player would be live in the
                // match (the attach reconnects its seat) while counted as seated elsewhere,
                // and a queue after the match's result was refused as `in_match`. A seat
                // here in any other match is a stale one (a takeover of a match the player
                // had left): Redis's lookup decides then.
                let here = seat.as_deref().is_some_and(|named| {
                    state.players.get(&caller.account).is_some_and(|p| {
                        p.room.as_ref().is_some_and(|(room, _)| room == named)
                            || p.unseen.as_ref().is_some_and(|u| u.match_id == named)
                    })
                });
                if here && let Some(port) = hub.cluster.get() {
                    tracing::debug!(account = %caller.account, "a resume finds its match taken over here");
                    hub.greet_here(port, state, &caller, greeting, now);
                    return;
                }
                hub.attach(state, &caller, now);
                hub.mark_locating(state, &caller, greeting);
                if let Some(remote) = state
                    .players
                    .get_mut(&caller.account)
                    .and_then(|p| p.remote.as_mut())
                {
                    remote.missed = found.missed;
                }
            }
            caller.link.outbox.mark_greeted();
            hub.located(&cluster, &caller, seat).await;
        });
    }

    /// Where the caller's match is (if any), once Redis said: here, at a live owner, or
    /// nowhere live (then this instance takes it).
    async fn located(self: &Arc<Self>, cluster: &Cluster, caller: &Caller, seat: Option<String>) {
        if let Some(match_id) = &seat {
            // The match this greeting waits for, so taking it over here seats the player.
            let mut state = self.lock();
            if let Some(remote) = state
                .players
                .get_mut(&caller.account)
                .and_then(|p| p.remote.as_mut())
                .filter(|r| r.match_id.is_empty())
            {
                remote.match_id.clone_from(match_id);
            }
        }
        let mut attempts = 0u32;
        let owner = loop {
            let Some(match_id) = seat.as_ref() else {
                break None;
            };
            let owner = cluster
                .owners(std::slice::from_ref(match_id))
                .await
                .ok()
                .and_then(|mut o| o.pop().flatten());
            match owner {
                // Taken by this instance a moment ago (the keeper): wait for the room.
                Some(owner)
                    if owner == cluster.instance && !self.runs(match_id) && attempts < 10 =>
                {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Some(owner) => break Some((match_id.clone(), owner)),
                // Draining: the player is about to be closed and resume elsewhere.
                None if self.is_draining() => break None,
                None => match cluster.take(match_id).await {
                    Ok(Some(taken)) => {
                        self.adopt(match_id, taken);
                        break None;
                    }
                    // Gone (expired) or just taken by another instance: look again.
                    Ok(None) if attempts < 3 => attempts += 1,
                    Ok(None) => break None,
                    Err(error) => {
                        tracing::warn!(%error, "taking a match failed");
                        break None;
                    }
                },
            }
        };
        let Some(port) = self.cluster.get() else {
            return;
        };
        let now = self.now_ms();
        let mut state = self.lock();
        let state = &mut *state;
        let Some(player) = state.players.get_mut(&caller.account) else {
            return;
        };
        if player.link.as_ref().is_none_or(|l| l.id != caller.link.id) {
            return;
        }
        match owner {
            Some((match_id, owner)) if owner != port.instance() => {
                tracing::debug!(account = %caller.account, %match_id, %owner, "a greeting's match runs elsewhere");
                let Some(remote) = player.remote.as_mut() else {
                    return;
                };
                remote.match_id = match_id;
                remote.owner = Some(owner.clone());
                port.send(
                    &owner,
                    Envelope::Attach {
                        from: port.instance().to_owned(),
                        account: caller.account.to_string(),
                        name: caller.name.clone(),
                        link: caller.link.id,
                        how: rejoin_of(remote),
                    },
                );
            }
            _ => {
                tracing::debug!(
                    account = %caller.account,
                    seat = seat.as_deref().unwrap_or(""),
                    owner = owner.as_ref().map_or("", |(_, o)| o.as_str()),
                    attempts,
                    awaiting = player.remote.as_ref().is_some_and(|r| r.awaiting.is_some()),
                    "a greeting is answered here"
                );
                // Unless it was answered meanwhile (the match was taken over here, and its
                // taking greeted the player).
                if let Some(greeting) = player.remote.take().and_then(|r| r.awaiting) {
                    self.greet_here(port, state, caller, greeting, now);
                }
            }
        }
    }

    /// Whether this instance runs the match now.
    fn runs(&self, match_id: &str) -> bool {
        self.lock().rooms.contains_key(match_id)
    }

    fn spawn_cancel(&self, port: &Port, caller: Caller, id: Option<u64>, ticket: Ticket) {
        let Some(hub) = self.arc() else {
            return;
        };
        let cluster = Arc::clone(&port.cluster);
        port.runtime.spawn(async move {
            let taken = cluster.withdraw(ticket.mode, &ticket.id).await;
            let now = hub.now_ms();
            let mut state = hub.lock();
            let state = &mut *state;
            let _ = match taken {
                Ok(true) => {
                    hub.untrack_ticket(state, &ticket, now);
                    caller.link.outbox.push(ServerMessage::Cancelled {
                        id,
                        ticket: ticket.id.clone(),
                    })
                }
                Ok(false) => caller.link.outbox.push(error(
                    id,
                    codes::NOT_QUEUED,
                    "an opponent was found already",
                )),
                Err(_) => caller.link.outbox.push(error(
                    id,
                    codes::NOT_QUEUED,
                    "the shared queue is unavailable: try again",
                )),
            };
        });
    }

    /// Rebuilds a match this instance just took (its owner's lease expired) from its log.
    fn adopt(&self, match_id: &str, taken: super::super::cluster::Taken) {
        let now = self.now_ms();
        let game = match Match::replay(taken.meta.config.clone(), &taken.events) {
            Ok(game) => game,
            Err(error) => {
                tracing::error!(%match_id, %error, "a taken match's log does not replay");
                return;
            }
        };
        let mut guard = self.lock();
        let state = &mut *guard;
        if state.rooms.contains_key(match_id) {
            return;
        }
        if game.is_ended() && state.records.transcript(match_id).is_some() {
            // This instance finished the match itself a moment ago (a greeting's lookup came
            // back late and took it again): nothing is left to do but let it go.
            if let Some(port) = self.cluster.get() {
                port.write(Write::Release {
                    match_id: match_id.to_owned(),
                    fence: taken.fence,
                });
            }
            return;
        }
        let meta = taken.meta;
        let occupant = |seat: Seat| match &meta.seats[seat] {
            SeatMeta::Human { account, .. } => parse_account(account).map(Occupant::Human),
            SeatMeta::Bot { arm, .. } => {
                let arm = (*arm).min(self.experiment.arms.len().saturating_sub(1));
                let mut bot = self.experiment.arms[arm].strategy.bot();
                for event in &taken.events {
                    if let EventKind::RoundRevealed { moves, .. } = &event.kind
                        && let (Some(own), Some(theirs)) = (moves[seat], moves[seat.other()])
                    {
                        bot.observe(own, theirs);
                    }
                }
                Some(Occupant::Bot { arm, bot })
            }
        };
        let (Some(a), Some(b)) = (occupant(Seat::A), occupant(Seat::B)) else {
            return;
        };
        let name = |seat: Seat| match &meta.seats[seat] {
            SeatMeta::Human { name, .. } | SeatMeta::Bot { name, .. } => name.clone(),
        };
        let rating = |seat: Seat| match &meta.seats[seat] {
            SeatMeta::Human { rating, .. } => rating.rating,
            SeatMeta::Bot { rating, .. } => *rating,
        };
        let room = Room {
            game,
            log: taken.events.clone(),
            seats: PerSeat::new(a, b),
            names: PerSeat::new(name(Seat::A), name(Seat::B)),
            ratings: PerSeat::new(rating(Seat::A), rating(Seat::B)),
            deadline: None,
            bot_moves: PerSeat::default(),
            fallback: meta.fallback,
            drops: PerSeat::default(),
            fence: taken.fence,
            persisted: 1 + taken.events.len() as u64,
            stored: true,
            meta: Some(Box::new(meta.clone())),
            spectators: Vec::new(),
        };
        let humans: Vec<(Seat, AccountId)> = Seat::BOTH
            .into_iter()
            .filter_map(|seat| match &room.seats[seat] {
                Occupant::Human(account) => Some((seat, *account)),
                Occupant::Bot { .. } => None,
            })
            .collect();
        let ended = room.game.is_ended();
        state.rooms.insert(match_id.to_owned(), room);
        self.metrics.cluster(cluster_counter::TAKEN, 1);
        tracing::info!(%match_id, fence = taken.fence, "took over a match whose owner was lost");
        let chat_burst = self.settings.chat_burst;
        let grace = self.settings.resume_grace_ms();
        let mut away = Vec::new();
        let mut greetings = Vec::new();
        let mut pending = Vec::new();
        for (seat, account) in &humans {
            let player = state.players.entry(*account).or_insert_with(|| Player {
                name: name(*seat),
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
            // Connected here and following this match (or with no other): back in it. A
            // player connected here who has moved on (a stale taking of a finished match,
            // another match) is left alone: the seat counts as away.
            // A greeting still looking for its match (its lookup not back yet) is for this
            // one, unless this one is over: an account sits in one running match at a time.
            let following = player.link.is_some()
                && player.gateway.is_none()
                && player.remote.as_ref().is_some_and(|r| {
                    r.match_id == match_id
                        || (r.match_id.is_empty() && r.awaiting.is_some() && !ended)
                });
            let elsewhere = player.link.is_some() && !following;
            if elsewhere {
                continue;
            }
            player.room = Some((match_id.to_owned(), *seat));
            if following {
                // Connected here: a player in the match again, without a drop.
                let remote = player.remote.take();
                if let (Some(link), Some(remote)) = (player.link.clone(), remote) {
                    let caller = Caller {
                        account: *account,
                        name: player.name.clone(),
                        link,
                    };
                    if let Some(message) = remote.pending {
                        pending.push((caller.clone(), message));
                    }
                    match remote.awaiting {
                        Some(greeting) => greetings.push((caller, greeting)),
                        None => self.replay_since(state, &caller, remote.last_seq),
                    }
                }
            } else {
                away.push((*seat, *account));
            }
        }
        // Answered before anything else happens in the match, so the resume's replay comes
        // first and what follows comes live.
        if let Some(port) = self.cluster.get() {
            for (caller, greeting) in std::mem::take(&mut greetings) {
                self.greet_here(port, state, &caller, greeting, now);
            }
        }
        for (seat, account) in away {
            if let Some(player) = state.players.get_mut(&account) {
                player.link = None;
                player.gateway = None;
                let at = now + grace;
                player.grace_at = Some(at);
                self.schedule(state, at, Timer::Grace(account));
            }
            let _ = self.run(state, match_id, Command::Disconnect { seat }, now);
        }
        // Deadlines, a bot's move, or the end the old owner wrote but did not record.
        self.append(state, match_id, Vec::new(), now);
        if state
            .rooms
            .get(match_id)
            .is_some_and(|room| room.game.is_ended())
        {
            self.finish(state, match_id);
        }
        drop(guard);
        // A command forwarded to the lost owner and never answered: applied here now.
        for (caller, message) in pending {
            if let After::Close(order) = self.handle(&caller, true, message) {
                caller.link.outbox.close(order);
            }
        }
    }

    /// The creations of these matches landed in Redis: their leases are renewed from now on.
    fn stored(&self, match_ids: &[&str]) {
        if match_ids.is_empty() {
            return;
        }
        let mut state = self.lock();
        for match_id in match_ids {
            if let Some(room) = state.rooms.get_mut(*match_id) {
                room.stored = true;
            }
        }
    }

    /// This instance lost a match it ran (another took it: the fencing token moved on). Its
    /// players here follow it to the new owner; relayed players' gateways find it themselves.
    pub(super) fn disown(&self, match_id: &str, why: Refused) {
        let mut state = self.lock();
        let state = &mut *state;
        let Some(room) = state.rooms.remove(match_id) else {
            return;
        };
        tracing::warn!(%match_id, ?why, "lost a match to another instance");
        let counter = match why {
            Refused::Lapsed => cluster_counter::LAPSED,
            Refused::Fenced | Refused::Diverged => cluster_counter::FENCED,
        };
        self.metrics.cluster(counter, 1);
        if let Some(at) = room.deadline {
            state.timers.remove(&(at, Timer::Room(match_id.to_owned())));
        }
        let last_seq = room
            .log
            .iter()
            .rev()
            .find(|e| e.kind.is_public())
            .map(|e| e.seq);
        for seat in Seat::BOTH {
            let Occupant::Human(account) = &room.seats[seat] else {
                continue;
            };
            let Some(player) = state.players.get_mut(account) else {
                continue;
            };
            player.room = None;
            if player.gateway.take().is_some() {
                if let Some(relay) = player.link.take() {
                    relay.outbox.close(RELEASED);
                }
                if let Some(gone) = state.players.remove(account) {
                    state.resume_tokens.remove(&gone.resume_token);
                }
            } else {
                player.remote = Some(Box::new(Remote {
                    match_id: match_id.to_owned(),
                    owner: None,
                    last_seq,
                    awaiting: None,
                    pending: None,
                    relocations: 0,
                    missed: Vec::new(),
                }));
                // Cut off from Redis, this instance can reach neither the new owner nor the
                // log: the player resumes on an instance that can.
                if why == Refused::Lapsed
                    && let Some(link) = &player.link
                {
                    link.outbox.close(CloseOrder {
                        code: protocol::close::GOING_AWAY,
                        reason: "this instance lost its store: resume on another",
                    });
                }
            }
        }
    }

    /// A drain, for players here whose match runs elsewhere: asks each owner to let go of the
    /// player (as when the connection drops), and keeps the connection open until the owner's
    /// release comes back. The owner's relay sends the release after everything it relayed
    /// before, so nothing the owner said (the end of the match, its result) is lost in a
    /// closing connection. True when any was asked.
    pub(super) fn detach_remote_players(&self, port: &Port, state: &mut State) -> bool {
        let mut any = false;
        for (account, player) in &state.players {
            let (Some(link), Some(remote)) = (&player.link, &player.remote) else {
                continue;
            };
            let Some(owner) = &remote.owner else {
                continue;
            };
            any = true;
            port.send(
                owner,
                Envelope::Detach {
                    from: port.instance().to_owned(),
                    account: account.to_string(),
                    link: link.id,
                },
            );
        }
        any
    }

    /// A drain: lets every match run here go (its lease deleted, so an instance holding one
    /// of its players takes it within a keeper period), and takes this instance's tickets out
    /// of the shared queue. The connections here then close (1001) and resume elsewhere.
    pub(super) fn hand_over(&self, port: &Port, state: &mut State, now: u64) {
        let rooms: Vec<String> = state
            .rooms
            .iter()
            .filter(|(_, room)| room.fence > 0 && !room.game.is_ended())
            .map(|(id, _)| id.clone())
            .collect();
        for match_id in rooms {
            let Some(room) = state.rooms.remove(&match_id) else {
                continue;
            };
            if let Some(at) = room.deadline {
                state.timers.remove(&(at, Timer::Room(match_id.clone())));
            }
            port.write(Write::Release {
                match_id: match_id.clone(),
                fence: room.fence,
            });
            self.metrics.handed_over();
            tracing::debug!(%match_id, "handed a match over");
            for seat in Seat::BOTH {
                let Occupant::Human(account) = &room.seats[seat] else {
                    continue;
                };
                let Some(player) = state.players.get_mut(account) else {
                    continue;
                };
                player.room = None;
                if player.gateway.take().is_some() {
                    if let Some(relay) = player.link.take() {
                        relay.outbox.close(RELEASED);
                    }
                    if let Some(gone) = state.players.remove(account) {
                        state.resume_tokens.remove(&gone.resume_token);
                    }
                }
            }
        }
        let tickets: Vec<Ticket> = state.tickets.values().cloned().collect();
        for ticket in tickets {
            self.untrack_ticket(state, &ticket, now);
            self.send_to(
                state,
                &ticket.account,
                ServerMessage::QueueExpired {
                    ticket: ticket.id.clone(),
                    reason: protocol::ExpiredReason::Draining,
                },
            );
            let cluster = Arc::clone(&port.cluster);
            port.runtime.spawn(async move {
                let _ = cluster.withdraw(ticket.mode, &ticket.id).await;
            });
        }
    }

    fn is_draining(&self) -> bool {
        self.lock().draining.is_some()
    }

    /// (match, fencing token) of every shared match this instance runs.
    fn owned(&self) -> Vec<(String, u64)> {
        let state = self.lock();
        state
            .rooms
            .iter()
            .filter(|(_, room)| room.fence > 0 && room.stored)
            .map(|(id, room)| (id.clone(), room.fence))
            .collect()
    }

    /// (account, match, owner) of every player here whose match runs elsewhere.
    fn watched(&self) -> Vec<(AccountId, String, Option<String>)> {
        let state = self.lock();
        state
            .players
            .iter()
            .filter_map(|(account, player)| {
                let remote = player.remote.as_ref()?;
                // A greeting still looking for its match attaches itself.
                (!remote.match_id.is_empty() && remote.awaiting.is_none())
                    .then(|| (*account, remote.match_id.clone(), remote.owner.clone()))
            })
            .collect()
    }

    /// A watched match's owner is now `owner` (or none): attach to the new one, or take it.
    fn owner_moved(&self, account: &AccountId, match_id: &str, owner: &str) {
        let Some(port) = self.cluster.get() else {
            return;
        };
        let mut state = self.lock();
        if state.draining.is_some() {
            // Its connections are about to close; the players resume elsewhere.
            return;
        }
        let Some(player) = state.players.get_mut(account) else {
            return;
        };
        let (Some(link), Some(remote)) = (player.link.clone(), player.remote.as_mut()) else {
            return;
        };
        if remote.match_id != match_id || remote.owner.as_deref() == Some(owner) {
            return;
        }
        remote.owner = Some(owner.to_owned());
        let how = rejoin_of(remote);
        let pending = remote.pending.clone();
        let from = port.instance().to_owned();
        port.send(
            owner,
            Envelope::Attach {
                from: from.clone(),
                account: account.to_string(),
                name: player.name.clone(),
                link: link.id,
                how,
            },
        );
        if let Some(message) = pending {
            port.send(
                owner,
                Envelope::Forward {
                    from,
                    account: account.to_string(),
                    link: link.id,
                    message,
                    resent: true,
                },
            );
        }
    }

    /// This instance's tickets, for the sweep.
    fn cluster_tickets(&self) -> Vec<(Ticket, String, u64)> {
        let state = self.lock();
        state
            .tickets
            .values()
            .filter_map(|ticket| {
                let player = state.players.get(&ticket.account)?;
                let link = player.link.as_ref()?.id;
                Some((ticket.clone(), player.name.clone(), link))
            })
            .collect()
    }

    fn census_counts(&self) -> [u64; 4] {
        let census = self.census();
        [
            (census.idle + census.queued + census.in_match) as u64,
            census.queued as u64,
            census.in_match as u64,
            census.matches_running as u64,
        ]
    }
}

/// Ends the relays of players whose match ended here (see `State::releasing`).
pub(super) fn release(state: &mut State) {
    for (account, link) in std::mem::take(&mut state.releasing) {
        let relayed = state.players.get(&account).is_some_and(|player| {
            player.gateway.is_some()
                && player.room.is_none()
                && player.link.as_ref().is_some_and(|l| l.id == link)
        });
        if !relayed {
            continue;
        }
        if let Some(gone) = state.players.remove(&account) {
            if let Some(relay) = gone.link {
                relay.outbox.close(RELEASED);
            }
            state.resume_tokens.remove(&gone.resume_token);
        }
    }
}

/// The match a message to a player is about, if any.
fn match_of(message: &ServerMessage) -> Option<&str> {
    match message {
        ServerMessage::Matched { match_id, .. }
        | ServerMessage::Event { match_id, .. }
        | ServerMessage::MatchResult { match_id, .. } => Some(match_id),
        _ => None,
    }
}

/// How a player waiting at this gateway takes its seat back at the owner.
fn rejoin_of(remote: &Remote) -> Rejoin {
    match remote.awaiting {
        Some(Greeting::Hello { id }) => Rejoin::Hello { request: id },
        Some(Greeting::Resume { id, last_seq }) => Rejoin::Resume {
            request: id,
            last_seq,
        },
        None => Rejoin::Follow {
            last_seq: remote.last_seq,
        },
    }
}

/// Sends queued writes in order, pipelined; retries a batch while Redis is unreachable.
async fn writer(hub: Arc<Hub>, cluster: Arc<Cluster>, mut queued: mpsc::Receiver<Write>) {
    let mut batch = Vec::with_capacity(256);
    if let Err(error) = cluster.load_scripts().await {
        tracing::warn!(%error, "loading the cluster's scripts failed; they load on first use");
    }
    loop {
        if queued.recv_many(&mut batch, 256).await == 0 {
            return;
        }
        let mut backoff = Duration::from_millis(50);
        loop {
            match cluster.write(&batch).await {
                Ok(results) => {
                    let mut stored = Vec::new();
                    for (write, result) in batch.iter().zip(results) {
                        match (write, result) {
                            (_, Wrote::Refused(match_id, why)) => hub.disown(&match_id, why),
                            (Write::Create { match_id, .. }, Wrote::Done) => {
                                stored.push(match_id.as_str());
                            }
                            _ => {}
                        }
                    }
                    hub.stored(&stored);
                    if let Some(port) = hub.cluster.get() {
                        port.pending.fetch_sub(batch.len() as u64, Ordering::AcqRel);
                    }
                    break;
                }
                Err(error) => {
                    hub.metrics.cluster(cluster_counter::RETRIED, 1);
                    tracing::warn!(%error, writes = batch.len(), "cluster writes failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
        batch.clear();
    }
}

/// Reads this instance's inbox and hands each envelope to the hub.
async fn reader(hub: Arc<Hub>, cluster: Arc<Cluster>) {
    let mut inbox = loop {
        match cluster.inbox().await {
            Ok(inbox) => break inbox,
            Err(error) => {
                tracing::warn!(%error, "opening the inbox failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    inbox.from_start();
    let mut skipped = 0;
    loop {
        let before = skipped;
        let read = inbox.next(&mut skipped).await;
        hub.metrics
            .cluster(cluster_counter::SKIPPED, skipped - before);
        match read {
            Ok(envelopes) => {
                for envelope in envelopes {
                    hub.dispatch(envelope);
                }
            }
            Err(error) => {
                tracing::warn!(%error, "reading the inbox failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Renews the leases of matches run here, watches those of matches run elsewhere, sweeps the
/// shared queue for this instance's tickets, and publishes the census.
async fn keeper(hub: Arc<Hub>, cluster: Arc<Cluster>) {
    let period = (cluster.lease / 3).max(Duration::from_millis(100));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut beats = 0u64;
    // When the last renewal that succeeded started: every lease held then runs out a lease
    // after it, and no later.
    let mut renewed = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        let owned = hub.owned();
        let started = tokio::time::Instant::now();
        match cluster.renew(&owned).await {
            Ok(lost) => {
                renewed = started;
                for match_id in lost {
                    hub.disown(&match_id, Refused::Fenced);
                }
            }
            Err(error) => {
                tracing::warn!(%error, "renewing match leases failed");
                // The next try (a period away, and as long again as a store call may take)
                // could come after the leases ran out, when another instance may take the
                // matches: stop running them now (self-fencing), not later.
                if renewed.elapsed() + period + cluster.timeout >= cluster.lease {
                    for (match_id, _) in &owned {
                        hub.disown(match_id, Refused::Lapsed);
                    }
                }
                // Redis is out of reach: the rest of the pass would only wait out timeouts
                // and delay the next renewal.
                continue;
            }
        }
        // A draining instance takes no match: it would end it as no contest when it stops.
        let watched = if hub.is_draining() {
            Vec::new()
        } else {
            hub.watched()
        };
        let ids: Vec<String> = watched.iter().map(|(_, id, _)| id.clone()).collect();
        match cluster.owners(&ids).await {
            Ok(owners) => {
                for ((account, match_id, current), owner) in watched.into_iter().zip(owners) {
                    match owner {
                        Some(owner) if current.as_deref() != Some(owner.as_str()) => {
                            hub.owner_moved(&account, &match_id, &owner);
                        }
                        Some(_) => {}
                        None => match cluster.take(&match_id).await {
                            Ok(Some(taken)) => hub.adopt(&match_id, taken),
                            Ok(None) => {}
                            Err(error) => tracing::warn!(%error, "taking a match failed"),
                        },
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "reading match owners failed"),
        }
        // Spectators follow a watched match to its new owner.
        let spectated = hub.watched_elsewhere();
        let ids: Vec<String> = spectated.iter().map(|(_, id, _)| id.clone()).collect();
        if let Ok(owners) = cluster.owners(&ids).await {
            for ((link, match_id, current), owner) in spectated.into_iter().zip(owners) {
                if let Some(owner) = owner.filter(|o| *o != current) {
                    hub.spectated_moved(link, &match_id, &owner);
                }
            }
        }
        if let Some(port) = hub.cluster.get() {
            let dropped = port.dropped.swap(0, Ordering::Relaxed);
            hub.metrics.cluster(cluster_counter::DROPPED, dropped);
        }
        // Presence: renewed every few periods, well within its expiry.
        beats += 1;
        if beats % 4 == 1 {
            let players = hub.local_presence();
            if let Err(error) = cluster.publish_presence(&players).await {
                tracing::warn!(%error, "publishing presence failed");
            }
        }
        match cluster.census(hub.census_counts()).await {
            Ok(total) => hub.set_presence(total),
            Err(error) => tracing::warn!(%error, "publishing the census failed"),
        }
    }
}

/// Widens the windows of this instance's waiting tickets, and ends those due a bot or past
/// their lifetime: once a second, a few dozen at a time, in a task of its own so that a long
/// queue never holds up the renewal of leases.
async fn sweeper(hub: Arc<Hub>, cluster: Arc<Cluster>) {
    use futures_util::StreamExt;
    let mut tick = tokio::time::interval(SWEEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let windows = Windows::default();
    loop {
        tick.tick().await;
        let now = hub.now_ms();
        let tickets = hub.cluster_tickets();
        futures_util::stream::iter(tickets)
            .for_each_concurrent(SWEEPS_AT_ONCE, |(ticket, name, link)| {
                let (hub, cluster) = (&hub, &cluster);
                async move { sweep_one(hub, cluster, &windows, ticket, name, link, now).await }
            })
            .await;
    }
}

/// How often waiting tickets are looked at again.
const SWEEP: Duration = Duration::from_secs(1);
/// Tickets swept at once (each one script call).
const SWEEPS_AT_ONCE: usize = 32;

async fn sweep_one(
    hub: &Hub,
    cluster: &Cluster,
    windows: &Windows,
    ticket: Ticket,
    name: String,
    link: u64,
    now: u64,
) {
    let due_bot = ticket.bot_at_ms.is_some_and(|at| at <= now);
    if now >= ticket.expires_ms || due_bot {
        let taken = cluster.withdraw(ticket.mode, &ticket.id).await;
        if let Ok(true) = taken {
            let outcome = if due_bot && now < ticket.expires_ms {
                Outcome::BotFallback(ticket)
            } else {
                Outcome::Expired(ticket)
            };
            hub.settle_shared(outcome);
        } else if now >= ticket.expires_ms + 5_000 {
            // Taken by an owner that never said so (lost right after): give up on it.
            hub.settle_shared(Outcome::Expired(ticket));
        }
        return;
    }
    if now.saturating_sub(ticket.queued_ms) < SWEEP.as_millis() as u64 {
        // Its first claim was a moment ago.
        return;
    }
    let waited = now.saturating_sub(ticket.queued_ms) as f64 / 1000.0;
    let window = (windows.initial + windows.per_second * waited).min(windows.max);
    let shared = SharedTicket {
        id: ticket.id.clone(),
        account: ticket.account.to_string(),
        name,
        gateway: cluster.instance.clone(),
        link,
        mode: ticket.mode,
        opponent: ticket.opponent,
        moves: ticket.moves,
        rating: ticket.standing,
        queued_ms: ticket.queued_ms,
        expires_ms: ticket.expires_ms,
        bot_at_ms: ticket.bot_at_ms,
    };
    match cluster.claim(&shared, window, now, true).await {
        Ok(Claim::Partner(partner)) => hub.cluster_matched(&ticket.id, *partner),
        Ok(Claim::Queued | Claim::Gone) => {}
        Err(error) => tracing::warn!(%error, "sweeping the shared queue failed"),
    }
}

impl Hub {
    fn set_presence(&self, total: [u64; 4]) {
        *self.presence.lock().unwrap_or_else(PoisonError::into_inner) = Some(total);
    }

    /// Players online, queued and in a match, and matches running: over every instance when
    /// clustered (as of the latest census, at most a lease period old), else this one's.
    pub fn presence(&self) -> [u64; 4] {
        if let Some(total) = *self.presence.lock().unwrap_or_else(PoisonError::into_inner) {
            return total;
        }
        self.census_counts()
    }

    fn presence_of_player(player: &Player) -> Option<super::super::Presence> {
        use super::super::Presence;
        if player.link.is_none() || player.gateway.is_some() {
            return None;
        }
        Some(if player.room.is_some() || player.remote.is_some() {
            Presence::InMatch
        } else if player.ticket.is_some() {
            Presence::InQueue
        } else {
            Presence::Online
        })
    }

    pub fn presence_here(&self, account: &AccountId) -> Option<super::super::Presence> {
        let state = self.lock();
        match state
            .players
            .get(account)
            .and_then(Self::presence_of_player)
        {
            Some(presence) => Some(presence),
            None if self.cluster.get().is_none() => Some(super::super::Presence::Offline),
            None => None,
        }
    }

    pub async fn presence_elsewhere(&self, account: &AccountId) -> super::super::Presence {
        let Some(port) = self.cluster.get() else {
            return super::super::Presence::Offline;
        };
        match port.cluster.presence_of(account.as_str()).await {
            Ok(Some(status)) => super::super::Presence::parse(&status),
            Ok(None) => super::super::Presence::Offline,
            Err(error) => {
                tracing::warn!(%error, "reading a presence failed");
                super::super::Presence::Offline
            }
        }
    }

    /// The presence of every player connected here, to publish.
    fn local_presence(&self) -> Vec<(String, &'static str)> {
        let state = self.lock();
        state
            .players
            .iter()
            .filter_map(|(account, player)| {
                Self::presence_of_player(player).map(|p| (account.to_string(), p.name()))
            })
            .collect()
    }

    fn settle_shared(&self, outcome: Outcome) {
        let now = self.now_ms();
        let mut state = self.lock();
        let state = &mut *state;
        let ticket = match &outcome {
            Outcome::BotFallback(t) | Outcome::Expired(t) => t,
            Outcome::Matched(..) => return,
        };
        if !state.tickets.contains_key(&ticket.id) {
            return;
        }
        self.settle(state, outcome, now);
    }
}

//! Real-time play over WebSocket: `GET /ws`, the `guess-game.v1` protocol (crate `protocol`),
//! matchmaking, best-of-N matches against people or bots, reconnect with replay, chat.
//!
//! - `handshake.rs`: the upgrade's checks (RFC 6455 section 4.2) and the 101 answer.
//! - `frames.rs`: frames decoded in place from a per-thread buffer; `connection.rs` is one
//!   connection's task (hello deadline, heartbeats, a bounded outbox, closes with the RFC's
//!   codes); `outbox.rs` the bounded queue others fill for it.
//! - `hub.rs`: the players, tickets and running matches behind one lock, driving the pure
//!   state machine in `game::matches`; `matchmaker.rs` the queue behind a trait;
//!   `records.rs` ratings, match records and transcripts; `experiment.rs` the bot A/B test;
//!   `chat.rs` what a chat line may hold and how often; `metrics.rs` the counters.
//!
//! Below the HTTP surface (which authenticates the upgrade and issues tickets) and above the
//! accounts it names players by.

mod chat;
pub mod cluster;
mod connection;
mod experiment;
pub mod frames;
mod handshake;
mod hub;
mod matchmaker;
mod metrics;
mod outbox;
mod records;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

pub use experiment::InvalidArms;
pub use handshake::{Accepted, Codec, HandshakeError, WebSocketHeaders};
pub use records::{Finished, Record};

use crate::accounts::AccountId;
use crate::telemetry::metrics::Exposition;

/// The settings of real-time play (README's settings table).
#[derive(Clone, Debug)]
pub struct RealtimeSettings {
    pub round_timeout: Duration,
    pub queue_ticket_lifetime: Duration,
    pub bot_after: Duration,
    pub resume_grace: Duration,
    pub hello_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub heartbeat_timeout: Duration,
    pub write_timeout: Duration,
    pub outbox_capacity: usize,
    pub chat_burst: u32,
    pub chat_window: Duration,
    pub max_queue: usize,
    pub matches_kept: usize,
    pub bot_experiment: String,
    pub bot_arms: String,
    /// The season boards' schedule, win-rate minimum and size (`crate::seasons`).
    pub seasons: crate::seasons::SeasonSettings,
}

impl Default for RealtimeSettings {
    fn default() -> Self {
        RealtimeSettings {
            round_timeout: Duration::from_secs(10),
            queue_ticket_lifetime: Duration::from_secs(30),
            bot_after: Duration::from_secs(10),
            resume_grace: Duration::from_secs(30),
            hello_timeout: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(20),
            heartbeat_timeout: Duration::from_secs(45),
            write_timeout: Duration::from_secs(10),
            outbox_capacity: 256,
            chat_burst: 5,
            chat_window: Duration::from_secs(10),
            max_queue: 100_000,
            matches_kept: 10_000,
            bot_experiment: "bot-strategy".to_owned(),
            bot_arms: "random:50,adaptive:50".to_owned(),
            seasons: crate::seasons::SeasonSettings::default(),
        }
    }
}

impl RealtimeSettings {
    fn round_timeout_ms(&self) -> u64 {
        self.round_timeout.as_millis() as u64
    }
    fn resume_grace_ms(&self) -> u64 {
        self.resume_grace.as_millis() as u64
    }
    fn queue_lifetime_ms(&self) -> u64 {
        self.queue_ticket_lifetime.as_millis() as u64
    }
}

/// Unix milliseconds that follow tokio's clock, so deadlines and grace windows are tested under
/// paused time.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    base: tokio::time::Instant,
    base_unix_ms: u64,
}

impl Clock {
    pub fn new() -> Self {
        let base_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        Clock {
            base: tokio::time::Instant::now(),
            base_unix_ms,
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.base_unix_ms + self.base.elapsed().as_millis() as u64
    }

    /// The tokio instant of Unix millisecond `ms`.
    pub fn instant(&self, ms: u64) -> tokio::time::Instant {
        self.base + Duration::from_millis(ms.saturating_sub(self.base_unix_ms))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// Where an account is, for `GET /presence/{id}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    Offline,
    Online,
    InQueue,
    InMatch,
}

impl Presence {
    pub fn name(self) -> &'static str {
        match self {
            Presence::Offline => "offline",
            Presence::Online => "online",
            Presence::InQueue => "in_queue",
            Presence::InMatch => "in_match",
        }
    }

    pub(crate) fn parse(text: &str) -> Presence {
        match text {
            "online" => Presence::Online,
            "in_queue" => Presence::InQueue,
            "in_match" => Presence::InMatch,
            _ => Presence::Offline,
        }
    }
}

/// Who an accepted upgrade is for.
#[derive(Clone, Debug)]
pub struct Session {
    pub account: AccountId,
    pub name: String,
    pub codec: Codec,
}

/// Most upgrade tickets outstanding; past it the expired ones are swept, then the request is
/// refused (503).
const MAX_TICKETS: usize = 100_000;

/// Real-time play on this instance.
pub struct Realtime {
    hub: Arc<hub::Hub>,
    tickets: Mutex<HashMap<[u8; 32], (AccountId, u64)>>,
    next_link: AtomicU64,
}

/// The lifetime of a ticket from `POST /realtime/tickets`.
pub const TICKET_LIFETIME: Duration = Duration::from_secs(30);

impl Realtime {
    pub fn new(settings: RealtimeSettings) -> Result<Realtime, InvalidArms> {
        let experiment = experiment::Experiment::new(&settings.bot_experiment, &settings.bot_arms)?;
        Ok(Realtime {
            hub: Arc::new(hub::Hub::new(settings, Clock::new(), experiment)),
            tickets: Mutex::new(HashMap::new()),
            next_link: AtomicU64::new(1),
        })
    }

    /// Shares real-time play with every instance on the same Redis: matchmaking, matches
    /// (each run by one instance under a lease, its log in Redis), results. Starts the
    /// cluster's tasks on the current runtime.
    pub fn join_cluster(&self, cluster: Arc<cluster::Cluster>) {
        self.hub.join_cluster(cluster);
    }

    /// This instance's id in the cluster, if it is in one.
    pub fn instance(&self) -> Option<String> {
        self.hub.instance()
    }

    /// Players online, queued and in a match, and matches running (over every instance
    /// when clustered).
    pub fn presence(&self) -> [u64; 4] {
        self.hub.presence()
    }

    /// An account's presence when this instance can say (it is connected here, or nothing is
    /// shared); `None` when another instance's word, in Redis, is needed.
    pub fn presence_here(&self, account: &AccountId) -> Option<Presence> {
        self.hub.presence_here(account)
    }

    /// An account's presence as another instance published it (offline when none did, or
    /// Redis cannot say).
    pub async fn presence_elsewhere(&self, account: &AccountId) -> Presence {
        self.hub.presence_elsewhere(account).await
    }

    /// Fires round deadlines, grace windows and matchmaking sweeps; runs until dropped.
    pub async fn drive_timers(self: Arc<Self>) {
        let hub = Arc::clone(&self.hub);
        loop {
            let next = hub.fire_due();
            match next {
                Some(at) => {
                    let until = hub_clock_instant(&hub, at);
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => {}
                        () = hub.timer_set() => {}
                    }
                }
                None => hub.timer_set().await,
            }
        }
    }

    /// Serves an upgraded connection until it closes. `leftover` holds bytes the client sent
    /// after the upgrade request (frames already).
    pub async fn serve(
        self: &Arc<Self>,
        stream: crate::net::Stream,
        leftover: Vec<u8>,
        session: Session,
    ) {
        self.hub.metrics.upgrades.fetch_add(1, Ordering::Relaxed);
        let link = self.next_link.fetch_add(1, Ordering::Relaxed);
        connection::serve(Arc::clone(&self.hub), stream, leftover, session, link).await;
    }

    /// Issues a single-use ticket for `account`'s next upgrade (browsers cannot send an
    /// `Authorization` header on a WebSocket). `None` when too many are outstanding.
    pub fn issue_ticket(&self, account: AccountId) -> Option<String> {
        let now = self.hub.now_ms();
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).ok()?;
        let ticket = format!("ggt_{}", game::fairness::to_hex(&secret));
        let hash = *blake3::hash(ticket.as_bytes()).as_bytes();
        let mut tickets = self.tickets.lock().unwrap_or_else(PoisonError::into_inner);
        if tickets.len() >= MAX_TICKETS {
            tickets.retain(|_, (_, expires)| *expires > now);
            if tickets.len() >= MAX_TICKETS {
                return None;
            }
        }
        tickets.insert(hash, (account, now + TICKET_LIFETIME.as_millis() as u64));
        Some(ticket)
    }

    /// Spends a ticket: the account it was issued to, once, within its lifetime.
    pub fn redeem_ticket(&self, ticket: &str) -> Option<AccountId> {
        let now = self.hub.now_ms();
        let hash = *blake3::hash(ticket.as_bytes()).as_bytes();
        let mut tickets = self.tickets.lock().unwrap_or_else(PoisonError::into_inner);
        let (account, expires) = tickets.remove(&hash)?;
        (expires > now).then_some(account)
    }

    /// A match's public transcript (finished, or running so far).
    pub fn transcript(&self, match_id: &str) -> Option<Arc<Finished>> {
        self.hub.transcript(match_id)
    }

    pub fn record(&self, account: &AccountId) -> Record {
        self.hub.record(account)
    }

    /// The first `limit` entries of a season board, as of now (`GET /leaderboard/rating`,
    /// `GET /leaderboard/win-rate`).
    pub fn season_board(
        &self,
        kind: crate::seasons::BoardKind,
        which: crate::seasons::Which,
        limit: usize,
    ) -> crate::seasons::Board {
        self.hub.season_board(kind, which, limit)
    }

    /// Begins a drain: no more matchmaking; matches still running at `deadline` end as no
    /// contest and every connection closes (1001).
    pub fn drain(&self, within: Duration) {
        let deadline = self.hub.now_ms() + within.as_millis() as u64;
        self.hub.drain(deadline);
    }

    /// Waits (at most `within`) until every write to Redis queued so far has landed: what a
    /// stopping instance wrote last (a hand-over, a result, the latest events) is not lost.
    pub async fn flush_cluster(&self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.hub.cluster_pending() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let left = self.hub.cluster_pending();
        if left > 0 {
            tracing::warn!(writes = left, "stopping with writes to Redis not sent");
        }
    }

    /// Whether every match ended and every connection closed.
    pub fn drained(&self) -> bool {
        self.hub.drained()
    }

    pub fn write_metrics(&self, exposition: &mut Exposition) {
        let census = self.hub.census();
        self.hub
            .metrics
            .write(exposition, &census, self.hub.experiment());
    }
}

fn hub_clock_instant(hub: &hub::Hub, at_ms: u64) -> tokio::time::Instant {
    let now_ms = hub.now_ms();
    tokio::time::Instant::now() + Duration::from_millis(at_ms.saturating_sub(now_ms))
}

impl std::fmt::Debug for Realtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Realtime").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;

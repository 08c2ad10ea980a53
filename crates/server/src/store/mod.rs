//! The game's memory: player stats, game history, leaderboards and idempotency keys, kept in
//! this process ([`memory`], the default) or in Redis ([`redis`], shared by any number of
//! instances).
//!
//! Writes never hold up an answer: `/play` pushes a [`GameRecord`] onto a bounded queue and
//! returns; one writer task applies the queue in batches (every `store_batch_size` results or
//! every `store_flush_interval`). When the store fails, the batch goes back to the head of the
//! queue and waits for the store to recover; only records arriving at a full queue are
//! dropped (and counted). A graceful shutdown flushes the queue before the process exits.
//!
//! Every store call passes a [`breaker::Breaker`] and a timeout (and the `store` fault point),
//! so a sick Redis costs a read one failed call at most, then fast 503s until the breaker's
//! backoff lets a trial through.

pub mod breaker;
pub mod directory;
pub mod game_id;
pub mod idempotency;
pub mod memory;
pub mod model;
pub mod redis;
mod refusal;
mod writer;

pub use refusal::StoreRefusal;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

use self::breaker::{Breaker, BreakerSettings, State};
use self::game_id::GameIds;
use self::idempotency::{Begin, Fingerprint, StoredAnswer};
use self::memory::{MemoryLimits, MemoryStore};
use self::model::{GameRecord, GameSummary, PlayerStats, Ranked, Window};
use self::redis::{RedisLimits, RedisStore};
use self::writer::WriterMetrics;
use crate::protection::faults::{Faults, Point};
use crate::telemetry::metrics;

/// A store call that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("the store did not answer in time")]
    Timeout,
    #[error("the store is unavailable (circuit open)")]
    Unavailable { retry_after: Duration },
    #[error("every node id (0-1023) is leased by another instance")]
    NoNodeId,
    #[error("a fault was injected into the store on purpose")]
    InjectedFault,
}

impl StoreError {
    /// When a client may try again.
    pub fn retry_after(&self) -> Duration {
        match self {
            StoreError::Unavailable { retry_after } => *retry_after,
            _ => Duration::from_secs(1),
        }
    }
}

/// What the store needs from the settings.
#[derive(Clone, Debug)]
pub struct StoreSettings {
    /// `None` keeps everything in memory; else a `redis://` or `redis+cluster://` URL.
    pub url: Option<String>,
    /// Configured node id for game ids; claimed from Redis (or 0 in memory) when `None`.
    pub node_id: Option<u16>,
    pub node_lease: Duration,
    pub timeout: Duration,
    pub queue_capacity: usize,
    pub batch_size: usize,
    pub flush_interval: Duration,
    pub games_kept: usize,
    pub max_players: usize,
    pub player_retention: Duration,
    pub max_keys: usize,
}

enum Backend {
    Memory(MemoryStore),
    Redis(RedisStore),
}

/// Until when ids may be issued under a lease of `lease` renewed (or claimed) at
/// `started_ms`: five sixths of it (25 s of 30 s), leaving a margin for clock drift between
/// this host and Redis and for the time a renewal takes to land. Another instance can claim
/// the node id only after the whole lease.
fn lease_deadline(started_ms: u64, lease: Duration) -> u64 {
    started_ms + (lease.as_millis() as u64) * 5 / 6
}

pub struct Store {
    backend: Backend,
    breaker: Breaker,
    timeout: Duration,
    ids: GameIds,
    queue: Mutex<VecDeque<GameRecord>>,
    /// Held by the writer while it applies a batch, and by an erasure, so a result taken from
    /// the queue never lands after the erasure of its player.
    applying: tokio::sync::Mutex<()>,
    /// Players erased in the last minute: a result of theirs that reaches the writer after
    /// the erasure (a play that was being answered at that moment) is dropped, not applied.
    erased: Mutex<HashMap<model::PlayerId, tokio::time::Instant>>,
    capacity: usize,
    batch_size: usize,
    flush_interval: Duration,
    wake: Notify,
    writer: WriterMetrics,
    /// The lease on a node id claimed from Redis: its token.
    node_lease: Option<String>,
    /// How long that lease lasts.
    node_lease_time: Duration,
    /// Faults injected at [`Point::Store`].
    faults: Option<Arc<Faults>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("kind", &self.kind())
            .field("node", &self.ids.node())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store the settings name: connects to Redis (failing if it cannot be reached)
    /// and claims a node id there unless one is configured.
    pub async fn open(settings: &StoreSettings) -> Result<Store, StoreError> {
        let mut node_lease = None;
        let mut lease_started = None;
        let (backend, node) = match &settings.url {
            None => (
                Self::memory_backend(settings),
                settings.node_id.unwrap_or(0),
            ),
            Some(url) => {
                let limits = RedisLimits {
                    games_kept: settings.games_kept,
                    board_size: settings.max_players,
                    retention: settings.player_retention,
                };
                let redis = RedisStore::connect(url, settings.timeout, limits).await?;
                let node = match settings.node_id {
                    Some(node) => node,
                    None => {
                        let token = format!(
                            "{}-{}-{:016x}",
                            std::process::id(),
                            gethostname(),
                            fastrand::u64(..)
                        );
                        let claimed_at = GameIds::now_ms();
                        let node = redis.claim_node_id(&token, settings.node_lease).await?;
                        lease_started = Some(claimed_at);
                        node_lease = Some(token);
                        node
                    }
                };
                (Backend::Redis(redis), node)
            }
        };
        let store = Self::with_backend(backend, node, node_lease, settings);
        if let Some(started) = lease_started {
            store
                .ids
                .hold(node, lease_deadline(started, settings.node_lease));
        }
        Ok(store)
    }

    /// An in-memory store with `settings`' bounds and no I/O: for tests and benchmarks.
    pub fn in_memory(settings: &StoreSettings) -> Store {
        let backend = Self::memory_backend(settings);
        Self::with_backend(backend, settings.node_id.unwrap_or(0), None, settings)
    }

    fn memory_backend(settings: &StoreSettings) -> Backend {
        Backend::Memory(MemoryStore::new(MemoryLimits {
            max_players: settings.max_players,
            games_kept: settings.games_kept,
            max_keys: settings.max_keys,
        }))
    }

    fn with_backend(
        backend: Backend,
        node: u16,
        node_lease: Option<String>,
        settings: &StoreSettings,
    ) -> Store {
        Store {
            backend,
            breaker: Breaker::new(BreakerSettings::default()),
            timeout: settings.timeout,
            ids: GameIds::new(node),
            queue: Mutex::new(VecDeque::with_capacity(settings.batch_size.min(4096))),
            applying: tokio::sync::Mutex::new(()),
            erased: Mutex::new(HashMap::new()),
            capacity: settings.queue_capacity,
            batch_size: settings.batch_size.max(1),
            flush_interval: settings.flush_interval,
            wake: Notify::new(),
            writer: WriterMetrics::new(),
            node_lease,
            node_lease_time: settings.node_lease,
            faults: None,
        }
    }

    /// Lets `faults` injected at [`Point::Store`] reach every store call.
    pub fn with_faults(mut self, faults: Arc<Faults>) -> Self {
        self.faults = Some(faults);
        self
    }

    /// What an injected fault makes of a store call: a wait, then maybe a failure.
    async fn injected(&self) -> Result<(), StoreError> {
        let Some(faults) = &self.faults else {
            return Ok(());
        };
        let injection = faults.inject(Point::Store);
        if injection == Default::default() {
            return Ok(());
        }
        metrics::with_shard(|shard| {
            shard.faults_injected[2].add(u64::from(!injection.delay.is_zero()));
            shard.faults_injected[3].add(u64::from(injection.fail));
        });
        tokio::time::sleep(injection.delay).await;
        if injection.fail {
            Err(StoreError::InjectedFault)
        } else {
            Ok(())
        }
    }

    /// "memory", "standalone" or "cluster".
    pub fn kind(&self) -> &'static str {
        match &self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis(redis) => redis.kind,
        }
    }

    /// Whether accounts and sessions live in Redis (shared) rather than in this process.
    pub fn shares_accounts(&self) -> bool {
        matches!(self.backend, Backend::Redis(_))
    }

    /// Runs `call` on the accounts' keys in Redis, through the breaker, the timeout and the
    /// `store` fault point like every other store call. Only for a Redis store: in memory,
    /// accounts keep their own tables and never ask.
    pub async fn directory<T, F, Fut>(&self, call: F) -> Result<T, StoreError>
    where
        F: FnOnce(directory::Directory) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        match &self.backend {
            Backend::Redis(redis) => {
                let directory = directory::Directory::new(redis.shared_connection());
                self.guarded(call(directory)).await
            }
            Backend::Memory(_) => Err(StoreError::Unavailable {
                retry_after: Duration::from_secs(1),
            }),
        }
    }

    pub fn node_id(&self) -> u16 {
        self.ids.node()
    }

    pub fn game_ids(&self) -> &GameIds {
        &self.ids
    }

    /// The breaker's state: what `/readyz` reports.
    pub fn state(&self) -> State {
        self.breaker.state()
    }

    /// The breaker's state with its backoff and trial, for `/readyz`.
    pub fn circuit(&self) -> breaker::Status {
        self.breaker.status()
    }

    fn queue(&self) -> MutexGuard<'_, VecDeque<GameRecord>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Results waiting for the writer.
    pub fn queued(&self) -> usize {
        self.queue().len()
    }

    /// Runs `call` through the breaker, bounded by the store timeout.
    async fn guarded<T>(
        &self,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let ticket = self
            .breaker
            .try_acquire()
            .map_err(|rejected| StoreError::Unavailable {
                retry_after: rejected.retry_after,
            })?;
        let call = async {
            self.injected().await?;
            call.await
        };
        let result = match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Timeout),
        };
        ticket.record(result.is_ok());
        if let Err(error) = &result {
            tracing::debug!(%error, "store call failed");
        }
        result
    }

    // Every call below, memory or Redis, goes through `guarded`: the breaker, the timeout and
    // the `store` fault point apply the same to both.

    pub async fn stats(&self, player: &str) -> Result<Option<PlayerStats>, StoreError> {
        self.guarded(async {
            match &self.backend {
                Backend::Memory(memory) => Ok(memory.stats(player)),
                Backend::Redis(redis) => redis.stats(player).await,
            }
        })
        .await
    }

    pub async fn games(
        &self,
        player: &str,
        limit: usize,
    ) -> Result<Option<Vec<GameSummary>>, StoreError> {
        self.guarded(async {
            match &self.backend {
                Backend::Memory(memory) => Ok(memory.games(player, limit)),
                Backend::Redis(redis) => redis.games(player, limit).await,
            }
        })
        .await
    }

    /// The current window's board.
    pub async fn leaderboard(
        &self,
        window: Window,
        limit: usize,
    ) -> Result<Vec<Ranked>, StoreError> {
        let index = window.current_index();
        self.guarded(async {
            match &self.backend {
                Backend::Memory(memory) => Ok(memory.leaderboard(window, index, limit)),
                Backend::Redis(redis) => {
                    redis
                        .leaderboard(window, &window.key_of(index), limit)
                        .await
                }
            }
        })
        .await
    }

    /// A player's place on the current window's board.
    pub async fn rank(&self, window: Window, player: &str) -> Result<Option<Ranked>, StoreError> {
        let index = window.current_index();
        self.guarded(async {
            match &self.backend {
                Backend::Memory(memory) => Ok(memory.rank(window, index, player)),
                Backend::Redis(redis) => redis.rank(window, &window.key_of(index), player).await,
            }
        })
        .await
    }

    pub async fn begin(&self, key: &str, fingerprint: &Fingerprint) -> Result<Begin, StoreError> {
        self.guarded(async {
            match &self.backend {
                Backend::Memory(memory) => Ok(memory.begin(key, fingerprint)),
                Backend::Redis(redis) => redis.begin(key, fingerprint).await,
            }
        })
        .await
    }

    pub async fn complete(
        &self,
        key: &str,
        fingerprint: &Fingerprint,
        answer: &StoredAnswer,
    ) -> Result<(), StoreError> {
        self.guarded(async {
            match &self.backend {
                Backend::Memory(memory) => {
                    memory.complete(key, fingerprint, answer);
                    Ok(())
                }
                Backend::Redis(redis) => redis.complete(key, fingerprint, answer).await,
            }
        })
        .await
    }

    /// Frees a key whose request failed, so a retry runs again. Best effort: an unfreed key
    /// lapses after [`idempotency::IN_FLIGHT_TTL`].
    pub async fn abort(&self, key: &str) {
        let _ = self
            .guarded(async {
                match &self.backend {
                    Backend::Memory(memory) => {
                        memory.abort(key);
                        Ok(())
                    }
                    Backend::Redis(redis) => redis.abort(key).await,
                }
            })
            .await;
    }

    async fn apply(&self, batch: &[GameRecord]) -> Result<(), StoreError> {
        self.guarded(async {
            match &self.backend {
                Backend::Memory(memory) => {
                    let evicted = memory.apply(batch);
                    if evicted > 0 {
                        metrics::with_shard(|shard| shard.store_evicted.add(evicted));
                    }
                    Ok(())
                }
                Backend::Redis(redis) => {
                    let skipped = redis.apply(self.ids.node(), batch).await?;
                    if skipped > 0 {
                        // A retried batch whose first try landed before it timed out.
                        metrics::with_shard(|shard| shard.store_skipped.add(skipped));
                    }
                    Ok(())
                }
            }
        })
        .await
    }

    /// Gives a claimed node id back at shutdown (Redis only; best effort: the lease lapses
    /// within 30 s anyway).
    pub async fn release_node_lease(&self) {
        if let (Backend::Redis(redis), Some(token)) = (&self.backend, &self.node_lease)
            && let Err(error) = self
                .guarded(redis.release_node_id(self.ids.node(), token))
                .await
        {
            tracing::debug!(%error, "could not release the node id lease");
        }
    }

    /// Keeps the node id's lease alive while the process runs (Redis only).
    pub async fn keep_node_lease(&self) {
        let (Backend::Redis(redis), Some(token)) = (&self.backend, &self.node_lease) else {
            return;
        };
        let mut tick = tokio::time::interval(self.node_lease_time / 3);
        tick.tick().await;
        loop {
            tick.tick().await;
            let node = self.ids.node();
            let started = GameIds::now_ms();
            match self
                .guarded(redis.renew_node_id(node, token, self.node_lease_time))
                .await
            {
                Ok(true) => self
                    .ids
                    .hold(node, lease_deadline(started, self.node_lease_time)),
                Ok(false) => {
                    // Another instance holds it now: stop issuing ids under it at once, then
                    // claim another. Plays answer 503 game_id_unavailable in between.
                    self.ids.release();
                    tracing::error!(node, "the node id lease was lost; claiming another");
                    self.reclaim_node_id(redis, token).await;
                }
                // Unrenewed, the lease still holds until its deadline, then ids stop.
                Err(error) => tracing::warn!(%error, node, "could not renew the node id lease"),
            }
        }
    }

    /// Claims a new node id after the old one's lease was lost.
    async fn reclaim_node_id(&self, redis: &RedisStore, token: &str) {
        let started = GameIds::now_ms();
        match self
            .guarded(redis.claim_node_id(token, self.node_lease_time))
            .await
        {
            Ok(node) => {
                self.ids
                    .hold(node, lease_deadline(started, self.node_lease_time));
                tracing::warn!(node, "claimed a new node id for game ids");
            }
            Err(error) => tracing::warn!(%error, "could not claim a new node id; retrying"),
        }
    }
}

fn gethostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_default()
}

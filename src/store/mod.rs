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
//! Every call to Redis passes a [`breaker::Breaker`] and a timeout, so a sick Redis costs a
//! read one failed call at most, then fast 503s until the breaker's backoff lets a trial through.

pub mod breaker;
pub mod game_id;
pub mod idempotency;
pub mod memory;
pub mod model;
pub mod redis;

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::breaker::{Breaker, BreakerSettings, State};
use self::game_id::GameIds;
use self::idempotency::{Begin, Fingerprint, StoredAnswer};
use self::memory::{MemoryLimits, MemoryStore};
use self::model::{GameRecord, GameSummary, PlayerStats, Ranked, Window};
use self::redis::RedisStore;
use crate::telemetry::metrics::{self, Counter, Exposition, Histogram, Kind};

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
    pub timeout: Duration,
    pub queue_capacity: usize,
    pub batch_size: usize,
    pub flush_interval: Duration,
    pub games_kept: usize,
    pub max_players: usize,
    pub max_keys: usize,
}

enum Backend {
    Memory(MemoryStore),
    Redis(RedisStore),
}

/// How long a claimed node id is leased; renewed at a third of it.
const NODE_LEASE: Duration = Duration::from_secs(30);

/// The writer's own figures: written only by the writer task, one at a time.
struct WriterMetrics {
    batch_records: Histogram<10>,
    flush_seconds: Histogram<12>,
    written: Counter,
    failed_batches: Counter,
}

const BATCH_BUCKETS: [f64; 10] = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];
const FLUSH_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

pub struct Store {
    backend: Backend,
    breaker: Breaker,
    timeout: Duration,
    ids: GameIds,
    queue: Mutex<VecDeque<GameRecord>>,
    capacity: usize,
    batch_size: usize,
    flush_interval: Duration,
    wake: Notify,
    writer: WriterMetrics,
    /// The lease on a node id claimed from Redis: its token.
    node_lease: Option<String>,
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
        let (backend, node) = match &settings.url {
            None => (
                Backend::Memory(MemoryStore::new(MemoryLimits {
                    max_players: settings.max_players,
                    games_kept: settings.games_kept,
                    max_keys: settings.max_keys,
                })),
                settings.node_id.unwrap_or(0),
            ),
            Some(url) => {
                let redis = RedisStore::connect(url, settings.timeout, settings.games_kept).await?;
                let node = match settings.node_id {
                    Some(node) => node,
                    None => {
                        let token = format!(
                            "{}-{}-{:016x}",
                            std::process::id(),
                            gethostname(),
                            fastrand::u64(..)
                        );
                        let node = redis.claim_node_id(&token, NODE_LEASE).await?;
                        node_lease = Some(token);
                        node
                    }
                };
                (Backend::Redis(redis), node)
            }
        };
        Ok(Self::with_backend(backend, node, node_lease, settings))
    }

    /// An in-memory store with `settings`' bounds and no I/O: for tests and benchmarks.
    pub fn in_memory(settings: &StoreSettings) -> Store {
        let backend = Backend::Memory(MemoryStore::new(MemoryLimits {
            max_players: settings.max_players,
            games_kept: settings.games_kept,
            max_keys: settings.max_keys,
        }));
        Self::with_backend(backend, settings.node_id.unwrap_or(0), None, settings)
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
            capacity: settings.queue_capacity,
            batch_size: settings.batch_size.max(1),
            flush_interval: settings.flush_interval,
            wake: Notify::new(),
            writer: WriterMetrics {
                batch_records: Histogram::new(&BATCH_BUCKETS),
                flush_seconds: Histogram::new(&FLUSH_BUCKETS),
                written: Counter::default(),
                failed_batches: Counter::default(),
            },
            node_lease,
        }
    }

    /// "memory", "standalone" or "cluster".
    pub fn kind(&self) -> &'static str {
        match &self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis(redis) => redis.kind,
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

    fn queue(&self) -> MutexGuard<'_, VecDeque<GameRecord>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Results waiting for the writer.
    pub fn queued(&self) -> usize {
        self.queue().len()
    }

    /// Queues a result for the writer; never waits. Past the queue's bound the record is
    /// dropped and counted.
    pub fn record(&self, record: GameRecord) {
        let mut queue = self.queue();
        if queue.len() >= self.capacity {
            drop(queue);
            metrics::with_shard(|shard| shard.store_dropped.add(1));
            return;
        }
        queue.push_back(record);
        let queued = queue.len();
        drop(queue);
        // The writer sleeps while the queue is empty. It is woken by the first result (it then
        // gathers a batch for up to `flush_interval`) and by a full batch: at most a couple of
        // wake-ups per interval, however many plays, and none at all without named plays.
        if queued == 1 || queued == self.batch_size {
            self.wake.notify_one();
        }
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
        let result = match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Timeout),
        };
        self.breaker.record(ticket, result.is_ok());
        if let Err(error) = &result {
            tracing::debug!(%error, "store call failed");
        }
        result
    }

    pub async fn stats(&self, player: &str) -> Result<Option<PlayerStats>, StoreError> {
        match &self.backend {
            Backend::Memory(memory) => Ok(memory.stats(player)),
            Backend::Redis(redis) => self.guarded(redis.stats(player)).await,
        }
    }

    pub async fn games(
        &self,
        player: &str,
        limit: usize,
    ) -> Result<Option<Vec<GameSummary>>, StoreError> {
        match &self.backend {
            Backend::Memory(memory) => Ok(memory.games(player, limit)),
            Backend::Redis(redis) => self.guarded(redis.games(player, limit)).await,
        }
    }

    pub async fn leaderboard(
        &self,
        window: Window,
        limit: usize,
    ) -> Result<Vec<Ranked>, StoreError> {
        match &self.backend {
            Backend::Memory(memory) => {
                Ok(memory.leaderboard(window, window.current_index(), limit))
            }
            Backend::Redis(redis) => {
                let key = window.current_key();
                self.guarded(redis.leaderboard(window, &key, limit)).await
            }
        }
    }

    pub async fn rank(&self, window: Window, player: &str) -> Result<Option<Ranked>, StoreError> {
        match &self.backend {
            Backend::Memory(memory) => Ok(memory.rank(window, window.current_index(), player)),
            Backend::Redis(redis) => {
                let key = window.current_key();
                self.guarded(redis.rank(window, &key, player)).await
            }
        }
    }

    pub async fn begin(&self, key: &str, fingerprint: &Fingerprint) -> Result<Begin, StoreError> {
        match &self.backend {
            Backend::Memory(memory) => Ok(memory.begin(key, fingerprint)),
            Backend::Redis(redis) => self.guarded(redis.begin(key, fingerprint)).await,
        }
    }

    pub async fn complete(
        &self,
        key: &str,
        fingerprint: &Fingerprint,
        answer: &StoredAnswer,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Memory(memory) => {
                memory.complete(key, fingerprint, answer);
                Ok(())
            }
            Backend::Redis(redis) => self.guarded(redis.complete(key, fingerprint, answer)).await,
        }
    }

    /// Frees a key whose request failed, so a retry runs again. Best effort: an unfreed key
    /// lapses after [`idempotency::IN_FLIGHT_TTL`].
    pub async fn abort(&self, key: &str) {
        match &self.backend {
            Backend::Memory(memory) => memory.abort(key),
            Backend::Redis(redis) => {
                let _ = self.guarded(redis.abort(key)).await;
            }
        }
    }

    async fn apply(&self, batch: &[GameRecord]) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Memory(memory) => {
                let dropped = memory.apply(batch);
                if dropped > 0 {
                    metrics::with_shard(|shard| shard.store_dropped.add(dropped));
                }
                Ok(())
            }
            Backend::Redis(redis) => self.guarded(redis.apply(batch)).await,
        }
    }

    /// Writes queued results until the queue is empty. On a failure the batch goes back to the
    /// head of the queue and the error says when to try again.
    async fn flush_queue(&self) -> Result<(), StoreError> {
        loop {
            let batch: Vec<GameRecord> = {
                let mut queue = self.queue();
                let take = queue.len().min(self.batch_size);
                queue.drain(..take).collect()
            };
            if batch.is_empty() {
                return Ok(());
            }
            let started = Instant::now();
            match self.apply(&batch).await {
                Ok(()) => {
                    self.writer.batch_records.observe(batch.len() as f64);
                    self.writer
                        .flush_seconds
                        .observe(started.elapsed().as_secs_f64());
                    self.writer.written.add(batch.len() as u64);
                }
                Err(error) => {
                    self.writer.failed_batches.add(1);
                    let mut queue = self.queue();
                    for record in batch.into_iter().rev() {
                        queue.push_front(record);
                    }
                    return Err(error);
                }
            }
        }
    }

    /// The writer: applies queued results within `flush_interval` of the first one, or at once
    /// when a batch is full, until `stop`; then flushes what is left for at most `drain`, and reports how many
    /// results it could not write.
    pub async fn run_writer(&self, stop: CancellationToken, drain: Duration) -> usize {
        let mut retry_at: Option<Instant> = None;
        loop {
            if let Some(at) = retry_at {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = stop.cancelled() => break,
                }
            } else {
                if self.queued() == 0 {
                    tokio::select! {
                        () = self.wake.notified() => {}
                        () = stop.cancelled() => break,
                    }
                }
                if self.queued() < self.batch_size {
                    tokio::select! {
                        () = self.wake.notified() => {}
                        () = tokio::time::sleep(self.flush_interval) => {}
                        () = stop.cancelled() => break,
                    }
                }
            }
            retry_at = match self.flush_queue().await {
                Ok(()) => None,
                Err(error) => {
                    let wait = error.retry_after().max(Duration::from_millis(50));
                    tracing::warn!(%error, queued = self.queued(), retry_in = ?wait, "store write failed; results stay queued");
                    Some(Instant::now() + wait)
                }
            };
        }
        let deadline = Instant::now() + drain;
        while self.queued() > 0 && Instant::now() < deadline {
            if let Err(error) = self.flush_queue().await {
                let wait = error.retry_after().max(Duration::from_millis(50));
                tracing::warn!(%error, queued = self.queued(), "store write failed during shutdown flush");
                tokio::time::sleep_until(deadline.min(Instant::now() + wait)).await;
            }
        }
        let left = self.queued();
        if left > 0 {
            tracing::error!(
                results = left,
                "shutdown: results could not be written to the store"
            );
        } else {
            tracing::info!("shutdown: store queue flushed");
        }
        left
    }

    /// Keeps the node id's lease alive while the process runs (Redis only).
    pub async fn keep_node_lease(&self) {
        let (Backend::Redis(redis), Some(token)) = (&self.backend, &self.node_lease) else {
            return;
        };
        let node = self.ids.node();
        let mut tick = tokio::time::interval(NODE_LEASE / 3);
        tick.tick().await;
        loop {
            tick.tick().await;
            match self
                .guarded(redis.renew_node_id(node, token, NODE_LEASE))
                .await
            {
                Ok(true) => {}
                Ok(false) => tracing::error!(
                    node,
                    "the node id lease was lost to another instance; game ids may collide until restart"
                ),
                Err(error) => tracing::warn!(%error, node, "could not renew the node id lease"),
            }
        }
    }

    /// The store's metric families.
    pub fn write_metrics(&self, exposition: &mut Exposition) {
        let gauge = |exposition: &mut Exposition, name: &str, help: &str, value: f64| {
            exposition.family(name, help, Kind::Gauge);
            exposition.sample(name, "", value);
        };
        gauge(
            exposition,
            "guess_game_store_queue_depth",
            "Results waiting for the store writer.",
            self.queued() as f64,
        );
        gauge(
            exposition,
            "guess_game_store_queue_capacity",
            "Most results the store queue holds; more are dropped.",
            self.capacity as f64,
        );
        exposition.family(
            "guess_game_store_circuit_state",
            "The store circuit breaker's state (1 for the current one).",
            Kind::Gauge,
        );
        let current = self.state();
        for state in [State::Closed, State::Open, State::HalfOpen] {
            exposition.sample(
                "guess_game_store_circuit_state",
                &format!("state=\"{}\"", state.name()),
                f64::from(u8::from(state == current)),
            );
        }
        let counter = |exposition: &mut Exposition, name: &str, help: &str, value: u64| {
            exposition.family(name, help, Kind::Counter);
            exposition.sample(&format!("{name}_total"), "", value as f64);
        };
        counter(
            exposition,
            "guess_game_store_circuit_opened",
            "Times the store circuit breaker opened.",
            self.breaker.times_opened(),
        );
        counter(
            exposition,
            "guess_game_store_written",
            "Results written to the store.",
            self.writer.written.get(),
        );
        counter(
            exposition,
            "guess_game_store_failed_batches",
            "Batches the store refused or failed; their results stayed queued.",
            self.writer.failed_batches.get(),
        );
        exposition.family(
            "guess_game_store_batch_records",
            "Results per batch written to the store.",
            Kind::Histogram,
        );
        exposition.histogram(
            "guess_game_store_batch_records",
            "",
            &[&self.writer.batch_records],
            1.0,
        );
        exposition.family(
            "guess_game_store_flush_seconds",
            "Time to write one batch to the store.",
            Kind::Histogram,
        );
        exposition.histogram(
            "guess_game_store_flush_seconds",
            "",
            &[&self.writer.flush_seconds],
            1.0,
        );
    }
}

fn gethostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_default()
}

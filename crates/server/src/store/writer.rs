//! The write side of the store: the bounded result queue, the writer task that applies it in
//! batches, and the store's metrics.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::breaker::State;
use super::memory::lock;
use super::model::{GameRecord, PlayerId};
use super::{Backend, Store, StoreError};
use crate::telemetry::metrics::{self, Counter, Exposition, Histogram, Kind};

/// How long an erased player's late results are dropped: far longer than a request can take
/// between being authenticated and queuing its result.
const ERASED_MEMORY: Duration = Duration::from_secs(60);

/// The writer's own figures: written only by the writer task, one at a time.
pub(super) struct WriterMetrics {
    pub(super) batch_records: Histogram<10>,
    pub(super) flush_seconds: Histogram<12>,
    pub(super) written: Counter,
    pub(super) failed_batches: Counter,
}

const BATCH_BUCKETS: [f64; 10] = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];
const FLUSH_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

impl WriterMetrics {
    pub(super) fn new() -> Self {
        Self {
            batch_records: Histogram::new(&BATCH_BUCKETS),
            flush_seconds: Histogram::new(&FLUSH_BUCKETS),
            written: Counter::default(),
            failed_batches: Counter::default(),
        }
    }
}

impl Store {
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

    /// Erases a player's stats, history and board places (an account deleted), with its
    /// results still queued: none of them lands afterwards, because no batch is being applied
    /// while this runs.
    pub async fn forget_player(&self, player: &str) -> Result<(), StoreError> {
        self.guarded(async {
            let _applying = self.applying.lock().await;
            if let Ok(id) = PlayerId::from(player) {
                let mut erased = lock(&self.erased);
                let now = Instant::now();
                erased.retain(|_, at| now.duration_since(*at) < ERASED_MEMORY);
                erased.insert(id, now);
            }
            self.queue()
                .retain(|record| record.player.as_str() != player);
            match &self.backend {
                Backend::Memory(memory) => {
                    memory.forget(player);
                    Ok(())
                }
                Backend::Redis(redis) => redis.forget(player).await,
            }
        })
        .await
    }

    /// Writes queued results until the queue is empty. On a failure the batch goes back to the
    /// head of the queue and the error says when to try again.
    async fn flush_queue(&self) -> Result<(), StoreError> {
        loop {
            let _applying = self.applying.lock().await;
            let mut batch: Vec<GameRecord> = {
                let mut queue = self.queue();
                let take = queue.len().min(self.batch_size);
                queue.drain(..take).collect()
            };
            {
                let erased = lock(&self.erased);
                if !erased.is_empty() {
                    batch.retain(|record| !erased.contains_key(&record.player));
                }
            }
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

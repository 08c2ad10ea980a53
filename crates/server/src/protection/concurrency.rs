//! Load shedding: a bound on requests in flight, with an immediate 503 above it.
//!
//! Nothing queues: a request that finds the bound reached is answered `503 overloaded` with
//! `Retry-After` at once, before any work, so under overload the server keeps spending its time
//! on requests it can finish. The bound is fixed, or adaptive (AIMD, as in Netflix's
//! concurrency-limits and Envoy's adaptive concurrency): every answer slower than the latency
//! target cuts the limit by a tenth (at most once per 100 ms), and each full round of fast
//! answers raises it by one, between a floor and the configured maximum.
//!
//! "In flight" spans from the request's admission to its answer being in the connection's
//! output buffer (including a store call and injected latency, but not the write: a client
//! that does not read its socket must not hold places others need); a permit held by a
//! connection that dies is released when it is dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// How the bound moves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    Fixed,
    /// Keep answers under `target` latency, never below `floor` in flight.
    Adaptive {
        target: Duration,
        floor: usize,
    },
}

/// The shared bound.
#[derive(Debug)]
pub struct ConcurrencyLimit {
    mode: Mode,
    max: usize,
    limit: AtomicUsize,
    in_flight: AtomicUsize,
    /// Fast answers since the limit last rose.
    fast: AtomicUsize,
    /// When the limit last fell, in ms since `epoch`, so one slow burst cuts it once.
    last_cut_ms: AtomicU64,
    epoch: Instant,
}

/// One admitted request. Completing it reports its latency; dropping it just frees its place.
#[derive(Debug)]
pub struct Permit(Arc<ConcurrencyLimit>);

const CUT_INTERVAL_MS: u64 = 100;
/// `last_cut_ms` before the first cut.
const NEVER: u64 = u64::MAX;

impl ConcurrencyLimit {
    pub fn new(max: usize, mode: Mode) -> Arc<Self> {
        Arc::new(Self {
            mode,
            max: max.max(1),
            limit: AtomicUsize::new(max.max(1)),
            in_flight: AtomicUsize::new(0),
            fast: AtomicUsize::new(0),
            last_cut_ms: AtomicU64::new(NEVER),
            epoch: Instant::now(),
        })
    }

    /// The current bound.
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Admits a request, or refuses it when the bound is reached.
    pub fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        let previous = self.in_flight.fetch_add(1, Ordering::AcqRel);
        if previous >= self.limit.load(Ordering::Relaxed) {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Permit(Arc::clone(self)))
    }

    fn observe(&self, latency: Duration, now: Instant) {
        let Mode::Adaptive { target, floor } = self.mode else {
            return;
        };
        let limit = self.limit.load(Ordering::Relaxed);
        if latency > target {
            let now_ms = now.saturating_duration_since(self.epoch).as_millis() as u64;
            let last = self.last_cut_ms.load(Ordering::Relaxed);
            if (last == NEVER || now_ms.saturating_sub(last) >= CUT_INTERVAL_MS)
                && self
                    .last_cut_ms
                    .compare_exchange(last, now_ms, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                let cut = (limit - limit / 10).max(floor.min(self.max));
                self.limit.store(cut, Ordering::Relaxed);
                self.fast.store(0, Ordering::Relaxed);
            }
        } else if self.fast.fetch_add(1, Ordering::Relaxed) + 1 >= limit && limit < self.max {
            self.fast.store(0, Ordering::Relaxed);
            self.limit.store(limit + 1, Ordering::Relaxed);
        }
    }
}

impl Permit {
    /// Frees the place and, in adaptive mode, feeds the answer's latency to the bound.
    pub fn complete(self, latency: Duration, now: Instant) {
        self.0.observe(latency, now);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_bound_admits_up_to_its_limit_and_frees_on_drop() {
        let limit = ConcurrencyLimit::new(2, Mode::Fixed);
        let first = limit.try_acquire().unwrap();
        let _second = limit.try_acquire().unwrap();
        assert!(limit.try_acquire().is_none());
        first.complete(Duration::from_secs(10), Instant::now());
        assert_eq!(limit.in_flight(), 1);
        assert!(limit.try_acquire().is_some());
        assert_eq!(limit.limit(), 2, "a fixed bound never moves");
    }

    #[tokio::test(start_paused = true)]
    async fn an_adaptive_bound_cuts_on_slow_answers_and_grows_back_on_fast_ones() {
        let target = Duration::from_millis(50);
        let limit = ConcurrencyLimit::new(100, Mode::Adaptive { target, floor: 10 });
        let slow = || {
            limit
                .try_acquire()
                .unwrap()
                .complete(Duration::from_millis(200), Instant::now())
        };
        slow();
        assert_eq!(limit.limit(), 90);
        slow();
        assert_eq!(limit.limit(), 90, "one cut per 100 ms");
        for _ in 0..40 {
            tokio::time::advance(Duration::from_millis(100)).await;
            slow();
        }
        assert_eq!(limit.limit(), 10, "never below the floor");
        for _ in 0..10 {
            limit
                .try_acquire()
                .unwrap()
                .complete(Duration::from_millis(1), Instant::now());
        }
        assert_eq!(limit.limit(), 11, "a full round of fast answers adds one");
        assert_eq!(limit.in_flight(), 0);
    }
}

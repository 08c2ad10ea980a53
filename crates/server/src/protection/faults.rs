//! Fault injection: latency and errors injected on purpose into named points, to prove that
//! a sick dependency degrades only what depends on it.
//!
//! Off by default: the admin endpoints refuse to add faults unless `fault_injection` is set,
//! and with no fault active a request pays one lock-free snapshot load. Every fault expires on
//! its own (`duration_ms`), so a forgotten experiment cannot outlive its window.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// Where a fault can be injected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Point {
    /// The `/play` handler, before the game is played.
    Play,
    /// Every store call (reads, idempotency keys, the writer's batches), inside its timeout and
    /// circuit breaker: an error fails the call, latency past `store_timeout` times it out.
    Store,
}

/// A fault as an operator asks for it (`POST /admin/faults`).
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    pub point: Point,
    /// Added latency: a fixed part...
    #[serde(default)]
    pub latency_ms: u64,
    /// ...plus a uniformly distributed part in 0..=jitter.
    #[serde(default)]
    pub latency_jitter_ms: u64,
    /// Share of requests answered 503 `injected_fault` instead, 0 to 1.
    #[serde(default)]
    pub error_rate: f64,
    /// How long the fault lasts.
    pub duration_ms: u64,
}

/// The longest a fault may last, and the longest latency it may add.
const MAX_DURATION: Duration = Duration::from_secs(3600);
const MAX_LATENCY_MS: u64 = 60_000;

impl FaultSpec {
    pub fn validate(&self) -> Result<(), &'static str> {
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err("error_rate must be between 0 and 1");
        }
        if self.duration_ms == 0 || Duration::from_millis(self.duration_ms) > MAX_DURATION {
            return Err("duration_ms must be between 1 and 3600000");
        }
        // Checked: a sum that wrapped would pass the bound (u64::MAX + 1 is 0).
        if self
            .latency_ms
            .checked_add(self.latency_jitter_ms)
            .is_none_or(|total| total > MAX_LATENCY_MS)
        {
            return Err("latency_ms + latency_jitter_ms must be at most 60000");
        }
        Ok(())
    }
}

/// An active fault.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fault {
    pub id: u64,
    pub spec: FaultSpec,
    pub expires_at: Instant,
}

/// What a request at a point must suffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Injection {
    pub delay: Duration,
    pub fail: bool,
}

/// The active faults, swapped whole on every change.
#[derive(Debug)]
pub struct Faults {
    enabled: bool,
    active: ArcSwap<Vec<Fault>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl Faults {
    pub fn new(enabled: bool) -> Arc<Self> {
        Arc::new(Self {
            enabled,
            active: ArcSwap::from_pointee(Vec::new()),
            next_id: std::sync::atomic::AtomicU64::new(1),
        })
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Adds a fault; returns it. Expired faults are dropped on the way.
    pub fn add(&self, spec: FaultSpec, now: Instant) -> Fault {
        let fault = Fault {
            id: self
                .next_id
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            spec,
            expires_at: now + Duration::from_millis(spec.duration_ms),
        };
        self.active.rcu(|active| {
            let mut next: Vec<Fault> = active
                .iter()
                .copied()
                .filter(|f| f.expires_at > now)
                .collect();
            next.push(fault);
            next
        });
        tracing::warn!(?fault, "fault injected");
        fault
    }

    pub fn clear(&self) {
        self.active.store(Arc::new(Vec::new()));
        tracing::info!("all injected faults removed");
    }

    /// The faults still active at `now`.
    pub fn active(&self, now: Instant) -> Vec<Fault> {
        self.active
            .load()
            .iter()
            .copied()
            .filter(|fault| fault.expires_at > now)
            .collect()
    }

    /// What a request at `point` suffers now: the sum of active latencies, and a failure drawn
    /// with each active fault's error rate. Free when no fault was ever added.
    pub fn inject(&self, point: Point) -> Injection {
        let active = self.active.load();
        if active.is_empty() {
            return Injection::default();
        }
        let now = Instant::now();
        let mut injection = Injection::default();
        for fault in active
            .iter()
            .filter(|fault| fault.spec.point == point && fault.expires_at > now)
        {
            let jitter = if fault.spec.latency_jitter_ms > 0 {
                fastrand::u64(..=fault.spec.latency_jitter_ms)
            } else {
                0
            };
            injection.delay += Duration::from_millis(fault.spec.latency_ms + jitter);
            injection.fail |=
                fault.spec.error_rate > 0.0 && fastrand::f64() < fault.spec.error_rate;
        }
        injection
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(latency_ms: u64, error_rate: f64, duration_ms: u64) -> FaultSpec {
        FaultSpec {
            point: Point::Play,
            latency_ms,
            latency_jitter_ms: 0,
            error_rate,
            duration_ms,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn faults_apply_until_they_expire() {
        let faults = Faults::new(true);
        assert_eq!(faults.inject(Point::Play), Injection::default());
        faults.add(spec(50, 1.0, 1000), Instant::now());
        faults.add(spec(20, 0.0, 3000), Instant::now());
        assert_eq!(
            faults.inject(Point::Play),
            Injection {
                delay: Duration::from_millis(70),
                fail: true
            }
        );
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(
            faults.inject(Point::Play),
            Injection {
                delay: Duration::from_millis(20),
                fail: false
            }
        );
        assert_eq!(faults.active(Instant::now()).len(), 1);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(faults.inject(Point::Play), Injection::default());
    }

    #[test]
    fn specs_are_bounded() {
        assert!(spec(10, 0.5, 1000).validate().is_ok());
        assert!(spec(10, 1.5, 1000).validate().is_err());
        assert!(spec(10, 0.5, 0).validate().is_err());
        assert!(spec(70_000, 0.0, 1000).validate().is_err());
        assert!(spec(0, 0.0, 3_600_001).validate().is_err());
    }

    #[test]
    fn a_latency_whose_sum_would_wrap_is_refused() {
        let mut huge = spec(u64::MAX, 0.0, 1000);
        huge.latency_jitter_ms = 1;
        assert!(huge.validate().is_err());
        let mut both = spec(u64::MAX / 2 + 1, 0.0, 1000);
        both.latency_jitter_ms = u64::MAX / 2 + 1;
        assert!(both.validate().is_err());
        let mut fine = spec(59_000, 0.0, 1000);
        fine.latency_jitter_ms = 1000;
        assert!(fine.validate().is_ok());
    }
}

//! What a run measured: latency histograms (HDR), status and error counts, and a per-second
//! timeline. Events before the warm-up ends are not recorded.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// Latencies are recorded in microseconds, from 1 µs to 60 s, to three significant digits.
pub(crate) const HIGHEST_MICROS: u64 = 60_000_000;

pub(crate) fn new_histogram(significant_digits: u8) -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts.
    Histogram::new_with_bounds(1, HIGHEST_MICROS, significant_digits)
        .expect("valid histogram bounds")
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    pub(crate) fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        let millis = |micros: u64| micros as f64 / 1000.0;
        Self {
            p50: millis(histogram.value_at_quantile(0.50)),
            p90: millis(histogram.value_at_quantile(0.90)),
            p99: millis(histogram.value_at_quantile(0.99)),
            p999: millis(histogram.value_at_quantile(0.999)),
            max: millis(histogram.max()),
            mean: histogram.mean() / 1000.0,
        }
    }
}

/// One second of the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Second {
    /// Seconds since measurement began.
    pub second: u64,
    pub sent: u64,
    pub responses: u64,
    pub goodput: u64,
    pub rejections: u64,
    pub errors: u64,
    pub latency_ms: Percentiles,
}

/// Collects one run's events. Single-threaded: a run drives all its connections from one
/// thread, so recording needs no synchronization.
pub struct Recorder {
    measure_from: Instant,
    slo_micros: u64,
    latency: Histogram<u64>,
    /// Latencies of rejections (429, 503) alone: overload tests need to know a refusal is fast.
    rejection_latency: Histogram<u64>,
    current: Second,
    current_latency: Histogram<u64>,
    pub timeline: Vec<Second>,
    statuses: BTreeMap<u16, u64>,
    errors: BTreeMap<&'static str, u64>,
    pub sent: u64,
    pub responses: u64,
    pub goodput: u64,
    pub rejections: u64,
    pub error_count: u64,
    /// Responses and errors including the warm-up, for live progress.
    pub seen: u64,
    pub seen_errors: u64,
}

impl Recorder {
    pub fn new(measure_from: Instant, slo: Duration) -> Self {
        Self {
            measure_from,
            slo_micros: slo.as_micros() as u64,
            latency: new_histogram(3),
            rejection_latency: new_histogram(3),
            current: Second::default(),
            current_latency: new_histogram(2),
            timeline: Vec::new(),
            statuses: BTreeMap::new(),
            errors: BTreeMap::new(),
            sent: 0,
            responses: 0,
            goodput: 0,
            rejections: 0,
            error_count: 0,
            seen: 0,
            seen_errors: 0,
        }
    }

    /// The timeline slot for `now`, rolling the current second over; None during warm-up.
    fn second_for(&mut self, now: Instant) -> Option<&mut Second> {
        let elapsed = now.checked_duration_since(self.measure_from)?;
        let second = elapsed.as_secs();
        while self.current.second < second {
            self.close_current_second();
        }
        Some(&mut self.current)
    }

    fn close_current_second(&mut self) {
        let next = self.current.second + 1;
        let mut finished = std::mem::replace(
            &mut self.current,
            Second {
                second: next,
                ..Second::default()
            },
        );
        finished.latency_ms = Percentiles::of(&self.current_latency);
        self.current_latency.reset();
        self.timeline.push(finished);
    }

    pub fn record_sent(&mut self, now: Instant) {
        if let Some(second) = self.second_for(now) {
            second.sent += 1;
            self.sent += 1;
        }
    }

    pub fn record_response(&mut self, now: Instant, status: u16, latency: Duration) {
        self.seen += 1;
        let micros = (latency.as_micros() as u64).clamp(1, HIGHEST_MICROS);
        let good = (200..300).contains(&status) && micros <= self.slo_micros;
        let rejected = status == 429 || status == 503;
        let Some(second) = self.second_for(now) else {
            return;
        };
        second.responses += 1;
        second.goodput += u64::from(good);
        second.rejections += u64::from(rejected);
        self.responses += 1;
        self.goodput += u64::from(good);
        self.rejections += u64::from(rejected);
        *self.statuses.entry(status).or_default() += 1;
        self.latency.saturating_record(micros);
        self.current_latency.saturating_record(micros);
        if rejected {
            self.rejection_latency.saturating_record(micros);
        }
    }

    pub fn record_error(&mut self, now: Instant, kind: &'static str) {
        self.seen_errors += 1;
        let Some(second) = self.second_for(now) else {
            return;
        };
        second.errors += 1;
        self.error_count += 1;
        *self.errors.entry(kind).or_default() += 1;
    }

    /// Closes the timeline at `end` (seconds with no events still get an entry).
    pub fn finish(&mut self, end: Instant) {
        let _ = self.second_for(end);
        if self.current.sent + self.current.responses + self.current.errors > 0 {
            self.close_current_second();
        }
    }

    /// Adds another phase's measurements to this one, its timeline shifted to start at
    /// `second_offset`. Used to total the steps of a step-load run.
    pub fn absorb(&mut self, other: &Recorder, second_offset: u64) {
        // The histograms have the same bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        let _ = self.rejection_latency.add(&other.rejection_latency);
        self.timeline
            .extend(other.timeline.iter().map(|second| Second {
                second: second.second + second_offset,
                ..second.clone()
            }));
        for (status, count) in &other.statuses {
            *self.statuses.entry(*status).or_default() += count;
        }
        for (kind, count) in &other.errors {
            *self.errors.entry(kind).or_default() += count;
        }
        self.sent += other.sent;
        self.responses += other.responses;
        self.goodput += other.goodput;
        self.rejections += other.rejections;
        self.error_count += other.error_count;
    }

    pub fn latency(&self) -> Percentiles {
        Percentiles::of(&self.latency)
    }

    /// Percentiles of rejections (429 and 503) alone.
    pub fn rejection_latency(&self) -> Percentiles {
        Percentiles::of(&self.rejection_latency)
    }

    pub fn statuses(&self) -> BTreeMap<String, u64> {
        self.statuses
            .iter()
            .map(|(status, count)| (status.to_string(), *count))
            .collect()
    }

    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.errors
            .iter()
            .map(|(kind, count)| ((*kind).to_owned(), *count))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn warm_up_is_not_recorded_and_seconds_roll_over() {
        let start = Instant::now();
        let mut recorder = Recorder::new(start + Duration::from_secs(1), Duration::from_millis(10));
        recorder.record_response(start, 200, Duration::from_millis(1));
        assert_eq!(recorder.responses, 0, "warm-up");
        recorder.record_response(
            start + Duration::from_millis(1500),
            200,
            Duration::from_millis(1),
        );
        recorder.record_response(
            start + Duration::from_millis(1600),
            200,
            Duration::from_millis(50),
        );
        recorder.record_response(
            start + Duration::from_millis(3100),
            503,
            Duration::from_millis(1),
        );
        recorder.record_error(start + Duration::from_millis(3200), "timeout");
        recorder.finish(start + Duration::from_millis(3300));
        assert_eq!(recorder.responses, 3);
        assert_eq!(recorder.goodput, 1, "only the fast 2xx counts");
        assert_eq!(recorder.rejections, 1);
        assert!(
            recorder.rejection_latency().max < 2.0,
            "only the 503 is a rejection"
        );
        assert_eq!(recorder.error_count, 1);
        let seconds: Vec<(u64, u64, u64)> = recorder
            .timeline
            .iter()
            .map(|s| (s.second, s.responses, s.errors))
            .collect();
        assert_eq!(seconds, [(0, 2, 0), (1, 0, 0), (2, 1, 1)]);
        assert_eq!(recorder.statuses().get("503"), Some(&1));
        assert_eq!(recorder.errors().get("timeout"), Some(&1));
        let latency = recorder.latency();
        assert!(latency.max >= 49.0 && latency.max <= 51.0, "{latency:?}");
    }
}

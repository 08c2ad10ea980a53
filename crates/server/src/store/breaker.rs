//! A circuit breaker for store calls: closed, open, half-open.
//!
//! Closed: calls go through; it opens after `consecutive_failures` failures in a row, or when
//! at least half of the calls in the current window (of at least `min_calls`) failed. Open:
//! calls fail at once until a jittered backoff ends (doubling from `base_backoff` up to
//! `max_backoff` each time it reopens). Half-open: one trial call goes through; its success
//! closes the breaker (and resets the backoff), its failure opens it again.
//!
//! A small state machine of our own (as shared/CRATES.md allows): `failsafe` would do, but its
//! clock is not tokio's, so it could not be tested under paused time, and its state is not
//! observable for `/readyz` and the metrics.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

impl State {
    pub const fn name(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct BreakerSettings {
    pub consecutive_failures: u32,
    /// Failure rate that opens the breaker, over a window with at least `min_calls` calls.
    pub failure_rate: f64,
    pub min_calls: u32,
    pub window: Duration,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            failure_rate: 0.5,
            min_calls: 20,
            window: Duration::from_secs(10),
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: State,
    consecutive: u32,
    window_start: Instant,
    calls: u32,
    failures: u32,
    /// Open until then.
    until: Instant,
    /// The next backoff, before jitter.
    backoff: Duration,
    trial_in_flight: bool,
    opened: u64,
}

/// The breaker refused the call; try again after `retry_after`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejected {
    pub retry_after: Duration,
}

/// Leave to make one call; report its result with [`Ticket::record`].
///
/// A ticket dropped without a result is an abandoned call: the future that made it was
/// dropped (the client went away, the request's deadline fired, a drain aborted it). Its
/// `Drop` accounts for it, so an abandoned half-open trial cannot leave the breaker waiting
/// forever for a result that will never come: the trial is released, and the next call after
/// the current backoff becomes the new trial. An abandoned call says nothing about the store's
/// health, so it is counted neither as a success nor as a failure.
#[derive(Debug)]
#[must_use]
pub struct Ticket<'a> {
    breaker: &'a Breaker,
    trial: bool,
    recorded: bool,
}

impl Ticket<'_> {
    /// Reports how the call went.
    pub fn record(mut self, success: bool) {
        self.recorded = true;
        self.breaker.finish(self.trial, Some(success));
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.recorded {
            self.breaker.finish(self.trial, None);
        }
    }
}

/// What `/readyz` shows of the breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    pub state: State,
    /// While open: how long until a trial call may go.
    pub retry_after: Duration,
    /// A half-open trial call is under way.
    pub trial_in_flight: bool,
    /// How many times the breaker has opened since start-up.
    pub times_opened: u64,
}

#[derive(Debug)]
pub struct Breaker {
    settings: BreakerSettings,
    inner: Mutex<Inner>,
}

impl Breaker {
    pub fn new(settings: BreakerSettings) -> Self {
        let now = Instant::now();
        Self {
            settings,
            inner: Mutex::new(Inner {
                state: State::Closed,
                consecutive: 0,
                window_start: now,
                calls: 0,
                failures: 0,
                until: now,
                backoff: settings.base_backoff,
                trial_in_flight: false,
                opened: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn state(&self) -> State {
        self.lock().state
    }

    /// How many times the breaker has opened.
    pub fn times_opened(&self) -> u64 {
        self.lock().opened
    }

    /// The state, with what a reader needs to see a breaker that stays open.
    pub fn status(&self) -> Status {
        let now = Instant::now();
        let inner = self.lock();
        Status {
            state: inner.state,
            retry_after: match inner.state {
                State::Open => inner.until.saturating_duration_since(now),
                State::Closed | State::HalfOpen => Duration::ZERO,
            },
            trial_in_flight: inner.trial_in_flight,
            times_opened: inner.opened,
        }
    }

    /// Asks to make a call now.
    pub fn try_acquire(&self) -> Result<Ticket<'_>, Rejected> {
        let now = Instant::now();
        let mut inner = self.lock();
        match inner.state {
            State::Closed => Ok(self.ticket(false)),
            State::Open if now < inner.until => Err(Rejected {
                retry_after: inner.until - now,
            }),
            State::Open | State::HalfOpen if !inner.trial_in_flight => {
                inner.state = State::HalfOpen;
                inner.trial_in_flight = true;
                Ok(self.ticket(true))
            }
            State::Open | State::HalfOpen => Err(Rejected {
                retry_after: self.settings.base_backoff,
            }),
        }
    }

    fn ticket(&self, trial: bool) -> Ticket<'_> {
        Ticket {
            breaker: self,
            trial,
            recorded: false,
        }
    }

    /// Accounts for a call: `Some(success)` when it ended, `None` when it was abandoned.
    fn finish(&self, trial: bool, result: Option<bool>) {
        let now = Instant::now();
        let settings = &self.settings;
        let mut inner = self.lock();
        let Some(success) = result else {
            if trial {
                // Back to open, due at once: the next call is the new trial.
                inner.trial_in_flight = false;
                inner.state = State::Open;
                inner.until = now;
            }
            return;
        };
        if trial {
            inner.trial_in_flight = false;
            if success {
                inner.state = State::Closed;
                inner.backoff = settings.base_backoff;
                inner.consecutive = 0;
                inner.window_start = now;
                inner.calls = 0;
                inner.failures = 0;
            } else {
                Self::open(settings, &mut inner, now);
            }
            return;
        }
        if inner.state != State::Closed {
            // A call admitted before the breaker opened: its result is old news.
            return;
        }
        if now.duration_since(inner.window_start) >= settings.window {
            inner.window_start = now;
            inner.calls = 0;
            inner.failures = 0;
        }
        inner.calls += 1;
        if success {
            inner.consecutive = 0;
            return;
        }
        inner.failures += 1;
        inner.consecutive += 1;
        let rate_tripped = inner.calls >= settings.min_calls
            && f64::from(inner.failures) >= settings.failure_rate * f64::from(inner.calls);
        if inner.consecutive >= settings.consecutive_failures || rate_tripped {
            Self::open(settings, &mut inner, now);
        }
    }

    fn open(settings: &BreakerSettings, inner: &mut Inner, now: Instant) {
        // Jitter of -25% to +25%, so instances that saw the same outage do not all retry at once.
        let jitter = 0.75 + fastrand::f64() * 0.5;
        inner.state = State::Open;
        inner.until = now + inner.backoff.mul_f64(jitter);
        inner.backoff = (inner.backoff * 2).min(settings.max_backoff);
        inner.opened += 1;
        inner.consecutive = 0;
        inner.calls = 0;
        inner.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(breaker: &Breaker) {
        breaker.try_acquire().expect("admitted").record(false);
    }

    fn succeed(breaker: &Breaker) {
        breaker.try_acquire().expect("admitted").record(true);
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_consecutive_failures_and_recovers_through_half_open() {
        let breaker = Breaker::new(BreakerSettings::default());
        for _ in 0..4 {
            fail(&breaker);
        }
        succeed(&breaker);
        for _ in 0..4 {
            fail(&breaker);
        }
        assert_eq!(breaker.state(), State::Closed, "a success resets the run");
        fail(&breaker);
        assert_eq!(breaker.state(), State::Open);
        let rejected = breaker.try_acquire().unwrap_err();
        assert!(rejected.retry_after >= Duration::from_millis(375));
        assert!(rejected.retry_after <= Duration::from_millis(625));

        tokio::time::advance(Duration::from_millis(626)).await;
        let trial = breaker.try_acquire().expect("one trial");
        assert_eq!(breaker.state(), State::HalfOpen);
        assert!(breaker.try_acquire().is_err(), "only one trial at a time");
        trial.record(true);
        assert_eq!(breaker.state(), State::Closed);
        succeed(&breaker);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_trial_reopens_for_longer_up_to_the_cap() {
        let settings = BreakerSettings::default();
        let breaker = Breaker::new(settings);
        for _ in 0..5 {
            fail(&breaker);
        }
        let mut backoff = settings.base_backoff;
        for _ in 0..10 {
            let rejected = breaker.try_acquire().unwrap_err();
            assert!(rejected.retry_after <= backoff.mul_f64(1.25));
            assert!(rejected.retry_after >= backoff.mul_f64(0.75));
            tokio::time::advance(rejected.retry_after).await;
            fail(&breaker);
            backoff = (backoff * 2).min(settings.max_backoff);
        }
        assert_eq!(backoff, settings.max_backoff);
        assert_eq!(breaker.times_opened(), 11);
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_the_failure_rate_within_a_window() {
        let breaker = Breaker::new(BreakerSettings::default());
        // Alternating never makes five in a row, but half of 20 calls failed.
        for _ in 0..9 {
            fail(&breaker);
            succeed(&breaker);
        }
        succeed(&breaker);
        assert_eq!(breaker.state(), State::Closed);
        fail(&breaker);
        assert_eq!(breaker.state(), State::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn old_failures_leave_the_window() {
        let breaker = Breaker::new(BreakerSettings::default());
        for _ in 0..9 {
            fail(&breaker);
            succeed(&breaker);
        }
        tokio::time::advance(Duration::from_secs(11)).await;
        for _ in 0..3 {
            fail(&breaker);
            succeed(&breaker);
        }
        assert_eq!(breaker.state(), State::Closed);
    }

    /// A call whose future is dropped at its await, as a cancelled request's would be.
    async fn abandon(breaker: &Breaker) {
        let ticket = breaker.try_acquire().expect("admitted");
        let call = async move {
            let _ticket = ticket;
            std::future::pending::<()>().await;
        };
        let _ = tokio::time::timeout(Duration::from_millis(1), call).await;
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_trial_frees_the_way_for_the_next_one() {
        let breaker = Breaker::new(BreakerSettings::default());
        for _ in 0..5 {
            fail(&breaker);
        }
        let backoff = breaker.try_acquire().unwrap_err().retry_after;
        tokio::time::advance(backoff).await;
        abandon(&breaker).await;
        // Without accounting for the abandoned trial, every call from here on was refused.
        let trial = breaker.try_acquire().expect("a new trial");
        trial.record(true);
        assert_eq!(breaker.state(), State::Closed);
        succeed(&breaker);
    }

    #[tokio::test(start_paused = true)]
    async fn abandoned_calls_in_every_state_never_wedge_the_breaker() {
        let settings = BreakerSettings::default();
        let breaker = Breaker::new(settings);
        // Closed: abandoned calls are neither successes nor failures.
        for _ in 0..100 {
            abandon(&breaker).await;
        }
        assert_eq!(breaker.status().state, State::Closed);
        for _ in 0..5 {
            fail(&breaker);
        }
        // Open: calls are refused, nothing to abandon; an abandoned trial after each backoff
        // leaves the breaker open but due, never half-open with no trial running.
        let rejected = breaker.try_acquire().unwrap_err();
        tokio::time::advance(rejected.retry_after).await;
        for _ in 0..3 {
            abandon(&breaker).await;
            assert_eq!(breaker.state(), State::Open);
            let status = breaker.status();
            assert!(!status.trial_in_flight);
            assert_eq!(status.retry_after, Duration::ZERO);
        }
        // A trial left running while another is refused, then abandoned, then a healthy store:
        // the breaker closes within one backoff.
        let trial = breaker.try_acquire().expect("a trial");
        assert!(breaker.try_acquire().is_err());
        assert!(breaker.status().trial_in_flight);
        drop(trial);
        let started = Instant::now();
        loop {
            match breaker.try_acquire() {
                Ok(ticket) => {
                    ticket.record(true);
                    break;
                }
                Err(rejected) => tokio::time::advance(rejected.retry_after).await,
            }
        }
        assert!(started.elapsed() <= settings.max_backoff);
        assert_eq!(breaker.state(), State::Closed);
        // After a reopen, an abandoned trial does not double the backoff either.
        for _ in 0..5 {
            fail(&breaker);
        }
        let opened = breaker.times_opened();
        let rejected = breaker.try_acquire().unwrap_err();
        tokio::time::advance(rejected.retry_after).await;
        abandon(&breaker).await;
        assert_eq!(breaker.times_opened(), opened);
        breaker.try_acquire().expect("the next trial").record(true);
        assert_eq!(breaker.state(), State::Closed);
    }
}

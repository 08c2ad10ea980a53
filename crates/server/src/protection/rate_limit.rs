//! Rate limits: GCRA (governor) on a monotonic clock, in two dimensions plus a global one.
//!
//! - per client: each client (its `X-Player-Id` when it sends a valid one, else its IP
//!   address, taken from `X-Forwarded-For` only when the peer is a trusted proxy) gets its own
//!   bucket across all limited routes;
//! - per route: each limited route has one bucket shared by every client (protects the
//!   resource however many clients there are);
//! - global: one optional bucket for everything limited.
//!
//! Health, readiness and the API document are never limited, so probes keep working under a
//! flood. A rejected request is answered 429 before it reaches any handler. Client buckets
//! live in a concurrent map; [`RateLimits::forget_idle`] drops the buckets of clients that have
//! been idle long enough to be full again, which bounds memory however many distinct clients
//! come and go.

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed, keyed::DashMapStateStore};
use governor::{Quota, RateLimiter};

use crate::api::Route;

/// A rate and the burst allowed above it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limit {
    pub per_second: f64,
    pub burst: u32,
}

impl Limit {
    fn quota(self) -> Option<Quota> {
        if !(self.per_second > 0.0 && self.per_second.is_finite()) {
            return None;
        }
        let burst = NonZeroU32::new(self.burst.max(1))?;
        let period = Duration::from_secs_f64(1.0 / self.per_second).max(Duration::from_nanos(1));
        Quota::with_period(period).map(|quota| quota.allow_burst(burst))
    }

    /// The window in which `burst` requests are allowed from empty, for `RateLimit-Policy`.
    fn window_seconds(self) -> u64 {
        ((f64::from(self.burst) / self.per_second).ceil() as u64).max(1)
    }
}

/// Who a request is counted against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// A player id, hashed with a per-process random seed (ids are up to 64 bytes; a 64-bit
    /// hash keeps the map small). foldhash rather than SipHash: this runs on every named or
    /// authenticated request, account ids are the server's own random ones, and a collision
    /// would only make two players share a bucket.
    Player(u64),
    Ip(IpAddr),
}

/// Which bucket refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Client = 0,
    Route = 1,
    Global = 2,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Client => "client",
            Scope::Route => "route",
            Scope::Global => "global",
        }
    }
}

/// A refusal: which limit, its policy, and when to retry.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Refusal {
    pub scope: Scope,
    pub limit: Limit,
    pub retry_after: Duration,
}

impl Refusal {
    /// Whole seconds to wait, rounded up (Retry-After has one-second resolution).
    pub fn retry_after_seconds(&self) -> u64 {
        self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0)
    }

    /// The `RateLimit-Policy` quota units and window.
    pub fn policy(&self) -> (u32, u64) {
        (self.limit.burst, self.limit.window_seconds())
    }
}

type Direct<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;
type Keyed<C> =
    RateLimiter<ClientKey, DashMapStateStore<ClientKey>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// The configured limits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimitSettings {
    pub per_client: Limit,
    pub per_route: Limit,
    pub global: Limit,
}

impl RateLimitSettings {
    /// No limits at all.
    pub const OFF: RateLimitSettings = RateLimitSettings {
        per_client: Limit {
            per_second: 0.0,
            burst: 1,
        },
        per_route: Limit {
            per_second: 0.0,
            burst: 1,
        },
        global: Limit {
            per_second: 0.0,
            burst: 1,
        },
    };
}

/// The limiters; generic over the clock so tests can drive time by hand.
pub struct RateLimits<C: Clock = DefaultClock> {
    settings: RateLimitSettings,
    clock: C,
    per_client: Option<Keyed<C>>,
    per_route: Vec<Option<Direct<C>>>,
    global: Option<Direct<C>>,
    hasher: foldhash::fast::RandomState,
}

impl RateLimits {
    /// Limits on governor's default monotonic clock.
    pub fn new(settings: RateLimitSettings) -> Self {
        Self::with_clock(settings, DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateLimits<C> {
    pub fn with_clock(settings: RateLimitSettings, clock: C) -> Self {
        let direct = |limit: Limit| {
            limit
                .quota()
                .map(|quota| RateLimiter::direct_with_clock(quota, clock.clone()))
        };
        Self {
            settings,
            per_client: settings
                .per_client
                .quota()
                .map(|quota| RateLimiter::dashmap_with_clock(quota, clock.clone())),
            per_route: Route::ALL
                .iter()
                .map(|&route| {
                    if is_limited(route) {
                        direct(settings.per_route)
                    } else {
                        None
                    }
                })
                .collect(),
            global: direct(settings.global),
            clock,
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    /// The key for a player id (already validated) or, without one, the client's address.
    pub fn client_key(&self, player_id: Option<&[u8]>, address: IpAddr) -> ClientKey {
        match player_id {
            Some(id) => ClientKey::Player(self.hasher.hash_one(id)),
            None => ClientKey::Ip(address),
        }
    }

    /// Admits a request to `route` from `client`, or says which limit refuses it.
    pub fn check(&self, route: Route, client: ClientKey) -> Result<(), Refusal> {
        if !is_limited(route) {
            return Ok(());
        }
        let now = self.clock.now();
        let refuse = |scope, limit, not_until: governor::NotUntil<_>| Refusal {
            scope,
            limit,
            retry_after: not_until.wait_time_from(now),
        };
        if let Some(limiter) = &self.per_client {
            limiter
                .check_key(&client)
                .map_err(|n| refuse(Scope::Client, self.settings.per_client, n))?;
        }
        let index = Route::ALL.iter().position(|r| *r == route).unwrap_or(0);
        if let Some(Some(limiter)) = self.per_route.get(index) {
            limiter
                .check()
                .map_err(|n| refuse(Scope::Route, self.settings.per_route, n))?;
        }
        if let Some(limiter) = &self.global {
            limiter
                .check()
                .map_err(|n| refuse(Scope::Global, self.settings.global, n))?;
        }
        Ok(())
    }

    /// Forgets clients whose buckets have refilled; returns how many are still tracked.
    pub fn forget_idle(&self) -> usize {
        let Some(limiter) = &self.per_client else {
            return 0;
        };
        limiter.retain_recent();
        limiter.shrink_to_fit();
        limiter.len()
    }
}

/// Routes that are never limited: probes and the API document must keep answering.
fn is_limited(route: Route) -> bool {
    !matches!(route, Route::Healthz | Route::Readyz | Route::OpenApi)
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;
    use proptest::prelude::*;

    use super::*;

    fn limit(per_second: f64, burst: u32) -> Limit {
        Limit { per_second, burst }
    }

    fn settings(client: Limit) -> RateLimitSettings {
        RateLimitSettings {
            per_client: client,
            per_route: limit(0.0, 1),
            global: limit(0.0, 1),
        }
    }

    #[test]
    fn each_client_has_its_own_bucket_and_probes_are_never_limited() {
        let limits = RateLimits::new(settings(limit(1.0, 2)));
        let alice = limits.client_key(Some(b"alice"), "10.0.0.1".parse().unwrap());
        let bob = limits.client_key(None, "10.0.0.2".parse().unwrap());
        assert!(limits.check(Route::Play, alice).is_ok());
        assert!(limits.check(Route::Play, alice).is_ok());
        let refusal = limits.check(Route::Play, alice).unwrap_err();
        assert_eq!(refusal.scope, Scope::Client);
        assert_eq!(refusal.retry_after_seconds(), 1);
        assert_eq!(refusal.policy(), (2, 2));
        assert!(
            limits.check(Route::Play, bob).is_ok(),
            "another client is unaffected"
        );
        for _ in 0..10 {
            assert!(limits.check(Route::Healthz, alice).is_ok());
        }
    }

    #[test]
    fn the_route_and_global_buckets_are_shared_by_all_clients() {
        let limits = RateLimits::new(RateLimitSettings {
            per_client: limit(0.0, 1),
            per_route: limit(1.0, 3),
            global: limit(0.0, 1),
        });
        for client in 0..3u8 {
            assert!(
                limits
                    .check(Route::Play, ClientKey::Ip(IpAddr::from([10, 0, 0, client])))
                    .is_ok()
            );
        }
        let refusal = limits
            .check(Route::Play, ClientKey::Ip(IpAddr::from([10, 0, 0, 9])))
            .unwrap_err();
        assert_eq!(refusal.scope, Scope::Route);
    }

    #[test]
    fn a_million_idle_clients_are_forgotten() {
        let clock = FakeRelativeClock::default();
        let limits = RateLimits::with_clock(settings(limit(1000.0, 1)), clock.clone());
        for client in 0..1_000_000u32 {
            let _ = limits.check(
                Route::Play,
                ClientKey::Ip(IpAddr::from(client.to_be_bytes())),
            );
        }
        assert_eq!(limits.per_client.as_ref().unwrap().len(), 1_000_000);
        assert_eq!(limits.forget_idle(), 1_000_000, "nobody is idle yet");
        // Every bucket refills within 1 ms at 1,000/s with a burst of 1.
        clock.advance(Duration::from_millis(2));
        assert_eq!(limits.forget_idle(), 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// For any rate, burst and arrival pattern, a key is admitted at most
        /// rate × elapsed + burst times (GCRA's bound), measured on a fake clock.
        #[test]
        fn admitted_never_exceeds_rate_times_time_plus_burst(
            per_second in 1u32..1000,
            burst in 1u32..50,
            gaps_micros in prop::collection::vec(0u64..5000, 1..400),
        ) {
            let clock = FakeRelativeClock::default();
            let quota = limit(f64::from(per_second), burst).quota().unwrap();
            let limiter = RateLimiter::dashmap_with_clock(quota, clock.clone());
            let mut elapsed = Duration::ZERO;
            let mut admitted = 0u64;
            for gap in gaps_micros {
                clock.advance(Duration::from_micros(gap));
                elapsed += Duration::from_micros(gap);
                if limiter.check_key(&7u32).is_ok() {
                    admitted += 1;
                }
                let bound = f64::from(per_second) * elapsed.as_secs_f64() + f64::from(burst);
                prop_assert!(admitted as f64 <= bound + 1e-9, "{admitted} admitted, bound {bound}");
            }
        }
    }
}

//! Limits on the front door: creating accounts and signing in.
//!
//! Guessing passwords and minting accounts are what an attacker does at the front door, so
//! those routes get limits of their own besides the per-client ones every route has:
//! - account creation (guest or registered) per client address, so one address cannot mint
//!   unbounded accounts;
//! - sign-in attempts per client address, and failed sign-ins per username (from everywhere:
//!   past that limit, addresses that have not signed in as the username before wait; those
//!   that have are spared, so a flood of failures cannot keep the owner out);
//! - a growing delay after repeated failures for one username from one address: the third
//!   failure in a row waits 1 s before the next try, then 2 s, 4 s, up to 60 s; a success
//!   resets it. The delay is per (username, address), so failures elsewhere never delay a
//!   victim, and it is a delay, never a permanent lockout.
//!
//! Memory: the limiters are governor's keyed maps and the failure table is a map bounded to
//! [`MAX_FAILURE_ENTRIES`] entries; [`FrontDoor::forget_idle`] drops idle keys.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

use super::rate_limit::ClientKey;

/// Failure streaks remembered at most; past it the oldest is forgotten.
pub const MAX_FAILURE_ENTRIES: usize = 100_000;
/// Failures in a row that cost nothing; each one after doubles the wait.
const FREE_FAILURES: u32 = 2;
const MAX_DELAY: Duration = Duration::from_secs(60);
/// A streak idle this long is forgotten.
const FAILURE_MEMORY: Duration = Duration::from_secs(15 * 60);

/// An address that signed in as a username is spared that username's failure limit this long.
const KNOWN_FOR: Duration = Duration::from_secs(30 * 86_400);

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

type Keyed<K> = RateLimiter<K, DashMapStateStore<K>, DefaultClock, NoOpMiddleware>;

/// The front door's limits, as configured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FrontDoorSettings {
    /// Accounts one address may create per hour (also the burst).
    pub accounts_per_address_per_hour: u32,
    /// Sign-in attempts per address per minute (also the burst).
    pub logins_per_address_per_minute: u32,
    /// Failed sign-ins per username per minute, from all addresses (also the burst); past it,
    /// addresses that never signed in as that username wait.
    pub logins_per_username_per_minute: u32,
}

/// Which front-door limit refused, and when to come back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after: Duration,
}

impl Throttled {
    pub fn retry_after_seconds(&self) -> u64 {
        self.retry_after.as_secs_f64().ceil().max(1.0) as u64
    }
}

#[derive(Clone, Copy, Debug)]
struct Streak {
    failures: u32,
    /// No attempt before this.
    not_before: Instant,
    last: Instant,
}

pub struct FrontDoor {
    creations: Option<Keyed<ClientKey>>,
    logins_by_address: Option<Keyed<ClientKey>>,
    logins_by_username: Option<Keyed<u64>>,
    failures: Mutex<HashMap<(u64, ClientKey), Streak>>,
    /// Usernames past their failure limit, until when.
    blocked: Mutex<HashMap<u64, Instant>>,
    /// (username, address) pairs that signed in, and when: spared a username's block.
    known: Mutex<HashMap<(u64, ClientKey), Instant>>,
    clock: DefaultClock,
    hasher: std::collections::hash_map::RandomState,
}

impl std::fmt::Debug for FrontDoor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrontDoor").finish_non_exhaustive()
    }
}

fn limiter<K: Hash + Eq + Clone>(per: Duration, count: u32) -> Option<Keyed<K>> {
    let count = NonZeroU32::new(count)?;
    let quota = Quota::with_period(per / count.get())?.allow_burst(count);
    Some(RateLimiter::dashmap(quota))
}

impl FrontDoor {
    pub fn new(settings: FrontDoorSettings) -> Self {
        Self {
            creations: limiter(
                Duration::from_secs(3600),
                settings.accounts_per_address_per_hour,
            ),
            logins_by_address: limiter(
                Duration::from_secs(60),
                settings.logins_per_address_per_minute,
            ),
            logins_by_username: limiter(
                Duration::from_secs(60),
                settings.logins_per_username_per_minute,
            ),
            failures: Mutex::new(HashMap::new()),
            blocked: Mutex::new(HashMap::new()),
            known: Mutex::new(HashMap::new()),
            clock: DefaultClock::default(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// Admits the creation of an account from `address`.
    pub fn admit_creation(&self, address: ClientKey) -> Result<(), Throttled> {
        check(&self.creations, &address, &self.clock)
    }

    /// Admits a sign-in with a device secret from `address`: the per-address limit only (a
    /// 256-bit secret is not guessed, but each sign-in starts a session, which costs memory).
    pub fn admit_device_login(&self, address: ClientKey) -> Result<(), Throttled> {
        check(&self.logins_by_address, &address, &self.clock)
    }

    /// Admits a sign-in attempt for `username` (its case-insensitive key) from `address`.
    pub fn admit_login(&self, username: &str, address: ClientKey) -> Result<(), Throttled> {
        check(&self.logins_by_address, &address, &self.clock)?;
        let user = self.hasher.hash_one(username);
        let now = Instant::now();
        // Too many failures for this username from everywhere: addresses that have signed in
        // as it before are spared, so a flood cannot keep its owner out.
        let blocked_until = lock(&self.blocked).get(&user).copied();
        if let Some(until) = blocked_until.filter(|until| *until > now) {
            let known = lock(&self.known)
                .get(&(user, address))
                .is_some_and(|at| now.duration_since(*at) < KNOWN_FOR);
            if !known {
                return Err(Throttled {
                    retry_after: until.saturating_duration_since(now),
                });
            }
        }
        let failures = lock(&self.failures);
        match failures.get(&(user, address)) {
            Some(streak) if streak.not_before > now => Err(Throttled {
                retry_after: streak.not_before.saturating_duration_since(now),
            }),
            _ => Ok(()),
        }
    }

    /// Records the outcome of a sign-in attempt that was admitted.
    pub fn record_login(&self, username: &str, address: ClientKey, succeeded: bool) {
        let user = self.hasher.hash_one(username);
        let now = Instant::now();
        let mut failures = lock(&self.failures);
        if succeeded {
            failures.remove(&(user, address));
            drop(failures);
            let mut known = lock(&self.known);
            if known.len() >= MAX_FAILURE_ENTRIES && !known.contains_key(&(user, address)) {
                if let Some(oldest) = known.iter().min_by_key(|(_, at)| **at).map(|(key, _)| *key) {
                    known.remove(&oldest);
                }
            }
            known.insert((user, address), now);
            return;
        }
        // Failures, not attempts, count against the username's limit.
        if let Some(limiter) = &self.logins_by_username
            && let Err(not_until) = limiter.check_key(&user)
        {
            let until = now + not_until.wait_time_from(self.clock.now());
            let mut blocked = lock(&self.blocked);
            if blocked.len() >= MAX_FAILURE_ENTRIES {
                blocked.retain(|_, at| *at > now);
            }
            if blocked.len() < MAX_FAILURE_ENTRIES {
                blocked.insert(user, until);
            }
        }
        if failures.len() >= MAX_FAILURE_ENTRIES && !failures.contains_key(&(user, address)) {
            // Full: forget the stalest streak. A scan, but only when an attacker has filled
            // the table, and bounded by its size.
            if let Some(oldest) = failures
                .iter()
                .min_by_key(|(_, streak)| streak.last)
                .map(|(key, _)| *key)
            {
                failures.remove(&oldest);
            }
        }
        let streak = failures.entry((user, address)).or_insert(Streak {
            failures: 0,
            not_before: now,
            last: now,
        });
        streak.failures = streak.failures.saturating_add(1);
        streak.last = now;
        streak.not_before = now + delay_after(streak.failures);
    }

    /// Forgets idle limiter keys and failure streaks.
    pub fn forget_idle(&self) {
        for limiter in [&self.creations, &self.logins_by_address]
            .into_iter()
            .flatten()
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &self.logins_by_username {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        let now = Instant::now();
        let mut failures = lock(&self.failures);
        failures.retain(|_, streak| now.duration_since(streak.last) < FAILURE_MEMORY);
        drop(failures);
        lock(&self.blocked).retain(|_, until| *until > now);
        lock(&self.known).retain(|_, at| now.duration_since(*at) < KNOWN_FOR);
    }
}

/// The wait before the next attempt after `failures` failures in a row.
pub fn delay_after(failures: u32) -> Duration {
    if failures <= FREE_FAILURES {
        return Duration::ZERO;
    }
    let doublings = (failures - FREE_FAILURES - 1).min(16);
    Duration::from_secs(1u64 << doublings).min(MAX_DELAY)
}

fn check<K: Hash + Eq + Clone>(
    limiter: &Option<Keyed<K>>,
    key: &K,
    clock: &DefaultClock,
) -> Result<(), Throttled> {
    let Some(limiter) = limiter else {
        return Ok(());
    };
    limiter.check_key(key).map_err(|not_until| Throttled {
        retry_after: not_until.wait_time_from(clock.now()),
    })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn address(n: u8) -> ClientKey {
        ClientKey::Ip(Ipv4Addr::new(10, 0, 0, n).into())
    }

    #[test]
    fn delays_grow_after_two_free_failures_and_stop_at_a_minute() {
        let delays: Vec<u64> = (0..12).map(|n| delay_after(n).as_secs()).collect();
        assert_eq!(delays, [0, 0, 0, 1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(delay_after(u32::MAX), MAX_DELAY);
    }

    #[test]
    fn failures_delay_one_address_for_one_username_only_and_success_resets() {
        let door = FrontDoor::new(FrontDoorSettings {
            accounts_per_address_per_hour: 10,
            logins_per_address_per_minute: 1000,
            logins_per_username_per_minute: 1000,
        });
        for _ in 0..3 {
            door.admit_login("ann", address(1)).unwrap();
            door.record_login("ann", address(1), false);
        }
        let throttled = door.admit_login("ann", address(1)).unwrap_err();
        assert!(throttled.retry_after <= Duration::from_secs(1));
        assert_eq!(throttled.retry_after_seconds(), 1);
        // The victim at another address, and another username here, are not delayed.
        assert!(door.admit_login("ann", address(2)).is_ok());
        assert!(door.admit_login("bob", address(1)).is_ok());
        door.record_login("ann", address(1), true);
        assert!(door.admit_login("ann", address(1)).is_ok());
    }

    #[test]
    fn account_creation_is_limited_per_address() {
        let door = FrontDoor::new(FrontDoorSettings {
            accounts_per_address_per_hour: 3,
            logins_per_address_per_minute: 10,
            logins_per_username_per_minute: 10,
        });
        for _ in 0..3 {
            door.admit_creation(address(1)).unwrap();
        }
        let throttled = door.admit_creation(address(1)).unwrap_err();
        assert!(throttled.retry_after > Duration::from_secs(60 * 10));
        assert!(door.admit_creation(address(2)).is_ok());
    }

    #[test]
    fn failures_from_everywhere_block_a_username_except_where_its_owner_signed_in() {
        let door = FrontDoor::new(FrontDoorSettings {
            accounts_per_address_per_hour: 3,
            logins_per_address_per_minute: 100,
            logins_per_username_per_minute: 5,
        });
        // The owner signs in from home once.
        door.admit_login("ann", address(200)).unwrap();
        door.record_login("ann", address(200), true);
        // Attempts alone do not count; failures from many addresses do.
        for n in 0..10 {
            door.admit_login("ann", address(n)).unwrap();
        }
        for n in 0..6 {
            door.record_login("ann", address(n), false);
        }
        assert!(
            door.admit_login("ann", address(99)).is_err(),
            "a new address waits"
        );
        assert!(
            door.admit_login("ann", address(200)).is_ok(),
            "the owner's does not"
        );
        assert!(door.admit_login("bob", address(99)).is_ok());
    }

    #[test]
    fn the_failure_table_stays_bounded() {
        let door = FrontDoor::new(FrontDoorSettings {
            accounts_per_address_per_hour: 1,
            logins_per_address_per_minute: 0,
            logins_per_username_per_minute: 0,
        });
        for n in 0..(MAX_FAILURE_ENTRIES + 10) {
            door.record_login(&n.to_string(), address(1), false);
        }
        let len = door.failures.lock().unwrap().len();
        assert_eq!(len, MAX_FAILURE_ENTRIES);
    }
}

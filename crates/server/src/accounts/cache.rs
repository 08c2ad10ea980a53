//! What this instance has lately learnt from the shared directory about access tokens, so an
//! authenticated play with Redis sessions costs one hash and one map lookup, as in memory,
//! and no Redis round trip.
//!
//! The staleness bound: an entry answers for at most `ttl` (`session_cache_ttl`, 2 s by
//! default) after it was looked up, and never past the token's own expiry. A session ended on
//! another instance (sign-out, deletion, a spent refresh token presented) therefore stops
//! working here within `ttl`; one ended on this instance is dropped from the cache at once.
//! Refusals are cached the same way, so a client repeating a bad token costs Redis one lookup
//! per `ttl`, not one per request.
//!
//! Bounded: at most [`CAPACITY`] entries. A full cache first drops what is stale, then, if
//! everything is fresh, empties itself: the next requests pay a lookup each, which is the cost
//! of a cache of this size under a flood of distinct tokens, never unbounded memory.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::tables::{AccountId, Bearer, TokenRefused};
use super::token::TokenHash;

/// Entries kept at most: about 100 bytes each.
pub const CAPACITY: usize = 100_000;

/// What a token was found to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cached {
    Live(Bearer),
    Refused(TokenRefused),
    /// Its account was deleted: a repeated `DELETE /me` is answered as the first was.
    Deleted(AccountId),
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    cached: Cached,
    fresh_until_ms: u64,
}

#[derive(Debug)]
pub struct TokenCache {
    entries: Mutex<HashMap<TokenHash, Entry, foldhash::fast::RandomState>>,
    ttl_ms: u64,
}

impl TokenCache {
    pub fn new(ttl_ms: u64) -> Self {
        Self {
            entries: Mutex::new(HashMap::default()),
            ttl_ms,
        }
    }

    /// Held for one map operation, never across an await.
    fn entries(&self) -> MutexGuard<'_, HashMap<TokenHash, Entry, foldhash::fast::RandomState>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What `hash` was found to be, if that is recent enough to answer for. Allocates nothing.
    pub fn get(&self, hash: &TokenHash, now_ms: u64) -> Option<Cached> {
        self.entries()
            .get(hash)
            .filter(|entry| now_ms < entry.fresh_until_ms)
            .map(|entry| entry.cached)
    }

    /// Remembers what `hash` is, for `ttl` and at most until `expires_ms`.
    pub fn put(&self, hash: TokenHash, cached: Cached, now_ms: u64, expires_ms: u64) {
        let fresh_until_ms = now_ms.saturating_add(self.ttl_ms).min(expires_ms);
        let mut entries = self.entries();
        if entries.len() >= CAPACITY && !entries.contains_key(&hash) {
            entries.retain(|_, entry| now_ms < entry.fresh_until_ms);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(
            hash,
            Entry {
                cached,
                fresh_until_ms,
            },
        );
    }

    /// Forgets `hash`: its session ended here.
    pub fn evict(&self, hash: &TokenHash) {
        self.entries().remove(hash);
    }

    /// Drops every entry for `account`'s tokens (its sessions ended here).
    pub fn evict_account(&self, account: &str) {
        self.entries().retain(
            |_, entry| !matches!(entry.cached, Cached::Live(bearer) if bearer.account.as_str() == account),
        );
    }

    /// Drops stale entries; the periodic sweep calls it.
    pub fn sweep(&self, now_ms: u64) -> usize {
        let mut entries = self.entries();
        let before = entries.len();
        entries.retain(|_, entry| now_ms < entry.fresh_until_ms);
        before - entries.len()
    }

    pub fn len(&self) -> usize {
        self.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::tables::SessionId;

    fn bearer() -> Bearer {
        Bearer {
            account: AccountId::from("0123456789abcdef01234567").unwrap(),
            session: SessionId::parse("aaaaaaaaaaaaaaaaaaaaaaaa").unwrap(),
            account_key: 7,
        }
    }

    fn hash(byte: u8) -> TokenHash {
        TokenHash([byte; 32])
    }

    #[test]
    fn an_entry_answers_for_the_ttl_and_never_past_the_tokens_expiry() {
        let cache = TokenCache::new(2_000);
        cache.put(hash(1), Cached::Live(bearer()), 10_000, u64::MAX);
        assert_eq!(cache.get(&hash(1), 10_000), Some(Cached::Live(bearer())));
        assert_eq!(cache.get(&hash(1), 11_999), Some(Cached::Live(bearer())));
        assert_eq!(cache.get(&hash(1), 12_000), None);
        cache.put(hash(2), Cached::Live(bearer()), 10_000, 10_500);
        assert_eq!(cache.get(&hash(2), 10_499), Some(Cached::Live(bearer())));
        assert_eq!(cache.get(&hash(2), 10_500), None);
        assert_eq!(cache.get(&hash(3), 10_000), None);
    }

    #[test]
    fn eviction_takes_effect_at_once() {
        let cache = TokenCache::new(2_000);
        cache.put(hash(1), Cached::Live(bearer()), 0, u64::MAX);
        cache.put(hash(2), Cached::Live(bearer()), 0, u64::MAX);
        cache.put(hash(3), Cached::Refused(TokenRefused::Unknown), 0, u64::MAX);
        cache.evict(&hash(1));
        assert_eq!(cache.get(&hash(1), 1), None);
        cache.evict_account(&bearer().account);
        assert_eq!(cache.get(&hash(2), 1), None);
        assert_eq!(
            cache.get(&hash(3), 1),
            Some(Cached::Refused(TokenRefused::Unknown))
        );
    }

    #[test]
    fn the_cache_never_holds_more_than_its_capacity() {
        let cache = TokenCache::new(1_000);
        for index in 0..(CAPACITY + 10) as u64 {
            let mut bytes = [0; 32];
            bytes[..8].copy_from_slice(&index.to_le_bytes());
            cache.put(TokenHash(bytes), Cached::Live(bearer()), 0, u64::MAX);
            assert!(cache.len() <= CAPACITY);
        }
        let held = cache.len();
        assert!(held > 0);
        assert_eq!(cache.sweep(5_000), held);
        assert!(cache.is_empty());
    }
}

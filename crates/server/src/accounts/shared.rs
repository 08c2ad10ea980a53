//! Accounts and sessions in the shared directory (Redis), for any number of instances: a
//! session started on one is good on all, and survives restarts. The rules are those of the
//! in-memory [`super::tables`]; what differs is where the state lives and how a play learns
//! of it: through this instance's [`TokenCache`] (one map lookup), refilled from Redis on a
//! miss off the play's path ([`Shared::verify`]).
//!
//! Between instances, consistency rests on single Redis commands: usernames are claimed with
//! `SET NX`; a refresh token is spent by one script over two keys of one slot, so of two
//! instances presented the same token exactly one rotates it (and a third presentation is
//! seen as reuse and ends the session). What is not atomic (a session's several keys) is
//! ordered so a failure half-way leaves less access, never more: an ended session loses its
//! tokens before its record.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::cache::{Cached, TokenCache};
use super::tables::{AccountId, Bearer, Lifetimes, NewTokens, SessionId, TokenRefused};
use super::token::TokenHash;
use super::username::Username;
use super::{AccountError, AccountView, SessionView};
use crate::store::Store;
use crate::store::directory::{
    Directory, Registration, Rotation, SessionTokens, StoredAccount, StoredSession, TokenRecord,
};

/// Spent refresh tokens are remembered this many access-token lifetimes at most (then a
/// reuse reads as an unknown token): the memory backend remembers the last 16 per session.
const SPENT_KEPT_LIFETIMES: u64 = 16;

pub(super) struct Shared {
    store: Arc<Store>,
    pub(super) cache: TokenCache,
    key_hasher: foldhash::fast::RandomState,
    guest_retention_ms: u64,
    /// Accounts and sessions held in Redis, as the latest sweep counted them.
    census: [AtomicU64; 2],
}

impl From<crate::store::StoreError> for AccountError {
    fn from(error: crate::store::StoreError) -> Self {
        AccountError::Unavailable(error.to_string())
    }
}

fn view_of(stored: &StoredAccount) -> Option<AccountView> {
    Some(AccountView {
        id: AccountId::from(&stored.id).ok()?,
        display_name: stored.display_name.clone(),
        username: stored.username.clone(),
        guest: stored.username.is_none(),
        created_ms: stored.created_ms,
    })
}

fn deadline_of(session: &StoredSession, lifetimes: &Lifetimes) -> u64 {
    session
        .expires_ms
        .min(session.last_seen_ms.saturating_add(lifetimes.session_idle))
}

impl Shared {
    pub(super) fn new(store: Arc<Store>, cache_ttl_ms: u64, guest_retention_ms: u64) -> Self {
        Self {
            store,
            cache: TokenCache::new(cache_ttl_ms),
            key_hasher: foldhash::fast::RandomState::default(),
            guest_retention_ms,
            census: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }

    async fn call<T, F, Fut>(&self, call: F) -> Result<T, AccountError>
    where
        F: FnOnce(Directory) -> Fut,
        Fut: Future<Output = Result<T, crate::store::StoreError>>,
    {
        Ok(self.store.directory(call).await?)
    }

    /// What the cache knows of an access token (by hash); `Unverified` when it must be
    /// looked up first. Allocates nothing.
    pub(super) fn authenticate(&self, hash: &TokenHash, now: u64) -> Result<Bearer, TokenRefused> {
        match self.cache.get(hash, now) {
            Some(Cached::Live(bearer)) => Ok(bearer),
            Some(Cached::Refused(refused)) => Err(refused),
            Some(Cached::Deleted(_)) => Err(TokenRefused::Unknown),
            None => Err(TokenRefused::Unverified),
        }
    }

    pub(super) fn deleted_account(&self, hash: &TokenHash, now: u64) -> Option<AccountId> {
        match self.cache.get(hash, now) {
            Some(Cached::Deleted(account)) => Some(account),
            _ => None,
        }
    }

    /// Looks an access token up in Redis and caches what it is: one round trip.
    pub(super) async fn verify(&self, hash: TokenHash, now: u64) -> Result<(), AccountError> {
        let hex = hash.to_hex();
        let record = self
            .call(|directory| async move { directory.token(&hex).await })
            .await?;
        let (cached, until) = match record {
            TokenRecord::Live {
                session,
                account,
                expires_ms,
            } => match (AccountId::from(&account), SessionId::parse(&session)) {
                (Ok(account), Some(session)) if now < expires_ms => (
                    Cached::Live(Bearer {
                        account,
                        session,
                        account_key: self.key_hasher.hash_one(account.as_str()),
                    }),
                    expires_ms,
                ),
                (Ok(_), Some(_)) => (Cached::Refused(TokenRefused::Expired), u64::MAX),
                _ => (Cached::Refused(TokenRefused::Unknown), u64::MAX),
            },
            TokenRecord::Deleted { account } => match AccountId::from(&account) {
                Ok(account) => (Cached::Deleted(account), u64::MAX),
                Err(_) => (Cached::Refused(TokenRefused::Unknown), u64::MAX),
            },
            TokenRecord::Unknown => (Cached::Refused(TokenRefused::Unknown), u64::MAX),
        };
        self.cache.put(hash, cached, now, until);
        Ok(())
    }

    pub(super) async fn account(&self, id: &str) -> Result<Option<StoredAccount>, AccountError> {
        self.call(|directory| async move { directory.account(id).await })
            .await
    }

    pub(super) async fn me(&self, id: &str) -> Result<Option<AccountView>, AccountError> {
        Ok(self.account(id).await?.as_ref().and_then(view_of))
    }

    pub(super) async fn account_by_username(
        &self,
        name: &Username,
    ) -> Result<Option<StoredAccount>, AccountError> {
        let fold = name.key();
        let found = self
            .call(|directory| async move { directory.account_by_username(fold).await })
            .await?;
        // The index is only believed where the account agrees it has that name.
        Ok(found.filter(|account| {
            account
                .username
                .as_ref()
                .is_some_and(|stored| Username::from_stored(stored.clone()).key() == fold)
        }))
    }

    pub(super) async fn account_by_device(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<StoredAccount>, AccountError> {
        let hex = hash.to_hex();
        let found = self
            .call(|directory| {
                let hex = &hex;
                async move { directory.account_by_device(hex).await }
            })
            .await?;
        // A device index left behind by a failed upgrade signs no one in.
        Ok(found.filter(|account| account.device.as_deref() == Some(hex.as_str())))
    }

    /// Writes a new account; a username is claimed first, so two instances registering
    /// the same one concurrently cannot both succeed.
    pub(super) async fn create(
        &self,
        account: StoredAccount,
        username: Option<&Username>,
        now: u64,
    ) -> Result<(), AccountError> {
        let retention = self.guest_retention_ms;
        if let Some(name) = username {
            let (fold, id) = (name.key(), account.id.as_str());
            let claimed = self
                .call(|directory| async move { directory.claim_username(fold, id).await })
                .await?;
            if !claimed {
                return Err(AccountError::UsernameTaken);
            }
        }
        let written = self
            .call(|directory| {
                let account = &account;
                async move { directory.create_account(account, retention, now).await }
            })
            .await;
        if let (Ok(()), Some(name)) = (&written, username) {
            let fold = name.key();
            return self
                .call(|directory| async move { directory.keep_username(fold).await })
                .await;
        }
        if let Some(name) = username {
            let (fold, id) = (name.key(), account.id.as_str());
            let _ = self
                .call(|directory| async move { directory.release_username(fold, id).await })
                .await;
        }
        written
    }

    /// Links a username and password to a guest.
    pub(super) async fn register(
        &self,
        id: &str,
        username: &Username,
        password_hash: &str,
    ) -> Result<(), AccountError> {
        let account = self
            .account(id)
            .await?
            .ok_or(AccountError::InvalidToken(TokenRefused::Unknown))?;
        if account.username.is_some() {
            return Err(AccountError::AlreadyRegistered);
        }
        let fold = username.key();
        let claimed = self
            .call(|directory| async move { directory.claim_username(fold, id).await })
            .await?;
        if !claimed {
            return Err(AccountError::UsernameTaken);
        }
        let name = username.as_str();
        let registered = self
            .call(|directory| async move { directory.register(id, name, password_hash).await })
            .await;
        let refused = match registered {
            Ok(Registration::Registered) => {
                return self
                    .call(|directory| async move { directory.keep_username(fold).await })
                    .await;
            }
            Ok(Registration::NoAccount) => AccountError::InvalidToken(TokenRefused::Unknown),
            Ok(Registration::AlreadyRegistered) => AccountError::AlreadyRegistered,
            // Whether the script ran is unknown: the name stays claimed rather than risk
            // handing out a name the account may now hold.
            Err(error) => return Err(error),
        };
        let _ = self
            .call(|directory| async move { directory.release_username(fold, id).await })
            .await;
        Err(refused)
    }

    /// Sets fields of an existing account.
    pub(super) async fn update(
        &self,
        id: &str,
        fields: &[(&str, &str)],
    ) -> Result<(), AccountError> {
        let updated = self
            .call(|directory| async move { directory.update_account(id, fields).await })
            .await?;
        if updated {
            Ok(())
        } else {
            Err(AccountError::InvalidToken(TokenRefused::Unknown))
        }
    }

    /// Files a new session for `account`, ending its sessions past `max_per_account`.
    /// Returns the session's absolute end.
    pub(super) async fn start_session(
        &self,
        account: &AccountId,
        tokens: NewTokens,
        lifetimes: &Lifetimes,
        max_per_account: usize,
        now: u64,
    ) -> Result<u64, AccountError> {
        let stored = self
            .account(account)
            .await?
            .ok_or(AccountError::InvalidToken(TokenRefused::Unknown))?;
        let retention = self.guest_retention_ms;
        self.call(|directory| {
            let stored = &stored;
            async move { directory.keep_guest(stored, retention, now).await }
        })
        .await?;
        let expires_ms = now.saturating_add(lifetimes.session_absolute);
        let (access, refresh) = (tokens.access.to_hex(), tokens.refresh.to_hex());
        let filed = SessionTokens {
            session: tokens.session.as_str(),
            account,
            access: &access,
            access_expires_ms: now.saturating_add(lifetimes.access_token),
            refresh: &refresh,
            deadline_ms: expires_ms.min(now.saturating_add(lifetimes.session_idle)),
            expires_ms,
        };
        let extra = self
            .call(|directory| {
                let filed = &filed;
                async move { directory.start_session(filed, now, max_per_account).await }
            })
            .await?;
        for session in extra {
            self.end(&session).await?;
        }
        // An account deleted while this session was being filed: its deletion may not have
        // seen the session, so it ends here.
        if self.account(account).await?.is_none() {
            self.end(tokens.session.as_str()).await?;
            return Err(AccountError::InvalidToken(TokenRefused::Unknown));
        }
        Ok(expires_ms)
    }

    /// Trades a refresh token for new ones: (account, session, its absolute end).
    pub(super) async fn refresh(
        &self,
        presented: &TokenHash,
        new_access: TokenHash,
        new_refresh: TokenHash,
        lifetimes: &Lifetimes,
        now: u64,
    ) -> Result<(AccountId, SessionId, u64), AccountError> {
        let hex = presented.to_hex();
        let spent_until =
            now.saturating_add(lifetimes.access_token.saturating_mul(SPENT_KEPT_LIFETIMES));
        let rotation = self
            .call(|directory| async move { directory.spend_refresh(&hex, spent_until).await })
            .await?;
        let session = match rotation {
            Rotation::Rotated { session } => session,
            Rotation::Reused { session } => {
                self.end(&session).await?;
                return Err(AccountError::InvalidToken(TokenRefused::Reused));
            }
            Rotation::Unknown => return Err(AccountError::InvalidToken(TokenRefused::Unknown)),
        };
        let unknown = || AccountError::InvalidToken(TokenRefused::Unknown);
        let stored = self
            .call(|directory| {
                let session = &session;
                async move { directory.session(session).await }
            })
            .await?
            .ok_or_else(unknown)?;
        if now >= deadline_of(&stored, lifetimes) {
            return Err(AccountError::InvalidToken(TokenRefused::Expired));
        }
        let account = AccountId::from(&stored.account).map_err(|_| unknown())?;
        let id = SessionId::parse(&stored.id).ok_or_else(unknown)?;
        let (access, refresh) = (new_access.to_hex(), new_refresh.to_hex());
        let filed = SessionTokens {
            session: &stored.id,
            account: &stored.account,
            access: &access,
            access_expires_ms: now.saturating_add(lifetimes.access_token),
            refresh: &refresh,
            deadline_ms: stored
                .expires_ms
                .min(now.saturating_add(lifetimes.session_idle)),
            expires_ms: stored.expires_ms,
        };
        let old_access = stored.access.as_str();
        let rotated = self
            .call(|directory| {
                let filed = &filed;
                async move { directory.rotate(old_access, filed, now).await }
            })
            .await?;
        if let Some(old) = TokenHash::from_hex(old_access) {
            self.cache.evict(&old);
        }
        if !rotated {
            return Err(unknown());
        }
        if self.account(&stored.account).await?.is_none() {
            self.end(&stored.id).await?;
            return Err(unknown());
        }
        Ok((account, id, stored.expires_ms))
    }

    /// Ends a session everywhere; here at once, elsewhere within the cache's bound.
    pub(super) async fn end(&self, session: &str) -> Result<bool, AccountError> {
        let ended = self
            .call(|directory| async move { directory.end_session(session).await })
            .await?;
        if let Some(hash) = ended
            .as_ref()
            .and_then(|(_, access)| TokenHash::from_hex(access))
        {
            self.cache.evict(&hash);
        }
        Ok(ended.is_some())
    }

    /// Ends `session` if it is `account`'s.
    pub(super) async fn end_session(
        &self,
        account: &str,
        session: &str,
    ) -> Result<(), AccountError> {
        let found = self
            .call(|directory| async move { directory.session(session).await })
            .await?;
        match found {
            Some(found) if found.account == account => {
                self.end(session).await?;
                Ok(())
            }
            _ => Err(AccountError::NoSession),
        }
    }

    pub(super) async fn sessions(
        &self,
        account: &str,
        lifetimes: &Lifetimes,
    ) -> Result<Vec<SessionView>, AccountError> {
        let mut sessions = self
            .call(|directory| async move { directory.sessions_of(account).await })
            .await?;
        sessions.sort_by_key(|session| session.last_seen_ms);
        Ok(sessions
            .iter()
            .filter_map(|session| {
                Some(SessionView {
                    id: SessionId::parse(&session.id)?,
                    created_ms: session.created_ms,
                    last_seen_ms: session.last_seen_ms,
                    expires_ms: deadline_of(session, lifetimes),
                })
            })
            .collect())
    }

    /// Erases an account: its sessions end (their access tokens remembered as deleted, so a
    /// retried deletion is answered as the first), then its keys go.
    pub(super) async fn delete(
        &self,
        account: &str,
        lifetimes: &Lifetimes,
        now: u64,
    ) -> Result<bool, AccountError> {
        let Some(stored) = self.account(account).await? else {
            return Ok(false);
        };
        let sessions = self
            .call(|directory| async move { directory.sessions_of(account).await })
            .await?;
        let until = now.saturating_add(lifetimes.access_token);
        for session in &sessions {
            // The tombstone first: if ending fails, a retry still knows the token.
            let access = session.access.as_str();
            self.call(
                |directory| async move { directory.bury_token(access, account, until).await },
            )
            .await?;
            self.end(&session.id).await?;
            if let (Some(hash), Ok(id)) = (TokenHash::from_hex(access), AccountId::from(account)) {
                self.cache.put(hash, Cached::Deleted(id), now, until);
            }
        }
        let fold = stored
            .username
            .clone()
            .map(|name| Username::from_stored(name).key().to_owned());
        self.call(|directory| {
            let (stored, fold) = (&stored, fold.as_deref());
            async move { directory.delete_account(stored, fold).await }
        })
        .await?;
        self.cache.evict_account(account);
        Ok(true)
    }

    /// Drops stale cache entries and counts what Redis holds, for the gauges.
    pub(super) async fn sweep(&self, now: u64) -> usize {
        let dropped = self.cache.sweep(now);
        if let Ok((accounts, sessions)) = self
            .call(|directory| async move { directory.census(now).await })
            .await
        {
            self.census[0].store(accounts, Ordering::Relaxed);
            self.census[1].store(sessions, Ordering::Relaxed);
        }
        dropped
    }

    /// (accounts, sessions) held in Redis at the latest sweep.
    pub(super) fn census(&self) -> (u64, u64) {
        (
            self.census[0].load(Ordering::Relaxed),
            self.census[1].load(Ordering::Relaxed),
        )
    }
}

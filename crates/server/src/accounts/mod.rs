//! Player accounts and their sessions: who a request is.
//!
//! A guest account is created with nothing but a request and comes with a device secret that
//! signs it back in; a registered account has a username and a password (Argon2id). Either
//! kind signs in to a *session*, which hands the client an access token (sent as
//! `Authorization: Bearer`, short-lived) and a refresh token (traded for new tokens, once).
//! Every token is opaque and only its SHA-256 is kept ([`token`]); the tables and their rules
//! are in [`tables`], hashing in [`password`].
//!
//! Two backends, chosen with the store: in memory ([`tables`], this process only: accounts
//! and sessions are lost on restart and not seen by other instances), or in Redis
//! ([`shared`]: every instance sees every session, and they survive restarts).
//!
//! The hot path is [`Accounts::authenticate`]: one BLAKE3 and one map lookup under a mutex
//! held for that lookup only, no allocation, no system call. In memory the map is the
//! sessions' own; with Redis it is this instance's [`cache`] of what Redis said, and a miss
//! answers [`TokenRefused::Unverified`]: the caller looks the token up
//! ([`Accounts::verify`], one round trip) off the play's path and asks again.

pub mod cache;
pub mod fairness;
pub mod password;
mod shared;
pub mod tables;
pub mod token;
pub mod username;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use self::password::{HashError, PasswordRejected, Passwords};
use self::shared::Shared;
pub use self::tables::{AccountId, Bearer, SessionId};
use self::tables::{AccountRefused, Lifetimes, NewTokens, SessionBounds, Tables};
use self::token::{Kind, RandomFailed, SessionSeed, TokenHash};
use self::username::{Username, UsernameError};
use crate::store::Store;
use crate::store::directory::StoredAccount;
use crate::telemetry::metrics;

pub use self::tables::TokenRefused;

/// What the accounts need from the settings.
#[derive(Clone, Debug)]
pub struct AccountSettings {
    pub access_token_lifetime: Duration,
    pub session_idle_lifetime: Duration,
    pub session_lifetime: Duration,
    pub max_accounts: usize,
    pub max_sessions_per_account: usize,
    pub password_hash_concurrency: usize,
    pub password_hash_memory_kib: u32,
    pub password_hash_iterations: u32,
    /// How long this instance trusts what Redis said of an access token (Redis backend).
    pub session_cache_ttl: Duration,
    /// A guest account in Redis expires this long after its latest sign-in.
    pub guest_retention: Duration,
}

/// Why an account operation failed, as the HTTP surface maps it.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("invalid username: {0}")]
    InvalidUsername(#[from] UsernameError),
    #[error("password refused: {0}")]
    WeakPassword(#[from] PasswordRejected),
    #[error("this username is taken")]
    UsernameTaken,
    #[error("this account already has a username")]
    AlreadyRegistered,
    #[error("the username or password is wrong")]
    BadCredentials,
    #[error("the token is missing, invalid, expired or revoked")]
    InvalidToken(TokenRefused),
    #[error("this request needs an access token: send Authorization: Bearer <token>")]
    MissingToken,
    #[error("this request needs the session cookie, and it carries none: sign in again")]
    MissingSessionCookie,
    #[error("this server holds as many accounts as it may; try again later")]
    Full,
    #[error("no such session")]
    NoSession,
    #[error("too many attempts; retry after {retry_after_seconds} s")]
    Throttled { retry_after_seconds: u64 },
    #[error("accounts are unavailable right now: {0}")]
    Unavailable(String),
}

impl From<crate::protection::front_door::Throttled> for AccountError {
    fn from(throttled: crate::protection::front_door::Throttled) -> Self {
        AccountError::Throttled {
            retry_after_seconds: throttled.retry_after_seconds(),
        }
    }
}

impl From<HashError> for AccountError {
    fn from(error: HashError) -> Self {
        AccountError::Unavailable(error.to_string())
    }
}

impl From<RandomFailed> for AccountError {
    fn from(error: RandomFailed) -> Self {
        AccountError::Unavailable(error.to_string())
    }
}

impl From<AccountRefused> for AccountError {
    fn from(refused: AccountRefused) -> Self {
        match refused {
            AccountRefused::UsernameTaken => AccountError::UsernameTaken,
            AccountRefused::Full => AccountError::Full,
            AccountRefused::AlreadyRegistered => AccountError::AlreadyRegistered,
            AccountRefused::NoAccount => AccountError::InvalidToken(TokenRefused::Unknown),
        }
    }
}

/// A session just started or refreshed: the tokens (for a program) or their seed (for the web
/// page's cookie) go to the client once.
#[derive(Debug)]
pub struct IssuedSession {
    pub account: AccountId,
    pub session: SessionId,
    pub access_token: String,
    pub refresh_token: String,
    /// What both tokens are derived from (see [`token`]).
    pub seed: SessionSeed,
    /// Seconds the access token is good for.
    pub expires_in: u64,
    /// When the session ends at the latest, Unix milliseconds.
    pub session_expires_ms: u64,
}

/// An account as its owner sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountView {
    pub id: AccountId,
    pub display_name: String,
    pub username: Option<String>,
    pub guest: bool,
    pub created_ms: u64,
}

/// A session as its owner sees it (no token material).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionView {
    pub id: SessionId,
    pub created_ms: u64,
    pub last_seen_ms: u64,
    pub expires_ms: u64,
}

/// A clock in Unix milliseconds that follows tokio's (paused in tests) from the wall clock at
/// start-up.
#[derive(Clone, Copy, Debug)]
struct Clock {
    wall_at_start: u64,
    started: tokio::time::Instant,
}

impl Clock {
    fn new() -> Self {
        let wall_at_start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        Self {
            wall_at_start,
            started: tokio::time::Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.ms_at(tokio::time::Instant::now())
    }

    fn ms_at(&self, at: tokio::time::Instant) -> u64 {
        self.wall_at_start + at.saturating_duration_since(self.started).as_millis() as u64
    }
}

/// The in-memory backend's state.
struct Local {
    tables: Mutex<Tables>,
    /// Access tokens of accounts deleted lately, until they would have expired: a repeated
    /// `DELETE /me` (a retry after a lost answer) is answered as the first was. At most
    /// [`MAX_TOMBSTONES`].
    deleted: Mutex<HashMap<TokenHash, (u64, AccountId)>>,
}

// One per process, built once and never moved: boxing the larger variant would only add a
// pointer chase to every authenticated request.
#[allow(clippy::large_enum_variant)]
enum Backend {
    Local(Local),
    Shared(Shared),
}

pub struct Accounts {
    backend: Backend,
    passwords: Passwords,
    lifetimes: Lifetimes,
    max_accounts: usize,
    session_bounds: SessionBounds,
    clock: Clock,
}

/// Deleted accounts' access tokens remembered at most.
const MAX_TOMBSTONES: usize = 100_000;

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts").finish_non_exhaustive()
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Local {
    /// Held for one table operation at a time, never across an await.
    fn tables(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Accounts {
    /// Accounts kept in this process.
    pub fn new(settings: &AccountSettings) -> Self {
        Self::with_backend(
            settings,
            Backend::Local(Local {
                tables: Mutex::new(Tables::default()),
                deleted: Mutex::new(HashMap::new()),
            }),
        )
    }

    /// Accounts kept where `store` keeps games: in Redis when it is a Redis store (shared by
    /// every instance), else in this process.
    pub fn for_store(settings: &AccountSettings, store: &Arc<Store>) -> Self {
        if !store.shares_accounts() {
            return Self::new(settings);
        }
        Self::with_backend(
            settings,
            Backend::Shared(Shared::new(
                Arc::clone(store),
                millis(settings.session_cache_ttl),
                millis(settings.guest_retention),
            )),
        )
    }

    fn with_backend(settings: &AccountSettings, backend: Backend) -> Self {
        Self {
            backend,
            passwords: Passwords::new(
                settings.password_hash_concurrency,
                settings.password_hash_memory_kib,
                settings.password_hash_iterations,
            ),
            lifetimes: Lifetimes {
                access_token: millis(settings.access_token_lifetime),
                session_idle: millis(settings.session_idle_lifetime),
                session_absolute: millis(settings.session_lifetime),
            },
            max_accounts: settings.max_accounts,
            session_bounds: SessionBounds {
                per_account: settings.max_sessions_per_account,
                // Two per account on average: enough for people on two devices, and a bound on
                // memory however sign-ins are spread.
                total: settings.max_accounts.saturating_mul(2),
            },
            clock: Clock::new(),
        }
    }

    /// "memory" or "redis": where accounts and sessions live.
    pub fn kind(&self) -> &'static str {
        match self.backend {
            Backend::Local(_) => "memory",
            Backend::Shared(_) => "redis",
        }
    }

    /// The bearer of an access token (`gga_…`), from the bytes of the header value after
    /// `Bearer `. Allocates nothing. With Redis, [`TokenRefused::Unverified`] when this
    /// instance has not looked the token up lately: [`Self::verify`] it, then ask again.
    /// `arrived` is when the request was read: no clock is read here.
    pub fn authenticate(
        &self,
        access_token: &[u8],
        arrived: tokio::time::Instant,
    ) -> Result<Bearer, TokenRefused> {
        let hash =
            token::hash_presented(Kind::Access, access_token).ok_or(TokenRefused::Unknown)?;
        let now = self.clock.ms_at(arrived);
        match &self.backend {
            Backend::Local(local) => local.tables().authenticate(&hash, &self.lifetimes, now),
            Backend::Shared(shared) => shared.authenticate(&hash, now),
        }
    }

    /// Looks an access token up in Redis, so [`Self::authenticate`] answers for it for the
    /// cache's bound. Nothing to do in memory.
    pub async fn verify(
        &self,
        access_token: &[u8],
        arrived: tokio::time::Instant,
    ) -> Result<(), AccountError> {
        let (Backend::Shared(shared), Some(hash)) = (
            &self.backend,
            token::hash_presented(Kind::Access, access_token),
        ) else {
            return Ok(());
        };
        shared.verify(hash, self.clock.ms_at(arrived)).await
    }

    /// A new guest account, signed in; its device secret signs it in again.
    pub async fn create_guest(&self) -> Result<(IssuedSession, String), AccountError> {
        let id = new_account_id()?;
        let device = token::issue(Kind::Device)?;
        let display_name = format!("guest-{}", &id[..6]);
        let now = self.clock.now_ms();
        match &self.backend {
            Backend::Local(local) => {
                let account =
                    Tables::new_account(id, display_name, None, None, Some(device.hash), now);
                local.tables().create(account, self.max_accounts)?;
            }
            Backend::Shared(shared) => {
                let account = StoredAccount {
                    id: id.to_string(),
                    display_name,
                    device: Some(device.hash.to_hex()),
                    created_ms: now,
                    ..StoredAccount::default()
                };
                shared.create(account, None, now).await?;
            }
        }
        metrics::with_shard(|shard| shard.accounts_created[0].add(1));
        let session = self.start_session(&id).await?;
        Ok((session, device.text))
    }

    /// A new registered account, signed in.
    pub async fn register(
        &self,
        username: &str,
        password: String,
    ) -> Result<IssuedSession, AccountError> {
        let username = Username::parse(username)?;
        let password = password::normalize(&password);
        password::check_policy(&password)?;
        if self.id_by_username(&username).await?.is_some() {
            return Err(AccountError::UsernameTaken);
        }
        let hash = self.passwords.hash(password).await?;
        let id = new_account_id()?;
        let now = self.clock.now_ms();
        let display_name = username.as_str().to_owned();
        match &self.backend {
            Backend::Local(local) => {
                let account =
                    Tables::new_account(id, display_name, Some(username), Some(hash), None, now);
                local.tables().create(account, self.max_accounts)?;
            }
            Backend::Shared(shared) => {
                let account = StoredAccount {
                    id: id.to_string(),
                    display_name,
                    username: Some(username.as_str().to_owned()),
                    password_hash: Some(hash),
                    created_ms: now,
                    ..StoredAccount::default()
                };
                shared.create(account, Some(&username), now).await?;
            }
        }
        metrics::with_shard(|shard| shard.accounts_created[1].add(1));
        self.start_session(&id).await
    }

    /// The account holding `username` and its password hash.
    async fn id_by_username(
        &self,
        username: &Username,
    ) -> Result<Option<(AccountId, Option<String>)>, AccountError> {
        Ok(match &self.backend {
            Backend::Local(local) => local
                .tables()
                .account_by_username(username)
                .map(|account| (account.id, account.password_hash.clone())),
            Backend::Shared(shared) => {
                shared
                    .account_by_username(username)
                    .await?
                    .and_then(|account| {
                        Some((AccountId::from(&account.id).ok()?, account.password_hash))
                    })
            }
        })
    }

    /// Links a username and password to a guest account, which keeps its id, stats and
    /// history.
    pub async fn upgrade(
        &self,
        account: &str,
        username: &str,
        password: String,
    ) -> Result<AccountView, AccountError> {
        let username = Username::parse(username)?;
        let password = password::normalize(&password);
        password::check_policy(&password)?;
        let entry = self
            .me(account)
            .await?
            .ok_or(AccountError::InvalidToken(TokenRefused::Unknown))?;
        if !entry.guest {
            return Err(AccountError::AlreadyRegistered);
        }
        if self.id_by_username(&username).await?.is_some() {
            return Err(AccountError::UsernameTaken);
        }
        let hash = self.passwords.hash(password).await?;
        match &self.backend {
            Backend::Local(local) => local.tables().register(account, username, hash)?,
            Backend::Shared(shared) => shared.register(account, &username, &hash).await?,
        }
        self.me(account)
            .await?
            .ok_or(AccountError::InvalidToken(TokenRefused::Unknown))
    }

    /// Signs in with a username and password. The same error, after the same work, whether
    /// the username exists or not.
    pub async fn login_password(
        &self,
        username: &str,
        password: String,
    ) -> Result<IssuedSession, AccountError> {
        let username = Username::parse(username).ok();
        let password = password::normalize(&password);
        let (id, stored) = match &username {
            Some(name) => match self.id_by_username(name).await? {
                Some((id, stored)) => (Some(id), stored),
                None => (None, None),
            },
            None => (None, None),
        };
        let verified = self.passwords.verify(password.clone(), stored).await?;
        let Some(id) = id.filter(|_| verified.matches) else {
            metrics::with_shard(|shard| shard.logins[1].add(1));
            return Err(AccountError::BadCredentials);
        };
        if verified.needs_rehash {
            let hash = self.passwords.hash(password).await?;
            match &self.backend {
                Backend::Local(local) => local.tables().set_password_hash(&id, hash),
                Backend::Shared(shared) => shared.update(&id, &[("pw", &hash)]).await?,
            }
        }
        metrics::with_shard(|shard| shard.logins[0].add(1));
        self.start_session(&id).await
    }

    /// Signs a guest in with its device secret.
    pub async fn login_device(&self, device_secret: &[u8]) -> Result<IssuedSession, AccountError> {
        let id = match token::hash_presented(Kind::Device, device_secret) {
            None => None,
            Some(hash) => match &self.backend {
                Backend::Local(local) => local
                    .tables()
                    .account_by_device(&hash)
                    .map(|account| account.id),
                Backend::Shared(shared) => shared
                    .account_by_device(&hash)
                    .await?
                    .and_then(|account| AccountId::from(&account.id).ok()),
            },
        };
        let Some(id) = id else {
            metrics::with_shard(|shard| shard.logins[1].add(1));
            return Err(AccountError::BadCredentials);
        };
        metrics::with_shard(|shard| shard.logins[0].add(1));
        self.start_session(&id).await
    }

    /// Trades a refresh token for new tokens; a spent one revokes its session.
    pub async fn refresh(&self, refresh_token: &[u8]) -> Result<IssuedSession, AccountError> {
        let presented = token::hash_presented(Kind::Refresh, refresh_token)
            .ok_or(AccountError::InvalidToken(TokenRefused::Unknown))?;
        let seed = SessionSeed::random()?;
        let (access, refresh) = seed.issue();
        let now = self.clock.now_ms();
        let result = match &self.backend {
            Backend::Local(local) => local
                .tables()
                .refresh(&presented, access.hash, refresh.hash, &self.lifetimes, now)
                .map(|session| (session.account, session.id, session.expires_ms))
                .map_err(AccountError::InvalidToken),
            Backend::Shared(shared) => {
                shared
                    .refresh(&presented, access.hash, refresh.hash, &self.lifetimes, now)
                    .await
            }
        };
        match result {
            Ok((account, session, session_expires_ms)) => Ok(IssuedSession {
                account,
                session,
                access_token: access.text,
                refresh_token: refresh.text,
                seed,
                expires_in: self.lifetimes.access_token / 1000,
                session_expires_ms,
            }),
            Err(error) => {
                if matches!(error, AccountError::InvalidToken(TokenRefused::Reused)) {
                    metrics::with_shard(|shard| shard.refresh_reuse.add(1));
                    tracing::warn!("a spent refresh token was presented; its session is revoked");
                }
                Err(error)
            }
        }
    }

    /// Ends `session` if it belongs to `account`.
    pub async fn end_session(&self, account: &str, session: &str) -> Result<(), AccountError> {
        let id = SessionId::parse(session).ok_or(AccountError::NoSession)?;
        match &self.backend {
            Backend::Local(local) => {
                let mut tables = local.tables();
                match tables.session(&id) {
                    Some(found) if found.account.as_str() == account => {
                        tables.end_session(&id);
                        Ok(())
                    }
                    _ => Err(AccountError::NoSession),
                }
            }
            Backend::Shared(shared) => shared.end_session(account, session).await,
        }
    }

    pub async fn me(&self, account: &str) -> Result<Option<AccountView>, AccountError> {
        match &self.backend {
            Backend::Local(local) => Ok(local.tables().account(account).map(|entry| AccountView {
                id: entry.id,
                display_name: entry.display_name.clone(),
                username: entry.username.as_ref().map(|name| name.as_str().to_owned()),
                guest: entry.is_guest(),
                created_ms: entry.created_ms,
            })),
            Backend::Shared(shared) => shared.me(account).await,
        }
    }

    pub async fn set_display_name(&self, account: &str, name: String) -> Result<(), AccountError> {
        match &self.backend {
            Backend::Local(local) => Ok(local.tables().set_display_name(account, name)?),
            Backend::Shared(shared) => shared.update(account, &[("name", &name)]).await,
        }
    }

    /// Display names of `ids`, where they are accounts.
    pub async fn display_names(&self, ids: &[&str]) -> Result<Vec<Option<String>>, AccountError> {
        match &self.backend {
            Backend::Local(local) => {
                let tables = local.tables();
                Ok(ids
                    .iter()
                    .map(|id| {
                        tables
                            .account(id)
                            .map(|account| account.display_name.clone())
                    })
                    .collect())
            }
            // Sent together over the multiplexed connection, not one after another.
            Backend::Shared(shared) => {
                futures_util::future::try_join_all(ids.iter().map(|id| async move {
                    Ok::<_, AccountError>(shared.me(id).await?.map(|view| view.display_name))
                }))
                .await
            }
        }
    }

    pub async fn sessions(&self, account: &str) -> Result<Vec<SessionView>, AccountError> {
        match &self.backend {
            Backend::Local(local) => Ok(local
                .tables()
                .sessions_of(account)
                .into_iter()
                .map(|session| SessionView {
                    id: session.id,
                    created_ms: session.created_ms,
                    last_seen_ms: session.last_seen_ms,
                    expires_ms: session.deadline(&self.lifetimes),
                })
                .collect()),
            Backend::Shared(shared) => shared.sessions(account, &self.lifetimes).await,
        }
    }

    /// Erases an account and its sessions (the caller erases its games). Returns whether it
    /// existed.
    pub async fn delete(&self, account: &str) -> Result<bool, AccountError> {
        let now = self.clock.now_ms();
        let local = match &self.backend {
            Backend::Local(local) => local,
            Backend::Shared(shared) => return shared.delete(account, &self.lifetimes, now).await,
        };
        let (existed, tokens) = {
            let mut tables = local.tables();
            let tokens = tables.access_tokens_of(account);
            (tables.delete(account), tokens)
        };
        let mut deleted = local.deleted.lock().unwrap_or_else(PoisonError::into_inner);
        deleted.retain(|_, (until, _)| *until > now);
        let Ok(id) = AccountId::from(account) else {
            return Ok(existed);
        };
        for (hash, until) in tokens {
            if deleted.len() < MAX_TOMBSTONES {
                deleted.insert(hash, (until, id));
            }
        }
        Ok(existed)
    }

    /// The account `access_token` belonged to, if that account was deleted within the
    /// token's lifetime (with Redis: as far as this instance's cache knows, which
    /// [`Self::verify`] fills).
    pub fn deleted_account(&self, access_token: &[u8]) -> Option<AccountId> {
        let hash = token::hash_presented(Kind::Access, access_token)?;
        let now = self.clock.now_ms();
        match &self.backend {
            Backend::Local(local) => {
                let deleted = local.deleted.lock().unwrap_or_else(PoisonError::into_inner);
                deleted
                    .get(&hash)
                    .filter(|(until, _)| *until > now)
                    .map(|(_, account)| *account)
            }
            Backend::Shared(shared) => shared.deleted_account(&hash, now),
        }
    }

    /// Ends expired sessions (in memory) or drops stale cache entries and counts what Redis
    /// holds; the caller runs it periodically.
    pub async fn sweep(&self) -> usize {
        let now = self.clock.now_ms();
        match &self.backend {
            Backend::Local(local) => local.tables().sweep(&self.lifetimes, now),
            Backend::Shared(shared) => shared.sweep(now).await,
        }
    }

    /// Gauges: accounts and sessions held, password hashing capacity free.
    pub fn write_metrics(&self, exposition: &mut metrics::Exposition) {
        let (accounts, sessions, cached) = match &self.backend {
            Backend::Local(local) => {
                let tables = local.tables();
                (
                    tables.account_count() as u64,
                    tables.session_count() as u64,
                    0,
                )
            }
            Backend::Shared(shared) => {
                let (accounts, sessions) = shared.census();
                (accounts, sessions, shared.cache.len())
            }
        };
        for (name, help, value) in [
            (
                "guess_game_accounts",
                "Accounts held (by this instance in memory; in Redis, by all, as of the latest sweep).",
                accounts as usize,
            ),
            (
                "guess_game_sessions_active",
                "Sessions not ended or expired.",
                sessions as usize,
            ),
            (
                "guess_game_session_cache_entries",
                "Access tokens this instance remembers Redis's answer for (0 in memory).",
                cached,
            ),
            (
                "guess_game_password_hash_permits_free",
                "Password hashes that could start now (the rest run or wait).",
                self.passwords.available_permits(),
            ),
        ] {
            exposition.family(name, help, metrics::Kind::Gauge);
            exposition.sample(name, "", value as f64);
        }
    }

    /// Now, in Unix milliseconds on the accounts' clock (the one sessions expire by).
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    async fn start_session(&self, account: &AccountId) -> Result<IssuedSession, AccountError> {
        let seed = SessionSeed::random()?;
        let (access, refresh) = seed.issue();
        let session = SessionId::parse(&token::random_id::<12>()?)
            .ok_or_else(|| AccountError::Unavailable("session id".to_owned()))?;
        let tokens = NewTokens {
            session,
            access: access.hash,
            refresh: refresh.hash,
        };
        let now = self.clock.now_ms();
        let expires_ms = match &self.backend {
            Backend::Local(local) => {
                local
                    .tables()
                    .start_session(account, tokens, &self.lifetimes, self.session_bounds, now)?
                    .expires_ms
            }
            Backend::Shared(shared) => {
                shared
                    .start_session(
                        account,
                        tokens,
                        &self.lifetimes,
                        self.session_bounds.per_account,
                        now,
                    )
                    .await?
            }
        };
        Ok(IssuedSession {
            account: *account,
            session,
            access_token: access.text,
            refresh_token: refresh.text,
            seed,
            expires_in: self.lifetimes.access_token / 1000,
            session_expires_ms: expires_ms,
        })
    }
}

/// 24 hex characters: a valid player id, so the player routes address accounts as they are.
fn new_account_id() -> Result<AccountId, AccountError> {
    AccountId::from(&token::random_id::<12>()?)
        .map_err(|_| AccountError::Unavailable("account id".to_owned()))
}

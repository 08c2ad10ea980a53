//! The accounts and sessions held in this process: the tables, their indexes and every rule
//! that changes them. Synchronous and clock-free (the caller passes `now` in Unix
//! milliseconds), so every rule is unit-tested without a runtime.
//!
//! Bounds: at most `max_accounts` accounts; at most `max_sessions_per_account` sessions per
//! account (a new one ends the least recently used) and `SessionBounds::total` in all (a new
//! one ends the one nearest its end); per session at most
//! [`USED_REFRESH_KEPT`] spent refresh tokens remembered for reuse detection. Expired sessions
//! leave through [`Tables::sweep`], driven by an ordered index of deadlines, so sweeping costs
//! per session that expires, never a scan of all of them.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::BuildHasher;

use super::token::TokenHash;
use super::username::Username;

/// Spent refresh tokens remembered per session: presenting one revokes the session.
pub const USED_REFRESH_KEPT: usize = 16;

/// 24 lowercase hex characters: also a valid player id. Small, since it is copied along every
/// authenticated request.
pub type AccountId = arrayvec::ArrayString<24>;
/// 24 lowercase hex characters, random.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SessionId(arrayvec::ArrayString<24>);

impl SessionId {
    /// None when `text` is longer than a session id can be.
    pub fn parse(text: &str) -> Option<SessionId> {
        arrayvec::ArrayString::from(text).ok().map(SessionId)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for SessionId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::hash::Hash for SessionId {
    /// The first eight characters (random hex) as one word: the map's hasher mixes it, and a
    /// byte-string hash of all 24 showed on the authenticated play's path.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let mut word = [0; 8];
        let bytes = self.0.as_bytes();
        let len = bytes.len().min(8);
        word[..len].copy_from_slice(&bytes[..len]);
        state.write_u64(u64::from_ne_bytes(word));
    }
}

/// How long sessions and tokens live, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetimes {
    pub access_token: u64,
    pub session_idle: u64,
    pub session_absolute: u64,
}

#[derive(Clone, Debug)]
pub struct Account {
    pub id: AccountId,
    pub display_name: String,
    pub username: Option<Username>,
    /// Argon2id PHC string.
    pub password_hash: Option<String>,
    pub device: Option<TokenHash>,
    pub created_ms: u64,
    /// Most recently used last.
    sessions: Vec<SessionId>,
}

impl Account {
    pub fn is_guest(&self) -> bool {
        self.username.is_none()
    }
}

#[derive(Clone, Debug)]
pub struct Session {
    pub id: SessionId,
    pub account: AccountId,
    pub created_ms: u64,
    pub last_seen_ms: u64,
    /// The session ends at this time whatever its use.
    pub expires_ms: u64,
    access: TokenHash,
    pub access_expires_ms: u64,
    refresh: TokenHash,
    account_key: u64,
    used_refresh: VecDeque<TokenHash>,
    /// The deadline this session is filed under in the sweep index.
    filed_deadline: u64,
}

impl Access {
    fn of(session: &Session) -> Self {
        Access {
            bearer: Bearer {
                account: session.account,
                session: session.id,
                account_key: session.account_key,
            },
            access_expires_ms: session.access_expires_ms,
            expires_ms: session.expires_ms,
            last_seen_ms: session.last_seen_ms,
        }
    }
}

impl Session {
    /// When the session ends if it is not used again.
    pub fn deadline(&self, lifetimes: &Lifetimes) -> u64 {
        self.expires_ms
            .min(self.last_seen_ms.saturating_add(lifetimes.session_idle))
    }
}

/// An access token's entry: a copy of what its session says about it, and the session's
/// latest use, which only this entry tracks between a session's refreshes (the session's
/// `last_seen_ms` is brought up to date from it wherever it is read).
#[derive(Clone, Copy, Debug)]
struct Access {
    bearer: Bearer,
    access_expires_ms: u64,
    /// The session's absolute end.
    expires_ms: u64,
    last_seen_ms: u64,
}

/// How many sessions may be held: per account, and in all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionBounds {
    pub per_account: usize,
    pub total: usize,
}

/// What an access token says about its bearer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bearer {
    pub account: AccountId,
    pub session: SessionId,
    /// A 64-bit key for the account, computed once when its session started: what per-client
    /// limits count against, with no hashing on each request.
    pub account_key: u64,
}

/// Why an access or refresh token was not accepted. The client sees one answer for all of
/// them (401 `invalid_token`); the reasons are for metrics and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefused {
    #[error("no session has this token")]
    Unknown,
    #[error("the token has expired")]
    Expired,
    #[error("a refresh token was used twice; the session is revoked")]
    Reused,
    /// Not known to this instance's cache of the shared (Redis) directory: to be looked up
    /// there before the request goes on. Never reaches a client.
    #[error("the token is not verified yet")]
    Unverified,
}

/// The new tokens' hashes a login or a refresh stores, made by the caller.
#[derive(Clone, Copy, Debug)]
pub struct NewTokens {
    pub session: SessionId,
    pub access: TokenHash,
    pub refresh: TokenHash,
}

/// Why an account change was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccountRefused {
    #[error("the username is taken")]
    UsernameTaken,
    #[error("this instance holds as many accounts as it may")]
    Full,
    #[error("the account already has a username")]
    AlreadyRegistered,
    #[error("no such account")]
    NoAccount,
}

/// foldhash (randomly seeded per process): the keys are hashes of random tokens and random ids,
/// and SipHash's cost showed on the authenticated play's path under callgrind.
type Hasher = foldhash::fast::RandomState;

#[derive(Debug, Default)]
pub struct Tables {
    accounts: HashMap<AccountId, Account, Hasher>,
    by_username: HashMap<String, AccountId, Hasher>,
    by_device: HashMap<TokenHash, AccountId, Hasher>,
    sessions: HashMap<SessionId, Session, Hasher>,
    /// Everything checking an access token needs, so an authenticated request costs one
    /// lookup: the session's own record is not touched on that path.
    by_access: HashMap<TokenHash, Access, Hasher>,
    by_refresh: HashMap<TokenHash, SessionId, Hasher>,
    used_refresh: HashMap<TokenHash, SessionId, Hasher>,
    deadlines: BTreeSet<(u64, SessionId)>,
    /// Seeds `Bearer::account_key`.
    key_hasher: Hasher,
}

impl Tables {
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    pub fn account(&self, id: &str) -> Option<&Account> {
        self.accounts.get(id)
    }

    pub fn account_by_username(&self, name: &Username) -> Option<&Account> {
        self.by_username
            .get(name.key())
            .and_then(|id| self.accounts.get(id))
    }

    pub fn account_by_device(&self, device: &TokenHash) -> Option<&Account> {
        self.by_device
            .get(device)
            .and_then(|id| self.accounts.get(id))
    }

    /// Adds an account; `max_accounts` bounds how many this process holds.
    pub fn create(&mut self, account: Account, max_accounts: usize) -> Result<(), AccountRefused> {
        if self.accounts.len() >= max_accounts {
            return Err(AccountRefused::Full);
        }
        if let Some(name) = &account.username {
            if self.by_username.contains_key(name.key()) {
                return Err(AccountRefused::UsernameTaken);
            }
            self.by_username.insert(name.key().to_owned(), account.id);
        }
        if let Some(device) = account.device {
            self.by_device.insert(device, account.id);
        }
        self.accounts.insert(account.id, account);
        Ok(())
    }

    /// A new account: a guest with a device secret, or a registered one.
    pub fn new_account(
        id: AccountId,
        display_name: String,
        username: Option<Username>,
        password_hash: Option<String>,
        device: Option<TokenHash>,
        now: u64,
    ) -> Account {
        Account {
            id,
            display_name,
            username,
            password_hash,
            device,
            created_ms: now,
            sessions: Vec::new(),
        }
    }

    /// Links a username and password to a guest, keeping its id and so its stats.
    pub fn register(
        &mut self,
        id: &str,
        username: Username,
        password_hash: String,
    ) -> Result<(), AccountRefused> {
        let account = self.accounts.get(id).ok_or(AccountRefused::NoAccount)?;
        if account.username.is_some() {
            return Err(AccountRefused::AlreadyRegistered);
        }
        if self.by_username.contains_key(username.key()) {
            return Err(AccountRefused::UsernameTaken);
        }
        let account_id = account.id;
        self.by_username
            .insert(username.key().to_owned(), account_id);
        let mut retired_device = None;
        if let Some(account) = self.accounts.get_mut(id) {
            if account.display_name.starts_with("guest-") {
                account.display_name = username.as_str().to_owned();
            }
            account.username = Some(username);
            account.password_hash = Some(password_hash);
            // The password replaces the device secret: a secret left on some old device must
            // not sign in, without the password, to an account that now has one.
            retired_device = account.device.take();
        }
        if let Some(device) = retired_device {
            self.by_device.remove(&device);
        }
        Ok(())
    }

    pub fn set_password_hash(&mut self, id: &str, hash: String) {
        if let Some(account) = self.accounts.get_mut(id) {
            account.password_hash = Some(hash);
        }
    }

    pub fn set_display_name(&mut self, id: &str, name: String) -> Result<(), AccountRefused> {
        let account = self.accounts.get_mut(id).ok_or(AccountRefused::NoAccount)?;
        account.display_name = name;
        Ok(())
    }

    /// Removes an account and everything keyed on it here. Returns whether it existed.
    pub fn delete(&mut self, id: &str) -> bool {
        let Some(account) = self.accounts.remove(id) else {
            return false;
        };
        if let Some(name) = &account.username {
            self.by_username.remove(name.key());
        }
        if let Some(device) = &account.device {
            self.by_device.remove(device);
        }
        for session in &account.sessions {
            self.forget_session(session);
        }
        true
    }

    /// Starts a session for `account`, ending its least recently used one past `bounds.per_account`,
    /// and past `bounds.total` the session of any account that would end soonest.
    pub fn start_session(
        &mut self,
        account: &str,
        tokens: NewTokens,
        lifetimes: &Lifetimes,
        bounds: SessionBounds,
        now: u64,
    ) -> Result<&Session, AccountRefused> {
        let max = bounds.per_account;
        let account_entry = self
            .accounts
            .get_mut(account)
            .ok_or(AccountRefused::NoAccount)?;
        let account_id = account_entry.id;
        let evicted = if account_entry.sessions.len() >= max.max(1) {
            Some(account_entry.sessions.remove(0))
        } else {
            None
        };
        account_entry.sessions.push(tokens.session);
        if let Some(evicted) = evicted {
            self.forget_session(&evicted);
        }
        let session = Session {
            id: tokens.session,
            account: account_id,
            created_ms: now,
            last_seen_ms: now,
            expires_ms: now.saturating_add(lifetimes.session_absolute),
            access: tokens.access,
            access_expires_ms: now.saturating_add(lifetimes.access_token),
            refresh: tokens.refresh,
            account_key: self.key_hasher.hash_one(account_id.as_str()),
            used_refresh: VecDeque::new(),
            filed_deadline: 0,
        };
        self.by_access.insert(tokens.access, Access::of(&session));
        self.by_refresh.insert(tokens.refresh, tokens.session);
        self.file(session, lifetimes);
        // Many accounts each holding their most sessions could outgrow memory: past the total
        // the session nearest its end goes (a user who is active has a later one).
        while self.sessions.len() > bounds.total.max(1) {
            let Some(&(_, oldest)) = self.deadlines.iter().find(|(_, id)| *id != tokens.session)
            else {
                break;
            };
            self.end_session(&oldest);
        }
        Ok(&self.sessions[&tokens.session])
    }

    /// The bearer of an access token, marking its session used. One map lookup; never
    /// allocates.
    pub fn authenticate(
        &mut self,
        access: &TokenHash,
        lifetimes: &Lifetimes,
        now: u64,
    ) -> Result<Bearer, TokenRefused> {
        // The lookup compared the hashes in constant time (`TokenHash`'s equality).
        let entry = self
            .by_access
            .get_mut(access)
            .ok_or(TokenRefused::Unknown)?;
        let deadline = entry
            .expires_ms
            .min(entry.last_seen_ms.saturating_add(lifetimes.session_idle));
        if now >= entry.access_expires_ms || now >= deadline {
            return Err(TokenRefused::Expired);
        }
        entry.last_seen_ms = now;
        Ok(entry.bearer)
    }

    /// Brings a session's `last_seen_ms` up to date from its access token's entry.
    fn catch_up(&mut self, id: &SessionId) {
        if let Some(session) = self.sessions.get_mut(id)
            && let Some(entry) = self.by_access.get(&session.access)
        {
            session.last_seen_ms = session.last_seen_ms.max(entry.last_seen_ms);
        }
    }

    /// Trades a refresh token for new tokens. A spent refresh token ends its session: whoever
    /// holds it is not the session's rightful holder, or the holder's copy was stolen.
    pub fn refresh(
        &mut self,
        refresh: &TokenHash,
        new_access: TokenHash,
        new_refresh: TokenHash,
        lifetimes: &Lifetimes,
        now: u64,
    ) -> Result<&Session, TokenRefused> {
        if let Some(session) = self.used_refresh.get(refresh).copied() {
            self.end_session(&session);
            return Err(TokenRefused::Reused);
        }
        let id = *self.by_refresh.get(refresh).ok_or(TokenRefused::Unknown)?;
        self.catch_up(&id);
        let session = self.sessions.get_mut(&id).ok_or(TokenRefused::Unknown)?;
        if now >= session.deadline(lifetimes) {
            return Err(TokenRefused::Expired);
        }
        let old_access = std::mem::replace(&mut session.access, new_access);
        let old_refresh = std::mem::replace(&mut session.refresh, new_refresh);
        session.access_expires_ms = now.saturating_add(lifetimes.access_token);
        session.last_seen_ms = now;
        session.used_refresh.push_back(old_refresh);
        let forgotten = (session.used_refresh.len() > USED_REFRESH_KEPT)
            .then(|| session.used_refresh.pop_front())
            .flatten();
        let account = session.account;
        let entry = Access::of(session);
        self.by_access.remove(&old_access);
        self.by_refresh.remove(&old_refresh);
        self.by_access.insert(new_access, entry);
        self.by_refresh.insert(new_refresh, id);
        self.used_refresh.insert(old_refresh, id);
        if let Some(forgotten) = forgotten {
            self.used_refresh.remove(&forgotten);
        }
        if let Some(entry) = self.accounts.get_mut(&account) {
            // Most recently used last, so the session limit ends the stalest.
            entry.sessions.retain(|other| *other != id);
            entry.sessions.push(id);
        }
        Ok(&self.sessions[&id])
    }

    /// Ends a session (logout, revocation). Returns whether it existed.
    pub fn end_session(&mut self, id: &SessionId) -> bool {
        let Some(account) = self.sessions.get(id).map(|session| session.account) else {
            return false;
        };
        if let Some(entry) = self.accounts.get_mut(&account) {
            entry.sessions.retain(|other| other != id);
        }
        self.forget_session(id);
        true
    }

    /// An account's sessions, most recently used last, each with its latest use.
    pub fn sessions_of(&self, account: &str) -> Vec<Session> {
        self.accounts.get(account).map_or_else(Vec::new, |entry| {
            entry
                .sessions
                .iter()
                .filter_map(|id| self.sessions.get(id))
                .map(|session| {
                    let mut session = session.clone();
                    if let Some(entry) = self.by_access.get(&session.access) {
                        session.last_seen_ms = session.last_seen_ms.max(entry.last_seen_ms);
                    }
                    session
                })
                .collect()
        })
    }

    /// The access tokens (hashes) of an account's sessions, with when each expires.
    pub fn access_tokens_of(&self, account: &str) -> Vec<(TokenHash, u64)> {
        self.sessions_of(account)
            .into_iter()
            .map(|session| (session.access, session.access_expires_ms))
            .collect()
    }

    pub fn session(&self, id: &SessionId) -> Option<&Session> {
        self.sessions.get(id)
    }

    /// Ends every session whose deadline has passed; returns how many ended. A session used
    /// since it was filed is filed again under its new deadline.
    pub fn sweep(&mut self, lifetimes: &Lifetimes, now: u64) -> usize {
        let mut ended = 0;
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            self.catch_up(&id);
            let Some(session) = self.sessions.get_mut(&id) else {
                continue;
            };
            let current = session.deadline(lifetimes);
            if current > now {
                session.filed_deadline = current;
                self.deadlines.insert((current, id));
                continue;
            }
            self.end_session(&id);
            ended += 1;
        }
        ended
    }

    fn file(&mut self, mut session: Session, lifetimes: &Lifetimes) {
        session.filed_deadline = session.deadline(lifetimes);
        self.deadlines.insert((session.filed_deadline, session.id));
        self.sessions.insert(session.id, session);
    }

    /// Removes a session and its indexes (not its place in its account's list).
    fn forget_session(&mut self, id: &SessionId) {
        let Some(session) = self.sessions.remove(id) else {
            return;
        };
        self.by_access.remove(&session.access);
        self.by_refresh.remove(&session.refresh);
        for used in &session.used_refresh {
            self.used_refresh.remove(used);
        }
        self.deadlines.remove(&(session.filed_deadline, *id));
    }

    /// Every index agrees with the tables: for tests.
    #[cfg(test)]
    pub fn check_consistent(&self) {
        for (id, session) in &self.sessions {
            let access = &self.by_access[&session.access];
            assert_eq!(access.bearer.session, *id);
            assert_eq!(access.bearer.account, session.account);
            assert_eq!(access.access_expires_ms, session.access_expires_ms);
            assert_eq!(self.by_refresh.get(&session.refresh), Some(id));
            assert!(self.deadlines.contains(&(session.filed_deadline, *id)));
            assert!(self.accounts[&session.account].sessions.contains(id));
            for used in &session.used_refresh {
                assert_eq!(self.used_refresh.get(used), Some(id));
            }
        }
        assert_eq!(self.by_access.len(), self.sessions.len());
        assert_eq!(self.by_refresh.len(), self.sessions.len());
        assert_eq!(self.deadlines.len(), self.sessions.len());
        let used: usize = self.sessions.values().map(|s| s.used_refresh.len()).sum();
        assert_eq!(self.used_refresh.len(), used);
        for account in self.accounts.values() {
            for session in &account.sessions {
                assert!(self.sessions.contains_key(session));
            }
        }
    }
}

#[cfg(test)]
#[path = "tables_tests.rs"]
mod tests;

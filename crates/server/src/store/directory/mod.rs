//! Accounts and sessions in Redis: the directory every instance shares, so a session started
//! on one instance is good on all of them and survives restarts.
//!
//! The accounts module keeps the rules (who may sign in, what a session allows); this module
//! only knows keys and values, and holds no account types of its own (the store sits below
//! the accounts in the module order). Token material never reaches Redis: only the lowercase
//! hex of a token's BLAKE3 hash does.
//!
//! Key layout (every operation touches one key per command, or two keys of one hash slot in a
//! script, so Redis Cluster needs nothing more):
//! - `gg:acct:{<id>}`: hash of an account: `name`, `user` (username as typed, absent for a
//!   guest), `pw` (Argon2id PHC string), `dev` (device secret's hash), `created`. A guest's
//!   account expires `guest_retention` after its latest sign-in; a registered one never.
//! - `gg:acct:{<id>}:sessions`: sorted set of the account's session ids, scored by deadline.
//! - `gg:user:<fold>`: the account id of a username (by its case fold); `SET NX` makes
//!   usernames unique across instances.
//! - `gg:dev:<hash>`: the account id of a device secret.
//! - `gg:sess:{<id>}`: hash of a session: `acct`, `created`, `seen`, `expires` (absolute end),
//!   `access`, `refresh` (current tokens' hashes), `key` unused by Redis; it expires at the
//!   session's deadline (idle or absolute, the earlier).
//! - `gg:tok:<hash>`: an access token: `<session> <account> <access expiry ms>`, expiring
//!   with the token (or the session, if sooner). One `GET` verifies a token.
//! - `gg:{ref:<hash>}:live` / `gg:{ref:<hash>}:spent`: a refresh token before and after its
//!   use, in one slot so one script trades one for the other atomically: of two instances
//!   presented the same refresh token, exactly one rotates it and the other sees it spent.
//! - `gg:gone:<hash>`: an access token whose account was deleted, until it would have
//!   expired: a repeated `DELETE /me` is answered as the first was.
//! - `gg:census:accounts`, `gg:census:sessions`: sorted sets of ids by expiry (guests and
//!   sessions) or `+inf` (registered accounts), for the gauges: trimmed by every instance's
//!   sweep, counted with `ZCARD`.

use std::collections::HashMap;

use redis::Script;

mod sessions;

use super::StoreError;
use super::redis::Connection;
use sessions::{END_SCRIPT, ROTATE_SCRIPT};

/// Sets fields of a hash only if it exists and is not being ended: renaming a deleted account
/// must not bring back a partial one, nor a refresh racing a sign-out a session. KEYS: the
/// hash. ARGV: field, value pairs. Returns 1 if set.
const UPDATE_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[1], 'ended') == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
";

/// Gives a guest a username and password in one step. KEYS: the account. ARGV: username,
/// password hash, the display name to take if the current one is a guest's. Returns the
/// retired device hash (or ''), 0 if there is no account, -1 if it already has a username.
const REGISTER_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[1], 'user') == 1 then return -1 end
redis.call('HSET', KEYS[1], 'user', ARGV[1], 'pw', ARGV[2])
local name = redis.call('HGET', KEYS[1], 'name') or ''
if string.sub(name, 1, 6) == 'guest-' then redis.call('HSET', KEYS[1], 'name', ARGV[3]) end
redis.call('PERSIST', KEYS[1])
local device = redis.call('HGET', KEYS[1], 'dev') or ''
redis.call('HDEL', KEYS[1], 'dev')
return device
";

/// An account as Redis holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredAccount {
    pub id: String,
    pub display_name: String,
    pub username: Option<String>,
    pub password_hash: Option<String>,
    pub device: Option<String>,
    pub created_ms: u64,
}

/// A session as Redis holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredSession {
    pub id: String,
    pub account: String,
    pub created_ms: u64,
    pub last_seen_ms: u64,
    pub expires_ms: u64,
    pub access: String,
    pub refresh: String,
}

/// What registering a guest did.
#[derive(Debug, PartialEq, Eq)]
pub enum Registration {
    Registered,
    NoAccount,
    AlreadyRegistered,
}

/// What a presented refresh token turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum Rotation {
    /// It was live; now it is spent. Its session.
    Rotated {
        session: String,
    },
    /// It had been spent already: whoever holds it is not the session's holder.
    Reused {
        session: String,
    },
    Unknown,
}

/// What an access token is, as one round trip tells.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenRecord {
    Live {
        session: String,
        account: String,
        expires_ms: u64,
    },
    /// Its account was deleted.
    Deleted {
        account: String,
    },
    Unknown,
}

/// The tokens a new or refreshed session gets, as hashes, with their deadlines.
#[derive(Clone, Debug)]
pub struct SessionTokens<'a> {
    pub session: &'a str,
    pub account: &'a str,
    pub access: &'a str,
    pub access_expires_ms: u64,
    pub refresh: &'a str,
    /// The session's deadline (idle or absolute, the earlier).
    pub deadline_ms: u64,
    /// The session's absolute end.
    pub expires_ms: u64,
}

fn account_key(id: &str) -> String {
    format!("gg:acct:{{{id}}}")
}

fn account_sessions_key(id: &str) -> String {
    format!("gg:acct:{{{id}}}:sessions")
}

fn username_key(fold: &str) -> String {
    format!("gg:user:{fold}")
}

fn device_key(hash: &str) -> String {
    format!("gg:dev:{hash}")
}

fn session_key(id: &str) -> String {
    format!("gg:sess:{{{id}}}")
}

fn access_key(hash: &str) -> String {
    format!("gg:tok:{hash}")
}

fn refresh_keys(hash: &str) -> (String, String) {
    (
        format!("gg:{{ref:{hash}}}:live"),
        format!("gg:{{ref:{hash}}}:spent"),
    )
}

fn gone_key(hash: &str) -> String {
    format!("gg:gone:{hash}")
}

/// How long a username claim lasts before the account holding it is written.
const CLAIM_LEASE_MS: u64 = 60_000;

const ACCOUNT_CENSUS: &str = "gg:census:accounts";
const SESSION_CENSUS: &str = "gg:census:sessions";

/// The accounts' view of Redis. Cheap to clone: the connection multiplexes.
#[derive(Clone)]
pub struct Directory {
    connection: Connection,
    rotate: Script,
    update: Script,
    end: Script,
    register: Script,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory").finish_non_exhaustive()
    }
}

fn number(fields: &HashMap<String, String>, name: &str) -> u64 {
    fields
        .get(name)
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

impl Directory {
    pub(super) fn new(connection: Connection) -> Self {
        Self {
            connection,
            rotate: Script::new(ROTATE_SCRIPT),
            update: Script::new(UPDATE_SCRIPT),
            end: Script::new(END_SCRIPT),
            register: Script::new(REGISTER_SCRIPT),
        }
    }

    fn connection(&self) -> Connection {
        self.connection.clone()
    }

    /// Runs a command whose reply says nothing the caller needs.
    async fn exec(&self, command: &redis::Cmd) -> Result<(), StoreError> {
        let () = command.query_async(&mut self.connection()).await?;
        Ok(())
    }

    /// Claims `fold` for `account` for [`CLAIM_LEASE_MS`]; false when another account has
    /// it. The claim lapses by itself unless [`Self::keep_username`] makes it permanent once
    /// the account holds the name, so a creation abandoned half-way (a failure, or its future
    /// dropped) does not keep the name from everyone for good.
    pub async fn claim_username(&self, fold: &str, account: &str) -> Result<bool, StoreError> {
        let claimed: Option<String> = redis::cmd("SET")
            .arg(username_key(fold))
            .arg(account)
            .arg("NX")
            .arg("PX")
            .arg(CLAIM_LEASE_MS)
            .query_async(&mut self.connection())
            .await?;
        Ok(claimed.is_some())
    }

    /// Makes a claim permanent: the account now holds the name.
    pub async fn keep_username(&self, fold: &str) -> Result<(), StoreError> {
        self.exec(redis::cmd("PERSIST").arg(username_key(fold)))
            .await
    }

    /// Gives `fold` up, if `account` holds it (a creation that failed after claiming it).
    pub async fn release_username(&self, fold: &str, account: &str) -> Result<(), StoreError> {
        let holder: Option<String> = redis::cmd("GET")
            .arg(username_key(fold))
            .query_async(&mut self.connection())
            .await?;
        if holder.as_deref() == Some(account) {
            self.exec(redis::cmd("DEL").arg(username_key(fold))).await?;
        }
        Ok(())
    }

    /// Writes a new account (its username already claimed). A guest's keys expire after
    /// `guest_retention_ms` unless it signs in again.
    pub async fn create_account(
        &self,
        account: &StoredAccount,
        guest_retention_ms: u64,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let key = account_key(&account.id);
        let mut command = redis::cmd("HSET");
        command
            .arg(&key)
            .arg("name")
            .arg(&account.display_name)
            .arg("created")
            .arg(account.created_ms);
        if let Some(username) = &account.username {
            command.arg("user").arg(username);
        }
        if let Some(hash) = &account.password_hash {
            command.arg("pw").arg(hash);
        }
        if let Some(device) = &account.device {
            command.arg("dev").arg(device);
        }
        self.exec(&command).await?;
        let guest = account.username.is_none();
        let census_score = if guest {
            (now_ms.saturating_add(guest_retention_ms)).to_string()
        } else {
            "+inf".to_owned()
        };
        if guest {
            self.exec(redis::cmd("PEXPIRE").arg(&key).arg(guest_retention_ms))
                .await?;
        }
        if let Some(device) = &account.device {
            self.exec(
                redis::cmd("SET")
                    .arg(device_key(device))
                    .arg(&account.id)
                    .arg("PX")
                    .arg(guest_retention_ms),
            )
            .await?;
        }
        self.exec(
            redis::cmd("ZADD")
                .arg(ACCOUNT_CENSUS)
                .arg(census_score)
                .arg(&account.id),
        )
        .await?;
        Ok(())
    }

    pub async fn account(&self, id: &str) -> Result<Option<StoredAccount>, StoreError> {
        let fields: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(account_key(id))
            .query_async(&mut self.connection())
            .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        Ok(Some(StoredAccount {
            id: id.to_owned(),
            display_name: fields.get("name").cloned().unwrap_or_default(),
            username: fields.get("user").cloned(),
            password_hash: fields.get("pw").cloned(),
            device: fields.get("dev").cloned(),
            created_ms: number(&fields, "created"),
        }))
    }

    /// The account holding a username (by its fold) or a device secret (by its hash).
    pub async fn account_by_username(
        &self,
        fold: &str,
    ) -> Result<Option<StoredAccount>, StoreError> {
        self.account_by_index(username_key(fold)).await
    }

    pub async fn account_by_device(&self, hash: &str) -> Result<Option<StoredAccount>, StoreError> {
        self.account_by_index(device_key(hash)).await
    }

    async fn account_by_index(&self, key: String) -> Result<Option<StoredAccount>, StoreError> {
        let id: Option<String> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut self.connection())
            .await?;
        match id {
            Some(id) => self.account(&id).await,
            None => Ok(None),
        }
    }

    /// Gives a guest a username and password (its username already claimed): it stops
    /// expiring and its device secret retires (a password now guards the account), in one
    /// script. Ok(false) if the account is gone, Err(()) inside Ok if it already has one.
    pub async fn register(
        &self,
        id: &str,
        username: &str,
        password_hash: &str,
    ) -> Result<Registration, StoreError> {
        let reply: redis::Value = self
            .register
            .key(account_key(id))
            .arg(username)
            .arg(password_hash)
            .arg(username)
            .invoke_async(&mut self.connection())
            .await?;
        let device = match reply {
            redis::Value::Int(0) => return Ok(Registration::NoAccount),
            redis::Value::Int(_) => return Ok(Registration::AlreadyRegistered),
            redis::Value::BulkString(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            redis::Value::SimpleString(text) => text,
            _ => String::new(),
        };
        if !device.is_empty() {
            self.exec(redis::cmd("DEL").arg(device_key(&device)))
                .await?;
        }
        self.exec(redis::cmd("ZADD").arg(ACCOUNT_CENSUS).arg("+inf").arg(id))
            .await?;
        Ok(Registration::Registered)
    }

    /// Sets fields of an existing account; false if it is gone.
    pub async fn update_account(
        &self,
        id: &str,
        fields: &[(&str, &str)],
    ) -> Result<bool, StoreError> {
        let mut invocation = self.update.key(account_key(id));
        for (name, value) in fields {
            invocation.arg(*name).arg(*value);
        }
        let updated: i64 = invocation.invoke_async(&mut self.connection()).await?;
        Ok(updated == 1)
    }

    /// Keeps a guest (and its device secret) another `retention_ms` from now.
    pub async fn keep_guest(
        &self,
        account: &StoredAccount,
        retention_ms: u64,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        if account.username.is_some() {
            return Ok(());
        }
        self.exec(
            redis::cmd("PEXPIRE")
                .arg(account_key(&account.id))
                .arg(retention_ms),
        )
        .await?;
        if let Some(device) = &account.device {
            self.exec(
                redis::cmd("PEXPIRE")
                    .arg(device_key(device))
                    .arg(retention_ms),
            )
            .await?;
        }
        self.exec(
            redis::cmd("ZADD")
                .arg(ACCOUNT_CENSUS)
                .arg(now_ms.saturating_add(retention_ms))
                .arg(&account.id),
        )
        .await?;
        Ok(())
    }

    /// Erases an account's own keys (its sessions are ended by the caller first).
    pub async fn delete_account(
        &self,
        account: &StoredAccount,
        username_fold: Option<&str>,
    ) -> Result<(), StoreError> {
        if let Some(fold) = username_fold {
            self.release_username(fold, &account.id).await?;
        }
        let mut keys = vec![account_key(&account.id), account_sessions_key(&account.id)];
        if let Some(device) = &account.device {
            keys.push(device_key(device));
        }
        for key in keys {
            self.exec(redis::cmd("DEL").arg(key)).await?;
        }
        self.exec(redis::cmd("ZREM").arg(ACCOUNT_CENSUS).arg(&account.id))
            .await?;
        Ok(())
    }

    /// Trims the census of what has expired and counts what is left: (accounts, sessions).
    pub async fn census(&self, now_ms: u64) -> Result<(u64, u64), StoreError> {
        let mut counts = [0; 2];
        for (count, key) in counts.iter_mut().zip([ACCOUNT_CENSUS, SESSION_CENSUS]) {
            self.exec(
                redis::cmd("ZREMRANGEBYSCORE")
                    .arg(key)
                    .arg("-inf")
                    .arg(now_ms),
            )
            .await?;
            *count = redis::cmd("ZCARD")
                .arg(key)
                .query_async(&mut self.connection())
                .await?;
        }
        Ok((counts[0], counts[1]))
    }
}

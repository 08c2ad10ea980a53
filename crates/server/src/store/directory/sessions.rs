//! Sessions in the directory: filing a session's tokens, verifying an access token, spending
//! and rotating a refresh token, ending a session. The key layout is in the parent module.

use super::{
    Directory, Rotation, SESSION_CENSUS, SessionTokens, StoredSession, TokenRecord, access_key,
    account_sessions_key, gone_key, number, refresh_keys, session_key,
};
use std::collections::HashMap;

use crate::store::StoreError;

/// Trades a live refresh token for spent, atomically. KEYS: live, spent. ARGV: the latest
/// time the spent record may be kept (Unix ms). Returns `{1, value}` when it was live,
/// `{2, session}` when it was already spent, `{0}` when neither. The spent record lives until
/// the session's absolute end (in the value) or ARGV[1], the earlier: a client refreshing in a
/// loop leaves as many spent records as fit in that window, not one per refresh for 30 days
/// (the memory backend keeps the last 16 per session).
pub(super) const ROTATE_SCRIPT: &str = r"
local live = redis.call('GETDEL', KEYS[1])
if live then
  local session, expires = string.match(live, '^(%S+) (%d+)$')
  if session then
    local until_ms = math.min(tonumber(expires), tonumber(ARGV[1]))
    redis.call('SET', KEYS[2], session, 'PXAT', until_ms)
  end
  return {1, live}
end
local spent = redis.call('GET', KEYS[2])
if spent then return {2, spent} end
return {0}
";

/// Marks a session ended and returns its fields, atomically: a refresh that has not yet
/// written its new tokens will see the mark and stop. KEYS: the session. Returns
/// `{account, access, refresh}`, or nil when there is no session.
pub(super) const END_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
redis.call('HSET', KEYS[1], 'ended', '1')
return redis.call('HMGET', KEYS[1], 'acct', 'access', 'refresh')
";

impl Directory {
    /// Files a session's tokens: the session hash, its access and refresh tokens, its place
    /// in the account's list. Returns the ids of the account's sessions beyond
    /// `max_per_account` (those nearest their end), for the caller to end.
    pub async fn start_session(
        &self,
        tokens: &SessionTokens<'_>,
        now_ms: u64,
        max_per_account: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.exec(
            redis::cmd("HSET")
                .arg(session_key(tokens.session))
                .arg("acct")
                .arg(tokens.account)
                .arg("created")
                .arg(now_ms)
                .arg("seen")
                .arg(now_ms)
                .arg("expires")
                .arg(tokens.expires_ms)
                .arg("access")
                .arg(tokens.access)
                .arg("refresh")
                .arg(tokens.refresh),
        )
        .await?;
        self.file_tokens(tokens).await?;
        let sessions = account_sessions_key(tokens.account);
        // The list outlives every session in it: none ends after this new one's absolute end.
        self.exec(
            redis::cmd("PEXPIREAT")
                .arg(&sessions)
                .arg(tokens.expires_ms),
        )
        .await?;
        // Sessions that ended on their own leave the account's list here.
        self.exec(
            redis::cmd("ZREMRANGEBYSCORE")
                .arg(&sessions)
                .arg("-inf")
                .arg(now_ms),
        )
        .await?;
        let count: usize = redis::cmd("ZCARD")
            .arg(&sessions)
            .query_async(&mut self.connection())
            .await?;
        if count <= max_per_account.max(1) {
            return Ok(Vec::new());
        }
        let extra = count - max_per_account.max(1);
        let oldest: Vec<String> = redis::cmd("ZRANGE")
            .arg(&sessions)
            .arg(0)
            .arg(extra)
            .query_async(&mut self.connection())
            .await?;
        Ok(oldest
            .into_iter()
            .filter(|id| id != tokens.session)
            .take(extra)
            .collect())
    }

    /// Writes a session's current tokens and deadline (a start or a refresh).
    async fn file_tokens(&self, tokens: &SessionTokens<'_>) -> Result<(), StoreError> {
        self.exec(
            redis::cmd("PEXPIREAT")
                .arg(session_key(tokens.session))
                .arg(tokens.deadline_ms),
        )
        .await?;
        self.exec(
            redis::cmd("SET")
                .arg(access_key(tokens.access))
                .arg(format!(
                    "{} {} {}",
                    tokens.session, tokens.account, tokens.access_expires_ms
                ))
                .arg("PXAT")
                .arg(tokens.access_expires_ms.min(tokens.deadline_ms)),
        )
        .await?;
        let (live, _) = refresh_keys(tokens.refresh);
        self.exec(
            redis::cmd("SET")
                .arg(live)
                .arg(format!("{} {}", tokens.session, tokens.expires_ms))
                .arg("PXAT")
                .arg(tokens.deadline_ms),
        )
        .await?;
        for (key, member) in [
            (account_sessions_key(tokens.account), tokens.session),
            (SESSION_CENSUS.to_owned(), tokens.session),
        ] {
            self.exec(
                redis::cmd("ZADD")
                    .arg(key)
                    .arg(tokens.deadline_ms)
                    .arg(member),
            )
            .await?;
        }
        Ok(())
    }

    /// One round trip: what an access token (by hash) is. Two `GET`s sent together over the
    /// multiplexed connection (not a pipeline: on a cluster the keys sit in different slots).
    pub async fn token(&self, access: &str) -> Result<TokenRecord, StoreError> {
        let (mut first, mut second) = (self.connection(), self.connection());
        let (live_key, gone_key) = (access_key(access), gone_key(access));
        let mut live_command = redis::cmd("GET");
        live_command.arg(&live_key);
        let mut gone_command = redis::cmd("GET");
        gone_command.arg(&gone_key);
        let (live, gone) = futures_util::future::join(
            live_command.query_async::<Option<String>>(&mut first),
            gone_command.query_async::<Option<String>>(&mut second),
        )
        .await;
        let (live, gone) = (live?, gone?);
        if let Some(live) = live {
            let mut parts = live.split(' ');
            if let (Some(session), Some(account), Some(expires)) =
                (parts.next(), parts.next(), parts.next())
            {
                return Ok(TokenRecord::Live {
                    session: session.to_owned(),
                    account: account.to_owned(),
                    expires_ms: expires.parse().unwrap_or(0),
                });
            }
        }
        Ok(match gone {
            Some(account) => TokenRecord::Deleted { account },
            None => TokenRecord::Unknown,
        })
    }

    /// Spends a refresh token (by hash), atomically across instances.
    pub async fn spend_refresh(
        &self,
        refresh: &str,
        spent_until_ms: u64,
    ) -> Result<Rotation, StoreError> {
        let (live, spent) = refresh_keys(refresh);
        let reply: Vec<redis::Value> = self
            .rotate
            .key(live)
            .key(spent)
            .arg(spent_until_ms.max(1))
            .invoke_async(&mut self.connection())
            .await?;
        let text = |value: Option<&redis::Value>| match value {
            Some(redis::Value::BulkString(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
            Some(redis::Value::SimpleString(text)) => text.clone(),
            _ => String::new(),
        };
        let session_of = |value: String| value.split(' ').next().unwrap_or_default().to_owned();
        Ok(match reply.first() {
            Some(redis::Value::Int(1)) => Rotation::Rotated {
                session: session_of(text(reply.get(1))),
            },
            Some(redis::Value::Int(2)) => Rotation::Reused {
                session: session_of(text(reply.get(1))),
            },
            _ => Rotation::Unknown,
        })
    }

    /// Moves a session to new tokens after its refresh token was spent: the old access token
    /// stops working at once.
    /// Returns false when the session ended meanwhile (a sign-out or a reuse detected on
    /// another instance): then no new token is left working.
    pub async fn rotate(
        &self,
        old_access: &str,
        tokens: &SessionTokens<'_>,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        self.exec(redis::cmd("DEL").arg(access_key(old_access)))
            .await?;
        let now = now_ms.to_string();
        let session = session_key(tokens.session);
        let updated: i64 = self
            .update
            .key(&session)
            .arg("access")
            .arg(tokens.access)
            .arg("refresh")
            .arg(tokens.refresh)
            .arg("seen")
            .arg(&now)
            .invoke_async(&mut self.connection())
            .await?;
        if updated == 0 {
            return Ok(false);
        }
        self.file_tokens(tokens).await?;
        // An end that marked the session after the update above has deleted the tokens it
        // read, perhaps before they were filed: look again, and take them back if so.
        let (current, ended): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(&session)
            .arg("access")
            .arg("ended")
            .query_async(&mut self.connection())
            .await?;
        if current.as_deref() == Some(tokens.access) && ended.is_none() {
            return Ok(true);
        }
        let (live, _) = refresh_keys(tokens.refresh);
        for key in [access_key(tokens.access), live] {
            self.exec(redis::cmd("DEL").arg(key)).await?;
        }
        Ok(false)
    }

    pub async fn session(&self, id: &str) -> Result<Option<StoredSession>, StoreError> {
        let fields: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(session_key(id))
            .query_async(&mut self.connection())
            .await?;
        if fields.is_empty() || fields.contains_key("ended") {
            return Ok(None);
        }
        let text = |name: &str| fields.get(name).cloned().unwrap_or_default();
        Ok(Some(StoredSession {
            id: id.to_owned(),
            account: text("acct"),
            created_ms: number(&fields, "created"),
            last_seen_ms: number(&fields, "seen"),
            expires_ms: number(&fields, "expires"),
            access: text("access"),
            refresh: text("refresh"),
        }))
    }

    /// An account's sessions that have not ended.
    pub async fn sessions_of(&self, account: &str) -> Result<Vec<StoredSession>, StoreError> {
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(account_sessions_key(account))
            .arg(0)
            .arg(-1)
            .query_async(&mut self.connection())
            .await?;
        let mut sessions = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(session) = self.session(&id).await? {
                sessions.push(session);
            }
        }
        Ok(sessions)
    }

    /// Ends a session: its tokens stop working. Returns (account, access hash) if it
    /// existed. The session is marked ended first (atomically with reading its tokens), its
    /// tokens go next and its record last, so a failure half-way leaves a record a retry can
    /// finish, never a working token without one.
    pub async fn end_session(&self, id: &str) -> Result<Option<(String, String)>, StoreError> {
        let key = session_key(id);
        let fields: Option<Vec<Option<String>>> = self
            .end
            .key(&key)
            .invoke_async(&mut self.connection())
            .await?;
        let Some(fields) = fields else {
            return Ok(None);
        };
        let field = |index: usize| fields.get(index).cloned().flatten().unwrap_or_default();
        let (account, access, refresh) = (field(0), field(1), field(2));
        let (live, _) = refresh_keys(&refresh);
        for key in [access_key(&access), live, key] {
            self.exec(redis::cmd("DEL").arg(key)).await?;
        }
        for key in [account_sessions_key(&account), SESSION_CENSUS.to_owned()] {
            self.exec(redis::cmd("ZREM").arg(key).arg(id)).await?;
        }
        Ok(Some((account, access)))
    }

    /// Remembers that `access` (by hash) belonged to `account`, deleted, until `until_ms`.
    pub async fn bury_token(
        &self,
        access: &str,
        account: &str,
        until_ms: u64,
    ) -> Result<(), StoreError> {
        self.exec(
            redis::cmd("SET")
                .arg(gone_key(access))
                .arg(account)
                .arg("PXAT")
                .arg(until_ms.max(1)),
        )
        .await?;
        Ok(())
    }
}

//! Real-time play shared by instances through Redis: what crosses between them and how it is
//! kept. The hub's side (which instance does what, when) is `hub/cluster.rs`; this module is
//! the wire (envelopes), the key layout and the scripts, and knows nothing of the hub.
//!
//! Key layout (`{...}` is a Redis Cluster hash tag: every key of one match shares one slot, the
//! queue shares another, ratings and results a third):
//! - `gg:{m:<id>}:log`: list; entry 0 is the match's [`Meta`] (who sits where), then every
//!   event of its log in order, the server-only `MoveSealed` entries included (a new owner needs
//!   them to carry a round on). Expires [`LOG_TTL`] after its latest write, so a resume finds it.
//! - `gg:{m:<id>}:fence`: the fencing token, raised by each instance that takes the match.
//!   Every write to the log checks it, so an owner that lost the match cannot write again.
//! - `gg:{m:<id>}:lease`: the owner's instance id, expiring [`Cluster::lease`] after its latest
//!   renewal; the match moves once it has expired.
//! - `gg:inbox:<instance>`: stream of [`Envelope`]s for one instance (its only reader).
//! - `gg:{mm}:q:<mode>` (sorted set by rating) and `gg:{mm}:t` (hash ticket id to ticket):
//!   the shared queue; a ticket leaves it only through a script, so it is taken once.
//! - `gg:{rt}:ratings` (hash account to rating), `gg:{rt}:recorded` (sorted set of match ids
//!   by when recorded, trimmed after [`RECORDED_KEPT_MS`]), `gg:{rt}:results` (stream of
//!   results): a match's result and both ratings change in one script, once.
//! - `gg:seat:<account>`: the match an account sits in, `gg:resume:<token hash>`: the
//!   account a resume token belongs to; `gg:inst:<instance>`: an instance's census, expiring
//!   when it stops renewing it.
//!
//! Streams rather than pub/sub: a pub/sub message published while a subscriber reconnects is
//! gone, and a stream entry waits for its reader. An instance that died leaves its inbox
//! unread; its players resume elsewhere from the match's log, which is the truth.

use std::time::Duration;

use game::matches::{Event, MatchConfig, Mode, PerSeat};
use game::rating::Rating;
use protocol::{ClientMessage, MoveMode, Opponent, ServerMessage};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Script, Value};
use serde::{Deserialize, Serialize};

/// How long a match's lease lasts without renewal: how soon a lost owner's matches move.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(3);
/// How long a log outlives its latest write: a player may resume a match (or see its end) for
/// this long.
pub const LOG_TTL: Duration = Duration::from_secs(3600);
/// How long a resume token is honoured on any instance.
pub const RESUME_TTL: Duration = Duration::from_secs(24 * 3600);
/// Match ids recorded are remembered this long (a result cannot be recorded twice within it).
const RECORDED_KEPT_MS: u64 = 7 * 24 * 3600 * 1000;
/// Entries an inbox keeps (approximately): a reader far behind this lost its players anyway.
const INBOX_KEPT: usize = 100_000;
/// Results the results stream keeps.
const RESULTS_KEPT: usize = 100_000;

/// What one instance sends another.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Envelope {
    /// Gateway to owner: a seated player's message.
    Forward {
        from: String,
        account: String,
        link: u64,
        message: ClientMessage,
        /// Sent again (to an owner found anew) after the first went unanswered: applied
        /// only if this owner has not applied it already.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        resent: bool,
    },
    /// Gateway to owner: the player's connection ended.
    Detach {
        from: String,
        account: String,
        link: u64,
    },
    /// Gateway to owner: the player (re)connected at `from` and takes its seat back.
    Attach {
        from: String,
        account: String,
        name: String,
        link: u64,
        how: Rejoin,
    },
    /// Gateway to owner: a connection at `from` watches the match.
    Spectate {
        from: String,
        account: String,
        link: u64,
        request: Option<u64>,
        match_id: String,
    },
    /// Gateway to owner: that connection stopped watching (or closed).
    Unspectate {
        from: String,
        link: u64,
        match_id: String,
    },
    /// Owner to gateway: messages for one connection. `release` ends the relay (the match
    /// is over for the player, or the owner let it go); `close` closes the connection.
    Deliver {
        from: String,
        account: String,
        link: u64,
        messages: Vec<ServerMessage>,
        release: bool,
        close: Option<u16>,
        /// The match the relay last carried messages of, with `release`: a gateway whose
        /// player has moved on to another match ignores a late release of the old one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        of_match: Option<String>,
        /// For a spectator of a match run at `from`, not a player.
        #[serde(default)]
        spectator: bool,
    },
}

/// How a player takes its seat back at the owner.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "how", rename_all = "snake_case")]
pub enum Rejoin {
    /// The player said hello (a new device, a reload): `welcome`, `matched`, the whole log.
    Hello { request: Option<u64> },
    /// The player resumed with a token its gateway checked: `resumed` and what it missed.
    Resume {
        request: Option<u64>,
        last_seq: Option<u64>,
    },
    /// The match moved (its owner was lost): the events after `last_seq`, no answer.
    Follow { last_seq: Option<u64> },
}

/// A queued ticket as the shared queue keeps it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SharedTicket {
    pub id: String,
    pub account: String,
    pub name: String,
    /// The instance the player is connected to.
    pub gateway: String,
    /// Its connection there.
    pub link: u64,
    pub mode: Mode,
    pub opponent: Opponent,
    pub moves: MoveMode,
    pub rating: Rating,
    pub queued_ms: u64,
    pub expires_ms: u64,
    pub bot_at_ms: Option<u64>,
}

/// Who sits where in a match: entry 0 of its log.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Meta {
    pub config: MatchConfig,
    pub seats: PerSeat<SeatMeta>,
    pub fallback: bool,
    pub started_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SeatMeta {
    Human {
        account: String,
        name: String,
        rating: Rating,
    },
    Bot {
        arm: usize,
        name: String,
        rating: f64,
    },
}

/// What taking a match found.
#[derive(Debug)]
pub struct Taken {
    pub fence: u64,
    pub meta: Meta,
    pub events: Vec<Event>,
}

/// What Redis knows of an account about to be greeted.
#[derive(Debug, Default)]
pub struct Located {
    /// The account the resume token was issued to (when one was given).
    pub owner_of_token: Option<String>,
    /// The match the account sits in.
    pub seat: Option<String>,
    /// Messages its last connection missed (see [`Write::Missed`]), oldest first; read (and
    /// taken) only with a resume token.
    pub missed: Vec<ServerMessage>,
}

/// Why a write to a match's log was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Another instance took the match (the fencing token moved on).
    Fenced,
    /// The log is not the length this owner wrote it to.
    Diverged,
    /// This owner could not renew the lease before it ran out (cut off from Redis): another
    /// instance may run the match now, so this one stops.
    Lapsed,
}

/// A failure to reach Redis or an answer that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis reply: {0}")]
    Reply(#[from] redis::ParsingError),
    #[error("timed out")]
    Timeout,
    #[error("unreadable entry in Redis: {0}")]
    Corrupt(String),
}

/// Writes `items` after checking the fencing token and the log's length; renews the lease and
/// keeps the fencing token as long as the log. KEYS: lease, fence, log. ARGV: fence, instance,
/// lease ms, log ttl ms, expected length, items. Returns the new length, -1 when fenced, -2
/// when the log diverged. A retry of an append whose reply was lost finds its first item in
/// place and succeeds without writing.
const APPEND_SCRIPT: &str = r"
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
local n = redis.call('LLEN', KEYS[3])
local expected = tonumber(ARGV[5])
if n ~= expected then
  if n > expected and redis.call('LINDEX', KEYS[3], expected) == ARGV[6] then return n end
  return -2
end
local n2 = redis.call('RPUSH', KEYS[3], unpack(ARGV, 6))
redis.call('PEXPIRE', KEYS[3], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return n2
";

/// Starts a match's log with fencing token 1 and takes its lease. KEYS: lease, fence, log.
/// ARGV: instance, lease ms, log ttl ms, items. Returns 1, or 0 if the match exists.
const CREATE_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 then
  if redis.call('GET', KEYS[2]) == '1' and redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
  return 0
end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('RPUSH', KEYS[3], unpack(ARGV, 4))
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return 1
";

/// Takes a match whose lease expired: raises the fencing token and returns it with the log.
/// KEYS: lease, fence, log. ARGV: instance, lease ms, log ttl ms. Returns false while another
/// instance holds the lease, or when the log or its fencing token is gone.
const TAKE_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
if redis.call('EXISTS', KEYS[3]) == 0 then return false end
-- A log without its fencing token (evicted, say) cannot be taken safely: INCR would hand out
-- a token an owner may still hold.
if redis.call('EXISTS', KEYS[2]) == 0 then return false end
local fence = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local log = redis.call('LRANGE', KEYS[3], 0, -1)
table.insert(log, 1, tostring(fence))
return log
";

/// Renews the lease while the fencing token is still ours. KEYS: lease, fence. ARGV: fence,
/// instance, lease ms. Returns 1, or 0 when the match moved on (or is gone from Redis). The
/// hub renews only matches whose creation landed (see `Room::stored`).
const RENEW_SCRIPT: &str = r"
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
";

/// Lets a match go: deletes the lease if the fencing token is still ours, so another instance
/// takes it at once (a drain). KEYS: lease, fence. ARGV: fence.
const RELEASE_SCRIPT: &str = r"
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
";

/// Queues a ticket or takes the nearest acceptable one. KEYS: the mode's sorted set, the
/// tickets hash, the ticket's withdrawal mark. ARGV: ticket id, rating, window, ticket json,
/// account, now ms, sweep (1 when the ticket is already queued: it is matched only if still
/// there). Returns the partner's json, 'queued', or 'gone' (a sweep found the ticket taken
/// already, or the ticket was withdrawn before its first claim arrived).
const CLAIM_SCRIPT: &str = r"
local id, rating, window = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now = tonumber(ARGV[6])
if ARGV[7] == '1' then
  if redis.call('ZREM', KEYS[1], id) == 0 then return 'gone' end
elseif redis.call('EXISTS', KEYS[3]) == 1 then
  return 'gone'
end
local function pick(ids)
  for _, other in ipairs(ids) do
    local json = redis.call('HGET', KEYS[2], other)
    if not json then
      redis.call('ZREM', KEYS[1], other)
    else
      local t = cjson.decode(json)
      if t.expires_ms <= now then
        redis.call('ZREM', KEYS[1], other)
        redis.call('HDEL', KEYS[2], other)
      elseif t.account ~= ARGV[5] then
        return other, json
      end
    end
  end
  return nil, nil
end
local up_id, up = pick(redis.call('ZRANGEBYSCORE', KEYS[1], rating, rating + window, 'LIMIT', 0, 4))
local down_id, down = pick(redis.call('ZREVRANGEBYSCORE', KEYS[1], rating, rating - window, 'LIMIT', 0, 4))
local best_id, best = up_id, up
if down_id and (not up_id or
    rating - redis.call('ZSCORE', KEYS[1], down_id) < redis.call('ZSCORE', KEYS[1], up_id) - rating) then
  best_id, best = down_id, down
end
if best_id then
  redis.call('ZREM', KEYS[1], best_id)
  redis.call('HDEL', KEYS[2], best_id, id)
  return best
end
redis.call('ZADD', KEYS[1], rating, id)
redis.call('HSET', KEYS[2], id, ARGV[4])
return 'queued'
";

/// Takes a ticket out of the queue if it is still there. KEYS: sorted set, hash, the ticket's
/// withdrawal mark. ARGV: id, mark ms. Returns 1 when this call took it. A ticket not there
/// may have been matched, or its first claim may still be on its way (a cancel or a drain
/// racing it): the mark, kept longer than any ticket lives, makes that claim answer 'gone'
/// instead of queueing a ticket whose player has moved on.
const WITHDRAW_SCRIPT: &str = r"
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[2])
  return 0
end
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
";

/// How long a withdrawal mark is kept: longer than a ticket's first claim can be in flight.
const WITHDRAWN_MS: u64 = 60_000;

fn withdrawn_key(ticket_id: &str) -> String {
    format!("gg:{{mm}}:w:{ticket_id}")
}

/// Records a result once: ratings, the results stream. KEYS: ratings, recorded, results.
/// ARGV: match id, now ms, kept ms, results kept, result line, then account and rating json
/// pairs. Returns 1 when recorded by this call, 0 when it had been.
const RECORD_SCRIPT: &str = r"
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[2]) - tonumber(ARGV[3]))
for i = 6, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'match', ARGV[1], 'result', ARGV[5])
return 1
";

/// Frees an account's seat if it still names the match. KEYS: seat. ARGV: match id.
const FREE_SEAT_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Keeps messages a gateway could not hand to a connection that had gone, for the account's
/// next greeting wherever it lands. KEYS: the account's missed list. ARGV: kept ms, then the
/// messages' json. Bounded to the last 64 messages.
const MISSED_SCRIPT: &str = r"
redis.call('RPUSH', KEYS[1], unpack(ARGV, 2))
redis.call('LTRIM', KEYS[1], -64, -1)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
";

/// Either kind of connection; both multiplex.
#[derive(Clone)]
enum Connection {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Standalone(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Standalone(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Standalone(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

/// This instance's handle on the shared state.
pub struct Cluster {
    pub instance: String,
    pub lease: Duration,
    url: String,
    pub timeout: Duration,
    connection: Connection,
    append: Script,
    create: Script,
    take: Script,
    renew: Script,
    release: Script,
    claim: Script,
    withdraw: Script,
    record: Script,
    free_seat: Script,
    missed: Script,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

pub fn log_key(match_id: &str) -> String {
    format!("gg:{{m:{match_id}}}:log")
}
/// What places every key of a match on one slot.
fn match_tag(match_id: &str) -> String {
    format!("m:{match_id}")
}
fn lease_key(match_id: &str) -> String {
    format!("gg:{{m:{match_id}}}:lease")
}
fn fence_key(match_id: &str) -> String {
    format!("gg:{{m:{match_id}}}:fence")
}
fn inbox_key(instance: &str) -> String {
    format!("gg:inbox:{instance}")
}
fn queue_key(mode: Mode) -> String {
    format!("gg:{{mm}}:q:{}", mode_name(mode))
}
const TICKETS_KEY: &str = "gg:{mm}:t";
const RATINGS_KEY: &str = "gg:{rt}:ratings";
const RECORDED_KEY: &str = "gg:{rt}:recorded";
pub const RESULTS_KEY: &str = "gg:{rt}:results";
fn seat_key(account: &str) -> String {
    format!("gg:seat:{account}")
}
fn missed_key(account: &str) -> String {
    format!("gg:missed:{account}")
}
fn resume_key(token: &str) -> String {
    format!("gg:resume:{}", blake3::hash(token.as_bytes()).to_hex())
}
fn presence_key(account: &str) -> String {
    format!("gg:pres:{account}")
}
/// How long a published presence lasts without renewal (renewed every few seconds).
pub const PRESENCE_TTL: Duration = Duration::from_secs(15);
fn census_key(instance: &str) -> String {
    format!("gg:inst:{instance}")
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::BestOf1 => "bo1",
        Mode::BestOf3 => "bo3",
        Mode::BestOf5 => "bo5",
    }
}

fn json<T: Serialize>(value: &T) -> String {
    // Our own types, all of them plain data: serialising them cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

fn parse<T: for<'de> Deserialize<'de>>(text: &[u8]) -> Result<T, ClusterError> {
    serde_json::from_slice(text).map_err(|error| ClusterError::Corrupt(error.to_string()))
}

async fn connect(url: &str, timeout: Duration) -> Result<Connection, ClusterError> {
    if let Some(seeds) = url.strip_prefix("redis+cluster://") {
        let nodes: Vec<String> = seeds
            .split(',')
            .map(|seed| format!("redis://{}", seed.trim()))
            .collect();
        let client = redis::cluster::ClusterClientBuilder::new(nodes)
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(2)
            .build()?;
        let connection = tokio::time::timeout(timeout * 3, client.get_async_connection())
            .await
            .map_err(|_| ClusterError::Timeout)??;
        Ok(Connection::Cluster(connection))
    } else {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let manager = tokio::time::timeout(
            timeout * 3,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| ClusterError::Timeout)??;
        Ok(Connection::Standalone(manager))
    }
}

/// One write in a batch [`Cluster::write`] sends in order.
#[derive(Debug)]
pub enum Write {
    Send {
        to: String,
        envelope: Envelope,
    },
    Create {
        match_id: String,
        meta: Box<Meta>,
        events: Vec<Event>,
    },
    Append {
        match_id: String,
        fence: u64,
        /// The log's length before these events (the meta entry included).
        base: u64,
        events: Vec<Event>,
    },
    /// The account sits in `match_id` (`taken`), or no longer does: then the key is deleted
    /// only if it still names that match (a newer match's seat, written by another instance,
    /// may have overtaken this write).
    Seat {
        account: String,
        match_id: String,
        taken: bool,
    },
    Token {
        token: String,
        account: String,
    },
    /// Messages for a connection of `account` that had gone when they reached its gateway:
    /// kept (a resume grace) for the account's next greeting on any instance.
    Missed {
        account: String,
        messages: Vec<ServerMessage>,
        /// How long they are kept: the resume grace.
        kept_ms: u64,
    },
    Release {
        match_id: String,
        fence: u64,
    },
    /// A finished match's result and its players' new ratings, recorded once.
    Record {
        match_id: String,
        result: String,
        ratings: Vec<(String, Rating)>,
        now_ms: u64,
    },
}

/// How one write of a batch went.
#[derive(Debug, PartialEq, Eq)]
pub enum Wrote {
    Done,
    /// A create or append was refused for this match.
    Refused(String, Refused),
}

impl Cluster {
    /// Connects to the store's Redis (`redis://` or `redis+cluster://`), as a new instance
    /// with a random id.
    pub async fn connect(
        url: &str,
        timeout: Duration,
        lease: Duration,
    ) -> Result<Cluster, ClusterError> {
        let connection = connect(url, timeout).await?;
        let mut id = [0u8; 8];
        getrandom::fill(&mut id)
            .map_err(|error| ClusterError::Corrupt(format!("random source: {error}")))?;
        Ok(Cluster {
            instance: game::fairness::to_hex(&id),
            lease,
            url: url.to_owned(),
            timeout,
            connection,
            append: Script::new(APPEND_SCRIPT),
            create: Script::new(CREATE_SCRIPT),
            take: Script::new(TAKE_SCRIPT),
            renew: Script::new(RENEW_SCRIPT),
            release: Script::new(RELEASE_SCRIPT),
            claim: Script::new(CLAIM_SCRIPT),
            withdraw: Script::new(WITHDRAW_SCRIPT),
            record: Script::new(RECORD_SCRIPT),
            free_seat: Script::new(FREE_SEAT_SCRIPT),
            missed: Script::new(MISSED_SCRIPT),
        })
    }

    fn connection(&self) -> Connection {
        self.connection.clone()
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, ClusterError> {
        let mut connection = self.connection();
        tokio::time::timeout(self.timeout, invocation.invoke_async(&mut connection))
            .await
            .map_err(|_| ClusterError::Timeout)?
            .map_err(ClusterError::from)
    }

    /// One write as a command, with the key that places it (its hash tag, or the key).
    fn command(&self, write: &Write) -> (String, Cmd) {
        let lease_ms = self.lease.as_millis() as u64;
        let ttl_ms = LOG_TTL.as_millis() as u64;
        match write {
            Write::Send { to, envelope } => {
                let key = inbox_key(to);
                let mut call = redis::cmd("XADD");
                call.arg(&key)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(INBOX_KEPT)
                    .arg("*")
                    .arg("e")
                    .arg(json(envelope));
                (key, call)
            }
            Write::Create {
                match_id,
                meta,
                events,
            } => {
                let mut call = redis::cmd("EVALSHA");
                call.arg(self.create.get_hash())
                    .arg(3)
                    .arg(lease_key(match_id))
                    .arg(fence_key(match_id))
                    .arg(log_key(match_id))
                    .arg(&self.instance)
                    .arg(lease_ms)
                    .arg(ttl_ms)
                    .arg(json(meta.as_ref()));
                for event in events {
                    call.arg(json(event));
                }
                (match_tag(match_id), call)
            }
            Write::Append {
                match_id,
                fence,
                base,
                events,
            } => {
                let mut call = redis::cmd("EVALSHA");
                call.arg(self.append.get_hash())
                    .arg(3)
                    .arg(lease_key(match_id))
                    .arg(fence_key(match_id))
                    .arg(log_key(match_id))
                    .arg(fence)
                    .arg(&self.instance)
                    .arg(lease_ms)
                    .arg(ttl_ms)
                    .arg(base);
                for event in events {
                    call.arg(json(event));
                }
                (match_tag(match_id), call)
            }
            Write::Seat {
                account,
                match_id,
                taken,
            } => {
                let key = seat_key(account);
                let call = if *taken {
                    let mut call = redis::cmd("SET");
                    call.arg(&key).arg(match_id).arg("PX").arg(ttl_ms);
                    call
                } else {
                    let mut call = redis::cmd("EVALSHA");
                    call.arg(self.free_seat.get_hash())
                        .arg(1)
                        .arg(&key)
                        .arg(match_id);
                    call
                };
                (key, call)
            }
            Write::Token { token, account } => {
                let key = resume_key(token);
                let mut call = redis::cmd("SET");
                call.arg(&key)
                    .arg(account)
                    .arg("PX")
                    .arg(RESUME_TTL.as_millis() as u64);
                (key, call)
            }
            Write::Missed {
                account,
                messages,
                kept_ms,
            } => {
                let key = missed_key(account);
                let mut call = redis::cmd("EVALSHA");
                call.arg(self.missed.get_hash())
                    .arg(1)
                    .arg(&key)
                    .arg(*kept_ms);
                for message in messages {
                    call.arg(json(message));
                }
                (key, call)
            }
            Write::Release { match_id, fence } => {
                let mut call = redis::cmd("EVALSHA");
                call.arg(self.release.get_hash())
                    .arg(2)
                    .arg(lease_key(match_id))
                    .arg(fence_key(match_id))
                    .arg(fence);
                (match_tag(match_id), call)
            }
            Write::Record {
                match_id,
                result,
                ratings,
                now_ms,
            } => {
                let mut call = redis::cmd("EVALSHA");
                call.arg(self.record.get_hash())
                    .arg(3)
                    .arg(RATINGS_KEY)
                    .arg(RECORDED_KEY)
                    .arg(RESULTS_KEY)
                    .arg(match_id)
                    .arg(now_ms)
                    .arg(RECORDED_KEPT_MS)
                    .arg(RESULTS_KEPT)
                    .arg(result);
                for (account, rating) in ratings {
                    call.arg(account).arg(json(rating));
                }
                ("rt".to_owned(), call)
            }
        }
    }

    /// Runs `commands` and returns their replies in order. On one server: one pipeline, one
    /// round trip. On a cluster, a pipeline may not cross slots: the commands are grouped by
    /// the key that places them (order kept within a group), and the groups run at once.
    async fn pipeline(&self, commands: Vec<(String, Cmd)>) -> Result<Vec<Value>, ClusterError> {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        let mut connection = self.connection();
        if matches!(connection, Connection::Standalone(_)) {
            let mut pipe = redis::pipe();
            for (_, command) in commands {
                pipe.add_command(command);
            }
            return self.query_pipe(&pipe, &mut connection).await;
        }
        let mut groups: Vec<(String, Vec<usize>, Pipeline)> = Vec::new();
        for (index, (route, command)) in commands.into_iter().enumerate() {
            match groups.iter_mut().find(|(r, _, _)| *r == route) {
                Some((_, indices, pipe)) => {
                    indices.push(index);
                    pipe.add_command(command);
                }
                None => {
                    let mut pipe = redis::pipe();
                    pipe.add_command(command);
                    groups.push((route, vec![index], pipe));
                }
            }
        }
        let total = groups.iter().map(|(_, i, _)| i.len()).sum();
        let replies = futures_util::future::try_join_all(groups.iter().map(|(_, _, pipe)| {
            let mut connection = self.connection();
            async move { self.query_pipe(pipe, &mut connection).await }
        }))
        .await?;
        let mut ordered = vec![Value::Nil; total];
        for ((_, indices, _), values) in groups.iter().zip(replies) {
            for (index, value) in indices.iter().zip(values) {
                ordered[*index] = value;
            }
        }
        Ok(ordered)
    }

    async fn query_pipe(
        &self,
        pipe: &Pipeline,
        connection: &mut Connection,
    ) -> Result<Vec<Value>, ClusterError> {
        match tokio::time::timeout(self.timeout, pipe.query_async(connection)).await {
            Err(_) => Err(ClusterError::Timeout),
            Ok(Ok(replies)) => Ok(replies),
            Ok(Err(error))
                if error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
            {
                self.load_scripts().await?;
                tokio::time::timeout(self.timeout, pipe.query_async(connection))
                    .await
                    .map_err(|_| ClusterError::Timeout)?
                    .map_err(ClusterError::from)
            }
            Ok(Err(error)) => Err(error.into()),
        }
    }

    /// Sends a batch of writes, pipelined: on one server in order in one round trip; on a
    /// cluster the log writes first (grouped by match), then the messages to other instances,
    /// so no instance hears of an event before its log holds it.
    pub async fn write(&self, writes: &[Write]) -> Result<Vec<Wrote>, ClusterError> {
        let replies = if matches!(self.connection, Connection::Standalone(_)) {
            self.pipeline(writes.iter().map(|w| self.command(w)).collect())
                .await?
        } else {
            let (sends, rest): (Vec<usize>, Vec<usize>) =
                (0..writes.len()).partition(|&i| matches!(writes[i], Write::Send { .. }));
            let mut replies = vec![Value::Nil; writes.len()];
            for part in [rest, sends] {
                let values = self
                    .pipeline(part.iter().map(|&i| self.command(&writes[i])).collect())
                    .await?;
                for (index, value) in part.into_iter().zip(values) {
                    replies[index] = value;
                }
            }
            replies
        };
        let mut wrote = Vec::with_capacity(writes.len());
        for (write, reply) in writes.iter().zip(replies) {
            let match_id = match write {
                Write::Create { match_id, .. } | Write::Append { match_id, .. } => match_id,
                _ => {
                    wrote.push(Wrote::Done);
                    continue;
                }
            };
            let code: i64 = redis::from_redis_value(reply)?;
            wrote.push(match (write, code) {
                (Write::Create { .. }, 0) | (Write::Append { .. }, -1) => {
                    Wrote::Refused(match_id.clone(), Refused::Fenced)
                }
                (Write::Append { .. }, -2) => Wrote::Refused(match_id.clone(), Refused::Diverged),
                _ => Wrote::Done,
            });
        }
        Ok(wrote)
    }

    /// Loads every script (SCRIPT LOAD), for pipelines that call them by hash.
    pub async fn load_scripts(&self) -> Result<(), ClusterError> {
        for script in [
            &self.append,
            &self.create,
            &self.take,
            &self.renew,
            &self.release,
            &self.claim,
            &self.withdraw,
            &self.record,
            &self.free_seat,
            &self.missed,
        ] {
            let mut connection = self.connection();
            let invocation = script.prepare_invoke();
            let load = invocation.load_async(&mut connection);
            tokio::time::timeout(self.timeout, load)
                .await
                .map_err(|_| ClusterError::Timeout)??;
        }
        Ok(())
    }

    /// Takes a match whose lease expired: its fencing token and log. `None` while another
    /// instance holds it, or when it is gone.
    pub async fn take(&self, match_id: &str) -> Result<Option<Taken>, ClusterError> {
        let mut invocation = self.take.prepare_invoke();
        invocation
            .key(lease_key(match_id))
            .key(fence_key(match_id))
            .key(log_key(match_id))
            .arg(&self.instance)
            .arg(self.lease.as_millis() as u64)
            .arg(LOG_TTL.as_millis() as u64);
        let reply: Option<Vec<Vec<u8>>> = self.run(&invocation).await?;
        let Some(entries) = reply else {
            return Ok(None);
        };
        let mut entries = entries.into_iter();
        let fence = entries
            .next()
            .and_then(|f| std::str::from_utf8(&f).ok()?.parse().ok())
            .ok_or_else(|| ClusterError::Corrupt("fencing token".into()))?;
        let meta: Meta = parse(
            &entries
                .next()
                .ok_or_else(|| ClusterError::Corrupt("empty log".into()))?,
        )?;
        let events = entries
            .map(|entry| parse(&entry))
            .collect::<Result<Vec<Event>, _>>()?;
        Ok(Some(Taken {
            fence,
            meta,
            events,
        }))
    }

    /// The instance holding each match's lease (`None`: expired), in order.
    pub async fn owners(&self, match_ids: &[String]) -> Result<Vec<Option<String>>, ClusterError> {
        let commands = match_ids
            .iter()
            .map(|id| {
                let mut call = redis::cmd("GET");
                call.arg(lease_key(id));
                (match_tag(id), call)
            })
            .collect();
        self.pipeline(commands)
            .await?
            .into_iter()
            .map(|value| redis::from_redis_value(value).map_err(ClusterError::from))
            .collect()
    }

    /// Renews the leases of the matches this instance owns; the ids of those it lost.
    pub async fn renew(&self, owned: &[(String, u64)]) -> Result<Vec<String>, ClusterError> {
        let commands = owned
            .iter()
            .map(|(id, fence)| {
                let mut call = redis::cmd("EVALSHA");
                call.arg(self.renew.get_hash())
                    .arg(2)
                    .arg(lease_key(id))
                    .arg(fence_key(id))
                    .arg(fence)
                    .arg(&self.instance)
                    .arg(self.lease.as_millis() as u64);
                (match_tag(id), call)
            })
            .collect();
        let replies = self.pipeline(commands).await?;
        let mut lost = Vec::new();
        for ((id, _), reply) in owned.iter().zip(replies) {
            if redis::from_redis_value::<i64>(reply)? == 0 {
                lost.push(id.clone());
            }
        }
        Ok(lost)
    }

    /// Queues `ticket` or takes the nearest acceptable ticket within `window` of its rating.
    pub async fn claim(
        &self,
        ticket: &SharedTicket,
        window: f64,
        now_ms: u64,
        sweep: bool,
    ) -> Result<Claim, ClusterError> {
        let mut invocation = self.claim.prepare_invoke();
        invocation
            .key(queue_key(ticket.mode))
            .key(TICKETS_KEY)
            .key(withdrawn_key(&ticket.id))
            .arg(&ticket.id)
            .arg(ticket.rating.rating)
            .arg(window)
            .arg(json(ticket))
            .arg(&ticket.account)
            .arg(now_ms)
            .arg(u8::from(sweep));
        let reply: Vec<u8> = self.run(&invocation).await?;
        Ok(match reply.as_slice() {
            b"queued" => Claim::Queued,
            b"gone" => Claim::Gone,
            json => Claim::Partner(Box::new(parse(json)?)),
        })
    }

    /// Takes the ticket out of the queue: true when this call did (nobody matched it first).
    pub async fn withdraw(&self, mode: Mode, ticket_id: &str) -> Result<bool, ClusterError> {
        let mut invocation = self.withdraw.prepare_invoke();
        invocation
            .key(queue_key(mode))
            .key(TICKETS_KEY)
            .key(withdrawn_key(ticket_id))
            .arg(ticket_id)
            .arg(WITHDRAWN_MS);
        let taken: i64 = self.run(&invocation).await?;
        Ok(taken == 1)
    }

    /// The ratings of `accounts` (the default for one never rated).
    pub async fn ratings(&self, accounts: &[&str]) -> Result<Vec<Rating>, ClusterError> {
        let mut connection = self.connection();
        let found: Vec<Option<Vec<u8>>> = tokio::time::timeout(
            self.timeout,
            redis::cmd("HMGET")
                .arg(RATINGS_KEY)
                .arg(accounts)
                .query_async(&mut connection),
        )
        .await
        .map_err(|_| ClusterError::Timeout)??;
        Ok(found
            .into_iter()
            .map(|r| r.and_then(|r| parse(&r).ok()).unwrap_or_default())
            .collect())
    }

    /// Records a match's result once: true when this call recorded it.
    pub async fn record(
        &self,
        match_id: &str,
        result: &str,
        ratings: &[(String, Rating)],
        now_ms: u64,
    ) -> Result<bool, ClusterError> {
        let mut invocation = self.record.prepare_invoke();
        invocation
            .key(RATINGS_KEY)
            .key(RECORDED_KEY)
            .key(RESULTS_KEY)
            .arg(match_id)
            .arg(now_ms)
            .arg(RECORDED_KEPT_MS)
            .arg(RESULTS_KEPT)
            .arg(result);
        for (account, rating) in ratings {
            invocation.arg(account).arg(json(rating));
        }
        let recorded: i64 = self.run(&invocation).await?;
        Ok(recorded == 1)
    }

    /// The account a resume token belongs to, and the match that account sits in.
    pub async fn locate(
        &self,
        token: Option<&str>,
        account: &str,
    ) -> Result<Located, ClusterError> {
        let mut commands = Vec::with_capacity(3);
        let seat = seat_key(account);
        let mut get_seat = redis::cmd("GET");
        get_seat.arg(&seat);
        commands.push((seat, get_seat));
        if let Some(token) = token {
            // What the account's last connection missed: taken (LPOP, atomic) by a resume.
            let missed = missed_key(account);
            let mut take_missed = redis::cmd("LPOP");
            take_missed.arg(&missed).arg(64);
            commands.push((missed, take_missed));
            let key = resume_key(token);
            let mut get_token = redis::cmd("GET");
            get_token.arg(&key);
            commands.push((key, get_token));
        }
        let mut replies = self.pipeline(commands).await?.into_iter();
        let seat: Option<String> = match replies.next() {
            Some(value) => redis::from_redis_value(value)?,
            None => None,
        };
        let missed: Option<Vec<Vec<u8>>> = match replies.next() {
            Some(value) => redis::from_redis_value(value)?,
            None => None,
        };
        let missed = missed.unwrap_or_default();
        let owner_of_token: Option<String> = match replies.next() {
            Some(value) => redis::from_redis_value(value)?,
            None => None,
        };
        Ok(Located {
            owner_of_token,
            seat,
            missed: missed.iter().filter_map(|m| parse(m).ok()).collect(),
        })
    }

    /// Publishes the presence of this instance's players (each expiring after
    /// [`PRESENCE_TTL`] unless published again).
    pub async fn publish_presence(&self, players: &[(String, &str)]) -> Result<(), ClusterError> {
        let commands = players
            .iter()
            .map(|(account, status)| {
                let key = presence_key(account);
                let mut call = redis::cmd("SET");
                call.arg(&key)
                    .arg(*status)
                    .arg("PX")
                    .arg(PRESENCE_TTL.as_millis() as u64);
                (key, call)
            })
            .collect();
        self.pipeline(commands).await.map(|_| ())
    }

    /// The presence an instance published for `account`, if any.
    pub async fn presence_of(&self, account: &str) -> Result<Option<String>, ClusterError> {
        let mut connection = self.connection();
        tokio::time::timeout(
            self.timeout,
            redis::cmd("GET")
                .arg(presence_key(account))
                .query_async(&mut connection),
        )
        .await
        .map_err(|_| ClusterError::Timeout)?
        .map_err(ClusterError::from)
    }

    /// Publishes this instance's census (expiring after three renewal periods) and reads
    /// every live instance's.
    pub async fn census(&self, own: [u64; 4]) -> Result<[u64; 4], ClusterError> {
        let mut connection = self.connection();
        let value = format!("{} {} {} {}", own[0], own[1], own[2], own[3]);
        let _: () = tokio::time::timeout(
            self.timeout,
            redis::cmd("SET")
                .arg(census_key(&self.instance))
                .arg(value)
                .arg("PX")
                .arg(3000)
                .query_async(&mut connection),
        )
        .await
        .map_err(|_| ClusterError::Timeout)??;
        let keys: Vec<String> = match &self.connection {
            // A cluster spreads the keys over nodes; the census is summed from this
            // instance's own figures there (documented in OPERATIONS.md).
            Connection::Cluster(_) => return Ok(own),
            Connection::Standalone(_) => {
                let mut scan = redis::cmd("SCAN");
                scan.arg(0)
                    .arg("MATCH")
                    .arg("gg:inst:*")
                    .arg("COUNT")
                    .arg(1000);
                let scan = scan.query_async::<(u64, Vec<String>)>(&mut connection);
                tokio::time::timeout(self.timeout, scan)
                    .await
                    .map_err(|_| ClusterError::Timeout)??
                    .1
            }
        };
        let mut total = [0u64; 4];
        if keys.is_empty() {
            return Ok(own);
        }
        let values: Vec<Option<String>> = tokio::time::timeout(
            self.timeout,
            redis::cmd("MGET").arg(&keys).query_async(&mut connection),
        )
        .await
        .map_err(|_| ClusterError::Timeout)??;
        for value in values.into_iter().flatten() {
            for (slot, part) in total.iter_mut().zip(value.split(' ')) {
                *slot += part.parse::<u64>().unwrap_or(0);
            }
        }
        Ok(total)
    }

    /// A reader of this instance's inbox on its own connection (it blocks).
    pub async fn inbox(&self) -> Result<Inbox, ClusterError> {
        // A blocking read must not hold up the shared multiplexed connection: its own
        // client, with a response timeout longer than the block.
        let connection = connect_blocking(&self.url, self.timeout).await?;
        Ok(Inbox {
            key: inbox_key(&self.instance),
            last: "$".to_owned(),
            connection,
        })
    }
}

/// What [`Cluster::claim`] found.
#[derive(Debug)]
pub enum Claim {
    Queued,
    Gone,
    Partner(Box<SharedTicket>),
}

async fn connect_blocking(url: &str, timeout: Duration) -> Result<Connection, ClusterError> {
    let read_timeout = timeout + INBOX_BLOCK + Duration::from_secs(1);
    if url.starts_with("redis+cluster://") {
        let seeds = url.trim_start_matches("redis+cluster://");
        let nodes: Vec<String> = seeds
            .split(',')
            .map(|seed| format!("redis://{}", seed.trim()))
            .collect();
        let client = redis::cluster::ClusterClientBuilder::new(nodes)
            .connection_timeout(timeout)
            .response_timeout(read_timeout)
            .retries(2)
            .build()?;
        let connection = tokio::time::timeout(timeout * 3, client.get_async_connection())
            .await
            .map_err(|_| ClusterError::Timeout)??;
        Ok(Connection::Cluster(connection))
    } else {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(read_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let manager = tokio::time::timeout(
            timeout * 3,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| ClusterError::Timeout)??;
        Ok(Connection::Standalone(manager))
    }
}

/// How long one inbox read waits for an entry.
const INBOX_BLOCK: Duration = Duration::from_millis(1000);

/// One stream's entries in an XREAD reply: (key, [(id, [field, value])]).
type StreamEntries = (String, Vec<(String, Vec<Vec<u8>>)>);

/// Reads one instance's inbox in order.
pub struct Inbox {
    key: String,
    last: String,
    connection: Connection,
}

impl Inbox {
    /// The next entries (up to 512), waiting at most a second; malformed ones are skipped and
    /// counted in `skipped`.
    pub async fn next(&mut self, skipped: &mut u64) -> Result<Vec<Envelope>, ClusterError> {
        let reply: Value = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(512)
            .arg("BLOCK")
            .arg(INBOX_BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.key)
            .arg(&self.last)
            .query_async(&mut self.connection)
            .await?;
        // [[key, [[id, [field, value, ...]], ...]]] (RESP2), or a map of key to entries
        // (RESP3); nil when the block timed out.
        let streams: Vec<StreamEntries> = match reply {
            Value::Nil => Vec::new(),
            Value::Map(pairs) => pairs
                .into_iter()
                .map(|(k, v)| Ok((redis::from_redis_value(k)?, redis::from_redis_value(v)?)))
                .collect::<Result<_, redis::RedisError>>()?,
            other => redis::from_redis_value(other)?,
        };
        let mut envelopes = Vec::new();
        for (_, entries) in streams {
            for (id, fields) in entries {
                self.last = id;
                match fields.get(1) {
                    Some(bytes) => match parse(bytes) {
                        Ok(envelope) => envelopes.push(envelope),
                        Err(_) => *skipped += 1,
                    },
                    None => *skipped += 1,
                }
            }
        }
        Ok(envelopes)
    }

    /// Starts from the entries already there (the first read after start-up uses `$`,
    /// everything sent before this instance existed being for an earlier one).
    pub fn from_start(&mut self) {
        self.last = "0".to_owned();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash tag a cluster places a key by: the text between the first `{` and the `}`
    /// after it.
    fn slot(key: &str) -> &str {
        let open = key.find('{').unwrap();
        let close = open + key[open..].find('}').unwrap();
        &key[open + 1..close]
    }

    #[test]
    fn every_key_of_a_match_shares_one_hash_slot() {
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(slot(&log_key(id)), slot(&lease_key(id)));
        assert_eq!(slot(&log_key(id)), slot(&fence_key(id)));
        assert_eq!(slot(&queue_key(Mode::BestOf3)), slot(TICKETS_KEY));
        assert_eq!(slot(RATINGS_KEY), slot(RECORDED_KEY));
        assert_eq!(slot(RATINGS_KEY), slot(RESULTS_KEY));
    }

    #[test]
    fn envelopes_survive_the_wire() {
        let envelope = Envelope::Forward {
            from: "a".into(),
            account: "acc".into(),
            link: 7,
            message: ClientMessage::Ping { id: Some(3) },
            resent: true,
        };
        let back: Envelope = parse(json(&envelope).as_bytes()).unwrap();
        assert!(matches!(
            back,
            Envelope::Forward {
                link: 7,
                resent: true,
                ..
            }
        ));
        // An instance of the version before sends no `resent`: a first send.
        let older = br#"{"t":"forward","from":"a","account":"acc","link":7,"message":{"type":"ping","id":3}}"#;
        let parsed: Envelope = parse(older).unwrap();
        assert!(matches!(parsed, Envelope::Forward { resent: false, .. }));
    }
}

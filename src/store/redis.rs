//! The Redis store: standalone (a multiplexed connection with redis-rs's connection manager,
//! which reconnects on its own) or Redis Cluster (redis-rs's async cluster connection).
//!
//! Key layout (`{...}` is a cluster hash tag: a player's keys share one slot, the leaderboards
//! share another):
//! - `gg:{<player>}:stats`: hash of totals, streaks, counts per choice and the player's wins in
//!   their latest day and week;
//! - `gg:{<player>}:games`: list of the latest games, newest first, trimmed to `games_kept`;
//! - `gg:{<player>}:applied`: sorted set of the latest applied game ids, so a batch retried
//!   after a lost reply is not counted twice;
//! - `gg:{lb}:all`, `gg:{lb}:day:<date>`, `gg:{lb}:week:<monday>`: sorted sets of players
//!   scored by minus their wins (so equal wins list by player id ascending); windowed boards
//!   expire on their own;
//! - `gg:idem:<scope>:<key>`: idempotency records (`SET NX PX`);
//! - `gg:node:<id>`: node id leases.
//!
//! Writes are one Lua script per player (atomic over that player's keys, which a cluster keeps
//! in one slot), then one pipeline of `ZADD LT` to the leaderboards with each player's totals:
//! setting an absolute score is safe to repeat and to race between instances.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Script, Value};

use super::StoreError;
use super::game_id::MAX_NODE_ID;
use super::idempotency::{self, Begin, Fingerprint, StoredAnswer};
use super::model::{GameRecord, GameSummary, PlayerStats, Ranked, Window};
use crate::game::{Choice, Winner};

/// How many applied game ids each player keeps for de-duplicating retried batches.
const APPLIED_KEPT: usize = 512;

const APPLY_SCRIPT: &str = r"
local stats, games, applied = KEYS[1], KEYS[2], KEYS[3]
local keep_games = tonumber(ARGV[1])
local keep_applied = tonumber(ARGV[2])
for i = 3, #ARGV, 6 do
  local id, result, choice, day, week, summary =
    ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  if not redis.call('ZSCORE', applied, id) then
    local rounds = redis.call('HINCRBY', stats, 'rounds', 1)
    redis.call('ZADD', applied, rounds, id)
    redis.call('HINCRBY', stats, choice, 1)
    if result == 'w' then
      redis.call('HINCRBY', stats, 'wins', 1)
      local streak = redis.call('HINCRBY', stats, 'streak', 1)
      local best = tonumber(redis.call('HGET', stats, 'best_streak') or '0')
      if streak > best then redis.call('HSET', stats, 'best_streak', streak) end
    else
      redis.call('HINCRBY', stats, result == 'l' and 'losses' or 'ties', 1)
      redis.call('HSET', stats, 'streak', 0)
    end
    for _, window in ipairs({{'day', day}, {'week', week}}) do
      local field, key = window[1], window[2]
      local current = redis.call('HGET', stats, field) or ''
      if key > current then
        redis.call('HSET', stats, field, key, field .. '_wins', 0)
        current = key
      end
      if key == current and result == 'w' then
        redis.call('HINCRBY', stats, field .. '_wins', 1)
      end
    end
    redis.call('LPUSH', games, summary)
  end
end
redis.call('LTRIM', games, 0, keep_games - 1)
redis.call('ZREMRANGEBYRANK', applied, 0, -(keep_applied + 1))
return redis.call('HMGET', stats, 'wins', 'day', 'day_wins', 'week', 'week_wins')
";

const RENEW_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// Either kind of connection; both multiplex, so clones share one socket per node.
#[derive(Clone)]
enum Connection {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Standalone(connection) => connection.req_packed_command(cmd),
            Connection::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Standalone(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            Connection::Cluster(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Standalone(connection) => connection.get_db(),
            Connection::Cluster(connection) => connection.get_db(),
        }
    }
}

pub struct RedisStore {
    connection: Connection,
    apply: Script,
    renew: Script,
    games_kept: usize,
    /// `standalone` or `cluster`, for `/readyz` and the logs.
    pub kind: &'static str,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

fn player_key(player: &str, what: &str) -> String {
    format!("gg:{{{player}}}:{what}")
}

fn board_key(window: Window, key: &str) -> String {
    match window {
        Window::All => "gg:{lb}:all".to_owned(),
        Window::Day | Window::Week => format!("gg:{{lb}}:{}:{key}", window.name()),
    }
}

impl RedisStore {
    /// Connects to `url`: `redis://host:port[/db]` for one server, or `redis+cluster://host:port`
    /// followed by more `,host:port` seed nodes for a cluster. Waits at most `timeout` per try.
    pub async fn connect(
        url: &str,
        timeout: Duration,
        games_kept: usize,
    ) -> Result<RedisStore, StoreError> {
        let (connection, kind) = if let Some(seeds) = url.strip_prefix("redis+cluster://") {
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
                .map_err(|_| StoreError::Timeout)??;
            (Connection::Cluster(connection), "cluster")
        } else {
            let client = redis::Client::open(url)?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_secs(2));
            let manager = tokio::time::timeout(
                timeout * 3,
                ConnectionManager::new_with_config(client, config),
            )
            .await
            .map_err(|_| StoreError::Timeout)??;
            (Connection::Standalone(manager), "standalone")
        };
        Ok(RedisStore {
            connection,
            apply: Script::new(APPLY_SCRIPT),
            renew: Script::new(RENEW_SCRIPT),
            games_kept,
            kind,
        })
    }

    fn connection(&self) -> Connection {
        self.connection.clone()
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let _: String = redis::cmd("PING")
            .query_async(&mut self.connection())
            .await?;
        Ok(())
    }

    /// Applies a batch: one script per player, run concurrently over the multiplexed
    /// connection, then the leaderboard scores in one pipeline.
    pub async fn apply(&self, batch: &[GameRecord]) -> Result<(), StoreError> {
        let mut by_player: Vec<(&str, Vec<&GameRecord>)> = Vec::new();
        let mut index = std::collections::HashMap::new();
        for record in batch {
            let slot = *index.entry(record.player.as_str()).or_insert_with(|| {
                by_player.push((record.player.as_str(), Vec::new()));
                by_player.len() - 1
            });
            by_player[slot].1.push(record);
        }
        let calls = by_player.iter().map(|(player, records)| {
            let mut invocation = self.apply.prepare_invoke();
            invocation
                .key(player_key(player, "stats"))
                .key(player_key(player, "games"))
                .key(player_key(player, "applied"))
                .arg(self.games_kept)
                .arg(APPLIED_KEPT);
            for record in records {
                let result = match record.winner {
                    Winner::Player => "w",
                    Winner::Computer => "l",
                    Winner::Tie => "t",
                };
                let summary = serde_json::to_string(&record.summary()).unwrap_or_default();
                invocation
                    .arg(record.game_id.0)
                    .arg(result)
                    .arg(record.player_choice.name())
                    .arg(Window::Day.key_of(record.day()))
                    .arg(Window::Week.key_of(record.week()))
                    .arg(summary);
            }
            let mut connection = self.connection();
            async move {
                let totals: Vec<Option<String>> = invocation.invoke_async(&mut connection).await?;
                Ok::<_, StoreError>(totals)
            }
        });
        let totals = futures_util::future::try_join_all(calls).await?;
        let mut pipeline = redis::pipe();
        for ((player, _), totals) in by_player.iter().zip(totals) {
            let number = |index: usize| {
                totals
                    .get(index)
                    .and_then(Option::as_deref)
                    .and_then(|text| text.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let text = |index: usize| totals.get(index).and_then(Option::as_deref);
            let mut zadd = |window: Window, key: &str, wins: u64| {
                let board = board_key(window, key);
                pipeline
                    .cmd("ZADD")
                    .arg(&board)
                    .arg("LT")
                    .arg(-(wins as i64))
                    .arg(*player)
                    .ignore();
                if let Some(retention) = window.retention() {
                    pipeline
                        .cmd("EXPIRE")
                        .arg(&board)
                        .arg(retention.as_secs())
                        .arg("NX")
                        .ignore();
                }
            };
            zadd(Window::All, "all", number(0));
            if let Some(day) = text(1) {
                zadd(Window::Day, day, number(2));
            }
            if let Some(week) = text(3) {
                zadd(Window::Week, week, number(4));
            }
        }
        let () = pipeline.query_async(&mut self.connection()).await?;
        Ok(())
    }

    pub async fn stats(&self, player: &str) -> Result<Option<PlayerStats>, StoreError> {
        let fields: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
            .arg(player_key(player, "stats"))
            .query_async(&mut self.connection())
            .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let number = |name: &str| {
            fields
                .get(name)
                .and_then(|value| value.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok(Some(PlayerStats {
            rounds: number("rounds"),
            wins: number("wins"),
            losses: number("losses"),
            ties: number("ties"),
            current_streak: number("streak"),
            best_streak: number("best_streak"),
            choices: Choice::ALL.map(|choice| number(choice.name())),
        }))
    }

    pub async fn games(
        &self,
        player: &str,
        limit: usize,
    ) -> Result<Option<Vec<GameSummary>>, StoreError> {
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("EXISTS")
            .arg(player_key(player, "stats"))
            .cmd("LRANGE")
            .arg(player_key(player, "games"))
            .arg(0)
            .arg(limit.saturating_sub(1));
        let (exists, games): (bool, Vec<String>) =
            pipeline.query_async(&mut self.connection()).await?;
        if !exists {
            return Ok(None);
        }
        Ok(Some(
            games
                .iter()
                .filter_map(|game| serde_json::from_str(game).ok())
                .collect(),
        ))
    }

    pub async fn leaderboard(
        &self,
        window: Window,
        key: &str,
        limit: usize,
    ) -> Result<Vec<Ranked>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let entries: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(board_key(window, key))
            .arg(0)
            .arg(limit - 1)
            .arg("WITHSCORES")
            .query_async(&mut self.connection())
            .await?;
        let mut ranked: Vec<Ranked> = Vec::with_capacity(entries.len());
        for (index, (player_id, score)) in entries.into_iter().enumerate() {
            let wins = (-score).max(0.0) as u64;
            let rank = match ranked.last() {
                Some(previous) if previous.wins == wins => previous.rank,
                _ => index as u64 + 1,
            };
            ranked.push(Ranked {
                rank,
                player_id,
                wins,
            });
        }
        Ok(ranked)
    }

    pub async fn rank(
        &self,
        window: Window,
        key: &str,
        player: &str,
    ) -> Result<Option<Ranked>, StoreError> {
        let board = board_key(window, key);
        let score: Option<f64> = redis::cmd("ZSCORE")
            .arg(&board)
            .arg(player)
            .query_async(&mut self.connection())
            .await?;
        let Some(score) = score else {
            return Ok(None);
        };
        let higher: u64 = redis::cmd("ZCOUNT")
            .arg(&board)
            .arg("-inf")
            .arg(format!("({score}"))
            .query_async(&mut self.connection())
            .await?;
        Ok(Some(Ranked {
            rank: higher + 1,
            player_id: player.to_owned(),
            wins: (-score).max(0.0) as u64,
        }))
    }

    fn idempotency_key(key: &str) -> String {
        format!("gg:idem:{key}")
    }

    pub async fn begin(&self, key: &str, fingerprint: &Fingerprint) -> Result<Begin, StoreError> {
        let key = Self::idempotency_key(key);
        let mut connection = self.connection();
        // Twice: the record seen taken may expire before it is read.
        for _ in 0..2 {
            let claimed: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(idempotency::encode_in_flight(fingerprint))
                .arg("NX")
                .arg("PX")
                .arg(idempotency::IN_FLIGHT_TTL.as_millis() as u64)
                .query_async(&mut connection)
                .await?;
            if claimed.is_some() {
                return Ok(Begin::Started);
            }
            let record: Option<Vec<u8>> = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut connection)
                .await?;
            if let Some(record) = record {
                return Ok(idempotency::judge_existing(&record, fingerprint));
            }
        }
        Ok(Begin::InFlight)
    }

    pub async fn complete(
        &self,
        key: &str,
        fingerprint: &Fingerprint,
        answer: &StoredAnswer,
    ) -> Result<(), StoreError> {
        let () = redis::cmd("SET")
            .arg(Self::idempotency_key(key))
            .arg(idempotency::encode_done(fingerprint, answer))
            .arg("PX")
            .arg(idempotency::KEY_TTL.as_millis() as u64)
            .query_async(&mut self.connection())
            .await?;
        Ok(())
    }

    pub async fn abort(&self, key: &str) -> Result<(), StoreError> {
        let () = redis::cmd("DEL")
            .arg(Self::idempotency_key(key))
            .query_async(&mut self.connection())
            .await?;
        Ok(())
    }

    /// Claims a free node id for `lease`, starting the search at a random id so instances
    /// starting together rarely race for the same one.
    pub async fn claim_node_id(&self, token: &str, lease: Duration) -> Result<u16, StoreError> {
        let start = fastrand::u16(..=MAX_NODE_ID);
        let mut connection = self.connection();
        for offset in 0..=MAX_NODE_ID {
            let id = (start + offset) % (MAX_NODE_ID + 1);
            let claimed: Option<String> = redis::cmd("SET")
                .arg(format!("gg:node:{id}"))
                .arg(token)
                .arg("NX")
                .arg("PX")
                .arg(lease.as_millis() as u64)
                .query_async(&mut connection)
                .await?;
            if claimed.is_some() {
                return Ok(id);
            }
        }
        Err(StoreError::NoNodeId)
    }

    /// Extends the lease on `id`; false if it is no longer ours.
    pub async fn renew_node_id(
        &self,
        id: u16,
        token: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let renewed: i64 = self
            .renew
            .key(format!("gg:node:{id}"))
            .arg(token)
            .arg(lease.as_millis() as u64)
            .invoke_async(&mut self.connection())
            .await?;
        Ok(renewed == 1)
    }
}

//! The Redis store: standalone (a multiplexed connection with redis-rs's connection manager,
//! which reconnects on its own) or Redis Cluster (redis-rs's async cluster connection).
//!
//! Key layout (`{...}` is a cluster hash tag: a player's keys share one slot, the leaderboards
//! share another):
//! - `gg:{<player>}:stats`: hash of totals, streaks, counts per choice, the player's wins in
//!   their latest day and week, and per writing node (`n:<node id>`) the newest game id applied,
//!   so a batch retried after a lost reply is not counted twice;
//! - `gg:{<player>}:games`: list of the latest games, newest first, trimmed to `games_kept`;
//!   both of a player's keys expire `player_retention` after their latest play (refreshed on
//!   the first play of each day);
//! - `gg:{lb}:all`, `gg:{lb}:day:<date>`, `gg:{lb}:week:<monday>`: sorted sets of players
//!   scored by minus their wins (so equal wins list by player id ascending), each trimmed to
//!   the `max_players` with the most wins; windowed boards expire on their own;
//! - `gg:idem:<scope>:<key>`: idempotency records (`SET NX PX`);
//! - `gg:node:<id>`: node id leases.
//!
//! Writes are one Lua script per player and batch (atomic over that player's keys, which a
//! cluster keeps in one slot): it folds the player's results in Lua and touches Redis a
//! handful of times whatever their number. Then one `ZADD LT` per leaderboard carries every
//! player's totals: setting an absolute score is safe to repeat and to race between instances.
//! Its throughput, and the versions it replaced, are measured with scripts/loadtest-store
//! (docs/BENCHMARKS.md, "The Redis store under load").

use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Script, Value};

use super::StoreError;
use super::game_id::{GameId, MAX_NODE_ID};
use super::idempotency::{self, Begin, Fingerprint, StoredAnswer};
use super::model::{GameRecord, GameSummary, PlayerStats, Ranked, Window};
use crate::game::{Choice, Winner};

/// Folds players' results of a batch into their hashes and histories: per player one read of
/// the hash, one write of it, one push to the history and the keys' expiry, whatever the
/// number of results (a script issuing an update per result was Redis-bound well below it;
/// docs/BENCHMARKS.md). KEYS: each player's
/// stats hash and history list. ARGV: the writing node, games kept, retention in ms, then per player the number
/// of results followed by, per result in the order played: game id (20 digits, zero-padded, so
/// string order is numeric order), w/l/t, choice, day key, week key, history entry. Results at
/// or below the node's newest applied id for that player are skipped: a node's results for a
/// player arrive in id order, so that is exactly the set already applied. Returns one line per
/// player: wins, day, day wins, week, week wins after the batch, which boards changed
/// (`adw`, `-` for unchanged) and how many results were skipped as already applied,
/// space-separated. The caller sends each player's results sorted by id, and the newest
/// applied id kept is the maximum, so results that reached the writer out of id order (two
/// worker threads racing to the queue) are all applied once. One string
/// rather than an array of five per player: redis-rs's reply parser (combine) costs per value
/// parsed and dominated a profile of scripts/loadtest-store (docs/BENCHMARKS.md, redis-rs#2184).
const APPLY_SCRIPT: &str = r"
local node_field = 'n:' .. ARGV[1]
local keep_games = tonumber(ARGV[2])
local retention_ms = ARGV[3]
local fields = {'rounds', 'wins', 'losses', 'ties', 'rock', 'paper', 'scissors', 'streak',
                'best_streak', 'day', 'day_wins', 'week', 'week_wins', node_field}
local out = {}
local at = 4
for p = 1, #KEYS, 2 do
  local stats, games = KEYS[p], KEYS[p + 1]
  local count = tonumber(ARGV[at])
  at = at + 1
  local h = redis.call('HMGET', stats, unpack(fields))
  local v = {}
  for f = 1, 9 do v[fields[f]] = tonumber(h[f] or '0') end
  local day, day_wins = h[10] or '', tonumber(h[11] or '0')
  local week, week_wins = h[12] or '', tonumber(h[13] or '0')
  local last = h[14] or ''
  local newest = last
  local entries = {}
  local old_wins, old_day, old_day_wins = v.wins, day, day_wins
  local old_week, old_week_wins, first = week, week_wins, v.rounds == 0
  local skipped = 0
  for i = at, at + 6 * (count - 1), 6 do
    local id, result, choice, d, w = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
    if id > last then
      if id > newest then newest = id end
      v.rounds = v.rounds + 1
      v[choice] = v[choice] + 1
      local won = result == 'w'
      if won then
        v.wins = v.wins + 1
        v.streak = v.streak + 1
        if v.streak > v.best_streak then v.best_streak = v.streak end
      else
        if result == 'l' then v.losses = v.losses + 1 else v.ties = v.ties + 1 end
        v.streak = 0
      end
      if d > day then day, day_wins = d, 0 end
      if d == day and won then day_wins = day_wins + 1 end
      if w > week then week, week_wins = w, 0 end
      if w == week and won then week_wins = week_wins + 1 end
      entries[#entries + 1] = ARGV[i + 5]
    else
      skipped = skipped + 1
    end
  end
  at = at + 6 * count
  if #entries > 0 then
    redis.call('HSET', stats, 'rounds', v.rounds, 'wins', v.wins, 'losses', v.losses,
               'ties', v.ties, 'rock', v.rock, 'paper', v.paper, 'scissors', v.scissors,
               'streak', v.streak, 'best_streak', v.best_streak, 'day', day,
               'day_wins', day_wins, 'week', week, 'week_wins', week_wins, node_field, newest)
    if redis.call('LPUSH', games, unpack(entries)) > keep_games then
      redis.call('LTRIM', games, 0, keep_games - 1)
    end
    -- Refreshed on a player's first play of each day: retention holds to within a day, and
    -- most batches skip the two calls.
    if day ~= old_day then
      redis.call('PEXPIRE', stats, retention_ms)
      redis.call('PEXPIRE', games, retention_ms)
    end
  end
  -- Which boards need this player's score: those where it rose or the player is new, and all
  -- of them after a skipped (already applied) result, whose boards a failed try may have missed.
  local changed = 'adw'
  if skipped == 0 then
    changed = (v.wins > old_wins or first) and 'a' or '-'
    changed = changed .. ((day ~= old_day or day_wins > old_day_wins) and 'd' or '-')
    changed = changed .. ((week ~= old_week or week_wins > old_week_wins) and 'w' or '-')
  end
  out[#out + 1] = table.concat({v.wins, day, day_wins, week, week_wins, changed, skipped}, ' ')
end
return table.concat(out, '\n')
";

/// Most players one script call folds: bounds how long one call holds Redis (measured in
/// docs/BENCHMARKS.md, "The Redis store under load"), so reads are not stuck behind it.
const PLAYERS_PER_CALL: usize = 16;
/// The writer's script calls in flight at once.
const CALLS_IN_FLIGHT: usize = 4;

/// A game in a player's history list: `<game id> <player choice><computer choice><winner>` as
/// initials, e.g. `30405828474880001 rsp`. About 20 bytes instead of 150 for the JSON the API
/// shows: 100 games for each of a million players is 2 GB less in Redis.
fn history_entry(record: &GameRecord) -> String {
    let initial = |name: &str| name.as_bytes()[0] as char;
    format!(
        "{} {}{}{}",
        record.game_id.0,
        initial(record.player_choice.name()),
        initial(record.computer_choice.name()),
        initial(record.winner.name()),
    )
}

/// Reads a [`history_entry`] back; `None` for anything else (never written by this code).
fn parse_history_entry(entry: &str) -> Option<GameSummary> {
    let (id, initials) = entry.split_once(' ')?;
    let choice = |initial: u8| {
        Choice::ALL
            .into_iter()
            .find(|c| c.name().as_bytes()[0] == initial)
    };
    let winner = |initial: u8| {
        [Winner::Player, Winner::Computer, Winner::Tie]
            .into_iter()
            .find(|w| w.name().as_bytes()[0] == initial)
    };
    let &[player_choice, computer_choice, won] = initials.as_bytes() else {
        return None;
    };
    Some(GameSummary::of(
        GameId(id.parse().ok()?),
        choice(player_choice)?,
        choice(computer_choice)?,
        winner(won)?,
    ))
}

/// The cluster slot of a player's keys (CRC16 of the hash tag, the player id, mod 16384).
fn slot_of(player: &str) -> u16 {
    crc16::State::<crc16::XMODEM>::calculate(player.as_bytes()) % 16_384
}

const RENEW_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

const RELEASE_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Either kind of connection; both multiplex, so clones share one socket per node.
#[derive(Clone)]
pub(super) enum Connection {
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

/// What the Redis store keeps, and for how long.
#[derive(Clone, Copy, Debug)]
pub struct RedisLimits {
    pub games_kept: usize,
    /// Entries each leaderboard keeps (those with the most wins).
    pub board_size: usize,
    /// A player's keys expire this long after their latest play.
    pub retention: Duration,
}

pub struct RedisStore {
    connection: Connection,
    apply: Script,
    renew: Script,
    release: Script,
    limits: RedisLimits,
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
        limits: RedisLimits,
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
            release: Script::new(RELEASE_SCRIPT),
            limits,
            kind,
        })
    }

    fn connection(&self) -> Connection {
        self.connection.clone()
    }

    /// The connection, for the accounts' keys ([`super::directory`]) to share.
    pub(super) fn shared_connection(&self) -> Connection {
        self.connection()
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let _: String = redis::cmd("PING")
            .query_async(&mut self.connection())
            .await?;
        Ok(())
    }

    /// Applies a batch written by node `node`: one script per player, run concurrently over
    /// the multiplexed connection, then one `ZADD LT` per leaderboard. Returns how many results
    /// were skipped as already applied.
    pub async fn apply(&self, node: u16, batch: &[GameRecord]) -> Result<u64, StoreError> {
        let mut by_player: Vec<(&str, Vec<&GameRecord>)> = Vec::new();
        let mut index = std::collections::HashMap::new();
        for record in batch {
            let slot = *index.entry(record.player.as_str()).or_insert_with(|| {
                by_player.push((record.player.as_str(), Vec::new()));
                by_player.len() - 1
            });
            by_player[slot].1.push(record);
        }
        // Apply by id: the script skips ids at or below the newest applied one, so a player's
        // results must go in id order, whatever order the worker threads queued them in.
        for (_, records) in &mut by_player {
            records.sort_unstable_by_key(|record| record.game_id);
        }
        // A batch nearly always falls in one day and one week: format each key once.
        let mut window_keys: Vec<(Window, u32, String)> = Vec::new();
        let mut key_of = |window: Window, index: u32| -> String {
            if let Some((_, _, key)) = window_keys
                .iter()
                .find(|(w, i, _)| *w == window && *i == index)
            {
                return key.clone();
            }
            let key = window.key_of(index);
            window_keys.push((window, index, key.clone()));
            key
        };
        // One call per group of players: any players on one server, players of one slot in a
        // cluster (a script's keys must share a slot there).
        let mut groups: Vec<(u16, Vec<usize>)> = Vec::new();
        for (position, (player, _)) in by_player.iter().enumerate() {
            let slot = match self.connection {
                Connection::Standalone(_) => 0,
                Connection::Cluster(_) => slot_of(player),
            };
            match groups
                .iter_mut()
                .find(|(s, members)| *s == slot && members.len() < PLAYERS_PER_CALL)
            {
                Some((_, members)) => members.push(position),
                None => groups.push((slot, vec![position])),
            }
        }
        let calls: Vec<_> = groups
            .iter()
            .map(|(_, members)| {
                let mut invocation = self.apply.prepare_invoke();
                invocation
                    .arg(node)
                    .arg(self.limits.games_kept)
                    .arg(self.limits.retention.as_millis() as u64);
                for &position in members {
                    let (player, records) = &by_player[position];
                    invocation
                        .key(player_key(player, "stats"))
                        .key(player_key(player, "games"))
                        .arg(records.len());
                    for record in records {
                        let result = match record.winner {
                            Winner::Player => "w",
                            Winner::Computer => "l",
                            Winner::Tie => "t",
                        };
                        let entry = history_entry(record);
                        invocation
                            .arg(format!("{:020}", record.game_id.0))
                            .arg(result)
                            .arg(record.player_choice.name())
                            .arg(key_of(Window::Day, record.day()))
                            .arg(key_of(Window::Week, record.week()))
                            .arg(entry);
                    }
                }
                let mut connection = self.connection();
                async move {
                    let totals: String = invocation.invoke_async(&mut connection).await?;
                    Ok::<_, StoreError>(totals)
                }
            })
            .collect();
        // A few calls in flight keep Redis busy; more would only queue reads behind them.
        let results: Vec<String> = futures_util::stream::iter(calls)
            .buffered(CALLS_IN_FLIGHT)
            .try_collect()
            .await?;
        // One line of five figures per player, in group order.
        let mut totals: Vec<Vec<&str>> = vec![Vec::new(); by_player.len()];
        for ((_, members), lines) in groups.iter().zip(&results) {
            for (&position, line) in members.iter().zip(lines.split('\n')) {
                totals[position] = line.split(' ').collect();
            }
        }
        // Each board's players and scores (minus wins), for one ZADD per board.
        type Boards<'p> = Vec<(Window, String, Vec<(i64, &'p str)>)>;
        fn add<'p>(boards: &mut Boards<'p>, window: Window, key: &str, wins: u64, player: &'p str) {
            let score = -(wins as i64);
            match boards.iter_mut().find(|(w, k, _)| *w == window && k == key) {
                Some((_, _, members)) => members.push((score, player)),
                None => boards.push((window, key.to_owned(), vec![(score, player)])),
            }
        }
        let mut boards: Boards<'_> = Vec::new();
        let skipped: u64 = totals
            .iter()
            .filter_map(|fields| fields.get(6)?.parse::<u64>().ok())
            .sum();
        for ((player, _), totals) in by_player.iter().zip(totals) {
            let changed = totals.get(5).copied().unwrap_or("adw").as_bytes();
            let changed = |flag: u8| changed.contains(&flag);
            let number = |index: usize| {
                totals
                    .get(index)
                    .and_then(|text| text.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let text = |index: usize| totals.get(index).copied().unwrap_or_default();
            // A board whose score did not move is left alone: fewer members per ZADD.
            if changed(b'a') {
                add(&mut boards, Window::All, "all", number(0), player);
            }
            if changed(b'd') && !text(1).is_empty() {
                add(&mut boards, Window::Day, text(1), number(2), player);
            }
            if changed(b'w') && !text(3).is_empty() {
                add(&mut boards, Window::Week, text(3), number(4), player);
            }
        }
        let mut pipeline = redis::pipe();
        for (window, key, members) in &boards {
            let board = board_key(*window, key);
            pipeline
                .cmd("ZADD")
                .arg(&board)
                .arg("LT")
                .arg(members)
                .ignore()
                // Scores are minus wins: past the bound, the players with the fewest go.
                .cmd("ZREMRANGEBYRANK")
                .arg(&board)
                .arg(self.limits.board_size)
                .arg(-1)
                .ignore();
            if let Some(retention) = window.retention() {
                pipeline
                    .cmd("EXPIRE")
                    .arg(&board)
                    .arg(retention.as_secs())
                    .arg("NX")
                    .ignore();
            }
        }
        let () = pipeline.query_async(&mut self.connection()).await?;
        Ok(skipped)
    }

    /// Erases a player: its stats and history, and its places on the all-time board and the
    /// current day's and week's (older windows' boards are no longer read and expire).
    pub async fn forget(&self, player: &str) -> Result<(), StoreError> {
        let _: () = redis::cmd("DEL")
            .arg(player_key(player, "stats"))
            .arg(player_key(player, "games"))
            .query_async(&mut self.connection())
            .await?;
        for window in [Window::All, Window::Day, Window::Week] {
            let key = window.key_of(window.current_index());
            let _: () = redis::cmd("ZREM")
                .arg(board_key(window, &key))
                .arg(player)
                .query_async(&mut self.connection())
                .await?;
        }
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
            // Redis takes a signed 64-bit index: "all" (usize::MAX, from an export) is -1.
            .arg(i64::try_from(limit.saturating_sub(1)).unwrap_or(-1));
        let (exists, games): (bool, Vec<String>) =
            pipeline.query_async(&mut self.connection()).await?;
        if !exists {
            return Ok(None);
        }
        Ok(Some(
            games
                .iter()
                .filter_map(|entry| parse_history_entry(entry))
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

    /// Gives the lease on `id` back, if it is still ours, so a restart can have it at once.
    pub async fn release_node_id(&self, id: u16, token: &str) -> Result<(), StoreError> {
        let _: i64 = self
            .release
            .key(format!("gg:node:{id}"))
            .arg(token)
            .invoke_async(&mut self.connection())
            .await?;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::model::PlayerId;

    #[test]
    fn history_entries_round_trip() {
        for player_choice in Choice::ALL {
            for computer_choice in Choice::ALL {
                let record = GameRecord {
                    game_id: GameId(30_405_828_474_880_001),
                    player: PlayerId::from("ann").unwrap(),
                    player_choice,
                    computer_choice,
                    winner: crate::game::judge(player_choice, computer_choice).winner,
                };
                let entry = history_entry(&record);
                assert!(entry.len() <= 24, "{entry}");
                assert_eq!(parse_history_entry(&entry), Some(record.summary()));
            }
        }
        for junk in ["", "x", "1 rp", "1 rpq", "a rpt", "1 rpt extra"] {
            assert_eq!(parse_history_entry(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn slots_match_redis_cluster() {
        // Known values from CLUSTER KEYSLOT.
        assert_eq!(slot_of("foo"), 12_182);
        assert_eq!(slot_of("user1000"), 3_443);
    }
}

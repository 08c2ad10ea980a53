//! The Redis store, when there is one: reachable, how fast, which version, what it evicts and
//! what survives its restart. Read-only: `PING`, `INFO server`, `CONFIG GET`.
//!
//! Besides the store module this is the one place that talks to Redis, and it only asks: the
//! store's key layout and writes stay in `store/`. For a cluster, each seed node in the URL is
//! checked on its own (the settings are per node).

use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;

use super::Check;

/// Round trips measured for the latency figure.
const PINGS: usize = 5;
/// A median round trip above this is slow for a store on the same network: every store call
/// pays at least one.
const SLOW_PING: Duration = Duration::from_millis(10);
/// The version whose commands the store uses (`ZADD ... LT`, `EXPIRE ... NX`).
const MIN_MAJOR_VERSION: u32 = 7;

pub(super) async fn check_redis(url: &str, timeout: Duration) -> Vec<Check> {
    let nodes: Vec<String> = match url.strip_prefix("redis+cluster://") {
        Some(seeds) => seeds
            .split(',')
            .map(|seed| format!("redis://{}", seed.trim()))
            .collect(),
        None => vec![url.to_owned()],
    };
    let mut checks = Vec::new();
    for node in nodes {
        checks.extend(check_node(&node, timeout).await);
    }
    checks
}

async fn check_node(url: &str, timeout: Duration) -> Vec<Check> {
    const NAME: &str = "redis_reachable";
    let expected = format!(
        "answers within store_timeout ({}), PING median < {} ms",
        humantime::format_duration(timeout),
        SLOW_PING.as_millis()
    );
    let client = match redis::Client::open(url) {
        Ok(client) => client,
        // The URL is not shown: it may hold a password.
        Err(error) => {
            return vec![Check::fail(
                NAME,
                format!("invalid store URL: {error}"),
                expected,
                "store = \"redis://host:6379\"",
            )];
        }
    };
    // Only host and port are shown, never the URL's password.
    let node = client.get_connection_info().addr().to_string();
    let unreachable = |what: String| {
        vec![Check::fail(
            NAME,
            format!("{node}: {what}"),
            expected.clone(),
            format!(
                "redis-cli -u redis://{node} PING from this host; check the address, the \
                 firewall and Redis's `bind`/`protected-mode`"
            ),
        )]
    };
    let mut connection =
        match tokio::time::timeout(timeout, client.get_multiplexed_async_connection()).await {
            Err(_) => return unreachable(format!("no connection within {timeout:?}")),
            Ok(Err(error)) => return unreachable(error.to_string()),
            Ok(Ok(connection)) => connection,
        };
    let mut round_trips = Vec::with_capacity(PINGS);
    for _ in 0..PINGS {
        let started = Instant::now();
        match ask::<String>(&mut connection, &["PING"], timeout).await {
            Ok(_) => round_trips.push(started.elapsed()),
            Err(error) => return unreachable(format!("PING: {error}")),
        }
    }
    let info = ask::<String>(&mut connection, &["INFO", "server"], timeout).await;
    let policy = config_get(&mut connection, "maxmemory-policy", timeout).await;
    let appendonly = config_get(&mut connection, "appendonly", timeout).await;
    let save = config_get(&mut connection, "save", timeout).await;
    vec![
        judge_latency(&node, &mut round_trips, timeout, expected),
        judge_version(&node, info),
        judge_eviction(&node, policy),
        judge_persistence(&node, appendonly, save),
    ]
}

/// One command, bounded by `timeout`; errors as text for the report.
async fn ask<T: redis::FromRedisValue>(
    connection: &mut MultiplexedConnection,
    command: &[&str],
    timeout: Duration,
) -> Result<T, String> {
    let mut cmd = redis::cmd(command[0]);
    for arg in &command[1..] {
        cmd.arg(*arg);
    }
    match tokio::time::timeout(timeout, cmd.query_async::<T>(connection)).await {
        Err(_) => Err(format!("no answer within {timeout:?}")),
        Ok(answer) => answer.map_err(|error| error.to_string()),
    }
}

/// `CONFIG GET name`: its value, or why it could not be read (managed Redis services often
/// rename or disable CONFIG).
async fn config_get(
    connection: &mut MultiplexedConnection,
    name: &str,
    timeout: Duration,
) -> Result<String, String> {
    let pair: Vec<String> = ask(connection, &["CONFIG", "GET", name], timeout).await?;
    pair.into_iter()
        .nth(1)
        .ok_or_else(|| format!("CONFIG GET {name}: no such setting"))
}

fn millis(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

fn judge_latency(
    node: &str,
    round_trips: &mut [Duration],
    timeout: Duration,
    expected: String,
) -> Check {
    const NAME: &str = "redis_reachable";
    round_trips.sort_unstable();
    let median = round_trips[round_trips.len() / 2];
    let slowest = round_trips[round_trips.len() - 1];
    let measured = format!(
        "{node}: PING median {}, max {} ({} pings)",
        millis(median),
        millis(slowest),
        round_trips.len()
    );
    let fix = "run Redis in the same zone as the instances; `redis-cli --latency` and \
               `LATENCY DOCTOR` on the Redis host";
    if median >= timeout / 2 {
        return Check::fail(NAME, measured, expected, fix)
            .with_note("at this latency store calls time out and the circuit breaker opens");
    }
    if median >= SLOW_PING {
        return Check::warn(NAME, measured, expected, fix);
    }
    Check::pass(NAME, measured, expected)
}

/// `redis_version:7.2.4` from `INFO server` (Valkey reports a compatible one there too).
fn judge_version(node: &str, info: Result<String, String>) -> Check {
    const NAME: &str = "redis_version";
    let expected = format!(">= {MIN_MAJOR_VERSION}.0 (the store uses ZADD LT and EXPIRE NX)");
    const FIX: &str = "upgrade Redis to 7 or later (Debian 12: apt-get install redis-server)";
    let info = match info {
        Ok(info) => info,
        Err(error) => return Check::warn(NAME, format!("{node}: INFO: {error}"), expected, FIX),
    };
    let Some(version) = info
        .lines()
        .find_map(|line| line.trim().strip_prefix("redis_version:"))
    else {
        return Check::warn(
            NAME,
            format!("{node}: no redis_version in INFO"),
            expected,
            FIX,
        );
    };
    let major: Option<u32> = version.split('.').next().and_then(|m| m.parse().ok());
    let measured = format!("{node}: {version}");
    match major {
        Some(major) if major >= MIN_MAJOR_VERSION => Check::pass(NAME, measured, expected),
        _ => Check::fail(NAME, measured, expected, FIX)
            .with_note("older versions refuse the store's writes with a syntax error"),
    }
}

/// `maxmemory-policy`. Registered accounts have no TTL and must never be evicted; the keys
/// with a TTL (player stats and history, idempotency keys, guest accounts, node-id leases)
/// may go under memory pressure at some cost.
fn judge_eviction(node: &str, policy: Result<String, String>) -> Check {
    const NAME: &str = "redis_maxmemory_policy";
    const EXPECTED: &str = "noeviction, or a volatile-* policy";
    const FIX: &str = "redis-cli CONFIG SET maxmemory-policy noeviction (and in redis.conf)";
    let policy = match policy {
        Ok(policy) => policy,
        Err(error) => {
            return Check::warn(NAME, format!("{node}: {error}"), EXPECTED, FIX)
                .with_note("CONFIG may be disabled by a managed service: check its settings");
        }
    };
    let measured = format!("{node}: {policy}");
    if policy == "noeviction" {
        return Check::pass(NAME, measured, EXPECTED).with_note(
            "when Redis is full, writes fail: the store's circuit breaker opens and /play goes on \
             (results wait in the queue); nothing is lost silently",
        );
    }
    if policy.starts_with("volatile-") {
        return Check::pass(NAME, measured, EXPECTED).with_note(
            "only keys with a TTL can go: player stats and history, idempotency keys, guest \
             accounts, and node-id leases (an evicted lease lets another instance claim the id \
             until the next renewal, 10 s, notices); registered accounts and sessions stay",
        );
    }
    Check::fail(NAME, measured, EXPECTED, FIX).with_note(
        "an allkeys-* policy evicts registered accounts and sessions, which have no TTL: users \
         lose their accounts when Redis fills up",
    )
}

/// `appendonly` and `save`: accounts live only in Redis, so what a Redis restart keeps is what
/// users keep.
fn judge_persistence(
    node: &str,
    appendonly: Result<String, String>,
    save: Result<String, String>,
) -> Check {
    const NAME: &str = "redis_persistence";
    const EXPECTED: &str = "appendonly yes";
    const FIX: &str = "redis-cli CONFIG SET appendonly yes && redis-cli CONFIG REWRITE";
    let (appendonly, save) = match (appendonly, save) {
        (Ok(appendonly), Ok(save)) => (appendonly, save),
        (Err(error), _) | (_, Err(error)) => {
            return Check::warn(NAME, format!("{node}: {error}"), EXPECTED, FIX)
                .with_note("CONFIG may be disabled by a managed service: check its settings");
        }
    };
    let measured = format!("{node}: appendonly {appendonly}, save {:?}", save.trim());
    if appendonly == "yes" {
        return Check::pass(NAME, measured, EXPECTED);
    }
    if !save.trim().is_empty() {
        return Check::warn(NAME, measured, EXPECTED, FIX).with_note(
            "snapshots only: a crash loses accounts, sessions and results since the last one",
        );
    }
    Check::fail(NAME, measured, EXPECTED, FIX)
        .with_note("no persistence: a Redis restart loses every account, session and result")
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::*;
    use std::process::{Child, Command, Stdio};

    const TIMEOUT: Duration = Duration::from_secs(2);

    fn ok(text: &str) -> Result<String, String> {
        Ok(text.to_owned())
    }

    #[test]
    fn only_redis_7_or_later_passes() {
        let info = |v: &str| {
            ok(&format!(
                "# Server\r\nredis_version:{v}\r\nredis_mode:standalone\r\n"
            ))
        };
        assert_eq!(judge_version("n", info("7.0.15")).status, Status::Pass);
        assert_eq!(judge_version("n", info("8.2.1")).status, Status::Pass);
        let old = judge_version("n", info("6.2.14"));
        assert_eq!(
            (old.status, old.measured.as_str()),
            (Status::Fail, "n: 6.2.14")
        );
        assert_eq!(judge_version("n", ok("# Server\r\n")).status, Status::Warn);
        assert_eq!(
            judge_version("n", Err("NOPERM".into())).status,
            Status::Warn
        );
    }

    #[test]
    fn eviction_may_take_only_keys_with_a_ttl() {
        assert_eq!(judge_eviction("n", ok("noeviction")).status, Status::Pass);
        let volatile = judge_eviction("n", ok("volatile-lru"));
        assert_eq!(volatile.status, Status::Pass);
        assert!(volatile.note.unwrap().contains("node-id leases"));
        let allkeys = judge_eviction("n", ok("allkeys-lru"));
        assert_eq!(allkeys.status, Status::Fail);
        assert!(allkeys.fix.unwrap().contains("maxmemory-policy noeviction"));
        let refused = judge_eviction("n", Err("ERR unknown command 'CONFIG'".into()));
        assert_eq!(refused.status, Status::Warn);
    }

    #[test]
    fn persistence_should_be_the_append_only_file() {
        assert_eq!(
            judge_persistence("n", ok("yes"), ok("")).status,
            Status::Pass
        );
        assert_eq!(
            judge_persistence("n", ok("no"), ok("3600 1 300 100 60 10000")).status,
            Status::Warn
        );
        assert_eq!(
            judge_persistence("n", ok("no"), ok("")).status,
            Status::Fail
        );
        assert_eq!(
            judge_persistence("n", Err("refused".into()), ok("")).status,
            Status::Warn
        );
    }

    #[test]
    fn latency_is_judged_by_the_median_round_trip() {
        let ms = Duration::from_millis;
        let judge =
            |trips: &mut [Duration]| judge_latency("n", trips, ms(500), String::new()).status;
        assert_eq!(
            judge(&mut [ms(1), ms(1), ms(300), ms(1), ms(2)]),
            Status::Pass
        );
        assert_eq!(judge(&mut [ms(12); 5]), Status::Warn);
        assert_eq!(judge(&mut [ms(250); 5]), Status::Fail);
    }

    /// A `redis-server` of our own on a free loopback port, without persistence, stopped on
    /// drop. Needs the Debian package redis-server (`scripts/test` installs it).
    struct RedisServer {
        port: u16,
        dir: std::path::PathBuf,
        child: Child,
    }

    impl RedisServer {
        fn start() -> RedisServer {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            // Its own directory: a test that turns the append-only file on makes Redis write it.
            let dir = std::env::temp_dir().join(format!(
                "guess-game-doctor-redis-{}-{port}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--dir"])
                .arg(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server is installed (apt-get install redis-server)");
            let server = RedisServer { port, dir, child };
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "redis-server did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
            server
        }

        fn url(&self) -> String {
            format!("redis://127.0.0.1:{}", self.port)
        }
    }

    impl Drop for RedisServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn statuses(checks: &[Check]) -> Vec<(&'static str, Status)> {
        checks.iter().map(|c| (c.name, c.status)).collect()
    }

    #[tokio::test]
    async fn a_real_redis_is_measured_and_its_missing_persistence_fails() {
        let redis = RedisServer::start();
        let checks = check_redis(&redis.url(), TIMEOUT).await;
        assert_eq!(
            statuses(&checks),
            [
                ("redis_reachable", Status::Pass),
                ("redis_version", Status::Pass),
                ("redis_maxmemory_policy", Status::Pass),
                ("redis_persistence", Status::Fail),
            ],
            "{checks:#?}"
        );
        assert!(
            checks[0]
                .measured
                .starts_with(&format!("127.0.0.1:{}: PING median", redis.port))
        );
        assert!(
            checks[3].measured.ends_with("appendonly no, save \"\""),
            "{checks:#?}"
        );

        // The fix the check names makes it pass.
        let client = redis::Client::open(redis.url()).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        let _: String = ask(
            &mut connection,
            &["CONFIG", "SET", "appendonly", "yes"],
            TIMEOUT,
        )
        .await
        .unwrap();
        let _: String = ask(
            &mut connection,
            &["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"],
            TIMEOUT,
        )
        .await
        .unwrap();
        let checks = check_redis(&redis.url(), TIMEOUT).await;
        assert_eq!(checks[2].status, Status::Fail, "{checks:#?}");
        assert_eq!(checks[3].status, Status::Pass, "{checks:#?}");
    }

    #[tokio::test]
    async fn every_seed_of_a_cluster_url_is_checked() {
        let (first, second) = (RedisServer::start(), RedisServer::start());
        let url = format!(
            "redis+cluster://127.0.0.1:{},127.0.0.1:{}",
            first.port, second.port
        );
        let checks = check_redis(&url, TIMEOUT).await;
        assert_eq!(checks.len(), 8, "{checks:#?}");
        assert!(
            checks[4]
                .measured
                .starts_with(&format!("127.0.0.1:{}", second.port))
        );
    }

    #[tokio::test]
    async fn a_closed_port_fails_at_once_and_hides_the_password() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let checks = check_redis(&format!("redis://:hunter2@127.0.0.1:{port}"), TIMEOUT).await;
        assert_eq!(statuses(&checks), [("redis_reachable", Status::Fail)]);
        let json = serde_json::to_string(&checks).unwrap();
        assert!(!json.contains("hunter2"), "{json}");
        assert!(checks[0].fix.as_ref().unwrap().contains("redis-cli"));
    }

    /// A peer that accepts the connection and never answers (a hung Redis, a black-holing
    /// proxy): the check ends at its deadline. Real time, since the socket is real.
    #[tokio::test]
    async fn a_redis_that_never_answers_fails_at_the_deadline() {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", silent.local_addr().unwrap());
        let started = Instant::now();
        let checks = check_redis(&url, Duration::from_millis(300)).await;
        assert_eq!(statuses(&checks), [("redis_reachable", Status::Fail)]);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }
}

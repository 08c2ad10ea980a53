//! Real-time play across instances sharing one Redis (issue 15): players on different
//! instances are matched and play; an owner killed mid-round (SIGKILL) loses nothing, its
//! players resume on another instance, the match continues from its log in Redis, and the
//! result is recorded once; an owner cut off from Redis (in a network namespace of its own)
//! stops running its match before its lease runs out. Each test starts its own Redis and
//! instances on loopback.

use std::time::Duration;

use serde_json::{Value, json};

use crate::accounts::guest;
use crate::cli::{BINARY, ServerProcess};
use crate::helpers::{TestApp, spawn_app_with};
use crate::netns::Netns;
use crate::realtime::{Player, connect_at, play_round};
use crate::redis::{RedisCluster, RedisServer};

/// An in-process instance on `url`'s Redis, with real accounts.
async fn instance(url: &str) -> TestApp {
    let url = url.to_owned();
    spawn_app_with(move |settings| {
        settings.accounts.trust_player_header = false;
        settings.accounts.accounts_per_address_per_hour = 0;
        settings.store.url = url;
    })
    .await
}

/// A guest account made through `accounts` (shared by every instance), connected to the
/// instance at `address` and greeted.
async fn join_at(accounts: &TestApp, address: &str) -> Player {
    let (account, token, _, _) = guest(accounts).await;
    let socket = connect_at(address, &token, None).await.expect("upgrade");
    let mut player = Player::on(socket, token, account);
    player.hello().await;
    player
}

/// Results recorded in Redis (the results stream's length).
fn results_recorded(redis: &RedisServer) -> u64 {
    redis
        .cli(&["XLEN", "gg:{rt}:results"])
        .trim()
        .parse()
        .unwrap_or(0)
}

async fn queue(player: &mut Player, mode: &str) {
    let queued = player
        .request(json!({"type": "queue", "mode": mode, "opponent": "human"}))
        .await;
    assert_eq!(queued["type"], "queued", "{queued}");
}

async fn matched(player: &mut Player) -> Value {
    player.until(|m| m["type"] == "matched").await
}

/// Waits (bounded) until `done` holds.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    for _ in 0..100 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Two instances on `url`, a player on each: matched, a best-of-3 with chat, one result.
async fn play_across_two_instances(url: &str, results: impl Fn() -> u64) {
    let one = instance(url).await;
    let two = instance(url).await;
    let mut a = join_at(&one, &one.address.to_string()).await;
    let mut b = join_at(&one, &two.address.to_string()).await;
    queue(&mut a, "best_of_3").await;
    queue(&mut b, "best_of_3").await;
    let matched_a = matched(&mut a).await;
    let matched_b = matched(&mut b).await;
    assert_eq!(matched_a["match_id"], matched_b["match_id"]);
    assert_eq!(matched_a["opponent"]["kind"], "human");
    assert_ne!(matched_a["seat"], matched_b["seat"]);
    // The earlier ticket sits in seat A, by the instances' clocks: two tickets queued within
    // their skew of each other may sit either way.
    if matched_a["seat"] == "b" {
        std::mem::swap(&mut a, &mut b);
    }
    let revealed = play_round(&mut a, &mut b, 1, "rock", "scissors").await;
    assert_eq!(revealed["event"]["kind"]["winner"], "a");
    let chat = b.request(json!({"type": "chat", "text": "gg"})).await;
    assert_eq!(chat["type"], "ack", "{chat}");
    let line = a.until(|m| m["type"] == "chat").await;
    assert_eq!(line["text"], "gg");
    play_round(&mut a, &mut b, 2, "paper", "rock").await;
    let result_a = a.until(|m| m["type"] == "match_result").await;
    let result_b = b.until(|m| m["type"] == "match_result").await;
    assert_eq!(result_a["result"], "won");
    assert_eq!(result_b["result"], "lost");
    assert!(result_a["rating_after"].as_f64() > result_a["rating_before"].as_f64());
    eventually("the result in Redis", || results() == 1).await;
    // Both are free to queue again, on either instance.
    queue(&mut b, "best_of_1").await;
}

#[tokio::test]
async fn players_on_different_instances_are_matched_and_play_a_whole_match() {
    let redis = RedisServer::start();
    play_across_two_instances(&redis.url(), || results_recorded(&redis)).await;
}

#[tokio::test]
async fn players_on_different_instances_play_on_a_redis_cluster() {
    let cluster = RedisCluster::start();
    // The results stream lives on whichever node holds its slot; the others answer MOVED.
    let results = || {
        cluster
            .nodes
            .iter()
            .map(|node| {
                node.cli(&["XLEN", "gg:{rt}:results"])
                    .trim()
                    .parse()
                    .unwrap_or(0)
            })
            .sum::<u64>()
    };
    play_across_two_instances(&cluster.url(), results).await;
}

/// Two server processes on `url` and an in-process instance for accounts; A on the first,
/// B on the second, which runs their best-of-3 (B's instance found A's ticket waiting). Round
/// 1 is played (A wins) and A's move in round 2 is locked in.
struct Owned {
    survivor: ServerProcess,
    owner: ServerProcess,
    accounts: TestApp,
    survivor_at: String,
    a: Player,
    b: Player,
    match_id: Value,
}

const LONG_ROUNDS: [(&str, &str); 1] = [("GUESS_GAME_ROUND_TIMEOUT", "60s")];

async fn owned_by_the_second(url: &str) -> Owned {
    let store: [&std::ffi::OsStr; 2] = ["--store".as_ref(), url.as_ref()];
    let survivor = ServerProcess::start_with_env(&store, &LONG_ROUNDS).await;
    let owner = ServerProcess::start_with_env(&store, &LONG_ROUNDS).await;
    owned_by(survivor, owner, url).await
}

/// As [`owned_by_the_second`], with the two instances given (`url` the Redis of this side).
async fn owned_by(survivor: ServerProcess, owner: ServerProcess, url: &str) -> Owned {
    let accounts = instance(url).await;
    let survivor_at = survivor.url.authority().to_owned();
    let owner_at = owner.url.authority().to_owned();
    let mut a = join_at(&accounts, &survivor_at).await;
    let mut b = join_at(&accounts, &owner_at).await;
    queue(&mut a, "best_of_3").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    queue(&mut b, "best_of_3").await;
    let match_id = matched(&mut a).await["match_id"].clone();
    assert_eq!(matched(&mut b).await["match_id"], match_id);
    play_round(&mut a, &mut b, 1, "rock", "scissors").await;
    a.event("round_opened").await;
    b.event("round_opened").await;
    let ack = a
        .request(json!({"type": "move", "round": 2, "choice": "paper"}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    b.until(|m| m["event"]["kind"]["type"] == "locked").await;
    Owned {
        survivor,
        owner,
        accounts,
        survivor_at,
        a,
        b,
        match_id,
    }
}

impl Owned {
    /// B comes back on the surviving instance with its resume token and finds A's locked
    /// move of round 2; B's move ends the match (A won both rounds), recorded once.
    async fn b_resumes_on_the_survivor_and_the_match_ends(&mut self, redis: &RedisServer) {
        let b = &mut self.b;
        let socket = connect_at(&self.survivor_at, &b.token, None).await.unwrap();
        drop(std::mem::replace(&mut b.socket, socket));
        let resumed = b
            .request(json!({"type": "resume", "token": b.resume_token, "last_seq": 0}))
            .await;
        assert_eq!(resumed["type"], "resumed", "{resumed}");
        assert_eq!(resumed["match_id"], self.match_id);
        // Nothing was lost: A's lock in round 2 is in the log the match continues from.
        b.until(|m| {
            let kind = &m["event"]["kind"];
            kind["type"] == "locked" && kind["seat"] == "a" && kind["round"] == 2
        })
        .await;
        let ack = b
            .request(json!({"type": "move", "round": 2, "choice": "rock"}))
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
        let revealed = self.a.event("round_revealed").await;
        assert_eq!(revealed["event"]["kind"]["round"], 2);
        assert_eq!(revealed["event"]["kind"]["winner"], "a");
        let result_a = self.a.until(|m| m["type"] == "match_result").await;
        assert_eq!(result_a["result"], "won");
        let result_b = self.b.until(|m| m["type"] == "match_result").await;
        assert_eq!(result_b["result"], "lost");
        eventually("the result in Redis", || results_recorded(redis) == 1).await;
    }
}

/// The match's log in Redis, checked entry by entry: numbered from 0 without gaps (one writer
/// at a time), one end. Returns its length in events.
fn log_is_whole(redis: &RedisServer, match_id: &Value) -> usize {
    let key = format!("gg:{{m:{}}}:log", match_id.as_str().unwrap());
    let entries = redis.cli(&["LRANGE", &key, "1", "-1"]);
    let events: Vec<Value> = entries
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    for (index, event) in events.iter().enumerate() {
        assert_eq!(
            event["seq"], index as u64,
            "entry {index} of the log: {event}"
        );
    }
    let ends = events
        .iter()
        .filter(|e| e["kind"]["type"] == "match_ended")
        .count();
    assert_eq!(ends, 1, "one end in the log");
    events.len()
}

async fn metric(admin: &guess_game::client::ServerUrl, name: &str) -> f64 {
    let answer = admin
        .send(
            http::Method::GET,
            "/metrics",
            &[],
            "".into(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    String::from_utf8_lossy(&answer.body)
        .lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn an_owner_killed_mid_round_loses_nothing_and_its_players_resume_elsewhere() {
    let redis = RedisServer::start();
    let mut game = owned_by_the_second(&redis.url()).await;
    // Someone on the surviving instance watches the match the other one runs.
    let mut watcher = join_at(&game.accounts, &game.survivor_at).await;
    let ack = watcher
        .request(json!({"type": "spectate", "match_id": game.match_id}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    watcher.event("round_revealed").await;
    // The owner dies mid-round, with A's move locked in.
    game.owner.signal(libc::SIGKILL);
    game.b_resumes_on_the_survivor_and_the_match_ends(&redis)
        .await;
    // The spectator followed the match to the survivor and saw it end.
    let ended = watcher.event("match_ended").await;
    assert_eq!(ended["match_id"], game.match_id);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(results_recorded(&redis), 1, "recorded once");
    log_is_whole(&redis, &game.match_id);
    let _ = game.owner.child.wait();
    assert!(
        metric(
            &game.survivor.admin,
            "guess_game_cluster_matches_taken_total"
        )
        .await
            >= 1.0
    );
    game.survivor.stop().await;
}

#[tokio::test]
async fn an_owner_cut_off_from_redis_stops_running_its_match_and_its_players_resume_elsewhere() {
    // The owner runs in a network namespace of its own, reaching Redis at an address that can
    // be cut off alone: its players and its admin listener stay reachable.
    let netns = Netns::create();
    let redis = RedisServer::start_with(&["--bind", "127.0.0.1", &netns.server()]);
    let url = redis.url();
    let far = format!("redis://{}:{}", netns.server(), redis.port);
    let survivor =
        ServerProcess::start_with_env(&["--store".as_ref(), url.as_ref()], &LONG_ROUNDS).await;
    let inside = format!("{}:0", netns.inside());
    let owner = ServerProcess::launch(
        netns.command(BINARY),
        &inside,
        &inside,
        // The admin listener on the namespace's address, for its metrics.
        &["--store".as_ref(), far.as_ref(), "--admin-public".as_ref()],
        &LONG_ROUNDS,
    )
    .await;
    let mut game = owned_by(survivor, owner, &url).await;

    netns.cut_off_server();
    // Its leases cannot be renewed: before they run out the owner stops running the match
    // (self-fencing) and sends its player away to resume where Redis is reachable.
    assert_eq!(game.b.closed().await, 1001);
    assert_eq!(
        metric(&game.owner.admin, "guess_game_cluster_leases_lapsed_total").await,
        1.0
    );
    game.b_resumes_on_the_survivor_and_the_match_ends(&redis)
        .await;
    let length = log_is_whole(&redis, &game.match_id);

    // Healed: whatever the old owner still had queued for the log is refused (fenced).
    netns.heal();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        log_is_whole(&redis, &game.match_id),
        length,
        "nothing was written"
    );
    assert_eq!(results_recorded(&redis), 1, "recorded once");
    assert_eq!(game.owner.stop().await, Some(0));
    assert_eq!(game.survivor.stop().await, Some(0));
}

#[tokio::test]
async fn a_paused_owner_that_comes_back_cannot_write() {
    let redis = RedisServer::start();
    let mut game = owned_by_the_second(&redis.url()).await;
    // The owner stops (SIGSTOP: a long pause, a frozen VM): it cannot even notice its lease
    // running out. The survivor takes the match.
    game.owner.signal(libc::SIGSTOP);
    game.b_resumes_on_the_survivor_and_the_match_ends(&redis)
        .await;
    let length = log_is_whole(&redis, &game.match_id);
    // Back: it still thinks it runs the match, and B's old connection closing makes it try
    // to write. The fencing token moved on, so it cannot.
    game.owner.signal(libc::SIGCONT);
    let admin = game.owner.admin.clone();
    for _ in 0..50 {
        if metric(&admin, "guess_game_cluster_matches_fenced_total").await >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        metric(&admin, "guess_game_cluster_matches_fenced_total").await,
        1.0
    );
    assert_eq!(
        log_is_whole(&redis, &game.match_id),
        length,
        "nothing was written"
    );
    assert_eq!(results_recorded(&redis), 1, "recorded once");
    game.owner.stop().await;
    game.survivor.stop().await;
}

#[tokio::test]
async fn draining_an_owner_hands_its_match_over_with_nothing_but_a_resume() {
    let redis = RedisServer::start();
    let mut game = owned_by_the_second(&redis.url()).await;
    // A rolling restart reaches the owner: SIGTERM drains it.
    game.owner.signal(libc::SIGTERM);
    assert_eq!(
        game.b.until(|m| m["type"] == "draining").await["type"],
        "draining"
    );
    assert_eq!(game.b.closed().await, 1001, "closed as going away");
    game.b_resumes_on_the_survivor_and_the_match_ends(&redis)
        .await;
    assert_eq!(results_recorded(&redis), 1, "recorded once");
    log_is_whole(&redis, &game.match_id);
    let owner = game.owner;
    let exit = tokio::task::spawn_blocking(move || {
        let mut owner = owner;
        owner.child.wait().unwrap().code()
    })
    .await
    .unwrap();
    assert_eq!(exit, Some(0));
    game.survivor.stop().await;
}

#[tokio::test]
async fn a_redis_restart_mid_match_loses_nothing() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let one = instance(&url).await;
    let two = instance(&url).await;
    let mut a = join_at(&one, &one.address.to_string()).await;
    let mut b = join_at(&one, &two.address.to_string()).await;
    queue(&mut a, "best_of_3").await;
    queue(&mut b, "best_of_3").await;
    let matched_a = matched(&mut a).await;
    matched(&mut b).await;
    if matched_a["seat"] == "b" {
        std::mem::swap(&mut a, &mut b);
    }
    play_round(&mut a, &mut b, 1, "rock", "scissors").await;
    redis.restart();
    play_round(&mut a, &mut b, 2, "paper", "rock").await;
    assert_eq!(
        a.until(|m| m["type"] == "match_result").await["result"],
        "won"
    );
    assert_eq!(
        b.until(|m| m["type"] == "match_result").await["result"],
        "lost"
    );
    eventually("the result in Redis", || results_recorded(&redis) == 1).await;
    log_is_whole(&redis, &matched_a["match_id"]);
}

#[tokio::test]
async fn a_spectator_on_a_third_instance_watches_a_match_live_with_moves_sealed() {
    let redis = RedisServer::start();
    let url = redis.url();
    let one = instance(&url).await;
    let two = instance(&url).await;
    let three = instance(&url).await;
    let mut a = join_at(&one, &one.address.to_string()).await;
    let mut b = join_at(&one, &two.address.to_string()).await;
    let mut watcher = join_at(&one, &three.address.to_string()).await;
    queue(&mut a, "best_of_3").await;
    queue(&mut b, "best_of_3").await;
    let matched_a = matched(&mut a).await;
    matched(&mut b).await;
    if matched_a["seat"] == "b" {
        std::mem::swap(&mut a, &mut b);
    }
    let match_id = matched_a["match_id"].clone();
    let unknown = watcher
        .request(json!({"type": "spectate", "match_id": "00000000000000000000000000000000"}))
        .await;
    assert_eq!(unknown["code"], "match_unknown", "{unknown}");
    let ack = watcher
        .request(json!({"type": "spectate", "match_id": match_id}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    watcher.event("match_started").await;
    play_round(&mut a, &mut b, 1, "rock", "scissors").await;
    // The spectator saw both locks before the reveal, and no move in them.
    let mut seen = Vec::new();
    loop {
        let message = watcher.next().await;
        assert_eq!(message["type"], "event", "{message}");
        assert_eq!(message["match_id"], match_id);
        let kind = message["event"]["kind"]["type"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_ne!(
            kind, "move_sealed",
            "server-only entries never reach a spectator"
        );
        if kind == "round_revealed" {
            assert_eq!(message["event"]["kind"]["moves"]["a"], "rock");
            break;
        }
        if kind == "locked" {
            assert!(!message.to_string().contains("rock"), "{message}");
        }
        seen.push(kind);
    }
    assert_eq!(
        seen.iter().filter(|k| *k == "locked").count(),
        2,
        "{seen:?}"
    );
    play_round(&mut a, &mut b, 2, "paper", "rock").await;
    watcher.event("match_ended").await;
    let ack = watcher.request(json!({"type": "unspectate"})).await;
    assert_eq!(ack["code"], "not_spectating", "the match ended: {ack}");
}

async fn get_json(app: &TestApp, path: &str) -> Value {
    let answer = app
        .url
        .send(
            http::Method::GET,
            path,
            &[],
            "".into(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, http::StatusCode::OK, "{path}");
    serde_json::from_slice(&answer.body).unwrap()
}

#[tokio::test]
async fn presence_is_counted_over_instances_and_read_per_account_anywhere() {
    let redis = RedisServer::start();
    let url = redis.url();
    let one = instance(&url).await;
    let two = instance(&url).await;
    let mut a = join_at(&one, &one.address.to_string()).await;
    let _b = join_at(&one, &two.address.to_string()).await;
    queue(&mut a, "best_of_5").await;
    // Counted over both instances from their censuses (published every second).
    let mut counts = Value::Null;
    for _ in 0..60 {
        counts = get_json(&two, "/presence").await;
        if counts["online"] == 2 && counts["in_queue"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        (counts["online"].as_u64(), counts["in_queue"].as_u64()),
        (Some(2), Some(1)),
        "{counts}"
    );
    // A's own instance answers at once; the other reads what A's instance published.
    let here = get_json(&one, &format!("/presence/{}", a.account)).await;
    assert_eq!(here["status"], "in_queue", "{here}");
    let mut there = Value::Null;
    for _ in 0..60 {
        there = get_json(&two, &format!("/presence/{}", a.account)).await;
        if there["status"] == "in_queue" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(there["status"], "in_queue", "{there}");
    let nobody = get_json(&two, "/presence/nobody").await;
    assert_eq!(nobody["status"], "offline");
}

/// Calls per command since the server started (`INFO commandstats`).
fn command_calls(redis: &RedisServer) -> std::collections::BTreeMap<String, u64> {
    redis
        .cli(&["INFO", "commandstats"])
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("cmdstat_")?;
            let (name, stats) = rest.split_once(':')?;
            let calls = stats.split(',').find_map(|s| s.strip_prefix("calls="))?;
            Some((name.to_owned(), calls.trim().parse().ok()?))
        })
        .collect()
}

/// Redis commands one best-of-3 match between instances costs, by command, printed for
/// docs/BENCHMARKS.md and held to a bound. The instances' background work (lease renewal,
/// census, blocked inbox reads) over the same time is measured first and taken out.
#[tokio::test]
async fn a_best_of_three_across_instances_costs_a_small_constant_of_redis_commands() {
    let redis = RedisServer::start();
    let url = redis.url();
    let one = instance(&url).await;
    let two = instance(&url).await;
    let mut a = join_at(&one, &one.address.to_string()).await;
    let mut b = join_at(&one, &two.address.to_string()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let idle_start = command_calls(&redis);
    let idle_from = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let idle_end = command_calls(&redis);
    let idle = idle_from.elapsed().as_secs_f64();
    let start = command_calls(&redis);
    let from = std::time::Instant::now();
    queue(&mut a, "best_of_3").await;
    queue(&mut b, "best_of_3").await;
    let matched_a = matched(&mut a).await;
    matched(&mut b).await;
    if matched_a["seat"] == "b" {
        std::mem::swap(&mut a, &mut b);
    }
    play_round(&mut a, &mut b, 1, "rock", "scissors").await;
    play_round(&mut a, &mut b, 2, "paper", "rock").await;
    a.until(|m| m["type"] == "match_result").await;
    b.until(|m| m["type"] == "match_result").await;
    eventually("the result in Redis", || results_recorded(&redis) >= 1).await;
    let end = command_calls(&redis);
    let took = from.elapsed().as_secs_f64();
    let mut total = 0.0;
    let mut lines = Vec::new();
    for (name, calls) in &end {
        if name.starts_with("info") {
            continue;
        }
        let during = calls - start.get(name).copied().unwrap_or(0);
        let background = (idle_end.get(name).copied().unwrap_or(0)
            - idle_start.get(name).copied().unwrap_or(0)) as f64
            * took
            / idle;
        let net = (during as f64 - background).max(0.0);
        if during > 0 {
            lines.push(format!("{name}: {during} ({net:.1} net of background)"));
        }
        total += net;
    }
    // Commands run inside scripts are counted by Redis too (RPUSH, LLEN, ... under EVALSHA):
    // the scripts and stream entries are what the instances send.
    let sent =
        |name: &str| end.get(name).copied().unwrap_or(0) - start.get(name).copied().unwrap_or(0);
    println!(
        "one best-of-3 across two instances, {took:.2} s: {total:.0} commands net, scripts \
         included; {} scripts, {} stream entries\n{}",
        sent("evalsha"),
        sent("xadd"),
        lines.join("\n")
    );
    assert!(sent("evalsha") + sent("xadd") <= 25, "{lines:?}");
    assert!(total < 120.0, "{total} commands: {lines:?}");
}

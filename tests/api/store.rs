//! Players, stats, leaderboards and idempotent plays: one behavioural suite run against the
//! in-memory store, a real Redis and a Redis Cluster, plus what only Redis can show (sharing
//! between instances, surviving an outage, flushing at shutdown).

use std::time::Duration;

use guess_game::client::ServerUrl;
use http::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{TestApp, json, spawn_app_with};
use crate::redis::{RedisCluster, RedisServer};

/// Where a test's servers keep their data; holds the Redis processes alive.
struct Backend {
    url: String,
    _redis: Option<RedisServer>,
    _cluster: Option<RedisCluster>,
}

impl Backend {
    fn memory() -> Backend {
        Backend {
            url: "memory".to_owned(),
            _redis: None,
            _cluster: None,
        }
    }

    fn redis() -> Backend {
        let redis = RedisServer::start();
        Backend {
            url: redis.url(),
            _redis: Some(redis),
            _cluster: None,
        }
    }

    fn cluster() -> Backend {
        let cluster = RedisCluster::start();
        Backend {
            url: cluster.url(),
            _redis: None,
            _cluster: Some(cluster),
        }
    }

    async fn spawn(&self) -> TestApp {
        spawn_on(&self.url).await
    }
}

async fn spawn_on(url: &str) -> TestApp {
    let url = url.to_owned();
    spawn_app_with(move |settings| {
        settings.store.url = url;
        settings.store.store_flush_interval = Duration::from_millis(20);
    })
    .await
}

/// `POST /play` for `player` (in the header, or in the body when `in_body`).
async fn play_as(app: &TestApp, player: &str, choice: &str, in_body: bool) -> Value {
    let (headers, body): (Vec<(&str, &str)>, String) = if in_body {
        (
            vec![("content-type", "application/json")],
            format!(r#"{{"choice":"{choice}","player_id":"{player}"}}"#),
        )
    } else {
        (
            vec![
                ("content-type", "application/json"),
                ("x-player-id", player),
            ],
            format!(r#"{{"choice":"{choice}"}}"#),
        )
    };
    let answer = app.request(Method::POST, "/play", &headers, body).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    json(&answer)
}

async fn idempotent_play(
    app: &TestApp,
    player: Option<&str>,
    key: &str,
    body: &str,
) -> guess_game::client::Answer {
    let mut headers = vec![
        ("content-type", "application/json"),
        ("idempotency-key", key),
    ];
    if let Some(player) = player {
        headers.push(("x-player-id", player));
    }
    app.request(Method::POST, "/play", &headers, body.to_owned())
        .await
}

/// Polls `path` until `done` holds for its JSON body (results are written asynchronously).
async fn eventually(app: &TestApp, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let answer = app.get(path).await;
        if answer.status == StatusCode::OK {
            let body = json(&answer);
            if done(&body) {
                return body;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} never matched; last: {} {:?}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn rounds_are(expected: u64) -> impl Fn(&Value) -> bool {
    move |stats| stats["rounds"] == expected
}

fn problem_code(answer: &guess_game::client::Answer) -> String {
    json(answer)["code"].as_str().unwrap_or_default().to_owned()
}

/// The behaviour every store must show.
mod cases {
    use super::*;

    pub async fn stats_and_history_follow_named_plays(app: &TestApp) {
        let choices = ["rock", "paper", "scissors"];
        let mut rounds = Vec::new();
        for index in 0..12 {
            let choice = choices[index % 3];
            rounds.push(play_as(app, "ann", choice, index % 2 == 0).await);
        }
        for _ in 0..3 {
            app.play_json(r#"{"choice":"rock"}"#).await;
        }
        let stats = eventually(app, "/players/ann/stats", rounds_are(12)).await;
        let count = |winner: &str| rounds.iter().filter(|r| r["winner"] == winner).count();
        assert_eq!(stats["player_id"], "ann");
        assert_eq!(stats["wins"], count("player"));
        assert_eq!(stats["losses"], count("computer"));
        assert_eq!(stats["ties"], count("tie"));
        assert_eq!(
            stats["choices"],
            serde_json::json!({"rock": 4, "paper": 4, "scissors": 4})
        );
        let win_rate = stats["win_rate"].as_f64().unwrap();
        assert!((win_rate - count("player") as f64 / 12.0).abs() < 1e-9);
        let (mut current, mut best) = (0, 0);
        for round in &rounds {
            current = if round["winner"] == "player" {
                current + 1
            } else {
                0
            };
            best = best.max(current);
        }
        assert_eq!(stats["current_streak"], current);
        assert_eq!(stats["best_streak"], best);

        let games = json(&app.get("/players/ann/games?limit=5").await);
        let listed: Vec<&Value> = games["games"].as_array().unwrap().iter().collect();
        assert_eq!(listed.len(), 5);
        for (game, round) in listed.iter().zip(rounds.iter().rev()) {
            assert_eq!(game["game_id"], round["game_id"]);
            assert_eq!(game["winner"], round["winner"]);
            assert_eq!(game["computer_choice"], round["computer_choice"]);
            assert!(game["played_at"].as_str().unwrap().ends_with('Z'));
        }
        let all = json(&app.get("/players/ann/games").await);
        assert_eq!(all["games"].as_array().unwrap().len(), 12);
    }

    pub async fn leaderboards_rank_by_wins(app: &TestApp) {
        let players = ["p-a", "p-b", "p-c", "p-d"];
        let mut wins = std::collections::HashMap::new();
        for player in players {
            for _ in 0..8 {
                let round = play_as(app, player, "paper", false).await;
                *wins.entry(player).or_insert(0u64) += u64::from(round["winner"] == "player");
            }
        }
        for player in players {
            eventually(app, &format!("/players/{player}/stats"), rounds_are(8)).await;
        }
        let mut expected: Vec<(&str, u64)> = wins.iter().map(|(p, w)| (*p, *w)).collect();
        expected.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        for window in ["all", "day", "week"] {
            let board = json(
                &app.get(&format!("/leaderboard?window={window}&limit=100"))
                    .await,
            );
            assert_eq!(board["window"], window);
            let entries = board["entries"].as_array().unwrap();
            assert_eq!(entries.len(), players.len(), "{board}");
            for (index, (entry, (player, wins))) in entries.iter().zip(&expected).enumerate() {
                let higher = expected.iter().filter(|(_, w)| w > wins).count() as u64;
                assert_eq!(entry["player_id"], *player, "{board}");
                assert_eq!(entry["wins"], *wins);
                assert_eq!(entry["rank"], higher + 1, "competition ranking at {index}");
                let rank = json(
                    &app.get(&format!("/players/{player}/rank?window={window}"))
                        .await,
                );
                assert_eq!(rank["rank"], higher + 1);
                assert_eq!(rank["wins"], *wins);
                assert_eq!(rank["window"], window);
            }
        }
        let top = json(&app.get("/leaderboard?limit=2").await);
        assert_eq!(top["entries"].as_array().unwrap().len(), 2);
        assert_eq!(top["window"], "all");
    }

    pub async fn idempotent_plays_run_once(app: &TestApp) {
        let body = r#"{"choice":"rock"}"#;
        let first = idempotent_play(app, Some("ida"), "key-1", body).await;
        assert_eq!(first.status, StatusCode::OK);
        assert_eq!(first.header("idempotent-replayed"), None);
        for _ in 0..3 {
            let again = idempotent_play(app, Some("ida"), "key-1", body).await;
            assert_eq!(again.status, StatusCode::OK);
            assert_eq!(again.body, first.body, "replayed byte for byte");
            assert_eq!(again.header("content-type"), first.header("content-type"));
            assert_eq!(again.header("idempotent-replayed"), Some("true"));
        }
        let other_body = idempotent_play(app, Some("ida"), "key-1", r#"{"choice":"paper"}"#).await;
        assert_eq!(other_body.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem_code(&other_body), "idempotency_key_reused");
        // Keys are scoped per player: the same key for someone else is a new play.
        let other_player = idempotent_play(app, Some("bob"), "key-1", body).await;
        assert_eq!(other_player.status, StatusCode::OK);
        assert_ne!(json(&other_player)["game_id"], json(&first)["game_id"]);
        // Anonymous keys are scoped per client and replay too.
        let anonymous = idempotent_play(app, None, "key-1", body).await;
        let anonymous_again = idempotent_play(app, None, "key-1", body).await;
        assert_eq!(anonymous.body, anonymous_again.body);
        // Failed validation stores nothing: the key stays free.
        let invalid = idempotent_play(app, Some("ida"), "key-2", r#"{"choice":"lizard"}"#).await;
        assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
        let valid = idempotent_play(app, Some("ida"), "key-2", body).await;
        assert_eq!(valid.status, StatusCode::OK);
        for bad_key in ["has space", &"k".repeat(256)] {
            let answer = idempotent_play(app, Some("ida"), bad_key, body).await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST);
            assert_eq!(problem_code(&answer), "invalid_idempotency_key");
        }
        // Counted once each: key-1 and key-2.
        let stats = eventually(app, "/players/ida/stats", rounds_are(2)).await;
        assert_eq!(stats["rounds"], 2);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(json(&app.get("/players/ida/stats").await)["rounds"], 2);
    }

    pub async fn bad_input_is_refused_clearly(app: &TestApp) {
        for (method, path, headers, body) in [
            (
                Method::POST,
                "/play",
                vec![("x-player-id", "no spaces")],
                r#"{"choice":"rock"}"#,
            ),
            (
                Method::POST,
                "/play",
                vec![],
                r#"{"choice":"rock","player_id":""}"#,
            ),
            (
                Method::POST,
                "/play",
                vec![("x-player-id", "ann")],
                r#"{"choice":"rock","player_id":"bob"}"#,
            ),
            (Method::GET, "/players/a%20b/stats", vec![], ""),
            (
                Method::GET,
                &format!("/players/{}/games", "x".repeat(65)),
                vec![],
                "",
            ),
        ] {
            let answer = app.request(method, path, &headers, body.to_owned()).await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path}");
            assert_eq!(problem_code(&answer), "invalid_player_id", "{path}");
        }
        for path in [
            "/leaderboard?limit=0",
            "/leaderboard?limit=101",
            "/leaderboard?limit=ten",
            "/leaderboard?window=year",
            "/players/ann/games?limit=-1",
            "/players/ann/rank?window=",
        ] {
            let answer = app.get(path).await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path}");
            assert_eq!(problem_code(&answer), "invalid_parameter", "{path}");
        }
        for path in [
            "/players/nobody/stats",
            "/players/nobody/games",
            "/players/nobody/rank",
        ] {
            let answer = app.get(path).await;
            assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(problem_code(&answer), "player_not_found");
        }
        let empty = json(&app.get("/leaderboard?window=week").await);
        assert_eq!(empty["entries"], serde_json::json!([]));
        let post = app
            .request(Method::POST, "/leaderboard", &[], String::new())
            .await;
        assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
        let msgpack = app
            .request(
                Method::GET,
                "/leaderboard",
                &[("accept", "application/msgpack")],
                String::new(),
            )
            .await;
        assert_eq!(msgpack.header("content-type"), Some("application/msgpack"));
        let head = app
            .request(Method::HEAD, "/leaderboard", &[], String::new())
            .await;
        assert_eq!(head.status, StatusCode::OK);
        assert!(head.body.is_empty(), "HEAD answers without a body");
        let decoded: Value = rmp_serde::from_slice(&msgpack.body).unwrap();
        assert_eq!(decoded["window"], "all");
    }

    pub async fn readyz_reports_the_store(app: &TestApp, backend: &str) {
        let ready = json(&app.get("/readyz").await);
        assert_eq!(ready["status"], "ready");
        assert_eq!(ready["store"]["backend"], backend);
        assert_eq!(ready["store"]["circuit"], "closed");
    }
}

macro_rules! behaviour {
    ($name:ident, $backend:expr, $kind:literal) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn stats_and_history_follow_named_plays() {
                let backend = $backend;
                let app = backend.spawn().await;
                cases::stats_and_history_follow_named_plays(&app).await;
                app.shutdown().await.unwrap();
            }

            #[tokio::test]
            async fn leaderboards_rank_by_wins() {
                let backend = $backend;
                let app = backend.spawn().await;
                cases::leaderboards_rank_by_wins(&app).await;
                app.shutdown().await.unwrap();
            }

            #[tokio::test]
            async fn idempotent_plays_run_once() {
                let backend = $backend;
                let app = backend.spawn().await;
                cases::idempotent_plays_run_once(&app).await;
                app.shutdown().await.unwrap();
            }

            #[tokio::test]
            async fn bad_input_is_refused_clearly() {
                let backend = $backend;
                let app = backend.spawn().await;
                cases::bad_input_is_refused_clearly(&app).await;
                cases::readyz_reports_the_store(&app, $kind).await;
                app.shutdown().await.unwrap();
            }
        }
    };
}

behaviour!(memory, Backend::memory(), "memory");
behaviour!(redis, Backend::redis(), "standalone");

#[tokio::test]
async fn a_redis_cluster_serves_the_same_behaviour() {
    let backend = Backend::cluster();
    let app = backend.spawn().await;
    cases::readyz_reports_the_store(&app, "cluster").await;
    // First: it expects the boards to hold its own players only.
    cases::leaderboards_rank_by_wins(&app).await;
    cases::stats_and_history_follow_named_plays(&app).await;
    cases::idempotent_plays_run_once(&app).await;
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn two_instances_on_one_redis_share_players_boards_and_keys() {
    let redis = RedisServer::start();
    let a = spawn_on(&redis.url()).await;
    let b = spawn_on(&redis.url()).await;
    let mut ids = Vec::new();
    for index in 0..10 {
        let app = if index % 2 == 0 { &a } else { &b };
        let round = play_as(app, "shared", "rock", false).await;
        ids.push(round["game_id"].as_str().unwrap().parse::<u64>().unwrap());
    }
    let from_a = eventually(&a, "/players/shared/stats", rounds_are(10)).await;
    let from_b = json(&b.get("/players/shared/stats").await);
    assert_eq!(from_a, from_b);
    // Distinct node ids claimed from Redis keep game ids apart.
    let node = |id: u64| guess_game::store::game_id::GameId(id).node();
    assert_ne!(node(ids[0]), node(ids[1]));
    let board_a = json(&a.get("/leaderboard").await);
    assert_eq!(board_a, json(&b.get("/leaderboard").await));
    assert_eq!(board_a["entries"][0]["player_id"], "shared");

    let body = r#"{"choice":"scissors"}"#;
    let first = idempotent_play(&a, Some("shared"), "across", body).await;
    let replay = idempotent_play(&b, Some("shared"), "across", body).await;
    assert_eq!(replay.status, StatusCode::OK);
    assert_eq!(
        replay.body, first.body,
        "the other instance replays the same answer"
    );
    eventually(&b, "/players/shared/stats", rounds_are(11)).await;
    assert_eq!(
        redis
            .cli(&["--scan", "--pattern", "gg:node:*"])
            .lines()
            .count(),
        2
    );
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    assert_eq!(
        redis.cli(&["--scan", "--pattern", "gg:node:*"]).trim(),
        "",
        "node ids are given back at shutdown"
    );
}

#[tokio::test]
async fn a_key_held_by_a_request_in_flight_is_409() {
    let redis = RedisServer::start();
    let app = spawn_on(&redis.url()).await;
    let body = r#"{"choice":"rock"}"#;
    // What an instance writes while it plays: P + SHA-256 of the body.
    let fingerprint = guess_game::store::idempotency::fingerprint(body.as_bytes());
    let mut record = vec![b'P'];
    record.extend_from_slice(&fingerprint);
    let mut connection = ::redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let () = ::redis::cmd("SET")
        .arg("gg:idem:p:ivy:busy")
        .arg(record)
        .query_async(&mut connection)
        .await
        .unwrap();
    let answer = idempotent_play(&app, Some("ivy"), "busy", body).await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert_eq!(problem_code(&answer), "idempotency_key_in_flight");
    assert!(answer.header("retry-after").is_some());
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn plays_go_on_while_redis_is_down_and_nothing_accepted_is_lost() {
    let mut redis = RedisServer::start();
    let app = spawn_on(&redis.url()).await;
    // Named plays run without pause through the whole test, Redis killed and restarted under
    // them; each connection's plays are counted as the server answers them.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let players: Vec<_> = (0..4)
        .map(|client| {
            let app = TestApp::view(app.address, app.url.clone());
            let stop = std::sync::Arc::clone(&stop);
            tokio::spawn(async move {
                let player = format!("steady-{client}");
                let mut answered = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let body = format!(r#"{{"choice":"paper","player_id":"{player}"}}"#);
                    let answer = app.play_json(&body).await;
                    assert_eq!(
                        answer.status,
                        StatusCode::OK,
                        "/play never waits on the store"
                    );
                    answered += 1;
                }
                (player, answered)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let read = app.get("/players/steady-0/stats").await;
    assert_eq!(read.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(problem_code(&read), "store_unavailable");
    assert!(read.header("retry-after").is_some());
    let ready = app.get("/readyz").await;
    assert_eq!(
        ready.status,
        StatusCode::OK,
        "an optional store never fails readiness"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.restart();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for task in players {
        let (player, answered) = task.await.unwrap();
        assert!(answered > 0);
        total += answered;
        let stats = eventually(
            &app,
            &format!("/players/{player}/stats"),
            rounds_are(answered),
        )
        .await;
        assert_eq!(
            stats["choices"]["paper"], answered,
            "each play counted exactly once"
        );
    }
    let metrics = crate::observability::scrape_text(&app).await;
    assert!(
        metrics.contains("guess_game_store_dropped_total 0"),
        "nothing dropped"
    );
    let failed = metrics
        .lines()
        .find_map(|line| line.strip_prefix("guess_game_store_failed_batches_total "))
        .and_then(|value| value.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(
        failed >= 1.0,
        "the outage was felt by the writer ({total} plays)"
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_graceful_shutdown_flushes_the_queue() {
    let redis = RedisServer::start();
    let url = redis.url();
    // A writer that would not write for an hour: only the shutdown flush can save these.
    let app = spawn_app_with(|settings| {
        settings.store.url = url.clone();
        settings.store.store_flush_interval = Duration::from_secs(3600);
        settings.store.store_batch_size = 10_000;
    })
    .await;
    for _ in 0..25 {
        play_as(&app, "last", "scissors", true).await;
    }
    assert_eq!(
        app.get("/players/last/stats").await.status,
        StatusCode::NOT_FOUND,
        "nothing written yet"
    );
    app.shutdown().await.unwrap();
    let after = spawn_on(&redis.url()).await;
    let stats = json(&after.get("/players/last/stats").await);
    assert_eq!(stats["rounds"], 25);
    after.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_but_never_blocks_play() {
    let app = spawn_app_with(|settings| {
        settings.store.store_queue_capacity = 5;
        settings.store.store_flush_interval = Duration::from_secs(3600);
        settings.store.store_batch_size = 10_000;
    })
    .await;
    for _ in 0..12 {
        play_as(&app, "many", "rock", false).await;
    }
    let metrics = crate::observability::scrape_text(&app).await;
    assert!(
        metrics.contains("guess_game_store_dropped_total 7"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("store_"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(metrics.contains("guess_game_store_queue_depth 5"));
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_injected_store_fault_opens_the_breaker_while_plays_go_on() {
    let app = spawn_app_with(|settings| {
        settings.admin.fault_injection = true;
        settings.store.store_flush_interval = Duration::from_millis(20);
    })
    .await;
    for _ in 0..3 {
        play_as(&app, "faulty", "rock", false).await;
    }
    eventually(&app, "/players/faulty/stats", rounds_are(3)).await;
    crate::protection::inject(
        &app,
        r#"{"point":"store","error_rate":1.0,"duration_ms":60000}"#,
    )
    .await;
    for _ in 0..10 {
        play_as(&app, "faulty", "paper", false).await;
    }
    // Failed reads and writes open the breaker; reads then fail fast, with Retry-After.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let read = app.get("/players/faulty/stats").await;
        assert_eq!(read.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(problem_code(&read), "store_unavailable");
        assert!(read.header("retry-after").is_some());
        let board = app.get("/leaderboard").await;
        assert_eq!(
            board.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "every read is guarded"
        );
        let ready = app.get("/readyz").await;
        assert_eq!(ready.status, StatusCode::OK);
        if json(&ready)["store"]["circuit"] == "open" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the breaker never opened"
        );
    }
    let removed = crate::protection::admin_send(&app, Method::DELETE, "").await;
    assert_eq!(removed.status, StatusCode::OK);
    // The breaker lets a trial through after its backoff; the queued results follow.
    let stats = eventually(&app, "/players/faulty/stats", rounds_are(13)).await;
    assert_eq!(stats["choices"]["paper"], 10);
    let metrics = crate::observability::scrape_text(&app).await;
    let opened: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("guess_game_store_circuit_opened_total "))
        .and_then(|value| value.trim().parse().ok())
        .expect("the circuit's openings are exposed");
    assert!(opened >= 1.0, "the opening was counted: {opened}");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn reads_return_once_a_slow_store_recovers_even_with_a_short_request_timeout() {
    let app = spawn_app_with(|settings| {
        settings.admin.fault_injection = true;
        settings.store.store_timeout = Duration::from_millis(100);
        settings.server.request_timeout = Duration::from_millis(150);
    })
    .await;
    play_as(&app, "slow", "rock", false).await;
    eventually(&app, "/players/slow/stats", rounds_are(1)).await;
    // Every store call now outlasts store_timeout; keyed plays make two calls each, so some
    // are cut off by the request's own deadline as well.
    crate::protection::inject(
        &app,
        r#"{"point":"store","latency_ms":400,"duration_ms":60000}"#,
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut key = 0;
    loop {
        key += 1;
        let key_header = format!("slow-{key}");
        let headers = [
            ("content-type", "application/json"),
            ("x-player-id", "slow"),
            ("idempotency-key", key_header.as_str()),
        ];
        let (read, keyed) = tokio::join!(
            app.get("/players/slow/stats"),
            app.request(Method::POST, "/play", &headers, r#"{"choice":"paper"}"#)
        );
        assert_eq!(read.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(keyed.status, StatusCode::SERVICE_UNAVAILABLE);
        let ready = json(&app.get("/readyz").await);
        if ready["store"]["circuit"] == "open" {
            assert!(ready["store"]["circuit_times_opened"].as_u64() >= Some(1));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never opened");
    }
    let removed = crate::protection::admin_send(&app, Method::DELETE, "").await;
    assert_eq!(removed.status, StatusCode::OK);
    // Within the breaker's backoff (well under the 10 s allowed here), reads are answered
    // by the store again and the circuit reports closed.
    let started = tokio::time::Instant::now();
    eventually(&app, "/players/slow/stats", rounds_are(1)).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    let ready = json(&app.get("/readyz").await);
    assert_eq!(ready["store"]["circuit"], "closed");
    assert_eq!(ready["store"]["circuit_trial_in_flight"], false);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn redis_keeps_boards_and_players_bounded() {
    let redis = RedisServer::start();
    let url = redis.url();
    let app = spawn_app_with(|settings| {
        settings.store.url = url.clone();
        settings.store.store_flush_interval = Duration::from_millis(20);
        settings.store.max_players = 2;
        settings.store.player_retention = Duration::from_secs(7200);
    })
    .await;
    let mut wins = Vec::new();
    for player in ["ret-a", "ret-b", "ret-c", "ret-d"] {
        let mut won = 0;
        for _ in 0..6 {
            won += u64::from(play_as(&app, player, "rock", false).await["winner"] == "player");
        }
        eventually(&app, &format!("/players/{player}/stats"), rounds_are(6)).await;
        wins.push(won);
    }
    let board = json(&app.get("/leaderboard?limit=100").await);
    let entries = board["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{board}");
    wins.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(entries[0]["wins"], wins[0], "{board}");
    assert_eq!(entries[1]["wins"], wins[1], "{board}");
    assert_eq!(redis.cli(&["ZCARD", "gg:{lb}:all"]).trim(), "2");
    for key in ["gg:{ret-a}:stats", "gg:{ret-a}:games"] {
        let ttl: u64 = redis.cli(&["PTTL", key]).trim().parse().unwrap();
        assert!(ttl > 7_000_000 && ttl <= 7_200_000, "{key}: {ttl}");
    }
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn taking_a_cpu_profile_does_not_time_out_store_calls() {
    // The Redis connection is driven by the runtime that also serves the admin listener: a
    // profile rendered there (symbolizing a debug build takes seconds) would stall every store
    // call past its timeout.
    let redis = RedisServer::start();
    let url = redis.url();
    let app = spawn_app_with(|settings| {
        settings.store.url = url.clone();
        settings.store.store_timeout = Duration::from_millis(250);
        settings.server.request_timeout = Duration::from_secs(1);
    })
    .await;
    play_as(&app, "profiled", "rock", false).await;
    eventually(&app, "/players/profiled/stats", rounds_are(1)).await;
    let admin = ServerUrl::parse(&format!("http://{}", app.admin)).unwrap();
    let profile = tokio::spawn(async move {
        admin
            .send(
                Method::GET,
                "/debug/pprof/profile?seconds=1&format=svg",
                &[],
                bytes::Bytes::new(),
                Duration::from_secs(60),
            )
            .await
            .map(|answer| answer.status)
    });
    let mut reads = 0;
    while !profile.is_finished() {
        let read = app.get("/players/profiled/stats").await;
        assert_eq!(
            read.status,
            StatusCode::OK,
            "a read during the profile: {}",
            String::from_utf8_lossy(&read.body)
        );
        reads += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(profile.await.unwrap().unwrap(), StatusCode::OK);
    assert!(reads > 10, "only {reads} reads while profiling");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_redis_writer_applies_results_by_id_and_counts_a_retried_batch_once() {
    use guess_game::game::{Choice, Winner};
    use guess_game::store::game_id::GameIds;
    use guess_game::store::model::{GameRecord, PlayerId};
    use guess_game::store::redis::{RedisLimits, RedisStore};

    let redis = RedisServer::start();
    let store = RedisStore::connect(
        &redis.url(),
        Duration::from_secs(2),
        RedisLimits {
            games_kept: 100,
            board_size: 1000,
            retention: Duration::from_secs(86_400),
        },
    )
    .await
    .unwrap();
    let ids = GameIds::new(7);
    let record = |winner| GameRecord {
        game_id: ids.next().expect("an unleased node id"),
        player: PlayerId::from("racer").unwrap(),
        player_choice: Choice::Rock,
        computer_choice: Choice::Scissors,
        winner,
    };
    // Two worker threads raced to the queue: the later id was queued first.
    let first = record(Winner::Player);
    let second = record(Winner::Tie);
    let third = record(Winner::Player);
    let out_of_order = [third, first.clone(), second.clone()];
    assert_eq!(store.apply(7, &out_of_order).await.unwrap(), 0);
    let stats = store.stats("racer").await.unwrap().unwrap();
    assert_eq!(stats.rounds, 3, "none skipped for arriving out of order");
    assert_eq!(stats.wins, 2);
    // The same batch again, as after a timeout whose first try had landed: counted once.
    assert_eq!(store.apply(7, &out_of_order).await.unwrap(), 3);
    let stats = store.stats("racer").await.unwrap().unwrap();
    assert_eq!(stats.rounds, 3);
    // A retried batch that also carries new results applies only the new ones.
    let fourth = record(Winner::Computer);
    assert_eq!(store.apply(7, &[second, fourth, first]).await.unwrap(), 2);
    let stats = store.stats("racer").await.unwrap().unwrap();
    assert_eq!((stats.rounds, stats.losses), (4, 1));
}

/// The node id in a play's game id, or `None` when the play was refused.
async fn play_node(app: &TestApp) -> Result<u64, String> {
    let answer = app.play_json(r#"{"choice":"rock"}"#).await;
    if answer.status != StatusCode::OK {
        return Err(problem_code(&answer));
    }
    let id: u64 = json(&answer)["game_id"].as_str().unwrap().parse().unwrap();
    Ok((id >> 12) & 1023)
}

#[tokio::test]
async fn an_instance_whose_node_id_is_taken_stops_using_it_and_claims_another() {
    let redis = RedisServer::start();
    let url = redis.url();
    let app = spawn_app_with(|settings| {
        settings.store.url = url.clone();
        settings.store.node_lease = Duration::from_secs(3);
    })
    .await;
    let node = play_node(&app).await.unwrap();
    // Another instance holds the node id now (as after this one's lease lapsed unseen).
    redis.cli(&[
        "SET",
        &format!("gg:node:{node}"),
        "someone-else",
        "PX",
        "60000",
    ]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let moved = loop {
        match play_node(&app).await {
            Ok(current) if current != node => break current,
            Ok(_) | Err(_) => {}
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still on node {node}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for _ in 0..20 {
        assert_eq!(
            play_node(&app).await,
            Ok(moved),
            "never back on the taken id"
        );
    }
    assert_eq!(
        redis.cli(&["GET", &format!("gg:node:{node}")]).trim(),
        "someone-else",
        "the other holder's lease is left alone"
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_instance_that_cannot_renew_its_lease_stops_issuing_ids_until_it_can() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let app = spawn_app_with(|settings| {
        settings.store.url = url.clone();
        settings.store.node_lease = Duration::from_secs(3);
    })
    .await;
    play_node(&app).await.unwrap();
    redis.kill();
    // Within five sixths of the lease after the last renewal, plays stop: another instance
    // could claim the id once the whole lease has passed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match play_node(&app).await {
            Err(code) => {
                assert_eq!(code, "game_id_unavailable");
                break;
            }
            Ok(_) => assert!(tokio::time::Instant::now() < deadline, "ids never stopped"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    redis.restart();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while play_node(&app).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "ids never resumed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.shutdown().await.unwrap();
}

//! `guess-game loadtest ws-play` against three instances sharing one Redis, through a rolling
//! restart of all three: each is drained (SIGTERM) in turn mid-run and replaced by a new
//! instance on the same address. Its players see a close (1001) and resume on another target;
//! nobody sees an error beyond the resume, and every match started has its result recorded
//! once.
//!
//! Between the drained instance's exit and its replacement's start the address refuses
//! connections: the tester moves on to the next target, as it would past a dead instance.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::cli::ServerProcess;
use crate::redis::RedisServer;

const BINARY: &str = env!("CARGO_BIN_EXE_guess-game");
const INSTANCES: usize = 3;

/// An instance on `redis`: rounds long enough that a round is never lost to a restart, and
/// the loopback tester free to make its guests and play as fast as it likes.
async fn instance(redis: &RedisServer, listen: &str) -> ServerProcess {
    let url = redis.url();
    ServerProcess::start_listening(
        listen,
        &[
            OsStr::new("--store"),
            OsStr::new(&url),
            OsStr::new("--rate-limit-per-client"),
            OsStr::new("0"),
        ],
        &[
            ("GUESS_GAME_ROUND_TIMEOUT", "60s"),
            ("GUESS_GAME_ACCOUNTS_PER_ADDRESS_PER_HOUR", "0"),
        ],
    )
    .await
}

/// Drains `instance` (SIGTERM) and returns its exit code once it has exited.
async fn drain(instance: ServerProcess) -> Option<i32> {
    instance.signal(libc::SIGTERM);
    tokio::task::spawn_blocking(move || {
        let mut instance = instance;
        instance.child.wait().unwrap().code()
    })
    .await
    .unwrap()
}

/// The match ids in the results stream, in order.
fn recorded_matches(redis: &RedisServer) -> Vec<String> {
    let listing = redis.cli(&["XRANGE", "gg:{rt}:results", "-", "+"]);
    let lines: Vec<&str> = listing.lines().map(str::trim).collect();
    lines
        .windows(2)
        .filter(|pair| pair[0] == "match")
        .map(|pair| pair[1].to_owned())
        .collect()
}

fn counter(report: &Value, field: &str) -> u64 {
    report["play"][field]
        .as_u64()
        .unwrap_or_else(|| panic!("play.{field} in {report}"))
}

#[tokio::test]
async fn a_rolling_restart_costs_the_players_nothing_but_a_resume() {
    let redis = RedisServer::start();
    let mut instances = Vec::new();
    for _ in 0..INSTANCES {
        instances.push(instance(&redis, "127.0.0.1:0").await);
    }
    let targets: Vec<String> = instances
        .iter()
        .map(|instance| format!("http://{}", instance.url.authority()))
        .collect();
    let dir = tempfile::Builder::new()
        .prefix("guess-game-loadtest-cluster-")
        .tempdir()
        .unwrap();
    let json = dir.path().join("report.json");
    let args: Vec<String> = [
        "loadtest",
        "ws-play",
        "--target",
        &targets.join(","),
        "-c",
        "30",
        "--duration",
        "24s",
        "--move-interval",
        "200",
        "--json",
        &json.to_string_lossy(),
    ]
    .iter()
    .map(|arg| arg.to_string())
    .collect();
    let run = tokio::task::spawn_blocking(move || -> Output {
        Command::new(BINARY)
            .args(args)
            .output()
            .expect("the binary runs")
    });

    // Past the warm-up (1.4 s) and well inside the 24 s window, one instance after the other,
    // each replacement on its predecessor's address (as a service manager restarts it).
    for index in 0..INSTANCES {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let listen = instances[index].url.authority().to_string();
        let drained = instances.remove(index);
        assert_eq!(drain(drained).await, Some(0), "a drain exits 0");
        instances.insert(index, instance(&redis, &listen).await);
    }
    let output = run.await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");

    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(
        report["errors"], 0,
        "{stdout}\n{}",
        report["errors_by_kind"]
    );
    assert_eq!(report["connections_open"], 30, "{stdout}");
    assert!(counter(&report, "resumes") > 0, "{stdout}");
    assert_eq!(counter(&report, "resume_failures"), 0, "{stdout}");
    assert_eq!(counter(&report, "ordering_violations"), 0, "{stdout}");
    let started = counter(&report, "matches_started");
    let finished = counter(&report, "matches_finished");
    assert!(started > 0, "{stdout}");
    assert_eq!(started, finished, "every match started ended: {stdout}");

    // A result reaches its players before the owner's write of it reaches Redis: every
    // instance stops first (a stop flushes its write queue), then the stream is read.
    for instance in instances {
        assert_eq!(instance.stop().await, Some(0));
    }
    let recorded = recorded_matches(&redis);
    let distinct: BTreeSet<&String> = recorded.iter().collect();
    assert_eq!(distinct.len(), recorded.len(), "no result recorded twice");
    assert_eq!(
        recorded.len() as u64,
        finished,
        "each finished match recorded once: {stdout}"
    );
}

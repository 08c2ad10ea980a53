//! `guess-game loadtest`, run as a user would against the real server.

use std::process::Output;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::spawn_app;

const BINARY: &str = env!("CARGO_BIN_EXE_guess-game");

async fn loadtest(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(BINARY)
            .arg("loadtest")
            .args(args)
            .output()
            .expect("the binary runs")
    })
    .await
    .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|arg| arg.to_string()).collect()
}

/// A short closed-loop run with two connections against `address`, expected to fail.
async fn short_failing_run(address: std::net::SocketAddr) -> Output {
    let output = loadtest(args(&[
        "--target",
        &format!("http://{address}"),
        "-c",
        "2",
        "--duration",
        "300ms",
        "--warmup",
        "0s",
    ]))
    .await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    output
}

fn read_report(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[tokio::test]
async fn a_closed_loop_run_answers_every_request_and_writes_its_reports() {
    let app = spawn_app().await;
    let dir = tempdir();
    let json = dir.path().join("run.json");
    let svg = dir.path().join("run.svg");
    let target = format!("http://{}", app.address);
    let output = loadtest(args(&[
        "--target",
        &target,
        "-c",
        "4",
        "--requests",
        "300",
        "--warmup",
        "0s",
        "--duration",
        "20s",
        "--json",
        json.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
        "--fail-on-error-rate",
        "0",
    ]))
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout.contains("status 200") && stdout.contains("p99.9"),
        "{stdout}"
    );
    let report = read_report(&json);
    assert_eq!(report["responses"], 300, "{report}");
    assert_eq!(report["statuses"]["200"], 300);
    assert_eq!(report["errors"], 0);
    assert_eq!(report["mode"], "closed");
    assert!(report["latency_ms"]["p50"].as_f64().unwrap() > 0.0);
    assert!(!report["timeline"].as_array().unwrap().is_empty());
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_open_loop_run_offers_the_asked_rate_and_steps_report_each_step() {
    let app = spawn_app().await;
    let dir = tempdir();
    let json = dir.path().join("steps.json");
    let target = format!("http://{}", app.address);
    let output = loadtest(args(&[
        "--target",
        &target,
        "-c",
        "8",
        "--steps",
        "1,2",
        "--capacity",
        "200",
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "--scenario",
        "play-msgpack",
        "--players",
        "10",
        "--json",
        json.to_str().unwrap(),
    ]))
    .await;
    assert!(output.status.success(), "{output:?}");
    let report = read_report(&json);
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    for (step, rate) in steps.iter().zip([200.0, 400.0]) {
        assert_eq!(step["report"]["target_rate"], rate);
        let offered = step["report"]["offered_rps"].as_f64().unwrap();
        assert!(
            (rate * 0.8..rate * 1.2).contains(&offered),
            "offered {offered} for {rate}"
        );
        assert_eq!(step["report"]["errors"], 0, "{step}");
        assert!(step["report"]["goodput_rps"].as_f64().unwrap() > rate * 0.8);
    }
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_target_is_reported_and_fails_the_run() {
    let output = short_failing_run(crate::helpers::unused_address()).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("connect_refused"), "{stdout}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("no request was answered"));
}

#[tokio::test]
async fn malformed_answers_are_counted_by_kind() {
    // A server that answers every connection with something that is not HTTP.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let garbage = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buffer = [0u8; 1024];
                let _ = stream.read(&mut buffer).await;
                let _ = stream.write_all(b"SSH-2.0-not-http\r\n\r\n").await;
            });
        }
    });
    let output = short_failing_run(address).await;
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("malformed_response"),
        "{output:?}"
    );
    garbage.abort();
}

#[tokio::test]
async fn compare_prints_the_change_in_each_figure() {
    let app = spawn_app().await;
    let dir = tempdir();
    let target = format!("http://{}", app.address);
    for name in ["before.json", "after.json"] {
        let path = dir.path().join(name);
        let output = loadtest(args(&[
            "--target",
            &target,
            "-c",
            "2",
            "--requests",
            "100",
            "--warmup",
            "0s",
            "--json",
            path.to_str().unwrap(),
        ]))
        .await;
        assert!(output.status.success(), "{output:?}");
    }
    let output = loadtest(args(&[
        "compare",
        dir.path().join("before.json").to_str().unwrap(),
        dir.path().join("after.json").to_str().unwrap(),
    ]))
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    for figure in ["answers/s", "goodput/s", "p99 ms", "p99.9 ms", "failure %"] {
        assert!(stdout.contains(figure), "{figure} missing: {stdout}");
    }
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_arguments_exit_2_with_a_message() {
    for bad in [
        vec![],
        args(&["--target", "http://h:1", "--rate", "0"]),
        args(&["--target", "http://h:1", "--duration", "2h"]),
    ] {
        let output = loadtest(bad.clone()).await;
        assert_eq!(output.status.code(), Some(2), "{bad:?}: {output:?}");
        assert!(!output.stderr.is_empty());
    }
    let output = loadtest(args(&[
        "compare",
        "/nonexistent/a.json",
        "/nonexistent/b.json",
    ]))
    .await;
    assert_eq!(output.status.code(), Some(2), "{output:?}");
}

/// A fresh directory under the system temp dir, unique to the calling test and removed when
/// the guard drops.
fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("guess-game-loadtest-")
        .tempdir()
        .unwrap()
}

/// Each connection of the authenticated scenario makes its own account and every play counts
/// for one of them.
#[tokio::test]
async fn the_authenticated_scenario_plays_as_one_account_per_connection() {
    let app = crate::helpers::spawn_app_with(|settings| {
        settings.accounts.trust_player_header = false;
    })
    .await;
    let dir = tempdir();
    let json = dir.path().join("auth.json");
    let output = loadtest(args(&[
        "--target",
        &format!("http://{}", app.address),
        "-c",
        "3",
        "--requests",
        "90",
        "--warmup",
        "0s",
        "--duration",
        "20s",
        "--scenario",
        "authenticated",
        "--json",
        json.to_str().unwrap(),
        "--fail-on-error-rate",
        "0",
    ]))
    .await;
    assert!(output.status.success(), "{output:?}");
    let report = read_report(&json);
    assert_eq!(report["statuses"]["200"], 90, "{report}");
    let metrics = app
        .admin_request(http::Method::GET, "/metrics", &[], "")
        .await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains(r#"guess_game_accounts_created_total{kind="guest"} 3"#),
        "{text}"
    );
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let board = crate::helpers::json(&app.get("/leaderboard?limit=100").await);
        let entries = board["entries"].as_array().unwrap().len();
        if entries == 3 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{board}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    app.shutdown().await.unwrap();
}

/// `ws-echo --relay` against a relay made here (pairs connections in the order they open,
/// each frame back to its sender and on to the partner): a connection times only its own
/// echoes. The relay holds each sender's own copy back 150 ms and forwards the partner's at
/// once, so an echo matched with a partner's frame would show as a short time.
#[tokio::test]
async fn ws_echo_with_relay_times_only_each_connections_own_echoes() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    type Partner = tokio::sync::mpsc::UnboundedSender<Message>;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let relay = tokio::spawn(async move {
        let mut waiting: Option<(Partner, tokio::sync::oneshot::Sender<Partner>)> = None;
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (to_me, mut mine) = tokio::sync::mpsc::unbounded_channel::<Message>();
            let (tell, partner) = tokio::sync::oneshot::channel::<Partner>();
            match waiting.take() {
                Some((first, tell_first)) => {
                    tell_first.send(to_me.clone()).unwrap();
                    tell.send(first).unwrap();
                }
                None => waiting = Some((to_me.clone(), tell)),
            }
            tokio::spawn(async move {
                let socket = tokio_tungstenite::accept_async(stream).await.unwrap();
                let (mut sink, mut source) = socket.split();
                let partner = partner.await.unwrap();
                let writer = tokio::spawn(async move {
                    while let Some(message) = mine.recv().await {
                        if sink.send(message).await.is_err() {
                            return;
                        }
                    }
                });
                while let Some(Ok(message)) = source.next().await {
                    if let Message::Text(_) = message {
                        let _ = partner.send(message.clone());
                        let to_me = to_me.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(std::time::Duration::from_millis(150)).await;
                            let _ = to_me.send(message);
                        });
                    }
                }
                writer.abort();
            });
        }
    });
    let dir = tempdir();
    let json = dir.path().join("relay.json");
    let output = loadtest(args(&[
        "ws-echo",
        "--relay",
        "--target",
        &format!("ws://{address}"),
        "-c",
        "4",
        "--move-interval",
        "100",
        "--warmup",
        "300ms",
        "--duration",
        "1500ms",
        "--json",
        json.to_str().unwrap(),
    ]))
    .await;
    relay.abort();
    assert!(output.status.success(), "{output:?}");
    let report = read_report(&json);
    let play = &report["play"];
    let acks = play["acks"].as_u64().unwrap();
    let sent = play["frames_sent"].as_u64().unwrap();
    let received = play["frames_received"].as_u64().unwrap();
    assert!(acks >= 30 && acks <= sent, "{play}");
    // Every frame comes back twice: to its sender and to the partner.
    assert!(received as f64 >= 1.6 * sent as f64, "{play}");
    let median = play["ack_ms"]["p50"].as_f64().unwrap();
    assert!(
        median >= 140.0,
        "own echoes take the relay's 150 ms: {play}"
    );
    assert_eq!(report["errors"], 0, "{report}");
}

use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::helpers::{raw_connection, read_to_close, spawn_app_with};

const PLAY_HEAD: &str = "POST /play HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n";
const PLAY_BODY: &str = r#"{"choice":"rock"}"#;

/// Makes sure the single worker has taken in what was sent on other connections: a complete
/// request answered on a fresh connection means the worker's event loop went past them.
async fn sync_with_worker(app: &crate::helpers::TestApp) {
    assert_eq!(app.get("/healthz").await.status, http::StatusCode::OK);
}

#[tokio::test]
async fn a_request_in_flight_when_shutdown_begins_still_completes() {
    let mut app = spawn_app_with(|settings| settings.server.workers = 1).await;
    // Headers and half the body: the request is in flight.
    let mut stream = raw_connection(
        app.address,
        format!("{PLAY_HEAD}{}", &PLAY_BODY[..8]).as_bytes(),
    )
    .await;
    sync_with_worker(&app).await;

    app.begin_shutdown();
    app.wait_until_not_accepting().await;
    stream.write_all(&PLAY_BODY.as_bytes()[8..]).await.unwrap();

    let response = read_to_close(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.contains(r#""player_choice":"rock""#), "{response}");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn readyz_turns_503_once_shutdown_begins() {
    let mut app = spawn_app_with(|settings| settings.server.workers = 1).await;
    let mut stream = raw_connection(app.address, b"GET /readyz HTTP/1.1\r\nHost: x\r\n").await;
    sync_with_worker(&app).await;

    app.begin_shutdown();
    app.wait_until_not_accepting().await;
    stream.write_all(b"\r\n").await.unwrap();

    let response = read_to_close(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    assert!(response.contains("shutting_down"), "{response}");
    assert!(
        response.to_ascii_lowercase().contains("retry-after: 1"),
        "{response}"
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_gives_up_on_a_stalled_request_after_the_drain_timeout() {
    let mut app = spawn_app_with(|settings| {
        settings.server.workers = 1;
        settings.server.drain_timeout = Duration::from_millis(300);
    })
    .await;
    // Never finishes its body.
    let mut stream = raw_connection(app.address, format!("{PLAY_HEAD}{{").as_bytes()).await;
    sync_with_worker(&app).await;

    let started = std::time::Instant::now();
    app.begin_shutdown();
    app.shutdown().await.unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300),
        "returned before the drain timeout: {took:?}"
    );
    assert!(
        took < Duration::from_secs(5),
        "drain timeout not enforced: {took:?}"
    );
    // The stalled connection is closed, not left hanging.
    read_to_close(&mut stream).await;
}

#[tokio::test]
async fn idle_keep_alive_connections_do_not_hold_up_shutdown() {
    let app = spawn_app_with(|settings| settings.server.workers = 1).await;
    let mut idle = raw_connection(app.address, format!("{PLAY_HEAD}{PLAY_BODY}").as_bytes()).await;
    sync_with_worker(&app).await;
    let started = std::time::Instant::now();
    app.shutdown().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    let response = read_to_close(&mut idle).await;
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
}

//! Clients that stop reading, that keep sending after an error, or that sit idle: what they
//! may cost the server (a permit, a buffer, a slot) and for how long.

use std::collections::HashMap;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::helpers::{TIMEOUT, TestApp, raw_connection, read_to_close, spawn_app_with};

const PLAY: &[u8] = b"POST /play HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 18\r\n\r\n{\"choice\":\"paper\"}";

/// Plays a non-reading client pipelines: their answers (about 340 bytes each, 6.8 MB) are more
/// than the kernel buffers of a loopback connection hold (up to 4 MiB sent, plus the
/// receiver's), so the server's writes block.
const STALLING_PIPELINE: usize = 20_000;

/// The unlabelled samples of `/metrics`, by name.
async fn gauges(app: &TestApp) -> HashMap<String, f64> {
    crate::observability::scrape_text(app)
        .await
        .lines()
        .filter(|line| !line.starts_with('#') && !line.contains('{'))
        .filter_map(|line| {
            let (name, value) = line.split_once(' ')?;
            Some((name.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

async fn gauge(app: &TestApp, name: &str) -> f64 {
    *gauges(app)
        .await
        .get(name)
        .unwrap_or_else(|| panic!("{name} is exposed"))
}

/// Polls `gauge` until `accept` holds, failing after `TIMEOUT`.
async fn wait_for(app: &TestApp, name: &str, accept: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let value = gauge(app, name).await;
        if accept(value) {
            return value;
        }
        assert!(Instant::now() < deadline, "{name} stayed at {value}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A connection with a tiny receive buffer that pipelines `requests` plays and never reads an
/// answer: the server's writes to it soon block. Returns the stream (kept open) and the task
/// that writes, which ends once the server stops reading from it or closes it.
async fn non_reading_client(app: &TestApp, requests: usize) -> JoinHandle<TcpStream> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(app.address).await.unwrap();
    tokio::spawn(async move {
        let pipeline = PLAY.repeat(requests);
        let _ = stream.write_all(&pipeline).await;
        stream
    })
}

/// Waits until the server stops answering: the count of plays answered stays still for a
/// while, so every non-reading connection has its write blocked.
async fn wait_until_stalled(app: &TestApp) -> f64 {
    let mut last = -1.0;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let text = crate::observability::scrape_text(app).await;
        let plays: f64 = text
            .lines()
            .filter(|line| line.starts_with("guess_game_http_requests_total{route=\"/play\""))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if plays == last && plays > 0.0 {
            return plays;
        }
        assert!(Instant::now() < deadline, "the server never stalled");
        last = plays;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn clients_that_do_not_read_hold_no_in_flight_place_and_starve_no_one() {
    let app = spawn_app_with(|settings| {
        settings.limits.max_in_flight = 32;
        settings.server.write_timeout = Duration::from_secs(60);
    })
    .await;
    let mut stalled = Vec::new();
    for _ in 0..2 {
        stalled.push(non_reading_client(&app, STALLING_PIPELINE).await);
    }
    let answered = wait_until_stalled(&app).await;
    // Each stalled connection has a full output buffer (64 KiB, about 190 answers) waiting
    // on its client: far more answers than the bound of 32 in flight.
    assert!(answered > 2.0 * 32.0, "only {answered} plays answered");
    let samples = gauges(&app).await;
    assert_eq!(samples["guess_game_concurrency_in_flight"], 0.0);
    assert_eq!(samples["guess_game_http_requests_in_flight"], 0.0);
    assert_eq!(samples["guess_game_connection_buffers_lent"], 2.0);

    let mut succeeded = 0;
    for _ in 0..50 {
        let answer = app.play_json(r#"{"choice":"rock"}"#).await;
        if answer.status == 200 {
            succeeded += 1;
        }
    }
    assert_eq!(succeeded, 50, "a normal client's plays all succeed");
    for writer in stalled {
        writer.abort();
    }
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_after_the_write_timeout() {
    let app = spawn_app_with(|settings| {
        settings.server.write_timeout = Duration::from_millis(300);
    })
    .await;
    let writer = non_reading_client(&app, STALLING_PIPELINE).await;
    wait_for(&app, "guess_game_connections_open", |open| open == 1.0).await;
    let started = Instant::now();
    wait_for(&app, "guess_game_connections_open", |open| open == 0.0).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(gauge(&app, "guess_game_connection_buffers_lent").await, 0.0);
    writer.abort();
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn idle_keep_alive_connections_hold_no_buffers() {
    let app = spawn_app_with(|_| {}).await;
    let mut idle = Vec::new();
    for _ in 0..200 {
        let mut stream = raw_connection(app.address, PLAY).await;
        let mut answer = [0u8; 512];
        let read = tokio::time::timeout(TIMEOUT, stream.read(&mut answer))
            .await
            .unwrap()
            .unwrap();
        assert!(answer[..read].starts_with(b"HTTP/1.1 200 OK\r\n"));
        idle.push(stream);
    }
    // A worker gives the buffers back right after its write, which the client may see first:
    // wait the few microseconds that can take, with a deadline.
    wait_for(&app, "guess_game_connection_buffers_lent", |lent| {
        lent == 0.0
    })
    .await;
    assert_eq!(gauge(&app, "guess_game_connections_open").await, 200.0);
    drop(idle);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_request_after_one_marked_close_is_never_served_even_after_a_delay() {
    let app = spawn_app_with(|settings| settings.admin.fault_injection = true).await;
    crate::protection::inject(
        &app,
        r#"{"point":"play","latency_ms":100,"duration_ms":60000}"#,
    )
    .await;
    let closing = b"POST /play HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 18\r\n\r\n{\"choice\":\"paper\"}";
    let mut pipeline = closing.to_vec();
    pipeline.extend_from_slice(PLAY);
    let mut stream = raw_connection(app.address, &pipeline).await;
    let received = read_to_close(&mut stream).await;
    assert_eq!(
        received.matches("HTTP/1.1 ").count(),
        1,
        "one answer, then the connection closed: {received}"
    );
    assert!(received.starts_with("HTTP/1.1 200 OK\r\n"));
    app.shutdown().await.unwrap();
}

/// Sends `head`, then keeps sending body bytes the server will never read, while reading the
/// answer: the answer must arrive whole, not be destroyed by a reset.
async fn answer_while_still_sending(app: &TestApp, head: &'static [u8]) -> String {
    let stream = raw_connection(app.address, head).await;
    let (mut reader, mut writer) = stream.into_split();
    let sender = tokio::spawn(async move {
        let junk = vec![b'x'; 16 * 1024];
        for _ in 0..64 {
            if writer.write_all(&junk).await.is_err() {
                break;
            }
        }
        writer
    });
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout(TIMEOUT, reader.read(&mut chunk))
            .await
            .expect("the server answers and closes in time")
        {
            Ok(0) => break,
            Ok(read) => received.extend_from_slice(&chunk[..read]),
            Err(error) => panic!(
                "{error} after {} bytes: {}",
                received.len(),
                String::from_utf8_lossy(&received)
            ),
        }
    }
    sender.abort();
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test]
async fn answers_queued_behind_a_slow_reader_survive_the_close_after_an_error() {
    // A client with a small receive window pipelines plays and a malformed request, sends a
    // few more bytes a little later, and reads only after that. When the server closes after its 400, most answers
    // still sit in its send queue; closing with the client's bytes unread would reset the
    // connection and discard them. A lingering close delivers them all, the 400 last.
    let app = spawn_app_with(|_| {}).await;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(app.address).await.unwrap();
    let mut pipeline = PLAY.repeat(2000);
    pipeline.extend_from_slice(b"GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n");
    stream.write_all(&pipeline).await.unwrap();
    // The server answers and closes; then more bytes arrive, which a closed socket would answer
    // with a reset, discarding the answers not yet sent.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream.write_all(&[b'x'; 1024]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let received = read_to_close(&mut stream).await;
    assert_eq!(received.matches("HTTP/1.1 200 OK").count(), 2000);
    let last = received.rfind("HTTP/1.1 ").unwrap();
    assert!(
        received[last..].starts_with("HTTP/1.1 400 "),
        "{}",
        &received[last..]
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_connection_over_the_cap_reads_its_503_while_still_sending() {
    let app = spawn_app_with(|settings| {
        settings.server.max_connections = 1;
        settings.server.workers = 1;
    })
    .await;
    let mut held = raw_connection(app.address, PLAY).await;
    let mut answer = [0u8; 512];
    let read = held.read(&mut answer).await.unwrap();
    assert!(answer[..read].starts_with(b"HTTP/1.1 200 OK\r\n"));
    let received = answer_while_still_sending(&app, PLAY).await;
    assert!(
        received.starts_with("HTTP/1.1 503 "),
        "the refusal arrived: {received}"
    );
    drop(held);
    app.shutdown().await.unwrap();
}

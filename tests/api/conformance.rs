//! HTTP/1.1 behaviour both engines must share: framing, limits, pipelining, slow clients.
//! Every test here runs against the native engine and against hyper.

use std::time::{Duration, Instant};

use guess_game::config::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{TestApp, raw_connection, read_to_close, spawn_app_with};

const ENGINES: [Engine; 2] = [Engine::Native, Engine::Hyper];
const PLAY: &str = "POST /play HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"choice\":\"rock\"}";

async fn app_on(engine: Engine) -> TestApp {
    spawn_app_with(|settings| {
        settings.server.engine = engine;
        settings.server.header_read_timeout = Duration::from_millis(500);
    })
    .await
}

/// The status codes of every response in a byte stream of responses, in order.
fn statuses(response: &str) -> Vec<&str> {
    response
        .split("HTTP/1.1 ")
        .skip(1)
        .map(|rest| &rest[..3])
        .collect()
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    for engine in ENGINES {
        let app = app_on(engine).await;
        let request = format!(
            "{PLAY}GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        );
        let mut stream = raw_connection(app.address, request.as_bytes()).await;
        let response = read_to_close(&mut stream).await;
        assert_eq!(
            statuses(&response),
            ["200", "200", "404"],
            "{engine:?}: {response}"
        );
        app.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn answers_that_wait_on_the_store_keep_their_place_in_a_pipeline() {
    for engine in ENGINES {
        let app = app_on(engine).await;
        let keyed = "POST /play HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Player-Id: pip\r\nIdempotency-Key: k1\r\nContent-Length: 18\r\n\r\n{\"choice\":\"paper\"}";
        let request = format!(
            "GET /leaderboard HTTP/1.1\r\nHost: x\r\n\r\n{keyed}{keyed}GET /players/nobody/stats HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        );
        let mut stream = raw_connection(app.address, request.as_bytes()).await;
        let response = read_to_close(&mut stream).await;
        assert_eq!(
            statuses(&response),
            ["200", "200", "200", "404", "200"],
            "{engine:?}: {response}"
        );
        assert_eq!(
            response
                .to_ascii_lowercase()
                .matches("idempotent-replayed: true")
                .count(),
            1,
            "{engine:?}: the second keyed play is the replay: {response}"
        );
        app.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn both_content_length_and_transfer_encoding_is_refused() {
    for engine in ENGINES {
        let app = app_on(engine).await;
        // Were the server to trust Content-Length, the chunk terminator would start a second,
        // smuggled request to /nope.
        let request = "POST /play HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n11\r\n{\"choice\":\"rock\"}\r\n0\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut stream = raw_connection(app.address, request.as_bytes()).await;
        let response = read_to_close(&mut stream).await;
        let statuses = statuses(&response);
        assert!(
            !statuses.contains(&"404"),
            "{engine:?} smuggled: {response}"
        );
        // Exactly one answer, never none (an empty answer would pass a check that only looks
        // for the absence of the smuggled 404): the native engine refuses the request; hyper
        // reads the body as chunked and closes after it, which RFC 9112 6.3 also allows.
        let expected = match engine {
            Engine::Native => "400",
            Engine::Hyper => "200",
        };
        assert_eq!(statuses, [expected], "{engine:?}: {response}");
        app.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_chunked_play_is_served() {
    for engine in ENGINES {
        let app = app_on(engine).await;
        let request = "POST /play HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\n{\"cho\r\nc\r\nice\":\"rock\"}\r\n0\r\n\r\n";
        let mut stream = raw_connection(app.address, request.as_bytes()).await;
        let response = read_to_close(&mut stream).await;
        assert!(
            response.starts_with("HTTP/1.1 200"),
            "{engine:?}: {response}"
        );
        assert!(
            response.contains(r#""player_choice":"rock""#),
            "{engine:?}: {response}"
        );
        app.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn an_oversized_head_gets_431() {
    for engine in ENGINES {
        let app = app_on(engine).await;
        let request = format!(
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(512 * 1024)
        );
        let mut stream = tokio::net::TcpStream::connect(app.address).await.unwrap();
        // The server may answer and close before all of it is sent.
        let _ = stream.write_all(request.as_bytes()).await;
        let response = read_to_close(&mut stream).await;
        assert!(
            response.starts_with("HTTP/1.1 431"),
            "{engine:?}: {:.200}",
            response
        );
        app.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn garbage_gets_400_and_a_closed_connection() {
    for engine in ENGINES {
        let app = app_on(engine).await;
        let mut stream = raw_connection(
            app.address,
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        )
        .await;
        let response = read_to_close(&mut stream).await;
        assert!(
            response.is_empty() || response.starts_with("HTTP/1.1 400"),
            "{engine:?}: {response}"
        );
        app.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn expect_100_continue_gets_continue_then_the_answer() {
    for engine in ENGINES {
        let app = app_on(engine).await;
        let mut stream = raw_connection(
            app.address,
            b"POST /play HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 17\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        )
        .await;
        let mut interim = [0u8; 25];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut interim))
            .await
            .expect("100 Continue arrives without sending the body")
            .unwrap();
        assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n", "{engine:?}");
        stream.write_all(br#"{"choice":"rock"}"#).await.unwrap();
        let response = read_to_close(&mut stream).await;
        assert!(
            response.starts_with("HTTP/1.1 200"),
            "{engine:?}: {response}"
        );
        app.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn http_1_0_is_answered_and_closed() {
    for engine in ENGINES {
        let app = app_on(engine).await;
        let mut stream = raw_connection(app.address, b"GET /healthz HTTP/1.0\r\n\r\n").await;
        let response = read_to_close(&mut stream).await;
        assert!(
            response.starts_with("HTTP/1.") && response.contains(" 200 OK"),
            "{engine:?}: {response}"
        );
        app.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_client_that_stalls_mid_request_is_cut_off_after_the_read_timeout() {
    for engine in ENGINES {
        let app = app_on(engine).await;
        let started = Instant::now();
        let mut stream = raw_connection(app.address, b"POST /play HTTP/1.1\r\nHost: x\r\n").await;
        let response = read_to_close(&mut stream).await;
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(400),
            "{engine:?} closed too early: {took:?}"
        );
        assert!(
            took < Duration::from_secs(5),
            "{engine:?} kept a stalled client: {took:?}"
        );
        assert!(
            response.is_empty() || response.starts_with("HTTP/1.1 408"),
            "{engine:?}: {response}"
        );
        app.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn head_bodies_are_never_sent() {
    for engine in ENGINES {
        let app = app_on(engine).await;
        let mut stream = raw_connection(app.address, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        let response = read_to_close(&mut stream).await;
        let (head_answer, rest) = response.split_once("\r\n\r\n").unwrap();
        assert!(
            head_answer
                .to_ascii_lowercase()
                .contains("content-length: 15"),
            "{engine:?}: {response}"
        );
        assert!(
            rest.starts_with("HTTP/1.1 200"),
            "{engine:?}: HEAD sent a body: {response}"
        );
        app.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_control_character_in_a_chunk_extension_is_refused() {
    for engine in ENGINES {
        let app = app_on(engine).await;
        // A lenient proxy that ends the size line at the bare LF would read the rest of the
        // extension as chunk data, and the two would disagree on where the body ends.
        // hyper refuses bare CR and LF there; the native engine every control character.
        let extensions: &[&str] = match engine {
            Engine::Native => &["a\nb", "a\rb", "a\0b", "a\x7fb"],
            Engine::Hyper => &["a\nb", "a\rb"],
        };
        for extension in extensions {
            let request = format!(
                "POST /play HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n11;{extension}\r\n{{\"choice\":\"rock\"}}\r\n0\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
            );
            let mut stream = raw_connection(app.address, request.as_bytes()).await;
            let response = read_to_close(&mut stream).await;
            let statuses = statuses(&response);
            assert!(
                !statuses.contains(&"200") && !statuses.contains(&"404"),
                "{engine:?} {extension:?}: {response}"
            );
        }
        app.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn trailer_fields_are_read_and_ignored() {
    for engine in ENGINES {
        let app = app_on(engine).await;
        let request = "POST /play HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n11\r\n{\"choice\":\"rock\"}\r\n0\r\nX-Checksum: 1\r\nContent-Length: 99\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        let mut stream = raw_connection(app.address, request.as_bytes()).await;
        let response = read_to_close(&mut stream).await;
        assert_eq!(
            statuses(&response),
            ["200", "200"],
            "{engine:?}: {response}"
        );
        app.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn an_http_1_1_request_without_exactly_one_host_is_400_on_the_native_engine() {
    // hyper's server does not check Host; the native engine follows RFC 9112 3.2.
    let app = app_on(Engine::Native).await;
    for head in [
        "GET /healthz HTTP/1.1\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    ] {
        let mut stream = raw_connection(app.address, head.as_bytes()).await;
        let response = read_to_close(&mut stream).await;
        assert!(
            response.starts_with("HTTP/1.1 400 "),
            "{head:?}: {response}"
        );
    }
    let mut stream = raw_connection(app.address, b"GET /healthz HTTP/1.0\r\n\r\n").await;
    assert!(
        read_to_close(&mut stream)
            .await
            .starts_with("HTTP/1.1 200 ")
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn expect_100_continue_on_http_1_0_gets_no_interim_answer() {
    let app = app_on(Engine::Native).await;
    let mut stream = raw_connection(
        app.address,
        b"POST /play HTTP/1.0\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: 17\r\n\r\n",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    stream.write_all(br#"{"choice":"rock"}"#).await.unwrap();
    let response = read_to_close(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
    assert!(!response.contains("100 Continue"), "{response}");
    app.shutdown().await.unwrap();
}

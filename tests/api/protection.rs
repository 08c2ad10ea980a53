//! Surviving slow clients: connection caps and read deadlines, over real sockets.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::helpers::{TestApp, spawn_app_with};

/// How a slow connection ended, and when.
#[derive(Debug)]
struct SlowEnd {
    lasted: Duration,
    /// The first bytes of whatever the server answered before closing.
    answer: String,
}

/// Opens a connection that dribbles a request one byte every `pace`: a head that never ends
/// (slowloris) or, with `slow_body`, a complete head and a body that never does. Returns when
/// the server closes it, or after `give_up`.
async fn slow_client(
    address: std::net::SocketAddr,
    slow_body: bool,
    pace: Duration,
    give_up: Duration,
) -> SlowEnd {
    let started = Instant::now();
    let Ok(mut stream) = TcpStream::connect(address).await else {
        return SlowEnd {
            lasted: started.elapsed(),
            answer: "refused".into(),
        };
    };
    let opening: &[u8] = if slow_body {
        b"POST /play HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    } else {
        b"POST /play HTTP/1.1\r\nHost: x\r\n"
    };
    let mut answer = Vec::new();
    if stream.write_all(opening).await.is_ok() {
        while started.elapsed() < give_up {
            let mut buffer = [0u8; 512];
            match stream.try_read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => answer.extend_from_slice(&buffer[..read]),
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
            if stream
                .write_all(if slow_body { b"x" } else { b"X" })
                .await
                .is_err()
            {
                break;
            }
            tokio::time::sleep(pace).await;
        }
    }
    SlowEnd {
        lasted: started.elapsed(),
        answer: String::from_utf8_lossy(&answer).chars().take(40).collect(),
    }
}

/// Plays on one keep-alive connection (reconnecting when it closes) until `until`; returns
/// (rounds answered 200, rounds attempted).
async fn normal_client(app: &TestApp, until: Instant) -> (u32, u32) {
    let mut sender = None;
    let (mut good, mut tried) = (0, 0);
    while Instant::now() < until {
        tried += 1;
        if sender.is_none()
            && let Ok(stream) = TcpStream::connect(app.address).await
            && let Ok((s, connection)) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await
        {
            tokio::spawn(connection);
            sender = Some(s);
        }
        if let Some(s) = sender.as_mut() {
            let request = http::Request::post("/play")
                .header("host", "x")
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from_static(br#"{"choice":"rock"}"#)))
                .unwrap();
            match tokio::time::timeout(Duration::from_secs(2), s.send_request(request)).await {
                Ok(Ok(response)) if response.status() == 200 => {
                    let _ = response.into_body().collect().await;
                    good += 1;
                }
                _ => sender = None,
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (good, tried)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_clients_beyond_a_small_limit_are_cut_off_while_a_normal_client_plays() {
    let app = spawn_app_with(|settings| {
        settings.server.max_connections = 20;
        settings.server.header_read_timeout = Duration::from_secs(1);
        settings.server.workers = 1;
    })
    .await;
    // The normal client's connection exists before the flood, as a game client's would.
    let until = Instant::now() + Duration::from_millis(2500);
    let normal = {
        let address = app.address;
        let url = app.url.clone();
        let app_view = TestApp::view(address, url);
        tokio::spawn(async move { normal_client(&app_view, until).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let slow: Vec<_> = (0..40)
        .map(|index| {
            tokio::spawn(slow_client(
                app.address,
                index % 2 == 1,
                Duration::from_millis(100),
                Duration::from_secs(5),
            ))
        })
        .collect();
    let (good, tried) = normal.await.unwrap();
    assert!(
        good * 100 >= tried * 95,
        "normal client: {good} of {tried} rounds answered"
    );
    let (mut refused, mut cut) = (0, 0);
    for end in slow {
        let end = end.await.unwrap();
        // Over the cap: refused at once with 503. Within it: cut at the 1 s read deadline (408).
        assert!(
            end.lasted < Duration::from_millis(2500),
            "a slow connection lasted {:?}: {end:?}",
            end.lasted
        );
        refused += u32::from(end.answer.starts_with("HTTP/1.1 503"));
        cut += u32::from(end.answer.starts_with("HTTP/1.1 408"));
    }
    // How many hit the cap depends on how fast the 40 connect relative to the 1 s deadline
    // freeing places; both mechanisms must have acted.
    assert!(refused > 0, "no connection over the cap of 20 was refused");
    assert!(cut > 0, "no slow connection was cut at the read deadline");
    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousands_of_slow_clients_do_not_starve_a_normal_one_with_default_settings() {
    let app = spawn_app_with(|_| {}).await;
    let until = Instant::now() + Duration::from_secs(3);
    let normal = {
        let app_view = TestApp::view(app.address, app.url.clone());
        tokio::spawn(async move { normal_client(&app_view, until).await })
    };
    let slow: Vec<_> = (0..2000)
        .map(|index| {
            tokio::spawn(slow_client(
                app.address,
                index % 2 == 1,
                Duration::from_millis(500),
                Duration::from_secs(14),
            ))
        })
        .collect();
    let (good, tried) = normal.await.unwrap();
    assert!(
        good * 100 >= tried * 95,
        "normal client: {good} of {tried} rounds answered"
    );
    // The default read deadline is 10 s: every slow connection is closed by then (plus slack).
    for end in slow {
        let end = end.await.unwrap();
        assert!(
            end.lasted < Duration::from_secs(13),
            "a slow connection lasted {:?}: {end:?}",
            end.lasted
        );
    }
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_client_over_its_rate_gets_429_with_rate_limit_headers_and_others_do_not() {
    let app = spawn_app_with(|settings| {
        settings.limits.rate_limit_per_client = 1.0;
        settings.limits.rate_limit_per_client_burst = 2;
    })
    .await;
    let play = |player: &'static str| {
        let headers = vec![
            ("content-type", "application/json"),
            ("x-player-id", player),
            ("x-forwarded-for", "203.0.113.9"),
        ];
        let url = app.url.clone();
        async move {
            url.send(
                http::Method::POST,
                "/play",
                &headers,
                r#"{"choice":"rock"}"#.into(),
                crate::helpers::TIMEOUT,
            )
            .await
            .unwrap()
        }
    };
    assert_eq!(play("alice").await.status, 200);
    assert_eq!(play("alice").await.status, 200);
    let refused = play("alice").await;
    assert_eq!(refused.status, 429);
    assert_eq!(
        refused.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(crate::helpers::json(&refused)["code"], "rate_limited");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(
        refused.header("ratelimit-policy"),
        Some("\"client\";q=2;w=2")
    );
    assert_eq!(refused.header("ratelimit"), Some("\"client\";r=0;t=1"));
    // Another player, from the same address and the same (untrusted) forwarded-for, has its own bucket.
    assert_eq!(play("bob").await.status, 200);
    // Probes are never limited.
    for _ in 0..5 {
        assert_eq!(app.get("/healthz").await.status, 200);
    }
    app.shutdown().await.unwrap();
}

/// A request to `/admin/faults` with a JSON body.
pub async fn admin_send(
    app: &TestApp,
    method: http::Method,
    body: &'static str,
) -> guess_game::client::Answer {
    app.admin_request(
        method,
        "/admin/faults",
        &[("content-type", "application/json")],
        body,
    )
    .await
}

/// Injects a fault through the admin listener and checks it was accepted.
pub async fn inject(app: &TestApp, spec: &'static str) {
    let added = admin_send(app, http::Method::POST, spec).await;
    assert_eq!(
        added.status,
        201,
        "{}",
        String::from_utf8_lossy(&added.body)
    );
}

#[tokio::test]
async fn an_injected_error_fails_play_only_and_is_removed_on_request() {
    let app = spawn_app_with(|settings| settings.admin.fault_injection = true).await;
    inject(
        &app,
        r#"{"point":"play","error_rate":1.0,"duration_ms":60000}"#,
    )
    .await;
    let failed = app.play_json(r#"{"choice":"rock"}"#).await;
    assert_eq!(failed.status, 503);
    assert_eq!(crate::helpers::json(&failed)["code"], "injected_fault");
    assert_eq!(failed.header("retry-after"), Some("1"));
    assert_eq!(
        app.get("/healthz").await.status,
        200,
        "what does not depend on play is unaffected"
    );
    let listed = crate::helpers::json(&admin_send(&app, http::Method::GET, "").await);
    assert_eq!(listed["faults"].as_array().unwrap().len(), 1);
    assert_eq!(admin_send(&app, http::Method::DELETE, "").await.status, 200);
    assert_eq!(app.play_json(r#"{"choice":"rock"}"#).await.status, 200);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn injected_latency_delays_play_without_holding_up_other_connections() {
    let app = spawn_app_with(|settings| {
        settings.admin.fault_injection = true;
        settings.server.workers = 1;
    })
    .await;
    inject(
        &app,
        r#"{"point":"play","latency_ms":400,"duration_ms":60000}"#,
    )
    .await;
    let started = Instant::now();
    let (played, probe) = tokio::join!(app.play_json(r#"{"choice":"rock"}"#), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let probe_started = Instant::now();
        let answer = app.get("/healthz").await;
        (answer.status, probe_started.elapsed())
    });
    assert_eq!(played.status, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "the fault's latency was added"
    );
    assert_eq!(probe.0, 200);
    assert!(
        probe.1 < Duration::from_millis(300),
        "the one worker was not blocked: {:?}",
        probe.1
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn fault_injection_is_off_unless_enabled() {
    let app = crate::helpers::spawn_app().await;
    let refused = admin_send(
        &app,
        http::Method::POST,
        r#"{"point":"play","error_rate":1.0,"duration_ms":1000}"#,
    )
    .await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        crate::helpers::json(&refused)["code"],
        "fault_injection_disabled"
    );
    assert_eq!(app.play_json(r#"{"choice":"rock"}"#).await.status, 200);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn requests_above_the_in_flight_bound_are_shed_at_once_and_probes_never_are() {
    let app = spawn_app_with(|settings| {
        settings.admin.fault_injection = true;
        settings.limits.max_in_flight = 4;
        settings.server.workers = 1;
    })
    .await;
    // Slow the handler down so that requests pile up in flight.
    inject(
        &app,
        r#"{"point":"play","latency_ms":500,"duration_ms":60000}"#,
    )
    .await;
    let rounds: Vec<_> = (0..10)
        .map(|_| {
            let url = app.url.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let answer = url
                    .send(
                        http::Method::POST,
                        "/play",
                        &[("content-type", "application/json")],
                        r#"{"choice":"rock"}"#.into(),
                        crate::helpers::TIMEOUT,
                    )
                    .await
                    .unwrap();
                (answer, started.elapsed())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let probe = app.get("/healthz").await;
    assert_eq!(probe.status, 200, "probes are never shed");
    let (mut played, mut shed) = (0, 0);
    for round in rounds {
        let (answer, took) = round.await.unwrap();
        match answer.status.as_u16() {
            200 => played += 1,
            503 => {
                shed += 1;
                assert_eq!(crate::helpers::json(&answer)["code"], "overloaded");
                assert_eq!(answer.header("retry-after"), Some("1"));
                assert!(
                    took < Duration::from_millis(400),
                    "a shed request is answered at once, not after the slow ones: {took:?}"
                );
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(played, 4, "the bound admits exactly max_in_flight");
    assert_eq!(shed, 6);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_request_that_would_outlast_the_request_timeout_is_answered_503_when_it_expires() {
    let app = spawn_app_with(|settings| {
        settings.admin.fault_injection = true;
        settings.server.request_timeout = Duration::from_millis(300);
    })
    .await;
    inject(
        &app,
        r#"{"point":"play","latency_ms":5000,"duration_ms":60000}"#,
    )
    .await;
    let started = Instant::now();
    let answer = app.play_json(r#"{"choice":"rock"}"#).await;
    let took = started.elapsed();
    assert_eq!(answer.status, 503);
    assert_eq!(crate::helpers::json(&answer)["code"], "handler_timeout");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(2000),
        "answered after {took:?}"
    );
    app.shutdown().await.unwrap();
}

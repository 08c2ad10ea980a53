//! TLS on the public listener: HTTP and WebSocket over rustls, ALPN `http/1.1`, refusals, and a
//! certificate replaced on SIGHUP without dropping open connections. The client side is
//! tokio-rustls and tokio-tungstenite, not the server's code.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{TestApp, spawn_app_with};

/// A self-signed certificate for `localhost` and 127.0.0.1, written under `dir`.
struct Certificate {
    certificate: PathBuf,
    key: PathBuf,
    pem: String,
}

fn certificate(dir: &Path, name: &str) -> Certificate {
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let certificate = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&certificate, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    Certificate {
        certificate,
        key,
        pem: generated.cert.pem(),
    }
}

/// A fresh directory for the test's certificates, removed when the guard drops.
fn scratch_dir(test: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("guess-game-tls-test-{test}-"))
        .tempdir()
        .unwrap()
}

async fn tls_app(served: &Certificate) -> TestApp {
    let certificate = served.certificate.clone();
    let key = served.key.clone();
    spawn_app_with(move |settings| {
        settings.server.tls_certificate = Some(certificate);
        settings.server.tls_key = Some(key);
        settings.accounts.trust_player_header = false;
        settings.accounts.accounts_per_address_per_hour = 0;
    })
    .await
}

/// Connects over TLS trusting only `trusted`, offering h2 and http/1.1.
async fn connect(app: &TestApp, trusted: &str) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(trusted.as_bytes()).unwrap())
        .unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(app.address).await?;
    let name = ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::other("handshake timed out"))?
}

/// One request on a kept-alive connection; the status and body of its answer.
async fn exchange(
    stream: &mut TlsStream<TcpStream>,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, String) {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\ncontent-length: {}\r\n{headers}\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("an answer in time")
            .unwrap();
        assert!(read > 0, "closed before the answer was complete");
        received.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&received);
        let Some(end) = text.find("\r\n\r\n") else {
            continue;
        };
        let head = text[..end].to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .map_or(0, |value| value.trim().parse().unwrap());
        if received.len() >= end + 4 + length {
            let status = head[9..12].parse().unwrap();
            let body = String::from_utf8_lossy(&received[end + 4..end + 4 + length]).into_owned();
            return (status, body);
        }
    }
}

#[tokio::test]
async fn http_and_websocket_are_served_over_tls_with_alpn_http_1_1() {
    let dir = scratch_dir("serve");
    let served = certificate(dir.path(), "server");
    let app = tls_app(&served).await;

    let mut stream = connect(&app, &served.pem).await.expect("handshake");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (status, _) = exchange(&mut stream, "GET", "/healthz", "", "").await;
    assert_eq!(status, 200);
    let (status, body) = exchange(
        &mut stream,
        "POST",
        "/play",
        "content-type: application/json\r\n",
        r#"{"choice":"rock"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The same keep-alive connection serves a third request: nothing was left unflushed.
    let (status, body) = exchange(
        &mut stream,
        "POST",
        "/accounts/guest",
        "content-type: application/json\r\n",
        "{}",
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let guest: Value = serde_json::from_str(&body).unwrap();
    let token = guest["session"]["access_token"].as_str().unwrap();

    // WebSocket over TLS: the upgrade, then messages both ways.
    let tls = connect(&app, &served.pem).await.expect("handshake");
    let mut request = "wss://localhost/ws".into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::client_async(request, tls)
        .await
        .expect("upgrade over TLS");
    socket
        .send(Message::text(json!({"type": "hello", "id": 1}).to_string()))
        .await
        .unwrap();
    let welcome = loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("a welcome in time")
            .expect("open")
            .unwrap();
        if let Message::Text(text) = message {
            break serde_json::from_str::<Value>(&text).unwrap();
        }
    };
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    socket.close(None).await.unwrap();
}

#[tokio::test]
async fn untrusted_clients_and_plain_http_are_refused_and_counted() {
    let dir = scratch_dir("refuse");
    let served = certificate(dir.path(), "server");
    let other = certificate(dir.path(), "other");
    let app = tls_app(&served).await;

    let error = connect(&app, &other.pem)
        .await
        .expect_err("a client trusting another certificate refuses this one");
    assert!(error.to_string().contains("certificate"), "{error}");

    // Plain HTTP on the TLS port gets no HTTP answer, only a closed connection.
    let mut plain = TcpStream::connect(app.address).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut received = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut received))
        .await
        .expect("closed in time");
    assert!(!received.starts_with(b"HTTP/1.1"), "answered in plain text");

    let metrics = app
        .admin_request(http::Method::GET, "/metrics", &[], "")
        .await;
    let text = String::from_utf8_lossy(&metrics.body);
    let failed = text
        .lines()
        .find_map(|line| line.strip_prefix(r#"guess_game_tls_handshakes_total{outcome="failed"} "#))
        .map(|value| value.parse::<f64>().unwrap());
    assert!(failed.is_some_and(|count| count >= 2.0), "{text}");
}

#[tokio::test]
async fn a_certificate_replaced_on_sighup_serves_new_handshakes_and_open_connections_stay() {
    let dir = scratch_dir("reload");
    let first = certificate(dir.path(), "first");
    let app = tls_app(&first).await;
    // The admin listener answers only once the SIGHUP handler is installed (it starts after).
    assert_eq!(
        app.admin_request(http::Method::GET, "/metrics", &[], "")
            .await
            .status,
        200
    );
    let mut open = connect(&app, &first.pem).await.expect("handshake");
    assert_eq!(exchange(&mut open, "GET", "/healthz", "", "").await.0, 200);

    // A broken file and a SIGHUP: the current certificate stays.
    std::fs::write(&first.key, "not a key").unwrap();
    // SAFETY: raising a signal this process handles (the server installed a SIGHUP handler).
    unsafe { libc::raise(libc::SIGHUP) };
    let second = certificate(dir.path(), "second");
    let mut still_first = false;
    for _ in 0..50 {
        if connect(&app, &first.pem).await.is_ok() {
            still_first = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        still_first,
        "a failed reload must keep the served certificate"
    );

    std::fs::copy(&second.certificate, &first.certificate).unwrap();
    std::fs::copy(&second.key, &first.key).unwrap();
    // SAFETY: as above.
    unsafe { libc::raise(libc::SIGHUP) };
    let mut reloaded = false;
    for _ in 0..250 {
        if connect(&app, &second.pem).await.is_ok() {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        reloaded,
        "new handshakes use the new certificate after SIGHUP"
    );
    assert!(connect(&app, &first.pem).await.is_err());
    // The connection opened under the old certificate still serves.
    assert_eq!(exchange(&mut open, "GET", "/healthz", "", "").await.0, 200);
}

#[tokio::test]
async fn answers_larger_than_the_socket_buffers_arrive_whole_over_tls() {
    let dir = scratch_dir("large");
    let served = certificate(dir.path(), "server");
    let app = tls_app(&served).await;
    let mut stream = connect(&app, &served.pem).await.expect("handshake");
    // Twenty pipelined requests for a 100 KB document: the answers outgrow the socket
    // buffers, so encrypted records wait in the session and must still all be flushed.
    let request = "GET /openapi.json HTTP/1.1\r\nhost: localhost\r\n\r\n".repeat(20);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut answers = 0;
    while answers < 20 {
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("the answers keep coming")
            .unwrap();
        assert!(read > 0, "closed after {answers} answers");
        received.extend_from_slice(&chunk[..read]);
        answers = complete_answers(&received);
    }
    // Every byte of the twenty answers was read: the next answer starts clean.
    assert_eq!(
        exchange(&mut stream, "GET", "/healthz", "", "").await.0,
        200
    );
}

#[tokio::test]
async fn the_hyper_engine_serves_tls_too() {
    let dir = scratch_dir("hyper");
    let served = certificate(dir.path(), "server");
    let (certificate, key) = (served.certificate.clone(), served.key.clone());
    let app = spawn_app_with(move |settings| {
        settings.server.engine = guess_game::config::Engine::Hyper;
        settings.server.tls_certificate = Some(certificate);
        settings.server.tls_key = Some(key);
    })
    .await;
    let mut stream = connect(&app, &served.pem).await.expect("handshake");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(
        exchange(&mut stream, "GET", "/healthz", "", "").await.0,
        200
    );
    assert_eq!(
        exchange(&mut stream, "GET", "/healthz", "", "").await.0,
        200
    );
}

/// How many whole `200` answers (head and `content-length` body) `received` holds.
fn complete_answers(received: &[u8]) -> usize {
    let mut count = 0;
    let mut rest = received;
    loop {
        let Some(end) = rest.windows(4).position(|window| window == b"\r\n\r\n") else {
            return count;
        };
        let head = String::from_utf8_lossy(&rest[..end]).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .map_or(0, |value| value.trim().parse().unwrap());
        if rest.len() < end + 4 + length {
            return count;
        }
        count += 1;
        rest = &rest[end + 4 + length..];
    }
}

#[tokio::test]
async fn the_doctor_probe_knows_the_listener_by_its_certificate() {
    let dir = scratch_dir("probe");
    let served = certificate(dir.path(), "server");
    let other = certificate(dir.path(), "other");
    let app = tls_app(&served).await;
    let timeout = Duration::from_secs(5);
    guess_game::doctor::probe_health_tls(app.address, &served.certificate, timeout)
        .await
        .expect("the instance presents its own certificate and answers /healthz");
    let error = guess_game::doctor::probe_health_tls(app.address, &other.certificate, timeout)
        .await
        .expect_err("another certificate is not this instance");
    assert!(error.to_string().contains("another certificate"), "{error}");
}

//! Starting the server for a test and talking to it.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use guess_game::client::{Answer, ServerUrl};
use guess_game::config::Settings;
use guess_game::server::{ServeError, Server};
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A running server and a way to stop it.
pub struct TestApp {
    pub address: SocketAddr,
    pub admin: SocketAddr,
    pub url: ServerUrl,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServeError>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts a server on 127.0.0.1:0 with two workers, after `configure` adjusts the settings.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = Settings::default();
    settings.server.listen = "127.0.0.1:0".parse().unwrap();
    settings.admin.admin_listen = "127.0.0.1:0".parse().unwrap();
    settings.server.workers = 2;
    // Tests that read the access log run the binary and read its stdout.
    settings.telemetry.access_log_sample = 0.0;
    // Every test speaks from 127.0.0.1; the limiter stays on but out of the way, and the
    // rate-limit tests set their own.
    settings.limits.rate_limit_per_client = 1_000_000.0;
    settings.limits.rate_limit_per_client_burst = 1_000_000;
    // Most suites name players with X-Player-Id, as a deployment behind an authenticating
    // gateway does; tests/api/accounts.rs turns this off to test real accounts.
    settings.accounts.trust_player_header = true;
    configure(&mut settings);
    let server = Server::build(&settings).await.expect("server binds");
    let address = server.local_addr();
    let admin = server.admin_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run_until_stopped(async {
        let _ = stopped.await;
    }));
    TestApp {
        address,
        admin,
        url: ServerUrl::parse(&format!("http://{address}")).unwrap(),
        stop: Some(stop),
        task,
    }
}

impl TestApp {
    /// A handle on the same server for another task: it can send requests but not stop it.
    pub fn view(address: SocketAddr, url: ServerUrl) -> TestApp {
        TestApp {
            address,
            admin: address,
            url,
            stop: None,
            task: tokio::spawn(async { Ok(()) }),
        }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Answer {
        self.url
            .send(method, path, headers, body.into(), TIMEOUT)
            .await
            .expect("the server answers")
    }

    /// A request to the admin listener (metrics, profiles, flags, faults).
    pub async fn admin_request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Answer {
        ServerUrl::parse(&format!("http://{}", self.admin))
            .unwrap()
            .send(method, path, headers, body.into(), TIMEOUT)
            .await
            .expect("the admin listener answers")
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.request(Method::GET, path, &[], Bytes::new()).await
    }

    /// `POST /play` with a JSON body.
    pub async fn play_json(&self, body: &str) -> Answer {
        self.request(
            Method::POST,
            "/play",
            &[("content-type", "application/json")],
            body.to_owned(),
        )
        .await
    }

    /// Starts a graceful shutdown without waiting for it to finish.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shuts down and waits until the server has returned.
    pub async fn shutdown(mut self) -> Result<(), ServeError> {
        self.begin_shutdown();
        tokio::time::timeout(TIMEOUT, self.task)
            .await
            .expect("the server stops in time")
            .expect("the server task does not panic")
    }

    /// Waits until the listener refuses new connections, proving shutdown has begun.
    pub async fn wait_until_not_accepting(&self) {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        while TcpStream::connect(self.address).await.is_ok() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the listener never closed"
            );
            tokio::task::yield_now().await;
        }
    }
}

/// Sends raw bytes on a new connection and returns the connection.
pub async fn raw_connection(address: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream
}

/// Reads until the peer closes the connection, and returns everything as text.
pub async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut received))
        .await
        .expect("the server closes the connection in time")
        .unwrap();
    String::from_utf8_lossy(&received).into_owned()
}

/// An address on loopback that nothing listens on: bound, then released.
pub fn unused_address() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

pub fn json(answer: &Answer) -> serde_json::Value {
    serde_json::from_slice(&answer.body).unwrap_or_else(|error| {
        panic!(
            "not JSON ({error}): {}",
            String::from_utf8_lossy(&answer.body)
        )
    })
}

//! One worker: an OS thread with a single-threaded runtime that accepts connections and serves
//! them until told to stop, then drains.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::limits::{ConnectionGate, ConnectionPermit};
use super::{ConnectionSettings, hyper_engine, linger, native};
use crate::config::Engine;
use crate::http::{ApiError, App, EngineError};

/// How long to pause accepting after running out of file descriptors, so the loop does not
/// spin while connections close and free some.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);
/// How often a worker hands its buffered access-log lines to the writer.
/// Each tick wakes the worker, so it is kept at once a second.
const ACCESS_LOG_FLUSH: Duration = Duration::from_secs(1);

pub(super) struct Worker {
    pub index: usize,
    pub listener: std::net::TcpListener,
    pub app: Arc<App>,
    pub connection: Arc<ConnectionSettings>,
    pub gate: Arc<ConnectionGate>,
    pub stop: CancellationToken,
}

/// The open connections of a worker, by engine; each engine drains its own way.
enum Connections {
    Native(native::Connections),
    Hyper(GracefulShutdown),
}

impl Connections {
    fn new(engine: Engine) -> Self {
        match engine {
            Engine::Native => Connections::Native(native::Connections::default()),
            Engine::Hyper => Connections::Hyper(GracefulShutdown::new()),
        }
    }

    fn serve(
        &mut self,
        stream: TcpStream,
        app: &Arc<App>,
        settings: &Arc<ConnectionSettings>,
        permit: ConnectionPermit,
    ) {
        match self {
            Connections::Native(connections) => connections.serve(stream, app, settings, permit),
            Connections::Hyper(graceful) => {
                hyper_engine::spawn_connection(stream, app, settings, graceful, permit)
            }
        }
    }

    /// Waits for connections to finish, at most `timeout`; false when some had to be cut.
    async fn drain(self, timeout: Duration) -> bool {
        match self {
            Connections::Native(connections) => connections.drain(timeout).await,
            Connections::Hyper(graceful) => tokio::time::timeout(timeout, graceful.shutdown())
                .await
                .is_ok(),
        }
    }
}

impl Worker {
    /// Runs on the calling thread until stopped and drained.
    pub fn run(self) -> io::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(self.serve())
    }

    async fn serve(self) -> io::Result<()> {
        let listener = tokio::net::TcpListener::from_std(self.listener)?;
        let mut connections = Connections::new(self.connection.engine);
        let refusal = connection_limit_answer();
        let lingering = Arc::new(AtomicUsize::new(0));
        crate::telemetry::process::register_runtime(tokio::runtime::Handle::current());
        let app = Arc::clone(&self.app);
        let flusher = tokio::spawn(async move {
            let mut tick = tokio::time::interval(ACCESS_LOG_FLUSH);
            loop {
                tick.tick().await;
                app.observability().flush_thread();
            }
        });
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = self.stop.cancelled() => break,
            };
            match accepted {
                Ok((stream, _peer)) => {
                    let Some(permit) = self.gate.try_enter() else {
                        // Over TLS the plain-text answer would be noise before a handshake:
                        // the connection is only closed (and counted).
                        let answer = if self.connection.tls.is_some() {
                            &[][..]
                        } else {
                            &refusal[..]
                        };
                        refuse(stream, answer, &lingering);
                        continue;
                    };
                    if self.connection.tcp_nodelay
                        && let Err(error) = stream.set_nodelay(true)
                    {
                        tracing::debug!(%error, "cannot set TCP_NODELAY");
                    }
                    connections.serve(stream, &self.app, &self.connection, permit);
                }
                Err(error) if is_resource_exhaustion(&error) => {
                    tracing::warn!(worker = self.index, %error, "accept failed; backing off");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
                Err(error) => tracing::debug!(worker = self.index, %error, "accept failed"),
            }
        }
        drop(listener);
        let drain_timeout = self.connection.drain_timeout;
        if !connections.drain(drain_timeout).await {
            tracing::warn!(
                worker = self.index,
                ?drain_timeout,
                "drain timed out; closed the remaining connections"
            );
        }
        flusher.abort();
        self.app.observability().flush_thread();
        Ok(())
    }
}

/// The answer a connection over the cap gets: 503 `connection_limit` with `Retry-After`, sent
/// before reading anything (HTTP lets a server answer early), then the connection is closed.
fn connection_limit_answer() -> Vec<u8> {
    let mut body = Vec::new();
    let reply = ApiError::from(EngineError::TooManyConnections).write_reply(&mut body);
    let mut answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {}\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
        reply.content_type,
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(&body);
    answer
}

/// Refused connections closing gracefully at once, per worker: each holds a file descriptor
/// for up to `linger::LINGER_TIME` beyond `max_connections`, so past this many a refused
/// connection is closed at once instead.
const MAX_LINGERING_REFUSALS: usize = 256;

/// Sends the refusal without waiting (a full socket buffer just means the client gets a
/// closed connection instead), then closes, lingering so that a client still sending its
/// request reads the refusal rather than a reset.
fn refuse(stream: TcpStream, answer: &[u8], lingering: &Arc<AtomicUsize>) {
    if !answer.is_empty() {
        let _ = stream.try_write(answer);
    }
    crate::telemetry::metrics::with_shard(|shard| shard.connections_rejected.add(1));
    if crate::telemetry::log_this_refusal() {
        tracing::warn!(peer = ?stream.peer_addr().ok(), "connection refused at max_connections (1% of refusals are logged)");
    }
    if lingering.fetch_add(1, Ordering::Relaxed) >= MAX_LINGERING_REFUSALS {
        lingering.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    let lingering = Arc::clone(lingering);
    tokio::spawn(async move {
        let mut stream = stream;
        linger::lingering_close(&mut stream, &mut Vec::new()).await;
        lingering.fetch_sub(1, Ordering::Relaxed);
    });
}

fn is_resource_exhaustion(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

//! The native HTTP/1.1 engine: a connection loop of our own over httparse.
//!
//! Why not hyper here: on this machine's benchmark (docs/BENCHMARKS.md) hyper's per-request
//! work (header maps, response builders, per-request allocations) costs more instructions than
//! the whole budget the performance targets allow. This engine reads into one buffer, parses
//! every complete request in it (pipelining), answers them all into one output buffer and
//! writes that with a single system call. hyper remains available (`engine = "hyper"`) and the
//! same conformance tests run against both.
//!
//! Safety rules it keeps (see `parse.rs` for framing): bounded head and body sizes, strict
//! `Content-Length`/`Transfer-Encoding` handling against smuggling, a deadline on every wait
//! (reading a request, writing a response, idling between requests), and closing the connection
//! after any framing error rather than guessing where the next request starts.

mod chunked;
mod exchange;
pub mod fuzzing;
mod parse;
mod pool;
mod response;

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::AbortHandle;

use crate::net::Stream;
use tokio::time::{Instant, Sleep};

use deadline::{Wait, with_deadline};
use tokio_util::task::TaskTracker;

use self::exchange::Buffers;
use super::limits::ConnectionPermit;
use super::{ConnectionSettings, linger};
use crate::http::{App, EngineError};
use crate::telemetry::metrics;

/// The connections of one worker, so a shutdown can close the idle ones at once and wait for
/// the busy ones.
#[derive(Default)]
pub(super) struct Connections {
    tracker: TaskTracker,
    registry: Arc<Mutex<HashMap<u64, Registered>>>,
    next_id: u64,
}

struct Registered {
    abort: AbortHandle,
    idle: Arc<AtomicBool>,
}

impl Connections {
    /// Spawns the task that serves `stream` on the current runtime (after the TLS handshake,
    /// when the listener has TLS).
    pub fn serve(
        &mut self,
        stream: TcpStream,
        app: &Arc<App>,
        settings: &Arc<ConnectionSettings>,
        permit: ConnectionPermit,
    ) {
        let id = self.next_id;
        self.next_id += 1;
        let idle = Arc::new(AtomicBool::new(true));
        let app = Arc::clone(app);
        let settings = Arc::clone(settings);
        let connection_idle = Arc::clone(&idle);
        let deregister = Deregister {
            registry: Arc::clone(&self.registry),
            id,
        };
        let registry = Arc::clone(&self.registry);
        // Holding the lock across spawn makes sure the entry exists before the task can remove it.
        let mut entries = registry.lock().unwrap_or_else(PoisonError::into_inner);
        metrics::with_shard(|shard| shard.connections_accepted.add(1));
        let tracker = self.tracker.clone();
        let entries_for_upgrade = Arc::clone(&self.registry);
        let task = self.tracker.spawn(async move {
            let stream = match &settings.tls {
                None => Stream::Plain(stream),
                // Boxed: the handshake's state is large, and the task's future is sized for
                // its largest await for the connection's whole life.
                Some(tls) => {
                    match Box::pin(super::handshake(tls, stream, settings.header_read_timeout))
                        .await
                    {
                        Some(stream) => stream,
                        None => {
                            drop((deregister, permit));
                            return;
                        }
                    }
                }
            };
            let connection = Connection::new(stream, app, settings, connection_idle);
            match connection.run().await {
                Ok(None) => {}
                Ok(Some(upgraded)) => {
                    // A WebSocket gets a task of its own, so the HTTP task's state (sized for
                    // its largest await) is freed rather than kept under the WebSocket's for
                    // the connection's whole life: about 1.4 KB per idle player. The
                    // connection's permit and registry entry move with it.
                    let task = tracker.spawn(async move {
                        let _deregister = deregister;
                        let _permit = permit;
                        upgraded.serve().await;
                    });
                    if let Some(entry) = entries_for_upgrade
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get_mut(&id)
                    {
                        entry.abort = task.abort_handle();
                    }
                }
                Err(error) => {
                    drop((deregister, permit));
                    tracing::debug!(%error, "connection ended with an error");
                }
            }
        });
        entries.insert(
            id,
            Registered {
                abort: task.abort_handle(),
                idle,
            },
        );
    }

    /// Closes idle connections now, lets busy ones finish their request (they close after it
    /// because readiness is off), and closes whatever is left after `timeout`.
    pub async fn drain(self, timeout: Duration) -> bool {
        self.tracker.close();
        {
            let entries = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
            for entry in entries.values() {
                if entry.idle.load(Ordering::Relaxed) {
                    entry.abort.abort();
                }
            }
        }
        if tokio::time::timeout(timeout, self.tracker.wait())
            .await
            .is_ok()
        {
            return true;
        }
        let entries = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        for entry in entries.values() {
            entry.abort.abort();
        }
        false
    }
}

/// Removes a connection from the registry when its task ends, however it ends.
struct Deregister {
    registry: Arc<Mutex<HashMap<u64, Registered>>>,
    id: u64,
}

impl Drop for Deregister {
    fn drop(&mut self) {
        metrics::with_shard(|shard| shard.connections_closed.add(1));
        self.registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

struct Connection {
    stream: Stream,
    app: Arc<App>,
    settings: Arc<ConnectionSettings>,
    /// True while waiting for a new request with nothing buffered: safe to close at shutdown.
    idle: Arc<AtomicBool>,
    peer: IpAddr,
    /// When the first byte of the request being received arrived.
    request_started: Instant,
    continue_sent: bool,
}

/// A connection that switched to WebSocket, for the task that serves it from now on.
struct Upgraded {
    realtime: Arc<crate::realtime::Realtime>,
    stream: Stream,
    leftover: Vec<u8>,
    session: crate::realtime::Session,
}

impl Upgraded {
    async fn serve(self) {
        self.realtime
            .serve(self.stream, self.leftover, self.session)
            .await;
    }
}

/// How serving the bytes of a busy connection ended.
enum Served {
    /// Everything received was answered and written: the connection is idle again.
    Idle,
    /// The connection is to be closed (an error, `Connection: close`, a drain, a timeout).
    Close,
    /// The connection switched to WebSocket, for this session.
    Upgrade(Box<crate::realtime::Session>),
}

/// Counts a request in `guess_game_http_requests_in_flight` while its answer waits (on the
/// store or injected latency); a guard, so a connection aborted mid-wait still uncounts it.
struct Waiting;

impl Waiting {
    fn start() -> Self {
        metrics::with_shard(|shard| shard.in_flight.add(1));
        Waiting
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        metrics::with_shard(|shard| shard.in_flight.sub(1));
    }
}

impl Connection {
    fn new(
        stream: Stream,
        app: Arc<App>,
        settings: Arc<ConnectionSettings>,
        idle: Arc<AtomicBool>,
    ) -> Self {
        // An unknown peer (the socket already gone) is counted as the unspecified address.
        let peer = stream
            .peer_addr()
            .map_or(IpAddr::from([0, 0, 0, 0]), |address| address.ip());
        Self {
            stream,
            app,
            settings,
            idle,
            peer,
            request_started: Instant::now(),
            continue_sent: false,
        }
    }

    /// Serves HTTP until the connection closes (`None`) or switches to WebSocket.
    async fn run(mut self) -> io::Result<Option<Box<Upgraded>>> {
        // One timer per connection, moved only when a deadline comes earlier than it; when it
        // fires early it is re-armed. Re-arming a timer on every request would cost more than
        // the rest of the bookkeeping together.
        let timer = tokio::time::sleep(self.settings.keep_alive_timeout);
        tokio::pin!(timer);
        let mut now = Instant::now();
        loop {
            // Idle: no buffer is held while waiting, so an idle connection costs only its task
            // and socket (see `pool.rs`).
            let Some(mut buffers) = self.wait_for_request(timer.as_mut(), now).await? else {
                return Ok(None);
            };
            now = Instant::now();
            self.request_started = now;
            self.continue_sent = false;
            match self.serve(&mut buffers, timer.as_mut(), now).await? {
                Served::Idle => {}
                Served::Upgrade(session) => {
                    // Frames the client sent right behind its upgrade request.
                    let leftover = buffers.input.to_vec();
                    drop(buffers);
                    return Ok(Some(Box::new(Upgraded {
                        realtime: Arc::clone(self.app.realtime()),
                        stream: self.stream,
                        leftover,
                        session: *session,
                    })));
                }
                Served::Close => {
                    // Boxed, like the store call: it holds a timer of its own and runs once.
                    Box::pin(linger::lingering_close(
                        &mut self.stream,
                        &mut buffers.input,
                    ))
                    .await;
                    return Ok(None);
                }
            }
            drop(buffers);
            if !self.app.is_ready() {
                // Draining: an idle connection closes instead of waiting for another request.
                return Ok(None);
            }
            // The keep-alive wait is timed from the last request's arrival (`now`), microseconds
            // before its answer left: one clock read less per request.
        }
    }

    /// Waits, holding no buffer, until the client sends the first bytes of a request, then
    /// borrows buffers and reads them. `None` when the client closed or idled out.
    async fn wait_for_request(
        &mut self,
        mut timer: Pin<&mut Sleep>,
        now: Instant,
    ) -> io::Result<Option<pool::Lent>> {
        let deadline = now + self.settings.keep_alive_timeout;
        self.idle.store(true, Ordering::Relaxed);
        let read = loop {
            // `poll_read_ready` rather than `readable()`: it keeps the socket's one reader
            // waker instead of queueing a waiter under the driver's lock, which callgrind
            // counts per request (docs/BENCHMARKS.md, "Hardening").
            let ready = std::future::poll_fn(|context| self.stream.poll_read_ready(context));
            match with_deadline(timer.as_mut(), deadline, ready).await {
                Wait::TimedOut => break Ok(None),
                Wait::Done(Err(error)) => break Err(error),
                Wait::Done(Ok(())) => {}
            }
            let mut buffers = pool::borrow(self.peer);
            // One poll of a read, as `read_buf` would make: a short read clears the socket's
            // readiness, so the next wait goes straight to epoll without an extra `recvfrom`.
            let polled = std::future::poll_fn(|context| {
                Poll::Ready(tokio_util::io::poll_read_buf(
                    Pin::new(&mut self.stream),
                    context,
                    &mut buffers.input,
                ))
            })
            .await;
            match polled {
                Poll::Ready(Ok(0)) => break Ok(None),
                Poll::Ready(Ok(_)) => break Ok(Some(buffers)),
                Poll::Ready(Err(error)) => break Err(error),
                // The readiness was stale: give the buffers back and wait again.
                Poll::Pending => {}
            }
        };
        self.idle.store(false, Ordering::Relaxed);
        read
    }

    /// Serves the requests in `buffers`, reading more while a request is incomplete, until
    /// everything received is answered and written.
    async fn serve(
        &mut self,
        buffers: &mut Buffers,
        mut timer: Pin<&mut Sleep>,
        mut now: Instant,
    ) -> io::Result<Served> {
        loop {
            // Taken apart at once, so the large `pending` is not kept in the task's future
            // across the awaits below.
            let exchange::Progress {
                consumed,
                close,
                wants_continue,
                delay,
                pending,
                upgrade,
            } = buffers.serve(&self.app, now);
            if consumed > 0 {
                buffers.input.drain(..consumed);
                self.continue_sent = false;
                self.request_started = now;
            }
            if wants_continue && !self.continue_sent {
                buffers.output.extend_from_slice(response::CONTINUE);
                self.continue_sent = true;
            }
            if let Some(pending) = pending {
                let _waiting = Waiting::start();
                // Boxed: the store call's future is large and rare; the connection's task
                // stays small for the idle connections that make up most of them.
                Box::pin(buffers.finish(&self.app, pending, close)).await;
            }
            let mut switched = None;
            if let Some(upgrade) = upgrade {
                let _waiting = Waiting::start();
                switched = Box::pin(buffers.upgrade(&self.app, upgrade, close)).await;
            }
            if !delay.is_zero() {
                let _waiting = Waiting::start();
                let until = Instant::now() + delay;
                with_deadline(timer.as_mut(), until, std::future::pending::<()>()).await;
            }
            if !buffers.output.is_empty() {
                // A request is answered once its answer is in the output buffer: its place
                // under the in-flight bound is free before the write, so a client that does
                // not read holds no permit while the write waits (up to `write_timeout`).
                let answered = Instant::now();
                for completed in buffers.completed.drain(..) {
                    self.app.request_finished(completed, now, answered);
                }
                self.flush(&mut buffers.output, timer.as_mut(), answered)
                    .await?;
            }
            if let Some(session) = switched {
                return Ok(Served::Upgrade(session));
            }
            if close {
                return Ok(Served::Close);
            }
            if consumed > 0 && !buffers.input.is_empty() {
                // Serving stopped early (a deferred or delayed answer, or the output cap) with
                // requests still buffered: serve them before waiting for more bytes.
                now = Instant::now();
                continue;
            }
            if buffers.input.is_empty() {
                return Ok(Served::Idle);
            }
            // Part of a request is in: read the rest, within the request's read deadline.
            let deadline = self.request_started + self.settings.header_read_timeout;
            if buffers.input.capacity() - buffers.input.len() < pool::INITIAL_BUFFER / 4 {
                buffers.input.reserve(pool::INITIAL_BUFFER);
            }
            let read = with_deadline(
                timer.as_mut(),
                deadline,
                self.stream.read_buf(&mut buffers.input),
            )
            .await;
            now = Instant::now();
            match read {
                Wait::Done(Ok(0)) => return Ok(Served::Close),
                Wait::Done(Ok(_)) => {}
                Wait::Done(Err(error)) => return Err(error),
                Wait::TimedOut => {
                    // A request that stalls midway is answered 408, written under the same
                    // write deadline as any answer.
                    buffers.reject(EngineError::RequestTimeout, now);
                    self.flush(&mut buffers.output, timer.as_mut(), now).await?;
                    return Ok(Served::Close);
                }
            }
        }
    }

    /// Writes `output` out and empties it. One non-blocking write takes it all almost always;
    /// only when the client is slow to read does this wait, and then at most `write_timeout`.
    async fn flush(
        &mut self,
        output: &mut Vec<u8>,
        mut timer: Pin<&mut Sleep>,
        now: Instant,
    ) -> io::Result<()> {
        let written = match self.stream.try_write(output) {
            Ok(written) => written,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => 0,
            Err(error) => return Err(error),
        };
        if written < output.len() {
            let deadline = now + self.settings.write_timeout;
            let rest = &output[written..];
            let Wait::Done(result) =
                with_deadline(timer.as_mut(), deadline, self.stream.write_all(rest)).await
            else {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out"));
            };
            result?;
        }
        if self.stream.has_buffered_output() {
            // Over TLS: records the socket did not take yet.
            let deadline = now + self.settings.write_timeout;
            let Wait::Done(result) = with_deadline(timer, deadline, self.stream.flush()).await
            else {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out"));
            };
            result?;
        }
        output.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Engine;
    use crate::http::Readiness;

    /// The connection's task is most of what an idle connection costs once its buffers are
    /// pooled: keep its future small (rare, large states such as a store call are boxed).
    #[tokio::test]
    async fn the_connection_task_stays_small() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let app = Arc::new(App::new(
            Readiness::new(),
            4096,
            crate::telemetry::observe::Observability::default(),
        ));
        let settings = Arc::new(ConnectionSettings {
            engine: Engine::Native,
            header_read_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(10),
            tcp_nodelay: true,
            tls: None,
        });
        let connection = Connection::new(
            Stream::Plain(stream),
            app,
            settings,
            Arc::new(AtomicBool::new(true)),
        );
        let task = connection.run();
        let size = std::mem::size_of_val(&task);
        assert!(size <= 1100, "the connection's future is {size} bytes");
        drop(task);
        drop(client);
    }
}

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
mod parse;
mod response;

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::AbortHandle;
use tokio::time::{Instant, Sleep};

use crate::deadline::{Wait, with_deadline};
use tokio_util::task::TaskTracker;

use self::exchange::Buffers;
use super::ConnectionSettings;
use super::limits::ConnectionPermit;
use crate::http::{ApiError, App};
use crate::telemetry::metrics;

/// Read buffer a connection starts with; enough for dozens of pipelined /play requests.
const INITIAL_BUFFER: usize = 4 * 1024;

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
    /// Spawns the task that serves `stream` on the current runtime.
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
        let connection = Connection::new(
            stream,
            Arc::clone(app),
            Arc::clone(settings),
            Arc::clone(&idle),
        );
        let deregister = Deregister {
            registry: Arc::clone(&self.registry),
            id,
        };
        let registry = Arc::clone(&self.registry);
        // Holding the lock across spawn makes sure the entry exists before the task can remove it.
        let mut entries = registry.lock().unwrap_or_else(PoisonError::into_inner);
        metrics::with_shard(|shard| shard.connections_accepted.add(1));
        let task = self.tracker.spawn(async move {
            let _deregister = deregister;
            let _permit = permit;
            if let Err(error) = connection.run().await {
                tracing::debug!(%error, "connection ended with an error");
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
    stream: TcpStream,
    app: Arc<App>,
    settings: Arc<ConnectionSettings>,
    /// True while waiting for a new request with nothing buffered: safe to close at shutdown.
    idle: Arc<AtomicBool>,
    buffers: Buffers,
    /// When the first byte of the request being received arrived.
    request_started: Instant,
    continue_sent: bool,
}

/// What a read brought.
enum Read {
    /// The first bytes of a new request.
    NewRequest,
    /// More of a request already started.
    More,
    /// The client closed the connection, or it idled out.
    Closed,
}

impl Connection {
    fn new(
        stream: TcpStream,
        app: Arc<App>,
        settings: Arc<ConnectionSettings>,
        idle: Arc<AtomicBool>,
    ) -> Self {
        // An unknown peer (the socket already gone) is counted as the unspecified address.
        let peer = stream
            .peer_addr()
            .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |address| address.ip());
        Self {
            stream,
            app,
            settings,
            idle,
            buffers: Buffers::with_capacity(INITIAL_BUFFER, peer),
            request_started: Instant::now(),
            continue_sent: false,
        }
    }

    async fn run(mut self) -> io::Result<()> {
        // One timer per connection, moved only when a deadline comes earlier than it; when it
        // fires early it is re-armed. Re-arming a timer on every request would cost more than
        // the rest of the bookkeeping together.
        let timer = tokio::time::sleep(self.settings.keep_alive_timeout);
        tokio::pin!(timer);
        // One clock read per batch of requests serves every deadline and the Date header.
        let mut now = Instant::now();
        loop {
            let mut progress = self.buffers.serve(&self.app, now);
            if progress.consumed > 0 {
                self.buffers.input.drain(..progress.consumed);
                self.continue_sent = false;
                self.request_started = now;
            }
            if progress.wants_continue && !self.continue_sent {
                self.buffers.output.extend_from_slice(response::CONTINUE);
                self.continue_sent = true;
            }
            if let Some(pending) = progress.pending.take() {
                self.buffers.finish(&self.app, pending).await;
            }
            if !progress.delay.is_zero() {
                tokio::time::sleep(progress.delay).await;
            }
            if !self.buffers.output.is_empty() {
                let answered = self.buffers.completed.len() as u64;
                metrics::with_shard(|shard| shard.in_flight.add(answered));
                let flushed = self.flush(timer.as_mut(), now).await;
                let finished = Instant::now();
                metrics::with_shard(|shard| shard.in_flight.sub(answered));
                for completed in self.buffers.completed.drain(..) {
                    self.app.request_finished(completed, now, finished);
                }
                flushed?;
            }
            if progress.close {
                return self.stream.shutdown().await;
            }
            if progress.consumed > 0 && !self.buffers.input.is_empty() {
                // Serving stopped early (a deferred or delayed answer, or the output cap) with
                // requests still buffered: serve them before waiting for more bytes.
                now = Instant::now();
                continue;
            }
            if self.buffers.input.is_empty() && !self.app.is_ready() {
                // Draining: an idle connection closes instead of waiting for another request.
                return Ok(());
            }
            let read = self.read_more(timer.as_mut(), now).await?;
            now = Instant::now();
            match read {
                Read::Closed => return Ok(()),
                Read::NewRequest => self.request_started = now,
                Read::More => {}
            }
        }
    }

    /// Writes `output` out. One non-blocking write takes it all almost always; only when the
    /// client is slow to read does this wait, and then at most `write_timeout`.
    async fn flush(&mut self, timer: Pin<&mut Sleep>, now: Instant) -> io::Result<()> {
        let written = match self.stream.try_write(&self.buffers.output) {
            Ok(written) => written,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => 0,
            Err(error) => return Err(error),
        };
        if written < self.buffers.output.len() {
            let deadline = now + self.settings.write_timeout;
            let rest = &self.buffers.output[written..];
            let Wait::Done(result) =
                with_deadline(timer, deadline, self.stream.write_all(rest)).await
            else {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out"));
            };
            result?;
        }
        self.buffers.output.clear();
        Ok(())
    }

    /// Reads more bytes into `input`, waiting at most until the relevant deadline: the
    /// keep-alive timeout between requests, the request's read timeout within one. A request
    /// that stalls midway is answered 408.
    async fn read_more(&mut self, timer: Pin<&mut Sleep>, now: Instant) -> io::Result<Read> {
        let waiting_for_new_request = self.buffers.input.is_empty();
        let deadline = if waiting_for_new_request {
            now + self.settings.keep_alive_timeout
        } else {
            self.request_started + self.settings.header_read_timeout
        };
        if self.buffers.input.capacity() - self.buffers.input.len() < INITIAL_BUFFER / 4 {
            self.buffers.input.reserve(INITIAL_BUFFER);
        }
        self.idle.store(waiting_for_new_request, Ordering::Relaxed);
        let read = with_deadline(
            timer,
            deadline,
            self.stream.read_buf(&mut self.buffers.input),
        )
        .await;
        self.idle.store(false, Ordering::Relaxed);
        match read {
            Wait::Done(Ok(0)) => Ok(Read::Closed),
            Wait::Done(Ok(_)) if waiting_for_new_request => Ok(Read::NewRequest),
            Wait::Done(Ok(_)) => Ok(Read::More),
            Wait::Done(Err(error)) => Err(error),
            Wait::TimedOut if waiting_for_new_request => Ok(Read::Closed),
            Wait::TimedOut => {
                self.buffers
                    .reject(&ApiError::RequestTimeout, Instant::now());
                let _ = self.stream.write_all(&self.buffers.output).await;
                Ok(Read::Closed)
            }
        }
    }
}

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
mod parse;
mod response;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::AbortHandle;
use tokio::time::{Instant, Sleep};
use tokio_util::task::TaskTracker;

use self::parse::{Framing, HeadError};
use super::ConnectionSettings;
use crate::http::{ApiError, App, Request};

/// Read buffer a connection starts with; enough for dozens of pipelined /play requests.
const INITIAL_BUFFER: usize = 4 * 1024;
/// Answers queued before they are written even if more requests are buffered, so a client
/// that pipelines without reading cannot make the output grow without bound.
const OUTPUT_HIGH_WATER: usize = 64 * 1024;

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
    pub fn serve(&mut self, stream: TcpStream, app: &Arc<App>, settings: &Arc<ConnectionSettings>) {
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
        let task = self.tracker.spawn(async move {
            let _deregister = deregister;
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
    input: Vec<u8>,
    output: Vec<u8>,
    /// Scratch for a response body before its head is written.
    body: Vec<u8>,
    /// Scratch for a decoded chunked request body.
    decoded: Vec<u8>,
    /// When the first byte of the request being received arrived.
    request_started: Instant,
    continue_sent: bool,
}

/// What serving the buffered requests left to do.
struct Progress {
    consumed: usize,
    close: bool,
    /// A request's head is in, its body is not, and the client asked for `100 Continue`.
    wants_continue: bool,
}

enum Wait<T> {
    Done(T),
    TimedOut,
}

impl Connection {
    fn new(
        stream: TcpStream,
        app: Arc<App>,
        settings: Arc<ConnectionSettings>,
        idle: Arc<AtomicBool>,
    ) -> Self {
        Self {
            stream,
            app,
            settings,
            idle,
            input: Vec::with_capacity(INITIAL_BUFFER),
            output: Vec::with_capacity(INITIAL_BUFFER),
            body: Vec::with_capacity(256),
            decoded: Vec::new(),
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
        loop {
            let progress = self.serve_buffered();
            if progress.consumed > 0 {
                self.input.drain(..progress.consumed);
                self.continue_sent = false;
                self.request_started = Instant::now();
            }
            if progress.wants_continue && !self.continue_sent {
                self.output.extend_from_slice(response::CONTINUE);
                self.continue_sent = true;
            }
            if !self.output.is_empty() {
                let deadline = Instant::now() + self.settings.write_timeout;
                let Wait::Done(written) = with_deadline(
                    timer.as_mut(),
                    deadline,
                    self.stream.write_all(&self.output),
                )
                .await
                else {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out"));
                };
                written?;
                self.output.clear();
            }
            if progress.close {
                return self.stream.shutdown().await;
            }
            if self.input.is_empty() && !self.app.is_ready() {
                // Draining: an idle connection closes instead of waiting for another request.
                return Ok(());
            }
            if !self.read_more(timer.as_mut()).await? {
                return Ok(());
            }
        }
    }

    /// Reads more bytes into `input`. Returns false when the connection should end quietly
    /// (the client closed it, or it idled out); answers 408 when a request stalled midway.
    async fn read_more(&mut self, timer: Pin<&mut Sleep>) -> io::Result<bool> {
        let waiting_for_new_request = self.input.is_empty();
        let deadline = if waiting_for_new_request {
            Instant::now() + self.settings.keep_alive_timeout
        } else {
            self.request_started + self.settings.header_read_timeout
        };
        if self.input.capacity() - self.input.len() < INITIAL_BUFFER / 4 {
            self.input.reserve(INITIAL_BUFFER);
        }
        self.idle.store(waiting_for_new_request, Ordering::Relaxed);
        let read = with_deadline(timer, deadline, self.stream.read_buf(&mut self.input)).await;
        self.idle.store(false, Ordering::Relaxed);
        match read {
            Wait::Done(Ok(0)) => Ok(false),
            Wait::Done(Ok(_)) => {
                if waiting_for_new_request {
                    self.request_started = Instant::now();
                }
                Ok(true)
            }
            Wait::Done(Err(error)) => Err(error),
            Wait::TimedOut if waiting_for_new_request => Ok(false),
            Wait::TimedOut => {
                self.reject(&ApiError::RequestTimeout);
                let _ = self.stream.write_all(&self.output).await;
                Ok(false)
            }
        }
    }

    /// Answers every complete request in `input`, appending the answers to `output`.
    fn serve_buffered(&mut self) -> Progress {
        let mut progress = Progress {
            consumed: 0,
            close: false,
            wants_continue: false,
        };
        let max_body = self.app.max_body_bytes();
        while progress.consumed < self.input.len() && self.output.len() < OUTPUT_HIGH_WATER {
            let rest = &self.input[progress.consumed..];
            let head = match parse::parse_head(rest) {
                Ok(Some(head)) => head,
                Ok(None) => break,
                Err(error) => {
                    progress.close = true;
                    let error = match error {
                        HeadError::Malformed(reason) => ApiError::MalformedRequest { reason },
                        HeadError::TooLarge => ApiError::HeadersTooLarge,
                        HeadError::UnsupportedTransferEncoding => {
                            ApiError::UnsupportedTransferEncoding
                        }
                    };
                    reject_into(&mut self.output, &mut self.body, &error);
                    break;
                }
            };
            let after_head = &rest[head.length..];
            let (body, body_length): (&[u8], usize) = match head.framing {
                Framing::Length(length) if length > max_body as u64 => {
                    progress.close = true;
                    reject_into(
                        &mut self.output,
                        &mut self.body,
                        &ApiError::PayloadTooLarge { limit: max_body },
                    );
                    break;
                }
                // Fits in usize: bounded by max_body just above.
                Framing::Length(length) if after_head.len() < length as usize => {
                    progress.wants_continue = head.expect_continue;
                    break;
                }
                Framing::Length(length) => (&after_head[..length as usize], length as usize),
                Framing::Chunked => {
                    match chunked::decode(after_head, max_body, &mut self.decoded) {
                        Ok(Some(raw_length)) => (&self.decoded[..], raw_length),
                        Ok(None) => {
                            progress.wants_continue = head.expect_continue;
                            break;
                        }
                        Err(error) => {
                            progress.close = true;
                            let error = match error {
                                chunked::ChunkedError::TooLarge => {
                                    ApiError::PayloadTooLarge { limit: max_body }
                                }
                                chunked::ChunkedError::Malformed(reason) => {
                                    ApiError::MalformedRequest { reason }
                                }
                            };
                            reject_into(&mut self.output, &mut self.body, &error);
                            break;
                        }
                    }
                }
            };
            let close = !head.keep_alive || !self.app.is_ready();
            let request = Request {
                method: &head.method,
                path: head.path,
                content_type: head.content_type,
                accept: head.accept,
                body,
            };
            let reply = self.app.handle(&request, &mut self.body);
            tracing::debug!(method = %head.method, path = head.path, status = reply.status.as_u16(), "request");
            response::write_response(
                &mut self.output,
                &reply,
                &self.body,
                head.method == Method::HEAD,
                close,
            );
            progress.consumed += head.length + body_length;
            if close {
                progress.close = true;
                break;
            }
        }
        progress
    }

    fn reject(&mut self, error: &ApiError<'_>) {
        reject_into(&mut self.output, &mut self.body, error);
    }
}

/// Appends an error answer that closes the connection.
fn reject_into(output: &mut Vec<u8>, body: &mut Vec<u8>, error: &ApiError<'_>) {
    tracing::debug!(code = error.code(), "request rejected by the engine");
    let reply = error.write_reply(body);
    response::write_response(output, &reply, body, false, true);
}

/// Runs `operation` until it finishes or `deadline` passes, using the connection's one timer.
async fn with_deadline<F: Future>(
    mut timer: Pin<&mut Sleep>,
    deadline: Instant,
    operation: F,
) -> Wait<F::Output> {
    if deadline < timer.deadline() {
        timer.as_mut().reset(deadline);
    }
    tokio::pin!(operation);
    loop {
        tokio::select! {
            biased;
            output = &mut operation => return Wait::Done(output),
            () = &mut timer => {
                if Instant::now() >= deadline {
                    return Wait::TimedOut;
                }
                timer.as_mut().reset(deadline);
            }
        }
    }
}

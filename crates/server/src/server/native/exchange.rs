//! Turning the bytes of buffered requests into the bytes of their answers: parse, frame,
//! handle, write. No I/O here, so it is tested (and its allocations counted) without sockets.

use http::Method;
use tokio::time::Instant;

use super::parse::{self, Framing, HeadError};
use super::{chunked, response};
use crate::http::{ApiError, App, Deferred, EngineError, Handled, PendingUpgrade, Request};
use crate::telemetry::completed::Completed;
use crate::telemetry::metrics;

/// Answers queued before they are written even if more requests are buffered, so a client
/// that pipelines without reading cannot make the output grow without bound.
const OUTPUT_HIGH_WATER: usize = 64 * 1024;

/// A connection's buffers, reused for every request it carries.
#[derive(Debug)]
pub struct Buffers {
    pub input: Vec<u8>,
    pub output: Vec<u8>,
    /// Scratch for a response body before its head is written.
    body: Vec<u8>,
    /// A chunked request body decoded so far, and where its decoder stands: kept between
    /// reads so a body sent in pieces is decoded once.
    decoded: Vec<u8>,
    chunked: chunked::Decoder,
    /// Requests answered into `output` and not yet reported finished.
    pub completed: Vec<Completed>,
    /// The client's address, for rate limits.
    pub peer: std::net::IpAddr,
}

/// What serving the buffered requests left to do.
pub struct Progress {
    pub consumed: usize,
    pub close: bool,
    /// A request's head is in, its body is not, and the client asked for `100 Continue`.
    pub wants_continue: bool,
    /// Injected latency to wait before writing the output (fault injection).
    pub delay: std::time::Duration,
    /// A request whose answer waits on the store: finish it with [`Buffers::finish`] before
    /// writing the output. It is the last request served (`close` applies to it). Boxed: the
    /// connection's task holds `Progress` across awaits, and a deferred request is rare and
    /// large, while the task's size is paid by every idle connection.
    pub pending: Option<Box<Deferred>>,
    /// A `GET /ws`, the last request served: decide it with [`Buffers::upgrade`], which may
    /// switch the connection to WebSocket.
    pub upgrade: Option<Box<PendingUpgrade>>,
}

impl Buffers {
    pub fn with_capacity(capacity: usize, peer: std::net::IpAddr) -> Self {
        Self {
            peer,
            input: Vec::with_capacity(capacity),
            output: Vec::with_capacity(capacity),
            body: Vec::with_capacity(256),
            decoded: Vec::new(),
            chunked: chunked::Decoder::default(),
            completed: Vec::with_capacity(16),
        }
    }

    /// Empties every buffer for the next connection, shrinking any that grew past `keep` bytes
    /// (a large body or a long pipeline) so a pooled set stays small.
    pub fn reset(&mut self, keep: usize) {
        for buffer in [
            &mut self.input,
            &mut self.output,
            &mut self.body,
            &mut self.decoded,
        ] {
            buffer.clear();
            if buffer.capacity() > keep {
                buffer.shrink_to(keep);
            }
        }
        self.chunked = chunked::Decoder::default();
        self.completed.clear();
        if self.completed.capacity() > 64 {
            self.completed.shrink_to(16);
        }
    }

    /// Answers every complete request in `input`, appending the answers to `output`. Leaves
    /// `input` as it is; the caller drops the `consumed` bytes.
    pub fn serve(&mut self, app: &App, now: Instant) -> Progress {
        let date = response::current_date(now);
        let mut progress = Progress {
            consumed: 0,
            close: false,
            wants_continue: false,
            delay: std::time::Duration::ZERO,
            pending: None,
            upgrade: None,
        };
        let max_body = app.max_body_bytes();
        while progress.consumed < self.input.len() && self.output.len() < OUTPUT_HIGH_WATER {
            let rest = &self.input[progress.consumed..];
            let head = match parse::parse_head(rest) {
                Ok(Some(head)) => head,
                Ok(None) => break,
                Err(error) => {
                    progress.close = true;
                    let error = match error {
                        HeadError::Malformed(reason) => EngineError::MalformedRequest { reason },
                        HeadError::TooLarge => EngineError::HeadersTooLarge,
                        HeadError::UnsupportedTransferEncoding => {
                            EngineError::UnsupportedTransferEncoding
                        }
                    };
                    reject_into(&mut self.output, &mut self.body, error, &date);
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
                        EngineError::PayloadTooLarge { limit: max_body },
                        &date,
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
                    match self.chunked.decode(after_head, max_body, &mut self.decoded) {
                        Ok(Some(raw_length)) => (&self.decoded[..], raw_length),
                        Ok(None) => {
                            progress.wants_continue = head.expect_continue;
                            break;
                        }
                        Err(error) => {
                            progress.close = true;
                            let error = match error {
                                chunked::ChunkedError::TooLarge => {
                                    EngineError::PayloadTooLarge { limit: max_body }
                                }
                                chunked::ChunkedError::Malformed(reason) => {
                                    EngineError::MalformedRequest { reason }
                                }
                            };
                            reject_into(&mut self.output, &mut self.body, error, &date);
                            break;
                        }
                    }
                }
            };
            let close = !head.keep_alive || !app.is_ready();
            let request = Request {
                method: &head.method,
                path: head.path,
                query: head.query,
                headers: head.headers,
                peer: self.peer,
                body,
                arrived: now,
            };
            if head.path == "/ws" {
                // A WebSocket upgrade waits (its token may need a lookup) and may end HTTP on
                // this connection, so it is the last request served here.
                progress.upgrade = Some(Box::new(PendingUpgrade::new(
                    &request,
                    &rest[..head.length],
                )));
                progress.consumed += head.length + body_length;
                progress.close = close;
                start_next_body(&mut self.chunked, &mut self.decoded);
                break;
            }
            let (reply, permit) = match app.handle_admitted(&request, &mut self.body) {
                Handled::Ready(reply, permit) => (reply, permit),
                Handled::Deferred(deferred) => {
                    // Later requests wait behind this one, keeping answers in order.
                    progress.consumed += head.length + body_length;
                    progress.close = close;
                    progress.pending = Some(Box::new(deferred));
                    start_next_body(&mut self.chunked, &mut self.decoded);
                    break;
                }
            };
            tracing::debug!(method = %head.method, path = head.path, status = reply.status.as_u16(), "request");
            response::write_response(
                &mut self.output,
                &reply,
                &self.body,
                head.method == Method::HEAD,
                close,
                &date,
            );
            self.completed.push(App::completed(
                &head.method,
                &reply,
                body.len(),
                self.body.len(),
                permit,
            ));
            progress.consumed += head.length + body_length;
            start_next_body(&mut self.chunked, &mut self.decoded);
            // A request marked to close is the last one served, whatever follows it.
            progress.close = close;
            if !reply.delay.is_zero() {
                // The delayed answer is written after the wait; later requests wait behind it,
                // as they would behind a slow handler.
                progress.delay = reply.delay;
                break;
            }
            if close {
                break;
            }
        }
        progress
    }

    /// Answers a deferred request once the store has answered, appending it to `output`;
    /// `close` as [`Progress::close`] said when it was deferred.
    pub async fn finish(&mut self, app: &App, deferred: Box<Deferred>, close: bool) {
        let head_only = deferred.head_only();
        let (reply, completed) = app.finish(*deferred, &mut self.body).await;
        response::write_response(
            &mut self.output,
            &reply,
            &self.body,
            head_only,
            close,
            &response::current_date(Instant::now()),
        );
        self.completed.push(completed);
    }

    /// Decides a WebSocket upgrade: appends the `101 Switching Protocols` head and returns
    /// whom the connection is now for, or appends the refusal (a problem document).
    pub async fn upgrade(
        &mut self,
        app: &App,
        pending: Box<PendingUpgrade>,
        close: bool,
    ) -> Option<Box<crate::realtime::Session>> {
        let answer = app.upgrade(*pending, &mut self.body).await;
        self.completed.push(answer.completed);
        match answer.switch {
            Some((head, session)) => {
                self.output.extend_from_slice(&head);
                Some(Box::new(session))
            }
            None => {
                response::write_response(
                    &mut self.output,
                    &answer.reply,
                    &self.body,
                    false,
                    close,
                    &response::current_date(Instant::now()),
                );
                None
            }
        }
    }

    /// Appends an error answer that closes the connection.
    pub fn reject(&mut self, error: EngineError, now: Instant) {
        reject_into(
            &mut self.output,
            &mut self.body,
            error,
            &response::current_date(now),
        );
    }
}

/// Forgets the chunked body of the request just served, for the next request's.
fn start_next_body(decoder: &mut chunked::Decoder, decoded: &mut Vec<u8>) {
    if *decoder != chunked::Decoder::default() {
        *decoder = chunked::Decoder::default();
        decoded.clear();
    }
}

/// Appends an error answer that closes the connection.
fn reject_into(
    output: &mut Vec<u8>,
    body: &mut Vec<u8>,
    error: EngineError,
    date: &response::HttpDate,
) {
    let error = ApiError::from(error);
    tracing::debug!(code = error.code(), "request rejected by the engine");
    let reply = error.write_reply(body);
    // Counted with the routed requests, under route "unmatched" and method "other": the
    // request never reached the router.
    metrics::with_shard(|shard| {
        shard.count_request(
            metrics::route_index(None),
            3,
            reply.status.as_u16(),
            0,
            body.len(),
        )
    });
    response::write_response(output, &reply, body, false, true, date);
}

#[cfg(test)]
mod tests {
    //! The request path's heap allocations, counted by a global allocator that tallies per
    //! thread (so tests running in parallel do not disturb each other's counts).

    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    use super::*;
    use crate::http::Readiness;

    struct CountingAllocator;

    thread_local! {
        static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    }

    fn count_one() {
        // `try_with`: allocations during thread teardown must not panic.
        let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
    }

    // SAFETY: every method forwards to the system allocator unchanged; counting touches only a
    // const-initialized thread-local, which never allocates.
    unsafe impl GlobalAlloc for CountingAllocator {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            count_one();
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            count_one();
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            count_one();
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static GLOBAL: CountingAllocator = CountingAllocator;

    const CALLS: u64 = 10_000;

    /// Allocations per call of `call`, after a warm-up that lets buffers reach their size.
    fn allocations_per_call(mut call: impl FnMut()) -> f64 {
        for _ in 0..100 {
            call();
        }
        let before = ALLOCATIONS.with(Cell::get);
        for _ in 0..CALLS {
            call();
        }
        (ALLOCATIONS.with(Cell::get) - before) as f64 / CALLS as f64
    }

    fn app() -> App {
        App::new(
            Readiness::new(),
            4096,
            crate::telemetry::observe::Observability::default(),
        )
    }

    /// Calls the handler with a request built beforehand; returns allocations per call.
    fn handler_allocations(
        method: http::Method,
        path: &str,
        content_type: &[u8],
        body: &[u8],
    ) -> f64 {
        let app = app();
        let request = Request::new(&method, path, Some(content_type), body);
        let mut out = Vec::with_capacity(512);
        allocations_per_call(|| {
            drop(app.handle_admitted(&request, &mut out));
        })
    }

    #[test]
    fn the_counter_sees_allocations() {
        let per_call = allocations_per_call(|| {
            std::hint::black_box(vec![0u8; 16]);
        });
        assert_eq!(per_call, 1.0);
    }

    #[test]
    fn playing_a_round_allocates_at_most_once() {
        let json = handler_allocations(
            http::Method::POST,
            "/play",
            b"application/json",
            br#"{"choice":"paper"}"#,
        );
        let msgpack_body =
            rmp_serde::to_vec_named(&serde_json::json!({"choice": "paper"})).unwrap();
        let msgpack = handler_allocations(
            http::Method::POST,
            "/play",
            b"application/msgpack",
            &msgpack_body,
        );
        assert!(json <= 1.0, "{json} allocations per JSON round");
        assert!(
            msgpack <= 1.0,
            "{msgpack} allocations per MessagePack round"
        );
    }

    #[test]
    fn recording_a_named_players_round_allocates_at_most_once() {
        let app = app();
        let method = http::Method::POST;
        let mut request = Request::new(
            &method,
            "/play",
            Some(b"application/json"),
            br#"{"choice":"paper","player_id":"player-1"}"#,
        );
        request.headers.player_id = Some(b"player-1");
        let mut out = Vec::with_capacity(512);
        let per_call = allocations_per_call(|| {
            drop(app.handle_admitted(&request, &mut out));
        });
        assert!(per_call <= 1.0, "{per_call} allocations per named round");
    }

    #[test]
    fn rejections_allocate_nothing() {
        let cases: [(http::Method, &str, &[u8], &[u8]); 5] = [
            (
                http::Method::POST,
                "/play",
                b"application/json",
                br#"{"choice":"lizard"}"#,
            ),
            (
                http::Method::POST,
                "/play",
                b"text/plain",
                br#"{"choice":"rock"}"#,
            ),
            (http::Method::GET, "/play", b"application/json", b""),
            (http::Method::GET, "/nope", b"application/json", b""),
            (http::Method::GET, "/healthz", b"application/json", b""),
        ];
        for (method, path, content_type, body) in cases {
            let per_call = handler_allocations(method.clone(), path, content_type, body);
            assert_eq!(per_call, 0.0, "{method} {path} {body:?}");
        }
    }

    #[test]
    fn the_whole_engine_path_allocates_at_most_once_per_request() {
        let app = app();
        let request = b"POST /play HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 18\r\n\r\n{\"choice\":\"paper\"}";
        let mut buffers = Buffers::with_capacity(4096, std::net::Ipv4Addr::LOCALHOST.into());
        let now = Instant::now();
        let per_request = allocations_per_call(|| {
            buffers.input.clear();
            buffers.input.extend_from_slice(request);
            buffers.output.clear();
            buffers.completed.clear();
            let progress = buffers.serve(&app, now);
            assert_eq!(progress.consumed, request.len());
        });
        assert!(buffers.output.starts_with(b"HTTP/1.1 200 OK\r\n"));
        assert!(per_request <= 1.0, "{per_request} allocations per request");
    }
}

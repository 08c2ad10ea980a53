//! What a handler answers, apart from the body bytes: status, content type, extra headers.
//!
//! Extra headers are a small fixed array of static names and simple values, so building a reply
//! never allocates; the engine formats them straight into its output buffer.

use std::fmt;

use http::StatusCode;

use super::Route;
use crate::protection::concurrency::Permit;
use crate::telemetry::completed::Completed;
use crate::telemetry::metrics::{self, route_index};
use crate::telemetry::trace::{RequestId, TraceContext};

/// Most extra headers any reply carries: a rate-limit refusal's three (`Retry-After`,
/// `RateLimit-Policy`, `RateLimit`); every other reply has two at most (a web asset's `ETag`
/// and `Content-Encoding`). Besides them, `traceparent` and `x-request-id`, which every reply
/// of the application carries, and a fixed list (`static_headers`). Three, not four: a reply
/// is copied a few times on its way to the socket, and each slot is 48 bytes of every copy.
const MAX_EXTRA_HEADERS: usize = 3;

/// A header value that formats without allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderValue {
    Static(&'static str),
    Number(u64),
    /// IETF `RateLimit-Policy`: `"<policy>";q=<quota>;w=<window seconds>`.
    RateLimitPolicy {
        policy: &'static str,
        quota: u32,
        window: u64,
    },
    /// IETF `RateLimit`: `"<policy>";r=<remaining>;t=<seconds until reset>`.
    RateLimit {
        policy: &'static str,
        remaining: u32,
        reset: u64,
    },
    /// `Set-Cookie` of the web page's session, formatted from its seed as it is written
    /// (`http::session_cookie`), with no allocation. Sized to fit the slot the variants above
    /// already need (32 bytes): a larger one made every reply larger.
    SessionCookie(super::session_cookie::SessionCookie),
}

// The cookie variant must not make every reply's header slots larger.
const _: () = assert!(std::mem::size_of::<HeaderValue>() == 32);

impl fmt::Display for HeaderValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderValue::Static(text) => f.write_str(text),
            HeaderValue::Number(number) => write!(f, "{number}"),
            HeaderValue::RateLimitPolicy {
                policy,
                quota,
                window,
            } => write!(f, "\"{policy}\";q={quota};w={window}"),
            HeaderValue::RateLimit {
                policy,
                remaining,
                reset,
            } => write!(f, "\"{policy}\";r={remaining};t={reset}"),
            HeaderValue::SessionCookie(cookie) => fmt::Display::fmt(cookie, f),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: &'static str,
    headers: [(&'static str, HeaderValue); MAX_EXTRA_HEADERS],
    header_count: usize,
    /// A fixed list of headers sent after the extra ones: the web page's security and caching
    /// headers (`http::web`). A slice, so the API's replies stay as small as they were and
    /// carry an empty one.
    static_headers: &'static [(&'static str, HeaderValue)],
    /// The route that answered; None when none matched.
    pub route: Option<Route>,
    /// The request's trace; engines send it back as `traceparent`.
    pub trace: Option<TraceContext>,
    /// The request's id; engines send it back as `x-request-id`.
    pub request_id: Option<RequestId>,
    /// Injected latency: the engine waits this long (on this connection only) before sending.
    pub delay: std::time::Duration,
}

impl Reply {
    pub const fn new(status: StatusCode, content_type: &'static str) -> Self {
        Self {
            status,
            content_type,
            headers: [("", HeaderValue::Static("")); MAX_EXTRA_HEADERS],
            header_count: 0,
            static_headers: &[],
            route: None,
            trace: None,
            request_id: None,
            delay: std::time::Duration::ZERO,
        }
    }

    /// Adds a header. Panics in debug builds past [`MAX_EXTRA_HEADERS`], which only code in this
    /// crate can cause; release builds drop the extra header rather than fail the request.
    pub fn with_header(mut self, name: &'static str, value: HeaderValue) -> Self {
        debug_assert!(
            self.header_count < MAX_EXTRA_HEADERS,
            "too many extra headers"
        );
        if let Some(slot) = self.headers.get_mut(self.header_count) {
            *slot = (name, value);
            self.header_count += 1;
        }
        self
    }

    /// Adds a fixed list of headers, sent after the extra ones; replaces any list given before.
    pub const fn with_static_headers(
        mut self,
        headers: &'static [(&'static str, HeaderValue)],
    ) -> Self {
        self.static_headers = headers;
        self
    }

    /// The extra headers, in the order they were added (without the static ones).
    pub fn extra_headers(&self) -> &[(&'static str, HeaderValue)] {
        &self.headers[..self.header_count]
    }

    /// The fixed list from [`Self::with_static_headers`] (empty for the API's replies).
    pub fn static_headers(&self) -> &'static [(&'static str, HeaderValue)] {
        self.static_headers
    }

    /// The extra headers, in the order they were added, then the static ones.
    pub fn headers(&self) -> impl Iterator<Item = &(&'static str, HeaderValue)> {
        self.headers[..self.header_count]
            .iter()
            .chain(self.static_headers)
    }

    pub fn header(&self, name: &str) -> Option<HeaderValue> {
        self.headers()
            .find(|(candidate, _)| candidate.eq_ignore_ascii_case(name))
            .map(|&(_, value)| value)
    }
}

/// What every reply to a request carries and is counted under, whenever it is answered.
#[derive(Clone, Copy, Debug)]
pub(super) struct Stamp {
    pub(super) route: Option<Route>,
    pub(super) trace: TraceContext,
    pub(super) request_id: RequestId,
    pub(super) method_index: usize,
    /// Bytes of the request's body: at most `max_body_bytes` (1 MiB), so a `u32`, which keeps a
    /// waiting request (`Deferred`, which holds a stamp) a slot smaller.
    pub(super) request_bytes: u32,
}

impl Stamp {
    /// Stamps `reply` with the request's route, trace and id, and counts it.
    pub(super) fn seal(self, reply: Reply, response_bytes: usize) -> Reply {
        self.seal_with_cors(reply, response_bytes, &[])
    }

    /// [`Self::seal`], adding the CORS headers `cors` (`http::cors`: empty unless the request
    /// came from an allowed origin) unless the reply has a fixed list of its own (the web
    /// page's, same-origin only). Done here, on the reply already being stamped, so the API's
    /// answers pay one comparison for CORS and no copy.
    #[inline]
    pub(super) fn seal_with_cors(
        self,
        mut reply: Reply,
        response_bytes: usize,
        cors: &'static [(&'static str, HeaderValue)],
    ) -> Reply {
        if !cors.is_empty() && reply.static_headers.is_empty() {
            reply.static_headers = cors;
        }
        reply.route = self.route;
        reply.trace = Some(self.trace);
        reply.request_id = Some(self.request_id);
        metrics::with_shard(|shard| {
            shard.count_request(
                route_index(self.route),
                self.method_index,
                reply.status.as_u16(),
                self.request_bytes as usize,
                response_bytes,
            );
        });
        reply
    }

    /// The record of the request once `reply` (with a body of `response_bytes`) is answered,
    /// holding its place under the in-flight bound until it is reported.
    pub(super) fn completed(
        self,
        reply: &Reply,
        response_bytes: usize,
        permit: Option<Permit>,
    ) -> Completed {
        Completed {
            route: self.route.map_or("unmatched", Route::template),
            route_index: route_index(self.route),
            method: ["GET", "HEAD", "POST", "other"][self.method_index],
            method_index: self.method_index,
            status: reply.status.as_u16(),
            request_bytes: self.request_bytes,
            response_bytes: response_bytes as u32,
            trace: self.trace,
            request_id: self.request_id,
            permit,
        }
    }
}

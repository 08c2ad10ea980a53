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

/// Most extra headers any reply carries (`Allow`, `Retry-After`, the two rate-limit headers),
/// besides
/// `traceparent` and `x-request-id`, which every reply of the application carries.
const MAX_EXTRA_HEADERS: usize = 4;

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
}

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
    pub(super) request_bytes: usize,
}

impl Stamp {
    /// Stamps `reply` with the request's route, trace and id, and counts it.
    pub(super) fn seal(self, mut reply: Reply, response_bytes: usize) -> Reply {
        reply.route = self.route;
        reply.trace = Some(self.trace);
        reply.request_id = Some(self.request_id);
        metrics::with_shard(|shard| {
            shard.count_request(
                route_index(self.route),
                self.method_index,
                reply.status.as_u16(),
                self.request_bytes,
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
            request_bytes: self.request_bytes as u32,
            response_bytes: response_bytes as u32,
            trace: self.trace,
            request_id: self.request_id,
            permit,
        }
    }
}

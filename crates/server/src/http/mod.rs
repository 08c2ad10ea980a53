//! The HTTP surface of the game: routes, handlers, wire formats and the error shape.
//!
//! Everything here is independent of the connection engine that carries the bytes. An engine
//! (see [`crate::server`]) parses a request into a borrowed [`Request`], calls [`App::handle`],
//! and writes the [`Reply`] and the body bytes the handler left in a buffer the engine owns and
//! reuses. That keeps the request path free of heap allocations and lets every engine share
//! one definition of routing, negotiation and errors.

mod accounts;
mod admission;
mod app;
mod deferred;
pub mod docs;
mod error;
mod fairness;
mod health;
mod leaderboard;
mod play;
mod players;
pub mod problem;
mod query;
mod realtime;
mod reply;
mod router;
mod web;
pub mod wire;

pub use crate::api::Route;
pub use app::App;
pub use deferred::{Deferred, Handled};
pub use health::Readiness;
pub use players::is_valid_player_id;
pub use problem::{AdminError, ApiError, BodyError, EngineError, HttpError, StoreRefusal};
pub use realtime::{ASYNCAPI, PendingUpgrade, UpgradeAnswer};
pub use reply::{HeaderValue, Reply};

/// The request header fields the handlers read, borrowed from the engine's buffers. Engines
/// offer every field to [`Self::record`], so this is the one list of them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Headers<'a> {
    pub content_type: Option<&'a [u8]>,
    pub accept: Option<&'a [u8]>,
    /// W3C `traceparent`, continued when valid.
    pub traceparent: Option<&'a [u8]>,
    /// `x-request-id`, kept when sane.
    pub request_id: Option<&'a [u8]>,
    /// `x-player-id`: the player a play counts for, and the rate-limit key.
    pub player_id: Option<&'a [u8]>,
    /// `x-forwarded-for`, believed only from a trusted proxy.
    pub forwarded_for: Option<&'a [u8]>,
    /// `idempotency-key`, on `POST /play`.
    pub idempotency_key: Option<&'a [u8]>,
    /// `authorization`: `Bearer <access token>`.
    pub authorization: Option<&'a [u8]>,
    /// `accept-encoding`: which precompressed variant of a web asset to send.
    pub accept_encoding: Option<&'a [u8]>,
    /// `if-none-match`: a web asset's ETag the client already holds.
    pub if_none_match: Option<&'a [u8]>,
}

impl<'a> Headers<'a> {
    /// Keeps `value` when `name` (any case) is a field the handlers read; a repeated field's
    /// last value wins. Returns whether it was one.
    pub fn record(&mut self, name: &[u8], value: &'a [u8]) -> bool {
        let slot = if name.eq_ignore_ascii_case(b"content-type") {
            &mut self.content_type
        } else if name.eq_ignore_ascii_case(b"accept") {
            &mut self.accept
        } else if name.eq_ignore_ascii_case(b"traceparent") {
            &mut self.traceparent
        } else if name.eq_ignore_ascii_case(b"x-request-id") {
            &mut self.request_id
        } else if name.eq_ignore_ascii_case(b"x-player-id") {
            &mut self.player_id
        } else if name.eq_ignore_ascii_case(b"x-forwarded-for") {
            &mut self.forwarded_for
        } else if name.eq_ignore_ascii_case(b"idempotency-key") {
            &mut self.idempotency_key
        } else if name.eq_ignore_ascii_case(b"authorization") {
            &mut self.authorization
        } else if name.eq_ignore_ascii_case(b"accept-encoding") {
            &mut self.accept_encoding
        } else if name.eq_ignore_ascii_case(b"if-none-match") {
            &mut self.if_none_match
        } else {
            return false;
        };
        *slot = Some(value);
        true
    }
}

/// A request as the handlers see it: borrowed from the engine's buffers, only the parts the
/// handlers read.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub method: &'a http::Method,
    /// The path without the query string.
    pub path: &'a str,
    /// The query string, without the `?`.
    pub query: Option<&'a str>,
    pub headers: Headers<'a>,
    /// The address of the TCP peer.
    pub peer: std::net::IpAddr,
    pub body: &'a [u8],
    /// When the engine read it (tokio's clock): handlers needing the time read this rather
    /// than the clock again.
    pub arrived: tokio::time::Instant,
}

/// A request copied out of the engine's buffers: what a request waiting for its token to be
/// verified (accounts in Redis, a token this instance has not seen lately) keeps meanwhile.
/// Made only on that miss, so the ordinary play allocates nothing.
#[derive(Debug)]
pub(crate) struct OwnedRequest {
    method: http::Method,
    path: String,
    query: Option<String>,
    /// The header values, in [`Headers`]' order.
    headers: [Option<Vec<u8>>; 10],
    peer: std::net::IpAddr,
    body: Vec<u8>,
    arrived: tokio::time::Instant,
}

impl OwnedRequest {
    pub(crate) fn from_request(request: &Request<'_>) -> Self {
        let h = &request.headers;
        let own = |value: Option<&[u8]>| value.map(<[u8]>::to_vec);
        OwnedRequest {
            method: request.method.clone(),
            path: request.path.to_owned(),
            query: request.query.map(str::to_owned),
            headers: [
                own(h.content_type),
                own(h.accept),
                own(h.traceparent),
                own(h.request_id),
                own(h.player_id),
                own(h.forwarded_for),
                own(h.idempotency_key),
                own(h.authorization),
                own(h.accept_encoding),
                own(h.if_none_match),
            ],
            peer: request.peer,
            body: request.body.to_vec(),
            arrived: request.arrived,
        }
    }

    pub(crate) fn request(&self) -> Request<'_> {
        let [
            content_type,
            accept,
            traceparent,
            request_id,
            player_id,
            forwarded_for,
            idempotency_key,
            authorization,
            accept_encoding,
            if_none_match,
        ] = &self.headers;
        Request {
            method: &self.method,
            path: &self.path,
            query: self.query.as_deref(),
            headers: Headers {
                content_type: content_type.as_deref(),
                accept: accept.as_deref(),
                traceparent: traceparent.as_deref(),
                request_id: request_id.as_deref(),
                player_id: player_id.as_deref(),
                forwarded_for: forwarded_for.as_deref(),
                idempotency_key: idempotency_key.as_deref(),
                authorization: authorization.as_deref(),
                accept_encoding: accept_encoding.as_deref(),
                if_none_match: if_none_match.as_deref(),
            },
            peer: self.peer,
            body: &self.body,
            arrived: self.arrived,
        }
    }
}

impl<'a> Request<'a> {
    /// A request with only a method, path, content type and body, from the loopback address:
    /// what benchmarks and tests of the handler need.
    pub fn new(
        method: &'a http::Method,
        path: &'a str,
        content_type: Option<&'a [u8]>,
        body: &'a [u8],
    ) -> Self {
        Request {
            method,
            path,
            query: None,
            headers: Headers {
                content_type,
                ..Headers::default()
            },
            peer: std::net::Ipv4Addr::LOCALHOST.into(),
            body,
            arrived: tokio::time::Instant::now(),
        }
    }
}

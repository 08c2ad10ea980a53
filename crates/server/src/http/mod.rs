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
mod cors;
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
mod session_cookie;
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
    /// `origin`: the page a browser's request comes from (CORS, and whether the page came over
    /// HTTPS).
    pub origin: Option<&'a [u8]>,
    /// `cookie`: the web page's session cookie, if any.
    pub cookie: Option<&'a [u8]>,
    /// `x-session: cookie`: the web page speaks (it asks for, and uses, the cookie session);
    /// a header no other site's page can send without a preflight. A flag, not the value: the
    /// request head is copied a few times on its way, and every field read makes it larger.
    pub session_cookie: bool,
    /// `sec-fetch-site`, the browser's own word on where a request comes from (CSRF checks;
    /// no script can set it), when sent.
    pub fetch_site: Option<FetchSite>,
}

/// What a request's `Sec-Fetch-Site` says, as far as the CSRF rule cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchSite {
    /// `same-origin`: this site's own page sent it.
    SameOrigin,
    /// `same-site`, `cross-site`, `none` or anything else.
    Other,
}

impl<'a> Headers<'a> {
    /// Keeps `value` when `name` (any case) is a field the handlers read; a repeated field's
    /// last value wins. Returns whether it was one.
    ///
    /// Dispatched on the name's length first: every field of every request passes here and
    /// most are none of these (`user-agent`, `accept-language`), so a name costs one jump and
    /// at most three comparisons, where a chain of comparisons cost one per field read.
    pub fn record(&mut self, name: &[u8], value: &'a [u8]) -> bool {
        let is = |field: &[u8]| name.eq_ignore_ascii_case(field);
        let slot = match name.len() {
            6 if is(b"accept") => &mut self.accept,
            6 if is(b"cookie") => &mut self.cookie,
            6 if is(b"origin") => &mut self.origin,
            9 if is(b"x-session") => {
                self.session_cookie = value.trim_ascii().eq_ignore_ascii_case(b"cookie");
                return true;
            }
            11 if is(b"traceparent") => &mut self.traceparent,
            11 if is(b"x-player-id") => &mut self.player_id,
            12 if is(b"content-type") => &mut self.content_type,
            12 if is(b"x-request-id") => &mut self.request_id,
            13 if is(b"authorization") => &mut self.authorization,
            13 if is(b"if-none-match") => &mut self.if_none_match,
            14 if is(b"sec-fetch-site") => {
                let same_origin = value.trim_ascii().eq_ignore_ascii_case(b"same-origin");
                self.fetch_site = Some(if same_origin {
                    FetchSite::SameOrigin
                } else {
                    FetchSite::Other
                });
                return true;
            }
            15 if is(b"x-forwarded-for") => &mut self.forwarded_for,
            15 if is(b"idempotency-key") => &mut self.idempotency_key,
            15 if is(b"accept-encoding") => &mut self.accept_encoding,
            _ => return false,
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
    headers: [Option<Vec<u8>>; 12],
    session_cookie: bool,
    fetch_site: Option<FetchSite>,
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
                own(h.origin),
                own(h.cookie),
            ],
            session_cookie: h.session_cookie,
            fetch_site: h.fetch_site,
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
            origin,
            cookie,
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
                origin: origin.as_deref(),
                cookie: cookie.as_deref(),
                session_cookie: self.session_cookie,
                fetch_site: self.fetch_site,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owned_request_gives_back_every_field_it_copied() {
        let method = http::Method::POST;
        let mut request = Request::new(&method, "/play", Some(b"application/json"), b"{}");
        request.query = Some("a=1");
        for (name, value) in [
            (&b"Accept"[..], &b"application/msgpack"[..]),
            (
                b"traceparent",
                b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            (b"x-request-id", b"abc"),
            (b"x-player-id", b"ann"),
            (b"x-forwarded-for", b"10.0.0.1"),
            (b"idempotency-key", b""),
            (b"authorization", b"Bearer gga_x"),
            (b"accept-encoding", b"br"),
            (b"if-none-match", b"\"e\""),
            (b"origin", b"https://game.example"),
            (b"cookie", b"gg_session=ggs_x"),
            (b"x-session", b"cookie"),
            (b"sec-fetch-site", b"same-origin"),
        ] {
            assert!(request.headers.record(name, value), "{name:?}");
        }
        assert!(!request.headers.record(b"user-agent", b"x"));
        let owned = OwnedRequest::from_request(&request);
        let again = owned.request();
        assert_eq!(
            format!("{:?}", again.headers),
            format!("{:?}", request.headers)
        );
        assert_eq!(again.query, Some("a=1"));
        assert_eq!(again.body, b"{}");
        assert_eq!(again.headers.idempotency_key, Some(&b""[..]));
        let bare = OwnedRequest::from_request(&Request::new(&method, "/", None, b""));
        assert_eq!(bare.request().headers.content_type, None);
    }
}

//! What the HTTP surface refuses: routing, negotiation, decoding and validating a request,
//! and admission (rate limits, shedding, timeouts, injected faults).

use std::fmt;

/// Longest piece of a client's input echoed back in an error message.
const MAX_ECHOED_CHARS: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum HttpError<'a> {
    #[error("unknown choice \"{}\"; valid choices are rock, paper and scissors", Truncated(.given))]
    InvalidChoice { given: &'a str },
    #[error("the request body could not be decoded: {0}")]
    InvalidBody(#[source] BodyError),
    #[error("the content type is not supported; send application/json or application/msgpack")]
    UnsupportedMediaType,
    #[error("the method is not allowed here; allowed: {allow}")]
    MethodNotAllowed { allow: &'static str },
    #[error("no such resource")]
    NotFound,
    #[error("the server is shutting down and not accepting new work")]
    ShuttingDown,
    #[error("too many requests ({} limit); retry after {} s", .0.scope.name(), .0.retry_after_seconds())]
    RateLimited(crate::protection::rate_limit::Refusal),
    #[error("the request took longer than the server's request timeout")]
    HandlerTimeout,
    #[error("the server is at its limit of requests in flight; retry shortly")]
    Overloaded,
    #[error("a fault was injected here on purpose (fault injection is on)")]
    InjectedFault,
    #[error("invalid query parameter `{name}`: {reason}")]
    InvalidParameter {
        name: &'static str,
        reason: &'static str,
    },
    #[error(
        "invalid player id: use 1 to 64 of A-Z, a-z, 0-9, '_', '.', '-' (the same id in the body and X-Player-Id if both are sent)"
    )]
    InvalidPlayerId,
    #[error("invalid Idempotency-Key: use 1 to 255 visible ASCII characters")]
    InvalidIdempotencyKey,
    #[error("{0}")]
    WebSocket(crate::realtime::HandshakeError),
    #[error("WebSocket upgrades are served by the native engine only (engine = \"native\")")]
    WebSocketUnsupported,
    #[error("no match with this id is running or kept")]
    MatchNotFound,
    /// A request using the web page's session cookie failed the CSRF rule
    /// (`http::session_cookie`).
    #[error("refused as a possible cross-site request: {reason}")]
    CsrfRefused { reason: &'static str },
}

/// A body that is not valid JSON or MessagePack for the expected shape.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    MsgPack(#[from] rmp_serde::decode::Error),
    #[error("the body ended before it was complete")]
    Truncated,
}

/// Shows at most [`MAX_ECHOED_CHARS`] characters of client input, marking the cut.
struct Truncated<'a>(&'a str);

impl fmt::Display for Truncated<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(MAX_ECHOED_CHARS) {
            Some((cut, _)) => write!(f, "{}…", &self.0[..cut]),
            None => f.write_str(self.0),
        }
    }
}

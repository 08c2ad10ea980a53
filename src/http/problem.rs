//! Every error a client can receive, and the one place where errors become responses.
//!
//! Errors are RFC 9457 problem details (`application/problem+json`) with a stable,
//! machine-readable `code` member that clients can switch on; `detail` is for people and may
//! change wording. The body is serialized straight into the engine's reused buffer, so a
//! rejection costs no heap allocation (a body that fails to decode is the exception: the
//! decoder's own error value is boxed).

use std::fmt;

use http::StatusCode;
use serde::Serialize;

use super::reply::{HeaderValue, Reply};
use crate::game::Choice;
use crate::game::random::RandomUnavailable;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// Longest piece of a client's input echoed back in an error message.
const MAX_ECHOED_CHARS: usize = 32;

/// Why a request failed, with what the client needs to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError<'a> {
    #[error("unknown choice \"{}\"; valid choices are rock, paper and scissors", Truncated(.given))]
    InvalidChoice { given: &'a str },
    #[error("the request body could not be decoded: {0}")]
    InvalidBody(#[source] BodyError),
    #[error("the content type is not supported; send application/json or application/msgpack")]
    UnsupportedMediaType,
    #[error("the request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the method is not allowed here; allowed: {allow}")]
    MethodNotAllowed { allow: &'static str },
    #[error("no such resource")]
    NotFound,
    #[error("the server is shutting down and not accepting new work")]
    ShuttingDown,
    #[error("the request is not valid HTTP/1.1: {reason}")]
    MalformedRequest { reason: &'static str },
    #[error("the request head is too large")]
    HeadersTooLarge,
    #[error("only the chunked transfer-encoding is supported")]
    UnsupportedTransferEncoding,
    #[error("the request was not received in time")]
    RequestTimeout,
    #[error("too many requests ({} limit); retry after {} s", .0.scope.name(), .0.retry_after_seconds())]
    RateLimited(crate::protection::rate_limit::Refusal),
    #[error("the request took longer than the server's request timeout")]
    HandlerTimeout,
    #[error("the server is at its limit of requests in flight; retry shortly")]
    Overloaded,
    #[error("a fault was injected here on purpose (fault injection is on)")]
    InjectedFault,
    #[error("fault injection is off; start the server with fault_injection = true to use it")]
    FaultInjectionDisabled,
    #[error("the server has reached its limit of open connections; try again shortly")]
    TooManyConnections,
    #[error("invalid query parameter `{name}`: {reason}")]
    InvalidParameter {
        name: &'static str,
        reason: &'static str,
    },
    #[error("a CPU profile is already being taken; try again when it is done")]
    ProfileInProgress,
    #[error("the CPU profiler failed: {0}")]
    ProfilerFailed(String),
    #[error(
        "invalid player id: use 1 to 64 of A-Z, a-z, 0-9, '_', '.', '-' (the same id in the body and X-Player-Id if both are sent)"
    )]
    InvalidPlayerId,
    #[error("invalid Idempotency-Key: use 1 to 255 visible ASCII characters")]
    InvalidIdempotencyKey,
    #[error("this Idempotency-Key was already used with a different request body")]
    IdempotencyKeyReused,
    #[error("a request with this Idempotency-Key is still being processed; retry shortly")]
    IdempotencyKeyInFlight,
    #[error("the store is unavailable; retry after {} s", .retry_after_seconds)]
    StoreUnavailable { retry_after_seconds: u64 },
    #[error("no games recorded for this player")]
    PlayerNotFound,
    #[error("the computer could not draw a move: {0}")]
    RandomUnavailable(#[from] RandomUnavailable),
    #[error(
        "this instance holds no node id for game ids right now (its lease lapsed); another instance can serve the play"
    )]
    GameIdUnavailable,
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

/// The stable facts about each kind of error; `code` values are part of the public API.
struct Kind {
    status: StatusCode,
    code: &'static str,
    type_uri: &'static str,
    title: &'static str,
}

macro_rules! kind {
    ($status:ident, $code:literal, $title:literal) => {
        Kind {
            status: StatusCode::$status,
            code: $code,
            type_uri: concat!("tag:guess-game,2026:problem:", $code),
            title: $title,
        }
    };
}

impl ApiError<'_> {
    fn kind(&self) -> Kind {
        match self {
            ApiError::InvalidChoice { .. } => {
                kind!(BAD_REQUEST, "invalid_choice", "Invalid choice")
            }
            ApiError::InvalidBody(_) => kind!(BAD_REQUEST, "invalid_body", "Invalid request body"),
            ApiError::UnsupportedMediaType => kind!(
                UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type"
            ),
            ApiError::PayloadTooLarge { .. } => {
                kind!(
                    PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "Request body too large"
                )
            }
            ApiError::MethodNotAllowed { .. } => {
                kind!(
                    METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "Method not allowed"
                )
            }
            ApiError::NotFound => kind!(NOT_FOUND, "not_found", "Not found"),
            ApiError::ShuttingDown => kind!(SERVICE_UNAVAILABLE, "shutting_down", "Shutting down"),
            ApiError::MalformedRequest { .. } => {
                kind!(BAD_REQUEST, "malformed_request", "Malformed HTTP request")
            }
            ApiError::HeadersTooLarge => kind!(
                REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                "Request head too large"
            ),
            ApiError::UnsupportedTransferEncoding => kind!(
                NOT_IMPLEMENTED,
                "unsupported_transfer_encoding",
                "Transfer-encoding not supported"
            ),
            ApiError::RequestTimeout => {
                kind!(REQUEST_TIMEOUT, "request_timeout", "Request timeout")
            }
            ApiError::RateLimited(_) => {
                kind!(TOO_MANY_REQUESTS, "rate_limited", "Too many requests")
            }
            ApiError::InjectedFault => {
                kind!(SERVICE_UNAVAILABLE, "injected_fault", "Injected fault")
            }
            ApiError::Overloaded => kind!(SERVICE_UNAVAILABLE, "overloaded", "Overloaded"),
            ApiError::HandlerTimeout => {
                kind!(SERVICE_UNAVAILABLE, "handler_timeout", "Request timed out")
            }
            ApiError::FaultInjectionDisabled => kind!(
                FORBIDDEN,
                "fault_injection_disabled",
                "Fault injection disabled"
            ),
            ApiError::TooManyConnections => kind!(
                SERVICE_UNAVAILABLE,
                "connection_limit",
                "Too many connections"
            ),
            ApiError::InvalidParameter { .. } => {
                kind!(BAD_REQUEST, "invalid_parameter", "Invalid parameter")
            }
            ApiError::ProfileInProgress => {
                kind!(CONFLICT, "profile_in_progress", "Profile in progress")
            }
            ApiError::ProfilerFailed(_) => {
                kind!(INTERNAL_SERVER_ERROR, "profiler_failed", "Profiler failed")
            }
            ApiError::RandomUnavailable(_) => kind!(
                SERVICE_UNAVAILABLE,
                "random_unavailable",
                "Random source unavailable"
            ),
            ApiError::GameIdUnavailable => kind!(
                SERVICE_UNAVAILABLE,
                "game_id_unavailable",
                "Game ids unavailable"
            ),
            ApiError::InvalidPlayerId => {
                kind!(BAD_REQUEST, "invalid_player_id", "Invalid player id")
            }
            ApiError::InvalidIdempotencyKey => kind!(
                BAD_REQUEST,
                "invalid_idempotency_key",
                "Invalid idempotency key"
            ),
            ApiError::IdempotencyKeyReused => kind!(
                UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "Idempotency key reused"
            ),
            ApiError::IdempotencyKeyInFlight => kind!(
                CONFLICT,
                "idempotency_key_in_flight",
                "Idempotency key in flight"
            ),
            ApiError::StoreUnavailable { .. } => {
                kind!(
                    SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "Store unavailable"
                )
            }
            ApiError::PlayerNotFound => kind!(NOT_FOUND, "player_not_found", "Player not found"),
        }
    }

    /// The machine-readable code clients see.
    pub fn code(&self) -> &'static str {
        self.kind().code
    }

    pub fn status(&self) -> StatusCode {
        self.kind().status
    }

    /// Writes the problem document into `body` and returns the reply to send with it.
    pub fn write_reply(&self, body: &mut Vec<u8>) -> Reply {
        let kind = self.kind();
        // Refusals by design (overload, an unavailable store, shutdown) are counted and sampled
        // where they are decided; only real failures are logged here, each time.
        if matches!(
            self,
            ApiError::ProfilerFailed(_) | ApiError::RandomUnavailable(_)
        ) {
            tracing::warn!(code = kind.code, error = %self, "request failed on the server side");
        }
        let document = Problem {
            type_uri: kind.type_uri,
            title: kind.title,
            status: kind.status.as_u16(),
            detail: DisplayAsString(self),
            code: kind.code,
            valid_choices: matches!(self, ApiError::InvalidChoice { .. }).then_some(CHOICE_NAMES),
            max_body_bytes: match self {
                ApiError::PayloadTooLarge { limit } => Some(*limit),
                _ => None,
            },
        };
        body.clear();
        // Serializing plain strings and integers into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *body, &document);
        let reply = Reply::new(kind.status, PROBLEM_CONTENT_TYPE);
        match self {
            ApiError::MethodNotAllowed { allow } => {
                reply.with_header("allow", HeaderValue::Static(allow))
            }
            ApiError::ShuttingDown
            | ApiError::RandomUnavailable(_)
            | ApiError::GameIdUnavailable
            | ApiError::TooManyConnections
            | ApiError::InjectedFault
            | ApiError::Overloaded
            | ApiError::IdempotencyKeyInFlight
            | ApiError::HandlerTimeout => reply.with_header("retry-after", HeaderValue::Number(1)),
            ApiError::StoreUnavailable {
                retry_after_seconds,
            } => reply.with_header("retry-after", HeaderValue::Number(*retry_after_seconds)),
            ApiError::RateLimited(refusal) => {
                let policy = refusal.scope.name();
                let (quota, window) = refusal.policy();
                let reset = refusal.retry_after_seconds();
                reply
                    .with_header("retry-after", HeaderValue::Number(reset))
                    .with_header(
                        "ratelimit-policy",
                        HeaderValue::RateLimitPolicy {
                            policy,
                            quota,
                            window,
                        },
                    )
                    .with_header(
                        "ratelimit",
                        HeaderValue::RateLimit {
                            policy,
                            remaining: 0,
                            reset,
                        },
                    )
            }
            _ => reply,
        }
    }
}

const CHOICE_NAMES: [&str; 3] = [
    Choice::ALL[0].name(),
    Choice::ALL[1].name(),
    Choice::ALL[2].name(),
];

#[derive(Serialize)]
struct Problem<'a, 'e> {
    #[serde(rename = "type")]
    type_uri: &'static str,
    title: &'static str,
    status: u16,
    detail: DisplayAsString<'a, ApiError<'e>>,
    code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    valid_choices: Option<[&'static str; 3]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_body_bytes: Option<usize>,
}

/// Serializes any `Display` value as a JSON string without building a `String` first.
struct DisplayAsString<'a, T>(&'a T);

impl<T: fmt::Display> Serialize for DisplayAsString<'_, T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self.0)
    }
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

/// A store failure as the client sees it: 503 with the breaker's retry delay.
pub(super) fn store_unavailable(error: crate::store::StoreError) -> ApiError<'static> {
    let retry_after_seconds = error.retry_after().as_secs_f64().ceil().max(1.0) as u64;
    crate::telemetry::metrics::with_shard(|shard| shard.store_unavailable.add(1));
    if crate::telemetry::log_this_refusal() {
        tracing::warn!(%error, "store unavailable (1% are logged)");
    }
    ApiError::StoreUnavailable {
        retry_after_seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(error: ApiError<'_>) -> (Reply, serde_json::Value) {
        let mut body = Vec::new();
        let reply = error.write_reply(&mut body);
        (reply, serde_json::from_slice(&body).unwrap())
    }

    #[test]
    fn invalid_choice_lists_the_valid_choices() {
        let (reply, doc) = document(ApiError::InvalidChoice { given: "lizard" });
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert_eq!(reply.content_type, PROBLEM_CONTENT_TYPE);
        assert_eq!(doc["code"], "invalid_choice");
        assert_eq!(doc["status"], 400);
        assert_eq!(
            doc["valid_choices"],
            serde_json::json!(["rock", "paper", "scissors"])
        );
        assert!(doc["detail"].as_str().unwrap().contains("\"lizard\""));
        assert_eq!(doc["type"], "tag:guess-game,2026:problem:invalid_choice");
    }

    #[test]
    fn echoed_input_is_cut_short_and_escaped() {
        let long = "\"x".repeat(100);
        let (_, doc) = document(ApiError::InvalidChoice { given: &long });
        let detail = doc["detail"].as_str().unwrap();
        assert!(detail.chars().count() < 120, "{detail}");
        assert!(detail.contains('…'));
    }

    #[test]
    fn method_not_allowed_carries_allow() {
        let (reply, doc) = document(ApiError::MethodNotAllowed { allow: "POST" });
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(reply.header("Allow"), Some(HeaderValue::Static("POST")));
        assert_eq!(doc["code"], "method_not_allowed");
    }

    #[test]
    fn payload_too_large_states_the_limit() {
        let (reply, doc) = document(ApiError::PayloadTooLarge { limit: 4096 });
        assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(doc["max_body_bytes"], 4096);
    }
}

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

pub use super::error::{BodyError, HttpError};
use super::reply::{HeaderValue, Reply};
use crate::accounts::AccountError;
pub use crate::api::{AdminError, EngineError};
use crate::game::{Choice, GameError};
pub use crate::store::StoreRefusal;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// Why a request failed, with what the client needs to fix it: one variant per layer that
/// can refuse a request, each that layer's own error type. [`ApiError::kind`] below is the one
/// place an error becomes a status, a `code` and a title.
#[derive(Debug, thiserror::Error)]
pub enum ApiError<'a> {
    /// The connection engine refused the bytes (framing, sizes, time).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Routing, negotiation, validation and admission refused the request.
    // Displayed, not `transparent`: an error borrowing from the request cannot be a `source`.
    #[error("{0}")]
    Http(HttpError<'a>),
    /// The store could not do what the request needs.
    #[error(transparent)]
    Store(#[from] StoreRefusal),
    /// The rules could not be applied.
    #[error(transparent)]
    Game(#[from] GameError),
    /// The admin listener refused.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// Accounts and sessions refused: credentials, tokens, the front door's limits.
    #[error(transparent)]
    Accounts(#[from] AccountError),
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

impl<'a> From<HttpError<'a>> for ApiError<'a> {
    fn from(error: HttpError<'a>) -> Self {
        ApiError::Http(error)
    }
}

impl ApiError<'_> {
    fn kind(&self) -> Kind {
        match self {
            ApiError::Engine(error) => match error {
                EngineError::PayloadTooLarge { .. } => kind!(
                    PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "Request body too large"
                ),
                EngineError::MalformedRequest { .. } => {
                    kind!(BAD_REQUEST, "malformed_request", "Malformed HTTP request")
                }
                EngineError::HeadersTooLarge => kind!(
                    REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "headers_too_large",
                    "Request head too large"
                ),
                EngineError::UnsupportedTransferEncoding => kind!(
                    NOT_IMPLEMENTED,
                    "unsupported_transfer_encoding",
                    "Transfer-encoding not supported"
                ),
                EngineError::RequestTimeout => {
                    kind!(REQUEST_TIMEOUT, "request_timeout", "Request timeout")
                }
                EngineError::TooManyConnections => kind!(
                    SERVICE_UNAVAILABLE,
                    "connection_limit",
                    "Too many connections"
                ),
            },
            ApiError::Http(error) => match error {
                HttpError::InvalidChoice { .. } => {
                    kind!(BAD_REQUEST, "invalid_choice", "Invalid choice")
                }
                HttpError::InvalidBody(_) => {
                    kind!(BAD_REQUEST, "invalid_body", "Invalid request body")
                }
                HttpError::UnsupportedMediaType => kind!(
                    UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "Unsupported media type"
                ),
                HttpError::MethodNotAllowed { .. } => kind!(
                    METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "Method not allowed"
                ),
                HttpError::NotFound => kind!(NOT_FOUND, "not_found", "Not found"),
                HttpError::ShuttingDown => {
                    kind!(SERVICE_UNAVAILABLE, "shutting_down", "Shutting down")
                }
                HttpError::RateLimited(_) => {
                    kind!(TOO_MANY_REQUESTS, "rate_limited", "Too many requests")
                }
                HttpError::InjectedFault => {
                    kind!(SERVICE_UNAVAILABLE, "injected_fault", "Injected fault")
                }
                HttpError::Overloaded => kind!(SERVICE_UNAVAILABLE, "overloaded", "Overloaded"),
                HttpError::HandlerTimeout => {
                    kind!(SERVICE_UNAVAILABLE, "handler_timeout", "Request timed out")
                }
                HttpError::InvalidParameter { .. } => {
                    kind!(BAD_REQUEST, "invalid_parameter", "Invalid parameter")
                }
                HttpError::InvalidPlayerId => {
                    kind!(BAD_REQUEST, "invalid_player_id", "Invalid player id")
                }
                HttpError::WebSocket(crate::realtime::HandshakeError::NotAnUpgrade) => kind!(
                    UPGRADE_REQUIRED,
                    "upgrade_required",
                    "WebSocket upgrade required"
                ),
                HttpError::WebSocket(_) => {
                    kind!(BAD_REQUEST, "invalid_upgrade", "Invalid WebSocket upgrade")
                }
                HttpError::WebSocketUnsupported => kind!(
                    NOT_IMPLEMENTED,
                    "websocket_unsupported",
                    "WebSocket not served by this engine"
                ),
                HttpError::MatchNotFound => kind!(NOT_FOUND, "match_not_found", "Match not found"),
                HttpError::CsrfRefused { .. } => {
                    kind!(FORBIDDEN, "csrf_refused", "Cross-site request refused")
                }
                HttpError::InvalidIdempotencyKey => kind!(
                    BAD_REQUEST,
                    "invalid_idempotency_key",
                    "Invalid idempotency key"
                ),
            },
            ApiError::Store(error) => match error {
                StoreRefusal::Unavailable { .. } => kind!(
                    SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "Store unavailable"
                ),
                StoreRefusal::PlayerNotFound => {
                    kind!(NOT_FOUND, "player_not_found", "Player not found")
                }
                StoreRefusal::IdempotencyKeyReused => kind!(
                    UNPROCESSABLE_ENTITY,
                    "idempotency_key_reused",
                    "Idempotency key reused"
                ),
                StoreRefusal::IdempotencyKeyInFlight => kind!(
                    CONFLICT,
                    "idempotency_key_in_flight",
                    "Idempotency key in flight"
                ),
                StoreRefusal::GameIdUnavailable => kind!(
                    SERVICE_UNAVAILABLE,
                    "game_id_unavailable",
                    "Game ids unavailable"
                ),
            },
            ApiError::Game(GameError::RandomUnavailable(_)) => kind!(
                SERVICE_UNAVAILABLE,
                "random_unavailable",
                "Random source unavailable"
            ),
            ApiError::Accounts(error) => match error {
                AccountError::InvalidUsername(_) => {
                    kind!(BAD_REQUEST, "invalid_username", "Invalid username")
                }
                AccountError::WeakPassword(_) => {
                    kind!(BAD_REQUEST, "weak_password", "Password refused")
                }
                AccountError::UsernameTaken => {
                    kind!(CONFLICT, "username_taken", "Username taken")
                }
                AccountError::AlreadyRegistered => {
                    kind!(CONFLICT, "already_registered", "Already registered")
                }
                AccountError::BadCredentials => {
                    kind!(UNAUTHORIZED, "invalid_credentials", "Invalid credentials")
                }
                AccountError::InvalidToken(_) => {
                    kind!(UNAUTHORIZED, "invalid_token", "Invalid token")
                }
                AccountError::MissingToken | AccountError::MissingSessionCookie => kind!(
                    UNAUTHORIZED,
                    "authentication_required",
                    "Authentication required"
                ),
                AccountError::Full => kind!(SERVICE_UNAVAILABLE, "accounts_full", "Accounts full"),
                AccountError::NoSession => {
                    kind!(NOT_FOUND, "session_not_found", "Session not found")
                }
                AccountError::Throttled { .. } => {
                    kind!(TOO_MANY_REQUESTS, "login_throttled", "Too many attempts")
                }
                AccountError::Unavailable(_) => kind!(
                    SERVICE_UNAVAILABLE,
                    "accounts_unavailable",
                    "Accounts unavailable"
                ),
            },
            ApiError::Admin(error) => match error {
                AdminError::FaultInjectionDisabled => kind!(
                    FORBIDDEN,
                    "fault_injection_disabled",
                    "Fault injection disabled"
                ),
                AdminError::ProfileInProgress => {
                    kind!(CONFLICT, "profile_in_progress", "Profile in progress")
                }
                AdminError::ProfilerFailed(_) => {
                    kind!(INTERNAL_SERVER_ERROR, "profiler_failed", "Profiler failed")
                }
            },
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
            ApiError::Admin(AdminError::ProfilerFailed(_))
                | ApiError::Game(_)
                | ApiError::Accounts(AccountError::Unavailable(_))
        ) {
            tracing::warn!(code = kind.code, error = %self, "request failed on the server side");
        }
        let document = Problem {
            type_uri: kind.type_uri,
            title: kind.title,
            status: kind.status.as_u16(),
            detail: DisplayAsString(self),
            code: kind.code,
            valid_choices: matches!(self, ApiError::Http(HttpError::InvalidChoice { .. }))
                .then_some(CHOICE_NAMES),
            max_body_bytes: match self {
                ApiError::Engine(EngineError::PayloadTooLarge { limit }) => Some(*limit),
                _ => None,
            },
        };
        body.clear();
        // Serializing plain strings and integers into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *body, &document);
        let reply = Reply::new(kind.status, PROBLEM_CONTENT_TYPE);
        match self {
            ApiError::Http(HttpError::MethodNotAllowed { allow }) => {
                reply.with_header("allow", HeaderValue::Static(allow))
            }
            ApiError::Http(HttpError::WebSocket(crate::realtime::HandshakeError::NotAnUpgrade)) => {
                reply.with_header("upgrade", HeaderValue::Static("websocket"))
            }
            ApiError::Http(HttpError::WebSocket(crate::realtime::HandshakeError::Version)) => {
                reply.with_header("sec-websocket-version", HeaderValue::Static("13"))
            }
            ApiError::Http(
                HttpError::ShuttingDown
                | HttpError::InjectedFault
                | HttpError::Overloaded
                | HttpError::HandlerTimeout,
            )
            | ApiError::Game(GameError::RandomUnavailable(_))
            | ApiError::Store(
                StoreRefusal::GameIdUnavailable | StoreRefusal::IdempotencyKeyInFlight,
            )
            | ApiError::Engine(EngineError::TooManyConnections) => {
                reply.with_header("retry-after", HeaderValue::Number(1))
            }
            ApiError::Store(StoreRefusal::Unavailable {
                retry_after_seconds,
            })
            | ApiError::Accounts(AccountError::Throttled {
                retry_after_seconds,
            }) => reply.with_header("retry-after", HeaderValue::Number(*retry_after_seconds)),
            ApiError::Accounts(AccountError::Full | AccountError::Unavailable(_)) => {
                reply.with_header("retry-after", HeaderValue::Number(1))
            }
            // RFC 6750: a missing token gets the challenge alone, a bad one says why.
            ApiError::Accounts(
                AccountError::MissingToken
                | AccountError::MissingSessionCookie
                | AccountError::BadCredentials,
            ) => reply.with_header(
                "www-authenticate",
                HeaderValue::Static("Bearer realm=\"guess-game\""),
            ),
            ApiError::Accounts(AccountError::InvalidToken(_)) => reply.with_header(
                "www-authenticate",
                HeaderValue::Static("Bearer realm=\"guess-game\", error=\"invalid_token\""),
            ),
            ApiError::Http(HttpError::RateLimited(refusal)) => {
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
        let (reply, doc) = document(HttpError::InvalidChoice { given: "lizard" }.into());
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
        let (_, doc) = document(HttpError::InvalidChoice { given: &long }.into());
        let detail = doc["detail"].as_str().unwrap();
        assert!(detail.chars().count() < 120, "{detail}");
        assert!(detail.contains('…'));
    }

    #[test]
    fn method_not_allowed_carries_allow() {
        let (reply, doc) = document(HttpError::MethodNotAllowed { allow: "POST" }.into());
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(reply.header("Allow"), Some(HeaderValue::Static("POST")));
        assert_eq!(doc["code"], "method_not_allowed");
    }

    #[test]
    fn payload_too_large_states_the_limit() {
        let (reply, doc) = document(EngineError::PayloadTooLarge { limit: 4096 }.into());
        assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(doc["max_body_bytes"], 4096);
    }
}

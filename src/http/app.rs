//! The request handler shared by every engine: routing, then one function per route.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::{Method, StatusCode};

use super::problem::ApiError;
use super::reply::Reply;
use super::routes::Route;
use super::wire::{self, PlayRequest, PlayResponse};
use super::{Request, openapi};
use crate::game::{self, Choice, random};

/// Whether the instance wants new work. Cleared when a graceful shutdown starts, so `/readyz`
/// tells load balancers to stop sending traffic while requests in flight drain.
#[derive(Clone, Debug)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn new() -> Self {
        Self(Arc::new(AtomicBool::new(true)))
    }

    pub fn is_ready(&self) -> bool {
        // Relaxed is enough: the flag orders nothing else, and a request that reads a stale
        // `true` a moment after shutdown began is still served in full by the drain.
        self.0.load(Ordering::Relaxed)
    }

    pub fn set_not_ready(&self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

impl Default for Readiness {
    fn default() -> Self {
        Self::new()
    }
}

/// The application: everything a request needs, shared read-only by all workers.
#[derive(Clone, Debug)]
pub struct App {
    readiness: Readiness,
    max_body_bytes: usize,
}

impl App {
    pub fn new(readiness: Readiness, max_body_bytes: usize) -> Self {
        Self {
            readiness,
            max_body_bytes,
        }
    }

    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// False once a graceful shutdown has begun: connections close after their current request.
    pub fn is_ready(&self) -> bool {
        self.readiness.is_ready()
    }

    /// Answers one request: writes the body into `body` (cleared first) and returns the rest
    /// of the response. Never fails: every error becomes a problem document here.
    pub fn handle(&self, request: &Request<'_>, body: &mut Vec<u8>) -> Reply {
        body.clear();
        let result = match Route::recognize(request.path) {
            None => Err(ApiError::NotFound),
            Some(route) if !route.accepts(request.method) => Err(ApiError::MethodNotAllowed {
                allow: route.allow(),
            }),
            Some(route) => self.dispatch(route, request, body),
        };
        result.unwrap_or_else(|error| error.write_reply(body))
    }

    fn dispatch<'a>(
        &self,
        route: Route,
        request: &Request<'a>,
        body: &mut Vec<u8>,
    ) -> Result<Reply, ApiError<'a>> {
        match route {
            Route::Play => play(request, body),
            Route::Healthz => Ok(status_document(body, "ok")),
            Route::Readyz if self.readiness.is_ready() => Ok(status_document(body, "ready")),
            Route::Readyz => Err(ApiError::ShuttingDown),
            Route::OpenApi => {
                body.extend_from_slice(openapi::DOCUMENT.as_bytes());
                Ok(Reply::new(StatusCode::OK, wire::JSON))
            }
        }
    }

    /// Whether `method` on `path` would be routed to a handler that reads a body. Engines use
    /// it to reject an oversized body before reading it, but only where a body matters.
    pub fn reads_body(method: &Method, path: &str) -> bool {
        *method == Method::POST && Route::recognize(path) == Some(Route::Play)
    }
}

fn play<'a>(request: &Request<'a>, body: &mut Vec<u8>) -> Result<Reply, ApiError<'a>> {
    let request_format = wire::request_format(request.content_type)?;
    let response_format = wire::response_format(request.accept, request_format);
    let play: PlayRequest<'a> = wire::decode(request_format, request.body)?;
    let player = Choice::parse(&play.choice).map_err(|_| ApiError::InvalidChoice {
        given: borrowed_or_placeholder(&play.choice),
    })?;
    let computer = random::computer_choice()?;
    let outcome = game::judge(player, computer);
    wire::encode_play(response_format, &PlayResponse::from(outcome), body);
    tracing::debug!(player = %outcome.player, computer = %outcome.computer, winner = outcome.winner.name(), "round played");
    Ok(Reply::new(StatusCode::OK, response_format.content_type()))
}

/// The error echoes the client's choice only when it borrows from the request; a choice that
/// needed unescaping (and so lives in a temporary) is described instead of copied.
fn borrowed_or_placeholder<'a>(choice: &std::borrow::Cow<'a, str>) -> &'a str {
    match choice {
        std::borrow::Cow::Borrowed(text) => text,
        std::borrow::Cow::Owned(_) => "(escaped text)",
    }
}

fn status_document(body: &mut Vec<u8>, status: &'static str) -> Reply {
    #[derive(serde::Serialize)]
    struct Status {
        status: &'static str,
    }
    wire::encode(wire::Format::Json, &Status { status }, body);
    Reply::new(StatusCode::OK, wire::JSON)
}

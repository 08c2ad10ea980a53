//! The request handler shared by every engine: routing, then one function per route.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::{Method, StatusCode};

use super::deferred::{self, Deferred, Handled, IdempotentPlay, Job};
use super::play;
use super::problem::ApiError;
use super::query::Query;
use super::reply::{Reply, Stamp};
use super::wire::{self, PlayRequest};
use super::{Request, openapi};
use crate::api::Route;
use crate::game::Choice;

use crate::protection::client_address::ClientAddresses;
use crate::protection::concurrency::{ConcurrencyLimit, Mode, Permit};
use crate::protection::faults::{Faults, Point};
use crate::protection::rate_limit::{RateLimitSettings, RateLimits};
use crate::store::Store;
use crate::store::idempotency;
use crate::store::model::PlayerId;
use crate::telemetry::completed::Completed;
use crate::telemetry::metrics::{self, method_index, route_index};
use crate::telemetry::observe::Observability;
use crate::telemetry::trace::{RequestId, TraceContext};

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
pub struct App {
    readiness: Readiness,
    max_body_bytes: usize,
    observability: Observability,
    rate_limits: RateLimits,
    client_addresses: ClientAddresses,
    faults: Arc<Faults>,
    concurrency: Arc<ConcurrencyLimit>,
    pub(super) request_timeout: std::time::Duration,
    pub(super) store: Arc<Store>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl App {
    pub fn new(readiness: Readiness, max_body_bytes: usize, observability: Observability) -> Self {
        Self::with_limits(
            readiness,
            max_body_bytes,
            observability,
            RateLimits::new(RateLimitSettings::OFF),
            ClientAddresses::default(),
            Faults::new(false),
            ConcurrencyLimit::new(usize::MAX, Mode::Fixed),
        )
    }

    /// Bounds the time from a request's admission to its answer.
    pub fn with_request_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    pub fn with_limits(
        readiness: Readiness,
        max_body_bytes: usize,
        observability: Observability,
        rate_limits: RateLimits,
        client_addresses: ClientAddresses,
        faults: Arc<Faults>,
        concurrency: Arc<ConcurrencyLimit>,
    ) -> Self {
        Self {
            readiness,
            max_body_bytes,
            observability,
            rate_limits,
            client_addresses,
            faults,
            concurrency,
            request_timeout: std::time::Duration::from_secs(5),
            store: Arc::new(Store::in_memory(
                &crate::config::Settings::default().store(),
            )),
        }
    }

    /// Records games in `store` and serves its reads.
    pub fn with_store(mut self, store: Arc<Store>) -> Self {
        self.store = store;
        self
    }

    pub fn rate_limits(&self) -> &RateLimits {
        &self.rate_limits
    }

    pub fn observability(&self) -> &Observability {
        &self.observability
    }

    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// False once a graceful shutdown has begun: connections close after their current request.
    pub fn is_ready(&self) -> bool {
        self.readiness.is_ready()
    }

    /// Answers one request, waiting on the store if the route needs it: writes the body into
    /// `body` (cleared first) and returns the rest of the response. Never fails: every error
    /// becomes a problem document here.
    pub async fn handle(&self, request: &Request<'_>, body: &mut Vec<u8>) -> Reply {
        match self.handle_admitted(request, body) {
            Handled::Ready(reply, _) => reply,
            Handled::Deferred(deferred) => self.finish(deferred, body).await.0,
        }
    }

    /// Answers one request without waiting, or hands back the part that waits on the store.
    /// A ready answer comes with the request's place under the in-flight bound, which the
    /// engine keeps until the answer has left (see [`Self::request_finished`]).
    ///
    /// Every reply carries the request's trace context and id, and is counted in the metrics.
    pub fn handle_admitted(&self, request: &Request<'_>, body: &mut Vec<u8>) -> Handled {
        body.clear();
        let mut permit = None;
        let (trace, invalid_traceparent) = TraceContext::from_header(request.headers.traceparent);
        let route = Route::recognize(request.path);
        let result = match route {
            None => Err(ApiError::NotFound),
            Some(route) if !route.accepts(request.method) => Err(ApiError::MethodNotAllowed {
                allow: route.allow(),
            }),
            Some(route) => self.admit(route, request).and_then(|()| {
                permit = self.enter(route)?;
                self.dispatch(route, request, &trace, body)
            }),
        };
        if invalid_traceparent {
            metrics::with_shard(|shard| shard.traceparent_invalid.add(1));
        }
        let stamp = Stamp {
            route,
            trace,
            request_id: RequestId::from_header(request.headers.request_id),
            method_index: method_index(request.method),
            request_bytes: request.body.len(),
        };
        let reply = match result {
            Ok(Dispatched::Now(reply)) => reply,
            Ok(Dispatched::Later(job)) => {
                return Handled::Deferred(Deferred { job, stamp, permit });
            }
            Err(error) => self.error_reply(&error, body),
        };
        Handled::Ready(stamp.seal(reply, body.len()), permit)
    }

    fn error_reply(&self, error: &ApiError<'_>, body: &mut Vec<u8>) -> Reply {
        let mut reply = error.write_reply(body);
        if matches!(error, ApiError::HandlerTimeout) {
            // The answer goes out when the timeout expires, not before.
            reply.delay = self.request_timeout;
        }
        reply
    }

    /// Takes a place under the in-flight bound, for routes that can be shed; probes never are.
    fn enter(&self, route: Route) -> Result<Option<Permit>, ApiError<'static>> {
        if matches!(route, Route::Healthz | Route::Readyz | Route::OpenApi) {
            return Ok(None);
        }
        match self.concurrency.try_acquire() {
            Some(permit) => Ok(Some(permit)),
            None => {
                metrics::with_shard(|shard| shard.shed.add(1));
                if crate::telemetry::log_this_refusal() {
                    tracing::warn!(
                        limit = self.concurrency.limit(),
                        route = route.template(),
                        "shed: at the in-flight bound (1% of sheds are logged)"
                    );
                }
                Err(ApiError::Overloaded)
            }
        }
    }

    /// The bound on requests in flight.
    pub fn concurrency(&self) -> &Arc<ConcurrencyLimit> {
        &self.concurrency
    }

    /// Reports an answered request: metrics, access log and span, and frees its place under
    /// the in-flight bound (feeding its latency to an adaptive bound).
    pub fn request_finished(
        &self,
        mut completed: Completed,
        arrived: tokio::time::Instant,
        answered: tokio::time::Instant,
    ) {
        self.observability
            .request_finished(&completed, arrived, answered);
        if let Some(permit) = completed.permit.take() {
            permit.complete(answered.saturating_duration_since(arrived), answered);
        }
    }

    /// Applies the rate limits; a refused request never reaches its handler.
    fn admit(&self, route: Route, request: &Request<'_>) -> Result<(), ApiError<'static>> {
        let address = self.client_addresses.key(
            self.client_addresses
                .resolve(request.peer, request.headers.forwarded_for),
        );
        let player = request
            .headers
            .player_id
            .filter(|id| is_valid_player_id(id));
        let key = self.rate_limits.client_key(player, address);
        self.rate_limits.check(route, key).map_err(|refusal| {
            metrics::with_shard(|shard| shard.rate_limited[refusal.scope as usize].add(1));
            if crate::telemetry::log_this_refusal() {
                tracing::warn!(scope = refusal.scope.name(), client = ?key, route = route.template(), "rate limited (1% of refusals are logged)");
            }
            ApiError::RateLimited(refusal)
        })
    }

    /// What the engines report once `reply` to `request` has been written.
    pub fn completed(
        request_method: &Method,
        reply: &Reply,
        request_bytes: usize,
        response_bytes: usize,
        permit: Option<Permit>,
    ) -> Completed {
        let route_index = route_index(reply.route);
        let method_index = method_index(request_method);
        Completed {
            route: reply.route.map_or("unmatched", Route::template),
            route_index,
            method: ["GET", "HEAD", "POST", "other"][method_index],
            method_index,
            status: reply.status.as_u16(),
            request_bytes: request_bytes as u32,
            response_bytes: response_bytes as u32,
            trace: reply.trace.unwrap_or_else(TraceContext::start),
            request_id: reply
                .request_id
                .unwrap_or_else(|| RequestId::from_header(None)),
            permit,
        }
    }

    fn dispatch<'a>(
        &self,
        route: Route,
        request: &Request<'a>,
        trace: &TraceContext,
        body: &mut Vec<u8>,
    ) -> Result<Dispatched, ApiError<'a>> {
        let format = wire::response_format(request.headers.accept, wire::Format::Json);
        let player = || {
            let id = Route::player_id(request.path);
            if is_valid_player_id(id.as_bytes()) {
                Ok(id.to_owned())
            } else {
                Err(ApiError::InvalidPlayerId)
            }
        };
        let query = Query(request.query.unwrap_or_default());
        let job = match route {
            Route::Play => return self.play(request, trace, body),
            Route::Healthz => return Ok(Dispatched::Now(status_document(body, "ok", None))),
            Route::Readyz if self.readiness.is_ready() => {
                return Ok(Dispatched::Now(status_document(
                    body,
                    "ready",
                    Some(&self.store),
                )));
            }
            Route::Readyz => return Err(ApiError::ShuttingDown),
            Route::OpenApi => {
                body.extend_from_slice(openapi::DOCUMENT.as_bytes());
                return Ok(Dispatched::Now(Reply::new(StatusCode::OK, wire::JSON)));
            }
            Route::PlayerStats => Job::Stats {
                player: player()?,
                format,
            },
            Route::PlayerGames => Job::Games {
                player: player()?,
                limit: query.limit(20)?,
                format,
            },
            Route::PlayerRank => Job::Rank {
                player: player()?,
                window: query.window()?,
                format,
            },
            Route::Leaderboard => Job::Leaderboard {
                window: query.window()?,
                limit: query.limit(10)?,
                format,
            },
        };
        Ok(Dispatched::Later(job))
    }

    fn play<'a>(
        &self,
        request: &Request<'a>,
        trace: &TraceContext,
        body: &mut Vec<u8>,
    ) -> Result<Dispatched, ApiError<'a>> {
        // Inner steps are timed only when spans are exported: two clock reads per step
        // are not free, and nothing else reads them.
        let injection = self.faults.inject(Point::Play);
        if injection != Default::default() {
            metrics::with_shard(|shard| {
                shard.faults_injected[0].add(u64::from(!injection.delay.is_zero()));
                shard.faults_injected[1].add(u64::from(injection.fail));
            });
        }
        if injection.fail {
            return Err(ApiError::InjectedFault);
        }
        if injection.delay > self.request_timeout {
            metrics::with_shard(|shard| shard.timeouts[1].add(1));
            if crate::telemetry::log_this_refusal() {
                tracing::warn!(timeout = ?self.request_timeout, "answer would outlast the request timeout (1% are logged)");
            }
            return Err(ApiError::HandlerTimeout);
        }
        let steps = self.observability.exporting();
        let started = steps.then(tokio::time::Instant::now);
        let request_format = wire::request_format(request.headers.content_type)?;
        let response_format = wire::response_format(request.headers.accept, request_format);
        let play: PlayRequest<'a> = wire::decode(request_format, request.body)?;
        let choice = Choice::parse(&play.choice).map_err(|_| ApiError::InvalidChoice {
            given: borrowed_or_placeholder(&play.choice),
        })?;
        let player = player_of(play.player_id.as_deref(), request.headers.player_id)?;
        if let Some(key) = request.headers.idempotency_key {
            if !idempotency::is_valid_key(key) {
                return Err(ApiError::InvalidIdempotencyKey);
            }
            // Validated above as visible ASCII.
            let key = String::from_utf8_lossy(key);
            let scope = match player {
                Some(player) => format!("p:{player}:{key}"),
                None => format!(
                    "c:{}:{key}",
                    self.client_addresses.key(
                        self.client_addresses
                            .resolve(request.peer, request.headers.forwarded_for)
                    )
                ),
            };
            return Ok(Dispatched::Later(Job::IdempotentPlay(IdempotentPlay {
                key: scope,
                fingerprint: idempotency::fingerprint(request.body),
                player: player.and_then(|player| PlayerId::from(player).ok()),
                choice,
                format: response_format,
            })));
        }
        let decoded = steps.then(tokio::time::Instant::now);
        let player = player.and_then(|player| PlayerId::from(player).ok());
        let record = play::play_round(&self.store, choice, player, response_format, body)?;
        let judged = steps.then(tokio::time::Instant::now);
        if let Some(record) = record {
            self.store.record(record);
        }
        if let (Some(started), Some(decoded), Some(judged)) = (started, decoded, judged) {
            let encoded = tokio::time::Instant::now();
            self.observability.step(trace, "decode", started, decoded);
            self.observability.step(trace, "judge", decoded, judged);
            self.observability.step(trace, "encode", judged, encoded);
        }
        let mut reply = Reply::new(StatusCode::OK, response_format.content_type());
        reply.delay = injection.delay;
        Ok(Dispatched::Now(reply))
    }

    /// Finishes a request that waits on the store, within the request timeout.
    pub async fn finish(&self, deferred: Deferred, body: &mut Vec<u8>) -> (Reply, Option<Permit>) {
        deferred::finish(&self.store, self.request_timeout, deferred, body).await
    }

    /// Whether `method` on `path` would be routed to a handler that reads a body. Engines use
    /// it to reject an oversized body before reading it, but only where a body matters.
    pub fn reads_body(method: &Method, path: &str) -> bool {
        *method == Method::POST && Route::recognize(path) == Some(Route::Play)
    }
}

/// The error echoes the client's choice only when it borrows from the request; a choice that
/// needed unescaping (and so lives in a temporary) is described instead of copied.
fn borrowed_or_placeholder<'a>(choice: &std::borrow::Cow<'a, str>) -> &'a str {
    match choice {
        std::borrow::Cow::Borrowed(text) => text,
        std::borrow::Cow::Owned(_) => "(escaped text)",
    }
}

/// What a route's handler decided without waiting.
// Boxing the large variant would put an allocation on every request; this lives on the stack
// for the length of one call.
#[allow(clippy::large_enum_variant)]
enum Dispatched {
    Now(Reply),
    Later(Job),
}

/// The player a play names: `player_id` in the body, `X-Player-Id`, or both when they agree.
fn player_of<'a>(
    in_body: Option<&'a str>,
    in_header: Option<&'a [u8]>,
) -> Result<Option<&'a str>, ApiError<'static>> {
    let header = in_header
        .map(|id| std::str::from_utf8(id).map_err(|_| ApiError::InvalidPlayerId))
        .transpose()?;
    let player = match (in_body, header) {
        (Some(body), Some(header)) if body != header => return Err(ApiError::InvalidPlayerId),
        (body, header) => body.or(header),
    };
    match player {
        Some(id) if !is_valid_player_id(id.as_bytes()) => Err(ApiError::InvalidPlayerId),
        player => Ok(player),
    }
}

/// A player id is 1 to 64 of `[A-Za-z0-9_.-]`.
pub fn is_valid_player_id(id: &[u8]) -> bool {
    (1..=64).contains(&id.len())
        && id
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `{"status": ...}`, with the store's state for `/readyz`. The store is optional for serving
/// (`/play` never waits on it), so its state is reported, never a reason to answer 503.
fn status_document(body: &mut Vec<u8>, status: &'static str, store: Option<&Store>) -> Reply {
    #[derive(serde::Serialize)]
    struct StoreState {
        backend: &'static str,
        circuit: &'static str,
        /// While the circuit is open: how long until a trial call may go.
        circuit_retry_after_ms: u64,
        /// A half-open trial call is running.
        circuit_trial_in_flight: bool,
        /// Times the circuit opened since start-up: a count that keeps rising shows a store
        /// that keeps failing even when a probe happens to find the circuit closed.
        circuit_times_opened: u64,
        queued: usize,
    }
    #[derive(serde::Serialize)]
    struct Status {
        status: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        store: Option<StoreState>,
    }
    let store = store.map(|store| {
        let circuit = store.circuit();
        StoreState {
            backend: store.kind(),
            circuit: circuit.state.name(),
            circuit_retry_after_ms: u64::try_from(circuit.retry_after.as_millis())
                .unwrap_or(u64::MAX),
            circuit_trial_in_flight: circuit.trial_in_flight,
            circuit_times_opened: circuit.times_opened,
            queued: store.queued(),
        }
    });
    wire::encode(wire::Format::Json, &Status { status, store }, body);
    Reply::new(StatusCode::OK, wire::JSON)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn player_ids_are_checked() {
        assert!(is_valid_player_id(b"player-1.x_Y"));
        for bad in [&b""[..], b"has space", b"semi;colon", &[b'a'; 65]] {
            assert!(!is_valid_player_id(bad), "{bad:?}");
        }
    }
}

//! The admin listener: `/metrics` and `/debug/pprof/profile`, on a separate port that binds
//! loopback only unless told otherwise (`admin_public`). The public listener never serves
//! these.
//!
//! Served with hyper on the main thread's runtime: traffic here is a scrape every few seconds
//! and the odd profile, so ease beats speed, and a profile's seconds of waiting must not
//! occupy a serving worker.

mod profile;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio_util::sync::CancellationToken;

use crate::flags::{FlagChange, Level, RuntimeFlags};
use crate::http::{AdminError, ApiError, BodyError, EngineError, HttpError};
use crate::protection::faults::{FaultSpec, Faults};
use crate::telemetry::metrics::{self, Exposition, Format, Kind};
use crate::telemetry::process;

/// What the admin endpoints read.
pub struct AdminState {
    /// Accounts and sessions, for their gauges.
    pub accounts: Arc<crate::accounts::Accounts>,
    /// Real-time play, for its connections, queue and match figures.
    pub realtime: Arc<crate::realtime::Realtime>,
    /// Duplicates of the public listening sockets, for their accept-queue figures.
    pub public_listeners: Vec<std::net::TcpListener>,
    /// The runtime flags `/admin/flags` reads and changes.
    pub flags: Arc<RuntimeFlags>,
    /// The faults `/admin/faults` injects.
    pub faults: Arc<Faults>,
    /// The in-flight bound, for its gauges.
    pub concurrency: Arc<crate::protection::concurrency::ConcurrencyLimit>,
    /// The store, for its queue, writer and breaker figures.
    pub store: Arc<crate::store::Store>,
}

/// Binds the admin listener (the loopback rule is enforced by configuration validation).
pub fn bind(address: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(address)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves admin requests until `stop` is cancelled.
pub async fn serve(
    listener: std::net::TcpListener,
    state: Arc<AdminState>,
    stop: CancellationToken,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, "cannot serve the admin listener");
            return;
        }
    };
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::debug!(%error, "admin accept failed");
                    continue;
                }
            },
            () = stop.cancelled() => return,
        };
        let state = Arc::clone(&state);
        let service = service_fn(move |request| {
            let state = Arc::clone(&state);
            async move { Ok::<_, Infallible>(respond(state, request).await) }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(std::time::Duration::from_secs(10))
            .serve_connection(TokioIo::new(stream), service);
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = connection => {}
                () = stop.cancelled() => {}
            }
        });
    }
}

async fn respond(
    state: Arc<AdminState>,
    request: hyper::Request<Incoming>,
) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    let allowed = match path {
        "/metrics" | "/debug/pprof/profile" => "GET",
        "/admin/flags" => "GET, PUT",
        "/admin/faults" => "GET, POST, DELETE",
        _ => return problem(HttpError::NotFound),
    };
    if !allowed
        .split(", ")
        .any(|method| method == request.method().as_str())
    {
        return problem(HttpError::MethodNotAllowed { allow: allowed });
    }
    if path == "/admin/flags" {
        return flags(&state, request).await;
    }
    if path == "/admin/faults" {
        return faults(&state, request).await;
    }
    if path == "/metrics" {
        let accept = request
            .headers()
            .get(http::header::ACCEPT)
            .and_then(|value| value.to_str().ok());
        let format = Format::from_accept(accept);
        // Rendering walks every shard and reads /proc: on a blocking thread, so it never
        // delays the store's writer and lease, which share this runtime.
        let rendered = tokio::task::spawn_blocking(move || scrape(&state, format)).await;
        return match rendered {
            Ok(text) => answer(StatusCode::OK, format.content_type(), text.into_bytes()),
            Err(error) => problem(AdminError::ProfilerFailed(error.to_string())),
        };
    }
    match profile::take(request.uri().query()).await {
        Ok(profile) => answer(StatusCode::OK, profile.content_type, profile.body),
        Err(error) => problem(error),
    }
}

/// `GET /admin/flags` shows the flags; `PUT` with `{"level": "minimal"}` and/or single flags
/// (`{"access_log": false}`) changes them and shows the result.
async fn flags(state: &AdminState, request: hyper::Request<Incoming>) -> Response<Full<Bytes>> {
    use http_body_util::{BodyExt, Limited};
    if request.method() == Method::PUT {
        let body = match Limited::new(request.into_body(), 4096).collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => return problem(EngineError::PayloadTooLarge { limit: 4096 }),
        };
        match serde_json::from_slice::<FlagChange>(&body) {
            Ok(change) => {
                state.flags.apply(change);
            }
            Err(error) => return problem(HttpError::InvalidBody(BodyError::Json(error))),
        }
    }
    let current = state.flags.current();
    let document = serde_json::json!({ "level": Level::of(current), "flags": current });
    answer(
        StatusCode::OK,
        "application/json",
        document.to_string().into_bytes(),
    )
}

/// `POST /admin/faults` adds a fault (403 unless `fault_injection` is on), `DELETE` removes
/// all, `GET` lists the active ones.
async fn faults(state: &AdminState, request: hyper::Request<Incoming>) -> Response<Full<Bytes>> {
    use http_body_util::{BodyExt, Limited};
    let now = tokio::time::Instant::now();
    let method = request.method().clone();
    if method == Method::POST {
        if !state.faults.enabled() {
            return problem(AdminError::FaultInjectionDisabled);
        }
        let body = match Limited::new(request.into_body(), 4096).collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => return problem(EngineError::PayloadTooLarge { limit: 4096 }),
        };
        let spec = match serde_json::from_slice::<FaultSpec>(&body) {
            Ok(spec) => spec,
            Err(error) => return problem(HttpError::InvalidBody(BodyError::Json(error))),
        };
        if let Err(reason) = spec.validate() {
            return problem(HttpError::InvalidParameter {
                name: "fault",
                reason,
            });
        }
        let fault = state.faults.add(spec, now);
        let document = serde_json::json!({ "id": fault.id, "expires_in_ms": spec.duration_ms });
        return answer(
            StatusCode::CREATED,
            "application/json",
            document.to_string().into_bytes(),
        );
    }
    if method == Method::DELETE {
        state.faults.clear();
    }
    let active: Vec<serde_json::Value> = state
        .faults
        .active(now)
        .iter()
        .map(|fault| {
            serde_json::json!({
                "id": fault.id,
                "point": fault.spec.point,
                "latency_ms": fault.spec.latency_ms,
                "latency_jitter_ms": fault.spec.latency_jitter_ms,
                "error_rate": fault.spec.error_rate,
                "expires_in_ms": fault.expires_at.saturating_duration_since(now).as_millis() as u64,
            })
        })
        .collect();
    let document = serde_json::json!({ "enabled": state.faults.enabled(), "faults": active });
    answer(
        StatusCode::OK,
        "application/json",
        document.to_string().into_bytes(),
    )
}

/// Every metric family, in `format`.
pub fn scrape(state: &AdminState, format: Format) -> String {
    let mut exposition = Exposition::new(format);
    exposition.family(
        "guess_game_build",
        "The running build: version and git commit.",
        Kind::Info,
    );
    let labels = format!(
        "version=\"{}\",git_commit=\"{}\"",
        env!("CARGO_PKG_VERSION"),
        env!("GUESSGAME_BUILD_GIT_COMMIT")
    );
    exposition.sample("guess_game_build_info", &labels, 1.0);
    metrics::write_request_metrics(&mut exposition);
    exposition.family(
        "guess_game_concurrency_limit",
        "The bound on requests in flight (moves when adaptive).",
        Kind::Gauge,
    );
    exposition.sample(
        "guess_game_concurrency_limit",
        "",
        state.concurrency.limit() as f64,
    );
    exposition.family(
        "guess_game_concurrency_in_flight",
        "Requests holding a place under the in-flight bound.",
        Kind::Gauge,
    );
    exposition.sample(
        "guess_game_concurrency_in_flight",
        "",
        state.concurrency.in_flight() as f64,
    );
    state.store.write_metrics(&mut exposition);
    state.accounts.write_metrics(&mut exposition);
    state.realtime.write_metrics(&mut exposition);
    process::write_runtime_metrics(&mut exposition);
    process::write_process_metrics(&mut exposition);
    process::write_allocator_metrics(&mut exposition);
    process::write_kernel_metrics(&mut exposition, &state.public_listeners);
    exposition.finish()
}

fn problem<'a>(error: impl Into<ApiError<'a>>) -> Response<Full<Bytes>> {
    let error = error.into();
    let mut body = Vec::new();
    let reply = error.write_reply(&mut body);
    let mut response = answer(reply.status, reply.content_type, body);
    for &(name, value) in reply.headers() {
        if let Ok(value) = http::HeaderValue::from_str(&value.to_string()) {
            response
                .headers_mut()
                .insert(http::HeaderName::from_static(name), value);
        }
    }
    response
}

fn answer(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}

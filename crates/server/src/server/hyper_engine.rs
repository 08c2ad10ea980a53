//! Serving one connection with hyper's HTTP/1.1 implementation.
//!
//! hyper parses and frames; this file adapts its request into the engine-neutral
//! [`crate::http::Request`], enforces the body limit, and turns the [`Reply`] back into a hyper
//! response.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName};
use http::{Method, Response};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpStream;

use crate::net::Stream;

use super::ConnectionSettings;
use super::limits::ConnectionPermit;
use crate::http::{
    ApiError, App, BodyError, EngineError, Handled, Headers, HttpError, Reply, Request,
};

/// Spawns the task serving `stream` on the current runtime, watched by `graceful` so a
/// shutdown lets its request in flight finish.
pub(super) fn spawn_connection(
    stream: TcpStream,
    app: &Arc<App>,
    settings: &ConnectionSettings,
    graceful: &GracefulShutdown,
    permit: ConnectionPermit,
) {
    let app = Arc::clone(app);
    let peer = stream
        .peer_addr()
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |address| address.ip());
    let service = service_fn(move |request| {
        let app = Arc::clone(&app);
        async move { Ok::<_, Infallible>(respond(&app, request, peer).await) }
    });
    let builder = {
        let mut builder = http1::Builder::new();
        // hyper ignores the header-read timeout unless a timer is installed (hyper#3395).
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(settings.header_read_timeout);
        builder
    };
    let Some(tls) = settings.tls.clone() else {
        let connection =
            graceful.watch(builder.serve_connection(TokioIo::new(Stream::Plain(stream)), service));
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
        return;
    };
    // Over TLS the handshake comes first; the graceful shutdown watches the connection from
    // then on (a handshake in progress at shutdown is simply cut by the runtime's end).
    let watcher = graceful.watcher();
    let header_read_timeout = settings.header_read_timeout;
    tokio::spawn(async move {
        let _permit = permit;
        let Some(stream) = super::handshake(&tls, stream, header_read_timeout).await else {
            return;
        };
        let connection = watcher.watch(builder.serve_connection(TokioIo::new(stream), service));
        if let Err(error) = connection.await {
            tracing::debug!(%error, "connection ended with an error");
        }
    });
}

async fn respond(
    app: &App,
    request: hyper::Request<Incoming>,
    peer: std::net::IpAddr,
) -> Response<Full<Bytes>> {
    let (parts, incoming) = request.into_parts();
    let mut out = Vec::with_capacity(256);
    let head_only = parts.method == Method::HEAD;
    let body = if App::reads_body(&parts.method, parts.uri.path()) {
        match read_body(&parts.headers, incoming, app.max_body_bytes()).await {
            Ok(body) => body,
            Err(error) => return into_response(error.write_reply(&mut out), out, head_only),
        }
    } else {
        Bytes::new()
    };
    let mut headers = Headers::default();
    for (name, value) in &parts.headers {
        headers.record(name.as_str().as_bytes(), value.as_bytes());
    }
    let request = Request {
        method: &parts.method,
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers,
        peer,
        body: &body,
        arrived: tokio::time::Instant::now(),
    };
    let arrived = request.arrived;
    let (reply, completed) = match app.handle_admitted(&request, &mut out) {
        Handled::Ready(reply, permit) => {
            let completed = App::completed(&parts.method, &reply, body.len(), out.len(), permit);
            (reply, completed)
        }
        Handled::Deferred(deferred) => app.finish(deferred, &mut out).await,
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    app.request_finished(completed, arrived, tokio::time::Instant::now());
    tracing::debug!(method = %parts.method, path = parts.uri.path(), status = reply.status.as_u16(), "request");
    into_response(reply, out, head_only)
}

/// Reads the whole body, refusing early (from `Content-Length`) or midway (when chunked) once
/// it exceeds `limit`.
async fn read_body(
    headers: &http::HeaderMap,
    incoming: Incoming,
    limit: usize,
) -> Result<Bytes, ApiError<'static>> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(EngineError::PayloadTooLarge { limit }.into());
    }
    match Limited::new(incoming, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => {
            Err(EngineError::PayloadTooLarge { limit }.into())
        }
        Err(_) => Err(HttpError::InvalidBody(BodyError::Truncated).into()),
    }
}

fn into_response(reply: Reply, body: Vec<u8>, head_only: bool) -> Response<Full<Bytes>> {
    let length = body.len();
    let body = if head_only {
        Bytes::new()
    } else {
        Bytes::from(body)
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = reply.status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static(reply.content_type),
    );
    if head_only {
        headers.insert(CONTENT_LENGTH, http::HeaderValue::from(length));
    }
    if let Some(trace) = &reply.trace
        && let Ok(value) = http::HeaderValue::from_str(&trace.to_string())
    {
        headers.insert(HeaderName::from_static("traceparent"), value);
    }
    if let Some(request_id) = &reply.request_id
        && let Ok(value) = http::HeaderValue::from_bytes(request_id.as_bytes())
    {
        headers.insert(HeaderName::from_static("x-request-id"), value);
    }
    for &(name, value) in reply.headers() {
        let value = match value {
            crate::http::HeaderValue::Static(text) => http::HeaderValue::from_static(text),
            crate::http::HeaderValue::Number(number) => http::HeaderValue::from(number),
            other => match http::HeaderValue::from_str(&other.to_string()) {
                Ok(value) => value,
                Err(_) => continue,
            },
        };
        // Reply header names are lowercase `'static` literals of this crate.
        headers.insert(HeaderName::from_static(name), value);
    }
    response
}

//! Span export: our bounded queue and batches on a thread of its own, the OpenTelemetry
//! crates' OTLP/HTTP exporter (protobuf, gzip, retry with backoff, https with verification)
//! on the wire.
//!
//! The request path is unchanged by the exporter: requests queue a small, `Copy`-sized
//! [`SpanRecord`] into a bounded channel with `try_send`, and when the queue is full the span is
//! dropped and counted (`guess_game_spans_dropped_total`), so a slow or absent collector never
//! slows a request. No SDK tracer or span runs on the request path. The exporter thread wakes
//! every 200 ms, drains the queue, turns records into the SDK's `SpanData` and hands batches of
//! up to 512 to `opentelemetry_otlp::SpanExporter`, which posts them to `<endpoint>/v1/traces`.
//! It polls rather than blocking on the channel so that queueing a span never has to wake a
//! thread (no system call per span).
//!
//! Batching stays ours rather than the SDK's `BatchSpanProcessor`: that processor has its own
//! queue and thread and takes spans one `on_end` call at a time, so feeding it from here would
//! put a second queue and a second thread behind the first for nothing; ours already bounds,
//! drops, counts and flushes at shutdown. What the SDK exporter brings is the wire: encoding,
//! gzip, retries of retryable failures (the recommended policy: up to 3, backoff from 100 ms,
//! within the 10 s export timeout) and `OTEL_EXPORTER_OTLP_HEADERS` for collectors that want a
//! token.
//!
//! An `https://` collector is verified against the system's roots, plus the PEM file named by
//! `OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE` or else `OTEL_EXPORTER_OTLP_CERTIFICATE` (the
//! OpenTelemetry variables) for a private CA. The HTTP client is the client crate's reqwest
//! client (rustls with ring), the same as the CLI's. This file is the queue and the thread;
//! [`otlp`] is the wire.

mod otlp;

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use self::otlp::Otlp;

use super::completed::Completed;
use super::metrics;
use super::trace::TraceContext;
use crate::client::{ClientError, ServerUrl, Trust};

const QUEUE_SPANS: usize = 4096;
const BATCH_SPANS: usize = 512;
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// One batch's export, retries included; also what the flush at shutdown may take in all, so a
/// hung collector delays a shutdown by twice this at most (a batch already on its way, then the
/// flush).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// The private CA of an https collector: the signal's variable first, then the general one.
const CERTIFICATE_VARIABLES: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_CERTIFICATE",
];

/// Why span export could not start.
#[derive(Debug, thiserror::Error)]
pub enum ExportSetupError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(String),
    #[error("cannot start the exporter thread: {0}")]
    Thread(std::io::Error),
}

/// A finished span, as much as the exporter needs.
#[derive(Clone, Debug)]
pub struct SpanRecord {
    trace_id: u128,
    span_id: u64,
    parent_span_id: Option<u64>,
    name: &'static str,
    server: bool,
    start: Duration,
    end: Duration,
    attributes: [(&'static str, AttributeValue); 3],
    error: bool,
}

#[derive(Clone, Copy, Debug)]
enum AttributeValue {
    Text(&'static str),
    Number(i64),
    None,
}

impl SpanRecord {
    /// The server span of a whole request.
    pub fn request(completed: &Completed, start: Duration, end: Duration) -> SpanRecord {
        SpanRecord {
            trace_id: completed.trace.trace_id,
            span_id: completed.trace.span_id,
            parent_span_id: completed.trace.parent_span_id,
            name: completed.route,
            server: true,
            start,
            end,
            attributes: [
                (
                    "http.request.method",
                    AttributeValue::Text(completed.method),
                ),
                ("http.route", AttributeValue::Text(completed.route)),
                (
                    "http.response.status_code",
                    AttributeValue::Number(i64::from(completed.status)),
                ),
            ],
            error: completed.status >= 500,
        }
    }

    /// An inner step of a request, child of its server span.
    pub fn step(
        trace: &TraceContext,
        name: &'static str,
        start: Duration,
        end: Duration,
    ) -> SpanRecord {
        SpanRecord {
            trace_id: trace.trace_id,
            span_id: fastrand::u64(1..),
            parent_span_id: Some(trace.span_id),
            name,
            server: false,
            start,
            end,
            attributes: [("", AttributeValue::None); 3],
            error: false,
        }
    }

    /// The SDK's form of the span. Only sampled requests queue spans, so every one is sampled;
    /// a server span's parent is the caller's (remote), a step's is the server span (local).
    fn into_span_data(self, scope: &InstrumentationScope) -> SpanData {
        let attributes = self
            .attributes
            .iter()
            .filter_map(|&(key, value)| match value {
                AttributeValue::Text(text) => Some(KeyValue::new(key, text)),
                AttributeValue::Number(number) => Some(KeyValue::new(key, number)),
                AttributeValue::None => None,
            })
            .collect();
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(self.trace_id),
                SpanId::from(self.span_id),
                TraceFlags::SAMPLED,
                false,
                TraceState::NONE,
            ),
            parent_span_id: self.parent_span_id.map_or(SpanId::INVALID, SpanId::from),
            parent_span_is_remote: self.server && self.parent_span_id.is_some(),
            span_kind: if self.server {
                SpanKind::Server
            } else {
                SpanKind::Internal
            },
            name: Cow::Borrowed(self.name),
            start_time: unix_time(self.start),
            end_time: unix_time(self.end),
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: if self.error {
                Status::error("")
            } else {
                Status::Unset
            },
            instrumentation_scope: scope.clone(),
        }
    }
}

fn unix_time(since_epoch: Duration) -> SystemTime {
    UNIX_EPOCH + since_epoch
}

pub struct SpanExporter {
    sender: Mutex<Option<SyncSender<SpanRecord>>>,
    /// Set by [`SpanExporter::shutdown`]: the thread stops taking batches at its own pace and
    /// flushes what is left under one deadline.
    stopping: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl SpanExporter {
    /// Starts exporting to `endpoint` (a base URL such as `http://127.0.0.1:4318`), an https
    /// collector verified against the system's roots and the CA file the OpenTelemetry
    /// variables name, if any.
    pub fn start(endpoint: &str) -> Result<SpanExporter, ExportSetupError> {
        let ca_file = CERTIFICATE_VARIABLES
            .iter()
            .find_map(|name| std::env::var_os(name).filter(|value| !value.is_empty()))
            .map(PathBuf::from);
        let trust = Trust::from_ca_file(ca_file.as_deref())?;
        SpanExporter::start_trusting(endpoint, trust)
    }

    /// Starts exporting to `endpoint`, an https collector verified against `trust`.
    pub fn start_trusting(endpoint: &str, trust: Trust) -> Result<SpanExporter, ExportSetupError> {
        let url = ServerUrl::parse(endpoint)?;
        let otlp = Otlp::new(&url, &trust, EXPORT_TIMEOUT)?;
        let (sender, receiver) = sync_channel(QUEUE_SPANS);
        let stopping = Arc::new(AtomicBool::new(false));
        let stop = stopping.clone();
        let thread = std::thread::Builder::new()
            .name("guess-game-otlp".into())
            .spawn(move || export_loop(&otlp, &receiver, &stop))
            .map_err(ExportSetupError::Thread)?;
        Ok(SpanExporter {
            sender: Mutex::new(Some(sender)),
            stopping,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues a span, or drops and counts it when the queue is full.
    pub fn queue(&self, record: SpanRecord) {
        let sender = self.sender.lock().unwrap_or_else(PoisonError::into_inner);
        let queued = match sender.as_ref() {
            Some(sender) => sender.try_send(record).is_ok(),
            None => false,
        };
        drop(sender);
        metrics::with_shard(|shard| {
            if queued {
                shard.spans_queued.add(1);
            } else {
                shard.spans_dropped.add(1);
            }
        });
    }

    /// Exports what is queued (after a batch already on its way, within [`EXPORT_TIMEOUT`] in
    /// all) and stops.
    pub fn shutdown(&self) {
        self.stopping.store(true, Ordering::Release);
        self.sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = thread.join();
        }
    }
}

/// What taking records off the queue ended with.
enum Taken {
    /// A whole batch: more may be waiting.
    Batch,
    /// The queue is empty for now.
    Empty,
    /// The exporter was dropped or shut down, and everything queued has been taken.
    Closed,
}

fn take_batch(
    receiver: &Receiver<SpanRecord>,
    batch: &mut Vec<SpanData>,
    scope: &InstrumentationScope,
) -> Taken {
    while batch.len() < BATCH_SPANS {
        match receiver.try_recv() {
            Ok(record) => batch.push(record.into_span_data(scope)),
            Err(TryRecvError::Empty) => return Taken::Empty,
            Err(TryRecvError::Disconnected) => return Taken::Closed,
        }
    }
    Taken::Batch
}

fn export_loop(otlp: &Otlp, receiver: &Receiver<SpanRecord>, stopping: &AtomicBool) {
    // reqwest needs a runtime; a current-thread one on this thread keeps the exporter's
    // connections and retries off the workers and the main runtime.
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        tracing::error!("cannot start the OTLP exporter's runtime; spans will be dropped");
        return;
    };
    let scope = InstrumentationScope::builder("guess-game")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build();
    let mut batch = Vec::with_capacity(BATCH_SPANS);
    while !stopping.load(Ordering::Acquire) {
        let taken = take_batch(receiver, &mut batch, &scope);
        if !batch.is_empty() {
            runtime.block_on(otlp.export(&mut batch));
        }
        match taken {
            Taken::Batch => {}
            Taken::Empty => std::thread::sleep(POLL_INTERVAL),
            Taken::Closed => break,
        }
    }
    runtime.block_on(flush(otlp, receiver, batch, &scope));
    otlp.shutdown();
}

/// The last batches at shutdown, within [`EXPORT_TIMEOUT`] in all (each batch's own timeout
/// would let a hung collector hold the shutdown for one timeout per batch).
async fn flush(
    otlp: &Otlp,
    receiver: &Receiver<SpanRecord>,
    mut batch: Vec<SpanData>,
    scope: &InstrumentationScope,
) {
    let all = async {
        loop {
            let taken = take_batch(receiver, &mut batch, scope);
            if !batch.is_empty() {
                otlp.export(&mut batch).await;
            }
            if !matches!(taken, Taken::Batch) {
                return;
            }
        }
    };
    if tokio::time::timeout(EXPORT_TIMEOUT, all).await.is_err() {
        tracing::warn!("the OTLP collector was too slow at shutdown; the spans left were dropped");
    }
}

#[cfg(test)]
mod tests;

//! Span export over OTLP/HTTP (protobuf), batched on a thread of its own.
//!
//! Requests queue finished spans into a bounded channel with `try_send`: when the queue is full
//! the span is dropped and counted (`guess_game_spans_dropped_total`), so a slow or absent
//! collector never slows a request. The exporter wakes every 200 ms, drains the queue, and
//! POSTs batches of up to 512 spans to `<endpoint>/v1/traces`. It polls rather than blocking on
//! the channel so that queueing a span never has to wake a thread (no system call per span).

use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span, status,
};
use prost::Message;

use super::completed::{Completed, unix_nanos};
use super::metrics;
use super::trace::TraceContext;
use crate::client::{ClientError, ServerUrl};

const QUEUE_SPANS: usize = 4096;
const BATCH_SPANS: usize = 512;
const POLL_INTERVAL: Duration = Duration::from_millis(200);
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

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

    fn into_proto(self) -> Span {
        let attributes = self
            .attributes
            .iter()
            .filter_map(|&(key, value)| {
                let value = match value {
                    AttributeValue::Text(text) => any_value::Value::StringValue(text.to_owned()),
                    AttributeValue::Number(number) => any_value::Value::IntValue(number),
                    AttributeValue::None => return None,
                };
                Some(KeyValue {
                    key: key.to_owned(),
                    value: Some(AnyValue { value: Some(value) }),
                    ..KeyValue::default()
                })
            })
            .collect();
        Span {
            trace_id: self.trace_id.to_be_bytes().to_vec(),
            span_id: self.span_id.to_be_bytes().to_vec(),
            parent_span_id: self
                .parent_span_id
                .map(|id| id.to_be_bytes().to_vec())
                .unwrap_or_default(),
            name: self.name.to_owned(),
            kind: if self.server {
                span::SpanKind::Server
            } else {
                span::SpanKind::Internal
            } as i32,
            start_time_unix_nano: unix_nanos(self.start),
            end_time_unix_nano: unix_nanos(self.end),
            attributes,
            status: Some(Status {
                code: if self.error {
                    status::StatusCode::Error
                } else {
                    status::StatusCode::Unset
                } as i32,
                ..Status::default()
            }),
            ..Span::default()
        }
    }
}

pub struct SpanExporter {
    sender: Mutex<Option<SyncSender<SpanRecord>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl SpanExporter {
    /// Starts exporting to `endpoint` (a base URL such as `http://127.0.0.1:4318`).
    pub fn start(endpoint: &str) -> Result<SpanExporter, ClientError> {
        let url = ServerUrl::parse(endpoint)?;
        let (sender, receiver) = sync_channel(QUEUE_SPANS);
        let thread = std::thread::Builder::new()
            .name("guess-game-otlp".into())
            .spawn(move || export_loop(&url, &receiver))
            .map_err(|source| ClientError::Connect {
                authority: endpoint.to_owned(),
                source,
            })?;
        Ok(SpanExporter {
            sender: Mutex::new(Some(sender)),
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

    /// Exports what is queued and stops.
    pub fn shutdown(&self) {
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

fn export_loop(url: &ServerUrl, receiver: &Receiver<SpanRecord>) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        tracing::error!("cannot start the OTLP exporter's runtime; spans will be dropped");
        return;
    };
    let mut batch = Vec::with_capacity(BATCH_SPANS);
    loop {
        let disconnected = loop {
            match receiver.try_recv() {
                Ok(record) => {
                    batch.push(record);
                    if batch.len() == BATCH_SPANS {
                        runtime.block_on(export(url, &mut batch));
                    }
                }
                Err(TryRecvError::Empty) => break false,
                Err(TryRecvError::Disconnected) => break true,
            }
        };
        if !batch.is_empty() {
            runtime.block_on(export(url, &mut batch));
        }
        if disconnected {
            return;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

async fn export(url: &ServerUrl, batch: &mut Vec<SpanRecord>) {
    let spans: Vec<Span> = batch.drain(..).map(SpanRecord::into_proto).collect();
    let count = spans.len();
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".to_owned(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("guess-game".to_owned())),
                    }),
                    ..KeyValue::default()
                }],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "guess-game".to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..InstrumentationScope::default()
                }),
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    };
    let body = request.encode_to_vec().into();
    let headers = [("content-type", "application/x-protobuf")];
    match url
        .send(
            http::Method::POST,
            "/v1/traces",
            &headers,
            body,
            EXPORT_TIMEOUT,
        )
        .await
    {
        Ok(answer) if answer.status.is_success() => {
            tracing::debug!(spans = count, "spans exported")
        }
        Ok(answer) => tracing::warn!(
            spans = count,
            status = answer.status.as_u16(),
            "the OTLP collector refused spans"
        ),
        Err(error) => tracing::warn!(spans = count, %error, "cannot export spans"),
    }
}

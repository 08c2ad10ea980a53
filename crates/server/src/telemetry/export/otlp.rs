//! The wire side of span export: `opentelemetry-otlp`'s HTTP exporter (protobuf, gzip, retry
//! with backoff) posting to `<endpoint>/v1/traces` through the client crate's reqwest client,
//! and why a batch could not be sent.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Compression, Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};

use super::ExportSetupError;
use crate::client::{ServerUrl, Trust};

/// The OTLP exporter, and the cause of its last failed request.
pub(super) struct Otlp {
    exporter: opentelemetry_otlp::SpanExporter,
    last_failure: Arc<Mutex<Option<String>>>,
}

impl Otlp {
    /// An exporter to `url`, verifying an https collector against `trust`; each batch's export,
    /// retries included, within `timeout`.
    pub(super) fn new(
        url: &ServerUrl,
        trust: &Trust,
        timeout: Duration,
    ) -> Result<Otlp, ExportSetupError> {
        // Idle connections are kept: under load a batch leaves every 200 ms, and a TLS
        // handshake per batch would be most of the work.
        let http_client = trust.http_client(timeout, true)?;
        let last_failure = Arc::new(Mutex::new(None));
        let client = DiagnosedClient {
            inner: Box::new(http_client),
            last_failure: last_failure.clone(),
        };
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_endpoint(url.url("/v1/traces"))
            .with_protocol(Protocol::HttpBinary)
            .with_compression(Compression::Gzip)
            .with_timeout(timeout)
            .build()
            .map_err(|error| ExportSetupError::Exporter(error.to_string()))?;
        exporter.set_resource(
            &Resource::builder_empty()
                .with_service_name("guess-game")
                .build(),
        );
        Ok(Otlp {
            exporter,
            last_failure,
        })
    }

    /// Sends `batch` (leaving it empty) and logs the outcome.
    pub(super) async fn export(&self, batch: &mut Vec<SpanData>) {
        let count = batch.len();
        match self.send(std::mem::take(batch)).await {
            Ok(()) => tracing::debug!(spans = count, "spans exported"),
            Err(error) => tracing::warn!(spans = count, error, "cannot export spans"),
        }
    }

    /// Sends `batch`; a failure says what the exporter saw and, for a request that got no
    /// answer, why ("... network error: invalid peer certificate: UnknownIssuer").
    pub(super) async fn send(&self, batch: Vec<SpanData>) -> Result<(), String> {
        let sent = self.exporter.export(batch).await;
        let cause = self
            .last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match (sent, cause) {
            (Ok(()), _) => Ok(()),
            (Err(error), Some(cause)) => Err(format!("{error}: {cause}")),
            (Err(error), None) => Err(error.to_string()),
        }
    }

    pub(super) fn shutdown(&self) {
        let _ = self.exporter.shutdown();
    }
}

/// The reqwest client, remembering why a request failed: the OTLP exporter reduces a failed
/// send to "network error", and reqwest's own message names the URL rather than the cause, so
/// a refused certificate or connection would otherwise be logged as nothing more.
#[derive(Debug)]
struct DiagnosedClient {
    inner: Box<dyn HttpClient>,
    last_failure: Arc<Mutex<Option<String>>>,
}

#[async_trait::async_trait]
impl HttpClient for DiagnosedClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let sent = self.inner.send_bytes(request).await;
        if let Err(error) = &sent {
            *self
                .last_failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner) =
                Some(crate::client::cause(error.as_ref()));
        }
        sent
    }
}

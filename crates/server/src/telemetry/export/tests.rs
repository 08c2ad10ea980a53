//! The exporter against a fake OTLP collector over TLS, whose certificate a private CA made
//! for the test issued: spans arrive gzip-compressed protobuf when the CA is trusted; when it is
//! not, nothing arrives and the failure names the certificate.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;

use super::*;

/// What the collector was sent: each request's `content-encoding` and decoded body.
type Received = Arc<Mutex<Vec<(Option<String>, ExportTraceServiceRequest)>>>;

struct Collector {
    port: u16,
    ca_file: PathBuf,
    received: Received,
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ca_file);
    }
}

/// An OTLP/HTTP collector on TLS with a certificate for `localhost`, issued by a CA written to
/// a PEM file.
async fn tls_collector(name: &str) -> Collector {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let certificate = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let ca_file =
        std::env::temp_dir().join(format!("otlp-collector-{name}-{}.pem", std::process::id()));
    std::fs::write(&ca_file, ca.pem()).unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(certificate.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Received::default();
    let store = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let store = store.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    move |request: http::Request<hyper::body::Incoming>| {
                        let store = store.clone();
                        async move {
                            let encoding = request
                                .headers()
                                .get("content-encoding")
                                .and_then(|value| value.to_str().ok())
                                .map(str::to_owned);
                            let body = request.into_body().collect().await?.to_bytes();
                            let body = match encoding.as_deref() {
                                Some("gzip") => {
                                    let mut decoded = Vec::new();
                                    std::io::Read::read_to_end(
                                        &mut flate2::read::GzDecoder::new(&body[..]),
                                        &mut decoded,
                                    )
                                    .unwrap();
                                    Bytes::from(decoded)
                                }
                                _ => body,
                            };
                            let decoded = ExportTraceServiceRequest::decode(body).unwrap();
                            store.lock().unwrap().push((encoding, decoded));
                            Ok::<_, hyper::Error>(http::Response::new(Full::new(Bytes::new())))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Collector {
        port,
        ca_file,
        received,
    }
}

fn a_step(name: &'static str) -> SpanRecord {
    let trace = TraceContext {
        trace_id: 0x4bf92f3577b34da6a3ce929d0e0e4736,
        span_id: 0x00f067aa0ba902b7,
        parent_span_id: None,
        flags: 1,
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    SpanRecord::step(&trace, name, now, now + Duration::from_micros(5))
}

/// Shuts the exporter down off the runtime: it joins its thread, which talks to the collector
/// on this runtime.
async fn shut_down(exporter: SpanExporter) {
    tokio::task::spawn_blocking(move || exporter.shutdown())
        .await
        .unwrap();
}

#[tokio::test]
async fn spans_reach_an_https_collector_gzipped_when_its_ca_is_trusted() {
    let collector = tls_collector("trusted").await;
    let trust = Trust::with_ca_file(&collector.ca_file).unwrap();
    let exporter =
        SpanExporter::start_trusting(&format!("https://localhost:{}", collector.port), trust)
            .unwrap();
    exporter.queue(a_step("judge"));
    exporter.queue(a_step("encode"));
    shut_down(exporter).await;

    let received = collector.received.lock().unwrap();
    assert!(!received.is_empty(), "nothing reached the collector");
    let mut names = Vec::new();
    for (encoding, request) in received.iter() {
        assert_eq!(encoding.as_deref(), Some("gzip"));
        for resource in &request.resource_spans {
            let service = &resource.resource.as_ref().unwrap().attributes[0];
            assert_eq!(service.key, "service.name");
            for scope in &resource.scope_spans {
                assert_eq!(scope.scope.as_ref().unwrap().name, "guess-game");
                for span in &scope.spans {
                    assert_eq!(span.parent_span_id, 0x00f067aa0ba902b7u64.to_be_bytes());
                    names.push(span.name.clone());
                }
            }
        }
    }
    names.sort();
    assert_eq!(names, ["encode", "judge"]);
}

#[tokio::test]
async fn a_refused_certificate_is_named_in_the_export_error() {
    let collector = tls_collector("named").await;
    let url = ServerUrl::parse(&format!("https://localhost:{}", collector.port)).unwrap();
    let otlp = Otlp::new(&url, &Trust::system(), Duration::from_secs(2)).unwrap();
    let scope = InstrumentationScope::builder("guess-game").build();
    let error = otlp
        .send(vec![a_step("judge").into_span_data(&scope)])
        .await
        .unwrap_err();
    assert!(error.contains("invalid peer certificate"), "{error}");
    assert!(collector.received.lock().unwrap().is_empty());
}

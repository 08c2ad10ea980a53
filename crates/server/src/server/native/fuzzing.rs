//! Checks the fuzz targets run (`fuzz/`), and the ordinary tests replay over the committed
//! corpora (`tests/fuzz_corpus.rs`), so CI guards what fuzzing found without fuzzing.
//!
//! The differential check feeds the same bytes to the native engine's framing and to hyper's
//! HTTP/1.1 server and requires that the native engine serve a prefix of what hyper serves:
//! the same requests (method, path, body) in the same order, stopping no later than hyper. The
//! native engine may stop earlier, since it is stricter on purpose (it requires `Host`, refuses
//! control characters in chunk extensions, caps heads at 8 KiB and bodies at `MAX_BODY`); it
//! may never serve a request hyper does not, nor read a body differently, which is what
//! request smuggling between two HTTP implementations looks like.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::chunked::Decoder;
use super::parse::{self, Framing};
use crate::http::wire::{self, Format, PlayRequest};

/// The body limit the native side applies (the server's default `max_body_bytes`).
const MAX_BODY: usize = 4096;

/// One request as an engine framed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Framed {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
}

/// The requests the native engine would serve from `bytes`, in order, up to the first one it
/// rejects or cannot complete.
pub fn native_requests(bytes: &[u8]) -> Vec<Framed> {
    let mut served = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let Ok(Some(head)) = parse::parse_head(&bytes[at..]) else {
            break;
        };
        let after_head = &bytes[at + head.length..];
        let (body, body_length) = match head.framing {
            Framing::Length(length) if length > MAX_BODY as u64 => break,
            Framing::Length(length) if after_head.len() < length as usize => break,
            Framing::Length(length) => (after_head[..length as usize].to_vec(), length as usize),
            Framing::Chunked => {
                let mut decoded = Vec::new();
                match Decoder::default().decode(after_head, MAX_BODY, &mut decoded) {
                    Ok(Some(raw)) => (decoded, raw),
                    Ok(None) | Err(_) => break,
                }
            }
        };
        served.push(Framed {
            method: head.method.to_string(),
            path: head.path.to_owned(),
            body,
        });
        at += head.length + body_length;
        if !head.keep_alive {
            break;
        }
    }
    served
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|error| panic!("a runtime for the fuzz checks: {error}"))
    })
}

/// The requests hyper's HTTP/1.1 server hands to its service from `bytes` (sent, then the
/// client's end of the stream closed), each counted once its whole body was read.
pub fn hyper_requests(bytes: &[u8]) -> Vec<Framed> {
    let served = Arc::new(Mutex::new(Vec::new()));
    let recorder = Arc::clone(&served);
    let input = bytes.to_vec();
    runtime().block_on(async move {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let service =
            hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let recorder = Arc::clone(&recorder);
                async move {
                    let method = request.method().to_string();
                    let path = request.uri().path().to_owned();
                    if let Ok(body) = request.into_body().collect().await {
                        recorder
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(Framed {
                                method,
                                path,
                                body: body.to_bytes().to_vec(),
                            });
                    }
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::new())))
                }
            });
        // Half-close: the client's end of input must not make hyper drop requests it has
        // already read (pipelined ones), as it does by default.
        let connection = hyper::server::conn::http1::Builder::new()
            .half_close(true)
            .serve_connection(TokioIo::new(server), service);
        let (mut reader, mut writer) = tokio::io::split(client);
        let send = async move {
            let _ = writer.write_all(&input).await;
            let _ = writer.shutdown().await;
        };
        let drain = async move {
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink).await;
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            tokio::join!(connection, send, drain)
        })
        .await;
    });
    let served = served.lock().unwrap_or_else(PoisonError::into_inner);
    served.clone()
}

/// Panics when the native engine frames `bytes` in a way hyper does not: a request hyper did
/// not serve, or a different method, path or body.
pub fn differential_http1(bytes: &[u8]) {
    let native = native_requests(bytes);
    if native.is_empty() {
        return;
    }
    let hyper = hyper_requests(bytes);
    assert!(
        native.len() <= hyper.len() && native[..] == hyper[..native.len()],
        "the engines frame {:?} differently:\nnative {native:#?}\nhyper {hyper:#?}",
        String::from_utf8_lossy(bytes)
    );
}

/// Decodes `bytes` as a `/play` body in JSON; must never panic.
pub fn decode_play_json(bytes: &[u8]) {
    let _ = wire::decode::<PlayRequest<'_>>(Format::Json, bytes);
}

/// Decodes `bytes` as a `/play` body in MessagePack; must never panic.
pub fn decode_play_msgpack(bytes: &[u8]) {
    let _ = wire::decode::<PlayRequest<'_>>(Format::MsgPack, bytes);
}

//! The client over TLS against a tiny tokio-rustls server whose certificate is issued by a
//! private CA made for the test: trusted through the CA file it is reached; without it, or
//! under another name than the certificate's, it is refused before any request is sent.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use client::{ClientError, ServerUrl, Trust};
use http::{Method, StatusCode};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const TIMEOUT: Duration = Duration::from_secs(5);

/// A server speaking TLS with a certificate for `localhost` only, and in a PEM file what a
/// client must trust to reach it.
struct TlsServer {
    address: SocketAddr,
    ca_file: PathBuf,
    /// Requests that got past the handshake.
    requests: Arc<AtomicUsize>,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ca_file);
    }
}

/// Who signed the server's certificate.
#[derive(Clone, Copy, PartialEq)]
enum Signer {
    /// A CA made for the test: the CA file holds the CA's certificate.
    PrivateCa,
    /// The certificate itself: the CA file holds the server's own certificate.
    Itself,
}

async fn tls_server(name: &str, signer: Signer) -> TlsServer {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "guess-game test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();

    let server_key = KeyPair::generate().unwrap();
    let server_params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let (server_certificate, trusted_pem) = match signer {
        Signer::PrivateCa => (server_params.signed_by(&server_key, &ca).unwrap(), ca.pem()),
        Signer::Itself => {
            let certificate = server_params.self_signed(&server_key).unwrap();
            let pem = certificate.pem();
            (certificate, pem)
        }
    };

    let ca_file =
        std::env::temp_dir().join(format!("client-https-{name}-{}.pem", std::process::id()));
    std::fs::write(&ca_file, trusted_pem).unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(server_certificate.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let counted = counted.clone();
            tokio::spawn(async move {
                // A refused handshake ends here: the client sent nothing over TLS.
                let Ok(mut stream) = acceptor.accept(stream).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buffer = [0; 1024];
                while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => head.extend_from_slice(&buffer[..read]),
                    }
                }
                counted.fetch_add(1, Ordering::SeqCst);
                let answer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    TlsServer {
        address,
        ca_file,
        requests,
    }
}

async fn get(url: &ServerUrl) -> Result<client::Answer, ClientError> {
    url.send(Method::GET, "/healthz", &[], Bytes::new(), TIMEOUT)
        .await
}

#[tokio::test]
async fn a_server_whose_ca_is_given_is_reached_over_https() {
    let server = tls_server("trusted", Signer::PrivateCa).await;
    let trust = Trust::with_ca_file(&server.ca_file).unwrap();
    let url = ServerUrl::parse(&format!("https://localhost:{}", server.address.port()))
        .unwrap()
        .trusting(trust);
    for _ in 0..2 {
        let answer = get(&url).await.unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.body, "ok");
    }
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_self_signed_certificate_given_as_the_ca_file_is_trusted() {
    let server = tls_server("self-signed", Signer::Itself).await;
    let trust = Trust::with_ca_file(&server.ca_file).unwrap();
    let url = ServerUrl::parse(&format!("https://localhost:{}", server.address.port()))
        .unwrap()
        .trusting(trust);
    assert_eq!(get(&url).await.unwrap().status, StatusCode::OK);

    let untrusted =
        ServerUrl::parse(&format!("https://localhost:{}", server.address.port())).unwrap();
    let error = get(&untrusted).await.unwrap_err();
    assert!(
        matches!(&error, ClientError::Connect { reason, .. } if reason.contains("certificate")),
        "{error}"
    );
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_same_server_is_refused_without_its_ca() {
    let server = tls_server("untrusted", Signer::PrivateCa).await;
    let url = ServerUrl::parse(&format!("https://localhost:{}", server.address.port())).unwrap();
    let error = get(&url).await.unwrap_err();
    let ClientError::Connect { reason, .. } = &error else {
        panic!("expected a refused connection, got {error}");
    };
    assert!(reason.contains("certificate"), "{error}");
    assert_eq!(
        server.requests.load(Ordering::SeqCst),
        0,
        "no request may be sent to a server that failed verification"
    );
}

#[tokio::test]
async fn a_trusted_certificate_for_another_name_is_refused() {
    let server = tls_server("wrong-name", Signer::PrivateCa).await;
    let trust = Trust::with_ca_file(&server.ca_file).unwrap();
    // The certificate names localhost, not 127.0.0.1.
    let url = ServerUrl::parse(&format!("https://{}", server.address))
        .unwrap()
        .trusting(trust);
    let error = get(&url).await.unwrap_err();
    assert!(
        matches!(&error, ClientError::Connect { reason, .. } if reason.contains("certificate")),
        "{error}"
    );
    assert_eq!(server.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_plain_server_is_not_reached_over_https() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buffer = [0; 1024];
        let _ = stream.read(&mut buffer).await;
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await;
    });
    let url = ServerUrl::parse(&format!("https://localhost:{}", address.port())).unwrap();
    let error = get(&url).await.unwrap_err();
    assert!(matches!(error, ClientError::Connect { .. }), "{error}");
}

//! The container health check (`guess-game doctor --probe`): asks the instance running on this
//! host whether it is alive. The final image has no shell and no curl, so the binary asks
//! itself; `/healthz` is the liveness probe (it stays 200 while the instance drains).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use rustls::DigitallySignedStruct;
use rustls::SignatureScheme;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::client::{ClientError, ServerUrl};

/// Why a running instance did not look alive.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Unreachable(#[from] ClientError),
    #[error("TLS probe of {address}: {reason}")]
    Tls { address: SocketAddr, reason: String },
    #[error("GET /healthz on {address} answered {status}")]
    Status {
        address: SocketAddr,
        status: StatusCode,
    },
}

/// Where to reach a listener bound to `listen` from this host: an unspecified address (all
/// interfaces) is reached on loopback.
fn local_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// `GET /healthz` on the public listener, all within `timeout`.
pub async fn probe_health(listen: SocketAddr, timeout: Duration) -> Result<(), ProbeError> {
    let address = local_address(listen);
    let url = ServerUrl::parse(&format!("http://{address}"))?;
    let answer = url
        .send(Method::GET, "/healthz", &[], Bytes::new(), timeout)
        .await?;
    if answer.status != StatusCode::OK {
        return Err(ProbeError::Status {
            address,
            status: answer.status,
        });
    }
    Ok(())
}

/// `GET /healthz` over TLS on the public listener, all within `timeout`. The server is
/// recognised by its certificate: the handshake succeeds only when it presents exactly the end
/// entity of `certificate` (the file the instance serves), whatever names it covers, so the
/// probe needs neither a CA nor a host name that resolves here.
pub async fn probe_health_tls(
    listen: SocketAddr,
    certificate: &Path,
    timeout: Duration,
) -> Result<(), ProbeError> {
    let address = local_address(listen);
    let failed = |reason: String| ProbeError::Tls { address, reason };
    let end_entity = CertificateDer::pem_file_iter(certificate)
        .map_err(|error| failed(format!("cannot read {}: {error}", certificate.display())))?
        .next()
        .ok_or_else(|| failed(format!("{} holds no certificate", certificate.display())))?
        .map_err(|error| failed(format!("cannot read {}: {error}", certificate.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|error| failed(error.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned {
            end_entity,
            provider,
        }))
        .with_no_client_auth();
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|error| failed(format!("cannot connect: {error}")))?;
        let name = ServerName::try_from("localhost").map_err(|error| failed(error.to_string()))?;
        let mut stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|error| failed(format!("handshake: {error}")))?;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
            .await
            .map_err(|error| failed(error.to_string()))?;
        let mut answer = Vec::new();
        // Bounded: a /healthz answer is tens of bytes.
        (&mut stream)
            .take(64 * 1024)
            .read_to_end(&mut answer)
            .await
            .map_err(|error| failed(error.to_string()))?;
        Ok::<_, ProbeError>(answer)
    };
    let answer = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| failed(format!("no answer within {timeout:?}")))??;
    let status = answer
        .get(9..12)
        .and_then(|code| std::str::from_utf8(code).ok())
        .and_then(|code| code.parse::<u16>().ok())
        .and_then(|code| StatusCode::from_u16(code).ok());
    match status {
        Some(StatusCode::OK) => Ok(()),
        Some(status) => Err(ProbeError::Status { address, status }),
        None => Err(failed("the answer is not HTTP".to_owned())),
    }
}

/// Accepts exactly one end-entity certificate; signatures are still checked.
#[derive(Debug)]
struct Pinned {
    end_entity: CertificateDer<'static>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.end_entity.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the listener presents another certificate than tls_certificate".to_owned(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            certificate,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            certificate,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A one-shot server answering the first request with `answer`.
    async fn answering(answer: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = vec![0; 1024];
            let _ = stream.read(&mut request).await.unwrap();
            assert!(request.starts_with(b"GET /healthz HTTP/1.1\r\n"));
            stream.write_all(answer.as_bytes()).await.unwrap();
        });
        address
    }

    #[test]
    fn all_interfaces_are_reached_on_loopback() {
        assert_eq!(
            local_address("0.0.0.0:8080".parse().unwrap()),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert_eq!(
            local_address("[::]:8080".parse().unwrap()),
            "[::1]:8080".parse().unwrap()
        );
        assert_eq!(
            local_address("10.1.2.3:80".parse().unwrap()),
            "10.1.2.3:80".parse().unwrap()
        );
    }

    #[tokio::test]
    async fn a_200_is_alive_and_anything_else_is_not() {
        let alive = answering("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
        probe_health(alive, Duration::from_secs(5)).await.unwrap();
        let sick = answering("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n").await;
        let error = probe_health(sick, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            matches!(error, ProbeError::Status { status, .. } if status == 503),
            "{error}"
        );
    }

    /// A process that holds the port but never answers (hung, or stopped with SIGSTOP): the
    /// kernel completes the handshake from the listen queue, and only the deadline ends the
    /// probe. Real time, because the socket is real; the deadline is short.
    #[tokio::test]
    async fn an_instance_that_never_answers_fails_at_the_deadline() {
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let started = std::time::Instant::now();
        let error = probe_health(silent.local_addr().unwrap(), Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(
            matches!(error, ProbeError::Unreachable(ClientError::Timeout(_))),
            "{error}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn nothing_listening_is_not_alive() {
        let address = {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap()
        };
        let error = probe_health(address, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(error, ProbeError::Unreachable(_)), "{error}");
    }
}

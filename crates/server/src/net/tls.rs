//! TLS on the public listener: rustls with the ring provider, ALPN `http/1.1`, the
//! certificate re-read from its files on SIGHUP.
//!
//! The handshake is tokio-rustls's; after it the connection loops drive the session through
//! [`super::Stream`]. A reload swaps the certificate the resolver hands out: handshakes from
//! then on use the new one, connections already open keep theirs (nothing is dropped). A reload
//! that fails (unreadable file, key not matching the certificate) keeps the current
//! certificate and says why.
//!
//! Session resumption: stateless tickets (rustls's ring ticketer, keys rotated every 6 hours)
//! and a small in-memory cache, so a returning client skips the certificate and key exchange.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;

/// A TLS session over a public TCP connection.
pub type TlsStream = tokio_rustls::server::TlsStream<TcpStream>;

/// Resumable sessions cached per process (each is a few hundred bytes).
const SESSION_CACHE: usize = 4096;

/// Why the certificate or key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {reason}")]
    Read {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("the key {key} does not fit the certificate {certificate}: {reason}")]
    Mismatch {
        certificate: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

/// The certificate chain and key files, loaded.
pub struct Loaded {
    key: Arc<CertifiedKey>,
    /// The end-entity certificate's validity period.
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// The end-entity certificate's subject, as text.
    pub subject: String,
}

impl fmt::Debug for Loaded {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Loaded")
            .field("subject", &self.subject)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// Reads and checks `certificate` (a PEM chain, end entity first) and `key` (PKCS#8, PKCS#1
/// or SEC1 PEM): both parse, the key fits the certificate, the validity period is readable.
pub fn load(certificate: &Path, key: &Path) -> Result<Loaded, TlsError> {
    let read = |what, path: &Path, reason: String| TlsError::Read {
        what,
        path: path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(certificate)
        .map_err(|error| read("certificate", certificate, error.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| read("certificate", certificate, error.to_string()))?;
    let Some(end_entity) = chain.first() else {
        return Err(TlsError::NoCertificate {
            path: certificate.to_owned(),
        });
    };
    let (not_before, not_after, subject) =
        validity(end_entity).map_err(|reason| read("certificate", certificate, reason))?;
    let private_key =
        PrivateKeyDer::from_pem_file(key).map_err(|error| read("key", key, error.to_string()))?;
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(chain, private_key, &provider).map_err(|error| {
        TlsError::Mismatch {
            certificate: certificate.to_owned(),
            key: key.to_owned(),
            reason: error.to_string(),
        }
    })?;
    Ok(Loaded {
        key: Arc::new(certified),
        not_before,
        not_after,
        subject,
    })
}

/// The validity period and subject of a DER certificate.
fn validity(certificate: &[u8]) -> Result<(SystemTime, SystemTime, String), String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate)
        .map_err(|error| format!("not an X.509 certificate: {error}"))?;
    let validity = parsed.validity();
    let at = |time: x509_parser::time::ASN1Time| {
        let seconds = time.timestamp();
        if seconds >= 0 {
            SystemTime::UNIX_EPOCH + Duration::from_secs(seconds.unsigned_abs())
        } else {
            SystemTime::UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs())
        }
    };
    Ok((
        at(validity.not_before),
        at(validity.not_after),
        parsed.subject().to_string(),
    ))
}

/// Hands out the current certificate; swapped by [`Tls::reload`].
struct Resolver {
    current: ArcSwap<CertifiedKey>,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Resolver")
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The listener's TLS: the acceptor every handshake goes through and the files it reloads.
pub struct Tls {
    acceptor: tokio_rustls::TlsAcceptor,
    resolver: Arc<Resolver>,
    certificate: PathBuf,
    key: PathBuf,
}

impl fmt::Debug for Tls {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Tls")
            .field("certificate", &self.certificate)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Loads the files and builds the server configuration.
    pub fn new(certificate: &Path, key: &Path) -> Result<Tls, TlsError> {
        let loaded = load(certificate, key)?;
        warn_if_expiring(&loaded);
        let resolver = Arc::new(Resolver {
            current: ArcSwap::new(loaded.key),
        });
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError::Setup(error.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&resolver) as Arc<dyn ResolvesServerCert>);
        // HTTP/1.1 only, WebSocket included (RFC 6455 upgrades an HTTP/1.1 request). A client
        // offering only h2 is refused in the handshake rather than misunderstood after it.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE);
        config.ticketer = rustls::crypto::ring::Ticketer::new()
            .map_err(|error| TlsError::Setup(error.to_string()))?;
        Ok(Tls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            resolver,
            certificate: certificate.to_owned(),
            key: key.to_owned(),
        })
    }

    /// Re-reads the certificate and key files; on success new handshakes use them. Open
    /// connections are not touched. On failure the current certificate stays.
    pub fn reload(&self) -> Result<Loaded, TlsError> {
        let loaded = load(&self.certificate, &self.key)?;
        warn_if_expiring(&loaded);
        self.resolver.current.store(Arc::clone(&loaded.key));
        Ok(loaded)
    }

    /// The TLS handshake on an accepted connection, within `timeout`.
    pub async fn accept(&self, stream: TcpStream, timeout: Duration) -> io::Result<TlsStream> {
        match tokio::time::timeout(timeout, self.acceptor.accept(stream)).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            )),
        }
    }
}

/// Logs a warning when the certificate is expired, not yet valid, or expires within 14 days.
fn warn_if_expiring(loaded: &Loaded) {
    let now = SystemTime::now();
    if loaded.not_after <= now {
        tracing::error!(subject = %loaded.subject, "the TLS certificate has expired; clients will refuse it");
    } else if loaded.not_before > now {
        tracing::warn!(subject = %loaded.subject, "the TLS certificate is not valid yet");
    } else if let Ok(left) = loaded.not_after.duration_since(now)
        && left < Duration::from_secs(14 * 24 * 3600)
    {
        tracing::warn!(subject = %loaded.subject, days_left = left.as_secs() / 86_400, "the TLS certificate expires soon; replace the files and send SIGHUP");
    }
}

/// Whether decrypted bytes, or the peer's close, wait in the session: a read would not block.
pub(super) fn has_buffered_input(stream: &mut TlsStream) -> bool {
    match stream.get_mut().1.process_new_packets() {
        Ok(state) => state.plaintext_bytes_to_read() > 0 || state.peer_has_closed(),
        // A broken session: let the read report it.
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let certificate = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&certificate, generated.cert.pem()).unwrap();
        std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
        (certificate, key)
    }

    fn temporary_dir(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("guess-game-tls-{name}-"))
            .tempdir()
            .unwrap()
    }

    #[test]
    fn a_certificate_and_its_key_load_with_their_validity() {
        let dir = temporary_dir("load");
        let (certificate, key) = write_pair(dir.path(), "a");
        let loaded = load(&certificate, &key).unwrap();
        assert!(loaded.not_after > SystemTime::now());
        assert!(loaded.not_before <= SystemTime::now());
        assert!(Tls::new(&certificate, &key).is_ok());
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let dir = temporary_dir("mismatch");
        let (certificate, _) = write_pair(dir.path(), "a");
        let (_, other_key) = write_pair(dir.path(), "b");
        let error = load(&certificate, &other_key).unwrap_err();
        assert!(matches!(error, TlsError::Mismatch { .. }), "{error}");
    }

    #[test]
    fn missing_or_empty_files_are_refused_with_their_path() {
        let dir = temporary_dir("missing");
        let (certificate, key) = write_pair(dir.path(), "a");
        let absent = dir.path().join("absent.pem");
        assert!(
            load(&absent, &key)
                .unwrap_err()
                .to_string()
                .contains("absent.pem")
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        assert!(matches!(
            load(&empty, &key).unwrap_err(),
            TlsError::NoCertificate { .. }
        ));
        assert!(load(&certificate, &empty).is_err());
    }

    #[test]
    fn a_failed_reload_keeps_the_current_certificate() {
        let dir = temporary_dir("reload");
        let (certificate, key) = write_pair(dir.path(), "a");
        let tls = Tls::new(&certificate, &key).unwrap();
        let before = tls.resolver.current.load_full();
        std::fs::write(&key, "not a key").unwrap();
        assert!(tls.reload().is_err());
        assert!(Arc::ptr_eq(&before, &tls.resolver.current.load_full()));
        let (new_certificate, new_key) = write_pair(dir.path(), "b");
        std::fs::copy(&new_certificate, &certificate).unwrap();
        std::fs::copy(&new_key, &key).unwrap();
        tls.reload().unwrap();
        assert!(!Arc::ptr_eq(&before, &tls.resolver.current.load_full()));
    }
}

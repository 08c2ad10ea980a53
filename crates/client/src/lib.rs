//! The HTTP client of guess-game's CLI (`play`, `account`, `pvp`, `verify`), of `doctor`'s
//! health probe and of the span exporter: `http://` and `https://` servers, certificates
//! verified against [`Trust`] (the system's roots, plus a private CA if given).
//!
//! Built on reqwest with rustls (ring provider) rather than by hand on hyper's connection API
//! as before: TLS, certificate and host-name verification, connecting to every address a name
//! resolves to, and the OpenTelemetry OTLP exporter speaks through reqwest too, so the
//! exporter and the CLI share one client stack and one trust configuration. No benchmark in
//! the repository measures this client (the load tester has its own, on httparse), and its
//! callers make a few calls per command or one per batch of spans. hyper-util's legacy client
//! with hyper-rustls was the other candidate; it would have needed an OTLP `HttpClient`
//! adapter of our own for the same result.
//!
//! A [`ServerUrl`] is checked once; each [`ServerUrl::send`] opens a connection, makes one
//! exchange and closes it, all within the call's timeout (connect, TLS handshake, request and
//! the whole answer), and reads at most [`MAX_ANSWER_BYTES`].

mod trust;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Method, StatusCode, Uri};

pub use trust::Trust;

/// The largest answer read: the largest the server sends is a match transcript, well under a
/// megabyte; a server sending more is not one this client talks to.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// Why a call to the server failed before an HTTP answer came back.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid server URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: &'static str },
    #[error("cannot use the CA file {path}: {reason}")]
    CaFile {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("cannot set up the HTTP client: {0}")]
    Setup(String),
    /// Connecting failed: refused, unresolvable, or the TLS handshake (a certificate that does
    /// not verify is this).
    #[error("cannot connect to {authority}: {reason}")]
    Connect { authority: String, reason: String },
    #[error("HTTP exchange with the server failed: {0}")]
    Http(String),
    #[error("the server's answer is larger than {MAX_ANSWER_BYTES} bytes")]
    TooLarge,
    #[error("the server did not answer within {0:?}")]
    Timeout(Duration),
}

/// The status, headers and body of an answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// A header's value as text, if present and readable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

/// A base URL such as `http://127.0.0.1:8080` or `https://game.example`, checked once.
#[derive(Clone, Debug)]
pub struct ServerUrl {
    scheme: Scheme,
    authority: String,
    base_path: String,
    trust: Trust,
    /// Built at the first call, so parsing a URL (config validation, the load tester) reads no
    /// certificates; shared by clones.
    client: Arc<OnceLock<reqwest::Client>>,
}

impl ServerUrl {
    /// Checks `url`: `http://` or `https://` (port 80 or 443 unless given), a host, no
    /// credentials. An https server is verified against the system's roots; see
    /// [`ServerUrl::trusting`] for a private CA.
    pub fn parse(url: &str) -> Result<ServerUrl, ClientError> {
        let invalid = |reason| ClientError::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let uri: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
        let scheme = match uri.scheme_str() {
            Some("http") => Scheme::Http,
            Some("https") => Scheme::Https,
            Some(_) => return Err(invalid("only http:// and https:// are supported")),
            None => return Err(invalid("missing http:// or https:// scheme")),
        };
        let authority = uri.authority().ok_or_else(|| invalid("missing host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("credentials in the URL are not supported"));
        }
        if authority.host().is_empty() {
            return Err(invalid("missing host"));
        }
        let authority = match (authority.port(), scheme) {
            (Some(_), _) => authority.to_string(),
            (None, Scheme::Http) => format!("{authority}:80"),
            (None, Scheme::Https) => format!("{authority}:443"),
        };
        Ok(ServerUrl {
            scheme,
            authority,
            base_path: uri.path().trim_end_matches('/').to_owned(),
            trust: Trust::system(),
            client: Arc::default(),
        })
    }

    /// The same URL, its server verified against `trust` instead.
    pub fn trusting(self, trust: Trust) -> ServerUrl {
        ServerUrl {
            trust,
            client: Arc::default(),
            ..self
        }
    }

    /// What an https server is verified against.
    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// Whether the server is spoken to over TLS.
    pub fn is_https(&self) -> bool {
        self.scheme == Scheme::Https
    }

    /// `host:port` of the server.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The request target for `path` under the URL's base path.
    pub fn target(&self, path: &str) -> String {
        format!("{}{}", self.base_path, path)
    }

    /// The absolute URL of `path` under the base path.
    pub fn url(&self, path: &str) -> String {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        format!("{scheme}://{}{}", self.authority, self.target(path))
    }

    /// The WebSocket URL of `path`: `wss://` for an https server, `ws://` otherwise.
    pub fn websocket_url(&self, path: &str) -> String {
        let scheme = match self.scheme {
            Scheme::Http => "ws",
            Scheme::Https => "wss",
        };
        format!("{scheme}://{}{}", self.authority, self.target(path))
    }

    /// Sends one request and reads the whole answer, all within `timeout`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
        timeout: Duration,
    ) -> Result<Answer, ClientError> {
        let client = self.client()?;
        tokio::time::timeout(timeout, self.exchange(client, method, path, headers, body))
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
    }

    fn client(&self) -> Result<&reqwest::Client, ClientError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let client = self.trust.http_client(CONNECT_BACKSTOP, false)?;
        Ok(self.client.get_or_init(|| client))
    }

    async fn exchange(
        &self,
        client: &reqwest::Client,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Answer, ClientError> {
        let mut request = client.request(method, self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut response = request
            .body(body)
            .send()
            .await
            .map_err(|error| self.failure(&error))?;
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let mut body = BytesMut::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| self.failure(&error))?
        {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(ClientError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            headers,
            body: body.freeze(),
        })
    }

    fn failure(&self, error: &reqwest::Error) -> ClientError {
        if error.is_builder() {
            return ClientError::InvalidUrl {
                url: self.url(""),
                reason: "cannot form a request to it (a header name or value is invalid)",
            };
        }
        if error.is_connect() {
            return ClientError::Connect {
                authority: self.authority.clone(),
                reason: cause(error),
            };
        }
        ClientError::Http(cause(error))
    }
}

/// A backstop on connecting: each call's own timeout, which covers connecting too, normally
/// ends a slow connection first.
const CONNECT_BACKSTOP: Duration = Duration::from_secs(30);

/// What went wrong with a request, in the words of the innermost cause: "Connection refused
/// (os error 111)", "invalid peer certificate: UnknownIssuer". The wrappers above it (reqwest's
/// "error sending request for url (...)", hyper's "client error (Connect)") say less, and the
/// caller names the server.
pub fn cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = error;
    while let Some(cause) = innermost.source() {
        innermost = cause;
    }
    innermost.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert!(ServerUrl::parse("http://127.0.0.1:8080").is_ok());
        let plain = ServerUrl::parse("http://localhost").unwrap();
        assert_eq!(plain.authority(), "localhost:80");
        assert!(!plain.is_https());
        assert_eq!(
            ServerUrl::parse("http://h:1/base/").unwrap().base_path,
            "/base"
        );
        let secure = ServerUrl::parse("https://game.example/api").unwrap();
        assert_eq!(secure.authority(), "game.example:443");
        assert!(secure.is_https());
        assert_eq!(secure.url("/play"), "https://game.example:443/api/play");
        assert_eq!(secure.websocket_url("/ws"), "wss://game.example:443/api/ws");
        assert_eq!(
            ServerUrl::parse("http://[::1]:8080")
                .unwrap()
                .websocket_url("/ws"),
            "ws://[::1]:8080/ws"
        );
        for bad in [
            "",
            "127.0.0.1:8080",
            "ftp://h",
            "ws://h",
            "http://",
            "https://",
            "http://user:secret@h:1",
        ] {
            assert!(ServerUrl::parse(bad).is_err(), "{bad:?}");
        }
    }
}

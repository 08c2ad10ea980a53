//! A small HTTP/1.1 client for talking to a guess-game server: used by `guess-game play`.
//!
//! Built on hyper's client connection API: one connection per call, bounded by a timeout.
//! Only `http://` targets are supported; the server itself speaks plain HTTP.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Why a call to the server failed before an HTTP answer came back.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid server URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: &'static str },
    #[error("cannot connect to {authority}: {source}")]
    Connect {
        authority: String,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP exchange with the server failed: {0}")]
    Http(#[from] hyper::Error),
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

/// A base URL such as `http://127.0.0.1:8080`, checked once.
#[derive(Clone, Debug)]
pub struct ServerUrl {
    authority: String,
    base_path: String,
}

impl ServerUrl {
    pub fn parse(url: &str) -> Result<ServerUrl, ClientError> {
        let invalid = |reason| ClientError::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let uri: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(_) => return Err(invalid("only http:// is supported")),
            None => return Err(invalid("missing http:// scheme")),
        }
        let authority = uri.authority().ok_or_else(|| invalid("missing host"))?;
        let authority = if authority.port().is_some() {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(ServerUrl {
            authority,
            base_path: uri.path().trim_end_matches('/').to_owned(),
        })
    }

    /// `host:port` of the server.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The request target for `path` under the URL's base path.
    pub fn target(&self, path: &str) -> String {
        format!("{}{}", self.base_path, path)
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
        tokio::time::timeout(timeout, self.exchange(method, path, headers, body))
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Answer, ClientError> {
        let stream = TcpStream::connect(&self.authority)
            .await
            .map_err(|source| ClientError::Connect {
                authority: self.authority.clone(),
                source,
            })?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base_path, path))
            .header(http::header::HOST, &self.authority);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|_| ClientError::InvalidUrl {
                url: format!("{}{}", self.base_path, path),
                reason: "cannot form a request to it",
            })?;
        let response = sender.send_request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert!(ServerUrl::parse("http://127.0.0.1:8080").is_ok());
        assert_eq!(
            ServerUrl::parse("http://localhost").unwrap().authority,
            "localhost:80"
        );
        assert_eq!(
            ServerUrl::parse("http://h:1/base/").unwrap().base_path,
            "/base"
        );
        for bad in ["", "127.0.0.1:8080", "https://h:1", "ftp://h", "http://"] {
            assert!(ServerUrl::parse(bad).is_err(), "{bad:?}");
        }
    }
}

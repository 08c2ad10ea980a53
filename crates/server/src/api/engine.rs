//! What a connection engine refuses before a request reaches the router: the framing and
//! resource errors of HTTP/1.1 itself.
//!
//! The engines (`crate::server`) raise them and the HTTP surface (`crate::http::problem`)
//! renders them; they live here, below both, so neither reaches into the other.

/// Why an engine refused the bytes it was sent. Every one closes the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("the request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request is not valid HTTP/1.1: {reason}")]
    MalformedRequest { reason: &'static str },
    #[error("the request head is too large")]
    HeadersTooLarge,
    #[error("only the chunked transfer-encoding is supported")]
    UnsupportedTransferEncoding,
    #[error("the request was not received in time")]
    RequestTimeout,
    #[error("the server has reached its limit of open connections; try again shortly")]
    TooManyConnections,
}

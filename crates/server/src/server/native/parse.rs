//! Reading one HTTP/1.1 request head and deciding how its body is framed.
//!
//! httparse does the tokenizing (it is the parser under hyper too); this file applies the
//! framing rules of RFC 9112 strictly, because a lenient reading of them is how request
//! smuggling happens: a body's length is either one valid `Content-Length` or
//! `Transfer-Encoding: chunked`, never both, never anything ambiguous.

use http::Method;

use crate::http::Headers;

/// Most header fields a request may carry; more is a 431.
pub const MAX_HEADERS: usize = 64;
/// Largest request head (request line and headers); longer is a 431.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;

/// How the body that follows a head is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length` bytes follow (0 when neither header is present).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// The parts of a request head the engine and the handlers use, borrowed from the read buffer.
#[derive(Debug)]
pub struct Head<'a> {
    pub method: Method,
    /// The path without query string; absolute-form targets are reduced to their path.
    pub path: &'a str,
    /// The query string, without the `?`.
    pub query: Option<&'a str>,
    /// The fields the handlers read.
    pub headers: Headers<'a>,
    pub framing: Framing,
    /// Whether the connection may carry another request after this one.
    pub keep_alive: bool,
    /// The client waits for `100 Continue` before sending the body.
    pub expect_continue: bool,
    /// Bytes of the head, including the blank line that ends it.
    pub length: usize,
}

/// A request head that cannot be served; the connection is closed after the error reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("{0}")]
    Malformed(&'static str),
    #[error("the request head exceeds {MAX_HEAD_BYTES} bytes or {MAX_HEADERS} fields")]
    TooLarge,
    #[error("transfer-encoding other than chunked")]
    UnsupportedTransferEncoding,
}

/// Parses the head at the start of `buffer`. `Ok(None)` means more bytes are needed.
pub fn parse_head(buffer: &[u8]) -> Result<Option<Head<'_>>, HeadError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut fields);
    let length = match request.parse(buffer) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) if buffer.len() > MAX_HEAD_BYTES => {
            return Err(HeadError::TooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) => {
            return Err(HeadError::Malformed(
                "the request line or a header field is malformed",
            ));
        }
    };
    if length > MAX_HEAD_BYTES {
        return Err(HeadError::TooLarge);
    }
    // httparse guarantees all three once the parse is complete.
    let (Some(method), Some(target), Some(minor_version)) =
        (request.method, request.path, request.version)
    else {
        return Err(HeadError::Malformed("incomplete request line"));
    };
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| HeadError::Malformed("invalid method"))?;

    let mut head = Head {
        method,
        path: path_of(target)?,
        query: target.split_once('?').map(|(_, query)| query),
        headers: Headers::default(),
        framing: Framing::Length(0),
        keep_alive: minor_version >= 1,
        expect_continue: false,
        length,
    };
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut hosts = 0u32;
    for field in request.headers.iter() {
        let name = field.name.as_bytes();
        let value = field.value;
        if name.eq_ignore_ascii_case(b"content-length") {
            let parsed = parse_content_length(value)?;
            if content_length.is_some_and(|earlier| earlier != parsed) {
                return Err(HeadError::Malformed("conflicting content-length fields"));
            }
            content_length = Some(parsed);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if chunked || !value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Err(HeadError::UnsupportedTransferEncoding);
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for option in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if option.eq_ignore_ascii_case(b"close") {
                    head.keep_alive = false;
                } else if option.eq_ignore_ascii_case(b"keep-alive")
                    && minor_version == 0
                    // A value with bytes outside visible ASCII is not read as keep-alive:
                    // hyper ignores such a Connection field, and an HTTP/1.0 connection that
                    // one side keeps and the other closes is two framings (eighth finding).
                    && value.iter().all(|byte| (0x20..0x7f).contains(byte) || *byte == b'\t')
                {
                    head.keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case(b"expect") {
            // HTTP/1.0 has no 100 Continue: a 1.0 client never waits for it (RFC 9110 10.1.1).
            head.expect_continue =
                minor_version >= 1 && value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        } else {
            head.headers.record(name, value);
        }
    }
    // RFC 9112 3.2: an HTTP/1.1 request carries exactly one Host field; a server answers
    // 400 to one with none or several (a proxy and this server could pick different ones).
    if minor_version >= 1 && hosts != 1 {
        return Err(HeadError::Malformed(
            "an HTTP/1.1 request must carry exactly one host field",
        ));
    }
    head.framing = match (content_length, chunked) {
        (Some(_), true) => {
            return Err(HeadError::Malformed(
                "both content-length and transfer-encoding",
            ));
        }
        (_, true) if minor_version == 0 => {
            return Err(HeadError::Malformed("transfer-encoding in HTTP/1.0"));
        }
        (_, true) => Framing::Chunked,
        (length, false) => Framing::Length(length.unwrap_or(0)),
    };
    Ok(Some(head))
}

/// `Content-Length` is one or more ASCII digits and nothing else (no sign, no spaces inside, no
/// list); anything else is rejected rather than guessed at.
fn parse_content_length(value: &[u8]) -> Result<u64, HeadError> {
    const INVALID: HeadError = HeadError::Malformed("invalid content-length");
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return Err(INVALID);
    }
    Ok(value
        .iter()
        .fold(0u64, |total, digit| total * 10 + u64::from(digit - b'0')))
}

/// The bytes RFC 3986 allows in a request target's path and query (`#` excluded: no fragment
/// in a request): unreserved, percent signs, sub-delims, `:`, `@`, `/` and `?`.
const TARGET_BYTES: [bool; 256] = {
    let mut allowed = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let c = byte as u8;
        allowed[byte] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'@'
                    | b'/'
                    | b'?'
            );
        byte += 1;
    }
    allowed
};

/// The path of a request target: origin-form `/path?query` or absolute-form
/// `http://host/path?query`. `*` (asterisk-form) yields a path no route has; anything else is refused.
fn path_of(target: &str) -> Result<&str, HeadError> {
    // Only RFC 3986's characters: httparse lets through some that are not (a backtick,
    // braces, a fragment's '#'), which hyper refuses or reads differently (hyper drops a
    // fragment, so "/#x" would be routed as "/"). Found by the differential fuzzer.
    if !target.bytes().all(|byte| TARGET_BYTES[usize::from(byte)]) {
        return Err(HeadError::Malformed(
            "a character not allowed in a request target",
        ));
    }
    let without_query = target.split_once('?').map_or(target, |(path, _)| path);
    // Asterisk-form is "*" alone (RFC 9112 3.2.4): "*?x" is nothing (the seventh finding).
    if target == "*" {
        return Ok(target);
    }
    if without_query.starts_with('/') {
        return Ok(without_query);
    }
    let after_scheme = without_query
        .strip_prefix("http://")
        .or_else(|| without_query.strip_prefix("https://"));
    match after_scheme {
        // Absolute-form names a host: "http:///x" has none, and hyper refuses it (the
        // differential fuzzer's fifth finding).
        Some(rest) if rest.is_empty() || rest.starts_with('/') => Err(HeadError::Malformed(
            "an absolute request target without a host",
        )),
        // The rest of an absolute-form target is checked by the URI parser hyper uses (the
        // `http` crate), so the two agree on which hosts are valid ("example%com" is not: the
        // sixth finding). Absolute-form is for proxies, so this allocation is off the hot path.
        Some(_) if target.parse::<http::Uri>().is_err() => {
            Err(HeadError::Malformed("an invalid absolute request target"))
        }
        Some(rest) => Ok(rest.find('/').map_or("/", |slash| &rest[slash..])),
        // Neither origin-form, absolute-form nor asterisk-form (RFC 9112 3.2): "GE/healthz"
        // or an authority. Found by the differential fuzzer: hyper refuses these.
        None => Err(HeadError::Malformed("invalid request target")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Option<Head<'_>>, HeadError> {
        parse_head(text.as_bytes())
    }

    fn complete(text: &str) -> Head<'_> {
        parse(text).unwrap().expect("a complete head")
    }

    #[test]
    fn a_plain_post_is_framed_by_its_content_length() {
        let head = complete(
            "POST /play?x=1 HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 18\r\n\r\n{",
        );
        assert_eq!(head.method, Method::POST);
        assert_eq!(head.path, "/play");
        assert_eq!(head.framing, Framing::Length(18));
        assert_eq!(head.headers.content_type, Some(&b"application/json"[..]));
        assert!(head.keep_alive);
        assert_eq!(head.length, "POST /play?x=1 HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 18\r\n\r\n".len());
    }

    #[test]
    fn an_incomplete_head_asks_for_more() {
        assert!(
            parse("POST /play HTTP/1.1\r\nHost: a\r\n")
                .unwrap()
                .is_none()
        );
        assert!(parse("").unwrap().is_none());
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection_header() {
        assert!(!complete("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(
            !complete("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, Close\r\n\r\n").keep_alive
        );
        assert!(!complete("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(complete("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
        assert!(complete("GET / HTTP/1.1\r\nHost: x\r\n\r\n").keep_alive);
    }

    #[test]
    fn chunked_is_the_only_transfer_encoding_accepted() {
        assert_eq!(
            complete("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").framing,
            Framing::Chunked
        );
        for encoding in ["gzip", "gzip, chunked", "chunked, chunked", "identity", ""] {
            let text = format!("POST / HTTP/1.1\r\nTransfer-Encoding: {encoding}\r\n\r\n");
            assert_eq!(
                parse(&text).unwrap_err(),
                HeadError::UnsupportedTransferEncoding,
                "{encoding:?}"
            );
        }
        let twice =
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(
            parse(twice).unwrap_err(),
            HeadError::UnsupportedTransferEncoding
        );
    }

    #[test]
    fn ambiguous_framing_is_rejected_to_prevent_smuggling() {
        for text in [
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length : 5\r\n\r\n",
            "POST / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5\r\r\n\r\n",
        ] {
            assert!(
                matches!(parse(text), Err(HeadError::Malformed(_))),
                "{text:?}: {:?}",
                parse(text)
            );
        }
        // The same length twice is not ambiguous.
        assert_eq!(
            complete(
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"
            )
            .framing,
            Framing::Length(5)
        );
    }

    #[test]
    fn garbage_is_malformed_not_a_crash() {
        for text in [
            "\0\0\0\0\r\n\r\n",
            "GET\r\n\r\n",
            "GET / HTTP/2.0\r\n\r\n",
            "G@T / HTTP/1.1\r\n\r\n",
            "GET / FOO/1.1\r\n\r\n",
        ] {
            assert!(
                matches!(parse(text), Err(HeadError::Malformed(_))),
                "{text:?}"
            );
        }
    }

    #[test]
    fn oversized_heads_are_too_large() {
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "X: y\r\n".repeat(MAX_HEADERS + 1)
        );
        assert_eq!(parse(&many).unwrap_err(), HeadError::TooLarge);
        let long = format!("GET / HTTP/1.1\r\nX: {}", "y".repeat(MAX_HEAD_BYTES));
        assert_eq!(parse(&long).unwrap_err(), HeadError::TooLarge);
    }

    #[test]
    fn absolute_form_targets_reduce_to_their_path() {
        assert_eq!(
            complete("POST http://example.com/play HTTP/1.1\r\nHost: x\r\n\r\n").path,
            "/play"
        );
        assert_eq!(
            complete("GET http://example.com HTTP/1.1\r\nHost: x\r\n\r\n").path,
            "/"
        );
        assert_eq!(complete("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n").path, "*");
    }

    #[test]
    fn expect_continue_is_recognized() {
        assert!(
            complete(
                "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n"
            )
            .expect_continue
        );
        assert!(
            !complete("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n").expect_continue
        );
    }

    #[test]
    fn a_request_target_holds_only_uri_characters() {
        for target in [
            "https:///",
            "http://",
            "http:///play",
            "/`lay",
            "/a#b",
            "/{x}",
            "/a|b",
            "/a^b",
            "/\"x\"",
            "/a\\b",
            "/<x>",
        ] {
            let text = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
            assert!(
                matches!(parse_head(text.as_bytes()), Err(HeadError::Malformed(_))),
                "{target:?}"
            );
        }
        let fine = "GET /a-b.c_d~e/%20!$&'()*+,;=:@?x=1&y=/z HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(parse_head(fine.as_bytes()).unwrap().is_some());
    }

    #[test]
    fn an_http_1_1_request_needs_exactly_one_host() {
        for text in [
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n",
        ] {
            assert!(
                matches!(parse_head(text.as_bytes()), Err(HeadError::Malformed(_))),
                "{text:?}"
            );
        }
        assert!(parse_head(b"GET / HTTP/1.0\r\n\r\n").unwrap().is_some());
        assert!(
            parse_head(b"GET / HTTP/1.1\r\nHOST: a\r\n\r\n")
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn expect_100_continue_is_ignored_on_http_1_0() {
        let head =
            parse_head(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")
                .unwrap()
                .unwrap();
        assert!(!head.expect_continue);
    }
}

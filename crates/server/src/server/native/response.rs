//! Writing a response straight into the connection's output buffer.
//!
//! The head is assembled from static pieces, the length with `itoa`, and a `Date` value that
//! is formatted once per second per thread; a response therefore costs a few `memcpy`s and
//! no allocation once the buffer has grown to its working size.

use std::cell::RefCell;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use http::StatusCode;

use crate::http::{HeaderValue, Reply};

/// Appends a complete response to `out`. With `head_only` (a HEAD request) the body is left
/// out but its length still announced.
pub fn write_response(
    out: &mut Vec<u8>,
    reply: &Reply,
    body: &[u8],
    head_only: bool,
    close: bool,
    date: &HttpDate,
) {
    write_status_line(out, reply.status);
    out.extend_from_slice(b"content-type: ");
    out.extend_from_slice(reply.content_type.as_bytes());
    out.extend_from_slice(b"\r\ncontent-length: ");
    out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
    out.extend_from_slice(b"\r\ndate: ");
    out.extend_from_slice(date);
    out.extend_from_slice(b"\r\n");
    // Two plain slices rather than one chained iterator: this runs for every answer.
    for &(name, value) in reply.extra_headers() {
        write_header(out, name, value);
    }
    for &(name, value) in reply.static_headers() {
        write_header(out, name, value);
    }
    if let Some(trace) = &reply.trace {
        out.extend_from_slice(b"traceparent: ");
        trace.write_traceparent(out);
        out.extend_from_slice(b"\r\n");
    }
    if let Some(request_id) = &reply.request_id {
        out.extend_from_slice(b"x-request-id: ");
        out.extend_from_slice(request_id.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(body);
    }
}

/// The interim response that tells a client waiting on `Expect: 100-continue` to send its body.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

fn write_status_line(out: &mut Vec<u8>, status: StatusCode) {
    let line: &[u8] = match status {
        StatusCode::OK => b"HTTP/1.1 200 OK\r\n",
        StatusCode::BAD_REQUEST => b"HTTP/1.1 400 Bad Request\r\n",
        StatusCode::NOT_FOUND => b"HTTP/1.1 404 Not Found\r\n",
        StatusCode::METHOD_NOT_ALLOWED => b"HTTP/1.1 405 Method Not Allowed\r\n",
        _ => {
            let reason = status.canonical_reason().unwrap_or("Unknown");
            // Writing into a Vec cannot fail.
            let _ = write!(out, "HTTP/1.1 {} {reason}\r\n", status.as_u16());
            return;
        }
    };
    out.extend_from_slice(line);
}

/// A formatted `Date` header value ("Sun, 06 Nov 1994 08:49:37 GMT" is always 29 bytes).
pub type HttpDate = [u8; 29];

/// The `Date` header value at `now`, formatted at most once per second per thread (RFC 9110
/// needs only one-second resolution). Keyed by the monotonic clock the caller already read, so
/// the common case costs one comparison and no second clock read.
pub fn current_date(now: Instant) -> HttpDate {
    struct CachedDate {
        valid_until: Option<Instant>,
        text: HttpDate,
    }
    thread_local! {
        static DATE: RefCell<CachedDate> = const { RefCell::new(CachedDate { valid_until: None, text: [b' '; 29] }) };
    }
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.valid_until.is_none_or(|until| now >= until) {
            let wall = SystemTime::now();
            let into_second = wall
                .duration_since(UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.subsec_nanos());
            let mut text = [b' '; 29];
            let _ = write!(&mut text[..], "{}", httpdate::HttpDate::from(wall));
            *cached = CachedDate {
                valid_until: Some(
                    now + Duration::from_nanos(u64::from(1_000_000_000 - into_second)),
                ),
                text,
            };
        }
        cached.text
    })
}

/// One `name: value` line.
#[inline]
fn write_header(out: &mut Vec<u8>, name: &str, value: HeaderValue) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    match value {
        HeaderValue::Static(text) => out.extend_from_slice(text.as_bytes()),
        HeaderValue::Number(number) => {
            out.extend_from_slice(itoa::Buffer::new().format(number).as_bytes())
        }
        // Only refusals carry these; formatting into the Vec does not allocate once warm.
        other => {
            let _ = write!(out, "{other}");
        }
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(reply: Reply, body: &[u8], head_only: bool, close: bool) -> String {
        let mut out = Vec::new();
        write_response(
            &mut out,
            &reply,
            body,
            head_only,
            close,
            &current_date(Instant::now()),
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_response_has_status_type_length_date_and_body() {
        let text = render(
            Reply::new(StatusCode::OK, "application/json"),
            b"{}",
            false,
            false,
        );
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let mut lines = head.lines();
        assert_eq!(lines.next(), Some("HTTP/1.1 200 OK"));
        assert_eq!(lines.next(), Some("content-type: application/json"));
        assert_eq!(lines.next(), Some("content-length: 2"));
        let date = lines.next().unwrap().strip_prefix("date: ").unwrap();
        let parsed = httpdate::parse_http_date(date).unwrap();
        let skew = SystemTime::now().duration_since(parsed).unwrap_or_default();
        assert!(skew < Duration::from_secs(2), "{date}");
        assert_eq!(lines.next(), None);
        assert_eq!(body, "{}");
    }

    #[test]
    fn extra_headers_close_and_head_only_are_honoured() {
        let reply = Reply::new(StatusCode::TOO_MANY_REQUESTS, "application/problem+json")
            .with_header("retry-after", HeaderValue::Number(3))
            .with_header("allow", HeaderValue::Static("GET, HEAD"));
        let text = render(reply, b"abc", true, true);
        assert!(
            text.starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\ncontent-length: 3\r\n"));
        assert!(
            text.contains("\r\nretry-after: 3\r\nallow: GET, HEAD\r\nconnection: close\r\n\r\n")
        );
        assert!(text.ends_with("\r\n\r\n"), "HEAD carries no body: {text}");
    }
}

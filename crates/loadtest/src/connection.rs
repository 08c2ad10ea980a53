//! One request-response exchange on a keep-alive connection, with the answer's status.
//!
//! Written on httparse rather than hyper's client for the same reason as the server's engine:
//! the load tester must cost less per request than the server it loads, or it measures itself
//! (docs/BENCHMARKS.md compares it with wrk). It reads only what it needs: the status, the
//! body's length and whether the server will close.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest answer accepted; a bigger one is reported as malformed rather than buffered.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// A complete answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// The server said it will close the connection after this answer.
    pub close: bool,
}

/// Why an exchange produced no answer. The names are the report's error kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    ConnectRefused,
    ConnectFailed,
    Timeout,
    ClosedByServer,
    MalformedResponse,
    Io,
    /// The authenticated scenario could not create its connection's account.
    AccountSetup,
}

impl Failure {
    pub fn name(self) -> &'static str {
        match self {
            Failure::ConnectRefused => "connect_refused",
            Failure::ConnectFailed => "connect_failed",
            Failure::Timeout => "timeout",
            Failure::ClosedByServer => "closed_by_server",
            Failure::MalformedResponse => "malformed_response",
            Failure::Io => "io_error",
            Failure::AccountSetup => "account_setup_failed",
        }
    }

    pub fn of_connect(error: &io::Error) -> Failure {
        match error.kind() {
            io::ErrorKind::ConnectionRefused => Failure::ConnectRefused,
            io::ErrorKind::TimedOut => Failure::Timeout,
            _ => Failure::ConnectFailed,
        }
    }

    fn of_io(error: &io::Error) -> Failure {
        match error.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => Failure::ClosedByServer,
            _ => Failure::Io,
        }
    }
}

/// Sends `request` and reads one complete answer into `input` (cleared first).
pub async fn exchange(
    stream: &mut TcpStream,
    request: &[u8],
    input: &mut Vec<u8>,
) -> Result<Answer, Failure> {
    stream
        .write_all(request)
        .await
        .map_err(|error| Failure::of_io(&error))?;
    input.clear();
    loop {
        if input.capacity() - input.len() < 1024 {
            input.reserve(4096);
        }
        let read = stream
            .read_buf(input)
            .await
            .map_err(|error| Failure::of_io(&error))?;
        if read == 0 {
            return Err(Failure::ClosedByServer);
        }
        if let Some(answer) = parse_answer(input)? {
            return Ok(answer);
        }
    }
}

/// The answer in `input` once it is complete (head and `Content-Length` body).
pub fn parse_answer(input: &[u8]) -> Result<Option<Answer>, Failure> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_length = match response.parse(input) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) if input.len() > MAX_RESPONSE_BYTES => {
            return Err(Failure::MalformedResponse);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(Failure::MalformedResponse),
    };
    let status = response.code.ok_or(Failure::MalformedResponse)?;
    let mut body_length = None;
    let mut close = response.version == Some(0);
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let text = std::str::from_utf8(header.value).map_err(|_| Failure::MalformedResponse)?;
            body_length = Some(
                text.trim()
                    .parse::<usize>()
                    .map_err(|_| Failure::MalformedResponse)?,
            );
        } else if header.name.eq_ignore_ascii_case("connection") {
            close = header.value.eq_ignore_ascii_case(b"close");
        }
    }
    // Interim answers (100 Continue) are never asked for; an answer without a length cannot be
    // delimited on a keep-alive connection, so it is malformed for this tester's purposes.
    let body_length = body_length.ok_or(Failure::MalformedResponse)?;
    if body_length > MAX_RESPONSE_BYTES {
        return Err(Failure::MalformedResponse);
    }
    if input.len() < head_length + body_length {
        return Ok(None);
    }
    Ok(Some(Answer { status, close }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_complete_answer_is_read() {
        let text = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(
            parse_answer(text),
            Ok(Some(Answer {
                status: 200,
                close: false
            }))
        );
        assert_eq!(parse_answer(&text[..text.len() - 1]), Ok(None));
        assert_eq!(parse_answer(b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"), Ok(Some(Answer { status: 503, close: true })));
    }

    #[test]
    fn garbage_and_unframed_answers_are_malformed() {
        assert_eq!(
            parse_answer(b"SSH-2.0-OpenSSH\r\n\r\n"),
            Err(Failure::MalformedResponse)
        );
        assert_eq!(
            parse_answer(b"HTTP/1.1 200 OK\r\n\r\nbody"),
            Err(Failure::MalformedResponse)
        );
        assert_eq!(
            parse_answer(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"),
            Err(Failure::MalformedResponse)
        );
    }
}

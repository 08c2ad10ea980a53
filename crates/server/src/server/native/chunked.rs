//! Decoding a `Transfer-Encoding: chunked` request body (RFC 9112 section 7.1).
//!
//! The chunk-size line is tokenized by `httparse::parse_chunk_size` (hyper's parser), then held
//! to the RFC where httparse is lenient: httparse accepts any byte in a chunk extension, but a
//! control character there, a bare CR or a bare LF above all, is how a lenient proxy and a
//! strict server come to disagree on where a body ends (request smuggling), so it is rejected.
//! The trailer section is parsed as header fields by `httparse::parse_headers`, within limits,
//! and discarded: nothing in it may change how the request is framed or handled.
//!
//! The decoder resumes where it stopped ([`Decoder`]): a body arriving in many small pieces is
//! decoded once, not re-scanned from its start each time; only an incomplete chunk-size line
//! or trailer section (both bounded) is read again.

/// A chunked body that cannot be accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkedError {
    Malformed(&'static str),
    /// The decoded body is larger than the limit.
    TooLarge,
}

/// Longest chunk-size line, extensions included. hyper allows 16 KiB of extensions per body;
/// bodies here are a few KiB, so one line gets 1 KiB.
const MAX_SIZE_LINE: usize = 1024;

/// Most trailer fields, and most bytes of the trailer section.
const MAX_TRAILERS: usize = 16;
const MAX_TRAILER_BYTES: usize = 4 * 1024;

/// Most raw bytes (chunk-size lines, extensions, trailers) a chunked body of `limit` decoded
/// bytes may take; a body that needs more is treated as too large. Bounds the work a client
/// can cause with tiny chunks or long extensions.
pub fn raw_limit(limit: usize) -> usize {
    limit * 2 + 1024
}

/// Where decoding of one body stands, kept between reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Decoder {
    /// Raw bytes of the body decoded so far: everything before the next chunk-size line (or
    /// the trailer section, once the last chunk was seen).
    at: usize,
    /// The zero-size chunk was read; the trailer section starts at `at`.
    in_trailers: bool,
}

impl Decoder {
    /// Decodes the chunked body at the start of `input`, appending to `out` what it has not
    /// decoded on an earlier call (`out` holds exactly the decoded bytes between calls; start
    /// with a default decoder and an empty `out` for each body). Returns the raw bytes the
    /// body took once complete, or `Ok(None)` when more are needed.
    pub fn decode(
        &mut self,
        input: &[u8],
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Result<Option<usize>, ChunkedError> {
        while !self.in_trailers {
            if self.at > raw_limit(limit) {
                return Err(ChunkedError::TooLarge);
            }
            let rest = &input[self.at..];
            let (line_length, size) = match httparse::parse_chunk_size(rest) {
                Ok(httparse::Status::Complete(parsed)) => parsed,
                Ok(httparse::Status::Partial) if rest.len() > MAX_SIZE_LINE => {
                    return Err(ChunkedError::Malformed("chunk-size line too long"));
                }
                Ok(httparse::Status::Partial) => return self.more(input, limit),
                Err(httparse::InvalidChunkSize) => {
                    return Err(ChunkedError::Malformed("invalid chunk size"));
                }
            };
            if line_length > MAX_SIZE_LINE {
                return Err(ChunkedError::Malformed("chunk-size line too long"));
            }
            // httparse reads an empty size ("\r\n" alone) as 0, the last chunk; RFC 9112
            // requires at least one hex digit.
            if !rest[0].is_ascii_hexdigit() {
                return Err(ChunkedError::Malformed("invalid chunk size"));
            }
            check_extensions(&rest[..line_length - 2])?;
            if size == 0 {
                self.at += line_length;
                self.in_trailers = true;
                break;
            }
            let size = usize::try_from(size).map_err(|_| ChunkedError::TooLarge)?;
            if size > limit.saturating_sub(out.len()) {
                return Err(ChunkedError::TooLarge);
            }
            let data = &rest[line_length..];
            if data.len() < size + 2 {
                return self.more(input, limit);
            }
            if &data[size..size + 2] != b"\r\n" {
                return Err(ChunkedError::Malformed("chunk data not followed by CRLF"));
            }
            out.extend_from_slice(&data[..size]);
            self.at += line_length + size + 2;
        }
        self.finish_trailers(input)
    }

    /// Parses the trailer section as header fields, up to the blank line that ends the body.
    fn finish_trailers(&self, input: &[u8]) -> Result<Option<usize>, ChunkedError> {
        let rest = &input[self.at..];
        let mut fields = [httparse::EMPTY_HEADER; MAX_TRAILERS];
        match httparse::parse_headers(rest, &mut fields) {
            Ok(httparse::Status::Complete((length, _))) if length > MAX_TRAILER_BYTES => {
                Err(ChunkedError::Malformed("trailer section too large"))
            }
            // httparse ends a field at a bare LF; hyper does not, so the two would disagree on
            // where the body ends (the differential fuzzer's third finding). CRLF only.
            Ok(httparse::Status::Complete((length, _))) if has_bare_lf(&rest[..length]) => {
                Err(ChunkedError::Malformed("a bare LF in the trailer section"))
            }
            Ok(httparse::Status::Complete((length, _))) => Ok(Some(self.at + length)),
            Ok(httparse::Status::Partial) if rest.len() > MAX_TRAILER_BYTES => {
                Err(ChunkedError::Malformed("trailer section too large"))
            }
            Ok(httparse::Status::Partial) => Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                Err(ChunkedError::Malformed("too many trailer fields"))
            }
            Err(_) => Err(ChunkedError::Malformed("malformed trailer field")),
        }
    }

    fn more(&self, input: &[u8], limit: usize) -> Result<Option<usize>, ChunkedError> {
        if input.len() > raw_limit(limit) {
            Err(ChunkedError::TooLarge)
        } else {
            Ok(None)
        }
    }
}

/// Whether a line in `section` ends with LF alone.
fn has_bare_lf(section: &[u8]) -> bool {
    section
        .iter()
        .enumerate()
        .any(|(at, &byte)| byte == b'\n' && (at == 0 || section[at - 1] != b'\r'))
}

/// Chunk extensions (RFC 9112 7.1.1) are tokens, `=`, quoted strings and whitespace: visible
/// characters, spaces and tabs. httparse skips them unchecked; control characters are refused.
fn check_extensions(line: &[u8]) -> Result<(), ChunkedError> {
    let forbidden = |byte: &u8| (*byte < 0x20 && *byte != b'\t') || *byte == 0x7f;
    if line.iter().any(forbidden) {
        return Err(ChunkedError::Malformed(
            "control character in a chunk extension",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn run(input: &str, limit: usize) -> (Result<Option<usize>, ChunkedError>, String) {
        let mut out = Vec::new();
        let result = Decoder::default().decode(input.as_bytes(), limit, &mut out);
        (result, String::from_utf8(out).unwrap_or_default())
    }

    #[test]
    fn decodes_chunks_and_reports_the_raw_length() {
        let body = "4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\n\r\nNEXT";
        let (result, decoded) = run(body, 100);
        assert_eq!(result, Ok(Some(body.len() - 4)));
        assert_eq!(decoded, "Wikipedia");
    }

    #[test]
    fn trailers_are_parsed_and_skipped() {
        let body = "1\r\na\r\n0\r\nX-Trailer: 1\r\nOther: two words\r\n\r\n";
        assert_eq!(run(body, 100), (Ok(Some(body.len())), "a".into()));
    }

    #[test]
    fn every_prefix_of_a_valid_body_asks_for_more() {
        let body = "4\r\nWiki\r\n5\r\npedia\r\n0\r\nT: 1\r\n\r\n";
        for end in 0..body.len() {
            assert_eq!(run(&body[..end], 100).0, Ok(None), "prefix {end}");
        }
    }

    #[test]
    fn malformed_bodies_are_rejected() {
        for body in [
            "x\r\n",
            "\r\n",
            "4\r\nWikiXX",
            "-1\r\n",
            "4 4\r\nWiki\r\n",
            // Control characters in an extension: bare LF, bare CR, NUL, DEL.
            "4;a\nb\r\nWiki\r\n0\r\n\r\n",
            "4;a\rb\r\nWiki\r\n0\r\n\r\n",
            "4;a\0b\r\nWiki\r\n0\r\n\r\n",
            "4;a\x7fb\r\nWiki\r\n0\r\n\r\n",
            // A bare LF where the line should end.
            "4\nWiki\r\n0\r\n\r\n",
            // Trailers that are not header fields.
            "0\r\nnot a field\r\n\r\n",
            "0\r\nX: a\r\n b\r\n\r\n",
            "0\r\nX: a\n\r\n",
            "0\r\n\n",
        ] {
            assert!(
                matches!(run(body, 100).0, Err(ChunkedError::Malformed(_))),
                "{body:?}"
            );
        }
        let many = format!("0\r\n{}\r\n", "X: 1\r\n".repeat(MAX_TRAILERS + 1));
        assert!(matches!(run(&many, 100).0, Err(ChunkedError::Malformed(_))));
        let long = format!("0\r\nX: {}\r\n\r\n", "a".repeat(MAX_TRAILER_BYTES));
        assert!(matches!(run(&long, 100).0, Err(ChunkedError::Malformed(_))));
    }

    #[test]
    fn bodies_over_the_limit_are_too_large() {
        assert_eq!(run("65\r\n", 100).0, Err(ChunkedError::TooLarge));
        assert_eq!(run("32\r\n", 100).0, Ok(None));
        let two = format!("32\r\n{}\r\n33\r\n", "a".repeat(50));
        assert_eq!(run(&two, 100).0, Err(ChunkedError::TooLarge));
        assert_eq!(
            run("ffffffffffffffff\r\n", 100).0,
            Err(ChunkedError::TooLarge)
        );
        // Endless tiny chunks or extensions cannot make the decoder scan without bound.
        let padded = format!("1;{}", "e".repeat(raw_limit(100)));
        assert!(run(&padded, 100).0.is_err());
    }

    #[test]
    fn a_body_sent_byte_by_byte_is_decoded_once() {
        // Each call resumes after the last whole chunk: the decoded bytes are appended once.
        let body = "4\r\nWiki\r\n5\r\npedia\r\n3\r\n in\r\n0\r\n\r\n";
        let mut decoder = Decoder::default();
        let mut out = Vec::new();
        let mut result = Ok(None);
        for end in 1..=body.len() {
            result = decoder.decode(&body.as_bytes()[..end], 100, &mut out);
            if end < body.len() {
                assert_eq!(result, Ok(None));
            }
            // Only whole chunks, each once: always a prefix of the decoded body.
            assert!(b"Wikipedia in".starts_with(&out), "{out:?}");
        }
        assert_eq!(result, Ok(Some(body.len())));
        assert_eq!(out, b"Wikipedia in");
        assert!(decoder.in_trailers);
    }

    proptest! {
        /// However a valid body is split into reads, resuming gives what decoding it whole gives.
        #[test]
        fn any_split_decodes_like_the_whole(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 0..6),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let mut body = Vec::new();
            for chunk in &chunks {
                body.extend_from_slice(format!("{:x};e=\"v\"\r\n", chunk.len()).as_bytes());
                body.extend_from_slice(chunk);
                body.extend_from_slice(b"\r\n");
            }
            body.extend_from_slice(b"0\r\nT: v\r\n\r\n");
            let mut whole = Vec::new();
            let whole_result = Decoder::default().decode(&body, 4096, &mut whole);
            prop_assert_eq!(whole_result, Ok(Some(body.len())));
            let mut ends: Vec<usize> = cuts.iter().map(|cut| cut.index(body.len())).collect();
            ends.push(body.len());
            ends.sort_unstable();
            let mut decoder = Decoder::default();
            let mut pieces = Vec::new();
            let mut last = Ok(None);
            for end in ends {
                last = decoder.decode(&body[..end], 4096, &mut pieces);
            }
            prop_assert_eq!(last, whole_result);
            prop_assert_eq!(pieces, whole);
        }
    }
}

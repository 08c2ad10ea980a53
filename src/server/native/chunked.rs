//! Decoding a `Transfer-Encoding: chunked` request body (RFC 9112 §7.1).
//!
//! Bodies here are small (a few KiB at most), so the decoder is re-run from the start of the
//! body each time more bytes arrive instead of keeping state between reads: simpler to get
//! right, and the re-scan is bounded by [`raw_limit`].

/// A chunked body that cannot be accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkedError {
    Malformed(&'static str),
    /// The decoded body is larger than the limit.
    TooLarge,
}

/// Most raw bytes (chunk-size lines, extensions, trailers) a chunked body of `limit` decoded
/// bytes may take; a body that needs more is treated as too large. Bounds the work a client
/// can cause with tiny chunks or long extensions.
pub fn raw_limit(limit: usize) -> usize {
    limit * 2 + 1024
}

/// Decodes the chunked body at the start of `input` into `out` (cleared first). Returns the
/// raw bytes the body took once complete, or `Ok(None)` when more are needed.
pub fn decode(
    input: &[u8],
    limit: usize,
    out: &mut Vec<u8>,
) -> Result<Option<usize>, ChunkedError> {
    out.clear();
    let mut at = 0;
    loop {
        let Some(line_end) = find_crlf(&input[at..]) else {
            return more_or_too_large(input, limit);
        };
        let size = chunk_size(&input[at..at + line_end])?;
        at += line_end + 2;
        if size == 0 {
            return finish_trailers(input, at, limit);
        }
        if out.len() + size > limit {
            return Err(ChunkedError::TooLarge);
        }
        if input.len() < at + size + 2 {
            return more_or_too_large(input, limit);
        }
        out.extend_from_slice(&input[at..at + size]);
        at += size;
        if &input[at..at + 2] != b"\r\n" {
            return Err(ChunkedError::Malformed("chunk data not followed by CRLF"));
        }
        at += 2;
    }
}

/// Skips trailer fields up to the blank line that ends the body.
fn finish_trailers(
    input: &[u8],
    mut at: usize,
    limit: usize,
) -> Result<Option<usize>, ChunkedError> {
    loop {
        let Some(line_end) = find_crlf(&input[at..]) else {
            return more_or_too_large(input, limit);
        };
        at += line_end + 2;
        if line_end == 0 {
            return Ok(Some(at));
        }
    }
}

fn more_or_too_large(input: &[u8], limit: usize) -> Result<Option<usize>, ChunkedError> {
    if input.len() > raw_limit(limit) {
        Err(ChunkedError::TooLarge)
    } else {
        Ok(None)
    }
}

/// The size on a chunk-size line: hex digits, then optionally `;extensions` (ignored).
fn chunk_size(line: &[u8]) -> Result<usize, ChunkedError> {
    const MALFORMED: ChunkedError = ChunkedError::Malformed("invalid chunk size");
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    // Whitespace before extensions is tolerated by RFC 9112 (BWS); inside the digits it is not.
    let digits = digits.trim_ascii_end();
    if digits.is_empty() || digits.len() > 8 {
        return Err(MALFORMED);
    }
    digits.iter().try_fold(0usize, |size, &digit| {
        let value = (digit as char).to_digit(16).ok_or(MALFORMED)?;
        Ok(size * 16 + value as usize)
    })
}

fn find_crlf(input: &[u8]) -> Option<usize> {
    input.windows(2).position(|pair| pair == b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &str, limit: usize) -> (Result<Option<usize>, ChunkedError>, String) {
        let mut out = Vec::new();
        let result = decode(input.as_bytes(), limit, &mut out);
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
    fn trailers_are_skipped() {
        let body = "1\r\na\r\n0\r\nX-Trailer: 1\r\n\r\n";
        assert_eq!(run(body, 100), (Ok(Some(body.len())), "a".into()));
    }

    #[test]
    fn every_prefix_of_a_valid_body_asks_for_more() {
        let body = "4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n";
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
            "123456789\r\n",
        ] {
            assert!(
                matches!(run(body, 100).0, Err(ChunkedError::Malformed(_))),
                "{body:?}"
            );
        }
    }

    #[test]
    fn bodies_over_the_limit_are_too_large() {
        assert_eq!(run("65\r\n", 100).0, Err(ChunkedError::TooLarge));
        assert_eq!(run("32\r\n", 100).0, Ok(None));
        let two = format!("32\r\n{}\r\n33\r\n", "a".repeat(50));
        assert_eq!(run(&two, 100).0, Err(ChunkedError::TooLarge));
        // Endless tiny chunks or extensions cannot make the decoder scan without bound.
        let padded = format!("1;{}", "e".repeat(raw_limit(100)));
        assert_eq!(run(&padded, 100).0, Err(ChunkedError::TooLarge));
    }
}

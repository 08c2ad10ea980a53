//! W3C Trace Context (`traceparent`) and request ids.
//!
//! Every request belongs to a trace: an incoming valid `traceparent` is continued (same trace
//! id, its span becomes our parent), anything else starts a new trace. An invalid header is
//! ignored and counted, never an error for the client. Ids come from a per-thread fast PRNG:
//! trace ids need to be unique, not secret.

use std::fmt;

/// The trace this request's span belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: u128,
    /// This server's span for the request.
    pub span_id: u64,
    /// The caller's span, when the trace was continued.
    pub parent_span_id: Option<u64>,
    /// Trace flags; bit 0 is "sampled".
    pub flags: u8,
}

/// The outcome of reading a `traceparent` header.
pub enum Incoming {
    Absent,
    Valid(TraceContext),
    Invalid,
}

impl TraceContext {
    /// Continues the trace in `traceparent` or starts one; reports whether the header was
    /// present but invalid.
    pub fn from_header(traceparent: Option<&[u8]>) -> (TraceContext, bool) {
        match Self::parse(traceparent) {
            Incoming::Valid(context) => (context, false),
            Incoming::Absent => (Self::start(), false),
            Incoming::Invalid => (Self::start(), true),
        }
    }

    /// A new trace, sampled.
    pub fn start() -> TraceContext {
        TraceContext {
            trace_id: non_zero(|| fastrand::u128(..)),
            span_id: non_zero(|| fastrand::u64(..)),
            parent_span_id: None,
            flags: 1,
        }
    }

    pub fn parse(header: Option<&[u8]>) -> Incoming {
        let Some(header) = header else {
            return Incoming::Absent;
        };
        let header = header.trim_ascii();
        // version "-" trace-id(32) "-" parent-id(16) "-" flags(2); later versions may append
        // "-" and more fields, which version 00 readers ignore.
        if header.len() < 55 || header[2] != b'-' || header[35] != b'-' || header[52] != b'-' {
            return Incoming::Invalid;
        }
        let (Some(version), Some(trace_id), Some(parent), Some(flags)) = (
            hex(&header[0..2]),
            hex(&header[3..35]),
            hex(&header[36..52]),
            hex(&header[53..55]),
        ) else {
            return Incoming::Invalid;
        };
        let exact_length_required = version == 0;
        if version == 0xff
            || trace_id == 0
            || parent == 0
            || (exact_length_required && header.len() != 55)
            || (header.len() > 55 && header[55] != b'-')
        {
            return Incoming::Invalid;
        }
        Incoming::Valid(TraceContext {
            trace_id,
            span_id: non_zero(|| fastrand::u64(..)),
            parent_span_id: Some(parent as u64),
            flags: flags as u8,
        })
    }

    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// Appends the trace id as 32 lowercase hex digits.
    pub fn write_trace_id(&self, out: &mut Vec<u8>) {
        write_hex(out, self.trace_id, 32);
    }

    /// Appends the `traceparent` value naming this server's span.
    pub fn write_traceparent(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"00-");
        write_hex(out, self.trace_id, 32);
        out.push(b'-');
        write_hex(out, u128::from(self.span_id), 16);
        out.push(b'-');
        write_hex(out, u128::from(self.flags), 2);
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.span_id, self.flags
        )
    }
}

fn non_zero<T: PartialEq + Default>(mut draw: impl FnMut() -> T) -> T {
    loop {
        let value = draw();
        if value != T::default() {
            return value;
        }
    }
}

/// Lowercase hex digits only, as the specification requires.
fn hex(digits: &[u8]) -> Option<u128> {
    digits.iter().try_fold(0u128, |value, &digit| {
        let nibble = match digit {
            b'0'..=b'9' => digit - b'0',
            b'a'..=b'f' => digit - b'a' + 10,
            _ => return None,
        };
        Some(value << 4 | u128::from(nibble))
    })
}

fn write_hex(out: &mut Vec<u8>, value: u128, digits: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..digits).rev() {
        out.push(HEX[((value >> (shift * 4)) & 0xf) as usize]);
    }
}

/// The request's id: the client's `x-request-id` when it is sane (1 to 64 of
/// `[A-Za-z0-9._:-]`), otherwise 16 random hex digits. Stored inline so replies stay `Copy`.
#[derive(Clone, Copy)]
pub struct RequestId {
    bytes: [u8; 64],
    length: u8,
}

impl RequestId {
    pub fn from_header(header: Option<&[u8]>) -> RequestId {
        match header.map(<[u8]>::trim_ascii) {
            Some(value) if is_sane(value) => {
                let mut bytes = [0u8; 64];
                bytes[..value.len()].copy_from_slice(value);
                RequestId {
                    bytes,
                    length: value.len() as u8,
                }
            }
            _ => Self::generate(),
        }
    }

    fn generate() -> RequestId {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let random = fastrand::u64(..);
        let mut bytes = [0u8; 64];
        for (index, byte) in bytes[..16].iter_mut().enumerate() {
            *byte = HEX[((random >> ((15 - index) * 4)) & 0xf) as usize];
        }
        RequestId { bytes, length: 16 }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.length)]
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({})", self.as_str())
    }
}

impl PartialEq for RequestId {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

fn is_sane(value: &[u8]) -> bool {
    (1..=64).contains(&value.len())
        && value
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_is_continued() {
        let (context, invalid) = TraceContext::from_header(Some(EXAMPLE));
        assert!(!invalid);
        assert_eq!(context.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(context.parent_span_id, Some(0x00f067aa0ba902b7));
        assert_ne!(
            context.span_id, 0x00f067aa0ba902b7,
            "we answer with our own span"
        );
        assert!(context.sampled());
        let mut out = Vec::new();
        context.write_traceparent(&mut out);
        assert_eq!(out.len(), 55);
        assert!(out.starts_with(b"00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert_eq!(String::from_utf8(out).unwrap(), context.to_string());
    }

    #[test]
    fn invalid_traceparents_start_a_new_trace_and_are_flagged() {
        for bad in [
            &b"garbage"[..],
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            let (context, invalid) = TraceContext::from_header(Some(bad));
            assert!(invalid, "{}", String::from_utf8_lossy(bad));
            assert_eq!(context.parent_span_id, None);
        }
        let (_, invalid) = TraceContext::from_header(None);
        assert!(!invalid, "absent is not invalid");
        // A future version may append fields.
        let (context, invalid) = TraceContext::from_header(Some(
            b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz",
        ));
        assert!(!invalid && context.parent_span_id.is_some());
    }

    #[test]
    fn request_ids_are_kept_when_sane_and_generated_otherwise() {
        assert_eq!(
            RequestId::from_header(Some(b"abc-123_x.y:z")).as_str(),
            "abc-123_x.y:z"
        );
        for bad in [&b""[..], b"has space", b"quote\"", &[b'a'; 65]] {
            let generated = RequestId::from_header(Some(bad));
            assert_eq!(generated.as_str().len(), 16, "{bad:?}");
            assert!(generated.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_ne!(RequestId::from_header(None), RequestId::from_header(None));
    }
}

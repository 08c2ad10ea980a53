//! Idempotency keys: what is kept per key and how it is encoded for Redis.
//!
//! Semantics (Stripe's and the IETF httpapi draft's): the first request with a key runs and its
//! answer is kept for [`KEY_TTL`]; the same key with the same body replays that answer byte for
//! byte; with another body it is 422; while the first is still running it is 409. A key is held
//! "in flight" for at most [`IN_FLIGHT_TTL`], so a server that dies mid-request does not lock
//! the key for a day.

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::api::Format;

pub const KEY_TTL: Duration = Duration::from_secs(24 * 3600);
pub const IN_FLIGHT_TTL: Duration = Duration::from_secs(60);
/// Longest accepted `Idempotency-Key`.
pub const MAX_KEY_BYTES: usize = 255;

/// The request a key was first used with: SHA-256 of the body.
pub type Fingerprint = [u8; 32];

pub fn fingerprint(body: &[u8]) -> Fingerprint {
    Sha256::digest(body).into()
}

/// A key is 1 to 255 visible ASCII characters (no spaces or control characters).
pub fn is_valid_key(key: &[u8]) -> bool {
    (1..=MAX_KEY_BYTES).contains(&key.len()) && key.iter().all(|b| b.is_ascii_graphic())
}

/// The first answer under a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredAnswer {
    pub status: u16,
    pub format: Format,
    pub body: Vec<u8>,
}

/// What a key's first use found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Begin {
    /// The key was free and is now held for this request.
    Started,
    /// Another request with the key is running.
    InFlight,
    /// The key was used with another body.
    Mismatch,
    /// The key's first answer, to send again.
    Replay(StoredAnswer),
}

/// A key's record as stored in Redis: `P<fingerprint>` while in flight,
/// `D<fingerprint><format><status, 2 bytes big-endian><body>` once answered.
pub fn encode_in_flight(fingerprint: &Fingerprint) -> Vec<u8> {
    let mut out = Vec::with_capacity(33);
    out.push(b'P');
    out.extend_from_slice(fingerprint);
    out
}

pub fn encode_done(fingerprint: &Fingerprint, answer: &StoredAnswer) -> Vec<u8> {
    let mut out = Vec::with_capacity(36 + answer.body.len());
    out.push(b'D');
    out.extend_from_slice(fingerprint);
    out.push(match answer.format {
        Format::Json => b'j',
        Format::MsgPack => b'm',
    });
    out.extend_from_slice(&answer.status.to_be_bytes());
    out.extend_from_slice(&answer.body);
    out
}

/// Judges a request with `fingerprint` against an existing record. An unreadable record (not
/// written by this code) is treated as a mismatch rather than replayed.
pub fn judge_existing(record: &[u8], fingerprint: &Fingerprint) -> Begin {
    let Some((&kind, rest)) = record.split_first() else {
        return Begin::Mismatch;
    };
    let Some((stored, rest)) = rest.split_first_chunk::<32>() else {
        return Begin::Mismatch;
    };
    if stored != fingerprint {
        return Begin::Mismatch;
    }
    match (kind, rest) {
        (b'P', _) => Begin::InFlight,
        (b'D', [format, high, low, body @ ..]) => {
            let format = match format {
                b'j' => Format::Json,
                b'm' => Format::MsgPack,
                _ => return Begin::Mismatch,
            };
            Begin::Replay(StoredAnswer {
                status: u16::from_be_bytes([*high, *low]),
                format,
                body: body.to_vec(),
            })
        }
        _ => Begin::Mismatch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let fp = fingerprint(br#"{"choice":"rock"}"#);
        let other = fingerprint(br#"{"choice":"paper"}"#);
        assert_eq!(judge_existing(&encode_in_flight(&fp), &fp), Begin::InFlight);
        assert_eq!(
            judge_existing(&encode_in_flight(&fp), &other),
            Begin::Mismatch
        );
        let answer = StoredAnswer {
            status: 200,
            format: Format::MsgPack,
            body: b"\x81\xa1a\x01".to_vec(),
        };
        assert_eq!(
            judge_existing(&encode_done(&fp, &answer), &fp),
            Begin::Replay(answer.clone())
        );
        assert_eq!(
            judge_existing(&encode_done(&fp, &answer), &other),
            Begin::Mismatch
        );
        assert_eq!(judge_existing(b"", &fp), Begin::Mismatch);
        assert_eq!(judge_existing(b"D", &fp), Begin::Mismatch);
    }

    #[test]
    fn keys_are_visible_ascii() {
        assert!(is_valid_key(b"4f1c-22aa_b:c/d"));
        for bad in [
            &b""[..],
            b"has space",
            b"tab\t",
            "é".as_bytes(),
            &[b'a'; 256],
        ] {
            assert!(!is_valid_key(bad), "{bad:?}");
        }
    }
}

//! WebSocket frames (RFC 6455 section 5), decoded in place from a connection's read buffer and
//! encoded into its write buffer. tungstenite's [`FrameHeader`] parses and formats the headers;
//! the rules a server must enforce on top (client frames masked, no reserved bits without an
//! extension, control frames short and unfragmented, text valid UTF-8, a message size limit,
//! valid close codes) are here, each mapped to the close code the RFC names for it.
//!
//! Why not tungstenite's `WebSocket` itself: it keeps a read buffer per connection for as long as
//! the connection lives (5.7 KB idle, 13.8 KB after one 4 KB message, docs/BENCHMARKS.md
//! "WebSocket crates"); the connection loop here reads into a per-thread buffer and keeps bytes
//! only for a frame that arrived in part.

use std::io::Cursor;
use std::ops::Range;

use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

use protocol::close;

/// A complete frame found at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded {
    pub kind: Kind,
    pub fin: bool,
    /// Where the (unmasked) payload is in the buffer.
    pub payload: Range<usize>,
    /// Bytes the frame took, header included.
    pub length: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Text,
    Binary,
    Continuation,
    Ping,
    Pong,
    Close,
}

/// Why the connection must close, as the close code to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Violation(pub u16);

/// Decodes the frame at the start of `buffer`, unmasking its payload in place. `Ok(None)`: the
/// frame is not all there yet. `max_payload` bounds a data frame's payload (control frames are
/// bounded at 125 bytes by the RFC).
pub fn decode(buffer: &mut [u8], max_payload: usize) -> Result<Option<Decoded>, Violation> {
    let mut cursor = Cursor::new(&buffer[..]);
    let (header, length) = match FrameHeader::parse(&mut cursor) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => return Ok(None),
        Err(_) => return Err(Violation(close::PROTOCOL_ERROR)),
    };
    let header_length = cursor.position() as usize;
    // No extension was negotiated, so no reserved bit may be set.
    if header.rsv1 || header.rsv2 || header.rsv3 {
        return Err(Violation(close::PROTOCOL_ERROR));
    }
    // A client must mask every frame (section 5.1).
    let Some(mask) = header.mask else {
        return Err(Violation(close::PROTOCOL_ERROR));
    };
    let kind = match header.opcode {
        OpCode::Data(Data::Text) => Kind::Text,
        OpCode::Data(Data::Binary) => Kind::Binary,
        OpCode::Data(Data::Continue) => Kind::Continuation,
        OpCode::Control(Control::Ping) => Kind::Ping,
        OpCode::Control(Control::Pong) => Kind::Pong,
        OpCode::Control(Control::Close) => Kind::Close,
        _ => return Err(Violation(close::PROTOCOL_ERROR)),
    };
    let control = matches!(kind, Kind::Ping | Kind::Pong | Kind::Close);
    if control && (!header.is_final || length > 125) {
        return Err(Violation(close::PROTOCOL_ERROR));
    }
    if length > max_payload as u64 {
        return Err(Violation(close::TOO_BIG));
    }
    // Bounded by `max_payload` just above.
    let length = length as usize;
    if buffer.len() - header_length < length {
        return Ok(None);
    }
    let payload = header_length..header_length + length;
    for (index, byte) in buffer[payload.clone()].iter_mut().enumerate() {
        *byte ^= mask[index & 3];
    }
    Ok(Some(Decoded {
        kind,
        fin: header.is_final,
        payload,
        length: header_length + length,
    }))
}

/// The code of a close frame's payload, checked as section 7.4 requires: empty (no code), or a
/// code that may be sent followed by UTF-8.
pub fn close_code(payload: &[u8]) -> Result<Option<u16>, Violation> {
    match payload {
        [] => Ok(None),
        [_] => Err(Violation(close::PROTOCOL_ERROR)),
        [high, low, reason @ ..] => {
            let code = u16::from_be_bytes([*high, *low]);
            let sendable = matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999);
            if !sendable || std::str::from_utf8(reason).is_err() {
                return Err(Violation(close::PROTOCOL_ERROR));
            }
            Ok(Some(code))
        }
    }
}

/// Appends an unmasked frame (servers never mask) carrying `payload`.
pub fn encode(out: &mut Vec<u8>, kind: Kind, payload: &[u8]) {
    let opcode = match kind {
        Kind::Text => OpCode::Data(Data::Text),
        Kind::Binary => OpCode::Data(Data::Binary),
        Kind::Continuation => OpCode::Data(Data::Continue),
        Kind::Ping => OpCode::Control(Control::Ping),
        Kind::Pong => OpCode::Control(Control::Pong),
        Kind::Close => OpCode::Control(Control::Close),
    };
    let header = FrameHeader {
        is_final: true,
        opcode,
        mask: None,
        ..FrameHeader::default()
    };
    // Writing into a Vec cannot fail.
    let _ = header.format(payload.len() as u64, out);
    out.extend_from_slice(payload);
}

/// Appends a close frame with `code` and a short reason (cut to fit the 125-byte limit).
pub fn encode_close(out: &mut Vec<u8>, code: u16, reason: &str) {
    let mut payload = [0u8; 125];
    payload[..2].copy_from_slice(&code.to_be_bytes());
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    payload[2..2 + end].copy_from_slice(&reason.as_bytes()[..end]);
    encode(out, Kind::Close, &payload[..2 + end]);
}

/// The `Sec-WebSocket-Accept` value for a client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &[u8]) -> String {
    tungstenite::handshake::derive_accept_key(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame, as a browser would send it.
    fn client_frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut frame = vec![(u8::from(fin) << 7) | opcode];
        match payload.len() {
            n @ 0..=125 => frame.push(0x80 | n as u8),
            n @ 126..=65535 => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        frame
    }

    #[test]
    fn a_masked_text_frame_decodes_in_place() {
        let mut frame = client_frame(0x1, true, b"Hello");
        let decoded = decode(&mut frame, 4096).unwrap().unwrap();
        assert_eq!(decoded.kind, Kind::Text);
        assert!(decoded.fin);
        assert_eq!(&frame[decoded.payload.clone()], b"Hello");
        assert_eq!(decoded.length, frame.len());
    }

    #[test]
    fn a_frame_in_part_waits_for_the_rest() {
        let frame = client_frame(0x2, true, &[7; 300]);
        for cut in [0, 1, 2, 3, 5, 8, 100, frame.len() - 1] {
            let mut part = frame[..cut].to_vec();
            assert_eq!(decode(&mut part, 4096), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn violations_map_to_the_rfcs_close_codes() {
        // Unmasked.
        let mut unmasked = vec![0x81, 0x02, b'h', b'i'];
        assert_eq!(decode(&mut unmasked, 4096), Err(Violation(1002)));
        // Reserved bit.
        let mut reserved = client_frame(0x1, true, b"x");
        reserved[0] |= 0x40;
        assert_eq!(decode(&mut reserved, 4096), Err(Violation(1002)));
        // Unknown opcode.
        assert_eq!(
            decode(&mut client_frame(0x3, true, b""), 4096),
            Err(Violation(1002))
        );
        // Fragmented or long control frames.
        assert_eq!(
            decode(&mut client_frame(0x9, false, b""), 4096),
            Err(Violation(1002))
        );
        assert_eq!(
            decode(&mut client_frame(0x9, true, &[0; 126]), 4096),
            Err(Violation(1002))
        );
        // Too big, refused from the header alone (before the payload arrives).
        let mut big = client_frame(0x1, true, &[b'a'; 5000]);
        big.truncate(20);
        assert_eq!(decode(&mut big, 4096), Err(Violation(1009)));
    }

    #[test]
    fn close_payloads_are_checked() {
        assert_eq!(close_code(b""), Ok(None));
        assert_eq!(close_code(&[0x03]), Err(Violation(1002)));
        assert_eq!(close_code(&[0x03, 0xe8]), Ok(Some(1000)));
        assert_eq!(
            close_code(&[0x03, 0xed]),
            Err(Violation(1002)),
            "1005 is never sent"
        );
        assert_eq!(close_code(&[0x03, 0xe8, 0xff]), Err(Violation(1002)));
        assert_eq!(close_code(&[0x0f, 0xa1, b'o', b'k']), Ok(Some(4001)));
    }

    #[test]
    fn server_frames_are_unmasked_and_sized() {
        for length in [0, 125, 126, 65535, 65536] {
            let mut out = Vec::new();
            encode(&mut out, Kind::Binary, &vec![1; length]);
            let header = out.len() - length;
            assert_eq!(
                header,
                if length < 126 {
                    2
                } else if length < 65536 {
                    4
                } else {
                    10
                }
            );
            assert_eq!(out[0], 0x82);
            assert_eq!(out[1] & 0x80, 0, "not masked");
        }
        let mut out = Vec::new();
        encode_close(&mut out, 4001, &"é".repeat(100));
        assert!(out.len() <= 127);
        assert_eq!(&out[2..4], &4001u16.to_be_bytes());
        assert!(std::str::from_utf8(&out[4..]).is_ok());
    }

    #[test]
    fn the_accept_key_matches_the_rfcs_example() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}

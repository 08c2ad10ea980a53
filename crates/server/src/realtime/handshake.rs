//! The opening handshake (RFC 6455 section 4.2): what makes a `GET /ws` a valid upgrade, the
//! subprotocol chosen, and the `101 Switching Protocols` answer.

use protocol::{SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK};

/// How messages are encoded on a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// JSON in text frames (`guess-game.v1.json`, the default).
    Json,
    /// MessagePack in binary frames (`guess-game.v1.msgpack`).
    MessagePack,
}

impl Codec {
    pub const fn subprotocol(self) -> &'static str {
        match self {
            Codec::Json => SUBPROTOCOL_JSON,
            Codec::MessagePack => SUBPROTOCOL_MSGPACK,
        }
    }
}

/// The header fields of an upgrade request, read from its head only when the path is `/ws`
/// (every other request never pays for them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebSocketHeaders {
    /// `Upgrade` lists `websocket`.
    pub upgrade: bool,
    /// `Connection` lists `upgrade`.
    pub connection_upgrade: bool,
    pub version: Option<Vec<u8>>,
    pub key: Option<Vec<u8>>,
    /// Every `Sec-WebSocket-Protocol` value, joined with commas.
    pub protocols: Vec<u8>,
    /// Whether a `Sec-WebSocket-Protocol` field was present at all.
    pub protocols_offered: bool,
}

impl WebSocketHeaders {
    /// Reads the fields from a complete request head (the bytes up to and including the blank
    /// line). A head the engine already accepted parses again; anything else reads as no
    /// fields, which the checks then refuse.
    pub fn read(head: &[u8]) -> WebSocketHeaders {
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut request = httparse::Request::new(&mut fields);
        let mut found = WebSocketHeaders::default();
        if request.parse(head).is_err() {
            return found;
        }
        for field in request.headers.iter() {
            let name = field.name;
            let value = field.value;
            if name.eq_ignore_ascii_case("upgrade") {
                found.upgrade |= lists(value, b"websocket");
            } else if name.eq_ignore_ascii_case("connection") {
                found.connection_upgrade |= lists(value, b"upgrade");
            } else if name.eq_ignore_ascii_case("sec-websocket-version") {
                found.version = Some(value.to_vec());
            } else if name.eq_ignore_ascii_case("sec-websocket-key") {
                found.key = Some(value.to_vec());
            } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
                if found.protocols_offered {
                    found.protocols.push(b',');
                }
                found.protocols.extend_from_slice(value);
                found.protocols_offered = true;
            }
        }
        found
    }

    /// Checks the upgrade and picks the subprotocol.
    pub fn accept(&self) -> Result<Accepted, HandshakeError> {
        if !self.upgrade || !self.connection_upgrade {
            return Err(HandshakeError::NotAnUpgrade);
        }
        if self.version.as_deref().map(<[u8]>::trim_ascii) != Some(b"13") {
            return Err(HandshakeError::Version);
        }
        let key = self
            .key
            .as_deref()
            .map(<[u8]>::trim_ascii)
            .ok_or(HandshakeError::Key)?;
        // The key is 16 random bytes in base64: 24 characters.
        use base64::Engine;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(key)
            .map_err(|_| HandshakeError::Key)?;
        if decoded.len() != 16 {
            return Err(HandshakeError::Key);
        }
        let codec = if !self.protocols_offered {
            Codec::Json
        } else {
            let offered: Vec<&[u8]> = self
                .protocols
                .split(|&b| b == b',')
                .map(<[u8]>::trim_ascii)
                .collect();
            [Codec::Json, Codec::MessagePack]
                .into_iter()
                .find(|codec| offered.contains(&codec.subprotocol().as_bytes()))
                .ok_or(HandshakeError::Subprotocol)?
        };
        Ok(Accepted {
            accept: super::frames::accept_key(key),
            codec,
            echo_protocol: self.protocols_offered,
        })
    }
}

fn lists(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|item| item.trim_ascii().eq_ignore_ascii_case(token))
}

/// Why an upgrade request is refused (a problem document, status by kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("this endpoint takes a WebSocket upgrade (Upgrade: websocket, Connection: Upgrade)")]
    NotAnUpgrade,
    #[error("Sec-WebSocket-Version must be 13")]
    Version,
    #[error("Sec-WebSocket-Key must be 16 bytes in base64")]
    Key,
    #[error("no supported subprotocol offered (guess-game.v1.json, guess-game.v1.msgpack)")]
    Subprotocol,
}

/// A valid upgrade.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub accept: String,
    pub codec: Codec,
    /// The client offered subprotocols, so the answer names the one chosen.
    pub echo_protocol: bool,
}

impl Accepted {
    /// The `101 Switching Protocols` head.
    pub fn response(&self) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
            self.accept
        );
        if self.echo_protocol {
            head.push_str("Sec-WebSocket-Protocol: ");
            head.push_str(self.codec.subprotocol());
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        head.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &[u8] = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

    fn head(extra: &str) -> Vec<u8> {
        let mut head = HEAD.to_vec();
        head.extend_from_slice(extra.as_bytes());
        head.extend_from_slice(b"\r\n");
        head
    }

    #[test]
    fn a_browser_upgrade_is_accepted_with_json_by_default() {
        let accepted = WebSocketHeaders::read(&head("")).accept().unwrap();
        assert_eq!(accepted.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(accepted.codec, Codec::Json);
        let response = String::from_utf8(accepted.response()).unwrap();
        assert!(response.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(!response.contains("Sec-WebSocket-Protocol"));
    }

    #[test]
    fn the_subprotocol_is_negotiated() {
        let offered = "Sec-WebSocket-Protocol: chat, guess-game.v1.msgpack\r\n";
        let accepted = WebSocketHeaders::read(&head(offered)).accept().unwrap();
        assert_eq!(accepted.codec, Codec::MessagePack);
        assert!(
            String::from_utf8(accepted.response())
                .unwrap()
                .contains("Sec-WebSocket-Protocol: guess-game.v1.msgpack\r\n")
        );
        let unknown = "Sec-WebSocket-Protocol: chat\r\n";
        assert_eq!(
            WebSocketHeaders::read(&head(unknown)).accept(),
            Err(HandshakeError::Subprotocol)
        );
    }

    #[test]
    fn bad_upgrades_are_refused() {
        let plain = b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(
            WebSocketHeaders::read(plain).accept(),
            Err(HandshakeError::NotAnUpgrade)
        );
        let old = String::from_utf8(head(""))
            .unwrap()
            .replace("Version: 13", "Version: 8");
        assert_eq!(
            WebSocketHeaders::read(old.as_bytes()).accept(),
            Err(HandshakeError::Version)
        );
        let short = String::from_utf8(head(""))
            .unwrap()
            .replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ=");
        assert_eq!(
            WebSocketHeaders::read(short.as_bytes()).accept(),
            Err(HandshakeError::Key)
        );
    }
}

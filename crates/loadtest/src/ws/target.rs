//! Where the WebSocket scenarios connect, and how: the target's address (loopback unless told
//! otherwise), the local source addresses connections are spread over, and the upgrade itself
//! (tokio-tungstenite, an implementation independent of the server's frame code).
//!
//! One local address gives a loopback client about 28,000 ephemeral ports (Linux's default
//! range). More connections than that to one server port need more source addresses; every
//! 127.0.0.0/8 address is loopback on Linux, so connections are spread over 127.0.0.1,
//! 127.0.0.2, … as the port range requires.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

use client::ServerUrl;
use protocol::{ClientMessage, ServerMessage};

/// An upgraded connection.
pub type Socket = WebSocketStream<TcpStream>;

/// The client's read buffer. Server messages are far smaller; tungstenite's default (128 KiB
/// per connection) would make 15,000 connections cost the tester 2 GiB.
const READ_BUFFER_BYTES: usize = 4096;
/// Used when /proc cannot say: Linux's default ephemeral range, 32768-60999.
const DEFAULT_EPHEMERAL_PORTS: usize = 28_232;

/// A server to connect to.
#[derive(Clone, Debug)]
pub struct Target {
    pub address: SocketAddr,
    /// `host:port`, for the `Host` header.
    pub authority: String,
    /// The path prefix of the server's routes (usually empty).
    pub base_path: String,
    /// Local addresses to bind before connecting, used in turn; empty: the kernel chooses.
    sources: Vec<Ipv4Addr>,
}

impl Target {
    /// Resolves `url` (`http://` or `ws://`). A target that is not a loopback address is refused
    /// unless `allow_remote`: the scenarios open thousands of connections and make as many
    /// accounts.
    pub async fn resolve(url: &str, allow_remote: bool) -> Result<Target, String> {
        let http_url = match url.strip_prefix("ws://") {
            Some(rest) => format!("http://{rest}"),
            None => url.to_owned(),
        };
        let server = ServerUrl::parse(&http_url).map_err(|error| error.to_string())?;
        if server.is_https() {
            return Err(crate::PLAIN_ONLY.to_owned());
        }
        let address = tokio::net::lookup_host(server.authority())
            .await
            .map_err(|error| format!("cannot resolve {}: {error}", server.authority()))?
            .next()
            .ok_or_else(|| format!("{} resolves to no address", server.authority()))?;
        if !allow_remote && !address.ip().is_loopback() {
            return Err(format!(
                "{address} is not a loopback address; pass --allow-remote to load another machine"
            ));
        }
        Ok(Target {
            address,
            authority: server.authority().to_owned(),
            base_path: server.target(""),
            sources: Vec::new(),
        })
    }

    /// Spreads `connections` over `requested` source addresses (0: as many as the ephemeral
    /// port range needs). Only a loopback IPv4 target has a choice of source addresses.
    pub fn spread(&mut self, connections: usize, requested: u8) -> Result<usize, String> {
        let count = match requested {
            0 => connections.div_ceil(ports_per_address()).max(1),
            count => usize::from(count),
        };
        if count == 1 {
            self.sources.clear();
            return Ok(1);
        }
        let loopback_v4 = matches!(self.address.ip(), IpAddr::V4(ip) if ip.is_loopback());
        if !loopback_v4 {
            return Err(format!(
                "{connections} connections need {count} source addresses, which only a \
                 127.x.x.x target can have; use fewer connections or several testers"
            ));
        }
        if count > 254 {
            return Err("at most 254 source addresses (127.0.0.1-127.0.0.254)".to_owned());
        }
        self.sources = (1..=count as u8)
            .map(|last| Ipv4Addr::new(127, 0, 0, last))
            .collect();
        Ok(count)
    }

    /// `base_path` + `path`.
    pub fn path(&self, path: &str) -> String {
        format!("{}{}", self.base_path, path)
    }

    /// Opens connection number `index` to `path` and upgrades it, sending `token` as a bearer
    /// token when given, all within `timeout`. The error is the failure's kind for the report.
    pub async fn open(
        &self,
        index: usize,
        path: &str,
        token: Option<&str>,
        timeout: Duration,
    ) -> Result<Socket, String> {
        match tokio::time::timeout(timeout, self.open_now(index, path, token)).await {
            Ok(opened) => opened,
            Err(_) => Err("connect_timeout".to_owned()),
        }
    }

    async fn open_now(
        &self,
        index: usize,
        path: &str,
        token: Option<&str>,
    ) -> Result<Socket, String> {
        let stream = match self.sources.get(index % self.sources.len().max(1)) {
            None => TcpStream::connect(self.address).await,
            Some(source) => {
                let socket = TcpSocket::new_v4().map_err(|error| io_kind(&error))?;
                socket
                    .bind(SocketAddr::new(IpAddr::V4(*source), 0))
                    .map_err(|error| io_kind(&error))?;
                socket.connect(self.address).await
            }
        }
        .map_err(|error| io_kind(&error))?;
        let _ = stream.set_nodelay(true);
        let url = format!("ws://{}{}", self.authority, self.path(path));
        let mut request = url
            .into_client_request()
            .map_err(|_| "invalid_request".to_owned())?;
        if let Some(token) = token {
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| "invalid_token".to_owned())?;
            request.headers_mut().insert("authorization", value);
        }
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_BYTES)
            .write_buffer_size(0);
        let (socket, _) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(config))
                .await
                .map_err(|error| error_kind(&error))?;
        Ok(socket)
    }
}

/// Sends `hello` and waits for the `welcome`, within `timeout`; returns its resume token.
pub async fn greet(socket: &mut Socket, timeout: Duration) -> Result<String, String> {
    let hello = ClientMessage::Hello { id: Some(0) };
    send(socket, &hello).await?;
    let welcomed = async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    return match serde_json::from_str::<ServerMessage>(&text) {
                        Ok(ServerMessage::Welcome { resume_token, .. }) => Ok(resume_token),
                        Ok(ServerMessage::Error { code, .. }) => Err(format!("hello_{code}")),
                        Ok(_) => Err("hello_unexpected_answer".to_owned()),
                        Err(_) => Err("undecodable_message".to_owned()),
                    };
                }
                Some(Ok(Message::Close(frame))) => return Err(close_kind(frame.as_ref())),
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error_kind(&error)),
                None => return Err("closed_without_close_frame".to_owned()),
            }
        }
    };
    tokio::time::timeout(timeout, welcomed)
        .await
        .unwrap_or_else(|_| Err("timeout_welcome".to_owned()))
}

/// Sends one message as JSON in a text frame.
pub async fn send(socket: &mut Socket, message: &ClientMessage) -> Result<(), String> {
    // Serializing the protocol's own types into a String cannot fail.
    let text = serde_json::to_string(message).unwrap_or_default();
    socket
        .send(Message::text(text))
        .await
        .map_err(|error| error_kind(&error))
}

/// Closes politely: a close frame, then the server's answer, within a second.
pub async fn close(socket: &mut Socket) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        if socket.close(None).await.is_ok() {
            while let Some(Ok(_)) = socket.next().await {}
        }
    })
    .await;
}

/// The report's name for a close frame the server sent.
pub fn close_kind(frame: Option<&tungstenite::protocol::CloseFrame>) -> String {
    match frame {
        Some(frame) => format!("closed_{}", u16::from(frame.code)),
        None => "closed_without_code".to_owned(),
    }
}

/// Whether a close frame asks the client to come back elsewhere and resume: 1001 (going away:
/// the instance drained) or 1012 (service restart).
pub fn close_invites_resume(frame: Option<&tungstenite::protocol::CloseFrame>) -> bool {
    frame.is_some_and(|frame| matches!(u16::from(frame.code), 1001 | 1012))
}

/// Whether a failed read or write is the connection dropping (the instance died or was cut
/// off) rather than something this client or the server's protocol code did wrong.
pub fn is_drop(error: &tungstenite::Error) -> bool {
    use std::io::ErrorKind;
    use tungstenite::error::ProtocolError;
    match error {
        tungstenite::Error::Io(error) => matches!(
            error.kind(),
            ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::BrokenPipe
                | ErrorKind::UnexpectedEof
        ),
        tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => true,
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => true,
        _ => false,
    }
}

/// The report's name for a failed WebSocket operation.
pub fn error_kind(error: &tungstenite::Error) -> String {
    match error {
        tungstenite::Error::Http(response) => format!("upgrade_{}", response.status().as_u16()),
        tungstenite::Error::Io(error) => io_kind(error),
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            "closed".to_owned()
        }
        tungstenite::Error::Protocol(_) => "protocol_error".to_owned(),
        tungstenite::Error::Capacity(_) => "message_too_big".to_owned(),
        _ => "websocket_error".to_owned(),
    }
}

fn io_kind(error: &std::io::Error) -> String {
    use std::io::ErrorKind;
    let kind = match error.kind() {
        ErrorKind::ConnectionRefused => "connect_refused",
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => "connection_reset",
        ErrorKind::AddrNotAvailable | ErrorKind::AddrInUse => "no_source_port",
        ErrorKind::TimedOut => "connect_timeout",
        ErrorKind::UnexpectedEof => "closed_without_close_frame",
        _ if error.raw_os_error() == Some(libc::EMFILE) => "too_many_open_files",
        _ => "io_error",
    };
    kind.to_owned()
}

/// Ephemeral ports one source address offers (with a tenth kept for other programs).
fn ports_per_address() -> usize {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| parse_port_range(&text))
        .unwrap_or(DEFAULT_EPHEMERAL_PORTS);
    (range * 9 / 10).max(1)
}

fn parse_port_range(text: &str) -> Option<usize> {
    let mut bounds = text.split_whitespace().map(str::parse::<usize>);
    let low = bounds.next()?.ok()?;
    let high = bounds.next()?.ok()?;
    (high >= low).then(|| high - low + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_range_is_read_from_procs_format() {
        assert_eq!(parse_port_range("32768\t60999\n"), Some(28_232));
        assert_eq!(parse_port_range("60999 32768"), None);
        assert_eq!(parse_port_range(""), None);
    }

    #[tokio::test]
    async fn remote_targets_are_refused_unless_allowed_and_sources_spread_on_loopback() {
        let refused = Target::resolve("http://192.0.2.1:8080", false).await;
        assert!(refused.unwrap_err().contains("--allow-remote"));
        assert!(Target::resolve("http://192.0.2.1:8080", true).await.is_ok());

        let mut target = Target::resolve("ws://127.0.0.1:9/base/", false)
            .await
            .unwrap();
        assert_eq!(target.path("/ws"), "/base/ws");
        assert_eq!(target.spread(10, 0).unwrap(), 1);
        assert!(target.sources.is_empty(), "one address: the kernel chooses");
        assert_eq!(target.spread(10, 3).unwrap(), 3);
        assert_eq!(target.sources[2], Ipv4Addr::new(127, 0, 0, 3));
        let needed = ports_per_address() * 2 + 1;
        assert_eq!(target.spread(needed, 0).unwrap(), 3);

        let mut remote = Target::resolve("http://192.0.2.1:8080", true)
            .await
            .unwrap();
        assert!(remote.spread(10, 2).is_err());
    }
}

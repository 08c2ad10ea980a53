//! One WebSocket connection to `/ws`, speaking `guess-game.v1.json`, with a deadline on every
//! step that waits for the server. `wss://` when the server's URL is https, its certificate
//! verified against the same roots as the HTTP calls (the URL's `Trust`).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use guess_game::client::ServerUrl;
use protocol::{ClientMessage, SUBPROTOCOL_JSON, ServerMessage};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

/// The largest message taken from the server. Its messages are a few hundred bytes; the
/// protocol caps what clients send at 4 KiB, and a client should not trust the other side to
/// be smaller than that by more than a little.
const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Why a connection could not be opened.
pub enum OpenError {
    /// The access token was refused (401): sign in again, then retry.
    Unauthorized,
    /// Anything that may pass: nothing listening, a timeout, a 503.
    Unreachable(String),
    /// The server speaks something else: retrying will not help.
    Refused(String),
}

/// What came from the server.
pub enum Incoming {
    Message(ServerMessage),
    /// A frame that keeps the connection alive but says nothing (ping, pong).
    Noise,
    /// A text frame that is not a message this client knows.
    Unreadable(String),
    Closed {
        code: u16,
        reason: String,
    },
    /// The connection failed or ended without a close frame.
    Failed(String),
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct Link {
    socket: Socket,
    timeout: Duration,
}

impl Link {
    /// Connects and upgrades with the bearer token, within `timeout` in all.
    pub async fn open(
        server: &ServerUrl,
        token: &str,
        timeout: Duration,
    ) -> Result<Link, OpenError> {
        match tokio::time::timeout(timeout, Link::upgrade(server, token)).await {
            Ok(Ok(socket)) => Ok(Link { socket, timeout }),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(OpenError::Unreachable(format!(
                "no WebSocket upgrade within {}",
                humantime::format_duration(timeout)
            ))),
        }
    }

    async fn upgrade(server: &ServerUrl, token: &str) -> Result<Socket, OpenError> {
        let url = server.websocket_url("/ws");
        let mut request = url.as_str().into_client_request().map_err(|error| {
            OpenError::Refused(format!("{url} is not a WebSocket URL: {error}"))
        })?;
        let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| OpenError::Refused("the access token is not a header value".to_owned()))?;
        let headers = request.headers_mut();
        headers.insert("authorization", bearer);
        headers.insert(
            "sec-websocket-protocol",
            HeaderValue::from_static(SUBPROTOCOL_JSON),
        );
        let stream = TcpStream::connect(server.authority())
            .await
            .map_err(|error| {
                OpenError::Unreachable(format!("cannot connect to {}: {error}", server.authority()))
            })?;
        // Moves are tiny and latency is the game: no Nagle delay.
        let _ = stream.set_nodelay(true);
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE_BYTES))
            .max_frame_size(Some(MAX_MESSAGE_BYTES));
        // A TLS configuration that cannot be built will not be mended by retrying.
        let connector = match server.is_https() {
            true => server
                .trust()
                .tls_config()
                .map(Connector::Rustls)
                .map_err(|error| OpenError::Refused(error.to_string()))?,
            false => Connector::Plain,
        };
        let (socket, response) = tokio_tungstenite::client_async_tls_with_config(
            request,
            stream,
            Some(config),
            Some(connector),
        )
        .await
        .map_err(|error| match error {
            WsError::Http(response) if response.status() == StatusCode::UNAUTHORIZED => {
                OpenError::Unauthorized
            }
            WsError::Http(response) if response.status().is_server_error() => {
                OpenError::Unreachable(format!("the upgrade was answered {}", response.status()))
            }
            WsError::Http(response) => {
                OpenError::Refused(format!("the upgrade was answered {}", response.status()))
            }
            other => OpenError::Unreachable(format!("the upgrade failed: {other}")),
        })?;
        let agreed = response
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|value| value.to_str().ok());
        if agreed != Some(SUBPROTOCOL_JSON) {
            return Err(OpenError::Refused(format!(
                "the server did not agree to {SUBPROTOCOL_JSON} (it chose {agreed:?})"
            )));
        }
        Ok(socket)
    }

    /// Sends one message, within the timeout.
    pub async fn send(&mut self, message: &ClientMessage) -> Result<(), String> {
        let text = serde_json::to_string(message).map_err(|error| error.to_string())?;
        match tokio::time::timeout(self.timeout, self.socket.send(Message::text(text))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(format!("sending failed: {error}")),
            Err(_) => Err("the server did not take a message in time".to_owned()),
        }
    }

    /// The next frame. Cancel-safe: a frame half read stays buffered in the stream for the
    /// next call, so this can be a `select!` branch.
    pub async fn next(&mut self) -> Incoming {
        match self.socket.next().await {
            Some(Ok(Message::Text(text))) => match serde_json::from_str(text.as_str()) {
                Ok(message) => Incoming::Message(message),
                Err(error) => Incoming::Unreadable(error.to_string()),
            },
            Some(Ok(Message::Close(frame))) => {
                let (code, reason) = frame.map_or((1005, String::new()), |frame| {
                    (u16::from(frame.code), frame.reason.to_string())
                });
                Incoming::Closed { code, reason }
            }
            Some(Ok(Message::Binary(_))) => {
                Incoming::Unreadable("a binary frame on a JSON connection".to_owned())
            }
            Some(Ok(_)) => Incoming::Noise,
            Some(Err(error)) => Incoming::Failed(error.to_string()),
            None => Incoming::Failed("the connection ended".to_owned()),
        }
    }

    /// Closes with 1000 and waits, briefly, for the server's close in answer.
    pub async fn close(mut self) {
        let wait = self.timeout.min(Duration::from_secs(2));
        let _ = tokio::time::timeout(wait, async {
            let _ = self.socket.close(None).await;
            while let Some(Ok(_)) = self.socket.next().await {}
        })
        .await;
    }
}

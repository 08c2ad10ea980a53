//! Real-time play over WebSocket against the real server on port 0, spoken by an independent
//! client implementation (tokio-tungstenite), not the server's own frame code.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::accounts::{guest, post, send};
use crate::helpers::{TestApp, spawn_app_with};

const WAIT: Duration = Duration::from_secs(10);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A player: an account and its connection.
pub(crate) struct Player {
    pub socket: Socket,
    pub token: String,
    pub account: String,
    /// From the latest `welcome` or `resumed`.
    pub resume_token: String,
    next_id: u64,
    /// Messages read while looking for another one, in order: later waits see them first.
    backlog: std::collections::VecDeque<Value>,
}

pub(crate) async fn app() -> TestApp {
    spawn_app_with(|settings| {
        settings.accounts.trust_player_header = false;
        settings.accounts.accounts_per_address_per_hour = 0;
    })
    .await
}

pub(crate) async fn connect_with(
    app: &TestApp,
    token: &str,
    protocol: Option<&str>,
) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    connect_at(&app.address.to_string(), token, protocol).await
}

/// Opens a WebSocket to the server at `address` (`host:port`).
pub(crate) async fn connect_at(
    address: &str,
    token: &str,
    protocol: Option<&str>,
) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    let mut request = format!("ws://{address}/ws").into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    if let Some(protocol) = protocol {
        request
            .headers_mut()
            .insert("sec-websocket-protocol", protocol.parse().unwrap());
    }
    let (socket, _) = tokio_tungstenite::connect_async(request).await?;
    Ok(socket)
}

impl Player {
    /// A new guest, connected and greeted.
    pub(crate) async fn join(app: &TestApp) -> Player {
        let (account, token, _, _) = guest(app).await;
        let socket = connect_with(app, &token, None).await.expect("upgrade");
        let mut player = Player::on(socket, token, account);
        player.hello().await;
        player
    }

    pub(crate) fn on(socket: Socket, token: String, account: String) -> Player {
        Player {
            socket,
            token,
            account,
            resume_token: String::new(),
            next_id: 1,
            backlog: std::collections::VecDeque::new(),
        }
    }

    pub(crate) async fn hello(&mut self) -> Value {
        let welcome = self.request(json!({"type": "hello"})).await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        self.resume_token = welcome["resume_token"].as_str().unwrap().to_owned();
        welcome
    }

    /// Drops the connection and opens a new one (not yet greeted).
    pub(crate) async fn reconnect(&mut self, app: &TestApp) {
        let socket = connect_with(app, &self.token, None).await.unwrap();
        drop(std::mem::replace(&mut self.socket, socket));
        self.backlog.clear();
    }

    pub(crate) async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .expect("send");
    }

    /// Sends `message` with a fresh id and returns the answer that echoes it (messages in
    /// between are skipped).
    pub(crate) async fn request(&mut self, mut message: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        message["id"] = json!(id);
        self.send(message).await;
        self.until(|m| m["id"] == json!(id)).await
    }

    /// The next text message.
    pub(crate) async fn next(&mut self) -> Value {
        if let Some(message) = self.backlog.pop_front() {
            return message;
        }
        self.read().await
    }

    async fn read(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("a message in time")
                .expect("the connection is open")
                .expect("a valid frame");
            match frame {
                Message::Text(text) => return serde_json::from_str(&text).unwrap(),
                Message::Close(close) => panic!("closed: {close:?}"),
                _ => {}
            }
        }
    }

    /// Skips messages until one satisfies `wanted`.
    pub(crate) async fn until(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        if let Some(index) = self.backlog.iter().position(&wanted) {
            return self.backlog.remove(index).unwrap();
        }
        loop {
            let message = self.read().await;
            if wanted(&message) {
                return message;
            }
            self.backlog.push_back(message);
        }
    }

    /// The next match event of `kind`.
    pub(crate) async fn event(&mut self, kind: &str) -> Value {
        self.until(|m| m["type"] == "event" && m["event"]["kind"]["type"] == kind)
            .await
    }

    /// Waits for the close frame and returns its code.
    pub(crate) async fn closed(&mut self) -> u16 {
        loop {
            match tokio::time::timeout(WAIT, self.socket.next()).await {
                Ok(Some(Ok(Message::Close(Some(CloseFrame { code, .. }))))) => {
                    return u16::from(code);
                }
                Ok(Some(Ok(Message::Close(None)))) => return 1005,
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(error))) => panic!("no close frame: {error}"),
                Ok(None) => panic!("ended without a close frame"),
                Err(_) => panic!("no close in time"),
            }
        }
    }
}

/// Two players queued for the same mode and matched; returns them with the match id.
pub(crate) async fn matched_pair(app: &TestApp, mode: &str) -> (Player, Player, String) {
    let mut a = Player::join(app).await;
    let mut b = Player::join(app).await;
    let queued = a
        .request(json!({"type": "queue", "mode": mode, "opponent": "human"}))
        .await;
    assert_eq!(queued["type"], "queued", "{queued}");
    b.request(json!({"type": "queue", "mode": mode, "opponent": "human"}))
        .await;
    let matched_a = a.until(|m| m["type"] == "matched").await;
    let matched_b = b.until(|m| m["type"] == "matched").await;
    assert_eq!(matched_a["match_id"], matched_b["match_id"]);
    assert_eq!(matched_a["seat"], "a", "the earlier ticket sits in seat A");
    assert_eq!(matched_b["seat"], "b");
    assert_eq!(matched_a["opponent"]["kind"], "human");
    let match_id = matched_a["match_id"].as_str().unwrap().to_owned();
    (a, b, match_id)
}

/// Plays one round: both move, both see the reveal; returns A's copy of it.
pub(crate) async fn play_round(
    a: &mut Player,
    b: &mut Player,
    round: u64,
    move_a: &str,
    move_b: &str,
) -> Value {
    let opened = a.event("round_opened").await;
    assert_eq!(opened["event"]["kind"]["round"], round);
    assert!(opened["event"]["kind"]["deadline_ms"].as_u64().unwrap() > 0);
    b.event("round_opened").await;
    let ack = a
        .request(json!({"type": "move", "round": round, "choice": move_a}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    // B learns only that A locked in.
    let locked = b
        .until(|m| {
            let kind = &m["event"]["kind"];
            kind["type"] == "locked" && kind["seat"] == "a" && kind["round"] == round
        })
        .await;
    assert!(
        !locked.to_string().contains(move_a),
        "the move stays sealed: {locked}"
    );
    b.request(json!({"type": "move", "round": round, "choice": move_b}))
        .await;
    let revealed = a.event("round_revealed").await;
    let revealed_b = b.event("round_revealed").await;
    assert_eq!(revealed["event"]["kind"]["round"], round);
    assert_eq!(revealed["event"], revealed_b["event"]);
    assert_eq!(revealed["event"]["kind"]["moves"]["a"], move_a);
    assert_eq!(revealed["event"]["kind"]["moves"]["b"], move_b);
    revealed
}

#[tokio::test]
async fn two_players_queue_play_a_best_of_three_with_chat_and_the_transcript_verifies() {
    let app = app().await;
    let (mut a, mut b, match_id) = matched_pair(&app, "best_of_3").await;
    let revealed = play_round(&mut a, &mut b, 1, "rock", "scissors").await;
    assert_eq!(revealed["event"]["kind"]["winner"], "a");
    let ack = a
        .request(json!({"type": "chat", "text": " good  game\u{7}"}))
        .await;
    assert_eq!(ack["type"], "ack");
    let chat = b.until(|m| m["type"] == "chat").await;
    assert_eq!(
        chat["text"], "good  game",
        "control characters removed, trimmed"
    );
    assert_eq!(chat["from"], "a");
    let revealed = play_round(&mut a, &mut b, 2, "paper", "paper").await;
    assert_eq!(revealed["event"]["kind"]["winner"], "tie");
    let revealed = play_round(&mut a, &mut b, 3, "paper", "rock").await;
    assert_eq!(revealed["event"]["kind"]["winner"], "a");
    let ended = a.event("match_ended").await;
    assert_eq!(ended["event"]["kind"]["outcome"], json!({"won": "a"}));
    let result_a = a.until(|m| m["type"] == "match_result").await;
    let result_b = b.until(|m| m["type"] == "match_result").await;
    assert_eq!(result_a["result"], "won");
    assert_eq!(result_b["result"], "lost");
    assert!(result_a["rated"].as_bool().unwrap());
    assert!(result_a["rating_after"].as_f64() > result_a["rating_before"].as_f64());

    let answer = app.get(&format!("/matches/{match_id}")).await;
    assert_eq!(answer.status, StatusCode::OK);
    let transcript: Value = serde_json::from_slice(&answer.body).unwrap();
    let events: Vec<game::matches::Event> =
        serde_json::from_value(transcript["events"].clone()).unwrap();
    game::matches::verify_transcript(&events).expect("the transcript verifies");
    assert!(
        !String::from_utf8_lossy(&answer.body).contains("move_sealed"),
        "server-only entries never leave"
    );
    let (status, record) = send(&app, http::Method::GET, "/me/matches", Some(&a.token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(record["wins"], 1);
    assert_eq!(record["matches"][0], match_id.as_str());
    assert_eq!(app.get("/matches/nope").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_dropped_connection_mid_round_comes_back_with_hello_and_sees_the_whole_match() {
    let app = app().await;
    let (mut a, mut b, match_id) = matched_pair(&app, "best_of_1").await;
    a.event("round_opened").await;
    b.event("round_opened").await;
    // A locks a move, then its connection drops.
    a.request(json!({"type": "move", "round": 1, "choice": "paper"}))
        .await;
    a.socket.close(None).await.ok();
    let gone = b.event("opponent_disconnected").await;
    assert_eq!(gone["event"]["kind"]["seat"], "a");
    // B moves while A is away: both moved, so the round is revealed.
    b.request(json!({"type": "move", "round": 1, "choice": "rock"}))
        .await;
    b.event("round_revealed").await;
    // A comes back on a new connection with `hello` (no resume token: a reloaded page that
    // lost it): the match is replayed from its start.
    a.reconnect(&app).await;
    a.hello().await;
    let revealed = a.event("round_revealed").await;
    assert_eq!(revealed["event"]["kind"]["winner"], "a", "paper beats rock");
    let result = a.until(|m| m["type"] == "match_result").await;
    assert_eq!(result["match_id"], match_id.as_str());
    assert_eq!(result["result"], "won");
}

#[tokio::test]
async fn resume_replays_only_what_was_missed_and_the_round_goes_on() {
    let app = app().await;
    let (mut a, mut b, match_id) = matched_pair(&app, "best_of_3").await;
    let opened = a.event("round_opened").await;
    let last_seq = opened["event"]["seq"].as_u64().unwrap();
    b.event("round_opened").await;
    // A drops; B locks its move while A is away.
    a.reconnect(&app).await;
    b.event("opponent_disconnected").await;
    b.request(json!({"type": "move", "round": 1, "choice": "scissors"}))
        .await;
    let token = a.resume_token.clone();
    let resumed = a
        .request(json!({"type": "resume", "token": token, "last_seq": last_seq}))
        .await;
    assert_eq!(resumed["type"], "resumed", "{resumed}");
    assert_eq!(resumed["match_id"], match_id.as_str());
    assert_eq!(resumed["complete"], true);
    assert_eq!(resumed["seat"], "a");
    // Replayed: exactly the events after last_seq, in order, then live play goes on.
    let replayed = resumed["replayed"].as_u64().unwrap();
    assert!(
        replayed >= 2,
        "the disconnect notice and B's lock: {resumed}"
    );
    let mut seq = last_seq;
    for _ in 0..replayed {
        let event = a.next().await;
        assert_eq!(event["type"], "event");
        let next = event["event"]["seq"].as_u64().unwrap();
        assert!(next > seq);
        seq = next;
    }
    b.event("opponent_reconnected").await;
    a.request(json!({"type": "move", "round": 1, "choice": "rock"}))
        .await;
    let revealed = a.event("round_revealed").await;
    assert_eq!(revealed["event"]["kind"]["winner"], "a");
    // A spent resume token is refused.
    a.reconnect(&app).await;
    let refused = a.request(json!({"type": "resume", "token": token})).await;
    assert_eq!(refused["code"], "resume_unknown");
}

#[tokio::test]
async fn a_bot_commits_before_the_human_moves_and_the_commitment_opens() {
    let app = app().await;
    let mut player = Player::join(&app).await;
    player
        .request(json!({"type": "queue", "mode": "best_of_1", "opponent": "bot"}))
        .await;
    let matched = player.until(|m| m["type"] == "matched").await;
    assert_eq!(matched["opponent"]["kind"], "bot");
    let match_id = matched["match_id"].as_str().unwrap().to_owned();
    let opened = player.event("round_opened").await;
    let commitment = opened["event"]["kind"]["bot_commitments"]["b"]
        .as_str()
        .expect("the bot's commitment is published when the round opens")
        .to_owned();
    player
        .request(json!({"type": "move", "round": 1, "choice": "rock"}))
        .await;
    let revealed = player.event("round_revealed").await;
    let kind = &revealed["event"]["kind"];
    let bot_move: game::Choice = serde_json::from_value(kind["moves"]["b"].clone()).unwrap();
    let salt = game::fairness::Salt::from_hex(kind["salts"]["b"].as_str().unwrap()).unwrap();
    let computed = game::fairness::commitment(&match_id, 1, game::Seat::B, bot_move, &salt);
    assert_eq!(computed.to_hex(), commitment);
    if kind["winner"] == "tie" {
        // A tied best-of-1 plays on.
        player.event("round_opened").await;
    }
}

#[tokio::test]
async fn a_player_alone_gets_a_bot_after_waiting_or_an_explicit_expiry() {
    let app = spawn_app_with(|settings| {
        settings.accounts.trust_player_header = false;
        settings.accounts.accounts_per_address_per_hour = 0;
        settings.realtime.queue_ticket_lifetime = Duration::from_millis(600);
        settings.realtime.bot_after = Duration::from_millis(200);
    })
    .await;
    let mut waiting = Player::join(&app).await;
    let queued = waiting
        .request(json!({"type": "queue", "mode": "best_of_1", "opponent": "any"}))
        .await;
    assert!(queued["bot_at_ms"].as_u64().is_some());
    let matched = waiting.until(|m| m["type"] == "matched").await;
    assert_eq!(matched["bot_fallback"], true);
    assert_eq!(matched["opponent"]["kind"], "bot");

    let mut alone = Player::join(&app).await;
    let queued = alone
        .request(json!({"type": "queue", "mode": "best_of_5", "opponent": "human"}))
        .await;
    let ticket = queued["ticket"].clone();
    let expired = alone.until(|m| m["type"] == "queue_expired").await;
    assert_eq!(expired["ticket"], ticket);
    assert_eq!(expired["reason"], "timeout");
    // Cancel works before a match and says so after.
    alone
        .request(json!({"type": "queue", "mode": "best_of_5", "opponent": "human"}))
        .await;
    let cancelled = alone.request(json!({"type": "cancel"})).await;
    assert_eq!(cancelled["type"], "cancelled");
    let again = alone.request(json!({"type": "cancel"})).await;
    assert_eq!(again["code"], "not_queued");
}

#[tokio::test]
async fn a_second_connection_of_the_account_takes_over() {
    let app = app().await;
    let mut first = Player::join(&app).await;
    let socket = connect_with(&app, &first.token, None).await.unwrap();
    let mut second = Player::on(socket, first.token.clone(), first.account.clone());
    second.hello().await;
    assert_eq!(first.closed().await, protocol::close::REPLACED);
}

#[tokio::test]
async fn chat_flooding_is_warned_then_closed() {
    let app = app().await;
    let (mut a, _b, _) = matched_pair(&app, "best_of_5").await;
    for n in 0..5 {
        let ack = a
            .request(json!({"type": "chat", "text": format!("line {n}")}))
            .await;
        assert_eq!(ack["type"], "ack");
    }
    let refused = a.request(json!({"type": "chat", "text": "one more"})).await;
    assert_eq!(refused["code"], "chat_rate_limited");
    let too_long = a
        .request(json!({"type": "chat", "text": "x".repeat(201)}))
        .await;
    assert_eq!(too_long["code"], "chat_invalid");
    a.send(json!({"type": "chat", "text": "and more"})).await;
    assert_eq!(a.closed().await, 1008);
}

#[tokio::test]
async fn protocol_errors_close_with_the_rfcs_codes() {
    let app = spawn_app_with(|settings| {
        settings.accounts.trust_player_header = false;
        settings.accounts.accounts_per_address_per_hour = 0;
        settings.realtime.hello_timeout = Duration::from_millis(300);
    })
    .await;
    let (_, token, _, _) = guest(&app).await;
    // Too big.
    let mut socket = connect_with(&app, &token, None).await.unwrap();
    socket.send(Message::text("x".repeat(5000))).await.unwrap();
    assert_eq!(close_code(&mut socket).await, 1009);
    // Not UTF-8 in a text frame: written raw, since a client library refuses to send it.
    let mut raw = raw_upgrade(&app, &token).await;
    raw.write_all(&masked(0x81, &[0xff, 0xfe])).await.unwrap();
    assert_eq!(raw_close_code(&mut raw).await, 1007);
    // Unmasked.
    let mut raw = raw_upgrade(&app, &token).await;
    raw.write_all(&[0x81, 0x02, b'h', b'i']).await.unwrap();
    assert_eq!(raw_close_code(&mut raw).await, 1002);
    // No hello in time.
    let mut socket = connect_with(&app, &token, None).await.unwrap();
    assert_eq!(
        close_code(&mut socket).await,
        protocol::close::HELLO_TIMEOUT
    );
    // Garbage is an error message, not a close.
    let socket = connect_with(&app, &token, None).await.unwrap();
    let mut player = Player::on(socket, token.clone(), String::new());
    player.send(json!({"type": "dance"})).await;
    let error = player.next().await;
    assert_eq!(error["code"], "invalid_message");
    let early = player
        .request(json!({"type": "queue", "mode": "best_of_1"}))
        .await;
    assert_eq!(early["code"], "hello_first");
}

#[tokio::test]
async fn failed_upgrades_are_problem_documents() {
    let app = app().await;
    let (_, token, _, _) = guest(&app).await;
    // No credentials.
    let error = tokio_tungstenite::connect_async(format!("ws://{}/ws", app.address))
        .await
        .unwrap_err();
    let tokio_tungstenite::tungstenite::Error::Http(response) = error else {
        panic!("{error}");
    };
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // A bad token.
    assert!(connect_with(&app, "gga_nope", None).await.is_err());
    // Not an upgrade at all.
    let answer = app.get("/ws").await;
    assert_eq!(answer.status, StatusCode::UPGRADE_REQUIRED);
    assert!(String::from_utf8_lossy(&answer.body).contains("upgrade_required"));
    // No subprotocol the server speaks.
    assert!(connect_with(&app, &token, Some("chat")).await.is_err());
}

#[tokio::test]
async fn a_browser_ticket_upgrades_once() {
    let app = app().await;
    let (_, token, _, _) = guest(&app).await;
    let (status, body) = post(&app, "/realtime/tickets", Some(&token), json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let ticket = body["ticket"].as_str().unwrap();
    assert_eq!(body["expires_in"], 30);
    let url = format!("ws://{}/ws?ticket={ticket}", app.address);
    let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    socket
        .send(Message::text(r#"{"type":"hello","id":1}"#))
        .await
        .unwrap();
    let reply = socket.next().await.unwrap().unwrap();
    assert!(reply.to_text().unwrap().contains("welcome"));
    assert!(
        tokio_tungstenite::connect_async(&url).await.is_err(),
        "single use"
    );
    let (status, _) = post(&app, "/realtime/tickets", None, json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn messagepack_speaks_in_binary_frames() {
    let app = app().await;
    let (_, token, _, _) = guest(&app).await;
    let mut socket = connect_with(&app, &token, Some("guess-game.v1.msgpack"))
        .await
        .unwrap();
    let hello = rmp_serde::to_vec_named(&json!({"type": "hello", "id": 9})).unwrap();
    socket.send(Message::binary(hello)).await.unwrap();
    let reply = socket.next().await.unwrap().unwrap();
    let Message::Binary(bytes) = reply else {
        panic!("{reply:?}");
    };
    let welcome: Value = rmp_serde::from_slice(&bytes).unwrap();
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["id"], 9);
}

async fn close_code(socket: &mut Socket) -> u16 {
    loop {
        match tokio::time::timeout(WAIT, socket.next()).await {
            Ok(Some(Ok(Message::Close(Some(frame))))) => return u16::from(frame.code),
            Ok(Some(Ok(_))) => {}
            other => panic!("no close frame: {other:?}"),
        }
    }
}

/// A hand-made upgrade, for frames a client library will not send.
async fn raw_upgrade(app: &TestApp, token: &str) -> TcpStream {
    let mut stream = TcpStream::connect(app.address).await.unwrap();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream
}

fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![first, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

async fn raw_close_code(stream: &mut TcpStream) -> u16 {
    let mut frame = [0u8; 4];
    tokio::time::timeout(WAIT, stream.read_exact(&mut frame))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(frame[0], 0x88, "a close frame");
    u16::from_be_bytes([frame[2], frame[3]])
}

#[tokio::test]
async fn a_drain_tells_players_ends_their_match_as_no_contest_and_closes_1001() {
    let mut app = spawn_app_with(|settings| {
        settings.accounts.trust_player_header = false;
        settings.accounts.accounts_per_address_per_hour = 0;
        settings.server.drain_timeout = Duration::from_secs(1);
    })
    .await;
    let (mut a, mut b, _) = matched_pair(&app, "best_of_5").await;
    app.begin_shutdown();
    for player in [&mut a, &mut b] {
        let draining = player.until(|m| m["type"] == "draining").await;
        assert!(draining["deadline_ms"].as_u64().is_some());
    }
    let result = a.until(|m| m["type"] == "match_result").await;
    assert_eq!(result["result"], "no_contest");
    assert_eq!(result["rated"], false);
    assert_eq!(a.closed().await, 1001);
    assert_eq!(b.closed().await, 1001);
    app.shutdown().await.expect("a clean stop");
}

#[tokio::test]
async fn spectators_are_capped_per_match_and_an_unknown_match_is_refused() {
    let app = app().await;
    let (mut a, mut b, match_id) = matched_pair(&app, "best_of_1").await;
    let mut watchers = Vec::new();
    for _ in 0..64 {
        let mut watcher = Player::join(&app).await;
        let ack = watcher
            .request(json!({"type": "spectate", "match_id": match_id}))
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
        watchers.push(watcher);
    }
    let mut one_too_many = Player::join(&app).await;
    let full = one_too_many
        .request(json!({"type": "spectate", "match_id": match_id}))
        .await;
    assert_eq!(full["code"], "spectators_full", "{full}");
    let unknown = one_too_many
        .request(json!({"type": "spectate", "match_id": "nope"}))
        .await;
    assert_eq!(unknown["code"], "match_unknown", "{unknown}");
    // One leaves: a seat frees up.
    let ack = watchers[0].request(json!({"type": "unspectate"})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let ack = one_too_many
        .request(json!({"type": "spectate", "match_id": match_id}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    play_round(&mut a, &mut b, 1, "rock", "paper").await;
    let ended = watchers[1].event("match_ended").await;
    assert_eq!(ended["match_id"], match_id);
}

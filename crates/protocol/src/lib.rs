//! The real-time protocol, `guess-game.v1`: every message a client and the server exchange over
//! the `/ws` WebSocket, as serde types.
//!
//! Every message is an object with a `type`. A client request may carry a numeric `id`; the
//! server's answer to it (an [`ServerMessage::Ack`], a specific answer such as
//! [`ServerMessage::Queued`], or an [`ServerMessage::Error`]) echoes it. Messages the server
//! sends on its own (a match found, a round opened) carry no `id`.
//!
//! Two encodings carry the same objects: JSON in text frames (subprotocol
//! [`SUBPROTOCOL_JSON`], the default) and MessagePack maps in binary frames
//! ([`SUBPROTOCOL_MSGPACK`]). docs/PROTOCOL.md describes every message with an example session;
//! `/asyncapi.json` is the machine-readable form, tested against [`ClientMessage::TYPES`] and
//! [`ServerMessage::TYPES`].

use game::matches::{Event, Mode, SeatKind};
use game::{Choice, Seat};
use serde::{Deserialize, Serialize};

/// JSON in text frames.
pub const SUBPROTOCOL_JSON: &str = "guess-game.v1.json";
/// MessagePack (named fields) in binary frames.
pub const SUBPROTOCOL_MSGPACK: &str = "guess-game.v1.msgpack";
/// The largest message the server accepts, in bytes (a larger one closes the connection 1009).
pub const MAX_MESSAGE_BYTES: usize = 4096;
/// The longest chat line, in characters after NFC normalisation.
pub const MAX_CHAT_CHARS: usize = 200;

/// The close codes the server uses besides the RFC's (1000 normal, 1001 going away, 1002
/// protocol error, 1007 invalid payload, 1008 policy violation, 1009 too big, 1011 internal
/// error, 1013 try again later). RFC 6455 leaves 4000-4999 to applications.
pub mod close {
    /// Another connection of the same account took over this one.
    pub const REPLACED: u16 = 4001;
    /// No `hello` (or `resume`) within the hello timeout.
    pub const HELLO_TIMEOUT: u16 = 4002;
    /// No pong within the heartbeat timeout.
    pub const HEARTBEAT_TIMEOUT: u16 = 4003;
    /// The connection's session ended (signed out, deleted) — sign in again.
    pub const SESSION_ENDED: u16 = 4004;
    /// The RFC's "try again later": the client did not read what the server sent fast enough.
    pub const SLOW_CONSUMER: u16 = 1013;
    /// The RFC's policy violation: chat flooding after a warning.
    pub const POLICY: u16 = 1008;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const INVALID_PAYLOAD: u16 = 1007;
    pub const TOO_BIG: u16 = 1009;
    pub const NORMAL: u16 = 1000;
}

/// Who a queued player wants to meet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Opponent {
    /// Another person only; the ticket expires if nobody is found.
    Human,
    /// A bot at once.
    Bot,
    /// A person if one is found within `bot_after_ms`, a bot otherwise.
    #[default]
    Any,
}

/// How the player's moves reach the server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MoveMode {
    /// `move`: the server holds the move sealed until the reveal.
    #[default]
    Sealed,
    /// `commit` then `reveal`: the server never sees the move before the player opens it.
    CommitReveal,
}

impl MoveMode {
    pub const fn seat_kind(self) -> SeatKind {
        match self {
            MoveMode::Sealed => SeatKind::Sealed,
            MoveMode::CommitReveal => SeatKind::CommitReveal,
        }
    }
}

/// What a client sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// The first message of a connection (within the hello timeout).
    Hello {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    /// Instead of `hello` after a dropped connection: the resume token a `welcome` gave, and the
    /// `seq` of the last match event received (events after it are replayed).
    Resume {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        token: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_seq: Option<u64>,
    },
    /// Looks for a match.
    Queue {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        mode: Mode,
        #[serde(default)]
        opponent: Opponent,
        /// With `opponent: "any"`: how long to look for a person before a bot (default 10 s).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bot_after_ms: Option<u64>,
        #[serde(default)]
        moves: MoveMode,
    },
    /// Leaves the queue (before a match starts).
    Cancel {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    /// A sealed move for `round`.
    Move {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        round: u32,
        choice: Choice,
    },
    /// A commitment (64 hex digits) for `round`, in commit-reveal mode.
    Commit {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        round: u32,
        commitment: String,
    },
    /// Opens the commitment: the move and the 64-hex-digit salt.
    Reveal {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        round: u32,
        choice: Choice,
        salt: String,
    },
    /// A chat line to the opponent (at most 200 characters after NFC normalisation).
    Chat {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        text: String,
    },
    /// Leaves the match: forfeits it at once.
    Leave {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    /// Answered with `pong` (browsers cannot send WebSocket pings).
    Ping {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    /// Watches a running match, read-only: an `ack`, then its public log so far and every
    /// public event as it happens (moves stay sealed until revealed). One match at a time; a
    /// second `spectate` replaces the first.
    Spectate {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        match_id: String,
    },
    /// Stops watching.
    Unspectate {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
}

impl ClientMessage {
    /// Every `type` a client may send, for the AsyncAPI document's test.
    pub const TYPES: [&'static str; 12] = [
        "hello",
        "resume",
        "queue",
        "cancel",
        "move",
        "commit",
        "reveal",
        "chat",
        "leave",
        "ping",
        "spectate",
        "unspectate",
    ];

    pub fn id(&self) -> Option<u64> {
        match self {
            ClientMessage::Hello { id }
            | ClientMessage::Resume { id, .. }
            | ClientMessage::Queue { id, .. }
            | ClientMessage::Cancel { id }
            | ClientMessage::Move { id, .. }
            | ClientMessage::Commit { id, .. }
            | ClientMessage::Reveal { id, .. }
            | ClientMessage::Chat { id, .. }
            | ClientMessage::Leave { id }
            | ClientMessage::Ping { id }
            | ClientMessage::Spectate { id, .. }
            | ClientMessage::Unspectate { id } => *id,
        }
    }

    /// The message's `type`, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientMessage::Hello { .. } => "hello",
            ClientMessage::Resume { .. } => "resume",
            ClientMessage::Queue { .. } => "queue",
            ClientMessage::Cancel { .. } => "cancel",
            ClientMessage::Move { .. } => "move",
            ClientMessage::Commit { .. } => "commit",
            ClientMessage::Reveal { .. } => "reveal",
            ClientMessage::Chat { .. } => "chat",
            ClientMessage::Leave { .. } => "leave",
            ClientMessage::Ping { .. } => "ping",
            ClientMessage::Spectate { .. } => "spectate",
            ClientMessage::Unspectate { .. } => "unspectate",
        }
    }
}

/// The other side of a match, as a player sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpponentView {
    /// `human` or `bot`.
    pub kind: OpponentKind,
    /// A display name: the account's, or the bot's (`random`, `adaptive`).
    pub name: String,
    /// The opponent's rating when the match started (Glicko-2, 1500-centred).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpponentKind {
    Human,
    Bot,
}

/// How a match came out for the player it is sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Result {
    Won,
    Lost,
    NoContest,
}

/// Why a ticket left the queue without a person to play.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpiredReason {
    /// Nobody was found within the ticket's lifetime.
    Timeout,
    /// The server is draining and stopped matchmaking.
    Draining,
}

/// What the server sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The answer to `hello`.
    Welcome {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        account: String,
        name: Option<String>,
        /// For `resume` after a dropped connection; valid for the grace window after the drop.
        resume_token: String,
        /// How long a dropped connection's match waits for it, in milliseconds.
        grace_ms: u64,
        /// The server sends a WebSocket ping this often; no pong within `heartbeat_timeout_ms`
        /// closes the connection.
        heartbeat_ms: u64,
        heartbeat_timeout_ms: u64,
        server_time_ms: u64,
        /// The rating the matchmaker uses for this account.
        rating: f64,
        /// The account is in this match (or one ended while it was away): `matched` and the
        /// match's events follow this message.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        match_id: Option<String>,
        /// The account's ticket is still waiting: `queued` follows this message.
        #[serde(default)]
        queued: bool,
    },
    /// The answer to `resume`: the match (if it is still on), and whether every event missed
    /// was replayed (they follow this message as `event` messages).
    Resumed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        resume_token: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        match_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seat: Option<Seat>,
        /// How many events follow.
        replayed: u64,
        /// False when events the client asked for are no longer kept: then `replayed` holds
        /// the whole public log from its start.
        complete: bool,
        /// Still waiting in the queue (the ticket survived the drop).
        queued: bool,
        server_time_ms: u64,
    },
    Queued {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        ticket: String,
        mode: Mode,
        opponent: Opponent,
        /// The ticket ends by then with `matched` or `queue_expired`.
        expires_at_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bot_at_ms: Option<u64>,
    },
    Cancelled {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        ticket: String,
    },
    /// The ticket ended without a match.
    QueueExpired {
        ticket: String,
        reason: ExpiredReason,
    },
    /// A match was found; its events follow.
    Matched {
        ticket: String,
        match_id: String,
        seat: Seat,
        mode: Mode,
        opponent: OpponentView,
        /// True when a bot took the seat because no person was found in time.
        bot_fallback: bool,
        round_timeout_ms: u64,
    },
    /// An entry of the match's public log (the same entries `GET /matches/{id}` returns).
    Event { match_id: String, event: Event },
    /// The match's result for this player, once recorded.
    MatchResult {
        match_id: String,
        result: Result,
        rating_before: f64,
        rating_after: f64,
        /// Whether the match counted (bots and no contests are not rated).
        rated: bool,
    },
    Chat {
        match_id: String,
        from: Seat,
        name: String,
        text: String,
        at_ms: u64,
    },
    /// A request was accepted (moves, chat, leave).
    Ack {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    Pong {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        server_time_ms: u64,
    },
    /// A request was refused (the connection stays open unless a close follows).
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        code: String,
        message: String,
    },
    /// A warning before the server acts (chat flooding: the next one closes the connection).
    Warning { code: String, message: String },
    /// The server is shutting down: no new matches; running ones finish or end as no contest
    /// by `deadline_ms`; then the connection closes (1001) and the client may reconnect
    /// elsewhere.
    Draining { deadline_ms: u64 },
}

impl ServerMessage {
    /// Every `type` the server sends, for the AsyncAPI document's test.
    pub const TYPES: [&'static str; 14] = [
        "welcome",
        "resumed",
        "queued",
        "cancelled",
        "queue_expired",
        "matched",
        "event",
        "match_result",
        "chat",
        "ack",
        "pong",
        "error",
        "warning",
        "draining",
    ];

    /// The message's `type`, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ServerMessage::Welcome { .. } => "welcome",
            ServerMessage::Resumed { .. } => "resumed",
            ServerMessage::Queued { .. } => "queued",
            ServerMessage::Cancelled { .. } => "cancelled",
            ServerMessage::QueueExpired { .. } => "queue_expired",
            ServerMessage::Matched { .. } => "matched",
            ServerMessage::Event { .. } => "event",
            ServerMessage::MatchResult { .. } => "match_result",
            ServerMessage::Chat { .. } => "chat",
            ServerMessage::Ack { .. } => "ack",
            ServerMessage::Pong { .. } => "pong",
            ServerMessage::Error { .. } => "error",
            ServerMessage::Warning { .. } => "warning",
            ServerMessage::Draining { .. } => "draining",
        }
    }
}

/// The stable `code`s of [`ServerMessage::Error`] and [`ServerMessage::Warning`].
pub mod codes {
    /// The message is not valid JSON/MessagePack, has an unknown `type` or a bad field.
    pub const INVALID_MESSAGE: &str = "invalid_message";
    /// Sent before `hello`.
    pub const HELLO_FIRST: &str = "hello_first";
    /// A second `hello` or `resume`.
    pub const ALREADY_GREETED: &str = "already_greeted";
    /// The resume token is unknown, expired or another account's.
    pub const RESUME_UNKNOWN: &str = "resume_unknown";
    pub const ALREADY_QUEUED: &str = "already_queued";
    pub const NOT_QUEUED: &str = "not_queued";
    pub const IN_MATCH: &str = "in_match";
    pub const NOT_IN_MATCH: &str = "not_in_match";
    /// A move the match refused; the message says why (wrong round, already moved, ...).
    pub const MOVE_REFUSED: &str = "move_refused";
    pub const INVALID_COMMITMENT: &str = "invalid_commitment";
    pub const CHAT_INVALID: &str = "chat_invalid";
    pub const CHAT_RATE_LIMITED: &str = "chat_rate_limited";
    /// `bot_after_ms` outside 0..ticket lifetime.
    pub const INVALID_QUEUE: &str = "invalid_queue";
    /// The server is draining: no new matches.
    pub const DRAINING: &str = "draining";
    /// The queue is full.
    pub const QUEUE_FULL: &str = "queue_full";
    /// `spectate`: no running match has that id.
    pub const MATCH_UNKNOWN: &str = "match_unknown";
    /// `spectate`: the match has as many spectators as it takes.
    pub const SPECTATORS_FULL: &str = "spectators_full";
    /// `unspectate` while watching nothing.
    pub const NOT_SPECTATING: &str = "not_spectating";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_read_as_documented() {
        let message: ClientMessage = serde_json::from_str(
            r#"{"type":"queue","id":7,"mode":"best_of_3","opponent":"human"}"#,
        )
        .unwrap();
        assert_eq!(
            message,
            ClientMessage::Queue {
                id: Some(7),
                mode: Mode::BestOf3,
                opponent: Opponent::Human,
                bot_after_ms: None,
                moves: MoveMode::Sealed,
            }
        );
        let message: ClientMessage =
            serde_json::from_str(r#"{"type":"move","round":1,"choice":"rock"}"#).unwrap();
        assert_eq!(message.id(), None);
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"dance"}"#).is_err());
        assert!(
            serde_json::from_str::<ClientMessage>(r#"{"type":"hello","extra":1}"#).is_err(),
            "unknown fields are refused"
        );
    }

    #[test]
    fn every_type_is_listed_and_round_trips_through_both_encodings() {
        let messages = [
            ClientMessage::Hello { id: Some(1) },
            ClientMessage::Resume {
                id: None,
                token: "t".into(),
                last_seq: Some(3),
            },
            ClientMessage::Queue {
                id: None,
                mode: Mode::BestOf5,
                opponent: Opponent::Any,
                bot_after_ms: Some(100),
                moves: MoveMode::CommitReveal,
            },
            ClientMessage::Cancel { id: None },
            ClientMessage::Move {
                id: None,
                round: 1,
                choice: Choice::Paper,
            },
            ClientMessage::Commit {
                id: None,
                round: 1,
                commitment: "00".into(),
            },
            ClientMessage::Reveal {
                id: None,
                round: 1,
                choice: Choice::Rock,
                salt: "00".into(),
            },
            ClientMessage::Chat {
                id: None,
                text: "gg".into(),
            },
            ClientMessage::Leave { id: None },
            ClientMessage::Ping { id: None },
        ];
        for (message, kind) in messages.iter().zip(ClientMessage::TYPES) {
            assert_eq!(message.kind(), kind);
            let json = serde_json::to_string(message).unwrap();
            assert!(json.contains(&format!(r#""type":"{kind}""#)), "{json}");
            assert_eq!(
                &serde_json::from_str::<ClientMessage>(&json).unwrap(),
                message
            );
            let packed = rmp_serde::to_vec_named(message).unwrap();
            assert_eq!(
                &rmp_serde::from_slice::<ClientMessage>(&packed).unwrap(),
                message
            );
        }
    }
}

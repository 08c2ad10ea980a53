//! Wire formats: JSON by default, MessagePack on request, with the same field names.
//!
//! The request body's format follows `Content-Type` (absent means JSON). The response's format
//! follows `Accept` when it names one of the two, and otherwise mirrors the request's, so a
//! MessagePack client gets MessagePack back without having to say so twice.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::error::{BodyError, HttpError};
use crate::game::Outcome;

pub use crate::api::format::{Format, JSON, MSGPACK};

/// The format of a request body, from its `Content-Type`.
pub fn request_format(content_type: Option<&[u8]>) -> Result<Format, HttpError<'static>> {
    match content_type {
        None => Ok(Format::Json),
        Some(value) => Format::of_media_type(value).ok_or(HttpError::UnsupportedMediaType),
    }
}

/// The format to answer in: the `Accept` entry with the highest q-value among JSON and
/// MessagePack, the request's own format when `Accept` is absent, a wildcard, or names neither.
pub fn response_format(accept: Option<&[u8]>, request: Format) -> Format {
    let Some(accept) = accept else {
        return request;
    };
    let mut best: Option<(u16, Format)> = None;
    for entry in accept.split(|&b| b == b',') {
        let Some(format) = Format::of_media_type(entry) else {
            continue;
        };
        let quality = quality(entry);
        if quality > 0 && best.is_none_or(|(q, _)| quality > q) {
            best = Some((quality, format));
        }
    }
    best.map_or(request, |(_, format)| format)
}

/// The q-value of one `Accept` entry in thousandths (1000 when absent or unreadable).
fn quality(entry: &[u8]) -> u16 {
    for parameter in entry.split(|&b| b == b';').skip(1) {
        let parameter = parameter.trim_ascii();
        if parameter.len() > 2 && parameter[..2].eq_ignore_ascii_case(b"q=") {
            let value = std::str::from_utf8(&parameter[2..]).ok();
            return value
                .and_then(|v| v.parse::<f32>().ok())
                .map_or(1000, |q| (q.clamp(0.0, 1.0) * 1000.0) as u16);
        }
    }
    1000
}

/// Body of `POST /play`: a map (JSON object or MessagePack map) with a `choice` string and an
/// optional `player_id` string. Unknown fields are ignored so clients can send more than we read.
#[derive(Debug)]
pub struct PlayRequest<'a> {
    pub choice: Cow<'a, str>,
    pub player_id: Option<Cow<'a, str>>,
}

/// Written by hand because serde's derive also accepts a sequence (`["rock"]`) for a struct;
/// the documented body is a map with named fields and nothing else.
impl<'de> Deserialize<'de> for PlayRequest<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapOnly;

        impl<'de> serde::de::Visitor<'de> for MapOnly {
            type Value = PlayRequest<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(r#"an object such as {"choice":"rock"}"#)
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut choice: Option<Cow<'de, str>> = None;
                let mut player_id: Option<Cow<'de, str>> = None;
                while let Some(key) = map.next_key::<BorrowedOrOwned<'de>>()? {
                    let (slot, name) = match &*key.0 {
                        "choice" => (&mut choice, "choice"),
                        "player_id" => (&mut player_id, "player_id"),
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                            continue;
                        }
                    };
                    if slot.is_some() {
                        return Err(serde::de::Error::duplicate_field(name));
                    }
                    *slot = Some(map.next_value::<BorrowedOrOwned<'de>>()?.0);
                }
                let choice = choice.ok_or_else(|| serde::de::Error::missing_field("choice"))?;
                Ok(PlayRequest { choice, player_id })
            }
        }

        deserializer.deserialize_map(MapOnly)
    }
}

/// A string that borrows from the input when it can (no escapes), so decoding allocates nothing
/// in the common case. `Cow<str>`'s own `Deserialize` always copies.
struct BorrowedOrOwned<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for BorrowedOrOwned<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;

        impl<'de> serde::de::Visitor<'de> for Text {
            type Value = BorrowedOrOwned<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                text: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(BorrowedOrOwned(Cow::Borrowed(text)))
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(BorrowedOrOwned(Cow::Owned(text.to_owned())))
            }
        }

        deserializer.deserialize_str(Text)
    }
}

/// Body of a successful `POST /play`. `game_id` is a decimal string: JSON numbers lose
/// precision past 2^53 in most clients.
#[derive(Debug, Serialize)]
pub struct PlayResponse {
    #[serde(serialize_with = "decimal_string")]
    pub game_id: u64,
    pub player_choice: &'static str,
    pub computer_choice: &'static str,
    pub winner: &'static str,
    pub reason: &'static str,
    /// For an account's play: the nonce the computer's move was drawn with (`GET /me/fairness`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<u64>,
}

fn decimal_string<S: serde::Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(itoa::Buffer::new().format(*value))
}

impl PlayResponse {
    pub fn new(game_id: u64, outcome: Outcome) -> Self {
        Self {
            game_id,
            player_choice: outcome.player.name(),
            computer_choice: outcome.computer.name(),
            winner: outcome.winner.name(),
            reason: outcome.reason,
            nonce: None,
        }
    }
}

/// Body of `GET /players/{id}/stats`.
#[derive(Debug, Serialize)]
pub struct StatsDocument<'a> {
    pub player_id: &'a str,
    pub rounds: u64,
    pub wins: u64,
    pub losses: u64,
    pub ties: u64,
    /// Wins over rounds (ties included); 0 before the first round.
    pub win_rate: f64,
    pub current_streak: u64,
    pub best_streak: u64,
    pub choices: ChoiceCounts,
}

#[derive(Debug, Serialize)]
pub struct ChoiceCounts {
    pub rock: u64,
    pub paper: u64,
    pub scissors: u64,
}

impl<'a> StatsDocument<'a> {
    pub fn new(player_id: &'a str, stats: &crate::store::model::PlayerStats) -> Self {
        let [rock, paper, scissors] = stats.choices;
        Self {
            player_id,
            rounds: stats.rounds,
            wins: stats.wins,
            losses: stats.losses,
            ties: stats.ties,
            win_rate: stats.win_rate(),
            current_streak: stats.current_streak,
            best_streak: stats.best_streak,
            choices: ChoiceCounts {
                rock,
                paper,
                scissors,
            },
        }
    }
}

/// Body of `GET /players/{id}/games`: newest first.
#[derive(Debug, Serialize)]
pub struct GamesDocument<'a> {
    pub player_id: &'a str,
    pub games: Vec<crate::store::model::GameSummary>,
}

/// Body of `GET /players/{id}/rank`.
#[derive(Debug, Serialize)]
pub struct RankDocument {
    pub window: &'static str,
    #[serde(flatten)]
    pub ranked: crate::store::model::Ranked,
}

/// Body of `GET /leaderboard`.
#[derive(Debug, Serialize)]
pub struct LeaderboardDocument {
    pub window: &'static str,
    pub entries: Vec<LeaderboardEntry>,
}

/// A place on a board, with the account's display name when the player is an account.
#[derive(Debug, Serialize)]
pub struct LeaderboardEntry {
    pub rank: u64,
    pub player_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    pub wins: u64,
}

/// Body of `GET /leaderboard/rating` and `GET /leaderboard/win-rate`: one season's board of
/// real-time play.
#[derive(Debug, Serialize)]
pub struct SeasonBoardDocument {
    /// `rating` or `win-rate`.
    pub board: &'static str,
    pub season: crate::seasons::SeasonView,
    pub min_matches: u64,
    pub entries: Vec<SeasonBoardEntry>,
}

/// A place on a season board, with the account's display name.
#[derive(Debug, Serialize)]
pub struct SeasonBoardEntry {
    pub rank: u64,
    pub player_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    pub rating: f64,
    pub deviation: f64,
    pub wins: u64,
    pub losses: u64,
    pub win_rate: f64,
}

/// Serializes a round into `out` (cleared first).
///
/// JSON is written by hand: every field is a `'static` name from the game's tables, none of
/// which needs escaping (the tests check this and compare the output with serde_json's for all
/// nine outcomes). serde_json's string escaping and field machinery were a large share of the
/// request under callgrind (docs/BENCHMARKS.md, "What each change bought").
pub fn encode_play(format: Format, response: &PlayResponse, out: &mut Vec<u8>) {
    match format {
        Format::MsgPack => encode(format, response, out),
        Format::Json => {
            out.clear();
            out.extend_from_slice(br#"{"game_id":""#);
            out.extend_from_slice(itoa::Buffer::new().format(response.game_id).as_bytes());
            for (prefix, value) in [
                (&br#"","player_choice":""#[..], response.player_choice),
                (br#"","computer_choice":""#, response.computer_choice),
                (br#"","winner":""#, response.winner),
                (br#"","reason":""#, response.reason),
            ] {
                debug_assert!(!needs_json_escaping(value), "{value:?}");
                out.extend_from_slice(prefix);
                out.extend_from_slice(value.as_bytes());
            }
            out.push(b'"');
            if let Some(nonce) = response.nonce {
                out.extend_from_slice(br#","nonce":"#);
                out.extend_from_slice(itoa::Buffer::new().format(nonce).as_bytes());
            }
            out.push(b'}');
        }
    }
}

/// Whether a string contains a character JSON requires escaped: `"`, `\` or a control
/// character.
fn needs_json_escaping(text: &str) -> bool {
    text.bytes()
        .any(|byte| byte == b'"' || byte == b'\\' || byte < 0x20)
}

/// Deepest MessagePack nesting a request body may have.
const MAX_MSGPACK_DEPTH: usize = 32;

pub fn decode<'a, T: Deserialize<'a>>(format: Format, body: &'a [u8]) -> Result<T, HttpError<'a>> {
    let decoded = match format {
        Format::Json => serde_json::from_slice(body).map_err(BodyError::from),
        Format::MsgPack => {
            // rmp-serde allows 1,024 levels of nesting by default: enough recursion to overflow
            // a 2 MiB thread stack in a debug build (found by the decode_msgpack fuzz target).
            // A play is one map of strings; serde_json stops at 128 levels likewise.
            let mut deserializer = rmp_serde::Deserializer::from_read_ref(body);
            deserializer.set_max_depth(MAX_MSGPACK_DEPTH);
            T::deserialize(&mut deserializer).map_err(BodyError::from)
        }
    };
    decoded.map_err(HttpError::InvalidBody)
}

/// Serializes `value` into `out` (cleared first). MessagePack uses maps with field names, so
/// both formats carry the same document.
pub fn encode<T: Serialize>(format: Format, value: &T, out: &mut Vec<u8>) {
    out.clear();
    // Writing plain structs of strings into a Vec cannot fail.
    let _ = match format {
        Format::Json => serde_json::to_writer(&mut *out, value).map_err(|_| ()),
        Format::MsgPack => rmp_serde::encode::write_named(out, value).map_err(|_| ()),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_selects_the_request_format() {
        assert_eq!(request_format(None).unwrap(), Format::Json);
        assert_eq!(
            request_format(Some(b"application/json")).unwrap(),
            Format::Json
        );
        assert_eq!(
            request_format(Some(b"Application/JSON; charset=utf-8")).unwrap(),
            Format::Json
        );
        assert_eq!(
            request_format(Some(b"application/problem+json")).unwrap(),
            Format::Json
        );
        assert_eq!(
            request_format(Some(b"application/msgpack")).unwrap(),
            Format::MsgPack
        );
        assert_eq!(
            request_format(Some(b"application/x-msgpack")).unwrap(),
            Format::MsgPack
        );
        for unsupported in [
            &b"text/plain"[..],
            b"application/xml",
            b"",
            b"json",
            b"application/x-www-form-urlencoded",
        ] {
            assert!(matches!(
                request_format(Some(unsupported)),
                Err(HttpError::UnsupportedMediaType)
            ));
        }
    }

    #[test]
    fn accept_picks_the_response_format() {
        let json = Format::Json;
        let msgpack = Format::MsgPack;
        assert_eq!(response_format(None, json), json);
        assert_eq!(response_format(None, msgpack), msgpack);
        assert_eq!(response_format(Some(b"application/msgpack"), json), msgpack);
        assert_eq!(response_format(Some(b"application/json"), msgpack), json);
        assert_eq!(response_format(Some(b"*/*"), msgpack), msgpack);
        assert_eq!(response_format(Some(b"text/html"), json), json);
        assert_eq!(
            response_format(Some(b"application/json;q=0.5, application/msgpack"), json),
            msgpack
        );
        assert_eq!(
            response_format(
                Some(b"application/json, application/msgpack;q=0.2"),
                msgpack
            ),
            json
        );
        assert_eq!(
            response_format(Some(b"application/msgpack;q=0"), json),
            json
        );
    }

    #[test]
    fn both_formats_carry_the_same_fields() {
        let response = PlayResponse {
            game_id: 7_400_000_000_000_000_001,
            player_choice: "rock",
            computer_choice: "paper",
            winner: "computer",
            reason: "paper beats rock",
            nonce: Some(3),
        };
        let mut json = Vec::new();
        encode(Format::Json, &response, &mut json);
        let mut msgpack = Vec::new();
        encode(Format::MsgPack, &response, &mut msgpack);
        let from_json: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let from_msgpack: serde_json::Value = rmp_serde::from_slice(&msgpack).unwrap();
        assert_eq!(from_json, from_msgpack);
        assert_eq!(from_json["reason"], "paper beats rock");
        assert_eq!(from_json["game_id"], "7400000000000000001");
    }

    #[test]
    fn the_hand_written_json_matches_serde_json_for_every_outcome() {
        use crate::game::{Choice, judge};
        for (player, nonce) in Choice::ALL
            .into_iter()
            .flat_map(|c| [(c, None), (c, Some(u64::MAX))])
        {
            for computer in Choice::ALL {
                let mut response = PlayResponse::new(u64::MAX, judge(player, computer));
                response.nonce = nonce;
                for text in [
                    response.player_choice,
                    response.computer_choice,
                    response.winner,
                    response.reason,
                ] {
                    assert!(!needs_json_escaping(text), "{text:?}");
                }
                let mut fast = Vec::new();
                encode_play(Format::Json, &response, &mut fast);
                assert_eq!(fast, serde_json::to_vec(&response).unwrap());
                let mut msgpack = Vec::new();
                encode_play(Format::MsgPack, &response, &mut msgpack);
                let decoded: serde_json::Value = rmp_serde::from_slice(&msgpack).unwrap();
                assert_eq!(
                    decoded,
                    serde_json::from_slice::<serde_json::Value>(&fast).unwrap()
                );
            }
        }
    }

    #[test]
    fn escaping_is_detected() {
        assert!(needs_json_escaping("a\"b"));
        assert!(needs_json_escaping("a\\b"));
        assert!(needs_json_escaping("a\nb"));
        assert!(!needs_json_escaping("rock vs rock — draw"));
    }

    #[test]
    fn a_request_decodes_from_either_format() {
        let from_json: PlayRequest =
            decode(Format::Json, br#"{"choice":"Rock","extra":1}"#).unwrap();
        assert_eq!(from_json.choice, "Rock");
        let bytes = rmp_serde::to_vec_named(&serde_json::json!({"choice": "paper"})).unwrap();
        let from_msgpack: PlayRequest = decode(Format::MsgPack, &bytes).unwrap();
        assert_eq!(from_msgpack.choice, "paper");
        assert!(from_msgpack.player_id.is_none());
        let named: PlayRequest =
            decode(Format::Json, br#"{"player_id":"ann","choice":"rock"}"#).unwrap();
        assert_eq!(named.player_id.as_deref(), Some("ann"));
    }

    #[test]
    fn an_unescaped_choice_is_borrowed_from_the_body() {
        let request: PlayRequest = decode(Format::Json, br#"{"choice":"rock"}"#).unwrap();
        assert!(matches!(request.choice, Cow::Borrowed("rock")));
        let escaped: PlayRequest = decode(Format::Json, br#"{"choice":"r\u006fck"}"#).unwrap();
        assert_eq!(escaped.choice, "rock");
    }

    #[test]
    fn a_missing_choice_or_garbage_is_an_invalid_body() {
        for (format, body) in [
            (Format::Json, &b"{}"[..]),
            (Format::Json, b"not json"),
            (Format::Json, b""),
            (Format::Json, br#"{"choice":5}"#),
            (Format::Json, br#"["rock"]"#),
            (Format::Json, br#"{"choice":"rock","choice":"paper"}"#),
            (Format::Json, br#"{"choice":"rock","player_id":5}"#),
            (
                Format::Json,
                br#"{"choice":"rock","player_id":"a","player_id":"b"}"#,
            ),
            (Format::MsgPack, b"\xc1"),
        ] {
            let result: Result<PlayRequest, _> = decode(format, body);
            assert!(matches!(result, Err(HttpError::InvalidBody(_))), "{body:?}");
        }
    }
}

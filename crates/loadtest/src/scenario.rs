//! What the load tester sends: one request per scenario, with a random valid choice and, when
//! asked, a player id drawn from a fixed population.

use std::fmt::Write;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use game::Choice;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// POST /play with a JSON body.
    Play,
    /// POST /play with a MessagePack body, asking for a MessagePack answer.
    PlayMsgpack,
    /// The store's path: nine in ten requests are JSON plays by a named player (player-0 when
    /// --players is 0), one in ten reads the day's leaderboard. The server counts the named
    /// plays only with `trust_player_header` on.
    Mixed,
    /// JSON plays as an account: each connection first creates a guest account (one request,
    /// not measured) and sends its access token with every play. The server's
    /// `accounts_per_address_per_hour` must allow one account per connection.
    Authenticated,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Play => "play",
            Scenario::PlayMsgpack => "play-msgpack",
            Scenario::Mixed => "mixed",
            Scenario::Authenticated => "authenticated",
        }
    }

    /// Whether each connection needs an account before it plays.
    pub fn needs_account(self) -> bool {
        self == Scenario::Authenticated
    }
}

/// The request that creates a guest account on the server whose routes are under `base` (a
/// path prefix, usually empty).
pub fn guest_request(host: &str, base: &str) -> Vec<u8> {
    format!("POST {base}/accounts/guest HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n")
        .into_bytes()
}

/// The access token in a guest account's creation answer (the whole response in `input`).
pub fn access_token(input: &[u8]) -> Option<String> {
    let start = input.windows(4).position(|window| window == b"\r\n\r\n")? + 4;
    let document: serde_json::Value = serde_json::from_slice(input.get(start..)?).ok()?;
    document
        .pointer("/session/access_token")?
        .as_str()
        .map(str::to_owned)
}

#[derive(Serialize)]
struct PlayBody<'a> {
    choice: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    player_id: Option<&'a str>,
}

/// Builds request bytes for a scenario. Owned by one connection; reuses its buffers.
pub struct RequestWriter {
    scenario: Scenario,
    /// `POST <path> HTTP/1.1\r\nHost: <host>\r\n` plus the content headers, computed once.
    head_prefix: Vec<u8>,
    /// The whole leaderboard read of the mixed scenario, computed once.
    read: Vec<u8>,
    players: u32,
    rng: fastrand::Rng,
    body: Vec<u8>,
    player_id: String,
    /// `Authorization: Bearer …\r\n`, once the connection has an account.
    authorization: Vec<u8>,
}

impl RequestWriter {
    pub fn new(scenario: Scenario, host: &str, target: &str, players: u32, seed: u64) -> Self {
        let content_headers = match scenario {
            Scenario::Play | Scenario::Mixed | Scenario::Authenticated => {
                "Content-Type: application/json\r\n"
            }
            Scenario::PlayMsgpack => {
                "Content-Type: application/msgpack\r\nAccept: application/msgpack\r\n"
            }
        };
        let head_prefix =
            format!("POST {target} HTTP/1.1\r\nHost: {host}\r\n{content_headers}Content-Length: ")
                .into_bytes();
        let base = target.strip_suffix("/play").unwrap_or_default();
        let read =
            format!("GET {base}/leaderboard?window=day&limit=10 HTTP/1.1\r\nHost: {host}\r\n\r\n")
                .into_bytes();
        Self {
            scenario,
            head_prefix,
            read,
            players,
            rng: fastrand::Rng::with_seed(seed),
            body: Vec::with_capacity(64),
            player_id: String::with_capacity(16),
            authorization: Vec::new(),
        }
    }

    /// Plays as the account whose access token this is.
    pub fn set_token(&mut self, token: &str) {
        self.authorization.clear();
        self.authorization
            .extend_from_slice(b"Authorization: Bearer ");
        self.authorization.extend_from_slice(token.as_bytes());
        self.authorization.extend_from_slice(b"\r\n");
    }

    /// Forgets the account (its token was refused): the connection makes a new one.
    pub fn clear_token(&mut self) {
        self.authorization.clear();
    }

    pub fn has_token(&self) -> bool {
        !self.authorization.is_empty()
    }

    /// Writes one complete request into `out` (cleared first).
    pub fn write(&mut self, out: &mut Vec<u8>) {
        if self.scenario == Scenario::Mixed && self.rng.u8(..10) == 0 {
            out.clear();
            out.extend_from_slice(&self.read);
            return;
        }
        let choice = Choice::ALL[self.rng.usize(..Choice::ALL.len())].name();
        let named = self.scenario != Scenario::Authenticated
            && (self.players > 0 || self.scenario == Scenario::Mixed);
        let player_id = named.then(|| {
            self.player_id.clear();
            let player = self.rng.u32(..self.players.max(1));
            let _ = write!(self.player_id, "player-{player}");
            self.player_id.as_str()
        });
        let body = PlayBody { choice, player_id };
        self.body.clear();
        // Serializing a struct of two strings into a Vec cannot fail.
        let _ = match self.scenario {
            Scenario::Play | Scenario::Mixed | Scenario::Authenticated => {
                serde_json::to_writer(&mut self.body, &body).map_err(|_| ())
            }
            Scenario::PlayMsgpack => {
                rmp_serde::encode::write_named(&mut self.body, &body).map_err(|_| ())
            }
        };
        out.clear();
        if self.authorization.is_empty() {
            out.extend_from_slice(&self.head_prefix);
        } else {
            // The token goes before Content-Length, which ends the prefix.
            let split = self.head_prefix.len() - b"Content-Length: ".len();
            out.extend_from_slice(&self.head_prefix[..split]);
            out.extend_from_slice(&self.authorization);
            out.extend_from_slice(&self.head_prefix[split..]);
        }
        out.extend_from_slice(itoa::Buffer::new().format(self.body.len()).as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(&self.body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_play_request_is_complete_http_with_a_valid_choice() {
        let mut writer = RequestWriter::new(Scenario::Play, "127.0.0.1:8080", "/play", 0, 1);
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100 {
            writer.write(&mut out);
            let text = String::from_utf8(out.clone()).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with("POST /play HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"));
            assert!(head.ends_with(&format!("Content-Length: {}", body.len())));
            let parsed: serde_json::Value = serde_json::from_str(body).unwrap();
            seen.insert(parsed["choice"].as_str().unwrap().to_owned());
            assert!(parsed.get("player_id").is_none());
        }
        assert_eq!(seen.len(), 3, "the mix covers every choice: {seen:?}");
    }

    #[test]
    fn the_mixed_scenario_plays_as_players_and_reads_the_leaderboard() {
        let mut writer = RequestWriter::new(Scenario::Mixed, "h:1", "/base/play", 0, 3);
        let mut out = Vec::new();
        let (mut plays, mut reads) = (0, 0);
        for _ in 0..1_000 {
            writer.write(&mut out);
            let text = String::from_utf8(out.clone()).unwrap();
            if text.starts_with("GET /base/leaderboard?window=day&limit=10 HTTP/1.1\r\n") {
                assert!(text.ends_with("\r\n\r\n"));
                reads += 1;
            } else {
                assert!(text.starts_with("POST /base/play HTTP/1.1\r\n"), "{text}");
                assert!(text.contains(r#""player_id":"player-0""#), "{text}");
                plays += 1;
            }
        }
        assert!((50..150).contains(&reads), "{reads} reads in 1,000");
        assert_eq!(plays + reads, 1_000);
    }

    #[test]
    fn msgpack_requests_carry_players_from_the_population() {
        let mut writer = RequestWriter::new(Scenario::PlayMsgpack, "h:1", "/play", 5, 2);
        let mut out = Vec::new();
        writer.write(&mut out);
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.contains("Content-Type: application/msgpack\r\nAccept: application/msgpack\r\n")
        );
        let body = &out[out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
        let parsed: serde_json::Value = rmp_serde::from_slice(body).unwrap();
        let player = parsed["player_id"].as_str().unwrap();
        let number: u32 = player.strip_prefix("player-").unwrap().parse().unwrap();
        assert!(number < 5);
    }

    #[test]
    fn an_authenticated_play_carries_its_token_before_the_length() {
        let mut writer =
            RequestWriter::new(Scenario::Authenticated, "127.0.0.1:8080", "/play", 5, 1);
        let mut out = Vec::new();
        writer.set_token("gga_abc");
        writer.write(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("Authorization: Bearer gga_abc\r\nContent-Length: "),
            "{text}"
        );
        assert!(!text.contains("player_id"), "{text}");
        let guest = String::from_utf8(guest_request("h", "/api")).unwrap();
        assert!(guest.starts_with("POST /api/accounts/guest HTTP/1.1\r\n"));
        let answer = b"HTTP/1.1 201 Created\r\nContent-Length: 40\r\n\r\n{\"session\":{\"access_token\":\"gga_x\"}}";
        assert_eq!(access_token(answer).as_deref(), Some("gga_x"));
        assert_eq!(access_token(b"HTTP/1.1 429 x\r\n\r\n{}"), None);
    }
}

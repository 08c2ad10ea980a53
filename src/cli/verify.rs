//! `guess-game verify`: checks a real-time match's public transcript without trusting the
//! server, and says where it breaks.
//!
//! The transcript comes from the server (`GET /matches/{id}`) or from a file saved from it. The
//! rules are checked by [`game::matches::verify_transcript`], the verifier the game crate keeps
//! apart from its state machine; this command adds what a person needs to follow it: every
//! round with its moves, salts and whether each commitment opens, and the first event that
//! breaks the rules with the reason. What a file holds is recognised by its shape
//! ([`Evidence::read`]), so the seed history of provably-fair `/play` rounds can become a
//! second kind of evidence beside transcripts without a new command.
//!
//! Exit codes: 0 verified, 1 not verified (the failing event is named), 2 for usage mistakes, a
//! file that cannot be read and a server that cannot be asked.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::{ArgGroup, Args};
use game::fairness::{Commitment, Salt, verify_commitment};
use game::matches::{
    EndReason, Event, EventKind, MatchConfig, MatchOutcome, PerSeat, RoundWinner, SeatKind,
    VerifyError, verify_transcript,
};
use game::{Choice, Seat};
use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use crate::cli::connection::ConnectionArgs;
use crate::cli::names::{mode_name, seat_name};

/// A transcript file larger than this is not one the server wrote: a match has at most
/// `MAX_ROUNDS` (100) rounds of a few events each, well under a megabyte.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["match_id", "file"])))]
pub struct VerifyArgs {
    /// Fetch this match's transcript from the server (GET /matches/{id})
    #[arg(long = "match", value_name = "ID")]
    pub match_id: Option<String>,
    /// Check a transcript saved from GET /matches/{id} (or a JSON array of its events)
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    // The server to fetch from, with --match.
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Give up on the server after this long
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// Why nothing could be said about the evidence (exit 2), or why it is wrong (exit 1).
#[derive(Debug, PartialEq)]
enum Failure {
    Unusable(String),
    NotVerified(String),
}

impl Failure {
    fn exit_code(&self) -> ExitCode {
        match self {
            Failure::Unusable(_) => ExitCode::from(2),
            Failure::NotVerified(_) => ExitCode::FAILURE,
        }
    }
}

/// What `verify` can check.
#[derive(Debug)]
enum Evidence {
    /// A real-time match's public log, with who sat where when the server said so.
    Transcript(Transcript),
}

#[derive(Debug)]
struct Transcript {
    /// The id the transcript was asked for or says it is of, if any.
    claimed_id: Option<String>,
    seats: Option<PerSeat<SeatSummary>>,
    events: Vec<Event>,
}

#[derive(Clone, Debug, Deserialize)]
struct SeatSummary {
    kind: String,
    name: String,
}

impl Evidence {
    /// Reads evidence from its JSON: an object with `events` (what `GET /matches/{id}` answers)
    /// or a bare array of events.
    fn read(document: Value) -> Result<Evidence, Failure> {
        let (claimed_id, seats, events) = match document {
            Value::Array(events) => (None, None, events),
            Value::Object(mut object) => {
                let Some(Value::Array(events)) = object.remove("events") else {
                    return Err(Failure::Unusable(
                        "not a transcript: no \"events\" array".to_owned(),
                    ));
                };
                let claimed_id = object
                    .get("match_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let seats = object
                    .remove("seats")
                    .and_then(|seats| serde_json::from_value(seats).ok());
                (claimed_id, seats, events)
            }
            _ => {
                return Err(Failure::Unusable(
                    "not a transcript: expected a JSON object or array".to_owned(),
                ));
            }
        };
        // One by one, so that an event that does not even parse is named like any other fault.
        let events = events
            .into_iter()
            .enumerate()
            .map(|(index, event)| {
                let seq = event.get("seq").and_then(Value::as_u64);
                serde_json::from_value::<Event>(event).map_err(|error| {
                    let seq =
                        seq.map_or_else(|| "without a seq".to_owned(), |s| format!("seq {s}"));
                    Failure::NotVerified(format!(
                        "event {seq} (number {} in the transcript) is not a valid event: {error}",
                        index + 1
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Evidence::Transcript(Transcript {
            claimed_id,
            seats,
            events,
        }))
    }
}

pub async fn run_verify(args: VerifyArgs) -> ExitCode {
    let checked = match gather(&args).await {
        Ok(Evidence::Transcript(transcript)) => check_transcript(&transcript, &args),
        Err(failure) => Err(failure),
    };
    // Written without `println!`, which panics when stdout is closed (`verify … | head`).
    let mut out = std::io::stdout().lock();
    match checked {
        Ok(report) => {
            for line in report {
                let _ = writeln!(out, "{line}");
            }
            ExitCode::SUCCESS
        }
        Err(failure) => {
            let code = failure.exit_code();
            match failure {
                Failure::Unusable(message) => eprintln!("guess-game: {message}"),
                Failure::NotVerified(message) => {
                    let _ = writeln!(out, "{message}");
                }
            }
            code
        }
    }
}

/// `text` without control characters: a name or id from a transcript must not steer the
/// terminal it is printed on.
fn plain(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

async fn gather(args: &VerifyArgs) -> Result<Evidence, Failure> {
    let document = match (&args.match_id, &args.file) {
        (Some(id), _) => fetch(&args.connection, id, args.timeout).await?,
        (None, Some(path)) => read_file(path)?,
        (None, None) => return Err(Failure::Unusable("give --match or --file".to_owned())),
    };
    let mut evidence = Evidence::read(document)?;
    let Evidence::Transcript(transcript) = &mut evidence;
    if let Some(id) = &args.match_id {
        // The one asked for, whatever the answer claims: checked against the configuration.
        transcript.claimed_id = Some(id.clone());
    }
    Ok(evidence)
}

async fn fetch(connection: &ConnectionArgs, id: &str, timeout: Duration) -> Result<Value, Failure> {
    let server = &connection.server;
    let valid = !id.is_empty()
        && id.len() <= game::matches::MAX_MATCH_ID_BYTES
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
    if !valid {
        return Err(Failure::Unusable(format!("{id:?} is not a match id")));
    }
    let url = connection
        .url()
        .map_err(|error| Failure::Unusable(error.to_string()))?;
    let answer = url
        .send(
            Method::GET,
            &format!("/matches/{id}"),
            &[("accept", "application/json")],
            Bytes::new(),
            timeout,
        )
        .await
        .map_err(|error| Failure::Unusable(error.to_string()))?;
    match answer.status {
        StatusCode::OK => serde_json::from_slice(&answer.body).map_err(|error| {
            Failure::Unusable(format!("the server's answer is not JSON: {error}"))
        }),
        StatusCode::NOT_FOUND => Err(Failure::Unusable(format!(
            "{server} has no match {id} (it keeps the transcripts of recent matches only)"
        ))),
        status => Err(Failure::Unusable(format!(
            "the server answered {status} for match {id}"
        ))),
    }
}

fn read_file(path: &std::path::Path) -> Result<Value, Failure> {
    let unreadable = |error: std::io::Error| {
        Failure::Unusable(format!("cannot read {}: {error}", path.display()))
    };
    let length = std::fs::metadata(path).map_err(unreadable)?.len();
    if length > MAX_FILE_BYTES {
        return Err(Failure::Unusable(format!(
            "{} is {length} bytes: too large for a transcript",
            path.display()
        )));
    }
    let text = std::fs::read(path).map_err(unreadable)?;
    serde_json::from_slice(&text)
        .map_err(|error| Failure::Unusable(format!("{} is not JSON: {error}", path.display())))
}

/// Checks a transcript and describes it: the lines to print when it verifies, or the rounds
/// up to the first broken event and what is wrong with it.
fn check_transcript(transcript: &Transcript, args: &VerifyArgs) -> Result<Vec<String>, Failure> {
    let verdict = verify_transcript(&transcript.events);
    let mut describer = Describer::new(transcript.seats.clone());
    // Everything before the first broken event; nothing after it is worth reading.
    let trusted = match verdict {
        Ok(()) => transcript.events.len(),
        Err(VerifyError { index, .. }) => index,
    };
    for event in &transcript.events[..trusted] {
        describer.describe(event);
    }
    if let Err(error) = verdict {
        let mut lines = describer.lines;
        lines.push(not_verified(&transcript.events, error));
        return Err(Failure::NotVerified(lines.join("\n")));
    }
    let config = describer.config.clone();
    if let (Some(claimed), Some(config)) = (&transcript.claimed_id, &config)
        && *claimed != config.match_id
    {
        return Err(Failure::NotVerified(format!(
            "NOT VERIFIED: the transcript is of match {}, not {}",
            plain(&config.match_id),
            plain(claimed)
        )));
    }
    let mut lines = describer.lines;
    let rounds = describer.rounds_revealed;
    let events = transcript.events.len();
    let rounds = format!("{rounds} round{}", if rounds == 1 { "" } else { "s" });
    lines.push(if describer.ended {
        format!("verified: {events} events, {rounds}; every round and score recounted")
    } else {
        format!("verified so far: {events} events, {rounds}; the match has not ended yet")
    });
    let sealed = config.as_ref().is_some_and(|config| {
        Seat::BOTH
            .into_iter()
            .any(|seat| config.seats[seat] == SeatKind::Sealed)
    });
    if sealed {
        lines.push(
            "(a seat with sealed moves commits to nothing: its moves are as the server \
             reports them, checked against the rules but not against a commitment)"
                .to_owned(),
        );
    }
    if let (Some(id), Some(_)) = (&args.match_id, &config) {
        lines.push(format!(
            "(fetched from {} as match {id})",
            args.connection.server
        ));
    }
    Ok(lines)
}

fn not_verified(events: &[Event], error: VerifyError) -> String {
    match events.get(error.index) {
        Some(event) => format!(
            "NOT VERIFIED: event seq {} (number {} in the transcript, {}): {}",
            event.seq,
            error.index + 1,
            kind_name(&event.kind),
            error.reason
        ),
        None => format!("NOT VERIFIED: {}", error.reason),
    }
}

fn kind_name(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::MatchStarted { .. } => "match_started",
        EventKind::RoundOpened { .. } => "round_opened",
        EventKind::MoveSealed { .. } => "move_sealed",
        EventKind::Locked { .. } => "locked",
        EventKind::Committed { .. } => "committed",
        EventKind::RoundRevealed { .. } => "round_revealed",
        EventKind::MatchEnded { .. } => "match_ended",
        EventKind::OpponentDisconnected { .. } => "opponent_disconnected",
        EventKind::OpponentReconnected { .. } => "opponent_reconnected",
    }
}

/// Turns checked events into sentences, remembering the commitments each round opens.
struct Describer {
    seats: Option<PerSeat<SeatSummary>>,
    config: Option<MatchConfig>,
    /// The open round's commitments: a bot's from the opening, a commit-reveal seat's own.
    commitments: PerSeat<Option<Commitment>>,
    rounds_revealed: u32,
    ended: bool,
    lines: Vec<String>,
}

impl Describer {
    fn new(seats: Option<PerSeat<SeatSummary>>) -> Describer {
        Describer {
            seats,
            config: None,
            commitments: PerSeat::default(),
            rounds_revealed: 0,
            ended: false,
            lines: Vec::new(),
        }
    }

    fn describe(&mut self, event: &Event) {
        match &event.kind {
            EventKind::MatchStarted { config } => self.started(config),
            EventKind::RoundOpened {
                bot_commitments, ..
            } => self.commitments = *bot_commitments,
            EventKind::Committed {
                seat, commitment, ..
            } => self.commitments[*seat] = Some(*commitment),
            EventKind::RoundRevealed {
                round,
                moves,
                salts,
                winner,
                score,
            } => self.revealed(*round, *moves, *salts, *winner, *score),
            EventKind::MatchEnded {
                outcome,
                reason,
                score,
            } => {
                self.ended = true;
                self.lines.push(format!(
                    "end: {} ({}), final score {}-{}",
                    outcome_text(*outcome),
                    reason_text(*reason),
                    score.a,
                    score.b
                ));
            }
            EventKind::OpponentDisconnected { seat } => {
                self.lines
                    .push(format!("  seat {} disconnected", seat_name(*seat)));
            }
            EventKind::OpponentReconnected { seat } => {
                self.lines
                    .push(format!("  seat {} reconnected", seat_name(*seat)));
            }
            EventKind::Locked { .. } | EventKind::MoveSealed { .. } => {}
        }
    }

    fn started(&mut self, config: &MatchConfig) {
        self.lines.push(format!(
            "match {}: {}, rounds time out after {} ms",
            plain(&config.match_id),
            mode_name(config.mode),
            config.round_timeout_ms
        ));
        for seat in Seat::BOTH {
            let who = self.seats.as_ref().map_or_else(String::new, |seats| {
                format!(
                    " — {} ({})",
                    plain(&seats[seat].name),
                    plain(&seats[seat].kind)
                )
            });
            self.lines.push(format!(
                "  seat {}: {}{who}",
                seat_name(seat),
                seat_kind_text(config.seats[seat])
            ));
        }
        self.config = Some(config.clone());
    }

    fn revealed(
        &mut self,
        round: u32,
        moves: PerSeat<Option<Choice>>,
        salts: PerSeat<Option<Salt>>,
        winner: RoundWinner,
        score: PerSeat<u32>,
    ) {
        self.rounds_revealed += 1;
        let played = |choice: Option<Choice>| choice.map_or("no move", Choice::name);
        self.lines.push(format!(
            "round {round}: A {}, B {} → {}; score {}-{}",
            played(moves.a),
            played(moves.b),
            winner_text(winner),
            score.a,
            score.b
        ));
        let match_id = self.config.as_ref().map_or("", |config| &config.match_id);
        for seat in Seat::BOTH {
            let (Some(commitment), Some(choice)) = (self.commitments[seat], moves[seat]) else {
                continue;
            };
            let Some(salt) = salts[seat] else {
                continue;
            };
            let opens = verify_commitment(&commitment, match_id, round, seat, choice, &salt);
            self.lines.push(format!(
                "  {}: commitment {commitment}\n     salt       {salt} → {}",
                seat_name(seat),
                if opens { "opens: ok" } else { "does NOT open" }
            ));
        }
        self.commitments = PerSeat::default();
    }
}

fn seat_kind_text(kind: SeatKind) -> &'static str {
    match kind {
        SeatKind::Sealed => "sealed moves (the server holds each until the reveal)",
        SeatKind::CommitReveal => "commit-reveal",
        SeatKind::Bot => "bot (commits before each round opens)",
    }
}

fn winner_text(winner: RoundWinner) -> &'static str {
    match winner {
        RoundWinner::A => "A takes the round",
        RoundWinner::B => "B takes the round",
        RoundWinner::Tie => "a tie",
        RoundWinner::BothForfeit => "void, neither moved",
    }
}

fn outcome_text(outcome: MatchOutcome) -> String {
    match outcome {
        MatchOutcome::Won(seat) => format!("{} won", seat_name(seat)),
        MatchOutcome::NoContest => "no contest".to_owned(),
    }
}

fn reason_text(reason: EndReason) -> String {
    match reason {
        EndReason::Decided => "decided".to_owned(),
        EndReason::Left(seat) => format!("{} left", seat_name(seat)),
        EndReason::GraceExpired(seat) => {
            format!(
                "{} stayed disconnected past its grace period",
                seat_name(seat)
            )
        }
        EndReason::Abandoned => "abandoned: rounds in a row with no move".to_owned(),
        EndReason::RoundLimit => "the round limit".to_owned(),
        EndReason::Drained => "ended by the server".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use game::matches::{Command, Match};
    use serde_json::json;

    fn args() -> VerifyArgs {
        VerifyArgs {
            match_id: None,
            file: Some(PathBuf::from("transcript.json")),
            connection: ConnectionArgs {
                server: "http://127.0.0.1:8080".to_owned(),
                ca_file: None,
            },
            timeout: Duration::from_secs(1),
        }
    }

    /// A best-of-1 between a sealed seat and a bot, played to the end: a real log.
    fn bot_match() -> Vec<Event> {
        let config = MatchConfig {
            match_id: "m1".to_owned(),
            mode: game::matches::Mode::BestOf1,
            round_timeout_ms: 1000,
            seats: PerSeat::new(SeatKind::Sealed, SeatKind::Bot),
        };
        let (mut game, mut log) = Match::new(config, 10).unwrap();
        let bot = Command::BotMove {
            seat: Seat::B,
            round: 1,
            choice: Choice::Scissors,
            salt: Salt([7; 32]),
        };
        log.extend(game.apply(bot, 20).unwrap());
        let lock = Command::Lock {
            seat: Seat::A,
            round: 1,
            choice: Choice::Rock,
        };
        log.extend(game.apply(lock, 30).unwrap());
        game::matches::public(&log)
    }

    fn transcript(events: Vec<Event>) -> Transcript {
        Transcript {
            claimed_id: None,
            seats: None,
            events,
        }
    }

    #[test]
    fn a_real_match_verifies_and_its_bot_commitment_is_shown_opening() {
        let lines = check_transcript(&transcript(bot_match()), &args()).unwrap();
        let text = lines.join("\n");
        assert!(text.contains("round 1: A rock, B scissors → A takes the round; score 1-0"));
        assert!(text.contains("opens: ok"), "{text}");
        assert!(
            text.contains("end: A won (decided), final score 1-0"),
            "{text}"
        );
        assert!(text.contains("\nverified: 5 events, 1 round;"), "{text}");
        assert!(
            text.contains("seat with sealed moves commits to nothing"),
            "{text}"
        );
    }

    #[test]
    fn a_changed_move_is_named_by_its_event() {
        let mut events = bot_match();
        let revealed = events
            .iter_mut()
            .find(|event| matches!(event.kind, EventKind::RoundRevealed { .. }))
            .unwrap();
        let seq = revealed.seq;
        if let EventKind::RoundRevealed { moves, .. } = &mut revealed.kind {
            moves.b = Some(Choice::Paper);
        }
        let Err(Failure::NotVerified(text)) = check_transcript(&transcript(events), &args()) else {
            panic!("a tampered transcript verified");
        };
        assert!(
            text.ends_with(&format!(
                "NOT VERIFIED: event seq {seq} (number 4 in the transcript, round_revealed): \
                 seat B's revealed move does not open its commitment"
            )),
            "{text}"
        );
        assert!(
            !text.contains("round 1:"),
            "nothing from the broken event is shown"
        );
    }

    #[test]
    fn a_transcript_of_another_match_than_asked_is_refused() {
        let mut asked = transcript(bot_match());
        asked.claimed_id = Some("m2".to_owned());
        let refused = check_transcript(&asked, &args());
        assert_eq!(
            refused,
            Err(Failure::NotVerified(
                "NOT VERIFIED: the transcript is of match m1, not m2".to_owned()
            ))
        );
    }

    #[test]
    fn evidence_is_read_from_an_answer_or_a_bare_array_and_bad_events_are_named() {
        let events = serde_json::to_value(bot_match()).unwrap();
        let answer = json!({"match_id": "m1", "seats": {
            "a": {"kind": "human", "id": "x", "name": "ann"},
            "b": {"kind": "bot", "id": "random", "name": "random"}}, "events": events});
        let Evidence::Transcript(read) = Evidence::read(answer).unwrap();
        assert_eq!(read.claimed_id.as_deref(), Some("m1"));
        assert_eq!(read.seats.unwrap().a.name, "ann");
        assert!(Evidence::read(events.clone()).is_ok());
        let mut broken = events;
        broken[1]["kind"]["type"] = json!("dance");
        let seq = broken[1]["seq"].clone();
        let Err(Failure::NotVerified(message)) = Evidence::read(broken) else {
            panic!("an unknown event kind was read");
        };
        let expected = format!("event seq {seq} (number 2 in the transcript) is not a valid");
        assert!(message.starts_with(&expected), "{message}");
        assert!(matches!(
            Evidence::read(json!({"match": 1})),
            Err(Failure::Unusable(_))
        ));
    }
}

//! `guess-game play`: one round against a running server, printed for people (or raw JSON).

use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use http::Method;
use serde::Deserialize;

use guess_game::game::Choice;

use super::connection::ConnectionArgs;

#[derive(Debug, Args)]
pub struct PlayArgs {
    /// Your move: rock, paper or scissors (any case)
    #[arg(value_parser = parse_choice)]
    pub choice: Choice,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Print the server's raw JSON answer instead of a sentence
    #[arg(long)]
    pub json: bool,
    /// Give up after this long, e.g. "5s"
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Name the player with X-Player-Id (1-64 of A-Z, a-z, 0-9, '_', '.', '-'): counted only
    /// by a server with trust_player_header on. Otherwise the round counts for the account
    /// signed in with `guess-game account`, if any.
    #[arg(long, value_name = "ID", value_parser = parse_player)]
    pub player: Option<String>,
    /// Send this Idempotency-Key: a retry with the same key replays the first answer
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
}

fn parse_player(input: &str) -> Result<String, String> {
    if guess_game::http::is_valid_player_id(input.as_bytes()) {
        Ok(input.to_owned())
    } else {
        Err("a player id is 1-64 of A-Z, a-z, 0-9, '_', '.', '-'".to_owned())
    }
}

fn parse_choice(input: &str) -> Result<Choice, String> {
    Choice::parse(input).map_err(|error| error.to_string())
}

#[derive(Deserialize)]
struct Round {
    player_choice: String,
    computer_choice: String,
    winner: String,
    reason: String,
}

#[derive(Deserialize)]
struct Problem {
    code: String,
    detail: String,
}

/// Plays one round; exit code 0 on a played round, 1 when the server could not be reached or
/// refused the round.
pub async fn run_play(args: PlayArgs) -> ExitCode {
    let server = match args.connection.url() {
        Ok(server) => server,
        Err(error) => {
            eprintln!("guess-game: {error}");
            return ExitCode::from(2);
        }
    };
    let body = Bytes::from(format!(r#"{{"choice":"{}"}}"#, args.choice.name()));
    let mut headers = vec![
        ("content-type", "application/json"),
        ("accept", "application/json"),
    ];
    if let Some(player) = &args.player {
        headers.push(("x-player-id", player));
    }
    let authorization = match &args.player {
        Some(_) => None,
        None => super::account::access_token_for(&server, &args.connection.server, args.timeout)
            .await
            .map(|token| format!("Bearer {token}")),
    };
    if let Some(value) = &authorization {
        headers.push(("authorization", value));
    }
    if let Some(key) = &args.idempotency_key {
        headers.push(("idempotency-key", key));
    }
    let answer = match server
        .send(Method::POST, "/play", &headers, body, args.timeout)
        .await
    {
        Ok(answer) => answer,
        Err(error) => {
            eprintln!("guess-game: {error}");
            return ExitCode::FAILURE;
        }
    };
    if args.json {
        println!("{}", String::from_utf8_lossy(&answer.body));
        return if answer.status.is_success() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    if !answer.status.is_success() {
        match serde_json::from_slice::<Problem>(&answer.body) {
            Ok(problem) => eprintln!(
                "guess-game: the server refused the round ({}, {}): {}",
                answer.status, problem.code, problem.detail
            ),
            Err(_) => eprintln!("guess-game: the server answered {}", answer.status),
        }
        return ExitCode::FAILURE;
    }
    match serde_json::from_slice::<Round>(&answer.body) {
        Ok(round) => {
            println!("{}", describe(&round));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("guess-game: the server's answer is not a round: {error}");
            ExitCode::FAILURE
        }
    }
}

fn describe(round: &Round) -> String {
    let verdict = match round.winner.as_str() {
        "player" => "You win",
        "computer" => "The computer wins",
        _ => "It's a draw",
    };
    format!(
        "You played {}, the computer played {}.\n{verdict}: {}.",
        round.player_choice, round.computer_choice, round.reason
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_reads_as_two_sentences() {
        let round = Round {
            player_choice: "paper".into(),
            computer_choice: "rock".into(),
            winner: "player".into(),
            reason: "paper beats rock".into(),
        };
        assert_eq!(
            describe(&round),
            "You played paper, the computer played rock.\nYou win: paper beats rock."
        );
    }
}

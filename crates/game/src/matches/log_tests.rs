//! The log as other parties see it: replay on another instance, a player's verification of the
//! public transcript, and the JSON the runtime stores.

use super::tests::{START, Table, config};
use super::*;
use crate::Choice::{Paper, Rock, Scissors};
use crate::Seat;
use crate::fairness::{Salt, commitment};

#[test]
fn replay_rebuilds_a_match_in_progress() {
    let mut table = Table::new(config(SeatKind::CommitReveal, SeatKind::Bot, Mode::BestOf3));
    let salt = Salt([3; 32]);
    table
        .apply(
            Command::BotMove {
                seat: Seat::B,
                round: 1,
                choice: Rock,
                salt,
            },
            START,
        )
        .unwrap();
    let made = commitment("m-test", 1, Seat::A, Paper, &salt);
    table
        .apply(
            Command::Commit {
                seat: Seat::A,
                round: 1,
                commitment: made,
            },
            START + 1,
        )
        .unwrap();
    table
        .apply(
            Command::Reveal {
                seat: Seat::A,
                round: 1,
                choice: Paper,
                salt,
            },
            START + 2,
        )
        .unwrap();
    table
        .apply(
            Command::BotMove {
                seat: Seat::B,
                round: 2,
                choice: Rock,
                salt,
            },
            START + 3,
        )
        .unwrap();
    let rebuilt = Match::replay(table.game.config().clone(), &table.log).unwrap();
    assert_eq!(rebuilt, table.game);
}

#[test]
fn replay_refuses_a_tampered_or_cut_log() {
    let mut table = Table::new(config(SeatKind::Sealed, SeatKind::Sealed, Mode::BestOf3));
    table.lock(Seat::A, Rock, START);
    table.lock(Seat::B, Scissors, START + 1);
    let config = table.game.config().clone();

    let mut tampered = table.log.clone();
    let sealed = tampered
        .iter()
        .position(|event| matches!(event.kind, EventKind::MoveSealed { seat: Seat::A, .. }))
        .unwrap();
    if let EventKind::MoveSealed { choice, .. } = &mut tampered[sealed].kind {
        *choice = Paper;
    }
    let error = Match::replay(config.clone(), &tampered).unwrap_err();
    assert_eq!(error.reason, ReplayFault::Diverged);

    // Cut in the middle of B's lock: its sealed move is there, the reveal it caused is not.
    let cut = &table.log[..table.log.len() - 2];
    let error = Match::replay(config.clone(), cut).unwrap_err();
    assert_eq!(error.reason, ReplayFault::Truncated);

    let other = MatchConfig {
        match_id: "m-other".to_owned(),
        ..config
    };
    assert_eq!(
        Match::replay(other, &table.log).unwrap_err().reason,
        ReplayFault::ConfigMismatch
    );
}

#[test]
fn verification_names_the_event_that_was_altered() {
    let mut table = Table::new(config(SeatKind::Sealed, SeatKind::Bot, Mode::BestOf3));
    let salt = Salt([5; 32]);
    table
        .apply(
            Command::BotMove {
                seat: Seat::B,
                round: 1,
                choice: Rock,
                salt,
            },
            START,
        )
        .unwrap();
    table.lock(Seat::A, Scissors, START + 1);
    let transcript = public(&table.log);
    let reveal = transcript
        .iter()
        .position(|event| matches!(event.kind, EventKind::RoundRevealed { .. }))
        .unwrap();

    // The bot played rock and won. A log claiming it played paper, and so lost, is consistent
    // in every other field; only the bot's commitment gives it away.
    let mut swapped = transcript.clone();
    if let EventKind::RoundRevealed {
        moves,
        winner,
        score,
        ..
    } = &mut swapped[reveal].kind
    {
        moves.b = Some(Paper);
        *winner = RoundWinner::A;
        *score = PerSeat::new(1, 0);
    }
    assert_eq!(
        verify_transcript(&swapped),
        Err(VerifyError {
            index: reveal,
            reason: TranscriptFault::BadCommitment(Seat::B)
        })
    );

    let mut rescored = transcript.clone();
    if let EventKind::RoundRevealed { score, .. } = &mut rescored[reveal].kind {
        *score = PerSeat::new(1, 1);
    }
    assert_eq!(
        verify_transcript(&rescored),
        Err(VerifyError {
            index: reveal,
            reason: TranscriptFault::WrongScore
        })
    );
}

#[test]
fn events_keep_their_shape_through_json() {
    let mut table = Table::new(config(SeatKind::Sealed, SeatKind::Sealed, Mode::BestOf1));
    let events = table.lock(Seat::A, Rock, START);
    let locked = serde_json::to_string(&events[1]).unwrap();
    assert_eq!(
        locked,
        format!(r#"{{"seq":3,"at_ms":{START},"kind":{{"type":"locked","seat":"a","round":1}}}}"#)
    );
    table.lock(Seat::B, Paper, START);
    let json = serde_json::to_string(&table.log).unwrap();
    let decoded: Vec<Event> = serde_json::from_str(&json).unwrap();
    assert_eq!(decoded, table.log);
}

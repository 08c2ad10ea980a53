//! How the seats that are not simply sealed move: commit-reveal seats open their own
//! commitments, bot seats commit before their round opens.

use super::tests::{START, TIMEOUT, Table, config};
use super::*;
use crate::Choice::{Paper, Rock, Scissors};
use crate::Seat;
use crate::fairness::{Salt, commitment};

#[test]
fn commit_reveal_checks_the_reveal_against_the_commitment() {
    let mut table = Table::new(config(
        SeatKind::CommitReveal,
        SeatKind::Sealed,
        Mode::BestOf3,
    ));
    let salt = Salt([7; 32]);
    let made = commitment("m-test", 1, Seat::A, Scissors, &salt);
    table
        .apply(
            Command::Commit {
                seat: Seat::A,
                round: 1,
                commitment: made,
            },
            START,
        )
        .unwrap();
    table.lock(Seat::B, Paper, START + 1);
    let before = table.game.clone();
    let lie = Command::Reveal {
        seat: Seat::A,
        round: 1,
        choice: Rock,
        salt,
    };
    assert_eq!(
        table.apply(lie, START + 2),
        Err(MatchError::CommitmentMismatch { seat: Seat::A })
    );
    assert_eq!(table.game, before, "a refused reveal changes nothing");
    let honest = Command::Reveal {
        seat: Seat::A,
        round: 1,
        choice: Scissors,
        salt,
    };
    let events = table.apply(honest, START + 3).unwrap();
    let opened = PerSeat::new(Some(salt), None);
    assert!(events.iter().any(|event| matches!(
        &event.kind,
        EventKind::RoundRevealed { winner: RoundWinner::A, salts, .. } if *salts == opened
    )));
    assert_eq!(verify_transcript(&public(&table.log)), Ok(()));
}

#[test]
fn a_commitment_never_revealed_forfeits_the_round() {
    let mut table = Table::new(config(
        SeatKind::CommitReveal,
        SeatKind::Sealed,
        Mode::BestOf3,
    ));
    let made = commitment("m-test", 1, Seat::A, Rock, &Salt([1; 32]));
    table
        .apply(
            Command::Commit {
                seat: Seat::A,
                round: 1,
                commitment: made,
            },
            START,
        )
        .unwrap();
    table.lock(Seat::B, Scissors, START);
    let events = table.apply(Command::Tick, START + TIMEOUT).unwrap();
    assert!(matches!(
        &events[0].kind,
        EventKind::RoundRevealed {
            moves: PerSeat { a: None, .. },
            winner: RoundWinner::B,
            ..
        }
    ));
}

#[test]
fn a_bot_seat_commits_before_its_round_opens() {
    let mut table = Table::new(config(SeatKind::Sealed, SeatKind::Bot, Mode::BestOf1));
    assert_eq!(table.game.bot_move_needed(), Some((Seat::B, 1)));
    assert_eq!(
        table.game.next_deadline(),
        None,
        "no deadline runs before the bot moved"
    );
    let human_too_early = Command::Lock {
        seat: Seat::A,
        round: 1,
        choice: Rock,
    };
    assert_eq!(
        table.apply(human_too_early, START),
        Err(MatchError::RoundNotOpen)
    );
    let salt = Salt([9; 32]);
    let bot = Command::BotMove {
        seat: Seat::B,
        round: 1,
        choice: Paper,
        salt,
    };
    let events = table.apply(bot, START + 5).unwrap();
    let expected = commitment("m-test", 1, Seat::B, Paper, &salt);
    assert_eq!(
        public(&events)[0].kind,
        EventKind::RoundOpened {
            round: 1,
            deadline_ms: START + 5 + TIMEOUT,
            bot_commitments: PerSeat::new(None, Some(expected)),
        }
    );
    table.lock(Seat::A, Scissors, START + 6);
    assert!(matches!(
        table.last_kind(),
        EventKind::MatchEnded {
            outcome: MatchOutcome::Won(Seat::A),
            ..
        }
    ));
    assert_eq!(verify_transcript(&public(&table.log)), Ok(()));
}

#[test]
fn two_bots_play_a_round_as_soon_as_both_have_moved() {
    let mut table = Table::new(config(SeatKind::Bot, SeatKind::Bot, Mode::BestOf1));
    table
        .apply(
            Command::BotMove {
                seat: Seat::A,
                round: 1,
                choice: Rock,
                salt: Salt([1; 32]),
            },
            START,
        )
        .unwrap();
    let events = table
        .apply(
            Command::BotMove {
                seat: Seat::B,
                round: 1,
                choice: Rock,
                salt: Salt([2; 32]),
            },
            START,
        )
        .unwrap();
    assert!(events.iter().any(|event| matches!(
        event.kind,
        EventKind::RoundRevealed {
            winner: RoundWinner::Tie,
            ..
        }
    )));
    assert_eq!(table.game.bot_move_needed(), Some((Seat::A, 2)));
}

#[test]
fn a_match_of_endless_ties_stops_at_the_round_limit() {
    let mut table = Table::new(config(SeatKind::Bot, SeatKind::Bot, Mode::BestOf1));
    while let Some((seat, round)) = table.game.bot_move_needed() {
        let salt = Salt([seat as u8; 32]);
        table
            .apply(
                Command::BotMove {
                    seat,
                    round,
                    choice: Rock,
                    salt,
                },
                START,
            )
            .unwrap();
    }
    assert_eq!(table.game.round(), MAX_ROUNDS);
    assert!(matches!(
        table.last_kind(),
        EventKind::MatchEnded {
            outcome: MatchOutcome::NoContest,
            reason: EndReason::RoundLimit,
            ..
        }
    ));
    assert_eq!(verify_transcript(&public(&table.log)), Ok(()));
}

//! Scenarios of the match rules, one rule per test. The property tests beside this file check
//! the laws over random command sequences.

use super::*;
use crate::Choice::{Paper, Rock, Scissors};
use crate::fairness::Commitment;
use crate::{Choice, Seat};

pub(super) const TIMEOUT: u64 = 1_000;
pub(super) const START: u64 = 1_700_000_000_000;

pub(super) fn config(a: SeatKind, b: SeatKind, mode: Mode) -> MatchConfig {
    MatchConfig {
        match_id: "m-test".to_owned(),
        mode,
        round_timeout_ms: TIMEOUT,
        seats: PerSeat::new(a, b),
    }
}

/// A match and the log it has written, as the runtime would keep them.
pub(super) struct Table {
    pub(super) game: Match,
    pub(super) log: Vec<Event>,
}

impl Table {
    pub(super) fn new(config: MatchConfig) -> Table {
        let (game, log) = Match::new(config, START).unwrap();
        Table { game, log }
    }

    pub(super) fn apply(&mut self, command: Command, now: u64) -> Result<Vec<Event>, MatchError> {
        let events = self.game.apply(command, now)?;
        self.log.extend(events.iter().cloned());
        Ok(events)
    }

    pub(super) fn lock(&mut self, seat: Seat, choice: Choice, now: u64) -> Vec<Event> {
        let round = self.game.round();
        self.apply(
            Command::Lock {
                seat,
                round,
                choice,
            },
            now,
        )
        .unwrap()
    }

    pub(super) fn last_kind(&self) -> &EventKind {
        &self.log.last().unwrap().kind
    }
}

fn kinds(events: &[Event]) -> Vec<&EventKind> {
    events.iter().map(|event| &event.kind).collect()
}

#[test]
fn a_sealed_best_of_three_ends_once_a_seat_has_two_wins() {
    let mut table = Table::new(config(SeatKind::Sealed, SeatKind::Sealed, Mode::BestOf3));
    assert_eq!(table.game.next_deadline(), Some(START + TIMEOUT));
    let locked = table.lock(Seat::A, Paper, START + 10);
    // The opponent learns that A locked, and nothing else.
    assert_eq!(public(&locked).len(), 1);
    assert_eq!(
        public(&locked)[0].kind,
        EventKind::Locked {
            seat: Seat::A,
            round: 1
        }
    );
    let revealed = table.lock(Seat::B, Rock, START + 20);
    assert!(matches!(
        kinds(&revealed)[2],
        EventKind::RoundRevealed {
            winner: RoundWinner::A,
            score: PerSeat { a: 1, b: 0 },
            ..
        }
    ));
    assert!(
        matches!(kinds(&revealed)[3], EventKind::RoundOpened { round: 2, deadline_ms, .. }
        if *deadline_ms == START + 20 + TIMEOUT)
    );
    table.lock(Seat::A, Scissors, START + 30);
    table.lock(Seat::B, Paper, START + 40);
    assert!(table.game.is_ended());
    assert_eq!(
        *table.last_kind(),
        EventKind::MatchEnded {
            outcome: MatchOutcome::Won(Seat::A),
            reason: EndReason::Decided,
            score: PerSeat::new(2, 0),
        }
    );
    assert_eq!(table.game.next_deadline(), None);
    assert_eq!(verify_transcript(&public(&table.log)), Ok(()));
}

#[test]
fn a_missing_move_forfeits_the_round_at_the_deadline() {
    let mut table = Table::new(config(SeatKind::Sealed, SeatKind::Sealed, Mode::BestOf3));
    table.lock(Seat::B, Rock, START + 1);
    // A tick before the deadline is harmless.
    assert_eq!(table.apply(Command::Tick, START + TIMEOUT - 1), Ok(vec![]));
    let events = table.apply(Command::Tick, START + TIMEOUT).unwrap();
    assert!(matches!(
        &events[0].kind,
        EventKind::RoundRevealed {
            moves: PerSeat {
                a: None,
                b: Some(Rock)
            },
            winner: RoundWinner::B,
            ..
        }
    ));
}

#[test]
fn three_rounds_without_any_move_end_as_no_contest() {
    let mut table = Table::new(config(
        SeatKind::Sealed,
        SeatKind::CommitReveal,
        Mode::BestOf5,
    ));
    for _ in 0..MAX_VOID_ROUNDS {
        let deadline = table.game.next_deadline().unwrap();
        table.apply(Command::Tick, deadline).unwrap();
    }
    assert_eq!(
        *table.last_kind(),
        EventKind::MatchEnded {
            outcome: MatchOutcome::NoContest,
            reason: EndReason::Abandoned,
            score: PerSeat::new(0, 0),
        }
    );
    // A late timer after the end is not an error; any other command is.
    assert_eq!(table.apply(Command::Tick, START + 10 * TIMEOUT), Ok(vec![]));
    assert_eq!(
        table.apply(Command::NoContest, START),
        Err(MatchError::Ended)
    );
}

#[test]
fn a_move_after_the_deadline_or_for_another_round_is_refused() {
    let mut table = Table::new(config(SeatKind::Sealed, SeatKind::Sealed, Mode::BestOf1));
    let before = table.game.clone();
    let late = Command::Lock {
        seat: Seat::A,
        round: 1,
        choice: Rock,
    };
    assert_eq!(
        table.apply(late, START + TIMEOUT),
        Err(MatchError::DeadlinePassed {
            deadline_ms: START + TIMEOUT
        })
    );
    let stale = Command::Lock {
        seat: Seat::A,
        round: 0,
        choice: Rock,
    };
    assert_eq!(
        table.apply(stale, START),
        Err(MatchError::WrongRound {
            expected: 1,
            got: 0
        })
    );
    table.lock(Seat::A, Rock, START);
    let twice = Command::Lock {
        seat: Seat::A,
        round: 1,
        choice: Paper,
    };
    assert_eq!(
        table.apply(twice, START),
        Err(MatchError::AlreadyMoved { seat: Seat::A })
    );
    let wrong_kind = Command::Commit {
        seat: Seat::B,
        round: 1,
        commitment: Commitment([0; 32]),
    };
    assert!(matches!(
        table.apply(wrong_kind, START),
        Err(MatchError::WrongSeatKind { .. })
    ));
    assert_ne!(table.game, before, "the lock itself went through");
}

#[test]
fn grace_expires_only_for_a_seat_that_is_disconnected() {
    let mut table = Table::new(config(SeatKind::Sealed, SeatKind::Sealed, Mode::BestOf3));
    let expire = Command::GraceExpired { seat: Seat::B };
    assert_eq!(
        table.apply(expire.clone(), START),
        Err(MatchError::SeatConnected { seat: Seat::B })
    );
    let dropped = table
        .apply(Command::Disconnect { seat: Seat::B }, START)
        .unwrap();
    assert_eq!(
        dropped[0].kind,
        EventKind::OpponentDisconnected { seat: Seat::B }
    );
    // A second notice of the same drop is not news.
    assert_eq!(
        table.apply(Command::Disconnect { seat: Seat::B }, START),
        Ok(vec![])
    );
    table.apply(expire, START + 1).unwrap();
    assert_eq!(
        *table.last_kind(),
        EventKind::MatchEnded {
            outcome: MatchOutcome::Won(Seat::A),
            reason: EndReason::GraceExpired(Seat::B),
            score: PerSeat::new(0, 0),
        }
    );
    assert_eq!(verify_transcript(&table.log), Ok(()));
}

#[test]
fn leaving_forfeits_the_match() {
    let mut table = Table::new(config(SeatKind::Sealed, SeatKind::Sealed, Mode::BestOf5));
    table
        .apply(Command::Leave { seat: Seat::A }, START)
        .unwrap();
    assert!(matches!(
        table.last_kind(),
        EventKind::MatchEnded {
            outcome: MatchOutcome::Won(Seat::B),
            reason: EndReason::Left(Seat::A),
            ..
        }
    ));
}

#[test]
fn event_times_never_go_backwards() {
    let mut table = Table::new(config(SeatKind::Sealed, SeatKind::Sealed, Mode::BestOf3));
    let events = table.lock(Seat::A, Rock, START - 5_000);
    assert!(events.iter().all(|event| event.at_ms == START));
}

#[test]
fn invalid_settings_are_refused_by_name() {
    let mut bad = config(SeatKind::Sealed, SeatKind::Sealed, Mode::BestOf1);
    bad.round_timeout_ms = 0;
    assert_eq!(
        Match::new(bad.clone(), START).unwrap_err(),
        MatchError::InvalidConfig(ConfigError::RoundTimeout)
    );
    bad.round_timeout_ms = TIMEOUT;
    bad.match_id = "x".repeat(MAX_MATCH_ID_BYTES + 1);
    assert!(
        Match::new(bad, START)
            .unwrap_err()
            .to_string()
            .contains("match_id")
    );
}

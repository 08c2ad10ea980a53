//! The laws of a match, over random configurations and random command sequences at random
//! times (clock skew included): every match ends, moves stay sealed until their reveal, every
//! commitment opens, replay rebuilds the state, scores stay in bounds, and the transcript
//! verifier accepts every log the match writes and rejects one with an altered reveal.

use proptest::prelude::*;

use super::*;
use crate::fairness::{Commitment, Salt, commitment, verify_commitment};
use crate::{Choice, Seat};

/// One random input; turned into a [`Command`] against the match's current state, so that most
/// moves name the right round and most reveals open a real commitment.
#[derive(Clone, Debug)]
enum Step {
    /// What a well-behaved client of the seat would send next: a lock, a commitment or its
    /// reveal, or the bot's move. Most steps are these, so that sequences get through rounds;
    /// the raw commands below are often the wrong kind for the seat, and are refused.
    Play {
        seat: Seat,
        choice: Choice,
        honest: bool,
    },
    Lock {
        seat: Seat,
        round_offset: i8,
        choice: Choice,
    },
    Commit {
        seat: Seat,
        choice: Choice,
    },
    Reveal {
        seat: Seat,
        honest: bool,
    },
    BotMove {
        seat: Seat,
        choice: Choice,
    },
    Tick,
    Disconnect {
        seat: Seat,
    },
    Reconnect {
        seat: Seat,
    },
    GraceExpired {
        seat: Seat,
    },
    Leave {
        seat: Seat,
    },
    NoContest,
}

fn any_seat() -> impl Strategy<Value = Seat> {
    prop::sample::select(Seat::BOTH.to_vec())
}

fn any_choice() -> impl Strategy<Value = Choice> {
    prop::sample::select(Choice::ALL.to_vec())
}

fn any_step() -> impl Strategy<Value = Step> {
    // Departures (which end the match) are rare, about 1 step in 110, so that most sequences
    // get through several rounds first.
    prop_oneof![
        60 => (any_seat(), any_choice(), prop::bool::weighted(0.9))
            .prop_map(|(seat, choice, honest)| Step::Play { seat, choice, honest }),
        8 => (any_seat(), -1i8..=1, any_choice())
            .prop_map(|(seat, round_offset, choice)| Step::Lock { seat, round_offset, choice }),
        5 => (any_seat(), any_choice()).prop_map(|(seat, choice)| Step::Commit { seat, choice }),
        5 => (any_seat(), prop::bool::weighted(0.8))
            .prop_map(|(seat, honest)| Step::Reveal { seat, honest }),
        5 => (any_seat(), any_choice()).prop_map(|(seat, choice)| Step::BotMove { seat, choice }),
        18 => Just(Step::Tick),
        3 => any_seat().prop_map(|seat| Step::Disconnect { seat }),
        3 => any_seat().prop_map(|seat| Step::Reconnect { seat }),
        3 => any_seat().prop_map(|seat| Step::GraceExpired { seat }),
        1 => prop_oneof![any_seat().prop_map(|seat| Step::Leave { seat }), Just(Step::NoContest)],
    ]
}

/// How far the clock moves before a step, in percent of the round timeout: mostly a fraction
/// of a round, sometimes past a deadline or two, and sometimes backwards (another instance's
/// clock running behind).
fn any_advance() -> impl Strategy<Value = i64> {
    prop_oneof![8 => -5i64..40, 1 => 40i64..300]
}

fn any_config() -> impl Strategy<Value = MatchConfig> {
    let kind = prop::sample::select(vec![
        SeatKind::Sealed,
        SeatKind::CommitReveal,
        SeatKind::Bot,
    ]);
    let mode = prop::sample::select(vec![Mode::BestOf1, Mode::BestOf3, Mode::BestOf5]);
    (kind.clone(), kind, mode, 1u64..=2_000).prop_map(|(a, b, mode, round_timeout_ms)| {
        MatchConfig {
            match_id: "m-prop".to_owned(),
            mode,
            round_timeout_ms,
            seats: PerSeat::new(a, b),
        }
    })
}

/// Drives a match the way a runtime would, remembering what each seat committed so it can
/// reveal it, and minting a salt no other move uses (so a leak of one is unambiguous).
struct Driver {
    game: Match,
    log: Vec<Event>,
    now: u64,
    committed: PerSeat<Option<(u32, Choice, Salt)>>,
    salts_made: u64,
}

impl Driver {
    fn fresh_salt(&mut self) -> Salt {
        self.salts_made += 1;
        let mut salt = [0x5a; 32];
        salt[..8].copy_from_slice(&self.salts_made.to_be_bytes());
        Salt(salt)
    }

    fn command(&mut self, step: &Step) -> Command {
        let round = self.game.round();
        match *step {
            Step::Play {
                seat,
                choice,
                honest,
            } => match self.game.config().seats[seat] {
                SeatKind::Sealed => self.command(&Step::Lock {
                    seat,
                    round_offset: 0,
                    choice,
                }),
                SeatKind::CommitReveal => match self.committed[seat] {
                    Some((committed, ..)) if committed == round => {
                        self.command(&Step::Reveal { seat, honest })
                    }
                    _ => self.command(&Step::Commit { seat, choice }),
                },
                SeatKind::Bot => self.command(&Step::BotMove { seat, choice }),
            },
            Step::Lock {
                seat,
                round_offset,
                choice,
            } => {
                let round = round.saturating_add_signed(i32::from(round_offset));
                Command::Lock {
                    seat,
                    round,
                    choice,
                }
            }
            Step::Commit { seat, choice } => {
                let salt = self.fresh_salt();
                self.committed[seat] = Some((round, choice, salt));
                let commitment =
                    commitment(&self.game.config().match_id, round, seat, choice, &salt);
                Command::Commit {
                    seat,
                    round,
                    commitment,
                }
            }
            Step::Reveal { seat, honest } => {
                let (round, choice, salt) =
                    self.committed[seat].unwrap_or((round, Choice::Rock, Salt([0; 32])));
                let choice = if honest { choice } else { choice.beaten_by() };
                Command::Reveal {
                    seat,
                    round,
                    choice,
                    salt,
                }
            }
            Step::BotMove { seat, choice } => {
                let salt = self.fresh_salt();
                Command::BotMove {
                    seat,
                    round,
                    choice,
                    salt,
                }
            }
            Step::Tick => Command::Tick,
            Step::Disconnect { seat } => Command::Disconnect { seat },
            Step::Reconnect { seat } => Command::Reconnect { seat },
            Step::GraceExpired { seat } => Command::GraceExpired { seat },
            Step::Leave { seat } => Command::Leave { seat },
            Step::NoContest => Command::NoContest,
        }
    }

    fn apply(&mut self, command: Command) -> Result<(), TestCaseError> {
        let before = self.game.clone();
        match self.game.apply(command, self.now) {
            Ok(events) => self.log.extend(events),
            Err(_) => prop_assert_eq!(&self.game, &before, "a refused command changed the match"),
        }
        let wins_needed = self.game.config().mode.wins_needed();
        prop_assert!(self.game.score().a <= wins_needed && self.game.score().b <= wins_needed);
        Ok(())
    }

    /// Ends the match as a runtime whose players have all gone quiet would: bot moves when asked,
    /// ticks at deadlines. Returns the ticks it took.
    fn drain(&mut self) -> Result<u32, TestCaseError> {
        let mut ticks = 0;
        for _ in 0..2 * MAX_ROUNDS + 10 {
            if self.game.is_ended() {
                return Ok(ticks);
            }
            if let Some((seat, round)) = self.game.bot_move_needed() {
                let salt = self.fresh_salt();
                let choice = if seat == Seat::A {
                    Choice::Rock
                } else {
                    Choice::Scissors
                };
                self.apply(Command::BotMove {
                    seat,
                    round,
                    choice,
                    salt,
                })?;
            } else {
                let deadline = self.game.next_deadline();
                prop_assert!(
                    deadline.is_some(),
                    "a running match with nothing to wait for"
                );
                self.now = self.now.max(deadline.unwrap_or(self.now));
                self.apply(Command::Tick)?;
                ticks += 1;
            }
        }
        Err(TestCaseError::fail("the match did not end"))
    }
}

/// No public event before a round's reveal names a move or a salt of that round.
fn check_sealing(log: &[Event]) -> Result<(), TestCaseError> {
    let mut pending_salts: Vec<(u32, String)> = Vec::new();
    for event in log {
        let json = serde_json::to_string(event).map_err(|e| TestCaseError::fail(e.to_string()))?;
        match &event.kind {
            EventKind::MoveSealed { round, salt, .. } => {
                pending_salts.extend(salt.map(|salt| (*round, salt.to_hex())));
            }
            EventKind::RoundRevealed { round, .. } => {
                pending_salts.retain(|(salted, _)| salted != round);
            }
            EventKind::MatchStarted { .. } => {}
            _ => {
                for name in ["rock", "paper", "scissors"] {
                    prop_assert!(!json.contains(name), "move in {}", json);
                }
                for (_, salt) in &pending_salts {
                    prop_assert!(!json.contains(salt.as_str()), "salt leaked in {}", json);
                }
            }
        }
    }
    Ok(())
}

/// Every commitment published in the log opens to the move revealed for it.
fn check_commitments(log: &[Event], match_id: &str) -> Result<(), TestCaseError> {
    let mut published: Vec<(u32, Seat, Commitment)> = Vec::new();
    for event in log {
        match &event.kind {
            EventKind::RoundOpened {
                round,
                bot_commitments,
                ..
            } => {
                for seat in Seat::BOTH {
                    published.extend(bot_commitments[seat].map(|c| (*round, seat, c)));
                }
            }
            EventKind::Committed {
                seat,
                round,
                commitment,
            } => published.push((*round, *seat, *commitment)),
            EventKind::RoundRevealed {
                round,
                moves,
                salts,
                ..
            } => {
                for &(_, seat, made) in published.iter().filter(|(r, _, _)| r == round) {
                    if let (Some(choice), Some(salt)) = (moves[seat], salts[seat]) {
                        prop_assert!(verify_commitment(
                            &made, match_id, *round, seat, choice, &salt
                        ));
                    } else {
                        // Only a commit-reveal seat may leave its commitment unopened, by not
                        // revealing; then neither its move nor its salt is shown.
                        prop_assert!(moves[seat].is_none() && salts[seat].is_none());
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Alters one move of one reveal and requires the verifier to name that event. Only moves
/// something can vouch for are altered: the seat's commitment, or, for a sealed seat, the other
/// seat's move (with it there, every change of one move changes the judged winner).
fn check_altered_reveal_is_rejected(
    transcript: &[Event],
    config: &MatchConfig,
    pick: prop::sample::Index,
) -> Result<(), TestCaseError> {
    let mut candidates: Vec<(usize, Seat)> = Vec::new();
    for (index, event) in transcript.iter().enumerate() {
        let EventKind::RoundRevealed { moves, .. } = &event.kind else {
            continue;
        };
        for seat in Seat::BOTH {
            let vouched = moves[seat.other()].is_some() || config.seats[seat] != SeatKind::Sealed;
            if moves[seat].is_some() && vouched {
                candidates.push((index, seat));
            }
        }
    }
    if candidates.is_empty() {
        return Ok(());
    }
    let (index, seat) = candidates[pick.index(candidates.len())];
    let mut altered = transcript.to_vec();
    if let EventKind::RoundRevealed { moves, .. } = &mut altered[index].kind {
        moves[seat] = moves[seat].map(Choice::beaten_by);
    }
    let rejected = verify_transcript(&altered);
    prop_assert!(
        matches!(rejected, Err(VerifyError { index: at, .. }) if at == index),
        "altered event {} gave {:?}",
        index,
        rejected
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_log_keeps_the_laws(
        config in any_config(),
        start in 0u64..=u64::from(u32::MAX),
        steps in prop::collection::vec((any_step(), any_advance()), 0..120),
        mutation in any::<prop::sample::Index>(),
    ) {
        let (game, log) = Match::new(config.clone(), start).unwrap();
        let committed = PerSeat::default();
        let mut driver = Driver { game, log, now: start, committed, salts_made: 0 };
        for (step, advance_percent) in &steps {
            let advance = config.round_timeout_ms as i64 * advance_percent / 100;
            driver.now = driver.now.saturating_add_signed(advance);
            let command = driver.command(step);
            driver.apply(command)?;
        }
        prop_assert_eq!(&Match::replay(config.clone(), &driver.log).unwrap(), &driver.game);

        let ticks = driver.drain()?;
        prop_assert!(ticks <= config.mode.wins_needed() + MAX_VOID_ROUNDS, "{} ticks", ticks);
        let log = &driver.log;
        for (index, event) in log.iter().enumerate() {
            prop_assert_eq!(event.seq, index as u64);
        }
        prop_assert_eq!(&Match::replay(config.clone(), log).unwrap(), &driver.game);
        check_sealing(log)?;
        check_commitments(log, &config.match_id)?;
        let transcript = public(log);
        prop_assert_eq!(verify_transcript(log), Ok(()));
        prop_assert_eq!(verify_transcript(&transcript), Ok(()));
        let json = serde_json::to_string(log).unwrap();
        prop_assert_eq!(&serde_json::from_str::<Vec<Event>>(&json).unwrap(), log);

        check_altered_reveal_is_rejected(&transcript, &config, mutation)?;
    }
}

//! The rules of rock-paper-scissors, and nothing else.
//!
//! This crate is pure: it does no I/O and knows nothing of HTTP, wire formats or storage.
//! Judging is a lookup in a 3x3 table indexed by the two choices, so there is exactly one place
//! where the rules live and no chain of conditions to get subtly wrong. The computer's move
//! comes from [`random`], which owns the only contact with the operating system's random source.
//!
//! Real-time play builds on that: [`mod@matches`] is the state machine of a match between two
//! seats, driven by commands and recorded as an append-only log of events; [`fairness`] holds
//! the commitments that let a player check the server did not change a move after seeing
//! theirs; [`bots`] are the computer opponents and [`rating`] the Glicko-2 ratings. Time and
//! randomness are inputs everywhere, so all of it is deterministic and testable without a clock.

pub mod bots;
pub mod fairness;
pub mod matches;
pub mod random;
pub mod rating;

use std::fmt;

use serde::{Deserialize, Serialize};

/// One of the three moves a player can make.
///
/// Serialized by its lowercase name, the same word the API accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum Choice {
    Rock = 0,
    Paper = 1,
    Scissors = 2,
}

/// Who won a round, from the human player's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Winner {
    Player,
    Computer,
    Tie,
}

/// One of the two sides of a match. Shared by [`mod@matches`], which seats players, and
/// [`fairness`], which binds a commitment to the seat that made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Seat {
    A,
    B,
}

impl Seat {
    /// Both seats, A first: the order used wherever seats are listed.
    pub const BOTH: [Seat; 2] = [Seat::A, Seat::B];

    /// The seat across the table.
    pub const fn other(self) -> Seat {
        match self {
            Seat::A => Seat::B,
            Seat::B => Seat::A,
        }
    }
}

/// The judged result of one round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub player: Choice,
    pub computer: Choice,
    pub winner: Winner,
    /// A sentence explaining the result, such as "paper beats rock". Static, so judging a round
    /// never allocates.
    pub reason: &'static str,
}

/// A choice name that is not one of [`Choice::ALL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown choice; expected one of rock, paper, scissors")]
pub struct UnknownChoice;

/// What the rules can fail at, as the layers above see it.
#[derive(Debug, thiserror::Error)]
pub enum GameError {
    /// No move could be drawn for the computer.
    #[error("the computer could not draw a move: {0}")]
    RandomUnavailable(#[from] random::RandomUnavailable),
}

impl Choice {
    /// Every choice, in table order.
    pub const ALL: [Choice; 3] = [Choice::Rock, Choice::Paper, Choice::Scissors];

    /// The lowercase name used on the wire.
    pub const fn name(self) -> &'static str {
        match self {
            Choice::Rock => "rock",
            Choice::Paper => "paper",
            Choice::Scissors => "scissors",
        }
    }

    /// Parses a choice name case-insensitively, ignoring surrounding whitespace.
    pub fn parse(input: &str) -> Result<Choice, UnknownChoice> {
        // ASCII whitespace only, so the API document can state exactly what is accepted.
        let trimmed = input.trim_ascii();
        Choice::ALL
            .into_iter()
            .find(|choice| choice.name().eq_ignore_ascii_case(trimmed))
            .ok_or(UnknownChoice)
    }

    /// The choice at `index` in [`Choice::ALL`]; `index` must be below 3.
    pub(crate) const fn from_index(index: u8) -> Choice {
        Choice::ALL[index as usize]
    }

    /// The choice that beats this one: paper for rock, scissors for paper, rock for scissors.
    pub const fn beaten_by(self) -> Choice {
        Choice::from_index((self as u8 + 1) % 3)
    }
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Winner {
    /// The lowercase name used on the wire.
    pub const fn name(self) -> &'static str {
        match self {
            Winner::Player => "player",
            Winner::Computer => "computer",
            Winner::Tie => "tie",
        }
    }
}

/// The rules: `RULES[player][computer]` is the winner and the reason for that pair.
///
/// Written out in full rather than derived at run time so that judging is one indexed load and
/// the reason strings are `'static`. The unit tests check this table against the one-line
/// statement of the rules (rock beats scissors, scissors beat paper, paper beats rock).
const RULES: [[(Winner, &str); 3]; 3] = [
    // player: rock
    [
        (Winner::Tie, "rock vs rock — draw"),
        (Winner::Computer, "paper beats rock"),
        (Winner::Player, "rock beats scissors"),
    ],
    // player: paper
    [
        (Winner::Player, "paper beats rock"),
        (Winner::Tie, "paper vs paper — draw"),
        (Winner::Computer, "scissors beats paper"),
    ],
    // player: scissors
    [
        (Winner::Computer, "rock beats scissors"),
        (Winner::Player, "scissors beats paper"),
        (Winner::Tie, "scissors vs scissors — draw"),
    ],
];

/// Judges one round. Pure and total: every pair of choices has exactly one outcome.
pub const fn judge(player: Choice, computer: Choice) -> Outcome {
    let (winner, reason) = RULES[player as usize][computer as usize];
    Outcome {
        player,
        computer,
        winner,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The rules as a person states them: the choice each one defeats.
    fn defeats(choice: Choice) -> Choice {
        match choice {
            Choice::Rock => Choice::Scissors,
            Choice::Paper => Choice::Rock,
            Choice::Scissors => Choice::Paper,
        }
    }

    fn any_choice() -> impl Strategy<Value = Choice> {
        prop::sample::select(Choice::ALL.to_vec())
    }

    #[test]
    fn every_pair_matches_the_stated_rules() {
        for player in Choice::ALL {
            for computer in Choice::ALL {
                let outcome = judge(player, computer);
                let (expected_winner, expected_reason) = if player == computer {
                    (Winner::Tie, format!("{player} vs {computer} — draw"))
                } else if defeats(player) == computer {
                    (Winner::Player, format!("{player} beats {computer}"))
                } else {
                    (Winner::Computer, format!("{computer} beats {player}"))
                };
                assert_eq!(outcome.winner, expected_winner, "{player} vs {computer}");
                assert_eq!(outcome.reason, expected_reason, "{player} vs {computer}");
                assert_eq!((outcome.player, outcome.computer), (player, computer));
            }
        }
    }

    #[test]
    fn each_choice_wins_once_loses_once_and_ties_once() {
        for player in Choice::ALL {
            let winners: Vec<Winner> = Choice::ALL
                .iter()
                .map(|&c| judge(player, c).winner)
                .collect();
            for kind in [Winner::Player, Winner::Computer, Winner::Tie] {
                assert_eq!(
                    winners.iter().filter(|&&w| w == kind).count(),
                    1,
                    "{player}: {winners:?}"
                );
            }
        }
    }

    #[test]
    fn beaten_by_names_the_choice_that_defeats_it() {
        for choice in Choice::ALL {
            assert_eq!(defeats(choice.beaten_by()), choice, "{choice}");
        }
    }

    #[test]
    fn parse_ignores_case_and_surrounding_whitespace() {
        assert_eq!(Choice::parse("rock"), Ok(Choice::Rock));
        assert_eq!(Choice::parse("  PaPeR\t\n"), Ok(Choice::Paper));
        assert_eq!(Choice::parse("SCISSORS"), Ok(Choice::Scissors));
    }

    #[test]
    fn parse_rejects_anything_else() {
        for input in [
            "",
            " ",
            "lizard",
            "rock paper",
            "roc",
            "rocks",
            "r o c k",
            "ṙock",
        ] {
            assert_eq!(Choice::parse(input), Err(UnknownChoice), "{input:?}");
        }
    }

    proptest! {
        #[test]
        fn judge_is_the_mirror_of_judge_with_sides_swapped(a in any_choice(), b in any_choice()) {
            let forward = judge(a, b);
            let backward = judge(b, a);
            let mirrored = match forward.winner {
                Winner::Player => Winner::Computer,
                Winner::Computer => Winner::Player,
                Winner::Tie => Winner::Tie,
            };
            prop_assert_eq!(backward.winner, mirrored);
            prop_assert_eq!(backward.reason, forward.reason);
        }

        #[test]
        fn parse_round_trips_every_name_in_any_case(choice in any_choice(), upper in any::<[bool; 8]>(), pad in "[ \t]{0,3}") {
            let name: String = choice.name().chars().zip(upper.iter().cycle())
                .map(|(c, &up)| if up { c.to_ascii_uppercase() } else { c })
                .collect();
            prop_assert_eq!(Choice::parse(&format!("{pad}{name}{pad}")), Ok(choice));
        }
    }
}

//! Sentences for what happens in a match, told from one seat: "you" and the opponent's name
//! instead of seats A and B.
//!
//! Everything a peer or the server chose (names, chat, error messages) passes through
//! [`printable`] before it reaches the terminal: a control character in an opponent's name must
//! not be able to move the cursor, recolour the screen or rewrite the status line.

use game::matches::{EndReason, EventKind, MatchOutcome, PerSeat, RoundWinner};
use game::{Choice, Seat};

/// Peer text is cut to this many characters: a chat line is at most 200 after the server's
/// normalisation, and a name far less.
pub const MAX_PEER_CHARS: usize = 200;

/// `text` without control characters (ESC, CR, BEL...), and at most `MAX_PEER_CHARS` of it.
pub fn printable(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(MAX_PEER_CHARS)
        .collect()
}

/// Who the player faces, named once for every sentence.
pub struct Viewpoint<'a> {
    pub seat: Seat,
    pub opponent: &'a str,
}

impl Viewpoint<'_> {
    fn who(&self, seat: Seat) -> &str {
        if seat == self.seat {
            "you"
        } else {
            self.opponent
        }
    }

    /// The score as "mine-theirs".
    pub fn score(&self, score: PerSeat<u32>) -> String {
        format!("{}-{}", score[self.seat], score[self.seat.other()])
    }

    /// One line for a public event, or `None` for one not worth a line. `seconds_left` is the
    /// open round's time to move, by the server's clock.
    pub fn event(&self, kind: &EventKind, seconds_left: f64) -> Option<String> {
        let me = self.seat;
        Some(match kind {
            EventKind::MatchStarted { .. } | EventKind::MoveSealed { .. } => return None,
            EventKind::RoundOpened {
                round,
                bot_commitments,
                ..
            } => {
                let bot = match bot_commitments[me.other()] {
                    Some(commitment) => format!(
                        "; {} committed to its move ({}…)",
                        self.opponent,
                        &commitment.to_hex()[..12]
                    ),
                    None => String::new(),
                };
                format!("round {round} is open: {seconds_left:.0}s to move{bot}")
            }
            EventKind::Locked { seat, round } if *seat == me => {
                format!("you locked in your move for round {round}")
            }
            EventKind::Locked { .. } => format!("{} locked in", self.opponent),
            EventKind::Committed { seat, .. } => format!("{} committed", self.who(*seat)),
            EventKind::RoundRevealed {
                round,
                moves,
                winner,
                score,
                ..
            } => self.revealed(*round, *moves, *winner, *score),
            EventKind::MatchEnded {
                outcome,
                reason,
                score,
            } => format!(
                "match over: {} {} ({})",
                self.outcome(*outcome),
                self.score(*score),
                self.reason(*reason)
            ),
            EventKind::OpponentDisconnected { seat } if *seat == me => {
                "you were disconnected".to_owned()
            }
            EventKind::OpponentDisconnected { .. } => {
                format!("{} disconnected; the match waits for them", self.opponent)
            }
            EventKind::OpponentReconnected { seat } if *seat == me => "you are back".to_owned(),
            EventKind::OpponentReconnected { .. } => format!("{} is back", self.opponent),
        })
    }

    fn revealed(
        &self,
        round: u32,
        moves: PerSeat<Option<Choice>>,
        winner: RoundWinner,
        score: PerSeat<u32>,
    ) -> String {
        let played = |seat: Seat| moves[seat].map_or("no move", Choice::name);
        let verdict = match winner.scorer() {
            Some(seat) if seat == self.seat => "you take the round".to_owned(),
            Some(_) => format!("{} takes the round", self.opponent),
            None if winner == RoundWinner::Tie => "a tie".to_owned(),
            None => "void: neither moved in time".to_owned(),
        };
        format!(
            "round {round}: you {}, {} {} → {verdict} (score {})",
            played(self.seat),
            self.opponent,
            played(self.seat.other()),
            self.score(score)
        )
    }

    /// "you won" / "you lost" / "no contest".
    pub fn outcome(&self, outcome: MatchOutcome) -> &'static str {
        match outcome {
            MatchOutcome::Won(seat) if seat == self.seat => "you won",
            MatchOutcome::Won(_) => "you lost",
            MatchOutcome::NoContest => "no contest",
        }
    }

    pub fn reason(&self, reason: EndReason) -> String {
        match reason {
            EndReason::Decided => "decided".to_owned(),
            EndReason::Left(seat) if seat == self.seat => "you left".to_owned(),
            EndReason::Left(_) => format!("{} left", self.opponent),
            EndReason::GraceExpired(seat) => {
                format!("{} stayed away past the grace window", self.who(seat))
            }
            EndReason::Abandoned => "abandoned: rounds in a row without a move".to_owned(),
            EndReason::RoundLimit => "the round limit was reached".to_owned(),
            EndReason::Drained => "the server shut down".to_owned(),
        }
    }
}

/// "1500 → 1662 (+162)", or why the match did not count.
pub fn rating_change(before: f64, after: f64, rated: bool) -> String {
    if !rated {
        return format!("not rated (bots and no contests do not count); still {before:.0}");
    }
    format!("{before:.0} → {after:.0} ({:+.0})", after - before)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_text_cannot_steer_the_terminal() {
        assert_eq!(printable("bob\u{1b}[2J\r\u{7}!"), "bob[2J!");
        assert_eq!(printable(&"x".repeat(500)).len(), MAX_PEER_CHARS);
    }

    #[test]
    fn a_reveal_reads_from_the_players_side() {
        let view = Viewpoint {
            seat: Seat::B,
            opponent: "ann",
        };
        let kind = EventKind::RoundRevealed {
            round: 2,
            moves: PerSeat::new(Some(Choice::Rock), None),
            salts: PerSeat::default(),
            winner: RoundWinner::A,
            score: PerSeat::new(2, 0),
        };
        assert_eq!(
            view.event(&kind, 0.0).unwrap(),
            "round 2: you no move, ann rock → ann takes the round (score 0-2)"
        );
        let ended = EventKind::MatchEnded {
            outcome: MatchOutcome::Won(Seat::A),
            reason: EndReason::GraceExpired(Seat::B),
            score: PerSeat::new(2, 0),
        };
        assert_eq!(
            view.event(&ended, 0.0).unwrap(),
            "match over: you lost 0-2 (you stayed away past the grace window)"
        );
    }

    #[test]
    fn ratings_say_whether_the_match_counted() {
        assert_eq!(rating_change(1500.0, 1662.3, true), "1500 → 1662 (+162)");
        assert!(rating_change(1500.0, 1500.0, false).starts_with("not rated"));
    }
}

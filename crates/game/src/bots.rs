//! Computer opponents for a match seat.
//!
//! A bot never draws randomness itself: every [`Bot::choose`] is handed a uniform trit by the
//! caller (from [`crate::random::TritSampler`] in production, a seeded generator in tests), so a
//! bot is deterministic given its inputs and a match against it can be replayed. [`RandomBot`]
//! plays that trit and cannot be beaten on average. [`AdaptiveBot`] tries to exploit patterns in
//! how a person plays, in the manner of Dan Egnor's Iocaine Powder: several predictors guess the
//! opponent's next move, each guess is second-guessed three ways, every one of those strategies
//! is scored on how it would have fared lately, and the best one is played, falling back to the
//! trit whenever nothing has been working. Its memory is a fixed set of small tables, whatever the
//! length of the match.

use crate::{Choice, Winner, judge};

/// A computer player.
pub trait Bot {
    /// The bot's move for the next round. `rng_trit` must be uniform over 0..3 (larger values
    /// are reduced modulo 3 rather than trusted).
    fn choose(&mut self, rng_trit: u8) -> Choice;

    /// Tells the bot what was played in the round it last chose for.
    fn observe(&mut self, own: Choice, opponent: Choice);
}

/// Plays the trit it is given: the unexploitable baseline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RandomBot;

impl Bot for RandomBot {
    fn choose(&mut self, rng_trit: u8) -> Choice {
        Choice::from_index(rng_trit % 3)
    }

    fn observe(&mut self, _own: Choice, _opponent: Choice) {}
}

/// Rounds kept for the recent-frequency predictor and the Markov contexts (which need three).
const RECENT_ROUNDS: usize = 20;
/// Predictors, in [`AdaptiveBot::predictions`] order: frequency over the whole match and over
/// the recent rounds, Markov orders 1 to 3 over the opponent's moves, Markov orders 1 to 3 over
/// both players' moves, and the opponent's stay-or-shift habit after a win, tie or loss.
const PREDICTORS: usize = 9;
/// Each prediction p is played three ways: beat(p), beat(beat(p)) and beat(beat(beat(p))) = p,
/// covering an opponent who plays p, one who expects us to beat p, and one a level deeper.
const STRATEGIES: usize = PREDICTORS * 3;
/// Per-round decay of a strategy's score: a result counts half after about 7 rounds, so the bot
/// turns within a few rounds when an opponent changes habits.
const SCORE_DECAY: f32 = 0.9;
/// Per-visit decay of a Markov row's counts, so that old habits fade out of a context too.
const MARKOV_DECAY: f32 = 0.95;
/// The bot's own decayed result below which it concludes it is being read and plays the trit.
/// About -3 means it lost clearly more than it won lately; a uniform opponent drives a fair bot
/// that low only a few percent of the time.
const EXPLOITED_FORM: f32 = -3.0;
/// The form at which a bot that was being read trusts its strategies again. Well above
/// [`EXPLOITED_FORM`], so that an opponent who reads the bot cannot win a few rounds, let it
/// recover for one, and win a few more: playing the trit, the form climbs back only slowly.
const RECOVERED_FORM: f32 = -0.5;

/// Decayed counts of the move that followed each context.
#[derive(Clone, Debug, PartialEq)]
struct MarkovTable<const CONTEXTS: usize> {
    rows: [[f32; 3]; CONTEXTS],
}

impl<const CONTEXTS: usize> MarkovTable<CONTEXTS> {
    fn new() -> Self {
        MarkovTable {
            rows: [[0.0; 3]; CONTEXTS],
        }
    }

    fn predict(&self, context: Option<usize>) -> Option<Choice> {
        argmax(self.rows.get(context?)?)
    }

    fn learn(&mut self, context: Option<usize>, next: Choice) {
        let Some(row) = context.and_then(|context| self.rows.get_mut(context)) else {
            return;
        };
        for count in row.iter_mut() {
            *count *= MARKOV_DECAY;
        }
        row[next as usize] += 1.0;
    }
}

/// The move with the largest weight, if any weight is positive; ties go to table order.
fn argmax(weights: &[f32; 3]) -> Option<Choice> {
    let mut best: Option<(Choice, f32)> = None;
    for (choice, &weight) in Choice::ALL.into_iter().zip(weights) {
        if weight > 0.0 && best.is_none_or(|(_, top)| weight > top) {
            best = Some((choice, weight));
        }
    }
    best.map(|(choice, _)| choice)
}

/// +1 if `mine` beats `theirs`, -1 if it loses, 0 for a tie.
fn result(mine: Choice, theirs: Choice) -> f32 {
    match judge(mine, theirs).winner {
        Winner::Player => 1.0,
        Winner::Computer => -1.0,
        Winner::Tie => 0.0,
    }
}

/// A bot that learns the opponent's habits and plays against them.
#[derive(Clone, Debug, PartialEq)]
pub struct AdaptiveBot {
    /// The opponent's move counts over the whole match (saturating, so they cannot overflow).
    opponent_totals: [u32; 3],
    /// A ring of the last [`RECENT_ROUNDS`] rounds as (own, opponent); the oldest remembered
    /// round is at `recent_start`.
    recent: [(Choice, Choice); RECENT_ROUNDS],
    recent_start: usize,
    recent_len: usize,
    opponent_order1: MarkovTable<3>,
    opponent_order2: MarkovTable<9>,
    opponent_order3: MarkovTable<27>,
    joint_order1: MarkovTable<9>,
    joint_order2: MarkovTable<81>,
    joint_order3: MarkovTable<729>,
    /// Indexed by the opponent's result last round (win, tie, loss): how far round the cycle
    /// rock -> paper -> scissors they moved next (0 stay, 1 up, 2 down).
    shift_after_result: MarkovTable<3>,
    scores: [f32; STRATEGIES],
    /// What each strategy proposed for the round in play, kept so `observe` can score it.
    proposals: [Option<Choice>; STRATEGIES],
    /// The bot's own decayed result, for noticing that it is the one being exploited.
    form: f32,
    /// Set when `form` fell below [`EXPLOITED_FORM`], cleared when it is back above
    /// [`RECOVERED_FORM`]; while set the bot plays the trit.
    exploited: bool,
}

impl Default for AdaptiveBot {
    fn default() -> Self {
        AdaptiveBot {
            opponent_totals: [0; 3],
            recent: [(Choice::Rock, Choice::Rock); RECENT_ROUNDS],
            recent_start: 0,
            recent_len: 0,
            opponent_order1: MarkovTable::new(),
            opponent_order2: MarkovTable::new(),
            opponent_order3: MarkovTable::new(),
            joint_order1: MarkovTable::new(),
            joint_order2: MarkovTable::new(),
            joint_order3: MarkovTable::new(),
            shift_after_result: MarkovTable::new(),
            scores: [0.0; STRATEGIES],
            proposals: [None; STRATEGIES],
            form: 0.0,
            exploited: false,
        }
    }
}

impl AdaptiveBot {
    pub fn new() -> Self {
        Self::default()
    }

    /// The round `back` rounds ago (0 = the latest), if remembered.
    fn round_back(&self, back: usize) -> Option<(Choice, Choice)> {
        if back >= self.recent_len {
            return None;
        }
        let index = (self.recent_start + self.recent_len - 1 - back) % RECENT_ROUNDS;
        Some(self.recent[index])
    }

    /// The last `order` opponent moves as a base-3 number, if that many are remembered.
    fn opponent_context(&self, order: usize) -> Option<usize> {
        (0..order).try_fold(0, |context, back| {
            let (_, opponent) = self.round_back(back)?;
            Some(context * 3 + opponent as usize)
        })
    }

    /// The last `order` rounds as a base-9 number of (own, opponent) pairs.
    fn joint_context(&self, order: usize) -> Option<usize> {
        (0..order).try_fold(0, |context, back| {
            let (own, opponent) = self.round_back(back)?;
            Some(context * 9 + own as usize * 3 + opponent as usize)
        })
    }

    /// The opponent's result last round, as a row of `shift_after_result`.
    fn last_result_context(&self) -> Option<usize> {
        let (own, opponent) = self.round_back(0)?;
        Some(match judge(opponent, own).winner {
            Winner::Player => 0,
            Winner::Tie => 1,
            Winner::Computer => 2,
        })
    }

    /// Each predictor's guess at the opponent's next move.
    fn predictions(&self) -> [Option<Choice>; PREDICTORS] {
        let mut recent_counts = [0.0f32; 3];
        for back in 0..self.recent_len {
            if let Some((_, opponent)) = self.round_back(back) {
                recent_counts[opponent as usize] += 1.0;
            }
        }
        let totals = self.opponent_totals.map(|count| count as f32);
        let shift = self
            .shift_after_result
            .predict(self.last_result_context())
            .zip(self.round_back(0))
            .map(|(shift, (_, last))| Choice::from_index((last as u8 + shift as u8) % 3));
        [
            argmax(&totals),
            argmax(&recent_counts),
            self.opponent_order1.predict(self.opponent_context(1)),
            self.opponent_order2.predict(self.opponent_context(2)),
            self.opponent_order3.predict(self.opponent_context(3)),
            self.joint_order1.predict(self.joint_context(1)),
            self.joint_order2.predict(self.joint_context(2)),
            self.joint_order3.predict(self.joint_context(3)),
            shift,
        ]
    }

    /// Updates every model with a finished round; contexts are read before the round is added.
    fn learn(&mut self, own: Choice, opponent: Choice) {
        let shift = Choice::from_index(
            self.round_back(0)
                .map_or(0, |(_, last)| (opponent as u8 + 3 - last as u8) % 3),
        );
        self.shift_after_result
            .learn(self.last_result_context(), shift);
        self.opponent_order1
            .learn(self.opponent_context(1), opponent);
        self.opponent_order2
            .learn(self.opponent_context(2), opponent);
        self.opponent_order3
            .learn(self.opponent_context(3), opponent);
        self.joint_order1.learn(self.joint_context(1), opponent);
        self.joint_order2.learn(self.joint_context(2), opponent);
        self.joint_order3.learn(self.joint_context(3), opponent);
        let total = &mut self.opponent_totals[opponent as usize];
        *total = total.saturating_add(1);

        if self.recent_len < RECENT_ROUNDS {
            self.recent_len += 1;
        } else {
            self.recent_start = (self.recent_start + 1) % RECENT_ROUNDS;
        }
        let newest = (self.recent_start + self.recent_len - 1) % RECENT_ROUNDS;
        self.recent[newest] = (own, opponent);
    }
}

impl Bot for AdaptiveBot {
    fn choose(&mut self, rng_trit: u8) -> Choice {
        let predictions = self.predictions();
        let mut best: Option<(Choice, f32)> = None;
        for (index, proposal) in self.proposals.iter_mut().enumerate() {
            let (predictor, rotation) = (index / 3, index % 3);
            *proposal = predictions[predictor]
                .map(|predicted| (0..=rotation).fold(predicted, |choice, _| choice.beaten_by()));
            let score = self.scores[index];
            if let Some(choice) = *proposal
                && best.is_none_or(|(_, top)| score > top)
            {
                best = Some((choice, score));
            }
        }
        let random = Choice::from_index(rng_trit % 3);
        match best {
            Some((choice, score)) if score > 0.0 && !self.exploited => choice,
            _ => random,
        }
    }

    fn observe(&mut self, own: Choice, opponent: Choice) {
        for (score, proposal) in self.scores.iter_mut().zip(&mut self.proposals) {
            // A strategy that proposed nothing (or a round played without `choose`) scores as
            // a tie, so it decays toward zero rather than keeping a stale lead.
            let earned = proposal.take().map_or(0.0, |mine| result(mine, opponent));
            *score = *score * SCORE_DECAY + earned;
        }
        self.form = self.form * SCORE_DECAY + result(own, opponent);
        if self.form < EXPLOITED_FORM {
            self.exploited = true;
        } else if self.form > RECOVERED_FORM {
            self.exploited = false;
        }
        self.learn(own, opponent);
    }
}

#[cfg(test)]
mod tests;

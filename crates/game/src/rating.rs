//! Player ratings by the Glicko-2 system.
//!
//! Glicko-2 keeps three numbers per player: a rating, a deviation saying how uncertain that
//! rating is, and a volatility saying how erratic the player's results have been. One call to
//! [`update`] is one rating period: the games a player finished in it go in together, and a
//! player with no games only grows more uncertain. The steps and their names follow Mark
//! Glickman's "Example of the Glicko-2 system" (2013), including the Illinois algorithm for the
//! new volatility, so the code can be read against the paper; its worked example is a unit test.

use serde::{Deserialize, Serialize};

/// Converts between the Glicko scale (1500-centred) and the Glicko-2 scale (0-centred).
const SCALE: f64 = 173.7178;
pub const DEFAULT_RATING: f64 = 1500.0;
/// The deviation of a player with no games, and the most any player's deviation may grow to:
/// after a long absence a player is as uncertain as a new one, not more (as in Glicko-1).
pub const DEFAULT_DEVIATION: f64 = 350.0;
pub const DEFAULT_VOLATILITY: f64 = 0.06;
/// The system constant: how much volatility may change per period. The paper suggests 0.3 to
/// 1.2; 0.5 is its example's value and a middle choice for a casual game.
pub const TAU: f64 = 0.5;
/// The Illinois iteration stops when the bracket is narrower than this (the paper's value).
const CONVERGENCE_TOLERANCE: f64 = 0.000_001;
/// The iteration converges in about ten steps; the cap only guarantees termination on inputs
/// the paper never considered.
const MAX_ITERATIONS: u32 = 100;
/// A stored deviation below this is treated as this: the formulas divide by the deviation.
const MIN_DEVIATION: f64 = 1.0;

/// One player's Glicko-2 state, on the familiar 1500-centred scale.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rating {
    pub rating: f64,
    pub deviation: f64,
    pub volatility: f64,
}

impl Default for Rating {
    fn default() -> Self {
        Rating {
            rating: DEFAULT_RATING,
            deviation: DEFAULT_DEVIATION,
            volatility: DEFAULT_VOLATILITY,
        }
    }
}

/// The result of one game, from the rated player's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Score {
    Win,
    Draw,
    Loss,
}

impl Score {
    const fn value(self) -> f64 {
        match self {
            Score::Win => 1.0,
            Score::Draw => 0.5,
            Score::Loss => 0.0,
        }
    }
}

impl Rating {
    /// The same rating with every field brought into the range the formulas are defined for. A
    /// rating read from storage may be corrupt; one bad record must not turn into NaN and spread
    /// to every opponent it is rated against.
    fn sanitized(self) -> Rating {
        let rating = if self.rating.is_finite() {
            self.rating
        } else {
            DEFAULT_RATING
        };
        let deviation = if self.deviation.is_finite() {
            self.deviation.clamp(MIN_DEVIATION, DEFAULT_DEVIATION)
        } else {
            DEFAULT_DEVIATION
        };
        let volatility = if self.volatility.is_finite() && self.volatility > 0.0 {
            self.volatility
        } else {
            DEFAULT_VOLATILITY
        };
        Rating {
            rating,
            deviation,
            volatility,
        }
    }
}

/// The player's rating after one rating period in which they played `results`.
pub fn update(player: Rating, results: &[(Rating, Score)]) -> Rating {
    let player = player.sanitized();
    // Step 2: to the Glicko-2 scale.
    let mu = (player.rating - DEFAULT_RATING) / SCALE;
    let phi = player.deviation / SCALE;
    let sigma = player.volatility;

    // Steps 3 and 4: the estimated variance v of the rating from the games alone, and the
    // improvement delta they suggest. `sum_weighted` is the sum of g(phi_j) (s_j - E).
    let mut information = 0.0;
    let mut sum_weighted = 0.0;
    for (opponent, score) in results {
        let opponent = opponent.sanitized();
        let mu_j = (opponent.rating - DEFAULT_RATING) / SCALE;
        let g_j = g(opponent.deviation / SCALE);
        let expected = 1.0 / (1.0 + (-g_j * (mu - mu_j)).exp());
        information += g_j * g_j * expected * (1.0 - expected);
        sum_weighted += g_j * (score.value() - expected);
    }
    // No games, or games so lopsided that they carry no information (E rounds to 0 or 1): the
    // paper's step for a player who did not compete applies, so only the deviation grows.
    if !(information > 0.0 && information.is_finite()) {
        return Rating {
            deviation: to_deviation((phi * phi + sigma * sigma).sqrt()),
            ..player
        };
    }
    let variance = 1.0 / information;
    let delta = variance * sum_weighted;

    // Step 5: the new volatility.
    let new_sigma = new_volatility(phi, sigma, variance, delta);

    // Steps 6 and 7: the new deviation and rating.
    let phi_star = (phi * phi + new_sigma * new_sigma).sqrt();
    let new_phi = 1.0 / (1.0 / (phi_star * phi_star) + 1.0 / variance).sqrt();
    let new_mu = mu + new_phi * new_phi * sum_weighted;

    // Step 8: back to the Glicko scale.
    Rating {
        rating: new_mu * SCALE + DEFAULT_RATING,
        deviation: to_deviation(new_phi),
        volatility: new_sigma,
    }
}

/// Glickman's g: how much a game against an opponent of deviation `phi` says.
fn g(phi: f64) -> f64 {
    1.0 / (1.0 + 3.0 * phi * phi / (std::f64::consts::PI * std::f64::consts::PI)).sqrt()
}

fn to_deviation(phi: f64) -> f64 {
    (phi * SCALE).min(DEFAULT_DEVIATION)
}

/// Step 5: solves f(x) = 0 for x = ln(sigma'^2) by the Illinois algorithm (regula falsi that
/// halves the stale endpoint's value, which keeps it from stalling).
fn new_volatility(phi: f64, sigma: f64, variance: f64, delta: f64) -> f64 {
    let a = (sigma * sigma).ln();
    let f = |x: f64| {
        let ex = x.exp();
        let denominator = phi * phi + variance + ex;
        ex * (delta * delta - phi * phi - variance - ex) / (2.0 * denominator * denominator)
            - (x - a) / (TAU * TAU)
    };

    let mut upper_a = a;
    let mut upper_b = if delta * delta > phi * phi + variance {
        (delta * delta - phi * phi - variance).ln()
    } else {
        // f(a - k tau) turns positive as k grows, since its last term grows without bound.
        let mut k = 1.0;
        while f(a - k * TAU) < 0.0 && k < f64::from(MAX_ITERATIONS) {
            k += 1.0;
        }
        a - k * TAU
    };
    let mut f_a = f(upper_a);
    let mut f_b = f(upper_b);
    for _ in 0..MAX_ITERATIONS {
        if (upper_b - upper_a).abs() <= CONVERGENCE_TOLERANCE {
            break;
        }
        let c = upper_a + (upper_a - upper_b) * f_a / (f_b - f_a);
        let f_c = f(c);
        if f_c * f_b <= 0.0 {
            upper_a = upper_b;
            f_a = f_b;
        } else {
            f_a /= 2.0;
        }
        upper_b = c;
        f_b = f_c;
    }
    let new_sigma = (upper_a / 2.0).exp();
    if new_sigma.is_finite() && new_sigma > 0.0 {
        new_sigma
    } else {
        sigma
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rating(rating: f64, deviation: f64) -> Rating {
        Rating {
            rating,
            deviation,
            volatility: DEFAULT_VOLATILITY,
        }
    }

    #[test]
    fn the_papers_worked_example() {
        let player = rating(1500.0, 200.0);
        let results = [
            (rating(1400.0, 30.0), Score::Win),
            (rating(1550.0, 100.0), Score::Loss),
            (rating(1700.0, 300.0), Score::Loss),
        ];
        let updated = update(player, &results);
        assert!((updated.rating - 1464.06).abs() < 0.01, "{updated:?}");
        assert!((updated.deviation - 151.52).abs() < 0.01, "{updated:?}");
        assert!(
            (updated.volatility - 0.05999).abs() < 0.00001,
            "{updated:?}"
        );
    }

    #[test]
    fn a_period_without_games_only_grows_the_deviation() {
        let player = rating(1500.0, 200.0);
        let updated = update(player, &[]);
        // phi* = sqrt(phi^2 + sigma^2), back on the Glicko scale.
        let expected = ((200.0 / SCALE).powi(2) + 0.06f64.powi(2)).sqrt() * SCALE;
        assert!((updated.deviation - expected).abs() < 1e-9, "{updated:?}");
        assert!(updated.deviation > player.deviation);
        assert_eq!(updated.rating, player.rating);
        assert_eq!(updated.volatility, player.volatility);
    }

    #[test]
    fn the_deviation_never_grows_past_a_new_players() {
        let updated = update(Rating::default(), &[]);
        assert_eq!(updated.deviation, DEFAULT_DEVIATION);
    }

    #[test]
    fn a_corrupt_stored_rating_does_not_spread_nan() {
        let corrupt = Rating {
            rating: f64::NAN,
            deviation: f64::INFINITY,
            volatility: -1.0,
        };
        let updated = update(Rating::default(), &[(corrupt, Score::Win)]);
        assert!(updated.rating.is_finite() && updated.rating > DEFAULT_RATING);
        let corrupt_player = update(corrupt, &[(Rating::default(), Score::Loss)]);
        assert!(corrupt_player.rating.is_finite(), "{corrupt_player:?}");
    }

    fn any_rating() -> impl Strategy<Value = Rating> {
        (0.0..3500.0f64, 1.0..=350.0f64, 0.001..0.5f64).prop_map(
            |(rating, deviation, volatility)| Rating {
                rating,
                deviation,
                volatility,
            },
        )
    }

    fn any_score() -> impl Strategy<Value = Score> {
        prop::sample::select(vec![Score::Win, Score::Draw, Score::Loss])
    }

    proptest! {
        #[test]
        fn ratings_stay_finite_with_a_deviation_in_range(
            player in any_rating(),
            results in prop::collection::vec((any_rating(), any_score()), 0..12),
        ) {
            let updated = update(player, &results);
            prop_assert!(updated.rating.is_finite(), "{:?}", updated);
            let deviation_in_range =
                updated.deviation > 0.0 && updated.deviation <= DEFAULT_DEVIATION;
            prop_assert!(deviation_in_range, "{:?}", updated);
            let volatility_usable = updated.volatility.is_finite() && updated.volatility > 0.0;
            prop_assert!(volatility_usable, "{:?}", updated);
        }

        #[test]
        fn winning_every_game_never_lowers_a_rating(
            player in any_rating(),
            opponents in prop::collection::vec(any_rating(), 1..8),
        ) {
            let wins: Vec<_> = opponents.iter().map(|&o| (o, Score::Win)).collect();
            let losses: Vec<_> = opponents.iter().map(|&o| (o, Score::Loss)).collect();
            prop_assert!(update(player, &wins).rating >= player.rating);
            prop_assert!(update(player, &losses).rating <= player.rating);
        }
    }
}

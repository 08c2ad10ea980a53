//! The bot an account meets, chosen by an A/B experiment: each account falls deterministically
//! into one arm (BLAKE3 of the experiment's name and the account id, reduced over the arms'
//! weights), so the same player always meets the same strategy while the experiment runs, and
//! renaming the experiment reshuffles everyone.

use std::sync::atomic::{AtomicU64, Ordering};

/// A bot strategy an arm may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Strategy {
    Random,
    Adaptive,
}

impl Strategy {
    pub fn parse(name: &str) -> Option<Strategy> {
        match name {
            "random" => Some(Strategy::Random),
            "adaptive" => Some(Strategy::Adaptive),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Strategy::Random => "random",
            Strategy::Adaptive => "adaptive",
        }
    }

    pub fn bot(self) -> Box<dyn game::bots::Bot + Send> {
        match self {
            Strategy::Random => Box::new(game::bots::RandomBot),
            Strategy::Adaptive => Box::new(game::bots::AdaptiveBot::new()),
        }
    }
}

/// One arm and what it has seen.
#[derive(Debug)]
pub struct Arm {
    pub strategy: Strategy,
    pub weight: u32,
    /// Bot matches started with this arm.
    pub exposures: AtomicU64,
    /// Finished bot matches the bot won, and the person won.
    pub bot_wins: AtomicU64,
    pub human_wins: AtomicU64,
}

#[derive(Debug)]
pub struct Experiment {
    pub name: String,
    pub arms: Vec<Arm>,
}

/// `arms` is not `strategy:weight[,strategy:weight...]` with known strategies and a weight
/// above zero in total.
#[derive(Debug, thiserror::Error)]
#[error(
    "bot_arms must be strategy:weight pairs separated by commas (strategies: random, adaptive), weights summing above 0"
)]
pub struct InvalidArms;

impl Experiment {
    pub fn new(name: &str, arms: &str) -> Result<Experiment, InvalidArms> {
        let mut parsed = Vec::new();
        for part in arms.split(',') {
            let (strategy, weight) = part.trim().split_once(':').ok_or(InvalidArms)?;
            let strategy = Strategy::parse(strategy.trim()).ok_or(InvalidArms)?;
            let weight: u32 = weight.trim().parse().map_err(|_| InvalidArms)?;
            parsed.push(Arm {
                strategy,
                weight,
                exposures: AtomicU64::new(0),
                bot_wins: AtomicU64::new(0),
                human_wins: AtomicU64::new(0),
            });
        }
        let total: u64 = parsed.iter().map(|arm| u64::from(arm.weight)).sum();
        if total == 0 {
            return Err(InvalidArms);
        }
        Ok(Experiment {
            name: name.to_owned(),
            arms: parsed,
        })
    }

    /// The arm `account` is in.
    pub fn assign(&self, account: &str) -> usize {
        let mut hasher = blake3::Hasher::new();
        hasher.update(self.name.as_bytes());
        hasher.update(&[0]);
        hasher.update(account.as_bytes());
        let digest = hasher.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest.as_bytes()[..8]);
        let total: u64 = self.arms.iter().map(|arm| u64::from(arm.weight)).sum();
        // 64 random bits reduced modulo a small total: the bias is below 2^-32.
        let mut point = u64::from_le_bytes(first) % total;
        for (index, arm) in self.arms.iter().enumerate() {
            if point < u64::from(arm.weight) {
                return index;
            }
            point -= u64::from(arm.weight);
        }
        0
    }

    pub fn count(&self, arm: usize, counter: impl Fn(&Arm) -> &AtomicU64) {
        if let Some(arm) = self.arms.get(arm) {
            counter(arm).fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_is_deterministic_and_follows_the_weights() {
        let experiment = Experiment::new("bots-1", "random:1, adaptive:3").unwrap();
        let mut counts = [0usize; 2];
        for n in 0..20_000 {
            let account = format!("{n:024x}");
            let arm = experiment.assign(&account);
            assert_eq!(arm, experiment.assign(&account));
            counts[arm] += 1;
        }
        let share = counts[1] as f64 / 20_000.0;
        assert!((0.73..0.77).contains(&share), "adaptive share {share}");
        // Another experiment name reshuffles.
        let renamed = Experiment::new("bots-2", "random:1,adaptive:3").unwrap();
        let moved = (0..1000)
            .filter(|n| {
                let account = format!("{n:024x}");
                renamed.assign(&account) != experiment.assign(&account)
            })
            .count();
        assert!(moved > 200, "{moved}");
    }

    #[test]
    fn bad_arms_are_refused() {
        for arms in ["", "random", "random:x", "genius:1", "random:0,adaptive:0"] {
            assert!(Experiment::new("e", arms).is_err(), "{arms:?}");
        }
        assert!(Experiment::new("e", "adaptive:100").is_ok());
    }
}

//! Provably fair plays against the computer, for accounts.
//!
//! Each account has a server seed, published only as its SHA-256 (`GET /me/fairness`), a
//! client seed the player may set, and a nonce counting its plays under the seed. The
//! computer's move for play `nonce` is `game::fairness::fair_move(seed, client_seed, nonce)`
//! (HMAC-SHA256, rejection-sampled, so unbiased). Rotating (or changing the client seed)
//! reveals the old seed with the moves it drew, so the player can recompute every one of them
//! and check the seed against the hash published before those plays.
//!
//! Bounds: a seed draws at most [`PLAYS_PER_SEED`] moves before it rotates by itself, and
//! [`REVEALED_KEPT`] revealed seeds are kept per account, so an account holds a few KiB at most.
//! Held in this instance's memory: with several instances each has its own seeds for an
//! account (the next step moves them to Redis with the rest of real-time state).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use game::fairness::{SeedKey, seed_commitment, to_hex};
use game::{Choice, random::RandomUnavailable};
use serde::Serialize;

use super::AccountId;

/// Plays drawn from one seed before it is revealed and replaced.
pub const PLAYS_PER_SEED: u64 = 1000;
/// Revealed seeds kept per account, newest first.
pub const REVEALED_KEPT: usize = 5;
/// The longest client seed, in bytes.
pub const MAX_CLIENT_SEED: usize = 64;

struct Seeds {
    key: SeedKey,
    seed: [u8; 32],
    hash: [u8; 32],
    client_seed: String,
    nonce: u64,
    /// The moves drawn under this seed, one letter each (r, p, s).
    moves: Vec<u8>,
    revealed: VecDeque<Revealed>,
}

/// A seed no longer in use, with everything needed to check the plays it drew.
#[derive(Clone, Debug, Serialize)]
pub struct Revealed {
    pub server_seed: String,
    pub server_seed_hash: String,
    pub client_seed: String,
    /// The computer's moves for nonces 0, 1, 2, ... as letters (`r`, `p`, `s`).
    pub moves: String,
}

/// What `GET /me/fairness` shows.
#[derive(Clone, Debug, Serialize)]
pub struct FairnessView {
    pub server_seed_hash: String,
    pub client_seed: String,
    /// The nonce the next play will use.
    pub nonce: u64,
    pub revealed: Vec<Revealed>,
}

/// A client seed that is empty, too long or not printable ASCII.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("client_seed must be 1 to {MAX_CLIENT_SEED} printable ASCII characters")]
pub struct InvalidClientSeed;

#[derive(Default)]
pub struct FairPlay {
    accounts: Mutex<HashMap<AccountId, Seeds, foldhash::fast::RandomState>>,
}

fn new_seeds(
    client_seed: String,
    revealed: VecDeque<Revealed>,
) -> Result<Seeds, RandomUnavailable> {
    let mut seed = [0u8; 32];
    game::random::fill(&mut seed)?;
    Ok(Seeds {
        key: SeedKey::new(&seed),
        seed,
        hash: seed_commitment(&seed),
        client_seed,
        nonce: 0,
        moves: Vec::new(),
        revealed,
    })
}

fn default_client_seed(account: &AccountId) -> String {
    account.as_str().to_owned()
}

impl Seeds {
    fn view(&self) -> FairnessView {
        FairnessView {
            server_seed_hash: to_hex(&self.hash),
            client_seed: self.client_seed.clone(),
            nonce: self.nonce,
            revealed: self.revealed.iter().cloned().collect(),
        }
    }

    /// Reveals this seed and starts a fresh one with `client_seed`.
    fn rotate(&mut self, client_seed: String) -> Result<(), RandomUnavailable> {
        let mut revealed = std::mem::take(&mut self.revealed);
        revealed.push_front(Revealed {
            server_seed: to_hex(&self.seed),
            server_seed_hash: to_hex(&self.hash),
            client_seed: std::mem::take(&mut self.client_seed),
            moves: String::from_utf8_lossy(&self.moves).into_owned(),
        });
        revealed.truncate(REVEALED_KEPT);
        *self = new_seeds(client_seed, revealed)?;
        Ok(())
    }
}

fn letter(choice: Choice) -> u8 {
    match choice {
        Choice::Rock => b'r',
        Choice::Paper => b'p',
        Choice::Scissors => b's',
    }
}

impl FairPlay {
    fn with<R>(
        &self,
        account: &AccountId,
        act: impl FnOnce(&mut Seeds) -> Result<R, RandomUnavailable>,
    ) -> Result<R, RandomUnavailable> {
        let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        let seeds = match accounts.entry(*account) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                entry.insert(new_seeds(default_client_seed(account), VecDeque::new())?)
            }
        };
        act(seeds)
    }

    /// The computer's move for the account's next play, and the nonce it used.
    pub fn draw(&self, account: &AccountId) -> Result<(Choice, u64), RandomUnavailable> {
        self.with(account, |seeds| {
            if seeds.nonce >= PLAYS_PER_SEED {
                let client_seed = seeds.client_seed.clone();
                seeds.rotate(client_seed)?;
            }
            let nonce = seeds.nonce;
            let choice = seeds.key.fair_move(&seeds.client_seed, nonce);
            seeds.nonce += 1;
            seeds.moves.push(letter(choice));
            Ok((choice, nonce))
        })
    }

    pub fn view(&self, account: &AccountId) -> Result<FairnessView, RandomUnavailable> {
        self.with(account, |seeds| Ok(seeds.view()))
    }

    /// Reveals the current seed and starts a new one (with a new client seed if given).
    pub fn rotate(
        &self,
        account: &AccountId,
        client_seed: Option<&str>,
    ) -> Result<Result<FairnessView, InvalidClientSeed>, RandomUnavailable> {
        if let Some(seed) = client_seed {
            let printable = seed.bytes().all(|b| (b' '..=b'~').contains(&b));
            if seed.is_empty() || seed.len() > MAX_CLIENT_SEED || !printable {
                return Ok(Err(InvalidClientSeed));
            }
        }
        self.with(account, |seeds| {
            let next = client_seed.map_or_else(|| seeds.client_seed.clone(), str::to_owned);
            seeds.rotate(next)?;
            Ok(Ok(seeds.view()))
        })
    }

    /// Forgets a deleted account's seeds.
    pub fn forget(&self, account: &AccountId) {
        self.accounts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use game::fairness::{fair_move, from_hex32};

    #[test]
    fn revealed_seeds_recompute_every_move_and_match_the_published_hash() {
        let fair = FairPlay::default();
        let account = AccountId::from("acct").unwrap();
        let published = fair.view(&account).unwrap().server_seed_hash;
        let drawn: Vec<(Choice, u64)> = (0..50).map(|_| fair.draw(&account).unwrap()).collect();
        assert_eq!(
            drawn.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
            (0..50).collect::<Vec<_>>()
        );
        let view = fair.rotate(&account, Some("my seed")).unwrap().unwrap();
        assert_eq!(view.client_seed, "my seed");
        assert_eq!(view.nonce, 0);
        assert_ne!(view.server_seed_hash, published);
        let revealed = &view.revealed[0];
        assert_eq!(revealed.server_seed_hash, published);
        let seed = from_hex32(&revealed.server_seed).unwrap();
        assert_eq!(to_hex(&seed_commitment(&seed)), published);
        for (nonce, (choice, _)) in drawn.iter().enumerate() {
            let recomputed = fair_move(&seed, &revealed.client_seed, nonce as u64);
            assert_eq!(recomputed, *choice);
            assert_eq!(revealed.moves.as_bytes()[nonce], letter(*choice));
        }
    }

    #[test]
    fn seeds_rotate_by_themselves_and_history_is_bounded() {
        let fair = FairPlay::default();
        let account = AccountId::from("busy").unwrap();
        for _ in 0..(PLAYS_PER_SEED * 7 + 3) {
            fair.draw(&account).unwrap();
        }
        let view = fair.view(&account).unwrap();
        assert_eq!(view.nonce, 3);
        assert_eq!(view.revealed.len(), REVEALED_KEPT);
        assert!(
            view.revealed
                .iter()
                .all(|r| r.moves.len() as u64 == PLAYS_PER_SEED)
        );
    }

    #[test]
    fn client_seeds_are_checked() {
        let fair = FairPlay::default();
        let account = AccountId::from("a").unwrap();
        for bad in ["", "tab\there", &"x".repeat(65), "é"] {
            assert_eq!(
                fair.rotate(&account, Some(bad)).unwrap().unwrap_err(),
                InvalidClientSeed
            );
        }
    }
}

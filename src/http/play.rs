//! The play handler's core: one round against the computer, its answer written in the
//! request's format, and the record to store for a named player. Used by `POST /play` at once
//! and by an idempotent play once its key is claimed.

use super::problem::ApiError;
use super::wire::{self, PlayResponse};
use crate::game::{self, Choice, random};
use crate::store::Store;
use crate::store::model::{GameRecord, PlayerId};
use crate::telemetry::metrics;

/// Plays one round and writes its answer into `body`; returns the record to store when
/// the player is named.
pub(super) fn play_round(
    store: &Store,
    choice: Choice,
    player: Option<PlayerId>,
    format: wire::Format,
    body: &mut Vec<u8>,
) -> Result<Option<GameRecord>, ApiError<'static>> {
    let computer = random::computer_choice()?;
    let outcome = game::judge(choice, computer);
    let game_id = store.game_ids().next().ok_or(ApiError::GameIdUnavailable)?;
    wire::encode_play(format, &PlayResponse::new(game_id.0, outcome), body);
    metrics::with_shard(|shard| shard.rounds[choice as usize][computer as usize].add(1));
    tracing::debug!(player = %outcome.player, computer = %outcome.computer, winner = outcome.winner.name(), "round played");
    Ok(player.map(|player| GameRecord {
        game_id,
        player,
        player_choice: choice,
        computer_choice: computer,
        winner: outcome.winner,
    }))
}

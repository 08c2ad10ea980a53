//! `GET /players/{id}/stats|games|rank`: a player's figures, read from the store.

use http::StatusCode;

use super::problem::{ApiError, store_unavailable};
use super::reply::Reply;
use super::wire::{self, Format};
use crate::store::Store;
use crate::store::model::Window;

pub(super) async fn stats(
    store: &Store,
    player: &str,
    format: Format,
    body: &mut Vec<u8>,
) -> Result<Reply, ApiError<'static>> {
    let stats = store.stats(player).await.map_err(store_unavailable)?;
    let stats = stats.ok_or(ApiError::PlayerNotFound)?;
    wire::encode(format, &wire::StatsDocument::new(player, &stats), body);
    Ok(Reply::new(StatusCode::OK, format.content_type()))
}

pub(super) async fn games(
    store: &Store,
    player: &str,
    limit: usize,
    format: Format,
    body: &mut Vec<u8>,
) -> Result<Reply, ApiError<'static>> {
    let games = store
        .games(player, limit)
        .await
        .map_err(store_unavailable)?;
    let games = games.ok_or(ApiError::PlayerNotFound)?;
    wire::encode(
        format,
        &wire::GamesDocument {
            player_id: player,
            games,
        },
        body,
    );
    Ok(Reply::new(StatusCode::OK, format.content_type()))
}

pub(super) async fn rank(
    store: &Store,
    player: &str,
    window: Window,
    format: Format,
    body: &mut Vec<u8>,
) -> Result<Reply, ApiError<'static>> {
    let ranked = store
        .rank(window, player)
        .await
        .map_err(store_unavailable)?;
    let ranked = ranked.ok_or(ApiError::PlayerNotFound)?;
    wire::encode(
        format,
        &wire::RankDocument {
            window: window.name(),
            ranked,
        },
        body,
    );
    Ok(Reply::new(StatusCode::OK, format.content_type()))
}

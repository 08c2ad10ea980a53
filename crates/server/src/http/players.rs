//! `GET /players/{id}/stats|games|rank`: a player's figures, read from the store.

use http::StatusCode;

use super::problem::{ApiError, StoreRefusal};
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
    let stats = store.stats(player).await.map_err(StoreRefusal::from)?;
    let stats = stats.ok_or(StoreRefusal::PlayerNotFound)?;
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
        .map_err(StoreRefusal::from)?;
    let games = games.ok_or(StoreRefusal::PlayerNotFound)?;
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
        .map_err(StoreRefusal::from)?;
    let ranked = ranked.ok_or(StoreRefusal::PlayerNotFound)?;
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

/// A player id is 1 to 64 of `[A-Za-z0-9_.-]`.
pub fn is_valid_player_id(id: &[u8]) -> bool {
    (1..=64).contains(&id.len())
        && id
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn player_ids_are_checked() {
        assert!(is_valid_player_id(b"player-1.x_Y"));
        for bad in [&b""[..], b"has space", b"semi;colon", &[b'a'; 65]] {
            assert!(!is_valid_player_id(bad), "{bad:?}");
        }
    }
}

//! `GET /leaderboard`: a window's board, read from the store, with the accounts' display
//! names.

use http::StatusCode;

use super::problem::{ApiError, StoreRefusal};
use super::reply::Reply;
use super::wire::{self, Format};
use crate::accounts::Accounts;
use crate::store::Store;
use crate::store::model::Window;

pub(super) async fn board(
    store: &Store,
    accounts: &Accounts,
    window: Window,
    limit: usize,
    format: Format,
    body: &mut Vec<u8>,
) -> Result<Reply, ApiError<'static>> {
    let entries = store
        .leaderboard(window, limit)
        .await
        .map_err(StoreRefusal::from)?;
    let ids: Vec<&str> = entries
        .iter()
        .map(|entry| entry.player_id.as_str())
        .collect();
    let names = accounts.display_names(&ids).await?;
    let entries = entries
        .into_iter()
        .zip(names)
        .map(|(entry, display_name)| wire::LeaderboardEntry {
            rank: entry.rank,
            player_id: entry.player_id,
            display_name,
            wins: entry.wins,
        })
        .collect();
    wire::encode(
        format,
        &wire::LeaderboardDocument {
            window: window.name(),
            entries,
        },
        body,
    );
    Ok(Reply::new(StatusCode::OK, format.content_type()))
}

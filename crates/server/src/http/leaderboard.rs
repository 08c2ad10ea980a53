//! `GET /leaderboard`: a window's board, read from the store.

use http::StatusCode;

use super::problem::{ApiError, StoreRefusal};
use super::reply::Reply;
use super::wire::{self, Format};
use crate::store::Store;
use crate::store::model::Window;

pub(super) async fn board(
    store: &Store,
    window: Window,
    limit: usize,
    format: Format,
    body: &mut Vec<u8>,
) -> Result<Reply, ApiError<'static>> {
    let entries = store
        .leaderboard(window, limit)
        .await
        .map_err(StoreRefusal::from)?;
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

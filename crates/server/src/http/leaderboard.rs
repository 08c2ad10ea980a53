//! `GET /leaderboard`: a window's board, read from the store; and `GET /leaderboard/rating`,
//! `GET /leaderboard/win-rate`: a season's boards of real-time play, read from this instance's
//! real-time records (`crate::seasons`). Both with the accounts' display names.

use http::StatusCode;

use super::problem::{ApiError, StoreRefusal};
use super::reply::Reply;
use super::wire::{self, Format};
use crate::accounts::Accounts;
use crate::seasons::{Board, BoardKind};
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

/// A season board already read from real-time play (under the hub's lock, without waiting),
/// answered once the display names are known.
pub(super) async fn season_board(
    accounts: &Accounts,
    kind: BoardKind,
    board: Board,
    format: Format,
    body: &mut Vec<u8>,
) -> Result<Reply, ApiError<'static>> {
    let ids: Vec<&str> = board
        .entries
        .iter()
        .map(|entry| entry.account.as_str())
        .collect();
    let names = accounts.display_names(&ids).await?;
    let entries = board
        .entries
        .into_iter()
        .zip(names)
        .map(|(entry, display_name)| wire::SeasonBoardEntry {
            rank: entry.rank,
            player_id: entry.account,
            display_name,
            rating: entry.rating,
            deviation: entry.deviation,
            wins: entry.wins,
            losses: entry.losses,
            win_rate: entry.win_rate,
        })
        .collect();
    wire::encode(
        format,
        &wire::SeasonBoardDocument {
            board: match kind {
                BoardKind::Rating => "rating",
                BoardKind::WinRate => "win-rate",
            },
            season: board.season,
            min_matches: board.min_matches,
            entries,
        },
        body,
    );
    Ok(Reply::new(StatusCode::OK, format.content_type()))
}

use chrono::{TimeZone, Utc};
use proptest::prelude::*;

use super::*;

fn id(text: &str) -> AccountId {
    AccountId::from(text).unwrap()
}

/// 00:00 UTC on `day` of `month`, Unix milliseconds.
fn at(year: i32, month: u32, day: u32) -> u64 {
    let time = Utc.with_ymd_and_hms(year, month, day, 0, 0, 0).unwrap();
    u64::try_from(time.timestamp_millis()).unwrap()
}

fn boards(min_matches: u64, board_size: usize) -> SeasonBoards {
    SeasonBoards::new(SeasonSettings {
        schedule: Schedule::default(),
        win_rate_min_matches: min_matches,
        board_size,
    })
}

fn accounts(board: &Board) -> Vec<&str> {
    board
        .entries
        .iter()
        .map(|entry| entry.account.as_str())
        .collect()
}

fn ranks(board: &Board) -> Vec<u64> {
    board.entries.iter().map(|entry| entry.rank).collect()
}

#[test]
fn the_rating_board_is_highest_first_and_equal_ratings_share_a_rank_by_account_id() {
    let mut seasons = boards(1, 100);
    let now = at(2026, 12, 5);
    seasons.record(&id("d"), &id("b"), now);
    seasons.record(&id("a"), &id("c"), now);
    let board = seasons.board(BoardKind::Rating, Which::Current, 10, now);
    assert_eq!(accounts(&board), ["a", "d", "b", "c"]);
    assert_eq!(ranks(&board), [1, 1, 3, 3]);
    assert!(board.entries[0].rating > 1500.0 && board.entries[2].rating < 1500.0);
    assert_eq!(board.entries[0].deviation, board.entries[1].deviation);
    assert_eq!((board.entries[0].wins, board.entries[0].losses), (1, 0));
    assert_eq!(board.season.id.to_string(), "2026-12-01T00:00Z");
    assert_eq!(
        (board.season.starts_at_ms, board.season.ends_at_ms),
        (at(2026, 12, 1), at(2027, 1, 1))
    );
    assert!(!board.season.ended);
    assert_eq!(board.min_matches, 1);
}

#[test]
fn the_win_rate_board_lists_only_accounts_with_enough_matches() {
    let mut seasons = boards(3, 100);
    let now = at(2026, 12, 5);
    for _ in 0..3 {
        seasons.record(&id("ann"), &id("bob"), now);
    }
    seasons.record(&id("cat"), &id("dan"), now);
    seasons.record(&id("cat"), &id("dan"), now);
    let board = seasons.board(BoardKind::WinRate, Which::Current, 10, now);
    assert_eq!(accounts(&board), ["ann", "bob"]);
    assert_eq!(board.min_matches, 3);
    assert_eq!(board.entries[0].win_rate, 1.0);
    assert_eq!(board.entries[1].win_rate, 0.0);
    seasons.record(&id("dan"), &id("cat"), now);
    let board = seasons.board(BoardKind::WinRate, Which::Current, 10, now);
    assert_eq!(accounts(&board), ["ann", "cat", "dan", "bob"]);
    assert!((board.entries[1].win_rate - 2.0 / 3.0).abs() < 1e-12);
    // Everyone who played is on the rating board, whatever their count.
    let rating = seasons.board(BoardKind::Rating, Which::Current, 10, now);
    assert_eq!(rating.entries.len(), 4);
}

#[test]
fn equal_win_rates_are_compared_exactly_and_more_matches_rank_first() {
    let mut seasons = boards(1, 100);
    let now = at(2026, 12, 5);
    // ann 2 of 3, bob 4 of 6, cat 1 of 2, dan 2 of 4.
    let plays = [("ann", 2, 1), ("bob", 4, 2), ("cat", 1, 1), ("dan", 2, 2)];
    for (name, wins, losses) in plays {
        for _ in 0..wins {
            seasons.record(&id(name), &id("sparring"), now);
        }
        for _ in 0..losses {
            seasons.record(&id("sparring"), &id(name), now);
        }
    }
    let board = seasons.board(BoardKind::WinRate, Which::Current, 10, now);
    assert_eq!(accounts(&board), ["bob", "ann", "dan", "cat", "sparring"]);
    assert_eq!(ranks(&board), [1, 2, 3, 4, 5]);
}

#[test]
fn a_new_season_starts_everyone_afresh_and_keeps_the_last_one_final() {
    let mut seasons = boards(1, 100);
    seasons.record(&id("ann"), &id("bob"), at(2026, 12, 5));
    seasons.record(&id("ann"), &id("bob"), at(2026, 12, 31) + 86_399_999);
    let december = seasons.board(BoardKind::Rating, Which::Current, 10, at(2026, 12, 31));

    let january = at(2027, 1, 1);
    let previous = seasons.board(BoardKind::Rating, Which::Previous, 10, january);
    assert_eq!(previous.entries, december.entries);
    assert_eq!(previous.season.id.to_string(), "2026-12-01T00:00Z");
    assert!(previous.season.ended);
    let current = seasons.board(BoardKind::Rating, Which::Current, 10, january);
    assert!(current.entries.is_empty());
    assert_eq!(current.season.id.to_string(), "2027-01-01T00:00Z");

    // A full reset: ann's first January win is worth what her first December win was.
    seasons.record(&id("ann"), &id("cat"), january + 5);
    let current = seasons.board(BoardKind::Rating, Which::Current, 10, january + 5);
    let mut fresh = boards(1, 100);
    fresh.record(&id("ann"), &id("bob"), at(2026, 12, 5));
    let first_win = fresh.board(BoardKind::Rating, Which::Current, 1, at(2026, 12, 5));
    assert_eq!(current.entries[0].rating, first_win.entries[0].rating);
    assert_eq!((current.entries[0].wins, current.entries[0].losses), (1, 0));
    // And December's board stays as it ended.
    let previous_again = seasons.board(BoardKind::Rating, Which::Previous, 10, january + 5);
    assert_eq!(previous_again.entries, december.entries);
}

#[test]
fn a_season_nobody_played_here_leaves_an_empty_previous_board() {
    let mut seasons = boards(1, 100);
    seasons.record(&id("ann"), &id("bob"), at(2026, 11, 20));
    let previous = seasons.board(BoardKind::Rating, Which::Previous, 10, at(2027, 1, 15));
    assert_eq!(previous.season.id.to_string(), "2026-12-01T00:00Z");
    assert_eq!(previous.season.ends_at_ms, at(2027, 1, 1));
    assert!(previous.entries.is_empty());
}

#[test]
fn before_any_match_the_boards_name_the_current_and_previous_seasons() {
    let mut seasons = boards(20, 100);
    let board = seasons.board(BoardKind::WinRate, Which::Previous, 10, at(2028, 3, 1));
    assert_eq!(board.season.id.to_string(), "2028-02-01T00:00Z");
    assert_eq!(
        board.season.ends_at_ms - board.season.starts_at_ms,
        29 * 86_400_000
    );
    assert_eq!(board.min_matches, 20);
}

#[test]
fn a_clock_that_steps_back_does_not_roll_the_season() {
    let mut seasons = boards(1, 100);
    seasons.record(&id("ann"), &id("bob"), at(2027, 1, 2));
    seasons.record(&id("ann"), &id("bob"), at(2026, 12, 31));
    let board = seasons.board(BoardKind::Rating, Which::Current, 10, at(2027, 1, 2));
    assert_eq!(board.season.id.to_string(), "2027-01-01T00:00Z");
    assert_eq!(board.entries[0].wins, 2);
}

#[test]
fn boards_are_bounded_by_the_board_size_and_the_limit() {
    let mut seasons = boards(1, 3);
    let now = at(2026, 12, 5);
    for n in 0..10 {
        seasons.record(&id(&format!("w{n}")), &id(&format!("l{n}")), now);
    }
    assert_eq!(
        seasons
            .board(BoardKind::Rating, Which::Current, 100, now)
            .entries
            .len(),
        3
    );
    assert_eq!(
        seasons
            .board(BoardKind::WinRate, Which::Current, 2, now)
            .entries
            .len(),
        2
    );
    assert_eq!(seasons.current.standings.len(), 20);
    let _ = seasons.board(BoardKind::Rating, Which::Current, 1, at(2027, 1, 1));
    // Only the final boards are kept of the season that ended.
    assert_eq!(seasons.previous.rating.len(), 3);
    assert_eq!(seasons.previous.win_rate.len(), 3);
    assert!(seasons.current.standings.is_empty());
}

/// A model of one season: every standing, sorted from scratch.
fn expected(
    standings: &HashMap<AccountId, Standing>,
    kind: BoardKind,
    min_matches: u64,
) -> Vec<String> {
    let mut listed: Vec<(&AccountId, &Standing)> = standings
        .iter()
        .filter(|(_, s)| kind == BoardKind::Rating || s.matches() >= min_matches)
        .collect();
    listed.sort_by(|(a, x), (b, y)| {
        let by_standing = match kind {
            BoardKind::Rating => y.rating.rating.total_cmp(&x.rating.rating),
            BoardKind::WinRate => (u128::from(y.wins) * u128::from(x.matches()))
                .cmp(&(u128::from(x.wins) * u128::from(y.matches())))
                .then(y.matches().cmp(&x.matches())),
        };
        by_standing.then(a.cmp(b))
    });
    listed.into_iter().map(|(a, _)| a.to_string()).collect()
}

proptest! {
    /// Whatever is played, each board is the model's order cut to `min(limit, board_size)`,
    /// the indexes hold exactly the standings, ranks never fall, and the win-rate board lists
    /// no one under the minimum.
    #[test]
    fn boards_agree_with_sorting_every_standing(
        matches in proptest::collection::vec((0u8..8, 0u8..8), 0..120),
        min_matches in 1u64..5,
        board_size in 1usize..10,
        limit in 1usize..12,
    ) {
        let mut seasons = boards(min_matches, board_size);
        let now = at(2026, 12, 5);
        for (winner, loser) in matches {
            if winner == loser {
                continue;
            }
            seasons.record(&id(&format!("p{winner}")), &id(&format!("p{loser}")), now);
        }
        let standings = seasons.current.standings.clone();
        prop_assert_eq!(seasons.current.by_rating.len(), standings.len());
        let qualified = standings.values().filter(|s| s.matches() >= min_matches).count();
        prop_assert_eq!(seasons.current.by_win_rate.len(), qualified);
        for kind in [BoardKind::Rating, BoardKind::WinRate] {
            let board = seasons.board(kind, Which::Current, limit, now);
            let mut model = expected(&standings, kind, min_matches);
            model.truncate(limit.min(board_size));
            let listed: Vec<String> = board.entries.iter().map(|e| e.account.clone()).collect();
            prop_assert_eq!(listed, model);
            prop_assert!(board.entries.windows(2).all(|pair| pair[0].rank <= pair[1].rank));
            if kind == BoardKind::WinRate {
                prop_assert!(board.entries.iter().all(|e| e.wins + e.losses >= min_matches));
            }
        }
        // Rolled over, the same boards are kept as they stood.
        let before = seasons.board(BoardKind::WinRate, Which::Current, board_size, now);
        let after = seasons.board(BoardKind::WinRate, Which::Previous, board_size, at(2027, 1, 1));
        prop_assert_eq!(before.entries, after.entries);
    }
}

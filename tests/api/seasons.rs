//! The season boards of real-time play (`GET /leaderboard/rating`, `GET /leaderboard/win-rate`)
//! after real matches over WebSocket. A season's rollover is tested in `crate::seasons` with
//! the time passed in; here the routes' shapes, order, filters and refusals.

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with};
use crate::realtime::Player;

async fn app() -> TestApp {
    spawn_app_with(|settings| {
        settings.accounts.trust_player_header = false;
        settings.accounts.accounts_per_address_per_hour = 0;
        settings.realtime.win_rate_min_matches = 2;
        settings.realtime.season_schedule = "0 0 * * MON".to_owned();
    })
    .await
}

/// A best-of-one match between two people that `winner` wins.
async fn beats(winner: &mut Player, loser: &mut Player) {
    for player in [&mut *winner, &mut *loser] {
        let queued = player
            .request(json!({"type": "queue", "mode": "best_of_1", "opponent": "human"}))
            .await;
        assert_eq!(queued["type"], "queued", "{queued}");
    }
    for (player, choice) in [(&mut *winner, "rock"), (&mut *loser, "scissors")] {
        player.until(|m| m["type"] == "matched").await;
        player.event("round_opened").await;
        let ack = player
            .request(json!({"type": "move", "round": 1, "choice": choice}))
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
    }
    let won = winner.until(|m| m["type"] == "match_result").await;
    assert_eq!(won["result"], "won", "{won}");
    let lost = loser.until(|m| m["type"] == "match_result").await;
    assert_eq!(lost["result"], "lost", "{lost}");
}

async fn board(app: &TestApp, path: &str) -> Value {
    let answer = app.get(path).await;
    assert_eq!(answer.status, StatusCode::OK, "{path}");
    serde_json::from_slice(&answer.body).unwrap()
}

fn listed(board: &Value) -> Vec<(u64, String)> {
    board["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            (
                entry["rank"].as_u64().unwrap(),
                entry["player_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_season_boards_rank_the_rated_matches_played_this_season() {
    let app = app().await;
    let mut ann = Player::join(&app).await;
    let mut bob = Player::join(&app).await;
    let mut cat = Player::join(&app).await;
    let mut dan = Player::join(&app).await;
    beats(&mut ann, &mut bob).await;
    beats(&mut cat, &mut dan).await;
    beats(&mut ann, &mut cat).await;

    let rating = board(&app, "/leaderboard/rating").await;
    assert_eq!(rating["board"], "rating");
    assert_eq!(rating["min_matches"], 1);
    // Bob and Dan each lost once to a fresh opponent: the same rating, listed by account id.
    let (first_loser, second_loser) = if bob.account < dan.account {
        (&bob.account, &dan.account)
    } else {
        (&dan.account, &bob.account)
    };
    assert_eq!(
        listed(&rating),
        [
            (1, ann.account.clone()),
            (2, cat.account.clone()),
            (3, first_loser.clone()),
            (3, second_loser.clone()),
        ]
    );
    let top = &rating["entries"][0];
    assert!(top["rating"].as_f64().unwrap() > 1500.0, "{top}");
    assert!(top["deviation"].as_f64().unwrap() < 350.0, "{top}");
    assert_eq!(
        (top["wins"].as_u64(), top["losses"].as_u64()),
        (Some(2), Some(0))
    );
    assert!(top["display_name"].is_string(), "{top}");

    // Two rated matches to be listed: only Ann and Cat played two.
    let win_rate = board(&app, "/leaderboard/win-rate?limit=10").await;
    assert_eq!(win_rate["board"], "win-rate");
    assert_eq!(win_rate["min_matches"], 2);
    assert_eq!(
        listed(&win_rate),
        [(1, ann.account.clone()), (2, cat.account.clone())]
    );
    assert_eq!(win_rate["entries"][0]["win_rate"], 1.0);
    assert_eq!(win_rate["entries"][1]["win_rate"], 0.5);

    let limited = board(&app, "/leaderboard/rating?limit=1&season=current").await;
    assert_eq!(listed(&limited), [(1, ann.account.clone())]);
}

#[tokio::test]
async fn a_board_names_its_season_and_the_previous_one_ended_where_it_began() {
    let app = app().await;
    let current = board(&app, "/leaderboard/rating").await;
    let season = &current["season"];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let (starts, ends) = (
        season["starts_at_ms"].as_u64().unwrap(),
        season["ends_at_ms"].as_u64().unwrap(),
    );
    assert!(starts <= now && now < ends, "{season}");
    assert_eq!(ends - starts, 7 * 86_400_000, "weekly: {season}");
    assert_eq!(season["ended"], false);
    let id = season["id"].as_str().unwrap();
    assert_eq!(id.len(), "2026-11-30T00:00Z".len(), "{id}");
    assert!(id.ends_with("T00:00Z"), "{id}");

    let previous = board(&app, "/leaderboard/win-rate?season=previous").await;
    assert_eq!(previous["season"]["ended"], true);
    assert_eq!(previous["season"]["ends_at_ms"].as_u64(), Some(starts));
    assert_eq!(previous["entries"], json!([]));

    let answer = app
        .request(
            Method::GET,
            "/leaderboard/rating",
            &[("accept", "application/msgpack")],
            "",
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let decoded: Value = rmp_serde::from_slice(&answer.body).unwrap();
    assert_eq!(decoded["season"], current["season"]);
}

#[tokio::test]
async fn a_bad_season_or_limit_is_a_400_problem_naming_the_parameter() {
    let app = app().await;
    for (path, parameter) in [
        ("/leaderboard/rating?season=last", "season"),
        ("/leaderboard/win-rate?season=", "season"),
        ("/leaderboard/win-rate?limit=0", "limit"),
        ("/leaderboard/rating?limit=101", "limit"),
    ] {
        let answer = app.get(path).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path}");
        let problem: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(problem["code"], "invalid_parameter", "{path}");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap_or_default()
                .contains(parameter),
            "{path}: {problem}"
        );
    }
    let answer = app
        .request(Method::POST, "/leaderboard/rating", &[], "")
        .await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
}

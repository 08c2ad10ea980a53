use guess_game::game::{Choice, judge};
use http::{Method, StatusCode};

use crate::helpers::{json, spawn_app};

fn choice_named(name: &str) -> Choice {
    Choice::parse(name).unwrap_or_else(|_| panic!("not a choice: {name}"))
}

#[tokio::test]
async fn play_answers_a_round_judged_by_the_rules_for_every_choice() {
    let app = spawn_app().await;
    for choice in Choice::ALL {
        let answer = app.play_json(&format!(r#"{{"choice":"{choice}"}}"#)).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.header("content-type"), Some("application/json"));
        let round = json(&answer);
        assert_eq!(round["player_choice"], choice.name());
        let computer = choice_named(round["computer_choice"].as_str().unwrap());
        let expected = judge(choice, computer);
        assert_eq!(round["winner"], expected.winner.name());
        assert_eq!(round["reason"], expected.reason);
        let game_id: u64 = round["game_id"].as_str().unwrap().parse().unwrap();
        assert!(game_id > 0);
        assert_eq!(round.as_object().unwrap().len(), 5, "{round}");
    }
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn play_matches_the_choice_ignoring_case_and_whitespace() {
    let app = spawn_app().await;
    let answer = app.play_json(r#"{"choice":"  SciSSors\n"}"#).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(json(&answer)["player_choice"], "scissors");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_computer_plays_every_move_over_many_rounds() {
    let app = spawn_app().await;
    let mut seen = std::collections::HashSet::new();
    // The chance that 90 fair draws miss one of three moves is below 1e-15.
    for _ in 0..90 {
        let round = json(&app.play_json(r#"{"choice":"rock"}"#).await);
        seen.insert(round["computer_choice"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn play_speaks_msgpack_when_the_request_is_msgpack() {
    let app = spawn_app().await;
    let body = rmp_serde::to_vec_named(&serde_json::json!({"choice": "paper"})).unwrap();
    let answer = app
        .request(
            Method::POST,
            "/play",
            &[("content-type", "application/msgpack")],
            body,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("content-type"), Some("application/msgpack"));
    let round: serde_json::Value = rmp_serde::from_slice(&answer.body).unwrap();
    assert_eq!(round["player_choice"], "paper");
    assert!(round["reason"].is_string());
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn play_answers_msgpack_to_a_json_request_that_accepts_it() {
    let app = spawn_app().await;
    let answer = app
        .request(
            Method::POST,
            "/play",
            &[
                ("content-type", "application/json"),
                ("accept", "application/msgpack"),
            ],
            r#"{"choice":"rock"}"#,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("content-type"), Some("application/msgpack"));
    let round: serde_json::Value = rmp_serde::from_slice(&answer.body).unwrap();
    assert_eq!(round["player_choice"], "rock");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn play_answers_json_to_a_msgpack_request_that_accepts_only_json() {
    let app = spawn_app().await;
    let body = rmp_serde::to_vec_named(&serde_json::json!({"choice": "rock"})).unwrap();
    let answer = app
        .request(
            Method::POST,
            "/play",
            &[
                ("content-type", "application/msgpack"),
                ("accept", "application/json"),
            ],
            body,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(json(&answer)["player_choice"], "rock");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn many_rounds_on_one_keep_alive_connection_all_succeed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let request = b"POST /play HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"choice\":\"rock\"}";
    let mut stream = tokio::net::TcpStream::connect(app.address).await.unwrap();
    // Pipelined: all requests written before any answer is read.
    let mut all = Vec::new();
    for _ in 0..20 {
        all.extend_from_slice(request);
    }
    stream.write_all(&all).await.unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 8192];
    while received
        .windows(15)
        .filter(|w| w == b"HTTP/1.1 200 OK")
        .count()
        < 20
    {
        let read = tokio::time::timeout(crate::helpers::TIMEOUT, stream.read(&mut buffer))
            .await
            .unwrap()
            .unwrap();
        assert!(
            read > 0,
            "closed early: {}",
            String::from_utf8_lossy(&received)
        );
        received.extend_from_slice(&buffer[..read]);
    }
    app.shutdown().await.unwrap();
}

//! Accounts and sessions: guests, registration, sign-in, tokens, and identity on plays, with
//! the server's default settings (no trusted player header).

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, json, spawn_app_with};

async fn spawn() -> TestApp {
    spawn_app_with(|settings| {
        settings.accounts.trust_player_header = false;
    })
    .await
}

pub(crate) async fn post(
    app: &TestApp,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> (StatusCode, Value) {
    send(app, Method::POST, path, token, Some(body)).await
}

pub(crate) async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let authorization = token.map(|token| format!("Bearer {token}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(value) = &authorization {
        headers.push(("authorization", value.as_str()));
    }
    let body = body.map(|body| body.to_string()).unwrap_or_default();
    let answer = app.request(method, path, &headers, body).await;
    let value = if answer.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&answer.body).unwrap_or(Value::Null)
    };
    (answer.status, value)
}

/// A new guest: (account id, access token, refresh token, device secret).
pub(crate) async fn guest(app: &TestApp) -> (String, String, String, String) {
    let (status, body) = post(app, "/accounts/guest", None, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let text = |pointer: &str| {
        body.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap()
            .to_owned()
    };
    (
        text("/account/id"),
        text("/session/access_token"),
        text("/session/refresh_token"),
        text("/device_secret"),
    )
}

pub(crate) async fn play_as(
    app: &TestApp,
    token: Option<&str>,
    extra: &[(&str, &str)],
) -> StatusCode {
    let authorization = token.map(|token| format!("Bearer {token}"));
    let mut headers = vec![("content-type", "application/json")];
    headers.extend_from_slice(extra);
    if let Some(value) = &authorization {
        headers.push(("authorization", value.as_str()));
    }
    app.request(Method::POST, "/play", &headers, r#"{"choice":"rock"}"#)
        .await
        .status
}

/// The player's rounds once they reach `expected` (results are written in batches), or what
/// they were when the wait gave up.
pub(crate) async fn rounds_of(app: &TestApp, player: &str, expected: u64) -> Option<u64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let answer = app.get(&format!("/players/{player}/stats")).await;
        let rounds = (answer.status == StatusCode::OK)
            .then(|| json(&answer)["rounds"].as_u64())
            .flatten();
        if rounds == Some(expected) || tokio::time::Instant::now() > deadline {
            return rounds;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_guest_plays_upgrades_and_signs_in_elsewhere_to_the_same_stats() {
    let app = spawn().await;
    let (id, access, _, _) = guest(&app).await;
    assert_eq!(id.len(), 24);
    for _ in 0..3 {
        assert_eq!(play_as(&app, Some(&access), &[]).await, StatusCode::OK);
    }
    assert_eq!(rounds_of(&app, &id, 3).await, Some(3));

    let (status, account) = send(
        &app,
        Method::PUT,
        "/me/credentials",
        Some(&access),
        Some(json!({"username": "Ann.Lee", "password": "a long enough secret"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{account}");
    assert_eq!(account["id"], id.as_str());
    assert_eq!(account["guest"], false);
    assert_eq!(account["username"], "Ann.Lee");

    // Elsewhere: a fresh sign-in, with the username in another case.
    let (status, signed_in) = post(
        &app,
        "/sessions",
        None,
        json!({"username": "ann.lee", "password": "a long enough secret"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{signed_in}");
    assert_eq!(signed_in["account"]["id"], id.as_str());
    let other = signed_in["session"]["access_token"].as_str().unwrap();
    assert_ne!(other, access);
    assert_eq!(play_as(&app, Some(other), &[]).await, StatusCode::OK);
    assert_eq!(rounds_of(&app, &id, 4).await, Some(4));
    let (status, me) = send(&app, Method::GET, "/me", Some(other), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["display_name"], "Ann.Lee");
    // Boards show the account's display name beside its id.
    let board = json(&app.get("/leaderboard?limit=100").await);
    let entry = board["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["player_id"] == id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(entry["display_name"], "Ann.Lee");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn forged_player_headers_and_body_ids_change_nothing() {
    let app = spawn().await;
    let (victim, _, _, _) = guest(&app).await;
    let answer = app
        .request(
            Method::POST,
            "/play",
            &[
                ("content-type", "application/json"),
                ("x-player-id", victim.as_str()),
            ],
            format!(r#"{{"choice":"rock","player_id":"{victim}"}}"#),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    // Nothing counted for the victim (a play counts within the flush interval).
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        app.get(&format!("/players/{victim}/stats")).await.status,
        StatusCode::NOT_FOUND
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn tokens_that_are_missing_malformed_or_revoked_get_401_with_a_challenge() {
    let app = spawn().await;
    let answer = app.get("/me").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(json(&answer)["code"], "authentication_required");
    assert_eq!(
        answer.header("www-authenticate"),
        Some(r#"Bearer realm="guess-game""#)
    );
    for bad in [
        "Bearer nonsense",
        "Bearer gga_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "Basic dXNlcjpwYXNz",
        "Bearer",
    ] {
        let answer = app
            .request(Method::GET, "/me", &[("authorization", bad)], "")
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{bad}");
        assert_eq!(json(&answer)["code"], "invalid_token", "{bad}");
        assert_eq!(
            answer.header("www-authenticate"),
            Some(r#"Bearer realm="guess-game", error="invalid_token""#)
        );
        // A play with a bad token is refused, not played anonymously.
        let play = app
            .request(
                Method::POST,
                "/play",
                &[("authorization", bad), ("content-type", "application/json")],
                r#"{"choice":"rock"}"#,
            )
            .await;
        assert_eq!(play.status, StatusCode::UNAUTHORIZED, "{bad}");
    }
    let (_, access, _, _) = guest(&app).await;
    let (status, _) = send(
        &app,
        Method::DELETE,
        "/sessions/current",
        Some(&access),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = send(&app, Method::GET, "/me", Some(&access), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "invalid_token");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn refresh_rotates_tokens_and_a_reused_refresh_token_revokes_the_session() {
    let app = spawn().await;
    let (_, access, refresh, _) = guest(&app).await;
    let (status, fresh) = post(
        &app,
        "/sessions/refresh",
        None,
        json!({"refresh_token": refresh}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{fresh}");
    let new_access = fresh["access_token"].as_str().unwrap().to_owned();
    assert_ne!(new_access, access);
    assert_eq!(
        send(&app, Method::GET, "/me", Some(&access), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&app, Method::GET, "/me", Some(&new_access), None)
            .await
            .0,
        StatusCode::OK
    );
    // The spent refresh token again: the session ends, new tokens included.
    let (status, body) = post(
        &app,
        "/sessions/refresh",
        None,
        json!({"refresh_token": refresh}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "invalid_token");
    assert_eq!(
        send(&app, Method::GET, "/me", Some(&new_access), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let metrics = app.admin_request(Method::GET, "/metrics", &[], "").await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains("guess_game_refresh_token_reuse_total 1"),
        "{text}"
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_device_secret_signs_the_guest_back_in() {
    let app = spawn().await;
    let (id, _, _, device) = guest(&app).await;
    let (status, body) = post(&app, "/sessions", None, json!({"device_secret": device})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["account"]["id"], id.as_str());
    let (status, body) = post(
        &app,
        "/sessions",
        None,
        json!({"device_secret": "ggd_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "invalid_credentials");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn registration_checks_usernames_and_passwords() {
    let app = spawn().await;
    let cases = [
        (
            json!({"username": "ab", "password": "a long enough secret"}),
            "invalid_username",
        ),
        (
            json!({"username": "has space", "password": "a long enough secret"}),
            "invalid_username",
        ),
        (
            json!({"username": "bob", "password": "short"}),
            "weak_password",
        ),
        (
            json!({"username": "bob", "password": "Password123"}),
            "weak_password",
        ),
        (json!({"username": "bob"}), "invalid_body"),
        (
            json!({"username": "bob", "password": "a long enough secret", "admin": true}),
            "invalid_body",
        ),
    ];
    for (body, code) in cases {
        let (status, answer) = post(&app, "/accounts", None, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer["code"], code, "{body}");
    }
    let (status, created) = post(
        &app,
        "/accounts",
        None,
        json!({"username": "Zoë", "password": "a long enough secret"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["account"]["guest"], false);
    let (status, taken) = post(
        &app,
        "/accounts",
        None,
        json!({"username": "ZOË", "password": "another long secret"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(taken["code"], "username_taken");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_look_alike_and_failures_slow_down() {
    let app = spawn().await;
    post(
        &app,
        "/accounts",
        None,
        json!({"username": "carol", "password": "a long enough secret"}),
    )
    .await;
    let (status, wrong) = post(
        &app,
        "/sessions",
        None,
        json!({"username": "carol", "password": "not the secret"}),
    )
    .await;
    let (status_unknown, unknown) = post(
        &app,
        "/sessions",
        None,
        json!({"username": "nobody", "password": "not the secret"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(status_unknown, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong, unknown);
    // Two free failures (one above), then a wait that grows.
    post(
        &app,
        "/sessions",
        None,
        json!({"username": "carol", "password": "not the secret"}),
    )
    .await;
    post(
        &app,
        "/sessions",
        None,
        json!({"username": "carol", "password": "not the secret"}),
    )
    .await;
    let answer = app
        .request(
            Method::POST,
            "/sessions",
            &[("content-type", "application/json")],
            json!({"username": "carol", "password": "a long enough secret"}).to_string(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(json(&answer)["code"], "login_throttled");
    assert_eq!(answer.header("retry-after"), Some("1"));
    // After the wait, the right password works and resets the streak.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _) = post(
        &app,
        "/sessions",
        None,
        json!({"username": "carol", "password": "a long enough secret"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let metrics = app.admin_request(Method::GET, "/metrics", &[], "").await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains(r#"guess_game_logins_total{outcome="bad_credentials"} 4"#),
        "{text}"
    );
    assert!(
        text.contains(r#"guess_game_logins_total{outcome="throttled"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"guess_game_accounts_created_total{kind="registered"} 1"#),
        "{text}"
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn one_address_cannot_mint_unbounded_guests() {
    let app = spawn_app_with(|settings| {
        settings.accounts.accounts_per_address_per_hour = 3;
    })
    .await;
    for _ in 0..3 {
        guest(&app).await;
    }
    let (status, body) = post(&app, "/accounts/guest", None, json!({})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["code"], "login_throttled");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn sessions_are_listed_and_ended_one_by_one() {
    let app = spawn().await;
    let (_, first, _, device) = guest(&app).await;
    let (_, second) = post(&app, "/sessions", None, json!({"device_secret": device})).await;
    let second_token = second["session"]["access_token"].as_str().unwrap();
    let second_id = second["session"]["session_id"].as_str().unwrap();
    let (status, list) = send(&app, Method::GET, "/me/sessions", Some(&first), None).await;
    assert_eq!(status, StatusCode::OK);
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    let path = format!("/me/sessions/{second_id}");
    assert_eq!(
        send(&app, Method::DELETE, &path, Some(&first), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        send(&app, Method::GET, "/me", Some(second_token), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = send(&app, Method::DELETE, &path, Some(&first), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "session_not_found");
    // Another account's session is not found either.
    let (_, other, _, _) = guest(&app).await;
    let (_, mine) = send(&app, Method::GET, "/me/sessions", Some(&first), None).await;
    let my_id = mine["sessions"][0]["id"].as_str().unwrap();
    let (status, _) = send(
        &app,
        Method::DELETE,
        &format!("/me/sessions/{my_id}"),
        Some(&other),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn deleting_the_account_erases_its_games_and_repeating_it_is_harmless() {
    let app = spawn().await;
    let (id, access, _, _) = guest(&app).await;
    play_as(&app, Some(&access), &[]).await;
    assert_eq!(rounds_of(&app, &id, 1).await, Some(1));
    let (status, export) = send(&app, Method::GET, "/me/export", Some(&access), None).await;
    assert_eq!(status, StatusCode::OK, "{export}");
    assert_eq!(export["account"]["id"], id.as_str());
    assert_eq!(export["games"].as_array().unwrap().len(), 1);
    assert_eq!(export["stats"]["rounds"], 1);
    assert_eq!(export["sessions"].as_array().unwrap().len(), 1);

    let (status, renamed) = send(
        &app,
        Method::PATCH,
        "/me",
        Some(&access),
        Some(json!({"display_name": "  Ann  "})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(renamed["display_name"], "Ann");
    let (status, _) = send(
        &app,
        Method::PATCH,
        "/me",
        Some(&access),
        Some(json!({"display_name": ""})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for spoof in ["\u{202e}nimda", "a\u{200b}b", "\u{feff}x"] {
        let (status, _) = send(
            &app,
            Method::PATCH,
            "/me",
            Some(&access),
            Some(json!({ "display_name": spoof })),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{spoof:?}");
    }

    assert_eq!(
        send(&app, Method::DELETE, "/me", Some(&access), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        send(&app, Method::DELETE, "/me", Some(&access), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        send(&app, Method::GET, "/me", Some(&access), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get(&format!("/players/{id}/stats")).await.status,
        StatusCode::NOT_FOUND
    );
    app.shutdown().await.unwrap();
}

/// A play's result is queued for the store; deleting the account right after must not let it
/// land afterwards (the stateful fuzzer's first finding).
#[tokio::test]
async fn a_result_still_queued_does_not_outlive_its_deleted_account() {
    let app = spawn_app_with(|settings| {
        settings.accounts.trust_player_header = false;
        settings.store.store_flush_interval = Duration::from_millis(200);
    })
    .await;
    for _ in 0..5 {
        let (id, access, _, _) = guest(&app).await;
        assert_eq!(play_as(&app, Some(&access), &[]).await, StatusCode::OK);
        assert_eq!(
            send(&app, Method::DELETE, "/me", Some(&access), None)
                .await
                .0,
            StatusCode::NO_CONTENT
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            app.get(&format!("/players/{id}/stats")).await.status,
            StatusCode::NOT_FOUND
        );
    }
    app.shutdown().await.unwrap();
}

/// Erasing an account's games works on Redis too: stats, history and board places.
#[tokio::test]
async fn deleting_an_account_erases_its_games_in_redis() {
    let redis = crate::redis::RedisServer::start();
    let url = redis.url();
    let app = spawn_app_with(move |settings| {
        settings.accounts.trust_player_header = false;
        settings.store.url = url;
    })
    .await;
    let (id, access, _, _) = guest(&app).await;
    for _ in 0..3 {
        assert_eq!(play_as(&app, Some(&access), &[]).await, StatusCode::OK);
    }
    assert_eq!(rounds_of(&app, &id, 3).await, Some(3));
    // The export reads the whole history (Redis once refused its unbounded range).
    let (status, export) = send(&app, Method::GET, "/me/export", Some(&access), None).await;
    assert_eq!(status, StatusCode::OK, "{export}");
    assert_eq!(export["games"].as_array().unwrap().len(), 3);
    let on_board = |board: &Value| {
        board["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|entry| entry["player_id"] == id.as_str())
    };
    assert!(on_board(&json(&app.get("/leaderboard?limit=100").await)));
    assert_eq!(
        send(&app, Method::DELETE, "/me", Some(&access), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&format!("/players/{id}/stats")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(&format!("/players/{id}/games")).await.status,
        StatusCode::NOT_FOUND
    );
    for window in ["all", "day", "week"] {
        let board = json(
            &app.get(&format!("/leaderboard?window={window}&limit=100"))
                .await,
        );
        assert!(!on_board(&board), "{window}: {board}");
    }
    app.shutdown().await.unwrap();
}

/// A deletion whose store call fails is answered 503; repeating it with the same (now dead)
/// token erases the games and answers 204.
#[tokio::test]
async fn a_deletion_the_store_failed_is_finished_by_its_retry() {
    let app = spawn_app_with(|settings| {
        settings.accounts.trust_player_header = false;
        settings.admin.fault_injection = true;
    })
    .await;
    let (id, access, _, _) = guest(&app).await;
    assert_eq!(play_as(&app, Some(&access), &[]).await, StatusCode::OK);
    assert_eq!(rounds_of(&app, &id, 1).await, Some(1));
    crate::protection::inject(
        &app,
        r#"{"point":"store","error_rate":1.0,"duration_ms":60000}"#,
    )
    .await;
    let (status, body) = send(&app, Method::DELETE, "/me", Some(&access), None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "store_unavailable");
    assert_eq!(
        crate::protection::admin_send(&app, Method::DELETE, "")
            .await
            .status,
        200
    );
    // The breaker may still be open from the failure: retry until it lets the call through.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = send(&app, Method::DELETE, "/me", Some(&access), None).await;
        if status == StatusCode::NO_CONTENT {
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        app.get(&format!("/players/{id}/stats")).await.status,
        StatusCode::NOT_FOUND
    );
    app.shutdown().await.unwrap();
}

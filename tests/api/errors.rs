use http::{Method, StatusCode};

use crate::helpers::{json, raw_connection, read_to_close, spawn_app};

fn assert_problem(
    answer: &guess_game::client::Answer,
    status: StatusCode,
    code: &str,
) -> serde_json::Value {
    assert_eq!(
        answer.status,
        status,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(
        answer.header("content-type"),
        Some("application/problem+json")
    );
    let problem = json(answer);
    assert_eq!(problem["code"], code);
    assert_eq!(problem["status"], status.as_u16());
    for member in ["type", "title", "detail"] {
        assert!(problem[member].is_string(), "{member} missing: {problem}");
    }
    problem
}

#[tokio::test]
async fn play_rejects_an_unknown_choice_with_400_listing_the_valid_ones() {
    let app = spawn_app().await;
    let problem = assert_problem(
        &app.play_json(r#"{"choice":"lizard"}"#).await,
        StatusCode::BAD_REQUEST,
        "invalid_choice",
    );
    assert_eq!(
        problem["valid_choices"],
        serde_json::json!(["rock", "paper", "scissors"])
    );
    assert!(problem["detail"].as_str().unwrap().contains("lizard"));
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn play_rejects_bodies_that_are_not_a_play_with_400_invalid_body() {
    let app = spawn_app().await;
    for body in [
        "",
        "{",
        "not json",
        "{}",
        r#"{"choise":"rock"}"#,
        r#"{"choice":null}"#,
        "[\"rock\"]",
    ] {
        assert_problem(
            &app.play_json(body).await,
            StatusCode::BAD_REQUEST,
            "invalid_body",
        );
    }
    let garbage = app
        .request(
            Method::POST,
            "/play",
            &[("content-type", "application/msgpack")],
            &b"\xc1\xff"[..],
        )
        .await;
    assert_problem(&garbage, StatusCode::BAD_REQUEST, "invalid_body");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn play_rejects_an_unsupported_content_type_with_415() {
    let app = spawn_app().await;
    for content_type in [
        "text/plain",
        "application/xml",
        "application/x-www-form-urlencoded",
    ] {
        let answer = app
            .request(
                Method::POST,
                "/play",
                &[("content-type", content_type)],
                r#"{"choice":"rock"}"#,
            )
            .await;
        assert_problem(
            &answer,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        );
    }
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn play_rejects_a_body_over_the_limit_with_413() {
    let app = spawn_app().await;
    let padding = "x".repeat(5000);
    let answer = app
        .play_json(&format!(r#"{{"choice":"rock","padding":"{padding}"}}"#))
        .await;
    let problem = assert_problem(&answer, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert_eq!(problem["max_body_bytes"], 4096);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn play_rejects_a_chunked_body_over_the_limit_with_413() {
    let app = spawn_app().await;
    let chunk = "x".repeat(3000);
    let request = format!(
        "POST /play HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{len:x}\r\n{chunk}\r\n{len:x}\r\n{chunk}\r\n0\r\n\r\n",
        len = chunk.len()
    );
    let mut stream = raw_connection(app.address, request.as_bytes()).await;
    let response = read_to_close(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("payload_too_large"), "{response}");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_wrong_method_gets_405_with_allow() {
    let app = spawn_app().await;
    for (method, path, allow) in [
        (Method::GET, "/play", "POST"),
        (Method::PUT, "/play", "POST"),
        (Method::DELETE, "/healthz", "GET, HEAD"),
        (Method::POST, "/readyz", "GET, HEAD"),
        (Method::POST, "/openapi.json", "GET, HEAD"),
    ] {
        let answer = app.request(method, path, &[], "").await;
        assert_problem(
            &answer,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        );
        assert_eq!(answer.header("allow"), Some(allow), "{path}");
    }
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_unknown_path_gets_404_in_the_same_shape() {
    let app = spawn_app().await;
    for path in [
        "/nope",
        "/assets/",
        "/assets/nope.js",
        "/play/",
        "/PLAY",
        "/play/extra",
    ] {
        assert_problem(&app.get(path).await, StatusCode::NOT_FOUND, "not_found");
    }
    assert_problem(
        &app.play_json_at("/plays").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    app.shutdown().await.unwrap();
}

impl crate::helpers::TestApp {
    async fn play_json_at(&self, path: &str) -> guess_game::client::Answer {
        self.request(
            Method::POST,
            path,
            &[("content-type", "application/json")],
            r#"{"choice":"rock"}"#,
        )
        .await
    }
}

use http::{Method, StatusCode};

use crate::helpers::{json, spawn_app};

#[tokio::test]
async fn healthz_and_readyz_answer_200_while_serving() {
    let app = spawn_app().await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(json(&health)["status"], "ok");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(json(&ready)["status"], "ready");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn head_answers_like_get_without_a_body() {
    let app = spawn_app().await;
    let answer = app.request(Method::HEAD, "/healthz", &[], "").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.body.is_empty());
    assert_eq!(answer.header("content-length"), Some("15"));
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn openapi_json_describes_the_served_routes() {
    let app = spawn_app().await;
    let answer = app.get("/openapi.json").await;
    assert_eq!(answer.status, StatusCode::OK);
    let document = json(&answer);
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in ["/play", "/healthz", "/readyz", "/openapi.json"] {
        assert!(document["paths"][path].is_object(), "{path} undocumented");
    }
    app.shutdown().await.unwrap();
}

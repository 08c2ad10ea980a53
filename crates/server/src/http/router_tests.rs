//! The router's CORS and cookie-session hooks, through `App::handle` (no sockets: the
//! allowlist is given to the `App` directly; `tests/api/web_session.rs` covers the same over
//! real connections).

use http::{Method, StatusCode};

use super::*;
use crate::http::{FetchSite, Readiness};
use crate::telemetry::observe::Observability;

fn app(origins: &[&str]) -> App {
    let origins: Vec<String> = origins.iter().map(|origin| (*origin).to_owned()).collect();
    App::new(Readiness::new(), 4096, Observability::default()).with_cors_allowed_origins(&origins)
}

fn request<'a>(method: &'a Method, path: &'a str, origin: Option<&'a [u8]>) -> Request<'a> {
    let mut request = Request::new(method, path, Some(b"application/json"), b"");
    request.headers.origin = origin;
    request
}

fn allow_origin(reply: &Reply) -> Option<String> {
    reply
        .header("access-control-allow-origin")
        .map(|value| value.to_string())
}

#[tokio::test]
async fn without_an_allowlist_an_options_is_405_and_no_answer_carries_cors() {
    let app = app(&[]);
    let mut body = Vec::new();
    let origin = Some(&b"https://a.example"[..]);
    let options = app
        .handle(&request(&Method::OPTIONS, "/play", origin), &mut body)
        .await;
    assert_eq!(options.status, StatusCode::METHOD_NOT_ALLOWED);
    let board = app
        .handle(&request(&Method::GET, "/leaderboard", origin), &mut body)
        .await;
    assert_eq!(board.status, StatusCode::OK);
    for reply in [options, board] {
        assert_eq!(allow_origin(&reply), None);
        assert!(reply.static_headers().is_empty());
    }
}

#[tokio::test]
async fn an_allowed_origin_gets_a_preflight_and_cors_on_ready_deferred_and_refused_answers() {
    let app = app(&["https://a.example"]);
    let mut body = Vec::new();
    let origin = Some(&b"https://a.example"[..]);
    let preflight = app
        .handle(&request(&Method::OPTIONS, "/me", origin), &mut body)
        .await;
    assert_eq!(preflight.status, StatusCode::NO_CONTENT);
    assert_eq!(
        preflight
            .header("access-control-allow-methods")
            .map(|value| value.to_string())
            .as_deref(),
        Some("GET, HEAD, PATCH, DELETE")
    );
    let ready = app
        .handle(&request(&Method::GET, "/healthz", origin), &mut body)
        .await;
    let deferred = app
        .handle(&request(&Method::GET, "/leaderboard", origin), &mut body)
        .await;
    let refused = app
        .handle(&request(&Method::GET, "/me", origin), &mut body)
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    for reply in [preflight, ready, deferred, refused] {
        assert_eq!(allow_origin(&reply).as_deref(), Some("https://a.example"));
        assert_eq!(
            reply
                .header("vary")
                .map(|value| value.to_string())
                .as_deref(),
            Some("origin")
        );
    }
    // The page keeps its own fixed headers: it is same-origin only.
    let page = app
        .handle(&request(&Method::GET, "/", origin), &mut body)
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(allow_origin(&page), None);
    assert!(page.header("content-security-policy").is_some());
    let other = Some(&b"https://b.example"[..]);
    let refused_preflight = app
        .handle(&request(&Method::OPTIONS, "/me", other), &mut body)
        .await;
    assert_eq!(refused_preflight.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(allow_origin(&refused_preflight), None);
}

#[tokio::test]
async fn a_cookie_session_set_by_a_sign_in_authenticates_and_the_csrf_rule_guards_it() {
    let app = app(&[]);
    let mut body = Vec::new();
    let mut guest = Request::new(&Method::POST, "/accounts/guest", None, b"");
    guest.headers.session_cookie = true;
    guest.headers.origin = Some(b"http://127.0.0.1:8080");
    let created = app.handle(&guest, &mut body).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let set_cookie = created
        .header("set-cookie")
        .map(|value| value.to_string())
        .expect("a cookie");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    assert!(cookie.starts_with("gg_session=ggs_"), "{set_cookie}");
    let text = String::from_utf8(body.clone()).unwrap();
    assert!(
        !text.contains("gga_") && !text.contains("access_token"),
        "{text}"
    );

    let mut me = Request::new(&Method::GET, "/me", None, b"");
    me.headers.cookie = Some(cookie.as_bytes());
    assert_eq!(app.handle(&me, &mut body).await.status, StatusCode::OK);

    let mut play = Request::new(
        &Method::POST,
        "/play",
        Some(b"application/json"),
        br#"{"choice":"rock"}"#,
    );
    play.headers.cookie = Some(cookie.as_bytes());
    let refused = app.handle(&play, &mut body).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(String::from_utf8_lossy(&body).contains("csrf_refused"));
    play.headers.session_cookie = true;
    play.headers.fetch_site = Some(FetchSite::SameOrigin);
    assert_eq!(app.handle(&play, &mut body).await.status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&body).contains("\"nonce\""));
}

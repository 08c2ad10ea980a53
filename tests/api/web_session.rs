//! The web page's cookie session and CORS, over real sockets: the HttpOnly cookie a sign-in
//! with `X-Session: cookie` sets, requests authenticated by it, the CSRF rule refusing and
//! admitting them, refresh and sign-out, and the CORS allowlist (off by default).

use guess_game::client::Answer;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::accounts::rounds_of;
use crate::helpers::{TestApp, json, spawn_app_with};

async fn spawn() -> TestApp {
    spawn_app_with(|settings| {
        settings.accounts.trust_player_header = false;
    })
    .await
}

/// What the web page sends with every request, as Chromium does on this origin.
struct Page<'a> {
    app: &'a TestApp,
    origin: String,
    /// `gg_session=...` as the browser would send it back.
    cookie: Option<String>,
}

impl<'a> Page<'a> {
    fn new(app: &'a TestApp) -> Self {
        Page {
            app,
            origin: format!("http://{}", app.address),
            cookie: None,
        }
    }

    /// A request as the page sends it, with `extra` headers; `without` leaves some of the
    /// page's own out.
    async fn send_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        extra: &[(&str, &str)],
        without: &[&str],
    ) -> Answer {
        let mut headers: Vec<(&str, &str)> = vec![
            ("x-session", "cookie"),
            ("origin", &self.origin),
            ("sec-fetch-site", "same-origin"),
            ("accept", "application/json"),
        ];
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        if let Some(cookie) = &self.cookie {
            headers.push(("cookie", cookie));
        }
        headers.retain(|(name, _)| !without.contains(name));
        headers.extend_from_slice(extra);
        let body = body.map(|body| body.to_string()).unwrap_or_default();
        self.app.request(method, path, &headers, body).await
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.send_with(method, path, body, &[], &[]).await
    }

    /// Keeps the session cookie an answer set, as a browser would.
    fn keep(&mut self, answer: &Answer) {
        if let Some(set) = set_cookie(answer) {
            let pair = set.split(';').next().unwrap_or_default().to_owned();
            self.cookie = (pair != "gg_session=").then_some(pair);
        }
    }

    /// Starts a guest the page's way and keeps its cookie.
    async fn guest(&mut self) -> Value {
        let answer = self.send(Method::POST, "/accounts/guest", None).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
        self.keep(&answer);
        assert!(self.cookie.is_some(), "a cookie is set: {answer:?}");
        json(&answer)
    }
}

/// The one `Set-Cookie` of an answer.
fn set_cookie(answer: &Answer) -> Option<String> {
    let mut values = answer.headers.get_all("set-cookie").iter();
    let first = values.next()?.to_str().ok()?.to_owned();
    assert!(values.next().is_none(), "one Set-Cookie only");
    Some(first)
}

fn attributes(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|attribute| attribute.trim().to_ascii_lowercase())
        .collect()
}

fn code(answer: &Answer) -> String {
    json(answer)["code"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_cookie_guest_gets_an_http_only_strict_cookie_and_no_token_in_the_body() {
    let app = spawn().await;
    let mut page = Page::new(&app);
    let answer = page.send(Method::POST, "/accounts/guest", None).await;
    assert_eq!(answer.status, StatusCode::CREATED);
    let set = set_cookie(&answer).expect("the session is set in a cookie");
    assert!(set.starts_with("gg_session=ggs_"), "{set}");
    let attributes = attributes(&set);
    for expected in ["httponly", "samesite=strict", "path=/"] {
        assert!(attributes.contains(&expected.to_owned()), "{set}");
    }
    let max_age: u64 = attributes
        .iter()
        .find_map(|attribute| attribute.strip_prefix("max-age="))
        .and_then(|seconds| seconds.parse().ok())
        .expect("a Max-Age");
    // The default session_lifetime is 30 days.
    assert!((2_591_000..=2_592_000).contains(&max_age), "{max_age}");
    // The page came over plain HTTP, where a browser would drop a Secure cookie.
    assert!(!attributes.contains(&"secure".to_owned()), "{set}");
    let body = json(&answer);
    let text = body.to_string();
    for absent in [
        "access_token",
        "refresh_token",
        "device_secret",
        "gga_",
        "ggr_",
        "ggs_",
    ] {
        assert!(!text.contains(absent), "{absent} in {text}");
    }
    assert_eq!(body["account"]["guest"], true);
    assert!(body["session"]["session_id"].is_string());
    page.keep(&answer);
    let me = page.send(Method::GET, "/me", None).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(json(&me)["id"], body["account"]["id"]);
}

#[tokio::test]
async fn the_session_cookie_is_secure_when_the_page_came_over_https_or_from_no_page() {
    let app = spawn().await;
    for origin in [Some("https://game.example"), None] {
        let mut page = Page::new(&app);
        let without: &[&str] = match origin {
            Some(origin) => {
                page.origin = origin.to_owned();
                &[]
            }
            None => &["origin"],
        };
        let answer = page
            .send_with(Method::POST, "/accounts/guest", None, &[], without)
            .await;
        assert_eq!(answer.status, StatusCode::CREATED);
        let set = set_cookie(&answer).unwrap();
        assert!(attributes(&set).contains(&"secure".to_owned()), "{set}");
    }
}

#[tokio::test]
async fn a_cookie_session_plays_reads_and_gets_realtime_tickets_like_a_bearer_token() {
    let app = spawn().await;
    let mut page = Page::new(&app);
    let id = page.guest().await["account"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..2 {
        let answer = page
            .send(Method::POST, "/play", Some(json!({"choice": "rock"})))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        assert!(json(&answer)["nonce"].is_u64(), "a provably fair play");
    }
    assert_eq!(rounds_of(&app, &id, 2).await, Some(2));
    let ticket = page.send(Method::POST, "/realtime/tickets", None).await;
    assert_eq!(ticket.status, StatusCode::CREATED);
    assert!(
        json(&ticket)["ticket"]
            .as_str()
            .unwrap()
            .starts_with("ggt_")
    );
    let matches = page.send(Method::GET, "/me/matches", None).await;
    assert_eq!(matches.status, StatusCode::OK);
    // A safe method needs only the cookie: no X-Session, no Sec-Fetch-Site.
    let me = page
        .send_with(
            Method::GET,
            "/me",
            None,
            &[],
            &["x-session", "sec-fetch-site", "origin"],
        )
        .await;
    assert_eq!(me.status, StatusCode::OK);
}

#[tokio::test]
async fn csrf_a_cookie_request_without_x_session_is_refused_and_changes_nothing() {
    let app = spawn().await;
    let mut page = Page::new(&app);
    let id = page.guest().await["account"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A form another page posts carries the cookie (were it not SameSite) but no X-Session.
    let attempts = [
        (Method::POST, "/play", Some(json!({"choice": "rock"}))),
        (
            Method::PUT,
            "/me/credentials",
            Some(json!({"username": "mallory_made_me", "password": "a long enough secret"})),
        ),
        (Method::POST, "/realtime/tickets", None),
        (Method::DELETE, "/sessions/current", None),
        (Method::DELETE, "/me", None),
    ];
    for (method, path, body) in attempts {
        let answer = page
            .send_with(method.clone(), path, body, &[], &["x-session"])
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(code(&answer), "csrf_refused");
        assert_eq!(
            answer.header("content-type"),
            Some("application/problem+json")
        );
        assert!(set_cookie(&answer).is_none());
    }
    // Nothing happened: the session still works, the account is still a guest with no rounds.
    let me = page.send(Method::GET, "/me", None).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(json(&me)["guest"], true);
    let stats = app.get(&format!("/players/{id}/stats")).await;
    assert_eq!(stats.status, StatusCode::NOT_FOUND);
    // And the same request as the page sends it succeeds.
    let answer = page
        .send(Method::POST, "/play", Some(json!({"choice": "rock"})))
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(rounds_of(&app, &id, 1).await, Some(1));
}

#[tokio::test]
async fn csrf_a_cookie_request_the_browser_says_another_site_sent_is_refused() {
    let app = spawn().await;
    let mut page = Page::new(&app);
    page.guest().await;
    for site in ["cross-site", "same-site", "none"] {
        let answer = page
            .send_with(
                Method::POST,
                "/play",
                Some(json!({"choice": "paper"})),
                &[("sec-fetch-site", site)],
                &["sec-fetch-site"],
            )
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{site}");
        assert_eq!(code(&answer), "csrf_refused");
    }
    // Signing in from another site's page is refused too (no login CSRF), before any work.
    let mut stranger = Page::new(&app);
    stranger.origin = "https://evil.example".to_owned();
    let answer = stranger
        .send_with(
            Method::POST,
            "/accounts/guest",
            None,
            &[("sec-fetch-site", "cross-site")],
            &["sec-fetch-site"],
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(code(&answer), "csrf_refused");
    assert!(set_cookie(&answer).is_none());
}

#[tokio::test]
async fn cookie_register_sign_in_and_a_guest_upgrade_work_and_errors_are_problems() {
    let app = spawn().await;
    let page = Page::new(&app);
    let registered = page
        .send(
            Method::POST,
            "/accounts",
            Some(json!({"username": "ann_web", "password": "a long enough secret"})),
        )
        .await;
    assert_eq!(registered.status, StatusCode::CREATED);
    assert_eq!(json(&registered)["account"]["username"], "ann_web");
    assert!(set_cookie(&registered).is_some());

    let mut other = Page::new(&app);
    let wrong = other
        .send(
            Method::POST,
            "/sessions",
            Some(json!({"username": "ann_web", "password": "not the secret"})),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&wrong), "invalid_credentials");
    assert!(set_cookie(&wrong).is_none());
    let signed_in = other
        .send(
            Method::POST,
            "/sessions",
            Some(json!({"username": "ann_web", "password": "a long enough secret"})),
        )
        .await;
    assert_eq!(signed_in.status, StatusCode::OK);
    assert!(json(&signed_in)["session"]["access_token"].is_null());
    other.keep(&signed_in);
    assert_eq!(
        json(&other.send(Method::GET, "/me", None).await)["username"],
        "ann_web"
    );

    let mut guest = Page::new(&app);
    let id = guest.guest().await["account"]["id"].clone();
    let taken = guest
        .send(
            Method::PUT,
            "/me/credentials",
            Some(json!({"username": "ANN_WEB", "password": "another long secret"})),
        )
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    assert_eq!(code(&taken), "username_taken");
    let upgraded = guest
        .send(
            Method::PUT,
            "/me/credentials",
            Some(json!({"username": "bo_web", "password": "another long secret"})),
        )
        .await;
    assert_eq!(upgraded.status, StatusCode::OK);
    assert_eq!(json(&upgraded)["id"], id);
    assert_eq!(json(&upgraded)["guest"], false);
}

#[tokio::test]
async fn cookie_refresh_rotates_the_cookie_and_the_old_one_presented_again_ends_the_session() {
    let app = spawn().await;
    let mut page = Page::new(&app);
    page.guest().await;
    let old = page.cookie.clone();
    let refreshed = page.send(Method::POST, "/sessions/refresh", None).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{refreshed:?}");
    assert!(!String::from_utf8_lossy(&refreshed.body).contains("ggr_"));
    page.keep(&refreshed);
    assert_ne!(page.cookie, old, "the cookie rotates");
    assert_eq!(
        page.send(Method::GET, "/me", None).await.status,
        StatusCode::OK
    );

    // The old cookie no longer authenticates, and trading it again is theft: the session ends.
    let mut thief = Page::new(&app);
    thief.cookie = old;
    let me = thief.send(Method::GET, "/me", None).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&me), "invalid_token");
    let reused = thief.send(Method::POST, "/sessions/refresh", None).await;
    assert_eq!(reused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&reused), "invalid_token");
    assert_eq!(
        page.send(Method::GET, "/me", None).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Without a cookie there is nothing to refresh.
    let none = Page::new(&app)
        .send(Method::POST, "/sessions/refresh", None)
        .await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&none), "authentication_required");
}

#[tokio::test]
async fn cookie_sign_out_clears_the_cookie_and_revokes_the_session() {
    let app = spawn().await;
    let mut page = Page::new(&app);
    page.guest().await;
    let signed_in = page.cookie.clone();
    let out = page.send(Method::DELETE, "/sessions/current", None).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let set = set_cookie(&out).expect("the cookie is cleared");
    assert!(set.starts_with("gg_session=;"), "{set}");
    assert!(attributes(&set).contains(&"max-age=0".to_owned()), "{set}");
    page.keep(&out);
    assert_eq!(page.cookie, None);
    // A copy of the cookie kept from before is worth nothing now.
    page.cookie = signed_in;
    let me = page.send(Method::GET, "/me", None).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    // Signing out again, with a dead cookie or none, still answers 204 and clears it.
    for cookie in [page.cookie.clone(), None] {
        page.cookie = cookie;
        let again = page.send(Method::DELETE, "/sessions/current", None).await;
        assert_eq!(again.status, StatusCode::NO_CONTENT);
        assert!(set_cookie(&again).unwrap().starts_with("gg_session=;"));
    }
}

#[tokio::test]
async fn cookie_sign_out_with_a_stale_cookie_ends_the_session_it_named() {
    let app = spawn().await;
    let mut page = Page::new(&app);
    page.guest().await;
    let stale = page.cookie.clone();
    let refreshed = page.send(Method::POST, "/sessions/refresh", None).await;
    page.keep(&refreshed);
    // A tab that kept the cookie from before the refresh signs out: its access token is gone,
    // its refresh token is spent, so the whole session ends, and its cookie is cleared.
    let mut other_tab = Page::new(&app);
    other_tab.cookie = stale;
    let out = other_tab
        .send(Method::DELETE, "/sessions/current", None)
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert!(set_cookie(&out).unwrap().starts_with("gg_session=;"));
    assert_eq!(
        page.send(Method::GET, "/me", None).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_malformed_session_cookie_is_refused_never_anonymous() {
    let app = spawn().await;
    let mut page = Page::new(&app);
    page.cookie = Some("gg_session=not-a-seed".to_owned());
    let play = page
        .send(Method::POST, "/play", Some(json!({"choice": "rock"})))
        .await;
    assert_eq!(play.status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&play), "invalid_token");
    // Other cookies are none of the server's business: the play is anonymous.
    page.cookie = Some("theme=dark".to_owned());
    let play = page
        .send(Method::POST, "/play", Some(json!({"choice": "rock"})))
        .await;
    assert_eq!(play.status, StatusCode::OK);
    assert!(json(&play)["nonce"].is_null());
}

#[tokio::test]
async fn a_bearer_token_beside_a_cookie_wins_and_needs_no_csrf_header() {
    let app = spawn().await;
    let (_, access, _, _) = crate::accounts::guest(&app).await;
    let mut page = Page::new(&app);
    page.guest().await;
    let authorization = format!("Bearer {access}");
    let answer = page
        .send_with(
            Method::POST,
            "/play",
            Some(json!({"choice": "rock"})),
            &[("authorization", &authorization)],
            &["x-session", "sec-fetch-site"],
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn a_cookie_session_in_redis_works_on_another_instance_and_the_csrf_rule_still_holds() {
    let redis = crate::redis::RedisServer::start();
    let instance = |url: String| {
        spawn_app_with(move |settings| {
            settings.accounts.trust_player_header = false;
            settings.store.url = url;
        })
    };
    let a = instance(redis.url()).await;
    let b = instance(redis.url()).await;
    let mut page = Page::new(&a);
    let id = page.guest().await["account"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // On B the cookie's token is unknown to the cache: looked up in Redis, then served.
    let mut elsewhere = Page::new(&b);
    elsewhere.cookie = page.cookie.clone();
    let refused = elsewhere
        .send_with(
            Method::POST,
            "/play",
            Some(json!({"choice": "rock"})),
            &[],
            &["x-session"],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(code(&refused), "csrf_refused");
    let played = elsewhere
        .send(Method::POST, "/play", Some(json!({"choice": "rock"})))
        .await;
    assert_eq!(played.status, StatusCode::OK, "{played:?}");
    assert_eq!(rounds_of(&b, &id, 1).await, Some(1));
    let me = elsewhere.send(Method::GET, "/me", None).await;
    assert_eq!(json(&me)["id"], id.as_str());
    let out = elsewhere
        .send(Method::DELETE, "/sessions/current", None)
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert!(set_cookie(&out).unwrap().starts_with("gg_session=;"));
    assert_eq!(
        elsewhere.send(Method::GET, "/me", None).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn cors_is_off_by_default() {
    let app = spawn().await;
    let preflight = app
        .request(
            Method::OPTIONS,
            "/play",
            &[
                ("origin", "https://other.example"),
                ("access-control-request-method", "POST"),
            ],
            "",
        )
        .await;
    assert_eq!(preflight.status, StatusCode::METHOD_NOT_ALLOWED);
    let play = app
        .request(
            Method::POST,
            "/play",
            &[
                ("origin", "https://other.example"),
                ("content-type", "application/json"),
            ],
            r#"{"choice":"rock"}"#,
        )
        .await;
    assert_eq!(play.status, StatusCode::OK);
    for answer in [&preflight, &play] {
        let cors: Vec<_> = answer
            .headers
            .keys()
            .filter(|name| name.as_str().starts_with("access-control-"))
            .collect();
        assert!(cors.is_empty(), "{cors:?}");
    }
}

async fn spawn_with_cors() -> TestApp {
    spawn_app_with(|settings| {
        settings.accounts.trust_player_header = false;
        settings.server.cors_allowed_origins = vec![
            "https://friend.example".to_owned(),
            "http://localhost:3000".to_owned(),
        ];
    })
    .await
}

#[tokio::test]
async fn cors_a_preflight_from_an_allowed_origin_is_answered_and_from_others_refused() {
    let app = spawn_with_cors().await;
    let preflight = |origin: &'static str, path: &'static str| {
        let app = &app;
        async move {
            app.request(
                Method::OPTIONS,
                path,
                &[
                    ("origin", origin),
                    ("access-control-request-method", "POST"),
                    (
                        "access-control-request-headers",
                        "authorization, content-type, idempotency-key",
                    ),
                ],
                "",
            )
            .await
        }
    };
    let answer = preflight("https://friend.example", "/play").await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("https://friend.example")
    );
    assert_eq!(answer.header("vary"), Some("origin"));
    assert_eq!(answer.header("access-control-allow-methods"), Some("POST"));
    let allowed = answer.header("access-control-allow-headers").unwrap();
    for name in ["authorization", "content-type", "idempotency-key"] {
        assert!(allowed.contains(name), "{allowed}");
    }
    assert!(!allowed.contains("x-session"), "{allowed}");
    assert_eq!(answer.header("access-control-max-age"), Some("600"));
    assert_eq!(answer.header("access-control-allow-credentials"), None);
    let me = preflight("http://localhost:3000", "/me").await;
    assert_eq!(
        me.header("access-control-allow-methods"),
        Some("GET, HEAD, PATCH, DELETE")
    );

    for refused in [
        "https://enemy.example",
        "https://friend.example.enemy.example",
        "http://friend.example",
        "null",
    ] {
        let answer = preflight(refused, "/play").await;
        assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "{refused}");
        assert_eq!(answer.header("access-control-allow-origin"), None);
    }
    assert_eq!(
        preflight("https://friend.example", "/nowhere").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn cors_answers_to_an_allowed_origin_carry_its_origin_and_others_nothing() {
    let app = spawn_with_cors().await;
    let (_, access, _, _) = crate::accounts::guest(&app).await;
    let authorization = format!("Bearer {access}");
    for (origin, allowed) in [
        ("https://friend.example", true),
        ("https://enemy.example", false),
    ] {
        let play = app
            .request(
                Method::POST,
                "/play",
                &[
                    ("origin", origin),
                    ("content-type", "application/json"),
                    ("authorization", &authorization),
                ],
                r#"{"choice":"rock"}"#,
            )
            .await;
        assert_eq!(play.status, StatusCode::OK);
        // A deferred answer (the store's) and a refusal carry them as well.
        let board = app
            .request(Method::GET, "/leaderboard", &[("origin", origin)], "")
            .await;
        let refusal = app
            .request(Method::GET, "/me", &[("origin", origin)], "")
            .await;
        assert_eq!(refusal.status, StatusCode::UNAUTHORIZED);
        for answer in [&play, &board, &refusal] {
            assert_eq!(
                answer.header("access-control-allow-origin"),
                allowed.then_some(origin)
            );
            assert_eq!(answer.header("vary"), allowed.then_some("origin"));
            assert_eq!(answer.header("access-control-allow-credentials"), None);
        }
        if allowed {
            let exposed = play.header("access-control-expose-headers").unwrap();
            assert!(exposed.contains("retry-after"), "{exposed}");
        }
    }
    // The page keeps its own headers, and gets no CORS ones.
    let page = app
        .request(
            Method::GET,
            "/",
            &[("origin", "https://friend.example")],
            "",
        )
        .await;
    assert_eq!(page.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn cors_an_allowed_origin_still_cannot_use_the_cookie_session() {
    let app = spawn_with_cors().await;
    let mut page = Page::new(&app);
    page.guest().await;
    // The friend's page cannot send X-Session (its preflight does not allow it); a browser
    // that sent the cookie anyway marks the request cross-site, and it is refused.
    let mut friend = Page::new(&app);
    friend.origin = "https://friend.example".to_owned();
    friend.cookie = page.cookie.clone();
    let answer = friend
        .send_with(
            Method::POST,
            "/play",
            Some(json!({"choice": "rock"})),
            &[("sec-fetch-site", "cross-site")],
            &["x-session", "sec-fetch-site"],
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(code(&answer), "csrf_refused");
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("https://friend.example")
    );
}

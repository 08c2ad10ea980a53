//! Accounts and sessions in Redis, shared by instances: a session started on one works on
//! another and survives a restart; a session ended on one stops working on the others within
//! `session_cache_ttl`; a refresh token spent on one is seen as spent everywhere; a username
//! is taken once however many instances race for it. Each test starts its own Redis.

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;

use crate::accounts::{guest, play_as, post, rounds_of, send};
use crate::helpers::{TestApp, spawn_app_with};
use crate::redis::{RedisCluster, RedisServer};

async fn instance(url: &str, cache_ttl: Duration) -> TestApp {
    let url = url.to_owned();
    spawn_app_with(move |settings| {
        settings.accounts.trust_player_header = false;
        settings.accounts.session_cache_ttl = cache_ttl;
        settings.store.url = url;
    })
    .await
}

#[tokio::test]
async fn a_session_started_on_one_instance_works_on_another_and_after_a_restart() {
    let redis = RedisServer::start();
    let url = redis.url();
    let a = instance(&url, Duration::from_secs(2)).await;
    let b = instance(&url, Duration::from_secs(2)).await;
    let (id, access, _, device) = guest(&a).await;
    assert_eq!(play_as(&b, Some(&access), &[]).await, StatusCode::OK);
    assert_eq!(play_as(&a, Some(&access), &[]).await, StatusCode::OK);
    assert_eq!(rounds_of(&b, &id, 2).await, Some(2));
    let (status, me) = send(&b, Method::GET, "/me", Some(&access), None).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["id"], id.as_str());
    // Upgraded on B, signed in with the password on A.
    let credentials = json!({"username": "Ada", "password": "correct horse battery"});
    let (status, body) = send(
        &b,
        Method::PUT,
        "/me/credentials",
        Some(&access),
        Some(credentials),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, signed_in) = post(
        &a,
        "/sessions",
        None,
        json!({"username": "ADA", "password": "correct horse battery"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{signed_in}");
    assert_eq!(signed_in["account"]["id"], id.as_str());
    // The device secret retired with the upgrade, on every instance.
    let (status, _) = post(&a, "/sessions", None, json!({"device_secret": device})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    // A new instance on the same Redis: the old access token still names the account.
    let c = instance(&url, Duration::from_secs(2)).await;
    let (status, me) = send(&c, Method::GET, "/me", Some(&access), None).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["username"], "Ada");
    c.shutdown().await.unwrap();
}

/// Revocation takes effect here at once and elsewhere within the cache's bound.
#[tokio::test]
async fn a_session_ended_on_one_instance_stops_working_on_another_within_the_cache_bound() {
    let redis = RedisServer::start();
    let url = redis.url();
    let ttl = Duration::from_millis(400);
    let a = instance(&url, ttl).await;
    let b = instance(&url, ttl).await;
    let (_, access, _, _) = guest(&a).await;
    // B learns the token and caches it.
    assert_eq!(play_as(&b, Some(&access), &[]).await, StatusCode::OK);
    assert_eq!(
        send(&a, Method::DELETE, "/sessions/current", Some(&access), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let ended = tokio::time::Instant::now();
    // On A, at once.
    assert_eq!(
        play_as(&a, Some(&access), &[]).await,
        StatusCode::UNAUTHORIZED
    );
    // On B, within the bound (plus the time a request takes on a loaded machine).
    loop {
        let status = play_as(&b, Some(&access), &[]).await;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            ended.elapsed() < ttl + Duration::from_millis(500),
            "B still honours the ended session after {:?}",
            ended.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_refresh_token_spent_on_one_instance_is_reuse_on_another() {
    let redis = RedisServer::start();
    let url = redis.url();
    let a = instance(&url, Duration::from_millis(200)).await;
    let b = instance(&url, Duration::from_millis(200)).await;
    let (_, access, refresh, _) = guest(&a).await;
    let (status, rotated) = post(
        &a,
        "/sessions/refresh",
        None,
        json!({"refresh_token": refresh}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_access = rotated["access_token"].as_str().unwrap().to_owned();
    assert_ne!(new_access, access);
    // The old access token died with the rotation; the new one works on B.
    assert_eq!(
        play_as(&b, Some(&access), &[]).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(play_as(&b, Some(&new_access), &[]).await, StatusCode::OK);
    // The spent refresh token presented on B: refused, and the whole session ends.
    let (status, body) = post(
        &b,
        "/sessions/refresh",
        None,
        json!({"refresh_token": refresh}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(
        play_as(&b, Some(&new_access), &[]).await,
        StatusCode::UNAUTHORIZED
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        play_as(&a, Some(&new_access), &[]).await,
        StatusCode::UNAUTHORIZED
    );
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn instances_racing_for_one_username_give_it_to_exactly_one_account() {
    let redis = RedisServer::start();
    let url = redis.url();
    let a = instance(&url, Duration::from_secs(2)).await;
    let b = instance(&url, Duration::from_secs(2)).await;
    let body = json!({"username": "racer", "password": "correct horse battery"});
    let ((first, _), (second, _)) = tokio::join!(
        post(&a, "/accounts", None, body.clone()),
        post(&b, "/accounts", None, body.clone())
    );
    let mut statuses = [first, second];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::CREATED, StatusCode::CONFLICT]);
    // The winner's claim is permanent; a claim only lapses when no account came to hold it.
    assert_eq!(redis.cli(&["pttl", "gg:user:racer"]).trim(), "-1");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// Deleting an account ends its sessions everywhere, and a retried deletion on another
/// instance is answered as the first.
#[tokio::test]
async fn deleting_an_account_on_one_instance_is_seen_by_the_others() {
    let redis = RedisServer::start();
    let url = redis.url();
    let a = instance(&url, Duration::from_millis(200)).await;
    let b = instance(&url, Duration::from_millis(200)).await;
    let (id, access, _, device) = guest(&a).await;
    assert_eq!(play_as(&b, Some(&access), &[]).await, StatusCode::OK);
    assert_eq!(
        send(&a, Method::DELETE, "/me", Some(&access), None).await.0,
        StatusCode::NO_CONTENT
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        send(&b, Method::DELETE, "/me", Some(&access), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        play_as(&b, Some(&access), &[]).await,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = post(&b, "/sessions", None, json!({"device_secret": device})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        b.get(&format!("/players/{id}/stats")).await.status,
        StatusCode::NOT_FOUND
    );
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// On a Redis Cluster every account operation stays within one hash slot per command.
#[tokio::test]
async fn accounts_work_on_a_redis_cluster() {
    let cluster = RedisCluster::start();
    let url = cluster.url();
    let a = instance(&url, Duration::from_millis(200)).await;
    let b = instance(&url, Duration::from_millis(200)).await;
    let (status, body) = post(
        &a,
        "/accounts",
        None,
        json!({"username": "clustered", "password": "correct horse battery"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let refresh = body["session"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, rotated) = post(
        &b,
        "/sessions/refresh",
        None,
        json!({"refresh_token": refresh}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let access = rotated["access_token"].as_str().unwrap().to_owned();
    assert_eq!(play_as(&a, Some(&access), &[]).await, StatusCode::OK);
    let (status, sessions) = send(&b, Method::GET, "/me/sessions", Some(&access), None).await;
    assert_eq!(status, StatusCode::OK, "{sessions}");
    assert_eq!(sessions["sessions"].as_array().unwrap().len(), 1);
    let (status, signed_in) = post(
        &b,
        "/sessions",
        None,
        json!({"username": "clustered", "password": "correct horse battery"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{signed_in}");
    assert_eq!(
        send(&a, Method::DELETE, "/me", Some(&access), None).await.0,
        StatusCode::NO_CONTENT
    );
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// Two instances presented one refresh token at the same moment (a thief and its owner): at
/// most one rotates, the other sees reuse and ends the session, and whatever tokens the
/// rotation handed out stop working too, however the two interleave.
#[tokio::test]
async fn a_refresh_racing_its_reuse_on_another_instance_leaves_no_working_token() {
    let redis = RedisServer::start();
    let url = redis.url();
    let ttl = Duration::from_millis(200);
    let a = instance(&url, ttl).await;
    let b = instance(&url, ttl).await;
    for _ in 0..8 {
        let (_, _, refresh, _) = guest(&a).await;
        let body = json!({"refresh_token": refresh});
        let ((first, first_body), (second, second_body)) = tokio::join!(
            post(&a, "/sessions/refresh", None, body.clone()),
            post(&b, "/sessions/refresh", None, body.clone())
        );
        // At most one rotates; the other is reuse, which ends the session, and a rotation
        // that had not finished when it ended is refused too.
        assert!(
            first != StatusCode::OK || second != StatusCode::OK,
            "{first_body} {second_body}"
        );
        for (status, body) in [(first, &first_body), (second, &second_body)] {
            assert!(
                status == StatusCode::OK || status == StatusCode::UNAUTHORIZED,
                "{status} {body}"
            );
        }
        let winner = [(first, &first_body), (second, &second_body)]
            .into_iter()
            .find(|(status, _)| *status == StatusCode::OK);
        let Some((_, winner)) = winner else {
            continue;
        };
        let access = winner["access_token"].as_str().unwrap().to_owned();
        tokio::time::sleep(ttl + Duration::from_millis(100)).await;
        for app in [&a, &b] {
            assert_eq!(
                play_as(app, Some(&access), &[]).await,
                StatusCode::UNAUTHORIZED
            );
        }
    }
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// A client refreshing in a loop cannot fill Redis: each spent refresh token is remembered
/// for at most 16 access-token lifetimes, not the session's 30 days.
#[tokio::test]
async fn spent_refresh_tokens_are_kept_for_a_bounded_time() {
    let redis = RedisServer::start();
    let url = redis.url();
    let app = spawn_app_with(move |settings| {
        settings.accounts.trust_player_header = false;
        settings.accounts.access_token_lifetime = Duration::from_secs(60);
        settings.store.url = url;
    })
    .await;
    let (_, _, mut refresh, _) = guest(&app).await;
    for _ in 0..5 {
        let (status, rotated) = post(
            &app,
            "/sessions/refresh",
            None,
            json!({"refresh_token": refresh}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{rotated}");
        refresh = rotated["refresh_token"].as_str().unwrap().to_owned();
    }
    let keys = redis.cli(&["--scan", "--pattern", "gg:{ref:*}:spent"]);
    let spent: Vec<&str> = keys.lines().filter(|line| !line.is_empty()).collect();
    assert_eq!(spent.len(), 5, "{keys}");
    for key in spent {
        let ttl: u64 = redis.cli(&["pttl", key]).trim().parse().unwrap();
        assert!(ttl > 0 && ttl <= 16 * 60_000, "{key}: {ttl} ms");
    }
    app.shutdown().await.unwrap();
}

//! Provably fair plays for accounts: every move the computer made is recomputed from the seed
//! revealed afterwards, and the seed is the one whose hash was published before.

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::accounts::{guest, post, send};
use crate::realtime::app;

#[tokio::test]
async fn an_accounts_plays_are_recomputed_from_the_revealed_seed() {
    let app = app().await;
    let (_, token, _, _) = guest(&app).await;
    let (status, before) = send(&app, Method::GET, "/me/fairness", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{before}");
    assert_eq!(before["nonce"], 0);
    let published = before["server_seed_hash"].as_str().unwrap().to_owned();
    let client_seed = before["client_seed"].as_str().unwrap().to_owned();
    let mut plays: Vec<Value> = Vec::new();
    for choice in ["rock", "paper", "scissors", "rock", "rock"] {
        let (status, play) = post(&app, "/play", Some(&token), json!({"choice": choice})).await;
        assert_eq!(status, StatusCode::OK, "{play}");
        plays.push(play);
    }
    let nonces: Vec<u64> = plays.iter().map(|p| p["nonce"].as_u64().unwrap()).collect();
    assert_eq!(nonces, [0, 1, 2, 3, 4]);
    let (status, after) = post(&app, "/me/fairness/rotation", Some(&token), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_ne!(after["server_seed_hash"], published.as_str());
    let revealed = &after["revealed"][0];
    assert_eq!(revealed["server_seed_hash"], published.as_str());
    let seed = game::fairness::from_hex32(revealed["server_seed"].as_str().unwrap()).unwrap();
    assert_eq!(
        game::fairness::to_hex(&game::fairness::seed_commitment(&seed)),
        published
    );
    for play in &plays {
        let nonce = play["nonce"].as_u64().unwrap();
        let recomputed = game::fairness::fair_move(&seed, &client_seed, nonce);
        assert_eq!(play["computer_choice"], recomputed.name(), "nonce {nonce}");
    }
    // A client seed of the player's own, then plays under it.
    let (status, changed) = send(
        &app,
        Method::PUT,
        "/me/fairness",
        Some(&token),
        Some(json!({"client_seed": "lucky 7"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["client_seed"], "lucky 7");
    let (status, refused) = send(
        &app,
        Method::PUT,
        "/me/fairness",
        Some(&token),
        Some(json!({"client_seed": ""})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    // Anonymous plays stay as they were: no nonce.
    let (_, anonymous) = post(&app, "/play", None, json!({"choice": "rock"})).await;
    assert!(anonymous.get("nonce").is_none(), "{anonymous}");
    let (status, _) = send(&app, Method::GET, "/me/fairness", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

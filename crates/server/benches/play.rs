//! Micro-benchmarks of the request path's pure parts: judging, encoding, decoding, and the
//! whole handler. Run with `cargo bench`; figures and their meaning are in docs/BENCHMARKS.md.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use guess_game::game::{Choice, judge};
use guess_game::http::wire::{self, Format, PlayRequest, PlayResponse};
use guess_game::http::{App, Readiness, Request};
use guess_game::telemetry::observe::Observability;

fn judging(c: &mut Criterion) {
    c.bench_function("judge all nine pairs", |b| {
        b.iter(|| {
            for player in Choice::ALL {
                for computer in Choice::ALL {
                    black_box(judge(black_box(player), black_box(computer)));
                }
            }
        })
    });
}

fn encoding(c: &mut Criterion) {
    let response = PlayResponse::new(
        7_400_000_000_000_000_001,
        judge(Choice::Paper, Choice::Rock),
    );
    let mut out = Vec::with_capacity(256);
    let mut group = c.benchmark_group("encode a round");
    group.bench_function("json (hand-written, served)", |b| {
        b.iter(|| wire::encode_play(Format::Json, black_box(&response), &mut out))
    });
    group.bench_function("json (serde_json, for comparison)", |b| {
        b.iter(|| wire::encode(Format::Json, black_box(&response), &mut out))
    });
    group.bench_function("msgpack", |b| {
        b.iter(|| wire::encode_play(Format::MsgPack, black_box(&response), &mut out))
    });
    group.finish();
}

fn decoding(c: &mut Criterion) {
    let json = br#"{"choice":"paper"}"#;
    let msgpack = rmp_serde::to_vec_named(&serde_json::json!({"choice": "paper"})).unwrap();
    let mut group = c.benchmark_group("decode a play");
    group.bench_function("json", |b| {
        b.iter(|| black_box(wire::decode::<PlayRequest>(Format::Json, black_box(json)).is_ok()))
    });
    group.bench_function("msgpack", |b| {
        b.iter(|| {
            black_box(wire::decode::<PlayRequest>(Format::MsgPack, black_box(&msgpack)).is_ok())
        })
    });
    group.finish();
}

fn handling(c: &mut Criterion) {
    let app = App::new(Readiness::new(), 4096, Observability::default());
    let mut out = Vec::with_capacity(256);
    let msgpack = rmp_serde::to_vec_named(&serde_json::json!({"choice": "paper"})).unwrap();
    let mut group = c.benchmark_group("handle POST /play");
    for (name, content_type, body) in [
        (
            "json",
            &b"application/json"[..],
            &br#"{"choice":"paper"}"#[..],
        ),
        ("msgpack", b"application/msgpack", &msgpack[..]),
        (
            "invalid choice",
            b"application/json",
            br#"{"choice":"lizard"}"#,
        ),
    ] {
        let request = Request::new(&http::Method::POST, "/play", Some(content_type), body);
        group.bench_function(name, |b| {
            b.iter(|| {
                drop(black_box(
                    app.handle_admitted(black_box(&request), &mut out),
                ))
            })
        });
    }
    // A named player's round is also queued for the store (the writer is not running here, so
    // past the queue's bound the record is dropped and counted: the same cost on this side).
    let mut request = Request::new(
        &http::Method::POST,
        "/play",
        Some(b"application/json"),
        br#"{"choice":"paper"}"#,
    );
    request.headers.player_id = Some(b"player-1");
    group.bench_function("json, named player (recorded)", |b| {
        b.iter(|| {
            drop(black_box(
                app.handle_admitted(black_box(&request), &mut out),
            ))
        })
    });
    group.finish();
}

/// The computer's move: the OS random source (anonymous plays) against the provably fair draw
/// (an account's plays: HMAC-SHA256 with the key schedule done once per seed). callgrind's CPU
/// has no SHA extensions, so under it SHA-256 runs its portable code; this measures the real one.
fn drawing(c: &mut Criterion) {
    let mut group = c.benchmark_group("draw the computer's move");
    group.bench_function("os random (anonymous)", |b| {
        b.iter(|| black_box(guess_game::game::random::computer_choice()))
    });
    let key = guess_game::game::fairness::SeedKey::new(&[7; 32]);
    let mut nonce = 0u64;
    group.bench_function("hmac-sha256 fair draw (account)", |b| {
        b.iter(|| {
            nonce += 1;
            black_box(key.fair_move(black_box("6f1e0c3b9a8d7e6f5a4b3c2d"), nonce))
        })
    });
    let fair = guess_game::accounts::fairness::FairPlay::default();
    let account = guess_game::accounts::AccountId::from("6f1e0c3b9a8d7e6f5a4b3c2d").unwrap();
    group.bench_function("fair draw with the account's state", |b| {
        b.iter(|| black_box(fair.draw(black_box(&account))))
    });
    group.finish();
}

criterion_group!(benches, judging, encoding, decoding, handling, drawing);
criterion_main!(benches);

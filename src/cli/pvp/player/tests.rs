//! The client's state machine driven by hand-written server messages.

use std::collections::VecDeque;

use super::*;
use game::matches::{EndReason, MatchOutcome, RoundWinner};
use serde_json::json;

fn player(moves: &[Choice]) -> Player {
    let wanted = Wanted {
        mode: Mode::BestOf3,
        opponent: Opponent::Human,
        bot_after_ms: None,
    };
    let plan = Plan::Script {
        moves: moves.to_vec(),
        next: 0,
    };
    Player::new(wanted, plan, "http://127.0.0.1:8080".to_owned())
}

fn message(value: serde_json::Value) -> ServerMessage {
    serde_json::from_value(value).unwrap()
}

fn welcome(token: &str) -> ServerMessage {
    message(
        json!({"type": "welcome", "id": 1, "account": "acc", "name": "ann",
        "resume_token": token, "grace_ms": 30000, "heartbeat_ms": 20000,
        "heartbeat_timeout_ms": 45000, "server_time_ms": 1_000_000, "rating": 1500.0}),
    )
}

fn matched() -> ServerMessage {
    message(
        json!({"type": "matched", "ticket": "t", "match_id": "m1", "seat": "a",
        "mode": "best_of_3", "opponent": {"kind": "human", "name": "bob", "rating": 1500.0},
        "bot_fallback": false, "round_timeout_ms": 10000}),
    )
}

fn event(seq: u64, kind: serde_json::Value) -> ServerMessage {
    message(json!({"type": "event", "match_id": "m1",
        "event": {"seq": seq, "at_ms": 1_000_000, "kind": kind}}))
}

fn opened(seq: u64, round: u32) -> ServerMessage {
    event(
        seq,
        json!({"type": "round_opened", "round": round, "deadline_ms": 1_010_000,
            "bot_commitments": {"a": null, "b": null}}),
    )
}

fn moves_sent(step: &Step) -> Vec<(u32, Choice)> {
    step.send
        .iter()
        .filter_map(|message| match message {
            ClientMessage::Move { round, choice, .. } => Some((*round, *choice)),
            _ => None,
        })
        .collect()
}

/// A player greeted, queued and matched, with round 1 open (seq 1) and its move sent.
fn in_round_one() -> Player {
    let mut player = player(&[Choice::Rock, Choice::Paper]);
    assert!(matches!(
        player.connected().send[..],
        [ClientMessage::Hello { .. }]
    ));
    let step = player.on_server(welcome("tok1"), 1_000_000);
    assert!(
        step.send
            .iter()
            .any(|m| matches!(m, ClientMessage::Queue { .. }))
    );
    player.on_server(matched(), 1_000_000);
    player.on_server(
        event(
            0,
            json!({"type": "match_started", "config": {"match_id": "m1",
            "mode": "best_of_3", "round_timeout_ms": 10000,
            "seats": {"a": "sealed", "b": "sealed"}}}),
        ),
        1_000_000,
    );
    let step = player.on_server(opened(1, 1), 1_000_000);
    assert_eq!(moves_sent(&step), [(1, Choice::Rock)]);
    assert!(
        step.print
            .iter()
            .any(|l| l == "round 1 is open: 10s to move"),
        "{:?}",
        step.print
    );
    player
}

#[test]
fn a_scripted_match_is_played_to_its_result_and_ends_with_the_verify_hint() {
    let mut player = in_round_one();
    let step = player.on_server(
        event(3, json!({"type": "locked", "seat": "b", "round": 1})),
        1_000_100,
    );
    assert_eq!(step.print, ["bob locked in"]);
    let revealed = json!({"type": "round_revealed", "round": 1,
        "moves": {"a": "rock", "b": "scissors"}, "salts": {"a": null, "b": null},
        "winner": RoundWinner::A, "score": {"a": 1, "b": 0}});
    let step = player.on_server(event(5, revealed), 1_000_200);
    assert_eq!(
        step.print,
        ["round 1: you rock, bob scissors → you take the round (score 1-0)"]
    );
    let step = player.on_server(opened(6, 2), 1_000_300);
    assert_eq!(moves_sent(&step), [(2, Choice::Paper)]);
    let ended = json!({"type": "match_ended", "outcome": MatchOutcome::Won(Seat::A),
        "reason": EndReason::Decided, "score": {"a": 2, "b": 0}});
    player.on_server(event(9, ended), 1_000_400);
    let step = player.on_server(
        message(
            json!({"type": "match_result", "match_id": "m1", "result": "won",
            "rating_before": 1500.0, "rating_after": 1662.0, "rated": true}),
        ),
        1_000_500,
    );
    assert_eq!(step.finish, Some(Finish::Played));
    assert_eq!(
        step.print,
        [
            "result: you won 2-0 against bob",
            "rating: 1500 → 1662 (+162)",
            "match id: m1",
            "verify it: guess-game verify --match m1 --server http://127.0.0.1:8080",
        ]
    );
}

#[test]
fn after_a_drop_the_move_waits_for_the_replay_and_is_sent_again_only_if_it_was_lost() {
    let mut player = in_round_one();
    player.disconnected();
    let step = player.connected();
    assert_eq!(
        step.send,
        [ClientMessage::Resume {
            id: step.send[0].id(),
            token: "tok1".to_owned(),
            last_seq: Some(1),
        }]
    );
    let resumed = json!({"type": "resumed", "id": step.send[0].id(), "resume_token": "tok2",
        "match_id": "m1", "seat": "a", "replayed": 2, "complete": true, "queued": false,
        "server_time_ms": 1_000_000});
    let step = player.on_server(message(resumed), 1_000_000);
    assert!(moves_sent(&step).is_empty(), "nothing before the replay");
    assert_eq!(
        step.print,
        ["resumed: replaying the 2 event(s) missed, complete"]
    );
    let step = player.on_server(
        event(2, json!({"type": "opponent_disconnected", "seat": "a"})),
        1_000_000,
    );
    assert_eq!(step.print, ["(replayed) you were disconnected"]);
    assert!(moves_sent(&step).is_empty());
    // The move sent before the drop never arrived: no lock of ours in the replay.
    let step = player.on_server(
        event(3, json!({"type": "opponent_reconnected", "seat": "a"})),
        1_000_000,
    );
    assert_eq!(
        step.print,
        [
            "(replayed) you are back",
            "caught up: round 1, score 0-0",
            "you play rock in round 1"
        ]
    );
    assert_eq!(
        moves_sent(&step),
        [(1, Choice::Rock)],
        "the same move again"
    );
    // A repeat of a seen event changes nothing.
    let step = player.on_server(opened(1, 1), 1_000_000);
    assert!(step.print.is_empty() && step.send.is_empty());
}

#[test]
fn a_refused_resume_greets_anew_and_a_match_gone_meanwhile_is_reported() {
    let mut player = in_round_one();
    player.disconnected();
    let resume_id = player.connected().send[0].id();
    let refused = json!({"type": "error", "id": resume_id, "code": "resume_unknown",
        "message": "the resume token is unknown or expired: send hello"});
    let step = player.on_server(message(refused), 1_000_000);
    assert!(matches!(step.send[..], [ClientMessage::Hello { .. }]));
    let step = player.on_server(welcome("tok3"), 1_000_000);
    let [ClientMessage::Ping { id: barrier }] = step.send[..] else {
        panic!("only the barrier ping: {:?}", step.send);
    };
    let pong = json!({"type": "pong", "id": barrier, "server_time_ms": 1_000_000});
    let step = player.on_server(message(pong), 1_000_000);
    let Some(Finish::Failed(why)) = step.finish else {
        panic!("{step:?}");
    };
    assert!(
        why.starts_with("match m1 ended while this client was away"),
        "{why}"
    );
}

#[test]
fn typed_moves_wait_for_their_round_and_leaving_forfeits() {
    let wanted = Wanted {
        mode: Mode::BestOf1,
        opponent: Opponent::Bot,
        bot_after_ms: None,
    };
    let mut player = Player::new(wanted, Plan::Typed(VecDeque::new()), "s".to_owned());
    player.connected();
    player.on_server(welcome("tok"), 1_000_000);
    let step = player.on_command(Command::Move(Choice::Scissors));
    assert_eq!(step.print, ["scissors is kept for the first round"]);
    player.on_server(matched(), 1_000_000);
    let step = player.on_server(opened(1, 1), 1_000_000);
    assert_eq!(moves_sent(&step), [(1, Choice::Scissors)]);
    let step = player.on_command(Command::Leave);
    assert!(matches!(step.send[..], [ClientMessage::Leave { .. }]));
    assert_eq!(step.finish, None, "the result is still to come");
}

#[test]
fn leaving_the_queue_cancels_the_ticket_even_before_it_is_confirmed() {
    let mut player = player(&[Choice::Rock]);
    player.connected();
    player.on_server(welcome("tok"), 1_000_000);
    let step = player.on_command(Command::Leave);
    assert!(matches!(step.send[..], [ClientMessage::Cancel { .. }]));
    assert_eq!(step.finish, Some(Finish::Left));

    let mut player = self::player(&[Choice::Rock]);
    player.connected();
    player.on_server(welcome("tok"), 1_000_000);
    let queued = json!({"type": "queued", "ticket": "t1", "mode": "best_of_3",
        "opponent": "human", "expires_at_ms": 1_030_000});
    let step = player.on_server(message(queued), 1_000_000);
    assert_eq!(
        step.print,
        ["looking for a person to play best of 3: the ticket lasts 30s"]
    );
    let step = player.on_command(Command::Leave);
    assert!(matches!(step.send[..], [ClientMessage::Cancel { .. }]));
    assert_eq!(step.print, ["left the queue"]);
    assert_eq!(step.finish, Some(Finish::Left));
}

#[test]
fn the_status_line_counts_down_by_the_servers_clock() {
    let mut player = in_round_one();
    let now = 1_000_000 + PING_EVERY_MS;
    let ping = player.tick(now);
    let [ClientMessage::Ping { id }] = ping.send[..] else {
        panic!("{ping:?}");
    };
    // The server's clock runs a second ahead of the local one; the pong says so. Round 1's
    // deadline is at 1_010_000 by the server's clock.
    let pong = json!({"type": "pong", "id": id, "server_time_ms": now + 1_000});
    player.on_server(message(pong), now);
    assert_eq!(
        player.status(now),
        "round 1 · 4s left · you: sent · bob: thinking · score 0-0  [r/p/s, / chat, q]"
    );
}

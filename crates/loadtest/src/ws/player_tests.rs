//! The player state machine, message by message, under paused time. Server messages are
//! written as the protocol's JSON, so these tests also pin the tester to the wire format.

use std::time::Duration;

use serde_json::{Value, json};

use super::*;

const MS: Duration = Duration::from_millis(1);

fn schedule(start: Instant) -> Schedule {
    Schedule {
        mode: Mode::BestOf3,
        interval: 100 * MS,
        stop_at: start + Duration::from_secs(60),
        timeout: Duration::from_secs(5),
        queue_timeout: Duration::from_secs(30),
    }
}

fn message(value: Value) -> ServerMessage {
    serde_json::from_value(value).expect("a protocol message")
}

fn matched(seat: &str) -> ServerMessage {
    message(json!({
        "type": "matched", "ticket": "t", "match_id": "m1", "seat": seat, "mode": "best_of_3",
        "opponent": {"kind": "human", "name": "other", "rating": 1500.0},
        "bot_fallback": false, "round_timeout_ms": 10000
    }))
}

fn event(seq: u64, kind: Value) -> ServerMessage {
    message(
        json!({"type": "event", "match_id": "m1", "event": {"seq": seq, "at_ms": 1, "kind": kind}}),
    )
}

fn opened(seq: u64, round: u32) -> ServerMessage {
    event(
        seq,
        json!({"type": "round_opened", "round": round, "deadline_ms": 10000,
               "bot_commitments": {"a": null, "b": null}}),
    )
}

fn revealed(seq: u64, round: u32) -> ServerMessage {
    event(
        seq,
        json!({"type": "round_revealed", "round": round,
               "moves": {"a": "rock", "b": "paper"}, "salts": {"a": null, "b": null},
               "winner": "b", "score": {"a": 0, "b": 1}}),
    )
}

fn sent_move(wake: Wake) -> (u64, u32) {
    match wake {
        Wake::Send(ClientMessage::Move {
            id: Some(id),
            round,
            ..
        }) => (id, round),
        other => panic!("expected a move, got {other:?}"),
    }
}

/// Two players of this process, matched with each other and in round 1.
struct Table {
    start: Instant,
    schedule: Schedule,
    tally: Tally,
    clocks: MatchClocks,
    a: Player,
    b: Player,
}

impl Table {
    fn seated() -> Table {
        let start = Instant::now();
        let schedule = schedule(start);
        let mut tally = Tally::new(start, schedule.stop_at);
        let mut clocks = MatchClocks::new(2);
        let mut a = Player::new(start, &schedule, 1);
        let mut b = Player::new(start, &schedule, 2);
        for player in [&mut a, &mut b] {
            assert_eq!(player.next_wake(), Some(start));
            let queued = player.on_wake(start, &schedule, &mut tally);
            assert!(
                matches!(queued, Wake::Send(ClientMessage::Queue { .. })),
                "{queued:?}"
            );
        }
        assert!(
            a.on_message(matched("a"), start, &schedule, &mut tally, &mut clocks)
                .is_none()
        );
        b.on_message(matched("b"), start, &schedule, &mut tally, &mut clocks);
        assert_eq!(
            clocks.waiting(),
            0,
            "the second player took the shared clock"
        );
        for player in [&mut a, &mut b] {
            player.on_message(opened(1, 1), start, &schedule, &mut tally, &mut clocks);
        }
        Table {
            start,
            schedule,
            tally,
            clocks,
            a,
            b,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_round_is_timed_from_the_second_move_to_each_players_reveal() {
    let mut t = Table::seated();
    // A round opened at once, but each player moves one interval after it queued.
    assert_eq!(t.a.next_wake(), Some(t.start + 100 * MS));
    assert_eq!(
        t.a.on_wake(t.start + 50 * MS, &t.schedule, &mut t.tally),
        Wake::Nothing
    );
    let (id_a, round) = sent_move(t.a.on_wake(t.start + 100 * MS, &t.schedule, &mut t.tally));
    assert_eq!(round, 1);
    let (_, round) = sent_move(t.b.on_wake(t.start + 130 * MS, &t.schedule, &mut t.tally));
    assert_eq!(round, 1);
    let ack = message(json!({"type": "ack", "id": id_a}));
    t.a.on_message(
        ack,
        t.start + 101 * MS,
        &t.schedule,
        &mut t.tally,
        &mut t.clocks,
    );
    for (player, at) in [(&mut t.a, 132), (&mut t.b, 133)] {
        player.on_message(
            revealed(5, 1),
            t.start + at * MS,
            &t.schedule,
            &mut t.tally,
            &mut t.clocks,
        );
    }
    assert_eq!(t.tally.moves_sent, 2);
    assert_eq!(t.tally.reveal_samples, 2);
    assert_eq!(t.tally.reveal_own_only, 0);
    assert_eq!(t.tally.rounds, 1, "seat A counts the round");
    let reveal = t.tally.reveal_latency();
    assert!((1.99..2.01).contains(&reveal.p50), "{reveal:?}");
    assert!((2.99..3.01).contains(&reveal.max), "{reveal:?}");
    let ack = t.tally.ack_latency();
    assert!((0.99..1.01).contains(&ack.max), "{ack:?}");
    assert_eq!(t.tally.ordering_violations, 0);
}

#[tokio::test(start_paused = true)]
async fn moves_keep_one_per_interval_and_wait_for_the_round_to_open() {
    let mut t = Table::seated();
    let first = t.start + 100 * MS;
    sent_move(t.a.on_wake(first + 3 * MS, &t.schedule, &mut t.tally));
    let at = first + 10 * MS;
    t.a.on_message(revealed(5, 1), at, &t.schedule, &mut t.tally, &mut t.clocks);
    assert_eq!(
        t.a.next_wake(),
        Some(at + t.schedule.timeout),
        "no round open"
    );
    t.a.on_message(opened(6, 2), at, &t.schedule, &mut t.tally, &mut t.clocks);
    // Due one interval after the last move was due, not after it was sent (3 ms late).
    assert_eq!(t.a.next_wake(), Some(first + 100 * MS));
    let (_, round) = sent_move(t.a.on_wake(first + 100 * MS, &t.schedule, &mut t.tally));
    assert_eq!(round, 2);
    // A round that opens after the interval has passed is played at once.
    let late = first + 400 * MS;
    t.a.on_message(
        revealed(9, 2),
        late,
        &t.schedule,
        &mut t.tally,
        &mut t.clocks,
    );
    t.a.on_message(
        opened(10, 3),
        late,
        &t.schedule,
        &mut t.tally,
        &mut t.clocks,
    );
    assert_eq!(t.a.next_wake(), Some(late));
}

#[tokio::test(start_paused = true)]
async fn an_event_out_of_order_is_counted_and_a_finished_match_queues_again() {
    let mut t = Table::seated();
    let now = t.start + 10 * MS;
    t.a.on_message(opened(1, 1), now, &t.schedule, &mut t.tally, &mut t.clocks);
    assert_eq!(t.tally.ordering_violations, 1, "seq 1 twice");
    let ended = event(
        20,
        json!({"type": "match_ended", "outcome": {"won": "b"}, "reason": "decided",
               "score": {"a": 0, "b": 2}}),
    );
    assert!(matches!(t.a.farewell(), Some(ClientMessage::Leave { .. })));
    t.a.on_message(ended, now, &t.schedule, &mut t.tally, &mut t.clocks);
    assert_eq!(t.tally.matches_completed, 1);
    assert_eq!(t.a.farewell(), None, "the match is over");
    let result = message(
        json!({"type": "match_result", "match_id": "m1", "result": "lost",
        "rating_before": 1500.0, "rating_after": 1480.0, "rated": true}),
    );
    let again =
        t.a.on_message(result, now, &t.schedule, &mut t.tally, &mut t.clocks);
    assert!(
        matches!(again, Some(ClientMessage::Queue { .. })),
        "{again:?}"
    );
    assert!(matches!(t.a.farewell(), Some(ClientMessage::Cancel { .. })));
    let expired = message(json!({"type": "queue_expired", "ticket": "t", "reason": "timeout"}));
    let again =
        t.a.on_message(expired, now, &t.schedule, &mut t.tally, &mut t.clocks);
    assert!(matches!(again, Some(ClientMessage::Queue { .. })));
    assert_eq!(t.tally.errors["queue_expired"], 1);
    let refused =
        message(json!({"type": "error", "id": 3, "code": "move_refused", "message": "x"}));
    t.b.on_message(refused, now, &t.schedule, &mut t.tally, &mut t.clocks);
    assert_eq!(t.tally.errors["error_move_refused"], 1);
}

#[tokio::test(start_paused = true)]
async fn a_missing_answer_times_out_and_nothing_is_queued_after_the_stop() {
    let start = Instant::now();
    let schedule = schedule(start);
    let mut tally = Tally::new(start, schedule.stop_at);
    let mut player = Player::new(start, &schedule, 1);
    player.on_wake(start, &schedule, &mut tally);
    let until = start + schedule.queue_timeout;
    assert_eq!(player.next_wake(), Some(until));
    assert_eq!(
        player.on_wake(until, &schedule, &mut tally),
        Wake::TimedOut("timeout_matched".to_owned())
    );

    let mut late = Player::new(schedule.stop_at, &schedule, 2);
    assert_eq!(
        late.on_wake(schedule.stop_at, &schedule, &mut tally),
        Wake::Nothing
    );
    assert_eq!(late.next_wake(), None, "stopped");
}

#[tokio::test(start_paused = true)]
async fn an_opponent_elsewhere_is_timed_from_the_own_move_and_its_clock_is_swept() {
    let start = Instant::now();
    let schedule = schedule(start);
    let mut tally = Tally::new(start, schedule.stop_at);
    let mut clocks = MatchClocks::new(1);
    let mut player = Player::new(start, &schedule, 1);
    player.on_wake(start, &schedule, &mut tally);
    player.on_message(matched("a"), start, &schedule, &mut tally, &mut clocks);
    player.on_message(opened(1, 1), start, &schedule, &mut tally, &mut clocks);
    sent_move(player.on_wake(start + 100 * MS, &schedule, &mut tally));
    player.on_message(
        revealed(4, 1),
        start + 104 * MS,
        &schedule,
        &mut tally,
        &mut clocks,
    );
    assert_eq!(tally.reveal_own_only, 1);
    assert!((3.99..4.01).contains(&tally.reveal_latency().max));
    drop(player);
    assert_eq!(clocks.waiting(), 1);
    let _other = clocks.join("m2");
    assert_eq!(clocks.waiting(), 1, "the dead entry was swept");
}

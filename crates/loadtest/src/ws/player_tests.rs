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

fn resumed(match_id: Option<&str>, replayed: u64, queued: bool) -> ServerMessage {
    message(json!({
        "type": "resumed", "id": 9, "resume_token": "next", "match_id": match_id, "seat": "a",
        "replayed": replayed, "complete": true, "queued": queued, "server_time_ms": 1
    }))
}

fn locked(seq: u64, seat: &str, round: u32) -> ServerMessage {
    event(seq, json!({"type": "locked", "seat": seat, "round": round}))
}

fn result_of(match_id: &str) -> ServerMessage {
    message(
        json!({"type": "match_result", "match_id": match_id, "result": "won",
                   "rating_before": 1500.0, "rating_after": 1510.0, "rated": true}),
    )
}

#[tokio::test(start_paused = true)]
async fn a_resume_replays_without_violations_resends_a_lost_move_and_live_repeats_still_count() {
    let mut t = Table::seated();
    t.a = std::mem::replace(&mut t.a, Player::new(t.start, &t.schedule, 9))
        .with_resume_token(Some("first".to_owned()));
    let now = t.start + 100 * MS;
    sent_move(t.a.on_wake(now, &t.schedule, &mut t.tally));
    // The connection drops before the move's `locked`: the resume names the last seq seen.
    assert!(t.a.wants_resume());
    match t.a.resume(now, &t.schedule) {
        Some(ClientMessage::Resume {
            token, last_seq, ..
        }) => {
            assert_eq!(token, "first");
            assert_eq!(last_seq, Some(1));
        }
        other => panic!("expected a resume, got {other:?}"),
    }
    assert_eq!(
        t.a.on_wake(now + 50 * MS, &t.schedule, &mut t.tally),
        Wake::Nothing,
        "nothing is sent before `resumed`"
    );
    let back = now + 60 * MS;
    t.a.on_message(
        resumed(Some("m1"), 2, false),
        back,
        &t.schedule,
        &mut t.tally,
        &mut t.clocks,
    );
    // The replay repeats seq 1 and brings the opponent's lock; not this seat's.
    for replayed in [opened(1, 1), locked(3, "b", 1)] {
        t.a.on_message(replayed, back, &t.schedule, &mut t.tally, &mut t.clocks);
    }
    assert_eq!(t.tally.ordering_violations, 0);
    assert_eq!(t.tally.continuity.replayed_duplicates, 1);
    assert_eq!(t.tally.continuity.resumes, 1);
    assert_eq!(
        t.tally.continuity.matches_started, 1,
        "still the same match"
    );
    // The move never reached the server: it is sent again once allowed.
    let again = t.a.next_wake().expect("a move is due");
    let (_, round) = sent_move(t.a.on_wake(again, &t.schedule, &mut t.tally));
    assert_eq!(round, 1);
    // On the live stream a repeat is a violation again.
    t.a.on_message(
        locked(3, "b", 1),
        again,
        &t.schedule,
        &mut t.tally,
        &mut t.clocks,
    );
    assert_eq!(t.tally.ordering_violations, 1);
    // The next resume carries the token `resumed` handed out.
    match t.a.resume(again, &t.schedule) {
        Some(ClientMessage::Resume { token, .. }) => assert_eq!(token, "next"),
        other => panic!("expected a resume, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_result_is_counted_once_per_player_and_once_per_match_even_when_replayed() {
    let mut t = Table::seated();
    let now = t.start + 10 * MS;
    for player in [&mut t.a, &mut t.b] {
        let again = player.on_message(
            result_of("m1"),
            now,
            &t.schedule,
            &mut t.tally,
            &mut t.clocks,
        );
        assert!(matches!(again, Some(ClientMessage::Queue { .. })));
    }
    let repeat = t.a.on_message(
        result_of("m1"),
        now,
        &t.schedule,
        &mut t.tally,
        &mut t.clocks,
    );
    assert_eq!(repeat, None);
    let counted = t.tally.continuity;
    assert_eq!(counted.matches_started, 1);
    assert_eq!(counted.results, 2);
    assert_eq!(counted.matches_finished, 1);
    assert!(t.tally.errors.is_empty(), "{:?}", t.tally.errors);
}

#[tokio::test(start_paused = true)]
async fn a_ticket_ended_by_a_drain_is_queued_again_after_the_resume_and_no_error_is_counted() {
    let mut t = Table::seated();
    let now = t.start + 10 * MS;
    let mut player = Player::new(t.start, &t.schedule, 3).with_resume_token(Some("tok".into()));
    player.on_wake(t.start, &t.schedule, &mut t.tally);
    let notice = message(json!({"type": "draining", "deadline_ms": 5}));
    let expired = message(json!({"type": "queue_expired", "ticket": "t", "reason": "draining"}));
    for drained in [notice, expired] {
        assert_eq!(
            player.on_message(drained, now, &t.schedule, &mut t.tally, &mut t.clocks),
            None
        );
    }
    // The instance does not close in time: the player leaves it for the next one.
    let late = now + t.schedule.timeout;
    assert_eq!(player.next_wake(), Some(late));
    assert_eq!(
        player.on_wake(late, &t.schedule, &mut t.tally),
        Wake::Reconnect
    );
    assert!(player.wants_resume());
    assert!(matches!(
        player.resume(late, &t.schedule),
        Some(ClientMessage::Resume { last_seq: None, .. })
    ));
    let again = player.on_message(
        resumed(None, 0, false),
        late,
        &t.schedule,
        &mut t.tally,
        &mut t.clocks,
    );
    assert!(
        matches!(again, Some(ClientMessage::Queue { .. })),
        "{again:?}"
    );
    assert!(t.tally.errors.is_empty(), "{:?}", t.tally.errors);
    assert_eq!(t.tally.continuity.drain_notices, 1);
}

#[tokio::test(start_paused = true)]
async fn a_refused_or_unanswered_resume_loses_the_player() {
    let start = Instant::now();
    let schedule = schedule(start);
    let mut tally = Tally::new(start, schedule.stop_at);
    let mut clocks = MatchClocks::new(2);
    let mut refused = Player::new(start, &schedule, 1).with_resume_token(Some("t".into()));
    refused.resume(start, &schedule);
    let unknown =
        message(json!({"type": "error", "id": 1, "code": "resume_unknown", "message": "spent"}));
    refused.on_message(unknown, start, &schedule, &mut tally, &mut clocks);
    assert_eq!(
        refused.take_failure().as_deref(),
        Some("error_resume_unknown")
    );
    assert!(!refused.wants_resume());

    let mut unanswered = Player::new(start, &schedule, 2).with_resume_token(Some("t".into()));
    unanswered.resume(start, &schedule);
    let until = start + schedule.timeout;
    assert_eq!(unanswered.next_wake(), Some(until));
    assert_eq!(
        unanswered.on_wake(until, &schedule, &mut tally),
        Wake::TimedOut("timeout_resumed".to_owned())
    );
    assert_eq!(tally.continuity.resume_failures, 2);
    assert!(
        !Player::new(start, &schedule, 3).wants_resume(),
        "no token, no resume"
    );
}

#[tokio::test(start_paused = true)]
async fn at_the_stop_a_match_left_still_counts_its_result_and_a_match_racing_the_cancel_is_left() {
    let mut t = Table::seated();
    let now = t.start + 10 * MS;
    assert!(matches!(t.a.farewell(), Some(ClientMessage::Leave { .. })));
    assert!(t.a.lingers());
    let answer = t.a.on_farewell_message(
        result_of("m1"),
        now,
        &t.schedule,
        &mut t.tally,
        &mut t.clocks,
    );
    assert_eq!(answer, Farewell::Done);
    assert_eq!(t.tally.continuity.results, 1);
    assert!(!t.a.lingers());

    let mut queued = Player::new(t.start, &t.schedule, 4);
    queued.on_wake(t.start, &t.schedule, &mut t.tally);
    assert!(matches!(
        queued.farewell(),
        Some(ClientMessage::Cancel { .. })
    ));
    let mut other = matched("a");
    if let ServerMessage::Matched { match_id, .. } = &mut other {
        *match_id = "m2".to_owned();
    }
    let answer = queued.on_farewell_message(other, now, &t.schedule, &mut t.tally, &mut t.clocks);
    assert!(
        matches!(answer, Farewell::Send(ClientMessage::Leave { .. })),
        "{answer:?}"
    );
    assert_eq!(t.tally.continuity.matches_started, 2);
}

#[tokio::test(start_paused = true)]
async fn an_unrequested_welcome_and_a_finished_matchs_repeated_log_are_dropped_not_errors() {
    let mut t = Table::seated();
    let now = t.start + 10 * MS;
    let welcome = message(json!({
        "type": "welcome", "account": "x", "name": "x", "resume_token": "again", "grace_ms": 1,
        "heartbeat_ms": 1, "heartbeat_timeout_ms": 1, "server_time_ms": 1, "rating": 1500.0,
        "match_id": "m1", "queued": false
    }));
    t.a.on_message(welcome, now, &t.schedule, &mut t.tally, &mut t.clocks);
    // The whole log again, then a new event: repeats are dropped, the new one is played, and
    // after it a repeat is a violation again.
    for repeated in [matched("a"), opened(1, 1), revealed(5, 1)] {
        t.a.on_message(repeated, now, &t.schedule, &mut t.tally, &mut t.clocks);
    }
    assert_eq!(t.tally.ordering_violations, 0);
    assert_eq!(t.tally.continuity.unrequested_welcomes, 1);
    assert_eq!(t.tally.continuity.replayed_duplicates, 1);
    assert_eq!(t.tally.rounds, 1, "the new reveal is played");
    t.a.on_message(opened(1, 1), now, &t.schedule, &mut t.tally, &mut t.clocks);
    assert_eq!(t.tally.ordering_violations, 1);
    assert!(matches!(
        t.a.resume(now, &t.schedule),
        Some(ClientMessage::Resume { token, .. }) if token == "again"
    ));

    t.b.on_message(
        result_of("m1"),
        now,
        &t.schedule,
        &mut t.tally,
        &mut t.clocks,
    );
    for repeated in [matched("b"), opened(1, 1), result_of("m1")] {
        t.b.on_message(repeated, now, &t.schedule, &mut t.tally, &mut t.clocks);
    }
    assert_eq!(t.tally.continuity.repeats_after_result, 3);
    assert_eq!(t.tally.continuity.results, 1);
    assert!(t.tally.errors.is_empty(), "{:?}", t.tally.errors);
}

#[tokio::test(start_paused = true)]
async fn a_move_the_server_could_not_take_while_its_match_moved_is_sent_again() {
    let mut t = Table::seated();
    let now = t.start + 100 * MS;
    let (id, _) = sent_move(t.a.on_wake(now, &t.schedule, &mut t.tally));
    let moving = message(json!({"type": "error", "id": id, "code": "not_in_match",
                                "message": "the match is moving to another instance: send it again"}));
    t.a.on_message(moving, now, &t.schedule, &mut t.tally, &mut t.clocks);
    let again = t.a.next_wake().expect("the move is due again");
    assert!(again > now);
    let (resent, round) = sent_move(t.a.on_wake(again, &t.schedule, &mut t.tally));
    assert_eq!(round, 1);
    let refused = message(
        json!({"type": "error", "id": resent, "code": "move_refused",
                                 "message": "seat A has already moved this round"}),
    );
    t.a.on_message(refused, again, &t.schedule, &mut t.tally, &mut t.clocks);
    assert_eq!(t.tally.continuity.moves_resent, 1);
    assert_eq!(t.tally.continuity.resends_refused, 1);
    assert!(t.tally.errors.is_empty(), "{:?}", t.tally.errors);
}

//! The shared state's scripts against a real Redis, one rule at a time: a match's log takes
//! writes only under its current fencing token and only at the length its writer expects (a
//! retried write is not applied twice); a lease is taken only once it expired; the queue hands
//! a ticket to one claimer, the nearest rating within the window, never the claimer's own
//! account or an expired ticket; a result is recorded once.

use std::time::Duration;

use guess_game::game::matches::{Event, EventKind, MatchConfig, Mode, PerSeat, SeatKind};
use guess_game::game::rating::Rating;
use guess_game::realtime::cluster::{
    Claim, Cluster, Meta, Refused, SeatMeta, SharedTicket, Write, Wrote,
};

use crate::redis::RedisServer;

async fn cluster(redis: &RedisServer, lease: Duration) -> Cluster {
    Cluster::connect(&redis.url(), Duration::from_secs(2), lease)
        .await
        .expect("connects")
}

fn meta(match_id: &str) -> Box<Meta> {
    let human = |name: &str| SeatMeta::Human {
        account: name.to_owned(),
        name: name.to_owned(),
        rating: Rating::default(),
    };
    Box::new(Meta {
        config: MatchConfig {
            match_id: match_id.to_owned(),
            mode: Mode::BestOf3,
            round_timeout_ms: 10_000,
            seats: PerSeat::new(SeatKind::Sealed, SeatKind::Sealed),
        },
        seats: PerSeat::new(human("ann"), human("bob")),
        fallback: false,
        started_ms: 1,
    })
}

fn event(seq: u64) -> Event {
    Event {
        seq,
        at_ms: 1_000 + seq,
        kind: EventKind::Locked {
            seat: guess_game::game::Seat::A,
            round: 1,
        },
    }
}

fn create(match_id: &str) -> Write {
    Write::Create {
        match_id: match_id.to_owned(),
        meta: meta(match_id),
        events: Vec::new(),
    }
}

fn append(match_id: &str, fence: u64, base: u64, seqs: std::ops::Range<u64>) -> Write {
    Write::Append {
        match_id: match_id.to_owned(),
        fence,
        base,
        events: seqs.map(event).collect(),
    }
}

#[tokio::test]
async fn a_log_takes_writes_only_under_the_current_fence_and_at_the_expected_length() {
    let redis = RedisServer::start();
    let owner = cluster(&redis, Duration::from_millis(300)).await;
    let other = cluster(&redis, Duration::from_millis(300)).await;
    let id = "m1";
    assert_eq!(
        owner
            .write(&[create(id), append(id, 1, 1, 0..2)])
            .await
            .unwrap(),
        [Wrote::Done, Wrote::Done]
    );
    // A retry of a write whose answer was lost is found in place, not written again.
    assert_eq!(
        owner.write(&[append(id, 1, 1, 0..2)]).await.unwrap(),
        [Wrote::Done]
    );
    // A write at the wrong length is refused.
    assert_eq!(
        owner.write(&[append(id, 1, 5, 5..6)]).await.unwrap(),
        [Wrote::Refused(id.to_owned(), Refused::Diverged)]
    );
    // The lease is held: nobody else takes the match.
    assert!(other.take(id).await.unwrap().is_none());
    assert_eq!(
        other.owners(&[id.to_owned()]).await.unwrap(),
        [Some(owner.instance.clone())]
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Expired: the other instance takes it, with the log so far and a new fencing token.
    let taken = other.take(id).await.unwrap().expect("taken");
    assert_eq!(taken.fence, 2);
    assert_eq!(taken.events.len(), 2);
    assert_eq!(taken.meta.config.match_id, id);
    // The old owner's writes and renewals are refused from now on.
    assert_eq!(
        owner.write(&[append(id, 1, 3, 2..3)]).await.unwrap(),
        [Wrote::Refused(id.to_owned(), Refused::Fenced)]
    );
    assert_eq!(
        owner.renew(&[(id.to_owned(), 1)]).await.unwrap(),
        [id.to_owned()]
    );
    assert_eq!(
        other.write(&[append(id, 2, 3, 2..3)]).await.unwrap(),
        [Wrote::Done]
    );
    assert!(other.renew(&[(id.to_owned(), 2)]).await.unwrap().is_empty());
    let again = other.take(id).await.unwrap();
    assert!(again.is_none(), "held: not taken twice");
}

/// A match gone from Redis is a loss to its renewer (the hub renews only matches whose
/// creation landed: a renewal overtaking its creation in the write queue would read so too);
/// an append keeps the fencing token as long as the log; and a log whose token is gone (evicted,
/// say) is not taken, since counting up from nothing would hand out a token an owner may hold.
#[tokio::test]
async fn a_fencing_token_lives_as_long_as_its_log_and_a_log_without_one_is_not_taken() {
    let redis = RedisServer::start();
    let owner = cluster(&redis, Duration::from_millis(300)).await;
    let other = cluster(&redis, Duration::from_millis(300)).await;
    let id = "m-token";
    assert_eq!(
        owner.renew(&[(id.to_owned(), 1)]).await.unwrap(),
        [id.to_owned()],
        "not in Redis: lost"
    );
    assert_eq!(owner.owners(&[id.to_owned()]).await.unwrap(), [None]);
    assert_eq!(owner.write(&[create(id)]).await.unwrap(), [Wrote::Done]);
    assert!(owner.renew(&[(id.to_owned(), 1)]).await.unwrap().is_empty());
    let fence = "gg:{m:m-token}:fence";
    redis.cli(&["PEXPIRE", fence, "1000"]);
    assert_eq!(
        owner.write(&[append(id, 1, 1, 0..1)]).await.unwrap(),
        [Wrote::Done]
    );
    let ttl: u64 = redis.cli(&["PTTL", fence]).trim().parse().unwrap();
    assert!(
        ttl > 60_000,
        "the append kept the token with the log: {ttl} ms"
    );
    redis.cli(&["DEL", fence]);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        other.take(id).await.unwrap().is_none(),
        "no fencing token: not taken"
    );
}

fn ticket(id: &str, account: &str, rating: f64, expires_ms: u64) -> SharedTicket {
    SharedTicket {
        id: id.to_owned(),
        account: account.to_owned(),
        name: account.to_owned(),
        gateway: "g".to_owned(),
        link: 1,
        mode: Mode::BestOf1,
        opponent: protocol::Opponent::Human,
        moves: protocol::MoveMode::Sealed,
        rating: Rating {
            rating,
            ..Rating::default()
        },
        queued_ms: 0,
        expires_ms,
        bot_at_ms: None,
    }
}

#[tokio::test]
async fn the_queue_hands_the_nearest_live_ticket_of_another_account_to_one_claimer() {
    let redis = RedisServer::start();
    let one = cluster(&redis, Duration::from_secs(3)).await;
    let two = cluster(&redis, Duration::from_secs(3)).await;
    let now = 1_000;
    for t in [
        ticket("far", "far", 1900.0, 10_000),
        ticket("near", "near", 1540.0, 10_000),
        ticket("stale", "stale", 1500.0, 500),
        ticket("mine", "me", 1505.0, 10_000),
    ] {
        assert!(matches!(
            one.claim(&t, 0.0, now, false).await.unwrap(),
            Claim::Queued
        ));
    }
    // Within 100 of 1500: "stale" expired and "mine" is the claimer's own; "near" it is.
    match two
        .claim(&ticket("new", "me", 1500.0, 10_000), 100.0, now, false)
        .await
        .unwrap()
    {
        Claim::Partner(partner) => assert_eq!(partner.id, "near"),
        other => panic!("{other:?}"),
    }
    // Taken once: withdrawing it now finds it gone; "far" is outside the window.
    assert!(!one.withdraw(Mode::BestOf1, "near").await.unwrap());
    assert!(matches!(
        two.claim(&ticket("new2", "other", 1500.0, 10_000), 100.0, now, false).await.unwrap(),
        Claim::Partner(p) if p.id == "mine"
    ));
    assert!(one.withdraw(Mode::BestOf1, "far").await.unwrap());
    assert!(!one.withdraw(Mode::BestOf1, "far").await.unwrap(), "once");
    // A sweep of a ticket someone took already says so instead of queueing it again.
    assert!(matches!(
        one.claim(&ticket("near", "near", 1540.0, 10_000), 100.0, now, true)
            .await
            .unwrap(),
        Claim::Gone
    ));
}

#[tokio::test]
async fn a_ticket_withdrawn_before_its_first_claim_arrives_is_never_queued() {
    // A cancel (or a drain) reaches Redis before the ticket's first claim, still on its way:
    // the claim must not queue a ticket whose player has moved on (another instance would
    // start a match nobody on that side knows of).
    let redis = RedisServer::start();
    let gateway = cluster(&redis, Duration::from_secs(3)).await;
    let other = cluster(&redis, Duration::from_secs(3)).await;
    let now = 1_000;
    assert!(!gateway.withdraw(Mode::BestOf1, "late").await.unwrap());
    assert!(matches!(
        gateway
            .claim(&ticket("late", "ann", 1500.0, 10_000), 0.0, now, false)
            .await
            .unwrap(),
        Claim::Gone
    ));
    assert!(
        matches!(
            other
                .claim(&ticket("bob's", "bob", 1500.0, 10_000), 100.0, now, false)
                .await
                .unwrap(),
            Claim::Queued
        ),
        "nothing to be matched with"
    );
    // The mark expires: it is kept a minute, longer than any ticket lives.
    let ttl: i64 = redis
        .cli(&["PTTL", "gg:{mm}:w:late"])
        .trim()
        .parse()
        .unwrap();
    assert!((50_000..=60_000).contains(&ttl), "{ttl}");
}

#[tokio::test]
async fn what_a_gone_connection_missed_waits_for_the_accounts_next_greeting_once() {
    let redis = RedisServer::start();
    let gateway = cluster(&redis, Duration::from_secs(3)).await;
    let elsewhere = cluster(&redis, Duration::from_secs(3)).await;
    let result = protocol::ServerMessage::MatchResult {
        match_id: "m1".to_owned(),
        result: protocol::Result::Won,
        rating_before: 1500.0,
        rating_after: 1520.0,
        rated: true,
    };
    let missed = Write::Missed {
        account: "ann".to_owned(),
        messages: vec![result.clone()],
        kept_ms: 30_000,
    };
    assert_eq!(gateway.write(&[missed]).await.unwrap(), [Wrote::Done]);
    // Kept a resume grace, no longer.
    let ttl: i64 = redis
        .cli(&["PTTL", "gg:missed:ann"])
        .trim()
        .parse()
        .unwrap();
    assert!((1..=30_000).contains(&ttl), "{ttl}");
    // A hello does not take it; a resume on another instance does, and nobody takes it twice.
    assert!(
        elsewhere
            .locate(None, "ann")
            .await
            .unwrap()
            .missed
            .is_empty()
    );
    let found = elsewhere.locate(Some("token"), "ann").await.unwrap();
    assert_eq!(found.missed, [result]);
    let again = elsewhere.locate(Some("token"), "ann").await.unwrap();
    assert!(again.missed.is_empty());
    assert!(
        gateway
            .locate(Some("other"), "bob")
            .await
            .unwrap()
            .missed
            .is_empty()
    );
}

#[tokio::test]
async fn a_result_and_its_ratings_are_recorded_once() {
    let redis = RedisServer::start();
    let one = cluster(&redis, Duration::from_secs(3)).await;
    let two = cluster(&redis, Duration::from_secs(3)).await;
    let after = Rating {
        rating: 1600.0,
        ..Rating::default()
    };
    let ratings = [("ann".to_owned(), after)];
    assert!(one.record("m9", "ann beat bob", &ratings, 5).await.unwrap());
    assert!(!two.record("m9", "ann beat bob", &ratings, 6).await.unwrap());
    assert_eq!(redis.cli(&["XLEN", "gg:{rt}:results"]).trim(), "1");
    let read = two.ratings(&["ann", "bob"]).await.unwrap();
    assert_eq!(read[0].rating, 1600.0);
    assert_eq!(read[1], Rating::default(), "never rated: the default");
}

//! The hub under paused tokio time: round deadlines, grace windows, ticket lifetimes and the
//! drain, driven by advancing the clock and firing timers, with outboxes standing in for
//! connections.

use std::sync::Arc;
use std::time::Duration;

use game::matches::Mode;
use protocol::{ClientMessage, MoveMode, Opponent, ServerMessage};

use super::experiment::Experiment;
use super::hub::{After, Caller, Hub, Link};
use super::outbox::Outbox;
use super::{Clock, RealtimeSettings};
use crate::accounts::AccountId;

fn hub() -> Arc<Hub> {
    let settings = RealtimeSettings::default();
    let experiment = Experiment::new("test", "adaptive:1").unwrap();
    Arc::new(Hub::new(settings, Clock::new(), experiment))
}

fn caller(name: &str, link: u64) -> Caller {
    Caller {
        account: AccountId::from(name).unwrap(),
        name: name.to_owned(),
        link: Link {
            id: link,
            outbox: Arc::new(Outbox::new(1024)),
        },
    }
}

/// Everything sent to `caller` since the last look.
fn sent(caller: &Caller) -> Vec<ServerMessage> {
    caller.link.outbox.take().messages.into_iter().collect()
}

fn kinds(messages: &[ServerMessage]) -> Vec<String> {
    messages
        .iter()
        .map(|message| match message {
            ServerMessage::Event { event, .. } => {
                let value = serde_json::to_value(&event.kind).unwrap();
                format!("event:{}", value["type"].as_str().unwrap())
            }
            other => other.kind().to_owned(),
        })
        .collect()
}

fn queue(mode: Mode, opponent: Opponent) -> ClientMessage {
    ClientMessage::Queue {
        id: None,
        mode,
        opponent,
        bot_after_ms: None,
        moves: MoveMode::Sealed,
    }
}

fn play(round: u32, choice: game::Choice) -> ClientMessage {
    ClientMessage::Move {
        id: None,
        round,
        choice,
    }
}

async fn advance(hub: &Hub, by: Duration) {
    tokio::time::advance(by).await;
    hub.fire_due();
}

/// Two greeted players matched in `mode`.
fn matched(hub: &Hub, mode: Mode) -> (Caller, Caller) {
    let (a, b) = (caller("a", 1), caller("b", 2));
    for player in [&a, &b] {
        assert_eq!(
            hub.handle(player, false, ClientMessage::Hello { id: None }),
            After::Greeted
        );
        hub.handle(player, true, queue(mode, Opponent::Human));
    }
    for player in [&a, &b] {
        let messages = kinds(&sent(player));
        assert!(messages.contains(&"matched".to_owned()), "{messages:?}");
    }
    (a, b)
}

fn result_of(messages: &[ServerMessage]) -> Option<protocol::Result> {
    messages.iter().find_map(|message| match message {
        ServerMessage::MatchResult { result, .. } => Some(*result),
        _ => None,
    })
}

#[tokio::test(start_paused = true)]
async fn a_missing_move_forfeits_the_round_at_the_deadline() {
    let hub = hub();
    let (a, b) = matched(&hub, Mode::BestOf1);
    hub.handle(&a, true, play(1, game::Choice::Rock));
    advance(&hub, Duration::from_millis(9_999)).await;
    assert!(!kinds(&sent(&b)).contains(&"event:round_revealed".to_owned()));
    advance(&hub, Duration::from_millis(1)).await;
    let to_b = sent(&b);
    assert!(kinds(&to_b).contains(&"event:round_revealed".to_owned()));
    assert_eq!(result_of(&to_b), Some(protocol::Result::Lost));
    assert_eq!(result_of(&sent(&a)), Some(protocol::Result::Won));
}

#[tokio::test(start_paused = true)]
async fn rounds_nobody_plays_end_the_match_as_no_contest() {
    let hub = hub();
    let (a, _b) = matched(&hub, Mode::BestOf3);
    for _ in 0..3 {
        advance(&hub, Duration::from_secs(10)).await;
    }
    let to_a = sent(&a);
    assert_eq!(result_of(&to_a), Some(protocol::Result::NoContest));
    let record = hub.record(&a.account);
    assert_eq!((record.no_contest, record.wins, record.losses), (1, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_player_who_does_not_come_back_forfeits_when_the_grace_window_ends() {
    let hub = hub();
    let (a, b) = matched(&hub, Mode::BestOf5);
    hub.detach(&a.account, a.link.id);
    assert!(kinds(&sent(&b)).contains(&"event:opponent_disconnected".to_owned()));
    // Rounds go on while A is away: B wins them by A's missing moves, 10 s each.
    for round in 1..=2 {
        hub.handle(&b, true, play(round, game::Choice::Paper));
        advance(&hub, Duration::from_secs(10)).await;
    }
    // Grace (30 s from the drop) ends before the match is decided by rounds.
    advance(&hub, Duration::from_secs(10)).await;
    let to_b = sent(&b);
    assert_eq!(
        result_of(&to_b),
        Some(protocol::Result::Won),
        "{:?}",
        kinds(&to_b)
    );
    let finished = hub.census().matches_running;
    assert_eq!(finished, 0);
    // Recorded exactly once, with ratings moved.
    let record = hub.record(&b.account);
    assert_eq!(record.wins, 1);
    assert!(record.rating.rating > 1500.0);
    assert_eq!(hub.record(&a.account).losses, 1);
}

#[tokio::test(start_paused = true)]
async fn coming_back_within_grace_keeps_the_match() {
    let hub = hub();
    let (a, b) = matched(&hub, Mode::BestOf1);
    hub.detach(&a.account, a.link.id);
    advance(&hub, Duration::from_secs(5)).await;
    let back = caller("a", 3);
    hub.handle(&back, false, ClientMessage::Hello { id: None });
    let to_back = kinds(&sent(&back));
    assert_eq!(to_back[0], "welcome");
    assert!(to_back.contains(&"matched".to_owned()));
    assert!(kinds(&sent(&b)).contains(&"event:opponent_reconnected".to_owned()));
    // The old connection's end, arriving late, does not detach the new one.
    hub.detach(&a.account, a.link.id);
    advance(&hub, Duration::from_secs(40)).await;
    hub.handle(&back, true, play(2, game::Choice::Rock));
    assert_eq!(hub.census().away, 0);
}

#[tokio::test(start_paused = true)]
async fn a_ticket_ends_with_a_bot_or_an_expiry_never_silently() {
    let hub = hub();
    let alone = caller("alone", 1);
    hub.handle(&alone, false, ClientMessage::Hello { id: None });
    hub.handle(&alone, true, queue(Mode::BestOf3, Opponent::Human));
    advance(&hub, Duration::from_secs(29)).await;
    assert!(!kinds(&sent(&alone)).contains(&"queue_expired".to_owned()));
    advance(&hub, Duration::from_secs(1)).await;
    assert!(kinds(&sent(&alone)).contains(&"queue_expired".to_owned()));

    let patient = caller("patient", 2);
    hub.handle(&patient, false, ClientMessage::Hello { id: None });
    hub.handle(&patient, true, queue(Mode::BestOf3, Opponent::Any));
    advance(&hub, Duration::from_secs(10)).await;
    let messages = sent(&patient);
    let fallback = messages.iter().any(|message| {
        matches!(
            message,
            ServerMessage::Matched {
                bot_fallback: true,
                ..
            }
        )
    });
    assert!(fallback, "{:?}", kinds(&messages));
}

#[tokio::test(start_paused = true)]
async fn a_drain_ends_running_matches_as_no_contest_and_closes_connections() {
    let hub = hub();
    let (a, b) = matched(&hub, Mode::BestOf5);
    let waiting = caller("waiting", 3);
    hub.handle(&waiting, false, ClientMessage::Hello { id: None });
    hub.handle(&waiting, true, queue(Mode::BestOf1, Opponent::Human));
    sent(&waiting);
    let deadline = hub.now_ms() + 8_000;
    hub.drain(deadline);
    let to_waiting = kinds(&sent(&waiting));
    assert!(
        to_waiting.contains(&"queue_expired".to_owned()),
        "{to_waiting:?}"
    );
    assert!(to_waiting.contains(&"draining".to_owned()));
    let refused = caller("late", 4);
    hub.handle(&refused, false, ClientMessage::Hello { id: None });
    hub.handle(&refused, true, queue(Mode::BestOf1, Opponent::Bot));
    assert!(
        sent(&refused)
            .iter()
            .any(|m| matches!(m, ServerMessage::Error { code, .. } if code == "draining"))
    );
    advance(&hub, Duration::from_secs(8)).await;
    assert_eq!(result_of(&sent(&a)), Some(protocol::Result::NoContest));
    assert_eq!(b.link.outbox.take().close.map(|c| c.code), Some(1001));
    assert_eq!(hub.census().matches_running, 0);
}

#[tokio::test(start_paused = true)]
async fn a_second_connection_takes_over_and_the_first_is_told() {
    let hub = hub();
    let first = caller("a", 1);
    hub.handle(&first, false, ClientMessage::Hello { id: None });
    let second = caller("a", 2);
    hub.handle(&second, false, ClientMessage::Hello { id: None });
    assert_eq!(
        first.link.outbox.take().close.map(|c| c.code),
        Some(protocol::close::REPLACED)
    );
    assert!(second.link.outbox.take().close.is_none());
}

#[tokio::test(start_paused = true)]
async fn an_adaptive_bot_match_publishes_commitments_that_open() {
    let hub = hub();
    let player = caller("p", 1);
    hub.handle(&player, false, ClientMessage::Hello { id: None });
    hub.handle(&player, true, queue(Mode::BestOf5, Opponent::Bot));
    let mut match_id = String::new();
    for round in 1..=20 {
        hub.handle(&player, true, play(round, game::Choice::Rock));
        let messages = sent(&player);
        for message in &messages {
            if let ServerMessage::Matched { match_id: id, .. } = message {
                match_id = id.clone();
            }
        }
        if result_of(&messages).is_some() {
            break;
        }
    }
    let transcript = hub.transcript(&match_id).expect("kept");
    game::matches::verify_transcript(&transcript.events).expect("every commitment opens");
}

#[tokio::test(start_paused = true)]
async fn a_seat_that_keeps_dropping_forfeits_instead_of_growing_the_log() {
    let hub = hub();
    let (a, b) = matched(&hub, Mode::BestOf5);
    let mut link = 10;
    for _ in 0..20 {
        hub.detach(&a.account, if link == 10 { a.link.id } else { link });
        link += 1;
        let back = caller("a", link);
        hub.handle(&back, false, ClientMessage::Hello { id: None });
    }
    assert_eq!(result_of(&sent(&b)), None, "20 drops are tolerated");
    hub.detach(&a.account, link);
    assert_eq!(result_of(&sent(&b)), Some(protocol::Result::Won));
}

#[tokio::test(start_paused = true)]
async fn a_long_replay_is_never_refused_as_a_slow_consumer() {
    let hub = hub();
    let (a, b) = matched(&hub, Mode::BestOf5);
    // Ties score nothing: 60 tied rounds make a log of a few hundred public events.
    for round in 1..=60 {
        hub.handle(&a, true, play(round, game::Choice::Rock));
        hub.handle(&b, true, play(round, game::Choice::Rock));
        sent(&a);
        sent(&b);
    }
    let back = Caller {
        link: Link {
            id: 99,
            outbox: Arc::new(Outbox::new(16)),
        },
        ..caller("a", 99)
    };
    hub.handle(&back, false, ClientMessage::Hello { id: None });
    let taken = back.link.outbox.take();
    assert!(taken.close.is_none(), "{:?}", taken.close);
    assert!(taken.messages.len() > 200, "{}", taken.messages.len());
}

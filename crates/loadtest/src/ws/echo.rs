//! `ws-echo`: the frames `ws-play` sends (a `move` message each, JSON in a masked text frame)
//! sent at the same pace to a WebSocket echo server, such as bench/ws-crates' tokio-tungstenite
//! `server`. The echo server's CPU per frame is what a WebSocket stack costs with no game
//! behind it: the yardstick for the game server's CPU per relayed move.
//!
//! Connection k sends its j-th frame at `start + (k/N + j)·interval`; each echo is timed from
//! its frame's send. No account, no greeting: an echo server knows neither.
//!
//! With `--relay` the server is a relay (bench/ws-crates' `server relay`): it pairs connections
//! in the order they open and sends every frame back to its sender and on to the partner, the
//! least a server relaying a move between two players does. Each frame's id then carries its
//! connection's number in its upper 32 bits, so a connection tells its own echoes (timed) from
//! its partner's frames (counted).

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use futures_util::StreamExt;
use game::Choice;
use protocol::ClientMessage;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::play::{measure_usage, play_figures};
use super::report::WsReport;
use super::tally::Tally;
use super::target::{self, Socket};
use super::{EchoArgs, Setup, connection_notes, open_all, warmup_for};

/// Frames sent whose echo has not come back yet, per connection; more means the echo server
/// is not keeping up, and the connection stops sending until it catches up.
const MAX_IN_FLIGHT: usize = 64;

pub async fn run(setup: &Setup, args: &EchoArgs) -> Result<(WsReport, bool), String> {
    let connection_args = &args.connections;
    let mut errors = BTreeMap::new();
    let (sockets, connect_s) = open_all(
        &setup.targets,
        "/",
        None,
        connection_args.connections,
        connection_args,
        false,
        &mut errors,
    )
    .await;
    let open = sockets.len();
    let warmup = warmup_for(args.warmup, args.move_interval);
    let start = Instant::now() + Duration::from_millis(100);
    let measure_from = start + warmup;
    let stop_at = measure_from + args.duration;
    let tally = Rc::new(RefCell::new(Tally::new(measure_from, stop_at)));
    let local = tokio::task::LocalSet::new();
    let usage = local
        .run_until(async {
            let mut tasks: Vec<_> = sockets
                .into_iter()
                .map(|opened| opened.socket)
                .enumerate()
                .map(|(index, socket)| {
                    let first = start + args.move_interval.mul_f64(index as f64 / open as f64);
                    let pace = Pace {
                        first,
                        interval: args.move_interval,
                        stop_at,
                        seed: index as u64 + 1,
                        owner: args.relay.then_some(index as u64 + 1),
                    };
                    tokio::task::spawn_local(echo(socket, pace, Rc::clone(&tally)))
                })
                .collect();
            let usage = measure_usage(setup, measure_from, stop_at).await;
            for task in &mut tasks {
                if tokio::time::timeout_at(stop_at + Duration::from_secs(3), task)
                    .await
                    .is_err()
                {
                    break;
                }
            }
            for task in tasks {
                task.abort();
            }
            usage
        })
        .await?;
    let tally = tally.borrow();
    for (kind, count) in &tally.errors {
        *errors.entry(kind.clone()).or_default() += count;
    }
    let mut report = setup.report("ws-echo", connection_args);
    report.connections_open = open;
    report.connect_s = connect_s;
    report.warmup_s = warmup.as_secs_f64();
    report.duration_s = args.duration.as_secs_f64();
    report.errors_by_kind = errors;
    let play = play_figures(&tally, open, args.move_interval, args.duration);
    report.cpu = usage.map(|usage| usage.cpu(setup, &play, args.duration));
    let mut failed = connection_notes(&mut report);
    if play.acks == 0 {
        report
            .notes
            .push("no frame was echoed in the window".to_owned());
        failed = true;
    }
    if !tally.errors.is_empty() {
        report
            .notes
            .push("connections failed; see errors".to_owned());
        failed = true;
    }
    report.play = Some(play);
    Ok((report, failed))
}

struct Pace {
    first: Instant,
    interval: Duration,
    stop_at: Instant,
    seed: u64,
    /// With `--relay`: this connection's number, in the upper half of its frames' ids.
    owner: Option<u64>,
}

/// The connection number a relayed frame's id carries, if it is a move with an id.
fn frame_owner(text: &str) -> Option<u64> {
    match serde_json::from_str::<ClientMessage>(text) {
        Ok(ClientMessage::Move { id: Some(id), .. }) => Some(id >> 32),
        _ => None,
    }
}

async fn echo(mut socket: Socket, pace: Pace, tally: Rc<RefCell<Tally>>) {
    let mut rng = fastrand::Rng::with_seed(pace.seed);
    let mut next_send = pace.first;
    let mut in_flight: VecDeque<Instant> = VecDeque::new();
    let mut id = 0u64;
    let timer = tokio::time::sleep_until(next_send.min(pace.stop_at));
    tokio::pin!(timer);
    loop {
        let frame = tokio::select! {
            biased;
            frame = socket.next() => Some(frame),
            () = &mut timer => None,
        };
        let now = Instant::now();
        if now >= pace.stop_at {
            break;
        }
        match frame {
            Some(Some(Ok(Message::Text(text)))) => {
                let mut tally = tally.borrow_mut();
                tally.frame_received(now);
                let own = pace
                    .owner
                    .is_none_or(|owner| frame_owner(&text) == Some(owner));
                if own && let Some(sent) = in_flight.pop_front() {
                    tally.ack(now, now - sent);
                }
                continue;
            }
            Some(Some(Ok(Message::Close(frame)))) => {
                tally.borrow_mut().error(target::close_kind(frame.as_ref()));
                return;
            }
            Some(Some(Ok(_))) => continue,
            Some(Some(Err(error))) => {
                tally.borrow_mut().error(target::error_kind(&error));
                return;
            }
            Some(None) => {
                tally.borrow_mut().error("closed_without_close_frame");
                return;
            }
            None => {}
        }
        // The timer fired: send this interval's frame, unless too many are unanswered.
        next_send += pace.interval;
        timer.as_mut().reset(next_send.min(pace.stop_at));
        if in_flight.len() >= MAX_IN_FLIGHT {
            tally.borrow_mut().error("echo_behind");
            continue;
        }
        id += 1;
        let message = ClientMessage::Move {
            id: Some(pace.owner.map_or(id, |owner| owner << 32 | id)),
            round: (id % 3) as u32 + 1,
            choice: Choice::ALL[rng.usize(..Choice::ALL.len())],
        };
        if let Err(kind) = target::send(&mut socket, &message).await {
            tally.borrow_mut().error(kind);
            return;
        }
        in_flight.push_back(now);
        let mut tally = tally.borrow_mut();
        tally.move_sent(now);
        tally.frame_sent(now);
    }
    target::close(&mut socket).await;
}

//! `ws-play`: N greeted players queueing for matches against each other and playing them at a
//! steady move rate (`player.rs` decides what each sends), for a bounded time.
//!
//! Timeline: accounts, then every connection opened and greeted (not measured); then the
//! players start, spread over one move interval; the warm-up passes; the window is measured
//! (and the server's CPU time read at both ends); at its end every player stops and closes.
//! A player whose connection fails or whose awaited answer does not come is lost: counted, and
//! the run exits 1.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use futures_util::StreamExt;
use game::matches::Mode;
use protocol::ServerMessage;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::player::{MatchClocks, Player, Schedule, Wake};
use super::report::{Cpu, Play, WsReport};
use super::tally::Tally;
use super::target::{self, Socket};
use super::{PlayArgs, Setup, accounts, connection_notes, open_all, usage, warmup_for};

/// Between the last connection opening and the first player starting.
const START_DELAY: Duration = Duration::from_millis(100);
/// How long past the window's end the players get to close before they are cut.
const CLOSE_GRACE: Duration = Duration::from_secs(3);

struct Shared {
    schedule: Schedule,
    tally: RefCell<Tally>,
    clocks: RefCell<MatchClocks>,
    lost: Cell<u64>,
}

impl Shared {
    fn lose(&self, kind: String) {
        self.tally.borrow_mut().error(kind);
        self.lost.set(self.lost.get() + 1);
    }
}

pub async fn run(setup: &Setup, args: &PlayArgs) -> Result<(WsReport, bool), String> {
    let connection_args = &args.connections;
    let count = connection_args.connections;
    let tokens = accounts::gather(
        &setup.target,
        count,
        args.accounts.tokens_file.as_deref(),
        args.accounts.setup_concurrency,
        connection_args.timeout,
    )
    .await?;
    let mut errors = BTreeMap::new();
    let (sockets, connect_s) = open_all(
        &setup.target,
        "/ws",
        Some(&tokens.tokens),
        count,
        connection_args,
        true,
        &mut errors,
    )
    .await;
    let players = sockets.len();
    let warmup = warmup_for(args.warmup, args.move_interval);
    let start = Instant::now() + START_DELAY;
    let measure_from = start + warmup;
    let stop_at = measure_from + args.duration;
    let mode = match args.best_of {
        1 => Mode::BestOf1,
        5 => Mode::BestOf5,
        _ => Mode::BestOf3,
    };
    let shared = Rc::new(Shared {
        schedule: Schedule {
            mode,
            interval: args.move_interval,
            stop_at,
            timeout: connection_args.timeout,
            queue_timeout: args.queue_timeout,
        },
        tally: RefCell::new(Tally::new(measure_from, stop_at)),
        clocks: RefCell::new(MatchClocks::new(players)),
        lost: Cell::new(0),
    });
    eprintln!(
        "{players} players: a move each every {:?}, {:.0}s warm-up, {:.0}s measured",
        args.move_interval,
        warmup.as_secs_f64(),
        args.duration.as_secs_f64()
    );
    let local = tokio::task::LocalSet::new();
    let usage = local
        .run_until(async {
            let mut tasks: Vec<_> = sockets
                .into_iter()
                .enumerate()
                .map(|(index, socket)| {
                    let offset = args.move_interval.mul_f64(index as f64 / players as f64);
                    let seed = (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    let player = Player::new(start + offset, &shared.schedule, seed);
                    tokio::task::spawn_local(drive(socket, player, Rc::clone(&shared)))
                })
                .collect();
            let usage = measure_usage(setup, measure_from, stop_at).await;
            for task in &mut tasks {
                if tokio::time::timeout_at(stop_at + CLOSE_GRACE, task)
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
    let tally = shared.tally.borrow();
    for (kind, count) in &tally.errors {
        *errors.entry(kind.clone()).or_default() += count;
    }
    let mut report = setup.report("ws-play", connection_args);
    report.connections_open = players;
    report.tokens_reused = tokens.reused;
    report.guests_created = tokens.created;
    report.guest_creation_s = tokens.creation_seconds;
    report.connect_s = connect_s;
    report.warmup_s = warmup.as_secs_f64();
    report.duration_s = args.duration.as_secs_f64();
    report.errors_by_kind = errors;
    let play = play_figures(&tally, players, args.move_interval, args.duration);
    report.cpu = usage.map(|usage| usage.cpu(setup, &play, args.duration));
    let mut failed = connection_notes(&mut report);
    failed |= play_notes(&mut report, &play, shared.lost.get());
    report.play = Some(play);
    Ok((report, failed))
}

/// The window's figures from the tally.
pub(super) fn play_figures(
    tally: &Tally,
    connections: usize,
    interval: Duration,
    duration: Duration,
) -> Play {
    let seconds = duration.as_secs_f64().max(1e-9);
    Play {
        move_interval_ms: interval.as_secs_f64() * 1000.0,
        offered_moves_per_s: connections as f64 / interval.as_secs_f64(),
        moves: tally.moves_sent,
        moves_per_s: tally.moves_sent as f64 / seconds,
        rounds: tally.rounds,
        matches_completed: tally.matches_completed,
        matches_per_s: tally.matches_completed as f64 / seconds,
        move_to_result_ms: tally.reveal_latency(),
        move_to_result_samples: tally.reveal_samples,
        move_to_result_own_only: tally.reveal_own_only,
        ack_ms: tally.ack_latency(),
        acks: tally.acks(),
        ordering_violations: tally.ordering_violations,
        missed_moves: tally.missed_moves,
        frames_sent: tally.frames_sent,
        frames_received: tally.frames_received,
    }
}

/// Notes on what went wrong; true when the run failed.
fn play_notes(report: &mut WsReport, play: &Play, lost: u64) -> bool {
    let mut failed = false;
    if lost > 0 {
        report.notes.push(format!(
            "{lost} players were lost (closed, failed or timed out); see errors"
        ));
        failed = true;
    }
    if play.ordering_violations > 0 {
        report.notes.push(format!(
            "{} match events arrived with a seq not above the previous one",
            play.ordering_violations
        ));
        failed = true;
    }
    if play.move_to_result_samples == 0 {
        report
            .notes
            .push("no round was revealed in the window".to_owned());
        failed = true;
    }
    if play.moves_per_s < play.offered_moves_per_s * 0.9 {
        report.notes.push(format!(
            "{:.0} moves/s of the {:.0}/s asked for: matchmaking gaps between matches, or the \
             server or this tester is saturated (see CPU)",
            play.moves_per_s, play.offered_moves_per_s
        ));
    }
    failed
}

/// The server's and the tester's CPU time at both ends of the window.
pub(super) struct WindowUsage {
    server: Option<(usage::Sample, usage::Sample)>,
    tester: Option<(usage::Sample, usage::Sample)>,
}

impl WindowUsage {
    pub(super) fn cpu(&self, setup: &Setup, play: &Play, duration: Duration) -> Cpu {
        let seconds = duration.as_secs_f64().max(1e-9);
        let spent = |pair: &Option<(usage::Sample, usage::Sample)>| {
            pair.map_or(0.0, |(from, to)| {
                (to.cpu_seconds - from.cpu_seconds).max(0.0)
            })
        };
        let server = spent(&self.server);
        let frames = (play.frames_sent + play.frames_received).max(1) as f64;
        Cpu {
            source: setup.probe.source(),
            server_cpu_s: server,
            server_cores: server / seconds,
            server_us_per_move: server * 1e6 / play.moves.max(1) as f64,
            server_us_per_frame: server * 1e6 / frames,
            tester_cores: spent(&self.tester) / seconds,
        }
    }
}

/// Samples at `from` and at `to`; None without a server probe.
pub(super) async fn measure_usage(
    setup: &Setup,
    from: Instant,
    to: Instant,
) -> Result<Option<WindowUsage>, String> {
    tokio::time::sleep_until(from).await;
    let server_from = setup.probe.sample().await?;
    let tester_from = usage::own();
    tokio::time::sleep_until(to).await;
    let server_to = setup.probe.sample().await?;
    let tester_to = usage::own();
    let Some(server) = server_from.zip(server_to) else {
        return Ok(None);
    };
    Ok(Some(WindowUsage {
        server: Some(server),
        tester: tester_from.zip(tester_to),
    }))
}

/// Runs one player on its connection until the stop, then closes.
async fn drive(mut socket: Socket, mut player: Player, shared: Rc<Shared>) {
    let schedule = &shared.schedule;
    let timer = tokio::time::sleep_until(schedule.stop_at);
    tokio::pin!(timer);
    // The timer is reset only when the wake-up time changes: most messages leave it alone.
    let mut armed = Some(schedule.stop_at);
    loop {
        let wake = player
            .next_wake()
            .map_or(schedule.stop_at, |at| at.min(schedule.stop_at));
        if armed != Some(wake) {
            timer.as_mut().reset(wake);
            armed = Some(wake);
        }
        let frame = tokio::select! {
            biased;
            frame = socket.next() => Some(frame),
            () = &mut timer => {
                armed = None;
                None
            }
        };
        let now = Instant::now();
        if now >= schedule.stop_at {
            break;
        }
        let outgoing = match frame {
            None => match player.on_wake(now, schedule, &mut shared.tally.borrow_mut()) {
                Wake::Send(message) => message,
                Wake::Nothing => continue,
                Wake::TimedOut(kind) => {
                    shared.lose(kind);
                    break;
                }
            },
            Some(Some(Ok(Message::Text(text)))) => {
                let mut tally = shared.tally.borrow_mut();
                tally.frame_received(now);
                let Ok(message) = serde_json::from_str::<ServerMessage>(&text) else {
                    tally.error("undecodable_message");
                    continue;
                };
                let mut clocks = shared.clocks.borrow_mut();
                match player.on_message(message, now, schedule, &mut tally, &mut clocks) {
                    Some(message) => message,
                    None => continue,
                }
            }
            Some(Some(Ok(Message::Close(frame)))) => {
                shared.lose(target::close_kind(frame.as_ref()));
                return;
            }
            Some(Some(Ok(Message::Binary(_)))) => {
                shared.tally.borrow_mut().error("unexpected_binary_frame");
                continue;
            }
            Some(Some(Ok(_))) => continue,
            Some(Some(Err(error))) => {
                shared.lose(target::error_kind(&error));
                return;
            }
            Some(None) => {
                shared.lose("closed_without_close_frame".to_owned());
                return;
            }
        };
        if let Err(kind) = target::send(&mut socket, &outgoing).await {
            shared.lose(kind);
            return;
        }
        shared.tally.borrow_mut().frame_sent(now);
    }
    if let Some(farewell) = player.farewell() {
        let _ = target::send(&mut socket, &farewell).await;
    }
    target::close(&mut socket).await;
}

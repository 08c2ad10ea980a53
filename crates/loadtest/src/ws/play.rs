//! `ws-play`: N greeted players queueing for matches against each other and playing them at a
//! steady move rate (`player.rs` decides what each sends), for a bounded time.
//!
//! Timeline: accounts, then every connection opened and greeted (not measured); then the
//! players start, spread over one move interval; the warm-up passes; the window is measured
//! (and the server's CPU time read at both ends); at its end every player stops and closes.
//! A player whose connection fails or whose awaited answer does not come is lost: counted, and
//! the run exits 1. A player whose instance goes away resumes on another (`session.rs`); that
//! is counted (`resumes`) but is not an error.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use game::matches::Mode;
use tokio::time::Instant;

use super::clocks::MatchClocks;
use super::player::{Player, Schedule};
use super::report::{Cpu, Play, WsReport};
use super::session::{self, Identity, Shared};
use super::tally::Tally;
use super::{PlayArgs, Setup, accounts, connection_notes, open_all, usage, warmup_for};

/// Between the last connection opening and the first player starting.
const START_DELAY: Duration = Duration::from_millis(100);
/// How long past the window's end the players get to leave, wait for their results
/// (`session.rs`'s farewell) and close before they are cut.
const CLOSE_GRACE: Duration = Duration::from_secs(7);

pub async fn run(setup: &Setup, args: &PlayArgs) -> Result<(WsReport, bool), String> {
    let connection_args = &args.connections;
    let count = connection_args.connections;
    let tokens = accounts::gather(
        setup.targets.first(),
        count,
        args.accounts.tokens_file.as_deref(),
        args.accounts.setup_concurrency,
        connection_args.timeout,
    )
    .await?;
    let mut errors = BTreeMap::new();
    let (sockets, connect_s) = open_all(
        &setup.targets,
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
        targets: setup.targets.clone(),
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
                .map(|(started, opened)| {
                    let offset = args.move_interval.mul_f64(started as f64 / players as f64);
                    let seed = (opened.index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    let player = Player::new(start + offset, &shared.schedule, seed)
                        .with_resume_token(opened.resume_token);
                    let identity = Identity {
                        index: opened.index,
                        token: tokens.tokens[opened.index].clone(),
                        target: opened.target,
                    };
                    let shared = Rc::clone(&shared);
                    tokio::task::spawn_local(session::drive(
                        opened.socket,
                        player,
                        identity,
                        shared,
                    ))
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
    let continuity = tally.continuity;
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
        matches_started: continuity.matches_started,
        results: continuity.results,
        matches_finished: continuity.matches_finished,
        resumes: continuity.resumes,
        resume_failures: continuity.resume_failures,
        replayed_duplicates: continuity.replayed_duplicates,
        drain_notices: continuity.drain_notices,
        seat_disconnects: continuity.seat_disconnects,
        unrequested_welcomes: continuity.unrequested_welcomes,
        repeats_after_result: continuity.repeats_after_result,
        moves_resent: continuity.moves_resent,
        resends_refused: continuity.resends_refused,
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
    if play.unrequested_welcomes > 0 || play.repeats_after_result > 0 {
        // Harmless to the players (the tester drops the repeats) but not the protocol's
        // design, so said, without failing the run.
        report.notes.push(format!(
            "the server sent {} welcomes nobody asked for and {} messages of matches already \
             over (see PROTOCOL.md: neither should happen)",
            play.unrequested_welcomes, play.repeats_after_result
        ));
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

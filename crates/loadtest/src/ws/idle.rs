//! `ws-idle`: N authenticated, greeted WebSocket connections held open doing nothing, and the
//! server's resident memory before and with them open.
//!
//! Order: the accounts are made (or their tokens read) first, then the baseline is read, so
//! the figure per connection is the connection's alone (its socket, its task, its place in
//! the hub), not the account's. Every connection is read throughout the hold, so the server's
//! pings are answered and none is closed for a missed heartbeat; one the server closes anyway
//! is counted by its close code.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::report::{Memory, WsReport};
use super::target::{self, Socket};
use super::{IdleArgs, Setup, accounts, connection_notes, open_all, usage};

/// How often the server's memory is read during the hold, for its peak.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

pub async fn run(setup: &Setup, args: &IdleArgs) -> Result<(WsReport, bool), String> {
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
    let before = setup.probe.baseline().await?;
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
    let open = sockets.len();
    let settled = Instant::now() + args.settle;
    let hold_until = settled + args.duration;
    let closed = Rc::new(RefCell::new(BTreeMap::new()));
    let local = tokio::task::LocalSet::new();
    let memory = local
        .run_until(async {
            let mut tasks: Vec<_> = sockets
                .into_iter()
                .map(|opened| opened.socket)
                .map(|socket| {
                    // The end sample is read at `hold_until`; connections close after it.
                    let close_at = hold_until + Duration::from_millis(500);
                    tokio::task::spawn_local(hold(socket, close_at, Rc::clone(&closed)))
                })
                .collect();
            eprintln!(
                "holding {open} connections for {:.0}s",
                (hold_until - Instant::now()).as_secs_f64()
            );
            let memory = watch_memory(setup, before, settled, hold_until, open).await;
            let hard_stop = hold_until + Duration::from_secs(3);
            for task in &mut tasks {
                if tokio::time::timeout_at(hard_stop, task).await.is_err() {
                    break;
                }
            }
            for task in tasks {
                task.abort();
            }
            memory
        })
        .await?;
    for (kind, count) in closed.borrow().iter() {
        *errors.entry(kind.clone()).or_default() += count;
    }
    let mut report = setup.report("ws-idle", connection_args);
    report.connections_open = open;
    report.tokens_reused = tokens.reused;
    report.guests_created = tokens.created;
    report.guest_creation_s = tokens.creation_seconds;
    report.connect_s = connect_s;
    report.duration_s = args.duration.as_secs_f64();
    report.errors_by_kind = errors;
    let mut failed = connection_notes(&mut report);
    let lost: u64 = closed.borrow().values().sum();
    if lost > 0 {
        report
            .notes
            .push(format!("{lost} connections ended during the hold"));
        failed = true;
    }
    match memory {
        Some(memory) => report.memory = Some(memory),
        None => report
            .notes
            .push("no --server-pid or --metrics-url: the server's memory was not read".to_owned()),
    }
    Ok((report, failed))
}

/// Reads the server's memory once the connections have settled, then each second until the
/// end of the hold.
async fn watch_memory(
    setup: &Setup,
    before: Option<usage::Sample>,
    settled: Instant,
    hold_until: Instant,
    open: usize,
) -> Result<Option<Memory>, String> {
    tokio::time::sleep_until(settled).await;
    let Some(before) = before else {
        tokio::time::sleep_until(hold_until).await;
        return Ok(None);
    };
    let Some(with_open) = setup.probe.sample().await? else {
        return Ok(None);
    };
    let mut peak = with_open.rss_bytes;
    let mut end = with_open.rss_bytes;
    let mut next = settled + SAMPLE_EVERY;
    while next <= hold_until {
        tokio::time::sleep_until(next).await;
        if let Some(sample) = setup.probe.sample().await? {
            peak = peak.max(sample.rss_bytes);
            end = sample.rss_bytes;
        }
        next += SAMPLE_EVERY;
    }
    let per_connection =
        with_open.rss_bytes.saturating_sub(before.rss_bytes) as f64 / open.max(1) as f64;
    Ok(Some(Memory {
        source: setup.probe.source(),
        before_bytes: before.rss_bytes,
        open_bytes: with_open.rss_bytes,
        peak_bytes: peak,
        end_bytes: end,
        per_connection_bytes: per_connection,
        per_connection_kib: per_connection / 1024.0,
        tester_rss_bytes: usage::own().map_or(0, |own| own.rss_bytes),
    }))
}

/// Reads (answering pings) until `close_at`, then closes; a close by the server before that
/// is counted by its kind.
async fn hold(mut socket: Socket, close_at: Instant, closed: Rc<RefCell<BTreeMap<String, u64>>>) {
    let deadline = tokio::time::sleep_until(close_at);
    tokio::pin!(deadline);
    loop {
        let frame = tokio::select! {
            frame = socket.next() => frame,
            () = &mut deadline => break,
        };
        let ended = match frame {
            Some(Ok(Message::Close(frame))) => target::close_kind(frame.as_ref()),
            Some(Ok(_)) => continue,
            Some(Err(error)) => target::error_kind(&error),
            None => "closed_without_close_frame".to_owned(),
        };
        *closed.borrow_mut().entry(ended).or_default() += 1;
        return;
    }
    target::close(&mut socket).await;
}

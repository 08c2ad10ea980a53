//! One `ws-play` player's life across connections: the frames of its connection fed to its
//! state machine (`player.rs`), and, when its instance goes away (a close with 1001 or 1012,
//! or the connection dropping), a new connection to the next target and a `resume`.
//!
//! Reconnecting tries the targets after the player's own in turn, with a short backoff after
//! each failed attempt, for at most `--timeout`: an instance that was restarted elsewhere (a
//! new port) or is dead is refused at once and the next one is tried. A player that finds no
//! instance in time, or whose resume is refused or unanswered, is lost (an error); a resume
//! that works is counted apart and is not one.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use futures_util::StreamExt;
use protocol::ServerMessage;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::clocks::MatchClocks;
use super::player::{Farewell, Player, Schedule, Wake};
use super::tally::Tally;
use super::target::{self, Socket};
use super::targets::Targets;

/// The first pause after a failed reconnection attempt; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_millis(800);
/// How long a player waits, after its farewell, for its match's result or its ticket's end.
/// Within `play.rs`'s close grace, so the result of a match left at the stop is still counted.
/// Longer than a match takes to move when its instance is lost (a 3 s lease and a second to
/// notice), so a match moving at the stop still ends within it.
const FAREWELL_WAIT: Duration = Duration::from_secs(5);

/// What every player of a run shares (one thread drives them all).
pub struct Shared {
    pub schedule: Schedule,
    pub targets: Targets,
    pub tally: RefCell<Tally>,
    pub clocks: RefCell<MatchClocks>,
    pub lost: Cell<u64>,
}

impl Shared {
    fn lose(&self, kind: String) {
        self.tally.borrow_mut().error(kind);
        self.lost.set(self.lost.get() + 1);
    }
}

/// Who the player is on the wire: its connection number (which picks its source address),
/// its access token, and the target it is connected to.
pub struct Identity {
    pub index: usize,
    pub token: String,
    pub target: usize,
}

/// How one connection ended.
enum Ended {
    /// The run stopped; the connection is still open.
    Stopped,
    /// The instance went away: resume elsewhere if the player still plays. The kind is what
    /// is counted if the player cannot.
    Dropped(String),
    /// The player's own instance asked it to go (draining) and did not close in time.
    Leaving,
    /// Lost for good; the kind is counted.
    Lost(String),
}

/// Runs one player until the stop, across as many connections as its instances need, then
/// says goodbye and closes.
pub async fn drive(
    mut socket: Socket,
    mut player: Player,
    mut identity: Identity,
    shared: Rc<Shared>,
) {
    let schedule = &shared.schedule;
    loop {
        let ended = play_connection(&mut socket, &mut player, &shared).await;
        let kind = match ended {
            Ended::Stopped => break,
            Ended::Lost(kind) => return shared.lose(kind),
            Ended::Leaving => {
                target::close(&mut socket).await;
                "closed_not_in_time".to_owned()
            }
            Ended::Dropped(kind) => kind,
        };
        let now = Instant::now();
        if now >= schedule.stop_at {
            return;
        }
        if !player.wants_resume() {
            return shared.lose(kind);
        }
        socket = match reconnect(&mut identity, &shared).await {
            Ok(socket) => socket,
            Err(kind) => {
                shared.tally.borrow_mut().continuity.resume_failures += 1;
                return shared.lose(kind);
            }
        };
        let Some(resume) = player.resume(Instant::now(), schedule) else {
            return shared.lose(kind);
        };
        if let Err(kind) = target::send(&mut socket, &resume).await {
            shared.tally.borrow_mut().continuity.resume_failures += 1;
            return shared.lose(format!("resume_{kind}"));
        }
    }
    farewell(&mut socket, &mut player, &shared).await;
    target::close(&mut socket).await;
}

/// Opens a connection to the targets after the player's current one, in turn, until one
/// takes it or `timeout` has passed.
async fn reconnect(identity: &mut Identity, shared: &Shared) -> Result<Socket, String> {
    let timeout = shared.schedule.timeout;
    let deadline = Instant::now() + timeout;
    let mut backoff = FIRST_BACKOFF;
    let mut last = "no_instance".to_owned();
    loop {
        identity.target = shared.targets.after(identity.target);
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("resume_{last}"));
        }
        let opening = shared.targets.get(identity.target).open(
            identity.index,
            "/ws",
            Some(&identity.token),
            left,
        );
        match opening.await {
            Ok(socket) => return Ok(socket),
            Err(kind) => last = kind,
        }
        tokio::time::sleep(backoff.min(deadline.saturating_duration_since(Instant::now()))).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Feeds one connection's frames and the player's timers to the player until the stop or
/// until the connection ends.
async fn play_connection(socket: &mut Socket, player: &mut Player, shared: &Shared) -> Ended {
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
        let outgoing = match frame {
            None if now >= schedule.stop_at => return Ended::Stopped,
            None => match player.on_wake(now, schedule, &mut shared.tally.borrow_mut()) {
                Wake::Send(message) => message,
                Wake::Nothing => continue,
                Wake::Reconnect => return Ended::Leaving,
                Wake::TimedOut(kind) => return Ended::Lost(kind),
            },
            Some(Some(Ok(Message::Text(text)))) => {
                let mut tally = shared.tally.borrow_mut();
                tally.frame_received(now);
                let Ok(message) = serde_json::from_str::<ServerMessage>(&text) else {
                    tally.error("undecodable_message");
                    continue;
                };
                let mut clocks = shared.clocks.borrow_mut();
                let answer = player.on_message(message, now, schedule, &mut tally, &mut clocks);
                if let Some(kind) = player.take_failure() {
                    return Ended::Lost(kind);
                }
                // A message that arrives at the stop is still played (a result is counted),
                // but nothing more is sent but the farewell.
                match answer {
                    _ if now >= schedule.stop_at => return Ended::Stopped,
                    Some(message) => message,
                    None => continue,
                }
            }
            Some(Some(Ok(Message::Close(frame)))) => {
                let kind = target::close_kind(frame.as_ref());
                return match target::close_invites_resume(frame.as_ref()) {
                    true => Ended::Dropped(kind),
                    false => Ended::Lost(kind),
                };
            }
            Some(Some(Ok(Message::Binary(_)))) => {
                shared.tally.borrow_mut().error("unexpected_binary_frame");
                continue;
            }
            Some(Some(Ok(_))) => continue,
            Some(Some(Err(error))) => {
                let kind = target::error_kind(&error);
                return match target::is_drop(&error) {
                    true => Ended::Dropped(kind),
                    false => Ended::Lost(kind),
                };
            }
            Some(None) => return Ended::Dropped("closed_without_close_frame".to_owned()),
        };
        if let Err(kind) = target::send(socket, &outgoing).await {
            // What was sent is recovered after the resume: a lost move is sent again, a lost
            // queue is queued again.
            return Ended::Dropped(kind);
        }
        shared.tally.borrow_mut().frame_sent(now);
    }
}

/// Leaves the match or the queue, and waits a little for what that brings: the result of the
/// match left, or the ticket's end (or a match that raced the cancel, which is left too).
async fn farewell(socket: &mut Socket, player: &mut Player, shared: &Shared) {
    let schedule = &shared.schedule;
    if let Some(message) = player.farewell()
        && target::send(socket, &message).await.is_err()
    {
        return;
    }
    let deadline = Instant::now() + FAREWELL_WAIT;
    while player.lingers() {
        let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, socket.next()).await else {
            return;
        };
        let Message::Text(text) = frame else {
            continue;
        };
        let Ok(message) = serde_json::from_str::<ServerMessage>(&text) else {
            continue;
        };
        let now = Instant::now();
        let answer = player.on_farewell_message(
            message,
            now,
            schedule,
            &mut shared.tally.borrow_mut(),
            &mut shared.clocks.borrow_mut(),
        );
        match answer {
            Farewell::Send(message) => {
                if target::send(socket, &message).await.is_err() {
                    return;
                }
            }
            Farewell::Wait => {}
            Farewell::Done => return,
        }
    }
}

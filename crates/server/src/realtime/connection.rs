//! One upgraded connection's task: reads frames, hands messages to the hub, writes what its
//! outbox holds, pings, and closes with the right code.
//!
//! Memory: an idle connection holds its socket, this task's state and an empty outbox. Bytes
//! are read into a per-thread buffer and decoded there; only a frame that arrived in part is
//! copied out (and freed once complete); written bytes go through a per-thread buffer too,
//! and only what the socket would not take is kept (bounded). So an idle connection costs no
//! buffer at all (docs/BENCHMARKS.md, "WebSocket crates").
//!
//! Every wait has a deadline: `hello` within the hello timeout, a pong within the heartbeat
//! timeout, a stuck write within the write timeout, the closing handshake within a second.

use std::cell::RefCell;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::net::Stream;
use protocol::{ClientMessage, MAX_MESSAGE_BYTES, ServerMessage, close, codes};

use super::frames::{self, Kind};
use super::hub::{After, Caller, Hub, Link};
use super::metrics::Closed;
use super::outbox::{CloseOrder, Outbox};
use super::{Codec, RealtimeSettings, Session};

/// Bytes read per wake-up at most; a frame is at most 4 KiB, so several fit.
const READ_CHUNK: usize = 16 * 1024;
/// Unwritten bytes a connection may hold before it is closed as a slow consumer.
const MAX_PENDING_WRITE: usize = 256 * 1024;

thread_local! {
    /// Read and decode space shared by the worker thread's connections.
    static READ: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(READ_CHUNK + MAX_MESSAGE_BYTES + 16));
    /// Encoded frames on their way to a socket.
    static WRITE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(16 * 1024));
    /// One message's encoding before its frame header is known.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(1024));
}

/// Detaches the player from the hub however the task ends (closed, failed or dropped).
struct Detach {
    hub: Arc<Hub>,
    caller: Caller,
}

impl Drop for Detach {
    fn drop(&mut self) {
        self.hub.detach(&self.caller.account, self.caller.link.id);
    }
}

pub async fn serve(hub: Arc<Hub>, stream: Stream, leftover: Vec<u8>, session: Session, link: u64) {
    let outbox = Arc::new(Outbox::new(hub.settings().outbox_capacity));
    let caller = Caller {
        account: session.account,
        name: session.name,
        link: Link { id: link, outbox },
    };
    let detach = Detach {
        hub: Arc::clone(&hub),
        caller: caller.clone(),
    };
    let mut connection = Connection {
        hub,
        stream,
        codec: session.codec,
        caller,
        partial: leftover,
        fragment: None,
        pending: Vec::new(),
        greeted: false,
        last_pong: Instant::now(),
        overflowed: false,
    };
    let why = connection.run().await;
    connection.hub.metrics.closed(why);
    drop(detach);
}

struct Connection {
    hub: Arc<Hub>,
    stream: Stream,
    codec: Codec,
    caller: Caller,
    /// A frame received in part.
    partial: Vec<u8>,
    /// A fragmented message so far: its kind and payload (at most 4 KiB).
    fragment: Option<(Kind, Vec<u8>)>,
    /// Bytes the socket would not take yet.
    pending: Vec<u8>,
    greeted: bool,
    last_pong: Instant,
    /// More was to be written than [`MAX_PENDING_WRITE`] allows: a slow consumer.
    overflowed: bool,
}

/// The settings a connection's loop reads, copied out of [`RealtimeSettings`].
#[derive(Clone, Copy)]
struct Deadlines {
    hello_timeout: Duration,
    heartbeat_interval: Duration,
    heartbeat_timeout: Duration,
    write_timeout: Duration,
}

impl Deadlines {
    fn of(settings: &RealtimeSettings) -> Self {
        Deadlines {
            hello_timeout: settings.hello_timeout,
            heartbeat_interval: settings.heartbeat_interval,
            heartbeat_timeout: settings.heartbeat_timeout,
            write_timeout: settings.write_timeout,
        }
    }
}

/// What reading left to do.
enum Step {
    Continue,
    /// The peer closed (EOF or a close frame answered).
    PeerClosed,
    Close(CloseOrder, Closed),
}

impl Connection {
    async fn run(&mut self) -> Closed {
        // The four durations only: a clone of the whole settings (the season schedule's
        // parsed cron among them, ~5 KiB of heap) was held by every open connection.
        let settings = Deadlines::of(self.hub.settings());
        let started = Instant::now();
        let hello_deadline = started + settings.hello_timeout;
        let mut next_ping = started + settings.heartbeat_interval;
        let mut write_stuck_since: Option<Instant> = None;
        // One timer, moved only when the next deadline changes: registering a new one on every
        // wake-up cost a timer-wheel insertion and removal per message (docs/BENCHMARKS.md).
        let sleep = tokio::time::sleep_until(next_ping);
        tokio::pin!(sleep);
        // Frames sent before the 101 arrived (the client did not wait): serve them first.
        if !self.partial.is_empty() {
            match self.read(false) {
                Step::Continue => {}
                Step::PeerClosed => return Closed::Client,
                Step::Close(order, why) => return Box::pin(self.close(order, why)).await,
            }
        }
        loop {
            if let Some(step) = self.flush_outbox() {
                match step {
                    Step::Close(order, why) => return Box::pin(self.close(order, why)).await,
                    Step::PeerClosed => return Closed::Client,
                    Step::Continue => {}
                }
            }
            // Checked every turn, not only when the timer wins the select below: a client
            // that keeps the socket readable must not outrun its deadlines.
            let now = Instant::now();
            if self.overflowed {
                let order = CloseOrder {
                    code: close::SLOW_CONSUMER,
                    reason: "too much unread",
                };
                return Box::pin(self.close(order, Closed::SlowConsumer)).await;
            }
            if !self.greeted && now >= hello_deadline {
                let order = CloseOrder {
                    code: close::HELLO_TIMEOUT,
                    reason: "no hello in time",
                };
                return Box::pin(self.close(order, Closed::HelloTimeout)).await;
            }
            // Over TLS, records the socket did not take wait in the session as well.
            let writing = !self.pending.is_empty() || self.stream.has_buffered_output();
            if !writing {
                write_stuck_since = None;
            } else if write_stuck_since.is_none() {
                write_stuck_since = Some(Instant::now());
            }
            let mut deadline = next_ping.min(self.last_pong + settings.heartbeat_timeout);
            if !self.greeted {
                deadline = deadline.min(hello_deadline);
            }
            if let Some(since) = write_stuck_since {
                deadline = deadline.min(since + settings.write_timeout);
            }
            if sleep.deadline() != deadline {
                sleep.as_mut().reset(deadline);
            }
            let outbox = Arc::clone(&self.caller.link.outbox);
            let buffered_input = self.stream.has_buffered_input();
            let socket = self.stream.tcp();
            tokio::select! {
                biased;
                // Nothing is read while written bytes wait: the client's own sends then back
                // up in TCP instead of in this connection's memory.
                ready = std::future::poll_fn(|cx| if buffered_input {
                    std::task::Poll::Ready(Ok(()))
                } else {
                    socket.poll_read_ready(cx)
                }), if !writing => {
                    if ready.is_err() {
                        return Closed::Client;
                    }
                    match self.read(true) {
                        Step::Continue => {}
                        Step::PeerClosed => {
                            self.write_pending_now();
                            return Closed::Client;
                        }
                        Step::Close(order, why) => return Box::pin(self.close(order, why)).await,
                    }
                }
                () = outbox.wait(), if !writing => {}
                writable = socket.writable(), if writing => {
                    if writable.is_err() {
                        return Closed::Client;
                    }
                    if let Err(error) = self.stream.try_flush()
                        && error.kind() != io::ErrorKind::WouldBlock
                    {
                        return Closed::Client;
                    }
                    self.write_pending_now();
                }
                () = &mut sleep => {
                    let now = Instant::now();
                    if !self.greeted && now >= hello_deadline {
                        let order = CloseOrder { code: close::HELLO_TIMEOUT, reason: "no hello in time" };
                        return Box::pin(self.close(order, Closed::HelloTimeout)).await;
                    }
                    if now >= self.last_pong + settings.heartbeat_timeout {
                        // The peer is gone or stuck: the close frame goes out in case it is
                        // only slow, and the closing handshake waits at most a second.
                        let order = CloseOrder { code: close::HEARTBEAT_TIMEOUT, reason: "no pong in time" };
                        return Box::pin(self.close(order, Closed::Heartbeat)).await;
                    }
                    if write_stuck_since.is_some_and(|since| now >= since + settings.write_timeout) {
                        return Closed::SlowConsumer;
                    }
                    if now >= next_ping {
                        next_ping = now + settings.heartbeat_interval;
                        WRITE.with_borrow_mut(|out| {
                            out.clear();
                            frames::encode(out, Kind::Ping, b"");
                            self.write_now(out);
                        });
                    }
                }
            }
        }
    }

    /// Reads what the socket has (when `from_socket`) after any partial frame, and handles
    /// every complete frame.
    fn read(&mut self, from_socket: bool) -> Step {
        READ.with_borrow_mut(|buffer| {
            buffer.clear();
            buffer.extend_from_slice(&self.partial);
            self.partial = Vec::new();
            let mut eof = false;
            if from_socket {
                while buffer.len() < READ_CHUNK {
                    match self.stream.try_read_buf(buffer) {
                        Ok(0) => {
                            eof = true;
                            break;
                        }
                        Ok(_) => {}
                        Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => return Step::PeerClosed,
                    }
                }
            }
            let mut position = 0;
            let step = loop {
                let decoded = match frames::decode(&mut buffer[position..], MAX_MESSAGE_BYTES) {
                    Ok(Some(decoded)) => decoded,
                    Ok(None) => break Step::Continue,
                    Err(violation) => {
                        let why = if violation.0 == close::TOO_BIG {
                            "message too big"
                        } else {
                            "protocol error"
                        };
                        break Step::Close(
                            CloseOrder {
                                code: violation.0,
                                reason: why,
                            },
                            Closed::Protocol,
                        );
                    }
                };
                let start = position + decoded.payload.start;
                let end = position + decoded.payload.end;
                position += decoded.length;
                let step = self.frame(decoded.kind, decoded.fin, &buffer[start..end]);
                if !matches!(step, Step::Continue) {
                    break step;
                }
            };
            if matches!(step, Step::Continue) {
                if eof {
                    return Step::PeerClosed;
                }
                if position < buffer.len() {
                    self.partial = buffer[position..].to_vec();
                }
            }
            // The shared buffer keeps its capacity, bounded by one read and one frame.
            step
        })
    }

    fn frame(&mut self, kind: Kind, fin: bool, payload: &[u8]) -> Step {
        let protocol_error = |reason| {
            Step::Close(
                CloseOrder {
                    code: close::PROTOCOL_ERROR,
                    reason,
                },
                Closed::Protocol,
            )
        };
        match kind {
            Kind::Ping => {
                WRITE.with_borrow_mut(|out| {
                    out.clear();
                    frames::encode(out, Kind::Pong, payload);
                    self.write_now(out);
                });
                Step::Continue
            }
            Kind::Pong => {
                self.last_pong = Instant::now();
                Step::Continue
            }
            Kind::Close => match frames::close_code(payload) {
                Ok(code) => {
                    WRITE.with_borrow_mut(|out| {
                        out.clear();
                        match code {
                            Some(code) => frames::encode(out, Kind::Close, &code.to_be_bytes()),
                            None => frames::encode(out, Kind::Close, b""),
                        }
                        self.write_now(out);
                    });
                    Step::PeerClosed
                }
                Err(violation) => Step::Close(
                    CloseOrder {
                        code: violation.0,
                        reason: "invalid close frame",
                    },
                    Closed::Protocol,
                ),
            },
            Kind::Text | Kind::Binary => {
                if self.fragment.is_some() {
                    return protocol_error("a new message before the last one ended");
                }
                if fin {
                    return self.message(kind, payload);
                }
                self.fragment = Some((kind, payload.to_vec()));
                Step::Continue
            }
            Kind::Continuation => {
                let Some((first, mut so_far)) = self.fragment.take() else {
                    return protocol_error("a continuation with no message to continue");
                };
                if so_far.len() + payload.len() > MAX_MESSAGE_BYTES {
                    return Step::Close(
                        CloseOrder {
                            code: close::TOO_BIG,
                            reason: "message too big",
                        },
                        Closed::Protocol,
                    );
                }
                so_far.extend_from_slice(payload);
                if fin {
                    self.message(first, &so_far)
                } else {
                    self.fragment = Some((first, so_far));
                    Step::Continue
                }
            }
        }
    }

    /// A complete data message: JSON in a text frame, MessagePack in a binary one.
    fn message(&mut self, kind: Kind, payload: &[u8]) -> Step {
        let parsed = match kind {
            Kind::Text => {
                if std::str::from_utf8(payload).is_err() {
                    return Step::Close(
                        CloseOrder {
                            code: close::INVALID_PAYLOAD,
                            reason: "text frames must be UTF-8",
                        },
                        Closed::Protocol,
                    );
                }
                serde_json::from_slice::<ClientMessage>(payload).map_err(|e| e.to_string())
            }
            _ => rmp_serde::from_slice::<ClientMessage>(payload).map_err(|e| e.to_string()),
        };
        let message = match parsed {
            Ok(message) => message,
            Err(reason) => {
                self.hub.metrics.message_in(None);
                self.caller.link.outbox.push(ServerMessage::Error {
                    id: None,
                    code: codes::INVALID_MESSAGE.to_owned(),
                    message: reason,
                });
                return Step::Continue;
            }
        };
        self.hub.metrics.message_in(Some(message.kind()));
        if !self.greeted && self.caller.link.outbox.greeted() {
            self.greeted = true;
        }
        match self.hub.handle(&self.caller, self.greeted, message) {
            After::Continue => Step::Continue,
            After::Greeted => {
                self.greeted = true;
                Step::Continue
            }
            After::Close(order) => Step::Close(order, Closed::Policy),
        }
    }

    /// Encodes and writes what the outbox holds; a close order ends the connection after the
    /// messages queued before it.
    fn flush_outbox(&mut self) -> Option<Step> {
        if !self.pending.is_empty() {
            // Behind on writing: leave messages in the outbox (it bounds them).
            return None;
        }
        let taken = self.caller.link.outbox.take();
        if taken.messages.is_empty() && taken.close.is_none() {
            return None;
        }
        WRITE.with_borrow_mut(|out| {
            out.clear();
            SCRATCH.with_borrow_mut(|scratch| {
                for message in &taken.messages {
                    scratch.clear();
                    let encoded = match self.codec {
                        Codec::Json => serde_json::to_writer(&mut *scratch, message).is_ok(),
                        Codec::MessagePack => {
                            rmp_serde::encode::write_named(&mut *scratch, message).is_ok()
                        }
                    };
                    if !encoded {
                        continue;
                    }
                    self.hub.metrics.message_out(message.kind());
                    let kind = match self.codec {
                        Codec::Json => Kind::Text,
                        Codec::MessagePack => Kind::Binary,
                    };
                    frames::encode(out, kind, scratch);
                }
                if scratch.capacity() > 64 * 1024 {
                    *scratch = Vec::with_capacity(1024);
                }
            });
            self.write_now(out);
            if out.capacity() > 256 * 1024 {
                *out = Vec::with_capacity(16 * 1024);
            }
        });
        if self.pending.len() > MAX_PENDING_WRITE {
            return Some(Step::Close(
                CloseOrder {
                    code: close::SLOW_CONSUMER,
                    reason: "too much unread",
                },
                Closed::SlowConsumer,
            ));
        }
        taken.close.map(|order| {
            let why = match order.code {
                close::REPLACED => Closed::Replaced,
                close::SLOW_CONSUMER => Closed::SlowConsumer,
                close::GOING_AWAY => Closed::Draining,
                close::POLICY => Closed::Policy,
                _ => Closed::Other,
            };
            Step::Close(order, why)
        })
    }

    /// Writes `bytes` after anything pending, without waiting; keeps what the socket refused.
    fn write_now(&mut self, bytes: &[u8]) {
        if !self.pending.is_empty() {
            // Bounded here too: pongs to a ping flood are written without the outbox.
            if self.pending.len() + bytes.len() > MAX_PENDING_WRITE {
                self.overflowed = true;
                return;
            }
            self.pending.extend_from_slice(bytes);
            return;
        }
        let mut written = 0;
        while written < bytes.len() {
            match self.stream.try_write(&bytes[written..]) {
                Ok(0) => break,
                Ok(n) => written += n,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return,
            }
        }
        if written < bytes.len() {
            self.pending.extend_from_slice(&bytes[written..]);
        }
    }

    /// Retries the pending bytes once the socket is writable.
    fn write_pending_now(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        self.write_now(&pending);
    }

    /// Sends a close frame after what is pending, then waits (at most a second) for the peer's
    /// close or end of stream, so the frame is not destroyed by a reset.
    async fn close(&mut self, order: CloseOrder, why: Closed) -> Closed {
        let mut frame = Vec::with_capacity(128);
        frames::encode_close(&mut frame, order.code, order.reason);
        let mut bytes = std::mem::take(&mut self.pending);
        bytes.extend_from_slice(&frame);
        let deadline = Instant::now() + std::time::Duration::from_secs(1);
        let _ = tokio::time::timeout_at(deadline, self.stream.write_all(&bytes)).await;
        let _ = tokio::time::timeout_at(deadline, self.stream.shutdown()).await;
        let mut discard = [0u8; 512];
        let mut discarded = 0;
        while discarded < 64 * 1024 {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut discard)).await {
                Ok(Ok(n)) if n > 0 => discarded += n,
                _ => break,
            }
        }
        why
    }
}

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;

//! The access log: one JSON line per request (or a sample of them), written off the request
//! path.
//!
//! A worker formats each line straight into a per-thread chunk. Full chunks (64 KiB), and every
//! chunk a worker flushes on its one-second tick, go through a bounded channel to one writer thread
//! that writes them to stdout. The request path never waits and makes no system call for the
//! log: if the channel is full the chunk is dropped and its lines counted in
//! `guess_game_access_log_dropped_total`. Only sane, validated values reach a line (static
//! route names, numbers, hex ids, request ids limited to `[A-Za-z0-9._:-]`), so nothing needs
//! escaping and no body or secret is ever written.

use std::cell::RefCell;
use std::io::Write;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::completed::Completed;
use super::metrics;

/// A chunk is shipped once it holds this much (about 250 lines). Each shipment costs the
/// writer a wake-up and a write, so larger chunks mean fewer system calls per request.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks waiting for the writer; beyond this, new chunks are dropped (4 MiB of lines).
const QUEUE_CHUNKS: usize = 64;

struct Chunk {
    bytes: Vec<u8>,
    lines: u64,
}

thread_local! {
    static CHUNK: RefCell<Chunk> = const { RefCell::new(Chunk { bytes: Vec::new(), lines: 0 }) };
    static SECOND: RefCell<(u64, [u8; 19])> = const { RefCell::new((u64::MAX, [b'0'; 19])) };
}

pub struct AccessLog {
    sample_rate: f64,
    sender: Mutex<Option<SyncSender<Vec<u8>>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl AccessLog {
    /// Starts the writer thread. `sample_rate` is the share of requests logged (0 to 1).
    pub fn start(sample_rate: f64) -> std::io::Result<AccessLog> {
        let (sender, receiver) = sync_channel(QUEUE_CHUNKS);
        let writer = std::thread::Builder::new()
            .name("guess-game-access-log".into())
            .spawn(move || write_chunks(&receiver))?;
        Ok(AccessLog {
            sample_rate,
            sender: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Logs `completed` if the sample says so.
    pub fn log(&self, completed: &Completed, latency: Duration, now_unix: Duration) {
        if self.sample_rate < 1.0 && fastrand::f64() >= self.sample_rate {
            return;
        }
        let full = CHUNK.with(|chunk| {
            let mut chunk = chunk.borrow_mut();
            if chunk.bytes.capacity() == 0 {
                chunk.bytes.reserve(CHUNK_BYTES + 512);
            }
            format_line(&mut chunk.bytes, completed, latency, now_unix);
            chunk.lines += 1;
            chunk.bytes.len() >= CHUNK_BYTES
        });
        if full {
            self.flush_thread();
        }
    }

    /// Ships this thread's partial chunk; called on each worker's tick and when it stops.
    pub fn flush_thread(&self) {
        let Some((bytes, lines)) = CHUNK.with(|chunk| {
            let mut chunk = chunk.borrow_mut();
            (chunk.lines > 0).then(|| {
                let lines = std::mem::take(&mut chunk.lines);
                (
                    std::mem::replace(&mut chunk.bytes, Vec::with_capacity(CHUNK_BYTES + 512)),
                    lines,
                )
            })
        }) else {
            return;
        };
        let sender = self.sender.lock().unwrap_or_else(PoisonError::into_inner);
        let sent = match sender.as_ref().map(|sender| sender.try_send(bytes)) {
            Some(Ok(())) => true,
            Some(Err(TrySendError::Full(_) | TrySendError::Disconnected(_))) | None => false,
        };
        metrics::with_shard(|shard| {
            if sent {
                shard.access_log_lines.add(lines);
            } else {
                shard.access_log_dropped.add(lines);
            }
        });
    }

    /// Stops the writer after it has written everything shipped so far.
    pub fn shutdown(&self) {
        self.flush_thread();
        self.sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(writer) = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = writer.join();
        }
    }
}

fn write_chunks(receiver: &Receiver<Vec<u8>>) {
    for chunk in receiver {
        // The lock keeps a chunk whole beside the server's other log lines.
        let mut stdout = std::io::stdout().lock();
        if stdout
            .write_all(&chunk)
            .and_then(|()| stdout.flush())
            .is_err()
        {
            // Nowhere to report a broken stdout; keep draining so senders never block.
            continue;
        }
    }
}

/// One JSON line. Written by hand: every value is a number, a static name or a validated id.
fn format_line(out: &mut Vec<u8>, completed: &Completed, latency: Duration, now_unix: Duration) {
    out.extend_from_slice(br#"{"timestamp":""#);
    write_timestamp(out, now_unix);
    out.extend_from_slice(br#"","level":"INFO","target":"access","method":""#);
    out.extend_from_slice(completed.method.as_bytes());
    out.extend_from_slice(br#"","route":""#);
    out.extend_from_slice(completed.route.as_bytes());
    out.extend_from_slice(br#"","status":"#);
    out.extend_from_slice(itoa::Buffer::new().format(completed.status).as_bytes());
    out.extend_from_slice(br#","latency_us":"#);
    out.extend_from_slice(
        itoa::Buffer::new()
            .format(latency.as_micros() as u64)
            .as_bytes(),
    );
    out.extend_from_slice(br#","request_bytes":"#);
    out.extend_from_slice(
        itoa::Buffer::new()
            .format(completed.request_bytes)
            .as_bytes(),
    );
    out.extend_from_slice(br#","response_bytes":"#);
    out.extend_from_slice(
        itoa::Buffer::new()
            .format(completed.response_bytes)
            .as_bytes(),
    );
    out.extend_from_slice(br#","request_id":""#);
    out.extend_from_slice(completed.request_id.as_bytes());
    out.extend_from_slice(br#"","trace_id":""#);
    completed.trace.write_trace_id(out);
    out.extend_from_slice(b"\"}\n");
}

/// RFC 3339 UTC with milliseconds; the date-and-time part is formatted once per second.
fn write_timestamp(out: &mut Vec<u8>, now_unix: Duration) {
    let second = now_unix.as_secs();
    SECOND.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second {
            let text = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(second))
                .to_string();
            let mut bytes = [b'0'; 19];
            bytes.copy_from_slice(&text.as_bytes()[..19]);
            *cached = (second, bytes);
        }
        out.extend_from_slice(&cached.1);
    });
    out.push(b'.');
    let millis = now_unix.subsec_millis();
    out.extend_from_slice(&[
        b'0' + (millis / 100) as u8,
        b'0' + (millis / 10 % 10) as u8,
        b'0' + (millis % 10) as u8,
    ]);
    out.push(b'Z');
}

/// Wall-clock time now, for lines and spans.
pub fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::trace::{RequestId, TraceContext};

    #[test]
    fn a_line_is_one_json_object_with_the_documented_fields() {
        let (trace, _) = TraceContext::from_header(Some(
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ));
        let completed = Completed {
            route: "/play",
            route_index: 0,
            method: "POST",
            method_index: 2,
            status: 200,
            request_bytes: 18,
            response_bytes: 102,
            trace,
            request_id: RequestId::from_header(Some(b"req-1")),
            permit: None,
        };
        let mut out = Vec::new();
        format_line(
            &mut out,
            &completed,
            Duration::from_micros(57),
            Duration::from_millis(1_763_838_123_456),
        );
        assert_eq!(out.last(), Some(&b'\n'));
        let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(line["timestamp"], "2025-11-22T19:02:03.456Z");
        assert_eq!(line["method"], "POST");
        assert_eq!(line["route"], "/play");
        assert_eq!(line["status"], 200);
        assert_eq!(line["latency_us"], 57);
        assert_eq!(line["request_bytes"], 18);
        assert_eq!(line["response_bytes"], 102);
        assert_eq!(line["request_id"], "req-1");
        assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    }
}

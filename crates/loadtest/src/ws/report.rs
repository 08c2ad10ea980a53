//! The report of a WebSocket run: printed as a table and written as JSON (`--json`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::stats::Percentiles;

/// Everything a `ws-idle`, `ws-play` or `ws-echo` run measured. Sections a scenario does not
/// measure are absent.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WsReport {
    pub tool: String,
    pub scenario: String,
    /// The targets, comma-separated (`ws://host:port`).
    pub target: String,
    pub connections_requested: usize,
    pub connections_open: usize,
    pub source_addresses: usize,
    pub tokens_reused: usize,
    pub guests_created: usize,
    pub guest_creation_s: f64,
    /// Opening (and greeting) every connection.
    pub connect_s: f64,
    pub warmup_s: f64,
    pub duration_s: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub play: Option<Play>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Cpu>,
    /// The sum of `errors_by_kind`. Resumes that worked are not errors (see `play`).
    #[serde(default)]
    pub errors: u64,
    /// Whole run, setup included: error codes (`error_<code>`), closes (`closed_<code>`),
    /// timeouts (`timeout_<what was awaited>`), connection failures, failed resumes
    /// (`resume_<why>`, or the refusal's `error_<code>`).
    pub errors_by_kind: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The server's resident memory around the idle connections.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Memory {
    pub source: String,
    /// Accounts made, no connection open yet.
    pub before_bytes: u64,
    /// Every connection open and greeted, after settling.
    pub open_bytes: u64,
    pub peak_bytes: u64,
    /// At the end of the hold, before closing.
    pub end_bytes: u64,
    pub per_connection_bytes: f64,
    pub per_connection_kib: f64,
    pub tester_rss_bytes: u64,
}

/// What the players (or echo connections) did in the measured window.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Play {
    pub move_interval_ms: f64,
    /// Connections divided by the interval: the move rate asked for.
    pub offered_moves_per_s: f64,
    pub moves: u64,
    pub moves_per_s: f64,
    pub rounds: u64,
    pub matches_completed: u64,
    pub matches_per_s: f64,
    /// Second move of a round sent to `round_revealed` received, per player (ws-play).
    pub move_to_result_ms: Percentiles,
    pub move_to_result_samples: u64,
    /// Samples timed from the player's own move (opponent not in this tester).
    pub move_to_result_own_only: u64,
    /// A move sent to its `ack` (ws-play) or a frame sent to its echo (ws-echo).
    pub ack_ms: Percentiles,
    pub acks: u64,
    pub ordering_violations: u64,
    pub missed_moves: u64,
    pub frames_sent: u64,
    pub frames_received: u64,
    /// The counts below cover the whole run, not the window: they are for comparing with what
    /// the server recorded.
    /// Distinct matches started (`matched`, or a `resumed` into a match made while away),
    /// counted once per match even when both players are this run's (ws-play).
    #[serde(default)]
    pub matches_started: u64,
    /// `match_result` messages received, once per player and match (a repeat after a resume
    /// is not counted): twice per match when both players are this run's.
    #[serde(default)]
    pub results: u64,
    /// Distinct matches whose `match_result` at least one of their players received.
    #[serde(default)]
    pub matches_finished: u64,
    /// Reconnections to another target answered with `resumed`; not errors.
    #[serde(default)]
    pub resumes: u64,
    /// Reconnections that found no target in time or whose resume was refused or unanswered;
    /// each also counts as an error and a lost player.
    #[serde(default)]
    pub resume_failures: u64,
    /// Replayed events (and results) already seen before the resume, dropped.
    #[serde(default)]
    pub replayed_duplicates: u64,
    /// `draining` notices received.
    #[serde(default)]
    pub drain_notices: u64,
    /// `welcome` messages the player did not ask for (the server greeted it anew after a
    /// `resumed` and repeated the match's log); not errors, but not the protocol's design.
    #[serde(default)]
    pub unrequested_welcomes: u64,
    /// Messages of a match that came again after the player had its result (the whole log
    /// and the result once more); dropped, not errors, but not the protocol's design.
    #[serde(default)]
    pub repeats_after_result: u64,
    /// Moves sent again after a resume or a `not_in_match` ("the match is moving"); of them,
    /// `resends_refused` were refused because the first had arrived.
    #[serde(default)]
    pub moves_resent: u64,
    #[serde(default)]
    pub resends_refused: u64,
    /// `opponent_disconnected` events received (either seat, replays included).
    #[serde(default)]
    pub seat_disconnects: u64,
}

/// CPU time in the measured window.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Cpu {
    pub source: String,
    pub server_cpu_s: f64,
    /// Server CPU time over wall time (1.0 is one core).
    pub server_cores: f64,
    pub server_us_per_move: f64,
    /// Per data frame the server read or wrote (frames the tester sent plus received).
    pub server_us_per_frame: f64,
    pub tester_cores: f64,
}

impl WsReport {
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} {}: {} of {} connections open ({} source address{}), {:.0}s measured after {:.0}s warm-up",
            self.scenario,
            self.target,
            self.connections_open,
            self.connections_requested,
            self.source_addresses,
            if self.source_addresses == 1 { "" } else { "es" },
            self.duration_s,
            self.warmup_s
        );
        let _ = writeln!(
            out,
            "  setup: {} tokens reused, {} guests created in {:.1}s, connected in {:.1}s",
            self.tokens_reused, self.guests_created, self.guest_creation_s, self.connect_s
        );
        if let Some(memory) = &self.memory {
            write_memory(&mut out, memory, self.connections_open);
        }
        if let Some(play) = &self.play {
            write_play(&mut out, play, &self.scenario);
        }
        if let Some(cpu) = &self.cpu {
            let _ = writeln!(out, "\n  CPU ({})", cpu.source);
            let _ = writeln!(
                out,
                "    server {:.2}s ({:.2} cores): {:.2} us per move, {:.2} us per frame; tester {:.2} cores",
                cpu.server_cpu_s,
                cpu.server_cores,
                cpu.server_us_per_move,
                cpu.server_us_per_frame,
                cpu.tester_cores
            );
        }
        let errors: u64 = self.errors_by_kind.values().sum();
        let _ = writeln!(out, "\n  errors and events {errors:>10}");
        for (kind, count) in &self.errors_by_kind {
            let _ = writeln!(out, "    {kind:<32} {count:>8}");
        }
        for note in &self.notes {
            let _ = writeln!(out, "\n  note: {note}");
        }
        out
    }
}

fn write_memory(out: &mut String, memory: &Memory, open: usize) {
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    let _ = writeln!(out, "\n  server memory ({})", memory.source);
    let _ = writeln!(
        out,
        "    RSS before {:.1} MiB, with {open} open {:.1} MiB, peak {:.1} MiB, at the end {:.1} MiB",
        mib(memory.before_bytes),
        mib(memory.open_bytes),
        mib(memory.peak_bytes),
        mib(memory.end_bytes)
    );
    let _ = writeln!(
        out,
        "    per idle authenticated connection: {:.0} bytes ({:.2} KiB); tester RSS {:.1} MiB",
        memory.per_connection_bytes,
        memory.per_connection_kib,
        mib(memory.tester_rss_bytes)
    );
}

fn write_play(out: &mut String, play: &Play, scenario: &str) {
    let _ = writeln!(
        out,
        "\n  moves {:>10}  {:>9.0}/s (offered {:.0}/s: a move per connection every {} ms)",
        play.moves, play.moves_per_s, play.offered_moves_per_s, play.move_interval_ms
    );
    if scenario == "ws-play" {
        let _ = writeln!(
            out,
            "  matches {:>8}  {:>9.1}/s, {} rounds; {} ordering violations, {} missed moves",
            play.matches_completed,
            play.matches_per_s,
            play.rounds,
            play.ordering_violations,
            play.missed_moves
        );
        let _ = writeln!(
            out,
            "  whole run: {} matches started, {} finished ({} results received); {} resumes, \
             {} failed; {} replayed duplicates dropped, {} draining notices, {} seat disconnects",
            play.matches_started,
            play.matches_finished,
            play.results,
            play.resumes,
            play.resume_failures,
            play.replayed_duplicates,
            play.drain_notices,
            play.seat_disconnects
        );
        let _ = writeln!(
            out,
            "  {} unrequested welcomes, {} repeats after a result, {} moves resent ({} refused \
             as already made)",
            play.unrequested_welcomes,
            play.repeats_after_result,
            play.moves_resent,
            play.resends_refused
        );
    }
    let _ = writeln!(
        out,
        "  frames: {} sent, {} received",
        play.frames_sent, play.frames_received
    );
    let _ = writeln!(
        out,
        "\n  latency (ms)         samples      p50      p90      p99    p99.9      max     mean"
    );
    let mut row = |name: &str, samples: u64, l: &Percentiles| {
        let _ = writeln!(
            out,
            "  {name:<18} {samples:>9} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
            l.p50, l.p90, l.p99, l.p999, l.max, l.mean
        );
    };
    if scenario == "ws-play" {
        row(
            "move to result",
            play.move_to_result_samples,
            &play.move_to_result_ms,
        );
        row("move to ack", play.acks, &play.ack_ms);
    } else {
        row("frame to echo", play.acks, &play.ack_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_shows_each_section_and_the_json_round_trips() {
        let report = WsReport {
            scenario: "ws-idle".to_owned(),
            connections_requested: 10,
            connections_open: 9,
            source_addresses: 1,
            memory: Some(Memory {
                per_connection_bytes: 2048.0,
                per_connection_kib: 2.0,
                ..Memory::default()
            }),
            errors_by_kind: BTreeMap::from([("upgrade_401".to_owned(), 1)]),
            ..WsReport::default()
        };
        let text = report.summary();
        assert!(text.contains("9 of 10 connections open"), "{text}");
        assert!(text.contains("2048 bytes (2.00 KiB)"), "{text}");
        assert!(text.contains("upgrade_401"), "{text}");
        assert!(!text.contains("latency"), "no play section: {text}");
        let json = serde_json::to_string(&report).unwrap();
        assert!(!json.contains("\"play\""));
        let back: WsReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back.connections_open, 9);
    }
}

//! Real-time play's counters. Shared atomics rather than the per-thread shards of the HTTP
//! path: they change per message or per match, not per request, and from several threads for
//! one match.

use std::sync::atomic::{AtomicU64, Ordering};

use game::matches::{EndReason, MatchOutcome, Mode};
use protocol::{ClientMessage, ServerMessage};

use super::experiment::Experiment;
use crate::telemetry::metrics::{Exposition, Kind};

/// Seconds from queueing to a match (or the ticket's end).
const MATCH_WAIT_BOUNDS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0];

const END_REASONS: [&str; 6] = [
    "decided",
    "left",
    "grace_expired",
    "abandoned",
    "round_limit",
    "drained",
];

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Figures read from the hub's state at scrape time.
#[derive(Clone, Copy, Debug, Default)]
pub struct Census {
    pub idle: usize,
    pub queued: usize,
    pub in_match: usize,
    /// Disconnected, within their grace window.
    pub away: usize,
    pub queue_depth: [usize; 3],
    pub matches_running: usize,
    pub transcripts_kept: usize,
    /// Spectators of the matches this instance runs.
    pub spectators: usize,
}

#[derive(Default)]
pub struct Metrics {
    pub upgrades: AtomicU64,
    /// Connections closed, by who closed: [client, hello timeout, heartbeat, protocol error,
    /// slow consumer, replaced, policy, draining, other].
    closes: [AtomicU64; 9],
    messages_in: [AtomicU64; ClientMessage::TYPES.len() + 1],
    messages_out: [AtomicU64; ServerMessage::TYPES.len()],
    /// [mode][pvp, bot]
    started: [[AtomicU64; 2]; 3],
    /// [won, no_contest][reason]
    finished: [[AtomicU64; END_REASONS.len()]; 2],
    wait_buckets: [AtomicU64; MATCH_WAIT_BOUNDS.len()],
    wait_count: AtomicU64,
    wait_sum_ms: AtomicU64,
    queued: AtomicU64,
    queue_expired: AtomicU64,
    bot_fallbacks: AtomicU64,
    /// [complete, partial, unknown]
    resumes: [AtomicU64; 3],
    /// [invalid, rate limited, closed]
    chat_refusals: [AtomicU64; 3],
    takeovers: AtomicU64,
    /// Clustered: matches this instance took after their owner was lost or let them go,
    /// matches it handed over when draining, matches it lost to another instance (fenced),
    /// writes to Redis retried after a failure, writes dropped at a full queue, malformed
    /// inbox entries skipped.
    pub(super) cluster: [AtomicU64; 7],
    /// `spectate` refused: [match unknown, spectators full].
    spectate_refused: [AtomicU64; 2],
}

/// Indices into [`Metrics::cluster`].
pub(super) mod cluster_counter {
    pub const TAKEN: usize = 0;
    pub const HANDED_OVER: usize = 1;
    pub const FENCED: usize = 2;
    pub const RETRIED: usize = 3;
    pub const DROPPED: usize = 4;
    pub const SKIPPED: usize = 5;
    pub const LAPSED: usize = 6;
}

/// Why a connection closed, for [`Metrics::closed`].
#[derive(Clone, Copy, Debug)]
pub enum Closed {
    Client = 0,
    HelloTimeout = 1,
    Heartbeat = 2,
    Protocol = 3,
    SlowConsumer = 4,
    Replaced = 5,
    Policy = 6,
    Draining = 7,
    Other = 8,
}

const CLOSE_LABELS: [&str; 9] = [
    "client",
    "hello_timeout",
    "heartbeat_timeout",
    "protocol_error",
    "slow_consumer",
    "replaced",
    "policy",
    "draining",
    "other",
];

impl Metrics {
    pub fn closed(&self, why: Closed) {
        bump(&self.closes[why as usize]);
    }

    /// A message received; `None` for one that could not be read.
    pub fn message_in(&self, kind: Option<&str>) {
        let index = kind
            .and_then(|kind| ClientMessage::TYPES.iter().position(|t| *t == kind))
            .unwrap_or(ClientMessage::TYPES.len());
        bump(&self.messages_in[index]);
    }

    pub fn message_out(&self, kind: &str) {
        if let Some(index) = ServerMessage::TYPES.iter().position(|t| *t == kind) {
            bump(&self.messages_out[index]);
        }
    }

    pub fn match_started(&self, mode: Mode, pvp: bool) {
        let mode = match mode {
            Mode::BestOf1 => 0,
            Mode::BestOf3 => 1,
            Mode::BestOf5 => 2,
        };
        bump(&self.started[mode][usize::from(!pvp)]);
    }

    pub fn match_finished(&self, outcome: MatchOutcome, reason: EndReason) {
        let outcome = usize::from(outcome == MatchOutcome::NoContest);
        let reason = match reason {
            EndReason::Decided => 0,
            EndReason::Left(_) => 1,
            EndReason::GraceExpired(_) => 2,
            EndReason::Abandoned => 3,
            EndReason::RoundLimit => 4,
            EndReason::Drained => 5,
        };
        bump(&self.finished[outcome][reason]);
    }

    pub fn time_to_match(&self, waited_ms: u64) {
        let seconds = waited_ms as f64 / 1000.0;
        if let Some(bucket) = MATCH_WAIT_BOUNDS.iter().position(|&b| seconds <= b) {
            bump(&self.wait_buckets[bucket]);
        }
        bump(&self.wait_count);
        self.wait_sum_ms.fetch_add(waited_ms, Ordering::Relaxed);
    }

    pub fn queued(&self) {
        bump(&self.queued);
    }

    pub fn queue_expired(&self) {
        bump(&self.queue_expired);
    }

    pub fn bot_fallback(&self) {
        bump(&self.bot_fallbacks);
    }

    pub fn resumes(&self, outcome: usize) {
        bump(&self.resumes[outcome.min(2)]);
    }

    pub fn chat_refused(&self, why: usize) {
        bump(&self.chat_refusals[why.min(2)]);
    }

    pub fn takeovers(&self) {
        bump(&self.takeovers);
    }

    pub fn cluster(&self, which: usize, by: u64) {
        if let Some(counter) = self.cluster.get(which) {
            counter.fetch_add(by, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// 0: the match is unknown; 1: it has as many spectators as it takes.
    pub fn spectate_refused(&self, why: usize) {
        if let Some(counter) = self.spectate_refused.get(why) {
            bump(counter);
        }
    }

    pub fn handed_over(&self) {
        self.cluster(cluster_counter::HANDED_OVER, 1);
    }

    pub fn write(&self, out: &mut Exposition, census: &Census, experiment: &Experiment) {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed) as f64;
        let name = "guess_game_ws_connections";
        out.family(
            name,
            "Greeted WebSocket players by state (away: dropped, within the resume grace window).",
            Kind::Gauge,
        );
        for (state, value) in [
            ("idle", census.idle),
            ("queued", census.queued),
            ("in_match", census.in_match),
            ("away", census.away),
        ] {
            out.sample(name, &format!("state=\"{state}\""), value as f64);
        }
        let name = "guess_game_ws_upgrades_total";
        out.family(name, "WebSocket upgrades accepted.", Kind::Counter);
        out.sample(name, "", get(&self.upgrades));
        let name = "guess_game_ws_closes_total";
        out.family(
            name,
            "WebSocket connections closed, by reason.",
            Kind::Counter,
        );
        for (label, counter) in CLOSE_LABELS.iter().zip(&self.closes) {
            out.sample(name, &format!("reason=\"{label}\""), get(counter));
        }
        let name = "guess_game_ws_messages_in_total";
        out.family(
            name,
            "Messages received, by type (invalid: could not be read).",
            Kind::Counter,
        );
        for (label, counter) in ClientMessage::TYPES
            .iter()
            .chain(["invalid"].iter())
            .zip(&self.messages_in)
        {
            out.sample(name, &format!("type=\"{label}\""), get(counter));
        }
        let name = "guess_game_ws_messages_out_total";
        out.family(name, "Messages sent, by type.", Kind::Counter);
        for (label, counter) in ServerMessage::TYPES.iter().zip(&self.messages_out) {
            out.sample(name, &format!("type=\"{label}\""), get(counter));
        }
        let name = "guess_game_matches_started_total";
        out.family(
            name,
            "Matches started, by mode and opponent.",
            Kind::Counter,
        );
        for (mode, row) in ["best_of_1", "best_of_3", "best_of_5"]
            .iter()
            .zip(&self.started)
        {
            for (opponent, counter) in ["human", "bot"].iter().zip(row) {
                out.sample(
                    name,
                    &format!("mode=\"{mode}\",opponent=\"{opponent}\""),
                    get(counter),
                );
            }
        }
        let name = "guess_game_matches_finished_total";
        out.family(
            name,
            "Matches finished, by outcome and reason.",
            Kind::Counter,
        );
        for (outcome, row) in ["won", "no_contest"].iter().zip(&self.finished) {
            for (reason, counter) in END_REASONS.iter().zip(row) {
                out.sample(
                    name,
                    &format!("outcome=\"{outcome}\",reason=\"{reason}\""),
                    get(counter),
                );
            }
        }
        let name = "guess_game_matches_running";
        out.family(name, "Matches in progress on this instance.", Kind::Gauge);
        out.sample(name, "", census.matches_running as f64);
        let name = "guess_game_spectators";
        out.family(
            name,
            "Spectators of the matches this instance runs.",
            Kind::Gauge,
        );
        out.sample(name, "", census.spectators as f64);
        let name = "guess_game_spectate_refused_total";
        out.family(name, "Spectate requests refused, by reason.", Kind::Counter);
        for (label, counter) in ["match_unknown", "spectators_full"]
            .iter()
            .zip(&self.spectate_refused)
        {
            out.sample(name, &format!("reason=\"{label}\""), get(counter));
        }
        let name = "guess_game_queue_depth";
        out.family(name, "Tickets waiting for a match, by mode.", Kind::Gauge);
        for (mode, depth) in ["best_of_1", "best_of_3", "best_of_5"]
            .iter()
            .zip(census.queue_depth)
        {
            out.sample(name, &format!("mode=\"{mode}\""), depth as f64);
        }
        let name = "guess_game_queue_wait_seconds";
        out.family(
            name,
            "Time from queueing to a match, a bot or expiry.",
            Kind::Histogram,
        );
        let mut cumulative = 0;
        for (bound, counter) in MATCH_WAIT_BOUNDS.iter().zip(&self.wait_buckets) {
            cumulative += counter.load(Ordering::Relaxed);
            out.sample(
                &format!("{name}_bucket"),
                &format!("le=\"{bound}\""),
                cumulative as f64,
            );
        }
        out.sample(
            &format!("{name}_bucket"),
            "le=\"+Inf\"",
            get(&self.wait_count),
        );
        out.sample(&format!("{name}_sum"), "", get(&self.wait_sum_ms) / 1000.0);
        out.sample(&format!("{name}_count"), "", get(&self.wait_count));
        for (name, help, counter) in [
            (
                "guess_game_queue_tickets_total",
                "Tickets queued for a person.",
                &self.queued,
            ),
            (
                "guess_game_queue_expired_total",
                "Tickets that ended without a match.",
                &self.queue_expired,
            ),
            (
                "guess_game_queue_bot_fallbacks_total",
                "Tickets given a bot after waiting for a person.",
                &self.bot_fallbacks,
            ),
            (
                "guess_game_ws_takeovers_total",
                "Connections closed because the account connected again.",
                &self.takeovers,
            ),
        ] {
            out.family(name, help, Kind::Counter);
            out.sample(name, "", get(counter));
        }
        for (name, help, which) in [
            (
                "guess_game_cluster_matches_taken_total",
                "Shared matches this instance took after their owner was lost or let them go.",
                cluster_counter::TAKEN,
            ),
            (
                "guess_game_cluster_matches_handed_over_total",
                "Shared matches this instance let go when draining.",
                cluster_counter::HANDED_OVER,
            ),
            (
                "guess_game_cluster_matches_fenced_total",
                "Shared matches this instance lost to another (its fencing token was stale).",
                cluster_counter::FENCED,
            ),
            (
                "guess_game_cluster_write_retries_total",
                "Batches of writes to Redis tried again after a failure.",
                cluster_counter::RETRIED,
            ),
            (
                "guess_game_cluster_writes_dropped_total",
                "Writes to Redis dropped because the write queue was full.",
                cluster_counter::DROPPED,
            ),
            (
                "guess_game_cluster_inbox_skipped_total",
                "Inbox entries from other instances that could not be read.",
                cluster_counter::SKIPPED,
            ),
            (
                "guess_game_cluster_leases_lapsed_total",
                "Shared matches this instance stopped running because it could not renew their leases in time (cut off from Redis).",
                cluster_counter::LAPSED,
            ),
        ] {
            out.family(name, help, Kind::Counter);
            out.sample(name, "", get(&self.cluster[which]));
        }
        let name = "guess_game_ws_resumes_total";
        out.family(name, "Resume attempts, by outcome.", Kind::Counter);
        for (label, counter) in ["complete", "partial", "unknown"].iter().zip(&self.resumes) {
            out.sample(name, &format!("outcome=\"{label}\""), get(counter));
        }
        let name = "guess_game_chat_refusals_total";
        out.family(name, "Chat lines refused, by reason.", Kind::Counter);
        for (label, counter) in ["invalid", "rate_limited", "closed"]
            .iter()
            .zip(&self.chat_refusals)
        {
            out.sample(name, &format!("reason=\"{label}\""), get(counter));
        }
        let name = "guess_game_match_transcripts_kept";
        out.family(
            name,
            "Finished matches whose transcript this instance keeps.",
            Kind::Gauge,
        );
        out.sample(name, "", census.transcripts_kept as f64);
        for (name, help, pick) in [
            (
                "guess_game_bot_experiment_exposures_total",
                "Bot matches started, by experiment arm.",
                0,
            ),
            (
                "guess_game_bot_experiment_bot_wins_total",
                "Bot matches the bot won, by arm.",
                1,
            ),
            (
                "guess_game_bot_experiment_human_wins_total",
                "Bot matches the person won, by arm.",
                2,
            ),
        ] {
            out.family(name, help, Kind::Counter);
            for arm in &experiment.arms {
                let counter = match pick {
                    0 => &arm.exposures,
                    1 => &arm.bot_wins,
                    _ => &arm.human_wins,
                };
                out.sample(
                    name,
                    &format!(
                        "experiment=\"{}\",arm=\"{}\"",
                        experiment.name,
                        arm.strategy.name()
                    ),
                    get(counter),
                );
            }
        }
    }
}

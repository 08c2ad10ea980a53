//! The report of a run: built from what the recorder measured, printed as a table, written as
//! JSON, and compared with another report.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::driver::{Pacing, Plan};
use super::stats::{Percentiles, Recorder, Second};

/// Everything a run measured. The JSON form (`--json`) is this struct.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub tool: String,
    pub target: String,
    pub scenario: String,
    /// "closed", "open" or "steps".
    pub mode: String,
    pub connections: usize,
    /// The open-loop rate asked for, requests per second.
    pub target_rate: Option<f64>,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub slo_ms: f64,
    /// Requests sent (or attempted) per second after the warm-up.
    pub offered_rps: f64,
    /// Answers per second.
    pub throughput_rps: f64,
    /// 2xx answers within the SLO per second.
    pub goodput_rps: f64,
    pub requests_sent: u64,
    pub responses: u64,
    /// Answers 429 or 503.
    pub rejections: u64,
    pub errors: u64,
    pub statuses: BTreeMap<String, u64>,
    pub errors_by_kind: BTreeMap<String, u64>,
    pub latency_ms: Percentiles,
    /// Latency of rejections (429 and 503) alone.
    #[serde(default)]
    pub rejection_latency_ms: Percentiles,
    pub timeline: Vec<Second>,
    /// Step-load runs: one entry per step, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepReport>,
    /// Things the reader must know to trust the figures, such as a rate that was not reached.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// One step of a step-load run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepReport {
    pub multiplier: f64,
    pub report: Report,
}

impl Report {
    pub fn new(plan: &Plan, recorder: &Recorder) -> Self {
        let seconds = plan.duration.as_secs_f64().max(1e-9);
        let per_second = |count: u64| count as f64 / seconds;
        let (mode, target_rate) = match plan.pacing {
            Pacing::Closed => ("closed", None),
            Pacing::Open { rate } => ("open", Some(rate)),
        };
        let mut notes = Vec::new();
        let offered = per_second(recorder.sent);
        if let Some(rate) = target_rate
            && offered < rate * 0.95
        {
            notes.push(format!(
                "the target rate of {rate:.0}/s was not reached ({offered:.0}/s offered): \
                 the server or this machine is saturated, or {connections} connections are too few \
                 for the latency seen; raise --connections",
                connections = plan.connections
            ));
        }
        if recorder.sent > 0 && recorder.responses == 0 {
            notes.push("no request got an answer; see errors".to_owned());
        }
        Self {
            tool: format!("guess-game {}", env!("CARGO_PKG_VERSION")),
            target: format!("http://{}{}", plan.host, plan.target),
            scenario: plan.scenario.name().to_owned(),
            mode: mode.to_owned(),
            connections: plan.connections,
            target_rate,
            warmup_s: plan.warmup.as_secs_f64(),
            duration_s: plan.duration.as_secs_f64(),
            slo_ms: plan.slo.as_secs_f64() * 1000.0,
            offered_rps: offered,
            throughput_rps: per_second(recorder.responses),
            goodput_rps: per_second(recorder.goodput),
            requests_sent: recorder.sent,
            responses: recorder.responses,
            rejections: recorder.rejections,
            errors: recorder.error_count,
            statuses: recorder.statuses(),
            errors_by_kind: recorder.errors(),
            latency_ms: recorder.latency(),
            rejection_latency_ms: recorder.rejection_latency(),
            timeline: recorder.timeline.clone(),
            steps: Vec::new(),
            notes,
        }
    }

    /// Errors and non-2xx answers as a share of requests sent.
    pub fn failure_rate(&self) -> f64 {
        let failed = self.errors + self.responses - self.successes();
        failed as f64 / (self.requests_sent.max(1)) as f64
    }

    fn successes(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(status, _)| status.starts_with('2'))
            .map(|(_, count)| count)
            .sum()
    }

    /// The human-readable summary printed at the end of a run.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let pacing = match self.target_rate {
            Some(rate) => format!("open loop at {rate:.0} req/s"),
            None => "closed loop".to_owned(),
        };
        let _ = writeln!(
            out,
            "{}: {pacing}, {} connections, {:.0}s after {:.0}s warm-up, scenario {}",
            self.target, self.connections, self.duration_s, self.warmup_s, self.scenario
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "  requests sent   {:>12}   {:>10.0}/s offered",
            self.requests_sent, self.offered_rps
        );
        let _ = writeln!(
            out,
            "  answers         {:>12}   {:>10.0}/s",
            self.responses, self.throughput_rps
        );
        let _ = writeln!(
            out,
            "  goodput                        {:>10.0}/s  (2xx within {} ms)",
            self.goodput_rps, self.slo_ms
        );
        let _ = writeln!(
            out,
            "  rejections      {:>12}   (429 and 503)",
            self.rejections
        );
        for (status, count) in &self.statuses {
            let _ = writeln!(out, "  status {status}      {count:>12}");
        }
        let _ = writeln!(out, "  errors          {:>12}", self.errors);
        for (kind, count) in &self.errors_by_kind {
            let _ = writeln!(out, "    {kind:<20} {count:>8}");
        }
        let l = &self.latency_ms;
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "  latency (ms)       p50       p90       p99     p99.9       max      mean"
        );
        let _ = writeln!(
            out,
            "              {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
            l.p50, l.p90, l.p99, l.p999, l.max, l.mean
        );
        if self.rejections > 0 {
            let r = &self.rejection_latency_ms;
            let _ = writeln!(
                out,
                "  rejections   {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                r.p50, r.p90, r.p99, r.p999, r.max, r.mean
            );
        }
        if !self.steps.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "  step   offered/s   answers/s   goodput/s  rejections    errors   p50 ms   p99 ms  p99.9 ms  rej p99 ms"
            );
            for step in &self.steps {
                let r = &step.report;
                let _ = writeln!(
                    out,
                    "  {:>4}x {:>11.0} {:>11.0} {:>11.0} {:>11} {:>9} {:>8.3} {:>8.3} {:>9.3} {:>11.3}",
                    step.multiplier,
                    r.offered_rps,
                    r.throughput_rps,
                    r.goodput_rps,
                    r.rejections,
                    r.errors,
                    r.latency_ms.p50,
                    r.latency_ms.p99,
                    r.latency_ms.p999,
                    r.rejection_latency_ms.p99
                );
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "\n  note: {note}");
        }
        out
    }
}

/// A before/after table of two reports, with the change in each figure.
pub fn compare(before: &Report, after: &Report) -> String {
    let rows: [(&str, f64, f64, bool); 11] = [
        (
            "answers/s",
            before.throughput_rps,
            after.throughput_rps,
            true,
        ),
        ("goodput/s", before.goodput_rps, after.goodput_rps, true),
        ("offered/s", before.offered_rps, after.offered_rps, true),
        ("p50 ms", before.latency_ms.p50, after.latency_ms.p50, false),
        ("p90 ms", before.latency_ms.p90, after.latency_ms.p90, false),
        ("p99 ms", before.latency_ms.p99, after.latency_ms.p99, false),
        (
            "p99.9 ms",
            before.latency_ms.p999,
            after.latency_ms.p999,
            false,
        ),
        ("max ms", before.latency_ms.max, after.latency_ms.max, false),
        (
            "failure %",
            before.failure_rate() * 100.0,
            after.failure_rate() * 100.0,
            false,
        ),
        (
            "rejections",
            before.rejections as f64,
            after.rejections as f64,
            false,
        ),
        (
            "rej p99 ms",
            before.rejection_latency_ms.p99,
            after.rejection_latency_ms.p99,
            false,
        ),
    ];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<12} {:>14} {:>14} {:>10}",
        "figure", "before", "after", "change"
    );
    for (name, old, new, higher_is_better) in rows {
        let change = if old == 0.0 {
            if new == 0.0 {
                "=".to_owned()
            } else {
                "new".to_owned()
            }
        } else {
            format!("{:+.1}%", (new - old) / old * 100.0)
        };
        let verdict = match (new.partial_cmp(&old), higher_is_better) {
            (Some(std::cmp::Ordering::Greater), true) | (Some(std::cmp::Ordering::Less), false) => {
                "better"
            }
            (Some(std::cmp::Ordering::Equal), _) | (None, _) => "",
            _ => "worse",
        };
        let _ = writeln!(
            out,
            "{name:<12} {old:>14.3} {new:>14.3} {change:>10} {verdict}"
        );
    }
    out
}

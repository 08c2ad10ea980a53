//! What a `ws-play` or `ws-echo` run counted: HDR latency histograms and counters, shared by
//! every connection of the run (one thread drives them all, so no synchronization).
//!
//! Latencies and rates count only inside the measured window (after the warm-up, before the
//! stop); errors count over the whole run, since a player lost during the warm-up is missing
//! from the measurement too. So do the match and resume counters ([`Continuity`]): they are
//! compared with what the server recorded over the whole run.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

use crate::stats::{HIGHEST_MICROS, Percentiles, new_histogram};

#[derive(Debug)]
pub struct Tally {
    measure_from: Instant,
    stop_at: Instant,
    /// Second move sent to `round_revealed` received (see `player.rs`).
    reveal: Histogram<u64>,
    /// A move sent to its `ack` received; in `ws-echo`, a frame sent to its echo received.
    ack: Histogram<u64>,
    pub moves_sent: u64,
    pub reveal_samples: u64,
    /// Reveal samples timed from the player's own move: its opponent is not this process's.
    pub reveal_own_only: u64,
    pub rounds: u64,
    pub matches_completed: u64,
    /// Rounds revealed without this player's move (it came too late or was refused).
    pub missed_moves: u64,
    /// Match events whose `seq` was not above the last one this connection saw for the match.
    pub ordering_violations: u64,
    /// Data frames the tester sent and received in the window.
    pub frames_sent: u64,
    pub frames_received: u64,
    pub continuity: Continuity,
    pub errors: BTreeMap<String, u64>,
}

/// Whole-run counts of matches and of players moving between instances.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Continuity {
    /// Distinct matches a player of this run was seated in (`matched`, or a `resumed` into a
    /// match made while it was away): once per match, even when both players are this run's.
    pub matches_started: u64,
    /// `match_result` messages, once per player and match (a replayed one is not counted
    /// again): twice per match when both players are this run's.
    pub results: u64,
    /// Distinct matches at least one of whose players received its `match_result`.
    pub matches_finished: u64,
    /// Reconnections that the server answered with `resumed`.
    pub resumes: u64,
    /// Reconnections that found no instance, or whose `resume` was refused or unanswered;
    /// each is an error too (the player is lost).
    pub resume_failures: u64,
    /// Replayed events this player had already seen (dropped, not played twice).
    pub replayed_duplicates: u64,
    /// `draining` notices: the player's instance is shutting down.
    pub drain_notices: u64,
    /// `welcome` messages the player did not ask for (it sends `hello` once): the server
    /// greeted it anew, and repeated the match's log, after a `resumed`.
    pub unrequested_welcomes: u64,
    /// Messages of a match (`matched`, its events, its `match_result`) that came again after
    /// this player had its result: dropped.
    pub repeats_after_result: u64,
    /// Moves sent again: after a resume, when the move's `locked` had not come, or when the
    /// server answered `not_in_match` while the match moved to another instance.
    pub moves_resent: u64,
    /// Of those, refused because the server had the first one after all.
    pub resends_refused: u64,
    /// `opponent_disconnected` events: a seat (maybe this player's own, in a replay) dropped
    /// and its grace window ran.
    pub seat_disconnects: u64,
}

impl Tally {
    pub fn new(measure_from: Instant, stop_at: Instant) -> Self {
        Tally {
            measure_from,
            stop_at,
            reveal: new_histogram(3),
            ack: new_histogram(3),
            moves_sent: 0,
            reveal_samples: 0,
            reveal_own_only: 0,
            rounds: 0,
            matches_completed: 0,
            missed_moves: 0,
            ordering_violations: 0,
            frames_sent: 0,
            frames_received: 0,
            continuity: Continuity::default(),
            errors: BTreeMap::new(),
        }
    }

    fn measuring(&self, now: Instant) -> bool {
        now >= self.measure_from && now < self.stop_at
    }

    pub fn error(&mut self, kind: impl Into<String>) {
        *self.errors.entry(kind.into()).or_default() += 1;
    }

    pub fn ordering_violation(&mut self) {
        self.ordering_violations += 1;
    }

    pub fn move_sent(&mut self, now: Instant) {
        if self.measuring(now) {
            self.moves_sent += 1;
        }
    }

    pub fn frame_sent(&mut self, now: Instant) {
        if self.measuring(now) {
            self.frames_sent += 1;
        }
    }

    pub fn frame_received(&mut self, now: Instant) {
        if self.measuring(now) {
            self.frames_received += 1;
        }
    }

    pub fn ack(&mut self, now: Instant, latency: Duration) {
        if self.measuring(now) {
            self.ack.saturating_record(micros(latency));
        }
    }

    /// A `round_revealed` received `latency` after the round's second move; `both` when both
    /// moves' send times were known.
    pub fn revealed(&mut self, now: Instant, latency: Duration, both: bool) {
        if !self.measuring(now) {
            return;
        }
        self.reveal_samples += 1;
        if !both {
            self.reveal_own_only += 1;
        }
        self.reveal.saturating_record(micros(latency));
    }

    pub fn missed_move(&mut self, now: Instant) {
        if self.measuring(now) {
            self.missed_moves += 1;
        }
    }

    pub fn round(&mut self, now: Instant) {
        if self.measuring(now) {
            self.rounds += 1;
        }
    }

    pub fn match_completed(&mut self, now: Instant) {
        if self.measuring(now) {
            self.matches_completed += 1;
        }
    }

    pub fn reveal_latency(&self) -> Percentiles {
        Percentiles::of(&self.reveal)
    }

    pub fn ack_latency(&self) -> Percentiles {
        Percentiles::of(&self.ack)
    }

    pub fn acks(&self) -> u64 {
        self.ack.len()
    }
}

fn micros(latency: Duration) -> u64 {
    (latency.as_micros() as u64).clamp(1, HIGHEST_MICROS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn only_the_window_is_measured_but_every_error_counts() {
        let start = Instant::now();
        let second = Duration::from_secs(1);
        let mut tally = Tally::new(start + second, start + 3 * second);
        tally.move_sent(start);
        tally.revealed(start, Duration::from_millis(1), true);
        tally.error("queue_expired");
        tally.move_sent(start + second);
        tally.revealed(start + second, Duration::from_millis(2), true);
        tally.revealed(start + 2 * second, Duration::from_millis(4), false);
        tally.ack(start + 2 * second, Duration::from_micros(300));
        tally.move_sent(start + 3 * second);
        tally.error("queue_expired");
        assert_eq!(tally.moves_sent, 1);
        assert_eq!(tally.reveal_samples, 2);
        assert_eq!(tally.reveal_own_only, 1);
        assert_eq!(tally.acks(), 1);
        assert_eq!(tally.errors["queue_expired"], 2);
        let reveal = tally.reveal_latency();
        assert!((3.99..4.01).contains(&reveal.max), "{reveal:?}");
        assert!((1.99..2.01).contains(&reveal.p50), "{reveal:?}");
    }
}

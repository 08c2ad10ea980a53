//! What time does: round deadlines, grace windows, matchmaking sweeps and the drain; and
//! the read-only views the HTTP side and the metrics take.

use std::sync::Arc;

use game::Seat;
use game::matches::{Command, PerSeat, public};
use protocol::{ExpiredReason, ServerMessage};

use super::*;

impl Hub {
    /// Sets a timer; wakes the timer task only when it is now the earliest (a later one is
    /// found when the task next looks, after the earlier fires).
    pub(super) fn schedule(&self, state: &mut State, at: u64, timer: Timer) {
        let earliest = state.timers.first().is_none_or(|(first, _)| at < *first);
        state.timers.insert((at, timer));
        if earliest {
            self.timer_set.notify_one();
        }
    }

    /// Fires every timer due by now; returns when the next one is due.
    pub fn fire_due(&self) -> Option<u64> {
        let now = self.now_ms();
        let mut state = self.lock();
        let state = &mut *state;
        while let Some((at, _)) = state.timers.first()
            && *at <= now
        {
            let Some((_, timer)) = state.timers.pop_first() else {
                break;
            };
            match timer {
                Timer::Room(room_id) => {
                    if let Some(room) = state.rooms.get_mut(&room_id) {
                        room.deadline = None;
                    }
                    let _ = self.run(state, &room_id, Command::Tick, now);
                }
                Timer::Grace(account) => self.grace_expired(state, &account, now),
                Timer::Queue => {
                    state.queue_timer = None;
                    for outcome in state.matchmaker.poll(now) {
                        self.settle(state, outcome, now);
                    }
                    self.reschedule_queue(state);
                }
                Timer::DrainEnd => {
                    let rooms: Vec<String> = state.rooms.keys().cloned().collect();
                    for room_id in rooms {
                        let _ = self.run(state, &room_id, Command::NoContest, now);
                    }
                    for player in state.players.values() {
                        if let Some(link) = &player.link {
                            link.outbox.close(CloseOrder {
                                code: protocol::close::GOING_AWAY,
                                reason: "the server is shutting down",
                            });
                        }
                    }
                }
            }
        }
        state.timers.first().map(|(at, _)| *at)
    }

    pub(super) fn grace_expired(&self, state: &mut State, account: &AccountId, now: u64) {
        let Some(player) = state.players.get_mut(account) else {
            return;
        };
        player.grace_at = None;
        if player.link.is_some() {
            return;
        }
        let room = player.room.clone();
        let ticket = player.ticket.take();
        if let Some((room_id, seat)) = room {
            let _ = self.run(state, &room_id, Command::GraceExpired { seat }, now);
        }
        if let Some(ticket) = ticket {
            state.matchmaker.cancel(&ticket);
            state.tickets.remove(&ticket);
            self.reschedule_queue(state);
        }
        if let Some(player) = state.players.remove(account) {
            state.resume_tokens.remove(&player.resume_token);
        }
    }

    /// Stops matchmaking and tells everyone; matches still running at `deadline_ms` end as no
    /// contest and every connection closes (1001).
    pub fn drain(&self, deadline_ms: u64) {
        let mut state = self.lock();
        let state = &mut *state;
        if state.draining.is_some() {
            return;
        }
        state.draining = Some(deadline_ms);
        let now = self.now_ms();
        let mut detaching = false;
        if let Some(port) = self.cluster.get() {
            // Shared: the matches move to other instances at once instead of ending.
            self.hand_over(port, state, now);
            detaching = self.detach_remote_players(port, state);
        }
        for ticket in state.matchmaker.drain() {
            self.untrack_ticket(state, &ticket, now);
            self.send_to(
                state,
                &ticket.account,
                ServerMessage::QueueExpired {
                    ticket: ticket.id.clone(),
                    reason: ExpiredReason::Draining,
                },
            );
        }
        for player in state.players.values() {
            if let Some(link) = &player.link {
                link.outbox.push(ServerMessage::Draining { deadline_ms });
            }
        }
        let at = if !state.rooms.is_empty() {
            deadline_ms
        } else if detaching {
            // Players here in matches run elsewhere: closed once every owner has let go of
            // them (see `detach_remote_players`), or after a second at most.
            (now + super::cluster::DETACH_WAIT_MS).min(deadline_ms)
        } else {
            now
        };
        self.schedule(state, at, Timer::DrainEnd);
    }

    /// Whether a drain is done: no match runs and no connection is open.
    pub fn drained(&self) -> bool {
        let state = self.lock();
        state.rooms.is_empty() && state.players.values().all(|p| p.link.is_none())
    }

    /// Waits until a timer was set (or a wake-up was stored).
    pub async fn timer_set(&self) {
        self.timer_set.notified().await;
    }

    /// A finished match's transcript, or a running one's public log so far.
    pub fn transcript(&self, match_id: &str) -> Option<Arc<Finished>> {
        let state = self.lock();
        if let Some(finished) = state.records.transcript(match_id) {
            return Some(finished);
        }
        let room = state.rooms.get(match_id)?;
        let summary = |seat: Seat| SeatSummary {
            kind: match room.seats[seat] {
                Occupant::Human(_) => "human",
                Occupant::Bot { .. } => "bot",
            },
            id: match &room.seats[seat] {
                Occupant::Human(account) => account.to_string(),
                Occupant::Bot { .. } => room.names[seat].clone(),
            },
            name: room.names[seat].clone(),
        };
        Some(Arc::new(Finished {
            match_id: match_id.to_owned(),
            seats: PerSeat::new(summary(Seat::A), summary(Seat::B)),
            events: public(&room.log),
        }))
    }

    /// The account's real-time record.
    pub fn record(&self, account: &AccountId) -> super::super::records::Record {
        let state = self.lock();
        state.records.record(account).cloned().unwrap_or_default()
    }

    /// A season board as of now; a season that has ended is rolled over first.
    pub fn season_board(
        &self,
        kind: crate::seasons::BoardKind,
        which: crate::seasons::Which,
        limit: usize,
    ) -> crate::seasons::Board {
        let now = self.now_ms();
        self.lock().records.season_board(kind, which, limit, now)
    }

    /// Figures for the metrics: connected players, queued tickets per mode, running matches.
    pub fn census(&self) -> Census {
        let state = self.lock();
        let mut census = Census {
            queue_depth: state.matchmaker.depth(),
            matches_running: state.rooms.len(),
            transcripts_kept: state.records.transcripts_kept(),
            spectators: state.rooms.values().map(|room| room.spectators.len()).sum(),
            ..Census::default()
        };
        for player in state.players.values() {
            match (&player.link, &player.room, &player.ticket) {
                (None, _, _) => census.away += 1,
                (Some(_), Some(_), _) => census.in_match += 1,
                (Some(_), None, Some(_)) => census.queued += 1,
                (Some(_), None, None) => census.idle += 1,
            }
        }
        census
    }
}

//! Queueing: tickets into the matchmaker, and what becomes of them.

use protocol::{ExpiredReason, Opponent, ServerMessage, codes};

use super::*;

impl Hub {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn queue(
        &self,
        state: &mut State,
        caller: &Caller,
        id: Option<u64>,
        mode: game::matches::Mode,
        opponent: Opponent,
        bot_after_ms: Option<u64>,
        moves: protocol::MoveMode,
        now: u64,
    ) {
        let send = |message| {
            caller.link.outbox.push(message);
        };
        if state.draining.is_some() {
            send(error(
                id,
                codes::DRAINING,
                "the server is draining: reconnect to queue",
            ));
            return;
        }
        let Some(player) = state.players.get(&caller.account) else {
            return;
        };
        if player.room.is_some() {
            send(error(
                id,
                codes::IN_MATCH,
                "finish or leave the match first",
            ));
            return;
        }
        if player.ticket.is_some() {
            send(error(id, codes::ALREADY_QUEUED, "one ticket per account"));
            return;
        }
        let lifetime = self.settings.queue_lifetime_ms();
        let bot_after = bot_after_ms.unwrap_or(self.settings.bot_after.as_millis() as u64);
        if opponent == Opponent::Any && bot_after >= lifetime {
            send(error(
                id,
                codes::INVALID_QUEUE,
                format!("bot_after_ms must be below the ticket lifetime ({lifetime} ms)"),
            ));
            return;
        }
        let ticket = Ticket {
            id: random_id(),
            account: caller.account,
            mode,
            opponent,
            moves,
            rating: state.records.rating(&caller.account).rating,
            standing: state.records.rating(&caller.account),
            queued_ms: now,
            expires_ms: now + lifetime,
            bot_at_ms: (opponent == Opponent::Any).then_some(now + bot_after),
        };
        if opponent == Opponent::Bot {
            send(queued_message(id, &ticket));
            self.start_bot_match(state, ticket, false, now);
            return;
        }
        match state.matchmaker.enqueue(ticket.clone(), now) {
            Err(_) => {
                send(error(
                    id,
                    codes::QUEUE_FULL,
                    "the queue is full: try again later",
                ));
            }
            Ok(outcome) => {
                send(queued_message(id, &ticket));
                if let Some(player) = state.players.get_mut(&caller.account) {
                    player.ticket = Some(ticket.id.clone());
                }
                state.tickets.insert(ticket.id.clone(), ticket);
                self.metrics.queued();
                if let Some(outcome) = outcome {
                    self.settle(state, outcome, now);
                }
                self.reschedule_queue(state);
            }
        }
    }

    pub(super) fn reschedule_queue(&self, state: &mut State) {
        let next = state.matchmaker.next_deadline();
        if next == state.queue_timer {
            return;
        }
        if let Some(old) = state.queue_timer.take() {
            state.timers.remove(&(old, Timer::Queue));
        }
        if let Some(at) = next {
            self.schedule(state, at, Timer::Queue);
            state.queue_timer = Some(at);
        }
    }

    /// Acts on how a ticket left the queue.
    pub(super) fn settle(&self, state: &mut State, outcome: Outcome, now: u64) {
        match outcome {
            Outcome::Matched(a, b) => {
                for ticket in [&a, &b] {
                    self.untrack_ticket(state, ticket, now);
                }
                self.start_human_match(state, a, b, now);
            }
            Outcome::BotFallback(ticket) => {
                self.untrack_ticket(state, &ticket, now);
                self.start_bot_match(state, ticket, true, now);
            }
            Outcome::Expired(ticket) => {
                self.untrack_ticket(state, &ticket, now);
                self.metrics.queue_expired();
                self.send_to(
                    state,
                    &ticket.account,
                    ServerMessage::QueueExpired {
                        ticket: ticket.id.clone(),
                        reason: ExpiredReason::Timeout,
                    },
                );
            }
        }
    }

    pub(super) fn untrack_ticket(&self, state: &mut State, ticket: &Ticket, now: u64) {
        state.tickets.remove(&ticket.id);
        if let Some(player) = state.players.get_mut(&ticket.account)
            && player.ticket.as_deref() == Some(&ticket.id)
        {
            player.ticket = None;
        }
        self.metrics
            .time_to_match(now.saturating_sub(ticket.queued_ms));
    }

    pub(super) fn send_to(&self, state: &State, account: &AccountId, message: ServerMessage) {
        if let Some(link) = state.players.get(account).and_then(|p| p.link.as_ref()) {
            link.outbox.push(message);
        }
    }
}

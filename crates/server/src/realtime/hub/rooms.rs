//! Running matches: seating players and bots, applying commands, sending the log, and
//! recording the result once.

use game::Seat;
use game::fairness::Salt;
use game::matches::{
    Command, EventKind, Match, MatchConfig, MatchError, MatchOutcome, PerSeat, SeatKind, public,
};
use protocol::ServerMessage;

use super::*;

impl Hub {
    pub(super) fn start_human_match(&self, state: &mut State, a: Ticket, b: Ticket, now: u64) {
        let name = |state: &State, t: &Ticket| {
            state
                .players
                .get(&t.account)
                .map_or_else(|| t.account.to_string(), |p| p.name.clone())
        };
        let names = PerSeat::new(name(state, &a), name(state, &b));
        let ratings = PerSeat::new(a.rating, b.rating);
        let standings = PerSeat::new(a.standing, b.standing);
        let kinds = PerSeat::new(a.moves.seat_kind(), b.moves.seat_kind());
        let seats = PerSeat::new(Occupant::Human(a.account), Occupant::Human(b.account));
        let tickets = PerSeat::new(a.id.clone(), b.id.clone());
        self.start_room(
            state, a.mode, kinds, seats, names, ratings, standings, tickets, false, now,
        );
    }

    pub(super) fn start_bot_match(
        &self,
        state: &mut State,
        ticket: Ticket,
        fallback: bool,
        now: u64,
    ) {
        let arm = self.experiment.assign(&ticket.account);
        self.experiment.count(arm, |arm| &arm.exposures);
        let strategy = self.experiment.arms[arm].strategy;
        let human = state
            .players
            .get(&ticket.account)
            .map_or_else(|| ticket.account.to_string(), |p| p.name.clone());
        let names = PerSeat::new(human, strategy.name().to_owned());
        let ratings = PerSeat::new(ticket.rating, game::rating::DEFAULT_RATING);
        let standings = PerSeat::new(ticket.standing, game::rating::Rating::default());
        let kinds = PerSeat::new(ticket.moves.seat_kind(), SeatKind::Bot);
        let seats = PerSeat::new(
            Occupant::Human(ticket.account),
            Occupant::Bot {
                arm,
                bot: strategy.bot(),
            },
        );
        let tickets = PerSeat::new(ticket.id.clone(), String::new());
        if fallback {
            self.metrics.bot_fallback();
        }
        self.start_room(
            state,
            ticket.mode,
            kinds,
            seats,
            names,
            ratings,
            standings,
            tickets,
            fallback,
            now,
        );
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn start_room(
        &self,
        state: &mut State,
        mode: game::matches::Mode,
        kinds: PerSeat<SeatKind>,
        seats: PerSeat<Occupant>,
        names: PerSeat<String>,
        ratings: PerSeat<f64>,
        standings: PerSeat<game::rating::Rating>,
        tickets: PerSeat<String>,
        fallback: bool,
        now: u64,
    ) {
        let match_id = random_id();
        let config = MatchConfig {
            match_id: match_id.clone(),
            mode,
            round_timeout_ms: self.settings.round_timeout_ms(),
            seats: kinds,
        };
        let (game, events) = match Match::new(config, now) {
            Ok(started) => started,
            Err(error) => {
                // The configuration is the server's own; validated settings make this
                // unreachable, but a refusal must not leave players waiting for nothing.
                tracing::error!(%error, "a match could not start");
                return;
            }
        };
        let human_seats: Vec<(Seat, AccountId)> = Seat::BOTH
            .into_iter()
            .filter_map(|seat| match &seats[seat] {
                Occupant::Human(account) => Some((seat, *account)),
                Occupant::Bot { .. } => None,
            })
            .collect();
        let shared = self.cluster.get().map(|port| {
            port.create(
                &match_id,
                game.config(),
                &seats,
                &names,
                &ratings,
                &standings,
                fallback,
                now,
            )
        });
        let room = Room {
            game,
            log: Vec::new(),
            seats,
            names,
            ratings,
            deadline: None,
            bot_moves: PerSeat::default(),
            drops: PerSeat::default(),
            fallback,
            fence: u64::from(shared.is_some()),
            persisted: u64::from(shared.is_some()),
            stored: false,
            meta: shared,
            spectators: Vec::new(),
        };
        state.rooms.insert(match_id.clone(), room);
        self.metrics.match_started(mode, human_seats.len() == 2);
        for (seat, account) in &human_seats {
            let Some(player) = state.players.get_mut(account) else {
                continue;
            };
            player.room = Some((match_id.clone(), *seat));
            player.unseen = None;
            if let (Some(link), Some(room)) = (&player.link, state.rooms.get(&match_id)) {
                link.outbox.push(matched_message(
                    &match_id,
                    room,
                    *seat,
                    &tickets[*seat],
                    self.settings.round_timeout_ms(),
                ));
            }
        }
        self.append(state, &match_id, events, now);
        // A player matched while disconnected (within its grace window) starts away.
        for (seat, account) in &human_seats {
            if state.players.get(account).is_none_or(|p| p.link.is_none()) {
                let _ = self.run(state, &match_id, Command::Disconnect { seat: *seat }, now);
            }
        }
    }

    /// Applies `command` to the room's match and everything that follows from it.
    pub(super) fn run(
        &self,
        state: &mut State,
        room_id: &str,
        command: Command,
        now: u64,
    ) -> Result<(), MatchError> {
        let Some(room) = state.rooms.get_mut(room_id) else {
            return Err(MatchError::Ended);
        };
        let events = room.game.apply(command, now)?;
        self.append(state, room_id, events, now);
        Ok(())
    }

    /// Appends `events` to the room's log, sends the public ones, lets bots move, keeps the
    /// deadline timer right, and finishes the match once it has ended.
    pub(super) fn append(
        &self,
        state: &mut State,
        room_id: &str,
        mut events: Vec<game::matches::Event>,
        now: u64,
    ) {
        let first_new = state.rooms.get(room_id).map_or(0, |room| room.log.len());
        loop {
            let Some(room) = state.rooms.get_mut(room_id) else {
                return;
            };
            for event in &events {
                if let EventKind::RoundRevealed { moves, .. } = &event.kind {
                    for seat in Seat::BOTH {
                        if let Occupant::Bot { bot, .. } = &mut room.seats[seat]
                            && let (Some(own), Some(theirs)) =
                                (room.bot_moves[seat].take(), moves[seat.other()])
                        {
                            bot.observe(own, theirs);
                        }
                    }
                }
            }
            for event in events.drain(..) {
                if event.kind.is_public() {
                    for seat in Seat::BOTH {
                        if let Occupant::Human(account) = &room.seats[seat]
                            && let Some(link) =
                                state.players.get(account).and_then(|p| p.link.as_ref())
                        {
                            link.outbox.push(ServerMessage::Event {
                                match_id: room_id.to_owned(),
                                event: event.clone(),
                            });
                        }
                    }
                    // A spectator that stopped reading is dropped, not waited for.
                    room.spectators.retain(|spectator| {
                        spectator.link.outbox.push(ServerMessage::Event {
                            match_id: room_id.to_owned(),
                            event: event.clone(),
                        })
                    });
                }
                room.log.push(event);
            }
            // A bot moves before its round opens, so its commitment is published first.
            let Some((seat, round)) = room.game.bot_move_needed() else {
                break;
            };
            let Occupant::Bot { bot, .. } = &mut room.seats[seat] else {
                break;
            };
            let trit = game::random::computer_choice().map_or(0, |choice| choice as u8);
            let choice = bot.choose(trit);
            room.bot_moves[seat] = Some(choice);
            let mut salt = [0u8; 32];
            fill_random(&mut salt);
            let command = Command::BotMove {
                seat,
                round,
                choice,
                salt: Salt(salt),
            };
            match room.game.apply(command, now) {
                Ok(more) => events = more,
                Err(error) => {
                    tracing::error!(%error, "a bot move was refused");
                    break;
                }
            }
        }
        let Some(room) = state.rooms.get_mut(room_id) else {
            return;
        };
        if room.fence > 0
            && room.log.len() > first_new
            && let Some(port) = self.cluster.get()
        {
            port.write(super::super::cluster::Write::Append {
                match_id: room_id.to_owned(),
                fence: room.fence,
                base: room.persisted,
                events: room.log[first_new..].to_vec(),
            });
            room.persisted += (room.log.len() - first_new) as u64;
        }
        let next = room.game.next_deadline();
        let ended = room.game.is_ended();
        if next != room.deadline {
            let old = std::mem::replace(&mut room.deadline, next);
            if let Some(old) = old {
                state.timers.remove(&(old, Timer::Room(room_id.to_owned())));
            }
            if let Some(at) = next {
                self.schedule(state, at, Timer::Room(room_id.to_owned()));
            }
        }
        if ended {
            self.finish(state, room_id);
        }
    }

    /// Records a finished match once, tells its players, and keeps its transcript.
    pub(super) fn finish(&self, state: &mut State, room_id: &str) {
        let Some(mut room) = state.rooms.remove(room_id) else {
            return;
        };
        if let Some(at) = room.deadline {
            state.timers.remove(&(at, Timer::Room(room_id.to_owned())));
        }
        self.spectators_done(state, &mut room.spectators);
        let outcome = room.log.iter().rev().find_map(|event| match &event.kind {
            EventKind::MatchEnded {
                outcome, reason, ..
            } => Some((*outcome, *reason)),
            _ => None,
        });
        let (outcome, reason) =
            outcome.unwrap_or((MatchOutcome::NoContest, game::matches::EndReason::Drained));
        let result_of = |seat: Seat| match outcome {
            MatchOutcome::Won(winner) if winner == seat => SideResult::Won,
            MatchOutcome::Won(_) => SideResult::Lost,
            MatchOutcome::NoContest => SideResult::NoContest,
        };
        self.metrics.match_finished(outcome, reason);
        let mut changes: PerSeat<Option<Change>> = PerSeat::default();
        match (&room.seats.a, &room.seats.b) {
            (Occupant::Human(a), Occupant::Human(b)) => {
                let (change_a, change_b) = state.records.record_human_match_at(
                    room_id,
                    a,
                    b,
                    result_of(Seat::A),
                    self.now_ms(),
                );
                changes = PerSeat::new(Some(change_a), Some(change_b));
                // Shared: the ratings the match started from (read from Redis when queued)
                // are the ones it moves, and the result is recorded there once.
                if let (Some(port), Some(meta)) = (self.cluster.get(), &room.meta) {
                    let (shared_a, shared_b) = port.record(room_id, meta, result_of(Seat::A));
                    changes = PerSeat::new(Some(shared_a), Some(shared_b));
                }
            }
            _ => {
                for seat in Seat::BOTH {
                    match &room.seats[seat] {
                        Occupant::Human(account) => {
                            changes[seat] = Some(state.records.record_bot_match(
                                room_id,
                                account,
                                result_of(seat),
                            ));
                        }
                        Occupant::Bot { arm, .. } => match result_of(seat) {
                            SideResult::Won => self.experiment.count(*arm, |a| &a.bot_wins),
                            SideResult::Lost => self.experiment.count(*arm, |a| &a.human_wins),
                            SideResult::NoContest => {}
                        },
                    }
                }
            }
        }
        let summary = |seat: Seat| match &room.seats[seat] {
            Occupant::Human(account) => SeatSummary {
                kind: "human",
                id: account.to_string(),
                name: room.names[seat].clone(),
            },
            Occupant::Bot { .. } => SeatSummary {
                kind: "bot",
                id: room.names[seat].clone(),
                name: room.names[seat].clone(),
            },
        };
        for seat in Seat::BOTH {
            let (Occupant::Human(account), Some(change)) = (&room.seats[seat], changes[seat])
            else {
                continue;
            };
            let Some(player) = state.players.get_mut(account) else {
                continue;
            };
            // Not seated in it (any more): a stale taking of a match that ended while the
            // player has moved on; its result reached the player when it ended.
            let seated = player.room.as_ref().is_some_and(|(id, _)| id == room_id);
            // The seat is freed (if it still names this match) unless the player is away from
            // a match it sits in: then a resume anywhere finds the match and its end.
            if let Some(port) = self.cluster.get()
                && (!seated || player.link.is_some())
            {
                port.write(super::super::cluster::Write::Seat {
                    account: account.to_string(),
                    match_id: room_id.to_owned(),
                    taken: false,
                });
            }
            if !seated {
                continue;
            }
            player.room = None;
            let result = match result_of(seat) {
                SideResult::Won => protocol::Result::Won,
                SideResult::Lost => protocol::Result::Lost,
                SideResult::NoContest => protocol::Result::NoContest,
            };
            let message = ServerMessage::MatchResult {
                match_id: room_id.to_owned(),
                result,
                rating_before: change.before,
                rating_after: change.after,
                rated: change.rated,
            };
            match &player.link {
                Some(link) => {
                    link.outbox.push(message);
                    if player.gateway.is_some() {
                        // Relayed: the player is its gateway's again (once the answer to
                        // the command that ended the match is queued too).
                        state.releasing.push((*account, link.id));
                    }
                }
                None => {
                    player.unseen = Some(Box::new(Unseen {
                        match_id: room_id.to_owned(),
                        seat,
                        matched: matched_message(
                            room_id,
                            &room,
                            seat,
                            "",
                            self.settings.round_timeout_ms(),
                        ),
                        result: message,
                    }));
                }
            }
        }
        let _ = room.fallback;
        if room.fence > 0
            && let Some(port) = self.cluster.get()
        {
            port.write(super::super::cluster::Write::Release {
                match_id: room_id.to_owned(),
                fence: room.fence,
            });
        }
        state.records.keep(Finished {
            match_id: room_id.to_owned(),
            seats: PerSeat::new(summary(Seat::A), summary(Seat::B)),
            events: public(&room.log),
        });
    }

    pub(super) fn seat_command(
        &self,
        state: &mut State,
        caller: &Caller,
        id: Option<u64>,
        now: u64,
        command: impl FnOnce(Seat) -> Command,
    ) -> After {
        let room = state
            .players
            .get(&caller.account)
            .and_then(|player| player.room.clone());
        let Some((room_id, seat)) = room else {
            caller
                .link
                .outbox
                .push(error(id, codes::NOT_IN_MATCH, "not in a match"));
            return After::Continue;
        };
        // The answer goes out ahead of the events the command caused: the caller's outbox is
        // emptied only by the caller's own task, which is in this call.
        let mark = caller.link.outbox.len();
        match self.run(state, &room_id, command(seat), now) {
            Ok(()) => {
                caller.link.outbox.insert(mark, ServerMessage::Ack { id });
            }
            Err(refused) => {
                caller
                    .link
                    .outbox
                    .push(error(id, codes::MOVE_REFUSED, refused.to_string()));
            }
        }
        After::Continue
    }
}

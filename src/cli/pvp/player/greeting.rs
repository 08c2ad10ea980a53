//! How a connection greets the server and picks the match up again: `hello` the first time,
//! `resume` with the last event seen after a drop, and `hello` again when the server no longer
//! knows the resume token, with a ping as a barrier to learn whether it replayed anything.

use game::Seat;
use protocol::ClientMessage;

use super::super::narrate::printable;
use super::match_view::Game;
use super::{Finish, Player, Step};

impl Player {
    /// A new connection is open: the greeting to send.
    pub fn connected(&mut self) -> Step {
        let mut step = Step::default();
        self.greeted = false;
        self.resume_id = None;
        self.ping = None;
        self.barrier = None;
        self.replay_left = None;
        match self.resume_token.clone() {
            Some(token) => {
                let id = self.id();
                self.resume_id = id;
                let last_seq = self.game.as_ref().and_then(|game| game.last_seq);
                step.send.push(ClientMessage::Resume {
                    id,
                    token,
                    last_seq,
                });
            }
            None => {
                let id = self.id();
                step.send.push(ClientMessage::Hello { id });
            }
        }
        step
    }

    /// The connection dropped.
    pub fn disconnected(&mut self) {
        self.greeted = false;
        if let Some(game) = &mut self.game {
            game.sent_round = None;
        }
    }

    pub(super) fn welcomed(
        &mut self,
        step: &mut Step,
        account: &str,
        name: Option<&str>,
        rating: f64,
        now: u64,
    ) {
        self.greeted = true;
        let ping = self.ping_now(now);
        step.send.push(ping);
        if !self.greeted_before {
            self.greeted_before = true;
            let name = printable(name.unwrap_or(account));
            step.say(format!(
                "connected as {name} (account {}, rating {rating:.0})",
                printable(account)
            ));
            self.send_queue(step);
            return;
        }
        // A `hello` after a refused `resume`: it replays a running match from its start, or a
        // waiting ticket, and the pong of the ping just sent comes after whatever it replays.
        self.barrier = self.ping.map(|(id, _)| id);
        self.confirmed = false;
    }

    pub(super) fn resumed(
        &mut self,
        step: &mut Step,
        match_id: Option<String>,
        seat: Option<Seat>,
        replayed: u64,
        complete: bool,
        queued: bool,
    ) {
        step.say(match (replayed, complete) {
            (0, true) => "resumed: nothing was missed".to_owned(),
            (n, true) => format!("resumed: replaying the {n} event(s) missed, complete"),
            // The protocol documents an incomplete replay as the whole log from its start; the
            // server also sends it with nothing when a finished match's log is forgotten.
            (n, false) => format!(
                "resumed, incomplete: the server no longer has every event missed; replaying \
                 the {n} it has (seen ones are skipped)"
            ),
        });
        if replayed > 0 {
            self.replay_left = Some(replayed);
        }
        match (match_id, &self.game) {
            (Some(id), Some(game)) if game.match_id == id => {}
            (Some(id), _) => {
                // A match this client never heard of (its `matched` was lost with the
                // connection): the seat is known, the opponent's name is not.
                step.say(format!("resumed into match {}", printable(&id)));
                let seat = seat.unwrap_or(Seat::A);
                self.game = Some(Game::new(id, seat, "your opponent".to_owned()));
                self.ticket = None;
            }
            (None, Some(game)) if game.running() => {
                let failure = format!(
                    "the server no longer has match {} for this account",
                    printable(&game.match_id)
                );
                self.finish(step, Finish::Failed(failure));
                return;
            }
            (None, _) if queued => {}
            (None, _) => {
                self.ticket = None;
                self.send_queue(step);
            }
        }
        self.maybe_move(step);
    }

    pub(super) fn pong(&mut self, step: &mut Step, id: Option<u64>, server_time_ms: u64, now: u64) {
        if let Some((sent_id, sent_at)) = self.ping
            && id == Some(sent_id)
        {
            self.ping = None;
            // The server read its clock about half a round trip after the ping left.
            let midpoint = sent_at + now.saturating_sub(sent_at) / 2;
            self.offset_ms = server_time_ms as i64 - midpoint as i64;
        }
        if self.barrier.is_none() || self.barrier != id {
            return;
        }
        self.barrier = None;
        if self.confirmed {
            self.maybe_move(step);
            return;
        }
        if let Some(game) = self.game.as_ref().filter(|game| game.running()) {
            let failure = format!(
                "match {id} ended while this client was away (the grace window passed); \
                 `guess-game verify --match {id} --server {server}` shows how",
                id = printable(&game.match_id),
                server = self.server
            );
            self.finish(step, Finish::Failed(failure));
            return;
        }
        self.ticket = None;
        self.send_queue(step);
    }

    /// A refused `resume`: greet with `hello` instead.
    pub(super) fn resume_refused(&mut self, step: &mut Step, message: &str) {
        self.resume_token = None;
        self.resume_id = None;
        step.say(format!(
            "the server did not take the resume token ({}); greeting anew, which replays a \
             running match from its start",
            printable(message)
        ));
        let id = self.id();
        step.send.push(ClientMessage::Hello { id });
    }
}

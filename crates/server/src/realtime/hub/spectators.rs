//! Spectators: read-only watchers of a running match. A spectator gets the match's public
//! log so far, then each public event as it is appended (sealed moves never: they are not
//! public), on whichever instance runs the match: a spectator connected elsewhere is a relay,
//! as a relayed player is. Each match takes at most [`MAX_SPECTATORS`]; one that stops
//! reading is dropped when its outbox fills, not waited for.

use super::cluster::{Gateway, Port, RELEASED};
use super::*;
use crate::realtime::cluster::Envelope;

/// Spectators one match takes at most (on the instance that runs it).
pub const MAX_SPECTATORS: usize = 64;

/// One spectator of a room.
#[derive(Debug)]
pub(super) struct Spectator {
    pub(super) link: Link,
    /// Relayed: the connection's instance and link there.
    gateway: Option<Gateway>,
}

/// What a connection here watches.
#[derive(Debug)]
pub(super) struct Watching {
    match_id: String,
    /// The instance running it, when not this one.
    owner: Option<String>,
    /// The connection here.
    link: Link,
}

impl Hub {
    pub(super) fn spectate(
        &self,
        state: &mut State,
        caller: &Caller,
        id: Option<u64>,
        match_id: &str,
    ) {
        self.unspectate(state, caller.link.id);
        if state.rooms.contains_key(match_id) || state.records.transcript(match_id).is_some() {
            if self.watch(state, match_id, caller.link.clone(), None, id) {
                state.spectating.insert(
                    caller.link.id,
                    Watching {
                        match_id: match_id.to_owned(),
                        owner: None,
                        link: caller.link.clone(),
                    },
                );
            }
            return;
        }
        let Some(port) = self.cluster.get() else {
            self.metrics.spectate_refused(0);
            caller.link.outbox.push(unknown(id));
            return;
        };
        // Elsewhere, maybe: the instance holding its lease runs it.
        self.spawn_spectate(port, caller.clone(), id, match_id.to_owned());
    }

    fn spawn_spectate(&self, port: &Port, caller: Caller, id: Option<u64>, match_id: String) {
        let Some(hub) = self.arc() else {
            return;
        };
        let cluster = Arc::clone(&port.cluster);
        port.runtime.spawn(async move {
            let owner = cluster
                .owners(std::slice::from_ref(&match_id))
                .await
                .ok()
                .and_then(|mut owners| owners.pop().flatten());
            let Some(port) = hub.cluster.get() else {
                return;
            };
            let mut state = hub.lock();
            match owner {
                Some(owner) if owner != port.instance() => {
                    port.send(
                        &owner,
                        Envelope::Spectate {
                            from: port.instance().to_owned(),
                            account: caller.account.to_string(),
                            link: caller.link.id,
                            request: id,
                            match_id: match_id.clone(),
                        },
                    );
                    state.spectating.insert(
                        caller.link.id,
                        Watching {
                            match_id,
                            owner: Some(owner),
                            link: caller.link.clone(),
                        },
                    );
                }
                _ => {
                    hub.metrics.spectate_refused(0);
                    caller.link.outbox.push(unknown(id));
                }
            }
        });
    }

    /// Adds `link` to the room's spectators, with the log so far; false when refused.
    fn watch(
        &self,
        state: &mut State,
        match_id: &str,
        link: Link,
        gateway: Option<Gateway>,
        id: Option<u64>,
    ) -> bool {
        let Some(room) = state.rooms.get_mut(match_id) else {
            // Just finished here (a spectator following a match that moved may arrive after
            // its end): its transcript, which ends with `match_ended`.
            if let Some(finished) = state.records.transcript(match_id) {
                link.outbox.push(ServerMessage::Ack { id });
                for event in finished.events.iter().cloned() {
                    link.outbox.push_replayed(ServerMessage::Event {
                        match_id: match_id.to_owned(),
                        event,
                    });
                }
                return false;
            }
            self.metrics.spectate_refused(0);
            link.outbox.push(unknown(id));
            return false;
        };
        room.spectators.retain(|s| !s.link.outbox.is_closed());
        if room.spectators.len() >= MAX_SPECTATORS {
            self.metrics.spectate_refused(1);
            link.outbox.push(error(
                id,
                codes::SPECTATORS_FULL,
                format!("a match takes at most {MAX_SPECTATORS} spectators"),
            ));
            return false;
        }
        link.outbox.push(ServerMessage::Ack { id });
        for event in public(&room.log) {
            link.outbox.push_replayed(ServerMessage::Event {
                match_id: match_id.to_owned(),
                event,
            });
        }
        room.spectators.push(Spectator { link, gateway });
        true
    }

    /// Stops what the connection `link` watches; false when it watched nothing.
    pub(super) fn unspectate(&self, state: &mut State, link: u64) -> bool {
        let Some(watching) = state.spectating.remove(&link) else {
            return false;
        };
        match (&watching.owner, self.cluster.get()) {
            (Some(owner), Some(port)) => port.send(
                owner,
                Envelope::Unspectate {
                    from: port.instance().to_owned(),
                    link,
                    match_id: watching.match_id,
                },
            ),
            _ => {
                if let Some(room) = state.rooms.get_mut(&watching.match_id) {
                    room.spectators
                        .retain(|s| s.gateway.is_some() || s.link.id != link);
                }
            }
        }
        true
    }

    /// A connection on another instance watches a match run here.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn remote_spectate(
        &self,
        port: &Port,
        from: &str,
        account: &str,
        link: u64,
        request: Option<u64>,
        match_id: &str,
        attempt: u32,
    ) {
        let Ok(account) = AccountId::from(account) else {
            return;
        };
        // A spectator following a moved match may ask a moment before this instance has
        // rebuilt it (the lease is taken just before): asked again shortly, a few times.
        let arriving = {
            let state = self.lock();
            request.is_none()
                && !state.rooms.contains_key(match_id)
                && state.records.transcript(match_id).is_none()
        };
        if arriving && attempt < 3 {
            if let Some(hub) = self.arc() {
                let (from, account, match_id) =
                    (from.to_owned(), account.to_string(), match_id.to_owned());
                port.runtime.spawn(async move {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    if let Some(port) = hub.cluster.get() {
                        hub.remote_spectate(
                            port,
                            &from,
                            &account,
                            link,
                            None,
                            &match_id,
                            attempt + 1,
                        );
                    }
                });
            }
            return;
        }
        let relay = self.relay(port, from, link, &account, true);
        let mut state = self.lock();
        let gateway = Gateway {
            instance: from.to_owned(),
            link,
            last_request: None,
        };
        if !self.watch(&mut state, match_id, relay.clone(), Some(gateway), request) {
            relay.outbox.close(RELEASED);
        }
    }

    pub(super) fn remote_unspectate(&self, from: &str, link: u64, match_id: &str) {
        let mut state = self.lock();
        let Some(room) = state.rooms.get_mut(match_id) else {
            return;
        };
        room.spectators.retain(|s| {
            let this = s
                .gateway
                .as_ref()
                .is_some_and(|g| g.instance == from && g.link == link);
            if this {
                s.link.outbox.close(RELEASED);
            }
            !this
        });
    }

    /// (link, match, owner) of every connection here watching a match run elsewhere.
    pub(super) fn watched_elsewhere(&self) -> Vec<(u64, String, String)> {
        let state = self.lock();
        state
            .spectating
            .iter()
            .filter_map(|(link, w)| Some((*link, w.match_id.clone(), w.owner.clone()?)))
            .collect()
    }

    /// A watched match moved to `owner` (its owner was lost or drained): the spectator
    /// subscribes there again, and gets the log again from its start.
    pub(super) fn spectated_moved(&self, link: u64, match_id: &str, owner: &str) {
        let Some(port) = self.cluster.get() else {
            return;
        };
        let mut state = self.lock();
        let Some(watching) = state.spectating.get_mut(&link) else {
            return;
        };
        if watching.match_id != match_id || watching.owner.as_deref() == Some(owner) {
            return;
        }
        watching.owner = Some(owner.to_owned());
        let account = state
            .players
            .iter()
            .find(|(_, p)| p.link.as_ref().is_some_and(|l| l.id == link))
            .map(|(account, _)| account.to_string());
        let Some(account) = account else {
            state.spectating.remove(&link);
            return;
        };
        port.send(
            owner,
            Envelope::Spectate {
                from: port.instance().to_owned(),
                account,
                link,
                request: None,
                match_id: match_id.to_owned(),
            },
        );
    }

    /// What the instance running a watched match sent a spectator here.
    pub(super) fn delivered_to_spectator(
        &self,
        from: &str,
        link: u64,
        messages: Vec<ServerMessage>,
        release: bool,
    ) {
        let mut state = self.lock();
        let Some(local) = state
            .spectating
            .get(&link)
            .filter(|w| w.owner.as_deref() == Some(from))
            .map(|w| w.link.clone())
        else {
            return;
        };
        // The match's end ends the watching here at once; the relay's release may follow in
        // a later envelope, after the spectator has already asked something else.
        let ended = messages.iter().any(|m| {
            matches!(m, ServerMessage::Event { event, .. }
                if matches!(event.kind, game::matches::EventKind::MatchEnded { .. }))
        });
        for message in messages {
            local.outbox.push(message);
        }
        if release || ended {
            state.spectating.remove(&link);
        }
    }

    /// The match ended (its last event already sent): its spectators are done.
    pub(super) fn spectators_done(&self, state: &mut State, spectators: &mut Vec<Spectator>) {
        for spectator in spectators.drain(..) {
            match spectator.gateway {
                Some(_) => spectator.link.outbox.close(RELEASED),
                None => {
                    state.spectating.remove(&spectator.link.id);
                }
            }
        }
    }
}

fn unknown(id: Option<u64>) -> ServerMessage {
    error(id, codes::MATCH_UNKNOWN, "no running match has that id")
}

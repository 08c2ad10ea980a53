//! The connections of one `pvp` run, one after another: each is greeted, spoken on until the
//! match is over or it drops, and replaced with backoff for as long as the server's grace
//! window lasts. What to say is the [`Player`]'s business; this only carries it out.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use guess_game::client::ServerUrl;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::input::{self, Input, Keys};
use super::link::{Incoming, Link, OpenError};
use super::narrate;
use super::player::{Command, Finish, PING_EVERY_MS, Player, Step};
use super::screen::Screen;
use crate::cli::account::access_token_for;

/// Reconnection backoff: the first retry after about this long, doubling up to the cap.
const RECONNECT_FIRST: Duration = Duration::from_millis(200);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// The bearer token to connect with, and whether it came from the saved session (which can
/// refresh it).
pub struct Credentials {
    pub token: String,
    pub saved: bool,
}

/// How one connection ended.
enum Ended {
    Finished(Finish),
    Dropped(String),
}

/// What woke the connection's loop.
enum Happening {
    Incoming(Incoming),
    Input(Option<Input>),
    Tick,
}

pub struct Session {
    pub player: Player,
    pub screen: Screen,
    pub keys: Keys,
    pub server: ServerUrl,
    /// The base URL as given: the saved session names its server so.
    pub base: String,
    pub credentials: Credentials,
    /// `None` with `--moves`, and once standard input has ended.
    pub inputs: Option<mpsc::Receiver<Input>>,
    pub timeout: Duration,
}

impl Session {
    pub async fn play(&mut self) -> Finish {
        let mut link = match self.open_first().await {
            Ok(link) => link,
            Err(why) => return Finish::Failed(why),
        };
        loop {
            match self.converse(&mut link).await {
                Ended::Finished(finish) => {
                    link.close().await;
                    return finish;
                }
                Ended::Dropped(why) => {
                    self.player.disconnected();
                    self.screen
                        .say(&format!("connection lost: {why}; reconnecting"));
                    link = match self.reconnect().await {
                        Ok(link) => link,
                        Err(finish) => return finish,
                    };
                    self.screen.say("reconnected");
                }
            }
        }
    }

    async fn open_first(&mut self) -> Result<Link, String> {
        let opened = match Link::open(&self.server, &self.credentials.token, self.timeout).await {
            Err(OpenError::Unauthorized) => {
                self.refresh().await?;
                Link::open(&self.server, &self.credentials.token, self.timeout).await
            }
            opened => opened,
        };
        opened.map_err(|error| match error {
            OpenError::Unauthorized => "the server does not accept this account's token".into(),
            OpenError::Unreachable(why) | OpenError::Refused(why) => why,
        })
    }

    /// A new access token from the saved session's refresh token.
    async fn refresh(&mut self) -> Result<(), String> {
        let expired = "the access token expired: sign in again with `guess-game account`";
        if !self.credentials.saved {
            return Err(expired.to_owned());
        }
        let token = access_token_for(&self.server, &self.base, self.timeout).await;
        self.credentials.token = token.ok_or(expired)?;
        Ok(())
    }

    /// Opens a new connection with backoff until the grace window has passed.
    async fn reconnect(&mut self) -> Result<Link, Finish> {
        let give_up = Instant::now() + self.player.grace();
        let mut delay = RECONNECT_FIRST;
        let mut refreshed = false;
        loop {
            // Jittered so that the players of a restarted server do not all return at once.
            let pause = delay.mul_f64(0.5 + fastrand::f64() / 2.0);
            if let Some(finish) = self.pause(pause).await {
                return Err(finish);
            }
            let why = match Link::open(&self.server, &self.credentials.token, self.timeout).await {
                Ok(link) => return Ok(link),
                Err(OpenError::Unauthorized) if !refreshed => {
                    refreshed = true;
                    self.refresh().await.map_err(Finish::Failed)?;
                    continue;
                }
                Err(OpenError::Unauthorized) => {
                    let why = "the server no longer accepts this account's token";
                    return Err(Finish::Failed(why.to_owned()));
                }
                Err(OpenError::Refused(why)) => return Err(Finish::Failed(why)),
                Err(OpenError::Unreachable(why)) => why,
            };
            if Instant::now() >= give_up {
                let grace = humantime::format_duration(self.player.grace());
                let why = format!("could not reconnect within the {grace} grace window: {why}");
                return Err(Finish::Failed(why));
            }
            self.screen.say(&format!("reconnecting failed: {why}"));
            delay = (delay * 2).min(RECONNECT_MAX);
        }
    }

    /// Waits `pause` while disconnected, still taking commands (a move is kept, `q` leaves).
    async fn pause(&mut self, pause: Duration) -> Option<Finish> {
        let until = Instant::now() + pause;
        loop {
            let input = tokio::select! {
                () = tokio::time::sleep_until(until) => return None,
                input = next_input(&mut self.inputs) => input,
            };
            let step = match self.command(input) {
                Some(command) => self.player.on_command(command),
                None => continue,
            };
            self.print(&step);
            if step.finish.is_some() {
                return step.finish;
            }
        }
    }

    /// Speaks with the server on `link` until the match is over or the connection drops.
    async fn converse(&mut self, link: &mut Link) -> Ended {
        let greeting = self.player.connected();
        if let Some(ended) = self.carry_out(link, greeting).await {
            return ended;
        }
        // The client pings every PING_EVERY_MS: a connection silent for a whole timeout past
        // that is gone, whether or not TCP has noticed.
        let silence_limit = self.timeout + Duration::from_millis(PING_EVERY_MS);
        let mut last_heard = Instant::now();
        let mut ticker = tokio::time::interval(Duration::from_millis(250));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            // Every branch is cancel-safe: a frame half read stays in the stream, a queued
            // input in its channel, and a tick is only a tick.
            let happening = tokio::select! {
                incoming = link.next() => Happening::Incoming(incoming),
                input = next_input(&mut self.inputs) => Happening::Input(input),
                _ = ticker.tick() => Happening::Tick,
            };
            let step = match happening {
                Happening::Incoming(incoming) => {
                    last_heard = Instant::now();
                    match incoming {
                        Incoming::Message(message) => self.player.on_server(message, unix_ms()),
                        Incoming::Noise => continue,
                        Incoming::Unreadable(why) => {
                            let why = narrate::printable(&why);
                            self.screen
                                .say(&format!("ignored a message not understood: {why}"));
                            continue;
                        }
                        Incoming::Closed { code, reason } => return closed(code, &reason),
                        Incoming::Failed(why) => return Ended::Dropped(why),
                    }
                }
                Happening::Input(input) => match self.command(input) {
                    Some(command) => self.player.on_command(command),
                    None => continue,
                },
                Happening::Tick => {
                    if last_heard.elapsed() > silence_limit {
                        let silence = humantime::format_duration(silence_limit);
                        return Ended::Dropped(format!("no word from the server for {silence}"));
                    }
                    self.player.tick(unix_ms())
                }
            };
            if let Some(ended) = self.carry_out(link, step).await {
                return ended;
            }
            let status = self
                .keys
                .prompt()
                .unwrap_or_else(|| self.player.status(unix_ms()));
            self.screen.set_status(status);
        }
    }

    /// Prints and sends what a step says; returns how the connection ends, if it does.
    async fn carry_out(&mut self, link: &mut Link, step: Step) -> Option<Ended> {
        self.print(&step);
        for message in &step.send {
            if let Err(why) = link.send(message).await {
                // A finishing step's last messages (a cancel) are a courtesy: the finish stands.
                return Some(match step.finish {
                    Some(finish) => Ended::Finished(finish),
                    None => Ended::Dropped(why),
                });
            }
        }
        step.finish.map(Ended::Finished)
    }

    fn print(&mut self, step: &Step) {
        for line in &step.print {
            self.screen.say(line);
        }
    }

    /// The command an input stands for, if any; `None` input is the end of standard input.
    fn command(&mut self, input: Option<Input>) -> Option<Command> {
        match input? {
            Input::Key(key) => self.keys.press(key),
            Input::Line(line) => input::parse_line(&line),
            Input::Overlong => {
                self.screen
                    .say("skipped a line too long to be a move or chat");
                None
            }
        }
    }
}

/// The next input; never ready once standard input has ended (the channel is then dropped).
async fn next_input(inputs: &mut Option<mpsc::Receiver<Input>>) -> Option<Input> {
    let Some(receiver) = inputs else {
        return std::future::pending().await;
    };
    let input = receiver.recv().await;
    if input.is_none() {
        *inputs = None;
    }
    input
}

/// What a close frame means for the client: some closes are final, the rest are reconnected.
fn closed(code: u16, reason: &str) -> Ended {
    let reason = narrate::printable(reason);
    let finished = |why: String| Ended::Finished(Finish::Failed(why));
    match code {
        protocol::close::REPLACED => {
            finished("another connection of this account took over".into())
        }
        protocol::close::SESSION_ENDED => {
            finished("the session ended: sign in again with `guess-game account`".into())
        }
        protocol::close::POLICY => finished(format!("the server closed the connection: {reason}")),
        _ => Ended::Dropped(format!(
            "the server closed the connection ({code} {reason})"
        )),
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

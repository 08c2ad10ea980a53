//! `guess-game pvp`: a match in real time over the `/ws` WebSocket, in a terminal or scripted.
//!
//! [`player`] is the client's side of the protocol as a state machine without I/O (messages
//! and commands in; messages to send, lines to print and the finish out), unit-tested without a
//! socket. [`session`] carries it out over connections one after another: when one drops, the
//! next is opened with backoff for as long as the server's grace window lasts, and the player
//! resumes the match on it. [`link`] is one connection with its deadlines, [`input`] turns keys
//! or lines into commands, [`screen`] prints and [`narrate`] words it all. This file reads the
//! command line and signs in.

mod input;
mod link;
mod narrate;
mod player;
mod screen;
mod session;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::{Args, ValueEnum};
use game::Choice;
use game::matches::Mode;
use guess_game::client::ServerUrl;
use http::{Method, StatusCode};
use protocol::Opponent;

use input::{Keys, RawMode};
use player::{Finish, Plan, Player, Wanted};
use screen::Screen;
use session::{Credentials, Session};

use super::account::{AccountArgs, AccountCommand, access_token_for, load_session, run_account};
use super::connection::ConnectionArgs;

const CONTROLS: &str = "\
Controls in a terminal: r, p or s plays a move (pressed before a round opens, or after you
locked in, it is kept for the next round); / or Enter starts a chat line, which Enter sends
and Esc drops; q leaves, forfeiting a running match (Ctrl-C too). The bottom line counts down
to the round's deadline by the server's clock.

When standard input is not a terminal it is read line by line: r/rock, p/paper, s/scissors
play, q/quit leaves, any other line is chat (start it with / to send a line that would be a
command, e.g. \"/r\"). The end of the input ends nothing: the match goes on, and a round
without a move is forfeited at its deadline.

With --moves nothing is read: the moves are played in order, one per round, and from the start
again if the match needs more rounds (ties). The command stops when the match ends, or after
--max-time (10 minutes unless given).

A dropped connection is resumed: reconnecting with backoff (0.2 s doubling to 5 s, jittered)
for as long as the server's grace window lasts (told in its welcome, 30 s by default), then
`resume` with the last event seen. What was replayed is printed, and whether it was complete.

The account is the session `guess-game account` saved for --server. Without a saved session a
guest is created and saved, as `guess-game account guest` does; with a session for another
server (or one the server no longer accepts) the match is played as a new guest that is not
saved, so the saved session stays as it was.

At the end the result, the rating change and the match id are printed, with the command that
verifies the match's transcript. Exit codes: 0 the match was played to its result (or left);
1 it could not be played or followed to its end (server unreachable, nobody found, connection
lost for good, --max-time); 2 usage.";

/// How long an unattended `--moves` run may take when `--max-time` is not given: a best-of-5
/// with every round running to a 10 s deadline takes under 2 minutes, ties aside.
const SCRIPTED_MAX_TIME: Duration = Duration::from_secs(600);

#[derive(Debug, Args)]
#[command(after_long_help = CONTROLS)]
pub struct PvpArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// How many round wins decide the match
    #[arg(long, value_enum, default_value = "best_of_3")]
    pub mode: ModeArg,
    /// Who to meet: a person, a bot at once, or a person if one is found soon (a bot otherwise)
    #[arg(long, value_enum, default_value = "any")]
    pub opponent: OpponentArg,
    /// With --opponent any: how long to look for a person before a bot, e.g. "5s"
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub bot_after: Option<Duration>,
    /// Play these moves unattended, one per round, e.g. "rpsr" (see below); stdin is not read
    #[arg(long, value_name = "MOVES", value_parser = parse_script)]
    pub moves: Option<Script>,
    /// Give up after this long in all [default: 10m with --moves, no limit otherwise]
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub max_time: Option<Duration>,
    /// Give up on one request, connection attempt or greeting after this long
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ModeArg {
    #[value(name = "best_of_1")]
    BestOf1,
    #[value(name = "best_of_3")]
    BestOf3,
    #[value(name = "best_of_5")]
    BestOf5,
}

impl From<ModeArg> for Mode {
    fn from(mode: ModeArg) -> Mode {
        match mode {
            ModeArg::BestOf1 => Mode::BestOf1,
            ModeArg::BestOf3 => Mode::BestOf3,
            ModeArg::BestOf5 => Mode::BestOf5,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OpponentArg {
    Human,
    Bot,
    Any,
}

impl From<OpponentArg> for Opponent {
    fn from(opponent: OpponentArg) -> Opponent {
        match opponent {
            OpponentArg::Human => Opponent::Human,
            OpponentArg::Bot => Opponent::Bot,
            OpponentArg::Any => Opponent::Any,
        }
    }
}

/// The moves of `--moves`.
#[derive(Clone, Debug)]
pub struct Script(Vec<Choice>);

fn parse_script(text: &str) -> Result<Script, String> {
    input::parse_moves(text).map(Script)
}

pub async fn run_pvp(args: PvpArgs) -> ExitCode {
    let server = match args.connection.url() {
        Ok(server) => server,
        Err(error) => {
            eprintln!("guess-game: {error}");
            return ExitCode::from(2);
        }
    };
    let credentials = match sign_in(&server, &args).await {
        Ok(credentials) => credentials,
        Err(error) => {
            eprintln!("guess-game: {error}");
            return ExitCode::FAILURE;
        }
    };
    let raw = match args.moves.is_none() && std::io::stdin().is_terminal() {
        true => RawMode::enable()
            .inspect_err(|error| eprintln!("guess-game: no raw mode ({error}): reading lines"))
            .ok(),
        false => None,
    };
    let (plan, inputs) = match &args.moves {
        Some(Script(moves)) => (
            Plan::Script {
                moves: moves.clone(),
                next: 0,
            },
            None,
        ),
        None if raw.is_some() => (Plan::Typed(Default::default()), Some(input::read_keys())),
        None => (Plan::Typed(Default::default()), Some(input::read_lines())),
    };
    let wanted = Wanted {
        mode: args.mode.into(),
        opponent: args.opponent.into(),
        bot_after_ms: args.bot_after.map(|after| after.as_millis() as u64),
    };
    let max_time = args
        .max_time
        .or(args.moves.is_some().then_some(SCRIPTED_MAX_TIME));
    let mut session = Session {
        player: Player::new(wanted, plan, args.connection.server.clone()),
        screen: Screen::new(raw.is_some()),
        keys: Keys::default(),
        server,
        base: args.connection.server.clone(),
        credentials,
        inputs,
        timeout: args.timeout,
    };
    let finish = match max_time {
        Some(limit) => tokio::time::timeout(limit, session.play())
            .await
            .unwrap_or_else(|_| {
                let limit = humantime::format_duration(limit);
                Finish::Failed(format!("gave up after --max-time {limit}"))
            }),
        None => session.play().await,
    };
    session.screen.clear_status();
    drop(raw);
    match finish {
        Finish::Played | Finish::Left => ExitCode::SUCCESS,
        Finish::Failed(why) => {
            eprintln!("guess-game: {why}");
            ExitCode::FAILURE
        }
    }
}

/// Signs in with the saved session, else as a new guest (saved only if nothing was).
async fn sign_in(server: &ServerUrl, args: &PvpArgs) -> Result<Credentials, String> {
    let saved = |token| Credentials { token, saved: true };
    if let Some(token) = access_token_for(server, &args.connection.server, args.timeout).await {
        return Ok(saved(token));
    }
    if load_session().is_none() {
        let guest = AccountArgs {
            command: AccountCommand::Guest,
            connection: args.connection.clone(),
            timeout: args.timeout,
        };
        if run_account(guest).await != ExitCode::SUCCESS {
            return Err("could not sign in as a guest".to_owned());
        }
        return access_token_for(server, &args.connection.server, args.timeout)
            .await
            .map(saved)
            .ok_or_else(|| "the new guest's session does not sign in".to_owned());
    }
    // Replacing the saved session would sign the user out of wherever it is for.
    println!(
        "the saved session is not one {} accepts: playing as a new guest, not saved",
        args.connection.server
    );
    let answer = server
        .send(
            Method::POST,
            "/accounts/guest",
            &[("accept", "application/json")],
            Bytes::new(),
            args.timeout,
        )
        .await
        .map_err(|error| error.to_string())?;
    if answer.status != StatusCode::CREATED {
        return Err(format!("the server refused a guest ({})", answer.status));
    }
    let body: serde_json::Value =
        serde_json::from_slice(&answer.body).map_err(|error| error.to_string())?;
    let token = body
        .pointer("/session/access_token")
        .and_then(serde_json::Value::as_str)
        .ok_or("the server's guest has no access token")?;
    Ok(Credentials {
        token: token.to_owned(),
        saved: false,
    })
}

//! `guess-game account …`: create, sign in to and manage an account on a running server.
//!
//! The session (server, account id, tokens, a guest's device secret) is kept in a file only
//! its owner can read (mode 0600): `$GUESS_GAME_SESSION_FILE`, else
//! `$XDG_CONFIG_HOME/guess-game/session.json`, else `~/.config/guess-game/session.json`.
//! `guess-game play` uses it when it is there. Passwords are read from `GUESS_GAME_PASSWORD`
//! or else the first line of standard input, never from a flag (flags show in `ps`).

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::{Args, Subcommand};
use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use guess_game::client::{Answer, ServerUrl};

use super::connection::ConnectionArgs;

#[derive(Debug, Args)]
pub struct AccountArgs {
    #[command(subcommand)]
    pub command: AccountCommand,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Give up on a request after this long
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, global = true)]
    pub timeout: Duration,
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create a guest account and sign in to it
    Guest,
    /// Give the signed-in guest a username and password (or create a registered account
    /// when signed out)
    Register {
        #[arg(long)]
        username: String,
    },
    /// Sign in with a username and password, or with the saved guest's device secret
    Login {
        /// Sign in as this user (password from GUESS_GAME_PASSWORD or stdin)
        #[arg(long, conflicts_with = "device")]
        username: Option<String>,
        /// Sign the saved guest in again with its device secret
        #[arg(long)]
        device: bool,
    },
    /// End this session and forget it
    Logout,
    /// Show the signed-in account
    Whoami,
    /// Erase the account, its stats and history, and forget the session
    Delete,
}

/// What is kept between commands.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SavedSession {
    pub server: String,
    pub account_id: String,
    pub access_token: String,
    pub refresh_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_secret: Option<String>,
}

/// Where the session is kept.
pub fn session_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("GUESS_GAME_SESSION_FILE") {
        return Some(PathBuf::from(path));
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|path| path.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(config.join("guess-game").join("session.json"))
}

/// The saved session, if any (and readable).
pub fn load_session() -> Option<SavedSession> {
    let text = std::fs::read(session_path()?).ok()?;
    serde_json::from_slice(&text).ok()
}

fn save_session(session: &SavedSession) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = session_path()
        .ok_or_else(|| std::io::Error::other("no place for the session file: set HOME"))?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let text = serde_json::to_vec_pretty(session).map_err(std::io::Error::other)?;
    // Written beside and renamed over, so a reader never sees half a file; 0600 from the
    // start, so the tokens are never readable by others even for a moment.
    let temporary = path.with_extension("json.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(&text)?;
    file.sync_all()?;
    std::fs::rename(&temporary, &path)
}

fn forget_session() {
    if let Some(path) = session_path() {
        let _ = std::fs::remove_file(path);
    }
}

fn read_password() -> Result<String, String> {
    if let Ok(password) = std::env::var("GUESS_GAME_PASSWORD") {
        return Ok(password);
    }
    eprint!("password: ");
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|error| format!("cannot read the password: {error}"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

struct Client {
    server: ServerUrl,
    base: String,
    timeout: Duration,
}

impl Client {
    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<Answer, String> {
        let authorization = token.map(|token| format!("Bearer {token}"));
        let mut headers = vec![
            ("accept", "application/json"),
            ("content-type", "application/json"),
        ];
        if let Some(value) = &authorization {
            headers.push(("authorization", value));
        }
        let body = body.map_or_else(Bytes::new, |body| Bytes::from(body.to_string()));
        self.server
            .send(method, path, &headers, body, self.timeout)
            .await
            .map_err(|error| error.to_string())
    }

    /// Sends with the saved access token, refreshing it once if it has expired.
    async fn send_signed_in(
        &self,
        session: &mut SavedSession,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Answer, String> {
        let answer = self
            .send(
                method.clone(),
                path,
                Some(&session.access_token),
                body.clone(),
            )
            .await?;
        if answer.status != StatusCode::UNAUTHORIZED {
            return Ok(answer);
        }
        let refreshed = self
            .send(
                Method::POST,
                "/sessions/refresh",
                None,
                Some(json!({"refresh_token": session.refresh_token})),
            )
            .await?;
        if refreshed.status != StatusCode::OK {
            return Ok(answer);
        }
        let tokens: Value =
            serde_json::from_slice(&refreshed.body).map_err(|error| error.to_string())?;
        session.access_token = text(&tokens, "/access_token");
        session.refresh_token = text(&tokens, "/refresh_token");
        save_session(session).map_err(|error| error.to_string())?;
        self.send(method, path, Some(&session.access_token), body)
            .await
    }
}

fn text(value: &Value, pointer: &str) -> String {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The server's refusal, as one line for people.
fn refusal(answer: &Answer) -> String {
    match serde_json::from_slice::<Value>(&answer.body) {
        Ok(problem) => format!(
            "the server refused ({}, {}): {}",
            answer.status,
            text(&problem, "/code"),
            text(&problem, "/detail")
        ),
        Err(_) => format!("the server answered {}", answer.status),
    }
}

/// Saves the session of a `SignedIn` answer and says who is signed in.
fn signed_in(
    client: &Client,
    answer: &Answer,
    device_secret: Option<String>,
) -> Result<(), String> {
    let body: Value = serde_json::from_slice(&answer.body).map_err(|error| error.to_string())?;
    let session = SavedSession {
        server: client.base.clone(),
        account_id: text(&body, "/account/id"),
        access_token: text(&body, "/session/access_token"),
        refresh_token: text(&body, "/session/refresh_token"),
        device_secret: body
            .pointer("/device_secret")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or(device_secret),
    };
    save_session(&session).map_err(|error| format!("cannot save the session: {error}"))?;
    println!(
        "signed in as {} (account {})",
        text(&body, "/account/display_name"),
        session.account_id
    );
    Ok(())
}

pub async fn run_account(args: AccountArgs) -> ExitCode {
    let server = match args.connection.url() {
        Ok(server) => server,
        Err(error) => {
            eprintln!("guess-game: {error}");
            return ExitCode::from(2);
        }
    };
    let client = Client {
        server,
        base: args.connection.server.clone(),
        timeout: args.timeout,
    };
    match run(&client, args.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("guess-game: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(client: &Client, command: AccountCommand) -> Result<(), String> {
    match command {
        AccountCommand::Guest => {
            let answer = client
                .send(Method::POST, "/accounts/guest", None, None)
                .await?;
            if answer.status != StatusCode::CREATED {
                return Err(refusal(&answer));
            }
            signed_in(client, &answer, None)
        }
        AccountCommand::Register { username } => {
            let password = read_password()?;
            let credentials = json!({"username": username, "password": password});
            match load_session() {
                Some(mut session) => {
                    let answer = client
                        .send_signed_in(
                            &mut session,
                            Method::PUT,
                            "/me/credentials",
                            Some(credentials),
                        )
                        .await?;
                    if answer.status != StatusCode::OK {
                        return Err(refusal(&answer));
                    }
                    println!("account {} is now {username}", session.account_id);
                    Ok(())
                }
                None => {
                    let answer = client
                        .send(Method::POST, "/accounts", None, Some(credentials))
                        .await?;
                    if answer.status != StatusCode::CREATED {
                        return Err(refusal(&answer));
                    }
                    signed_in(client, &answer, None)
                }
            }
        }
        AccountCommand::Login { username, device } => {
            let (body, secret) = if device {
                let secret = load_session()
                    .and_then(|session| session.device_secret)
                    .ok_or("no saved guest to sign in again (run `guess-game account guest`)")?;
                (json!({"device_secret": secret}), Some(secret))
            } else {
                let username =
                    username.ok_or("give --username, or --device for the saved guest")?;
                (
                    json!({"username": username, "password": read_password()?}),
                    None,
                )
            };
            let answer = client
                .send(Method::POST, "/sessions", None, Some(body))
                .await?;
            if answer.status != StatusCode::OK {
                return Err(refusal(&answer));
            }
            signed_in(client, &answer, secret)
        }
        AccountCommand::Logout => {
            let mut session = load_session().ok_or("not signed in")?;
            let answer = client
                .send_signed_in(&mut session, Method::DELETE, "/sessions/current", None)
                .await?;
            forget_session();
            if answer.status != StatusCode::NO_CONTENT && answer.status != StatusCode::UNAUTHORIZED
            {
                return Err(refusal(&answer));
            }
            println!("signed out");
            Ok(())
        }
        AccountCommand::Whoami => {
            let mut session = load_session().ok_or("not signed in")?;
            let answer = client
                .send_signed_in(&mut session, Method::GET, "/me", None)
                .await?;
            if answer.status != StatusCode::OK {
                return Err(refusal(&answer));
            }
            println!("{}", String::from_utf8_lossy(&answer.body));
            Ok(())
        }
        AccountCommand::Delete => {
            let mut session = load_session().ok_or("not signed in")?;
            let answer = client
                .send_signed_in(&mut session, Method::DELETE, "/me", None)
                .await?;
            if answer.status != StatusCode::NO_CONTENT {
                return Err(refusal(&answer));
            }
            forget_session();
            println!("account {} erased", session.account_id);
            Ok(())
        }
    }
}

/// The saved session's access token for `server`, refreshed if it has expired: what `play`
/// sends.
pub async fn access_token_for(server: &ServerUrl, base: &str, timeout: Duration) -> Option<String> {
    let mut session = load_session().filter(|session| session.server == base)?;
    let client = Client {
        server: server.clone(),
        base: base.to_owned(),
        timeout,
    };
    let answer = client
        .send_signed_in(&mut session, Method::GET, "/me", None)
        .await
        .ok()?;
    (answer.status == StatusCode::OK).then_some(session.access_token)
}

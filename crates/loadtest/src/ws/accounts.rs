//! The accounts the WebSocket scenarios connect as: access tokens read from a file, and guest
//! accounts created (`POST /accounts/guest`) for the rest.
//!
//! Creating 15,000 guests takes a while and the server limits it per address
//! (`accounts_per_address_per_hour`), so `--tokens-file` keeps the tokens for the next run: the
//! file's tokens are used first, and those created are appended to it. Tokens last as long as
//! the server's `access_token_lifetime` (15 minutes by default) and, with the memory store,
//! only as long as the server process.

use std::cell::{Cell, RefCell};
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use super::target::Target;
use crate::connection;
use crate::scenario::{access_token, guest_request};

/// Retries of one guest creation after a failed exchange (the connection is opened anew).
const RETRIES: u32 = 3;

/// The tokens for a run, and where they came from.
#[derive(Debug)]
pub struct Tokens {
    pub tokens: Vec<String>,
    pub reused: usize,
    pub created: usize,
    pub creation_seconds: f64,
}

/// `count` distinct tokens: the file's first, then new guests (appended to the file).
pub async fn gather(
    target: &Target,
    count: usize,
    file: Option<&Path>,
    concurrency: usize,
    timeout: Duration,
) -> Result<Tokens, String> {
    let mut tokens = match file {
        Some(path) if path.exists() => read_tokens(path)?,
        _ => Vec::new(),
    };
    tokens.truncate(count);
    let reused = tokens.len();
    let started = Instant::now();
    let missing = count - reused;
    if missing > 0 {
        eprintln!("creating {missing} guest accounts ({reused} tokens reused)");
    }
    let created = create_guests(target, missing, concurrency, timeout).await;
    let creation_seconds = started.elapsed().as_secs_f64();
    if let Some(path) = file {
        append_tokens(path, &created.tokens)?;
    }
    if let Some(failure) = created.failure {
        return Err(failure);
    }
    if missing > 0 {
        eprintln!(
            "created {missing} guests in {creation_seconds:.1}s ({:.0}/s)",
            missing as f64 / creation_seconds.max(1e-9)
        );
    }
    tokens.extend(created.tokens);
    Ok(Tokens {
        tokens,
        reused,
        created: missing,
        creation_seconds,
    })
}

/// The file's tokens, one a line, without blanks and repeats (two connections of one account
/// would replace each other).
fn read_tokens(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    Ok(distinct_lines(&text))
}

fn distinct_lines(text: &str) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && seen.insert(*line))
        .map(str::to_owned)
        .collect()
}

fn append_tokens(path: &Path, tokens: &[String]) -> Result<(), String> {
    if tokens.is_empty() {
        return Ok(());
    }
    let mut text = tokens.join("\n");
    text.push('\n');
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(|error| format!("cannot write {}: {error}", path.display()))
}

struct Created {
    tokens: Vec<String>,
    failure: Option<String>,
}

/// Creates `count` guests over `concurrency` keep-alive connections. Stops at the first
/// refusal: a 429 means the server's limits are not set for a load test.
async fn create_guests(
    target: &Target,
    count: usize,
    concurrency: usize,
    timeout: Duration,
) -> Created {
    let remaining = Cell::new(count);
    let tokens = RefCell::new(Vec::with_capacity(count));
    let failure = RefCell::new(None);
    let request = guest_request(&target.authority, &target.base_path);
    let workers = (0..concurrency.min(count)).map(|_| {
        create_on_one_connection(target, &request, timeout, &remaining, &tokens, &failure)
    });
    futures_util::future::join_all(workers).await;
    Created {
        tokens: tokens.into_inner(),
        failure: failure.into_inner(),
    }
}

async fn create_on_one_connection(
    target: &Target,
    request: &[u8],
    timeout: Duration,
    remaining: &Cell<usize>,
    tokens: &RefCell<Vec<String>>,
    failure: &RefCell<Option<String>>,
) {
    let mut stream: Option<TcpStream> = None;
    let mut input = Vec::with_capacity(4096);
    let mut retries = 0;
    while remaining.get() > 0 && failure.borrow().is_none() {
        remaining.set(remaining.get() - 1);
        let answered = async {
            let connection = match &mut stream {
                Some(connection) => connection,
                None => {
                    let connected = TcpStream::connect(target.address).await;
                    stream.insert(connected.map_err(|error| error.to_string())?)
                }
            };
            connection::exchange(connection, request, &mut input)
                .await
                .map_err(|failure| failure.name().to_owned())
        };
        let outcome = tokio::time::timeout(timeout, answered)
            .await
            .unwrap_or_else(|_| Err("timeout".to_owned()));
        match outcome {
            Ok(answer) if answer.status == 201 => match access_token(&input) {
                Some(token) => {
                    tokens.borrow_mut().push(token);
                    retries = 0;
                    if answer.close {
                        stream = None;
                    }
                }
                None => {
                    *failure.borrow_mut() =
                        Some("a guest account's answer held no access token".to_owned());
                }
            },
            Ok(answer) if answer.status == 429 => {
                *failure.borrow_mut() = Some(
                    "the server refused to create more guests (429): run it with \
                     accounts_per_address_per_hour = 0 (GUESS_GAME_ACCOUNTS_PER_ADDRESS_PER_HOUR=0) \
                     and --rate-limit-per-client 0, or pass --tokens-file with tokens made earlier"
                        .to_owned(),
                );
            }
            Ok(answer) => {
                *failure.borrow_mut() =
                    Some(format!("creating a guest was answered {}", answer.status));
            }
            Err(kind) => {
                stream = None;
                remaining.set(remaining.get() + 1);
                retries += 1;
                if retries > RETRIES {
                    *failure.borrow_mut() = Some(format!("cannot create guests: {kind}"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tokens_file_yields_distinct_tokens_in_order() {
        let text = "gga_a\n\n  gga_b \ngga_a\ngga_c\n";
        assert_eq!(distinct_lines(text), ["gga_a", "gga_b", "gga_c"]);
    }

    #[test]
    fn created_tokens_are_appended_to_the_file() {
        let path = std::env::temp_dir().join(format!("loadtest-tokens-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        append_tokens(&path, &["one".to_owned()]).unwrap();
        append_tokens(&path, &[]).unwrap();
        append_tokens(&path, &["two".to_owned(), "three".to_owned()]).unwrap();
        assert_eq!(read_tokens(&path).unwrap(), ["one", "two", "three"]);
        std::fs::remove_file(&path).unwrap();
    }
}

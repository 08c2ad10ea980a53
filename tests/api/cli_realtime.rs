//! `guess-game pvp` and `guess-game verify` run as a new user would: the built binary against
//! the real server on port 0, each player a process of its own with its own saved session.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle};

use crate::helpers::{TestApp, spawn_app_with};

const BINARY: &str = env!("CARGO_BIN_EXE_guess-game");
/// The longest wait for one line of a player's output.
const LINE_WAIT: Duration = Duration::from_secs(20);
/// The longest wait for a command to end.
const RUN_WAIT: Duration = Duration::from_secs(60);

async fn app() -> TestApp {
    spawn_app_with(|settings| {
        settings.accounts.trust_player_header = false;
        settings.accounts.accounts_per_address_per_hour = 0;
    })
    .await
}

/// A folder for the test's session files, removed afterwards.
struct Home(PathBuf);

impl Home {
    fn new(test: &str) -> Home {
        let path = std::env::temp_dir().join(format!(
            "guess-game-cli-realtime-{}-{test}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Home(path)
    }

    fn session(&self, player: &str) -> PathBuf {
        self.0.join(player).join("session.json")
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary running, its standard output readable line by line as it comes.
struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
    seen: Vec<String>,
}

/// What a command left behind.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ran {
    /// The value after `prefix` on the line that starts with it.
    fn field(&self, prefix: &str) -> &str {
        self.stdout
            .lines()
            .find_map(|line| line.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{}", self.stdout))
    }
}

impl Running {
    /// Runs `guess-game args` with its session in `session`; standard input is a pipe the test
    /// can write to when `stdin` is set, else empty.
    fn start(args: &[&str], session: &Path, stdin: bool) -> Running {
        let mut child = Command::new(BINARY)
            .args(args)
            .env("GUESS_GAME_SESSION_FILE", session)
            .env_remove("RUST_LOG")
            .env_remove("GUESS_GAME_SERVER")
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary runs");
        let (sender, lines) = mpsc::unbounded_channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Running {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr: Some(stderr),
            seen: Vec::new(),
        }
    }

    /// Waits for a line containing `wanted` and returns it.
    async fn line_with(&mut self, wanted: &str) -> String {
        if let Some(line) = self.seen.iter().find(|line| line.contains(wanted)) {
            return line.clone();
        }
        loop {
            let line = tokio::time::timeout(LINE_WAIT, self.lines.recv())
                .await
                .unwrap_or_else(|_| panic!("no {wanted:?} in time; so far:\n{}", self.so_far()))
                .unwrap_or_else(|| panic!("ended without {wanted:?}:\n{}", self.so_far()));
            self.seen.push(line.clone());
            if line.contains(wanted) {
                return line;
            }
        }
    }

    fn so_far(&self) -> String {
        self.seen.join("\n")
    }

    fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("started with a stdin pipe");
        writeln!(stdin, "{line}").expect("the player reads its input");
    }

    /// Waits for the command to end (its output closes) and collects what it printed.
    async fn finish(mut self) -> Ran {
        let deadline = tokio::time::Instant::now() + RUN_WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => self.seen.push(line),
                Ok(None) => break,
                Err(_) => panic!("still running after {RUN_WAIT:?}:\n{}", self.so_far()),
            }
        }
        drop(self.stdin.take());
        let status = self.child.wait().expect("the child is waited for");
        let stderr = self
            .stderr
            .take()
            .and_then(|reader| reader.join().ok())
            .unwrap_or_default();
        Ran {
            code: status.code(),
            stdout: self.seen.join("\n"),
            stderr,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A test that failed half-way leaves no player running.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs a command to its end.
async fn run(args: &[&str], session: &Path) -> Ran {
    Running::start(args, session, false).finish().await
}

fn pvp_args<'a>(server: &'a str, moves: Option<&'a str>) -> Vec<&'a str> {
    let mut args = vec![
        "pvp",
        "--server",
        server,
        "--opponent",
        "human",
        "--mode",
        "best_of_3",
        "--max-time",
        "60s",
    ];
    if let Some(moves) = moves {
        args.extend(["--moves", moves]);
    }
    args
}

/// The transcript the server gives for `match_id`.
async fn transcript(app: &TestApp, match_id: &str) -> Value {
    let answer = app.get(&format!("/matches/{match_id}")).await;
    assert_eq!(answer.status, http::StatusCode::OK);
    crate::helpers::json(&answer)
}

/// The first event of `kind` in a transcript, to tamper with.
fn first_event<'a>(transcript: &'a mut Value, kind: &str) -> &'a mut Value {
    transcript["events"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|event| event["kind"]["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} event"))
}

#[tokio::test]
async fn two_pvp_players_play_a_best_of_three_to_the_end_and_the_transcript_verifies() {
    let app = app().await;
    let server = format!("http://{}", app.address);
    let home = Home::new("best-of-three");
    let winner = Running::start(&pvp_args(&server, Some("rr")), &home.session("ann"), false);
    let loser = Running::start(&pvp_args(&server, Some("ss")), &home.session("bob"), false);
    let winner = winner.finish().await;
    let loser = loser.finish().await;
    assert_eq!(winner.code, Some(0), "{}\n{}", winner.stdout, winner.stderr);
    assert_eq!(loser.code, Some(0), "{}\n{}", loser.stdout, loser.stderr);
    let match_id = winner.field("match id: ");
    assert_eq!(
        match_id,
        loser.field("match id: "),
        "one match, seen from both seats"
    );
    assert!(winner.field("result: ").starts_with("you won 2-0 against "));
    assert!(loser.field("result: ").starts_with("you lost 0-2 against "));
    assert!(winner.field("rating: ").starts_with("1500 → ") && winner.stdout.contains("(+"));
    assert!(loser.stdout.contains("(-"), "{}", loser.stdout);
    assert!(winner.stdout.contains("locked in"), "{}", winner.stdout);
    assert_eq!(
        winner.field("verify it: "),
        format!("guess-game verify --match {match_id} --server {server}")
    );

    let verified = run(
        &["verify", "--match", match_id, "--server", &server],
        &home.session("ann"),
    )
    .await;
    assert_eq!(
        verified.code,
        Some(0),
        "{}{}",
        verified.stdout,
        verified.stderr
    );
    assert!(verified.stdout.contains("round 2: "), "{}", verified.stdout);
    assert!(
        verified.stdout.contains("\nverified: "),
        "{}",
        verified.stdout
    );

    // One move changed: the round's winner no longer follows from its moves.
    let mut tampered = transcript(&app, match_id).await;
    let revealed = first_event(&mut tampered, "round_revealed");
    let seq = revealed["seq"].as_u64().unwrap();
    revealed["kind"]["moves"]["a"] = revealed["kind"]["moves"]["b"].clone();
    let file = home.0.join("tampered.json");
    std::fs::write(&file, tampered.to_string()).unwrap();
    let refused = run(
        &["verify", "--file", file.to_str().unwrap()],
        &home.session("ann"),
    )
    .await;
    assert_eq!(
        refused.code,
        Some(1),
        "{}{}",
        refused.stdout,
        refused.stderr
    );
    let verdict = refused.field("NOT VERIFIED: ");
    assert!(
        verdict.starts_with(&format!("event seq {seq} (")),
        "{verdict}"
    );
    assert!(
        verdict.ends_with("round_revealed): the round's winner is not the one its moves give"),
        "{verdict}"
    );
    assert!(
        !refused.stdout.contains("round 1: "),
        "nothing from the broken event is shown"
    );
}

#[tokio::test]
async fn a_bot_match_shows_every_commitment_opening_and_a_changed_salt_is_caught() {
    let app = app().await;
    let server = format!("http://{}", app.address);
    let home = Home::new("bot");
    let args = [
        "pvp",
        "--server",
        &server,
        "--opponent",
        "bot",
        "--mode",
        "best_of_1",
        "--moves",
        "rps",
    ];
    let played = run(&args, &home.session("ann")).await;
    assert_eq!(played.code, Some(0), "{}\n{}", played.stdout, played.stderr);
    assert!(
        played.stdout.contains("committed to its move"),
        "{}",
        played.stdout
    );
    assert!(played.field("rating: ").starts_with("not rated"));
    let match_id = played.field("match id: ").to_owned();

    let verified = run(
        &["verify", "--match", &match_id, "--server", &server],
        &home.session("ann"),
    )
    .await;
    assert_eq!(
        verified.code,
        Some(0),
        "{}{}",
        verified.stdout,
        verified.stderr
    );
    let rounds = verified.stdout.matches("\nround ").count();
    assert!(rounds >= 1);
    assert_eq!(
        verified.stdout.matches("opens: ok").count(),
        rounds,
        "{}",
        verified.stdout
    );

    let mut tampered = transcript(&app, &match_id).await;
    let revealed = first_event(&mut tampered, "round_revealed");
    let seq = revealed["seq"].as_u64().unwrap();
    let salt = revealed["kind"]["salts"]["b"].as_str().unwrap();
    let flipped = if salt.starts_with('0') { "1" } else { "0" };
    revealed["kind"]["salts"]["b"] = format!("{flipped}{}", &salt[1..]).into();
    let file = home.0.join("tampered.json");
    std::fs::write(&file, tampered.to_string()).unwrap();
    let refused = run(
        &["verify", "--file", file.to_str().unwrap()],
        &home.session("ann"),
    )
    .await;
    assert_eq!(
        refused.code,
        Some(1),
        "{}{}",
        refused.stdout,
        refused.stderr
    );
    assert!(
        refused.stdout.contains(&format!("event seq {seq} ")),
        "{}",
        refused.stdout
    );
    assert!(
        refused
            .stdout
            .contains("seat B's revealed move does not open its commitment"),
        "{}",
        refused.stdout
    );
}

#[tokio::test]
async fn verify_tells_usage_and_network_trouble_apart_from_a_wrong_transcript() {
    let home = Home::new("verify-errors");
    let session = home.session("ann");
    let nowhere = format!("http://{}", crate::helpers::unused_address());
    let unreachable = run(
        &["verify", "--match", "abc", "--server", &nowhere],
        &session,
    )
    .await;
    assert_eq!(unreachable.code, Some(2), "{}", unreachable.stderr);
    let neither = run(&["verify"], &session).await;
    assert_eq!(neither.code, Some(2));
    let file = home.0.join("empty.json");
    std::fs::write(&file, "[]").unwrap();
    let empty = run(&["verify", "--file", file.to_str().unwrap()], &session).await;
    assert_eq!(empty.code, Some(1), "{}", empty.stdout);
    assert!(
        empty
            .stdout
            .contains("does not start with the match's configuration"),
        "{}",
        empty.stdout
    );
}

/// A TCP proxy in front of the server whose open connections can all be cut at once, as a
/// network that drops does: both sides see their connection end, nothing else changes.
struct CuttableProxy {
    address: SocketAddr,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accept: JoinHandle<()>,
}

impl CuttableProxy {
    async fn start(upstream: SocketAddr) -> CuttableProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let tracked = Arc::clone(&connections);
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let forward = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tracked.lock().unwrap().push(forward.abort_handle());
            }
        });
        CuttableProxy {
            address,
            connections,
            accept,
        }
    }

    /// Cuts every connection open now; returns how many there were.
    fn cut(&self) -> usize {
        let connections = std::mem::take(&mut *self.connections.lock().unwrap());
        let open = connections.iter().filter(|c| !c.is_finished()).count();
        for connection in connections {
            connection.abort();
        }
        open
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

#[tokio::test]
async fn pvp_resumes_the_match_after_its_connection_is_cut_mid_round() {
    let app = app().await;
    let server = format!("http://{}", app.address);
    let proxy = CuttableProxy::start(app.address).await;
    let proxied = format!("http://{}", proxy.address);
    let home = Home::new("resume");
    // Ann plays through the proxy, unattended; Bob plays directly and moves only when told,
    // so the match is sure to be mid-round when Ann's connection is cut.
    let mut ann = Running::start(&pvp_args(&proxied, Some("rr")), &home.session("ann"), false);
    let mut bob = Running::start(&pvp_args(&server, None), &home.session("bob"), true);
    ann.line_with("you locked in your move for round 1").await;
    bob.line_with("round 1 is open").await;
    assert!(proxy.cut() >= 1, "Ann's WebSocket was open");

    ann.line_with("connection lost: ").await;
    ann.line_with("reconnected").await;
    let resumed = ann.line_with("resumed: ").await;
    assert!(
        resumed.contains("complete") || resumed.contains("nothing was missed"),
        "{resumed}"
    );
    bob.type_line("gl");
    bob.type_line("s");
    bob.type_line("scissors");
    let ann = ann.finish().await;
    let bob = bob.finish().await;
    assert_eq!(ann.code, Some(0), "{}\n{}", ann.stdout, ann.stderr);
    assert_eq!(bob.code, Some(0), "{}\n{}", bob.stdout, bob.stderr);
    assert_eq!(ann.field("match id: "), bob.field("match id: "));
    assert!(
        ann.field("result: ").starts_with("you won 2-0"),
        "{}",
        ann.stdout
    );
    assert!(
        bob.field("result: ").starts_with("you lost 0-2"),
        "{}",
        bob.stdout
    );
    // Bob's first line was chat, and reached Ann after she came back.
    assert!(ann.stdout.contains(": gl"), "{}", ann.stdout);
    // Ann's move for round 1 was locked before the cut and not sent twice.
    assert_eq!(
        ann.stdout.matches("you play rock in round 1").count(),
        1,
        "{}",
        ann.stdout
    );
}

//! The built binary, run as a user would.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::spawn_app;

pub(crate) const BINARY: &str = env!("CARGO_BIN_EXE_guess-game");

async fn run(args: Vec<String>, env: Vec<(&'static str, &'static str)>) -> std::process::Output {
    run_with(
        args,
        env.into_iter().map(|(k, v)| (k, v.to_owned())).collect(),
    )
    .await
}

/// Runs the binary; it never sees the user's own saved session (`GUESS_GAME_SESSION_FILE`
/// points nowhere unless the test sets it).
async fn run_with(args: Vec<String>, env: Vec<(&'static str, String)>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        Command::new(BINARY)
            .args(args)
            .env(
                "GUESS_GAME_SESSION_FILE",
                "/nonexistent/guess-game-session.json",
            )
            .envs(env)
            .env_remove("RUST_LOG")
            .output()
            .expect("the binary runs")
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn play_prints_the_round_for_people() {
    let app = spawn_app().await;
    let output = run(
        vec![
            "play".into(),
            "Paper".into(),
            "--server".into(),
            format!("http://{}", app.address),
        ],
        vec![],
    )
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout.starts_with("You played paper, the computer played "),
        "{stdout}"
    );
    assert!(
        [
            "You win: paper beats rock.",
            "The computer wins: scissors beats paper.",
            "It's a draw: paper vs paper — draw."
        ]
        .iter()
        .any(|line| stdout.contains(line)),
        "{stdout}"
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn play_json_prints_the_raw_answer() {
    let app = spawn_app().await;
    let output = run(
        vec![
            "play".into(),
            "rock".into(),
            "--json".into(),
            "--server".into(),
            format!("http://{}", app.address),
        ],
        vec![],
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    let round: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(round["player_choice"], "rock");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn play_as_a_player_with_a_key_is_counted_once() {
    let app = spawn_app().await;
    let args = |choice: &str| {
        vec![
            "play".into(),
            choice.into(),
            "--json".into(),
            "--player".into(),
            "cli-ann".into(),
            "--idempotency-key".into(),
            "k-1".into(),
            "--server".into(),
            format!("http://{}", app.address),
        ]
    };
    let first = run(args("rock"), vec![]).await;
    let again = run(args("rock"), vec![]).await;
    assert!(first.status.success(), "{first:?}");
    assert_eq!(
        first.stdout, again.stdout,
        "the retry replays the first answer"
    );
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let stats = app.get("/players/cli-ann/stats").await;
        if stats.status == http::StatusCode::OK {
            assert_eq!(crate::helpers::json(&stats)["rounds"], 1);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never recorded");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let bad = run(
        vec![
            "play".into(),
            "rock".into(),
            "--player".into(),
            "no spaces".into(),
        ],
        vec![],
    )
    .await;
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn play_reports_an_unreachable_server_and_exits_1() {
    let address = crate::helpers::unused_address();
    let output = run(
        vec![
            "play".into(),
            "rock".into(),
            "--server".into(),
            format!("http://{address}"),
        ],
        vec![],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("cannot connect"),
        "{output:?}"
    );
}

#[tokio::test]
async fn play_rejects_an_unknown_choice_before_sending() {
    let output = run(vec!["play".into(), "lizard".into()], vec![]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("rock, paper, scissors"),
        "{output:?}"
    );
}

#[tokio::test]
async fn an_invalid_setting_fails_start_up_with_exit_2_naming_it() {
    let output = run(
        vec!["serve".into()],
        vec![("GUESS_GAME_MAX_BODY_BYTES", "1")],
    )
    .await;
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("max_body_bytes"),
        "{output:?}"
    );

    let output = run(vec!["--listen".into(), "not-an-address".into()], vec![]).await;
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--listen"),
        "{output:?}"
    );
}

#[tokio::test]
async fn an_unreachable_redis_fails_start_up_with_a_clear_message() {
    // Nothing listens on port 1; the store must be reachable at start-up.
    let output = run(
        vec![
            "serve".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--admin-listen".into(),
            "127.0.0.1:0".into(),
            "--store".into(),
            "redis://127.0.0.1:1".into(),
            "--store-timeout".into(),
            "200ms".into(),
        ],
        vec![],
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("cannot open the store"),
        "{output:?}"
    );
}

#[tokio::test]
async fn version_and_help_work_everywhere() {
    for args in [
        vec!["--version"],
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["play", "--help"],
    ] {
        let output = run(args.iter().map(|s| s.to_string()).collect(), vec![]).await;
        assert!(output.status.success(), "{args:?}: {output:?}");
        assert!(!output.stdout.is_empty());
    }
    let output = run(vec!["--version".into()], vec![]).await;
    assert!(String::from_utf8_lossy(&output.stdout).contains(env!("CARGO_PKG_VERSION")));
}

/// The built binary serving on free ports, its JSON log lines readable one by one.
pub(crate) struct ServerProcess {
    pub(crate) child: std::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
    pub(crate) url: guess_game::client::ServerUrl,
    pub(crate) admin: guess_game::client::ServerUrl,
}

impl ServerProcess {
    /// Starts `guess-game serve` on 127.0.0.1:0 (admin too) with one worker and JSON logs,
    /// plus `extra` arguments, and waits for its start-up line.
    pub(crate) async fn start(extra: &[&std::ffi::OsStr]) -> ServerProcess {
        Self::start_with_env(extra, &[]).await
    }

    /// As [`Self::start`], with environment variables set for the server.
    pub(crate) async fn start_with_env(
        extra: &[&std::ffi::OsStr],
        env: &[(&str, &str)],
    ) -> ServerProcess {
        Self::start_listening("127.0.0.1:0", extra, env).await
    }

    /// As [`Self::start_with_env`], the public listener on `listen` (a restart on the address
    /// an instance before it had).
    pub(crate) async fn start_listening(
        listen: &str,
        extra: &[&std::ffi::OsStr],
        env: &[(&str, &str)],
    ) -> ServerProcess {
        Self::launch(Command::new(BINARY), listen, "127.0.0.1:0", extra, env).await
    }

    /// As [`Self::start_listening`], the binary run by `command` (e.g. `ip netns exec NS`
    /// with the binary as its first argument), the admin listener on `admin`.
    pub(crate) async fn launch(
        mut command: Command,
        listen: &str,
        admin: &str,
        extra: &[&std::ffi::OsStr],
        env: &[(&str, &str)],
    ) -> ServerProcess {
        let mut child = command
            .args([
                "serve",
                "--listen",
                listen,
                "--admin-listen",
                admin,
                "--workers",
                "1",
                "--log-format",
                "json",
            ])
            .args(extra)
            .envs(env.iter().copied())
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (sender, lines) = tokio::sync::mpsc::unbounded_channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str(&line)
                    && sender.send(event).is_err()
                {
                    return;
                }
            }
        });
        let mut lines = lines;
        let started = next_line(&mut lines, "guess-game listening").await;
        let url = |field: &str| {
            guess_game::client::ServerUrl::parse(&format!(
                "http://{}",
                started[field].as_str().unwrap()
            ))
            .unwrap()
        };
        ServerProcess {
            url: url("address"),
            admin: url("admin_address"),
            child,
            lines,
        }
    }

    pub(crate) fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) with a child's pid and a valid signal number has no memory effects.
        let signalled = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(signalled, 0);
    }

    /// Sends SIGTERM and returns the exit code.
    pub(crate) async fn stop(mut self) -> Option<i32> {
        self.signal(libc::SIGTERM);
        tokio::task::spawn_blocking(move || self.child.wait().unwrap())
            .await
            .unwrap()
            .code()
    }
}

#[tokio::test]
async fn the_server_logs_its_address_serves_and_exits_0_on_sigterm() {
    let server = ServerProcess::start(&[]).await;
    let answer = server
        .url
        .send(
            http::Method::POST,
            "/play",
            &[("content-type", "application/json")],
            r#"{"choice":"rock"}"#.into(),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, http::StatusCode::OK);
    assert_eq!(server.stop().await, Some(0));
}

#[tokio::test]
async fn the_admin_listener_refuses_a_public_address_unless_told() {
    let output = run(
        vec![
            "serve".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--admin-listen".into(),
            "0.0.0.0:0".into(),
        ],
        vec![],
    )
    .await;
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("admin_listen") && stderr.contains("admin_public"),
        "{stderr}"
    );
}

/// The next JSON log line whose message or target is `wanted`.
async fn next_line(
    lines: &mut tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
    wanted: &str,
) -> serde_json::Value {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), lines.recv())
            .await
            .expect("a log line in time")
            .expect("stdout open");
        if event["message"] == wanted || event["target"] == wanted {
            return event;
        }
    }
}

#[tokio::test]
async fn each_request_gets_one_access_log_line_without_its_body() {
    let mut server = ServerProcess::start(&[]).await;
    let answer = server
        .url
        .send(
            http::Method::POST,
            "/play",
            &[
                ("content-type", "application/json"),
                ("x-request-id", "audit-7"),
            ],
            r#"{"choice":"scissors","secret":"do-not-log"}"#.into(),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, http::StatusCode::OK);
    let line = next_line(&mut server.lines, "access").await;
    assert_eq!(line["method"], "POST");
    assert_eq!(line["route"], "/play");
    assert_eq!(line["status"], 200);
    assert_eq!(line["request_id"], "audit-7");
    assert_eq!(line["trace_id"].as_str().unwrap().len(), 32);
    assert!(
        line["latency_us"].is_u64()
            && line["request_bytes"].is_u64()
            && line["response_bytes"].is_u64()
    );
    assert!(
        !line.to_string().contains("do-not-log"),
        "bodies are never logged: {line}"
    );
    assert_eq!(server.stop().await, Some(0));
}

#[tokio::test]
async fn sighup_reloads_the_configuration_file_into_the_runtime_flags() {
    let dir = std::env::temp_dir().join(format!("guess-game-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("guess-game.toml");
    std::fs::write(&config, "access_log = true\ntrace_export = true\n").unwrap();
    let server = ServerProcess::start(&["--config".as_ref(), config.as_os_str()]).await;
    let admin = server.admin.clone();
    let flags = || async {
        let answer = admin
            .send(
                http::Method::GET,
                "/admin/flags",
                &[],
                bytes::Bytes::new(),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&answer.body).unwrap()["flags"].clone()
    };
    assert_eq!(flags().await["access_log"], true);

    std::fs::write(&config, "access_log = false\ntrace_export = true\n").unwrap();
    server.signal(libc::SIGHUP);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while flags().await["access_log"] != false {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reload never applied"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        server.stop().await,
        Some(0),
        "SIGHUP did not end the process, SIGTERM did cleanly"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A user on two machines: a guest on the first, upgraded to a username; signed in with it on
/// the second; both see the same account and stats.
#[tokio::test]
async fn account_commands_carry_a_guest_to_a_username_on_another_machine() {
    use std::os::unix::fs::PermissionsExt;

    let app = crate::helpers::spawn_app_with(|settings| {
        settings.accounts.trust_player_header = false;
    })
    .await;
    let server = format!("http://{}", app.address);
    let home = std::env::temp_dir().join(format!("guess-game-cli-{}", std::process::id()));
    let first = home.join("first").join("session.json");
    let second = home.join("second").join("session.json");
    let as_first = |args: &[&str]| {
        let mut args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
        args.extend(["--server".to_owned(), server.clone()]);
        (
            args,
            vec![
                ("GUESS_GAME_SESSION_FILE", first.display().to_string()),
                ("GUESS_GAME_PASSWORD", "a long enough secret".to_owned()),
            ],
        )
    };
    let as_second = |args: &[&str]| {
        let mut args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
        args.extend(["--server".to_owned(), server.clone()]);
        (
            args,
            vec![
                ("GUESS_GAME_SESSION_FILE", second.display().to_string()),
                ("GUESS_GAME_PASSWORD", "a long enough secret".to_owned()),
            ],
        )
    };

    let (args, env) = as_first(&["account", "guest"]);
    let output = run_with(args, env).await;
    assert!(output.status.success(), "{output:?}");
    let mode = std::fs::metadata(&first).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the session file is the owner's only");
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&first).unwrap()).unwrap();
    let id = saved["account_id"].as_str().unwrap().to_owned();

    let (args, env) = as_first(&["play", "rock"]);
    assert!(run_with(args, env).await.status.success());
    let (args, env) = as_first(&["account", "register", "--username", "cli-user"]);
    let output = run_with(args, env).await;
    assert!(output.status.success(), "{output:?}");

    let (args, env) = as_second(&["account", "login", "--username", "CLI-User"]);
    let output = run_with(args, env).await;
    assert!(output.status.success(), "{output:?}");
    let (args, env) = as_second(&["play", "paper"]);
    assert!(run_with(args, env).await.status.success());
    let (args, env) = as_second(&["account", "whoami"]);
    let output = run_with(args, env).await;
    let me: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(me["id"], id.as_str());
    assert_eq!(me["username"], "cli-user");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let answer = app.get(&format!("/players/{id}/stats")).await;
        let rounds = crate::helpers::json(&answer)["rounds"].as_u64();
        if rounds == Some(2) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{rounds:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let (args, env) = as_second(&["account", "logout"]);
    assert!(run_with(args, env).await.status.success());
    assert!(!second.exists(), "logging out forgets the session");
    let (args, env) = as_first(&["account", "delete"]);
    let output = run_with(args, env).await;
    assert!(output.status.success(), "{output:?}");
    assert!(!first.exists());
    let _ = std::fs::remove_dir_all(&home);
    app.shutdown().await.unwrap();
}

/// Tokens never reach the logs: every line written while a guest is created, signs in again,
/// refreshes and plays (debug level, so the request lines are there too) is free of them.
#[tokio::test]
async fn tokens_never_appear_in_the_logs() {
    let mut server = ServerProcess::start(&["--log-level".as_ref(), "debug".as_ref()]).await;
    let post = |path: &'static str, body: String, token: Option<String>| {
        let url = server.url.clone();
        async move {
            let authorization = token.map(|token| format!("Bearer {token}"));
            let mut headers = vec![("content-type", "application/json")];
            if let Some(value) = &authorization {
                headers.push(("authorization", value.as_str()));
            }
            let answer = url
                .send(
                    http::Method::POST,
                    path,
                    &headers,
                    body.into(),
                    Duration::from_secs(10),
                )
                .await
                .unwrap();
            serde_json::from_slice::<serde_json::Value>(&answer.body).unwrap_or_default()
        }
    };
    let guest = post("/accounts/guest", String::new(), None).await;
    let text = |value: &serde_json::Value, pointer: &str| {
        value
            .pointer(pointer)
            .and_then(|v| v.as_str())
            .unwrap()
            .to_owned()
    };
    let mut secrets = vec![
        text(&guest, "/session/access_token"),
        text(&guest, "/session/refresh_token"),
        text(&guest, "/device_secret"),
    ];
    let again = post(
        "/sessions",
        format!(r#"{{"device_secret":"{}"}}"#, secrets[2]),
        None,
    )
    .await;
    let refreshed = post(
        "/sessions/refresh",
        format!(
            r#"{{"refresh_token":"{}"}}"#,
            text(&again, "/session/refresh_token")
        ),
        None,
    )
    .await;
    secrets.push(text(&again, "/session/access_token"));
    secrets.push(text(&refreshed, "/access_token"));
    secrets.push(text(&refreshed, "/refresh_token"));
    post(
        "/play",
        r#"{"choice":"rock"}"#.to_owned(),
        Some(secrets[5].clone()),
    )
    .await;
    // The play's access-log line is the last one this test causes.
    let mut seen = Vec::new();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), server.lines.recv())
            .await
            .expect("a log line in time")
            .expect("stdout open");
        let line = event.to_string();
        let done = event["target"] == "access" && line.contains("/play");
        seen.push(line);
        if done {
            break;
        }
    }
    for line in &seen {
        for secret in &secrets {
            // Even a part of one: the 43 characters after the prefix.
            assert!(!line.contains(&secret[4..]), "{line}");
        }
    }
    assert!(seen.len() >= 5, "{seen:?}");
    server.stop().await;
}

/// A TLS front for a plain server, as a TLS-terminating proxy is, so the client commands can be
/// run against `https://localhost:PORT`. Its certificate names localhost and is self-signed;
/// `ca_file` holds it, for the client to trust.
struct TlsFront {
    port: u16,
    ca_file: std::path::PathBuf,
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ca_file);
    }
}

async fn tls_front(upstream: std::net::SocketAddr, name: &str) -> TlsFront {
    use std::sync::Arc;
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let ca_file =
        std::env::temp_dir().join(format!("guess-game-cli-{name}-{}.pem", std::process::id()));
    std::fs::write(&ca_file, generated.cert.pem()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![generated.cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(generated.signing_key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake here.
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    TlsFront { port, ca_file }
}

#[tokio::test]
async fn play_reaches_an_https_server_through_its_ca_file_and_refuses_it_without() {
    let app = spawn_app().await;
    let front = tls_front(app.address, "play").await;
    let server = format!("https://localhost:{}", front.port);
    let ca_file = front.ca_file.display().to_string();
    let play = |extra: Vec<String>, env: Vec<(&'static str, String)>| {
        let mut args = vec![
            "play".into(),
            "rock".into(),
            "--server".into(),
            server.clone(),
        ];
        args.extend(extra);
        run_with(args, env)
    };

    let trusted = play(vec!["--ca-file".into(), ca_file.clone()], vec![]).await;
    assert!(trusted.status.success(), "{trusted:?}");
    assert!(
        String::from_utf8_lossy(&trusted.stdout).starts_with("You played rock"),
        "{trusted:?}"
    );
    let from_environment = play(vec![], vec![("GUESS_GAME_CA_FILE", ca_file)]).await;
    assert!(from_environment.status.success(), "{from_environment:?}");

    let refused = play(vec![], vec![]).await;
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("invalid peer certificate"), "{stderr}");

    let missing = play(
        vec!["--ca-file".into(), "/nonexistent/ca.pem".into()],
        vec![],
    )
    .await;
    assert_eq!(missing.status.code(), Some(2), "{missing:?}");
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/ca.pem"),
        "{missing:?}"
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn pvp_plays_over_wss_and_verify_fetches_over_https_with_the_ca_file() {
    let app = spawn_app().await;
    let front = tls_front(app.address, "pvp").await;
    let server = format!("https://localhost:{}", front.port);
    let ca_file = front.ca_file.display().to_string();
    let session = std::env::temp_dir().join(format!(
        "guess-game-cli-pvp-https-{}/session.json",
        std::process::id()
    ));
    let env = vec![
        ("GUESS_GAME_SESSION_FILE", session.display().to_string()),
        ("GUESS_GAME_CA_FILE", ca_file),
    ];
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
        "--max-time",
        "60s",
    ];
    let played = run_with(args.map(str::to_owned).to_vec(), env.clone()).await;
    let stdout = String::from_utf8_lossy(&played.stdout).into_owned();
    assert!(played.status.success(), "{played:?}");
    let match_id = stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("match id: "))
        .unwrap_or_else(|| panic!("no match id in {stdout}"))
        .to_owned();

    let verified = run_with(
        vec![
            "verify".into(),
            "--match".into(),
            match_id,
            "--server".into(),
            server.clone(),
        ],
        env,
    )
    .await;
    assert!(verified.status.success(), "{verified:?}");
    if let Some(folder) = session.parent() {
        let _ = std::fs::remove_dir_all(folder);
    }
    app.shutdown().await.unwrap();
}

//! `guess-game doctor`: checks this host for the settings `serve` would run with (the same
//! file, environment and flags) and prints what to fix; `--probe` instead asks the instance
//! running here whether it is alive (the container health check).

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use guess_game::config::Settings;
use guess_game::doctor::{self, Host};

use super::ServeArgs;

/// Exit code for configuration mistakes, as `serve` uses.
const EXIT_BAD_CONFIG: u8 = 2;
/// How long `--probe` waits for `/healthz`: well inside a health check's usual timeout (5 s in
/// deploy/Containerfile), so a slow answer counts as a failure rather than killing the probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The settings to check for: `serve`'s flags, file (--config) and GUESS_GAME_* variables.
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Print the report as JSON (status, summary, and each check's name, status, measured,
    /// expected, fix and note).
    #[arg(long)]
    pub json: bool,
    /// Do not check the host: ask the instance running here (on `listen`) for /healthz and
    /// exit 0 if it answers 200 within 2 s, 1 otherwise. For container health checks.
    #[arg(long, conflicts_with = "json")]
    pub probe: bool,
}

/// Exit code: 0 when nothing failed (warnings allowed), 1 when a check failed or the probe
/// found no live instance, 2 for invalid settings.
pub async fn run_doctor(args: DoctorArgs) -> ExitCode {
    let settings = match Settings::load(args.serve.config.as_deref(), &args.serve) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("guess-game doctor: {error}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    if args.probe {
        let probed = match &settings.server.tls_certificate {
            Some(certificate) => {
                doctor::probe_health_tls(settings.server.listen, certificate, PROBE_TIMEOUT).await
            }
            None => doctor::probe_health(settings.server.listen, PROBE_TIMEOUT).await,
        };
        return match probed {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("guess-game doctor --probe: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let report = doctor::examine(&settings, &Host::system()).await;
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        doctor: DoctorArgs,
    }

    #[test]
    fn the_doctor_takes_serves_flags_and_its_own() {
        Wrapper::command().debug_assert();
        let parsed = Wrapper::try_parse_from([
            "doctor",
            "--config",
            "/etc/guess-game.toml",
            "--max-connections",
            "50000",
            "--json",
        ])
        .unwrap()
        .doctor;
        assert!(parsed.json && !parsed.probe);
        assert_eq!(parsed.serve.max_connections, Some(50_000));
        assert_eq!(
            parsed.serve.config.as_deref(),
            Some(std::path::Path::new("/etc/guess-game.toml"))
        );
        assert!(Wrapper::try_parse_from(["doctor", "--probe", "--json"]).is_err());
    }
}

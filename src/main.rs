//! The `guess-game` binary: parses the command line, loads configuration, sets up logging and
//! hands over to the library.

use std::process::ExitCode;

use clap::Parser;
mod cli;

use cli::{Cli, Command, ServeArgs, run_account, run_doctor, run_play, run_pvp, run_verify};
use guess_game::config::Settings;
use guess_game::server::{Server, shutdown};
use guess_game::telemetry;

/// Exit code for configuration mistakes, matching clap's code for bad flags.
const EXIT_BAD_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve(Box::new(cli.serve))) {
        Command::Serve(args) => serve(args),
        Command::Play(args) => match runtime() {
            Ok(runtime) => runtime.block_on(run_play(args)),
            Err(error) => fail(&error),
        },
        Command::Pvp(args) => match runtime() {
            Ok(runtime) => runtime.block_on(run_pvp(*args)),
            Err(error) => fail(&error),
        },
        Command::Verify(args) => match runtime() {
            Ok(runtime) => runtime.block_on(run_verify(args)),
            Err(error) => fail(&error),
        },
        Command::Account(args) => match runtime() {
            Ok(runtime) => runtime.block_on(run_account(args)),
            Err(error) => fail(&error),
        },
        Command::Doctor(args) => match runtime() {
            Ok(runtime) => runtime.block_on(run_doctor(*args)),
            Err(error) => fail(&error),
        },
        Command::Loadtest(args) => match runtime() {
            Ok(runtime) => runtime.block_on(loadtest::run(*args)),
            Err(error) => fail(&error),
        },
    }
}

fn serve(args: Box<ServeArgs>) -> ExitCode {
    let settings = match Settings::load(args.config.as_deref(), &args) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("guess-game: {error}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    if let Err(error) = telemetry::init(
        settings.telemetry.log_level.as_deref(),
        settings.telemetry.log_format,
    ) {
        return fail(&error);
    }
    let served = runtime().and_then(|runtime| {
        runtime.block_on(async {
            let shutdown = shutdown::signal();
            let config = args.config.clone();
            let server = Server::build(&settings).await?.reload_on_hangup(move || {
                Settings::load(config.as_deref(), &*args).map_err(|error| error.to_string())
            });
            server.run_until_stopped(shutdown).await?;
            Ok(())
        })
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "server failed");
            fail(&error)
        }
    }
}

/// One thread: the server's main thread only waits for signals and workers, and the load
/// tester drives all its connections from one thread by design.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn fail(error: &anyhow::Error) -> ExitCode {
    eprintln!("guess-game: {error:#}");
    ExitCode::FAILURE
}

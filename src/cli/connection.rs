//! The flags every client command (`play`, `account`, `pvp`, `verify`) reaches its server
//! with: the base URL and, for an https server with a certificate from a private CA, that CA.

use std::path::PathBuf;

use clap::Args;
use guess_game::client::{ClientError, ServerUrl, Trust};

#[derive(Clone, Debug, Args)]
pub struct ConnectionArgs {
    /// Base URL of the server: http://host[:port] or https://host[:port] (certificate verified)
    #[arg(
        long,
        default_value = "http://127.0.0.1:8080",
        env = "GUESS_GAME_SERVER",
        global = true
    )]
    pub server: String,
    /// PEM file of a CA to trust besides the system's roots, for an https server whose
    /// certificate a private CA issued
    #[arg(long, value_name = "FILE", env = "GUESS_GAME_CA_FILE", global = true)]
    pub ca_file: Option<PathBuf>,
}

impl ConnectionArgs {
    /// The server's URL, trusting the CA file if one is given (read now, so a bad file is
    /// named before anything is sent).
    pub fn url(&self) -> Result<ServerUrl, ClientError> {
        let trust = Trust::from_ca_file(self.ca_file.as_deref())?;
        Ok(ServerUrl::parse(&self.server)?.trusting(trust))
    }
}

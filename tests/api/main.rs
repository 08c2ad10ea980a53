//! Integration tests: the real server on port 0, spoken to over real sockets.

mod accounts;
mod cli;
mod cli_realtime;
mod cluster;
mod cluster_scripts;
mod conformance;
mod errors;
mod fairness;
mod health;
mod helpers;
mod loadtest;
mod loadtest_cluster;
mod netns;
mod observability;
mod play;
mod protection;
mod realtime;
mod redis;
mod seasons;
mod shared_accounts;
mod shutdown;
mod slow_clients;
mod store;
mod tls;
mod web_session;

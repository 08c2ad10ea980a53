//! guess-game: a rock-paper-scissors game server built like a production service.
//!
//! The server as a library (the `guess-game-server` package): the connection engines, the HTTP
//! surface, the store, protection, telemetry and admin. The `guess-game` binary (`src/main.rs`
//! at the workspace root) is a thin command line on top. Each module is one concern;
//! ARCHITECTURE.md has the crate graph, the map and the invariants.

pub mod accounts;
pub mod admin;
pub mod api;
pub mod config;
pub mod doctor;
pub mod flags;
/// The HTTP/1.1 client (`crates/client`): the CLI's `play`, the span exporter and the tests use it.
pub use client;
/// The rules live in their own crate (`crates/game`), so the compiler keeps them free of I/O,
/// HTTP and storage; re-exported so the rest of the server names them `crate::game`.
pub use game;
pub mod http;
pub mod net;
pub mod protection;
pub mod realtime;
pub mod seasons;
pub mod server;
pub mod store;
pub mod telemetry;

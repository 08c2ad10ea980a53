//! guess-game: a rock-paper-scissors game server built like a production service.
//!
//! The crate is a library with a thin binary (`src/main.rs`) on top. Each module is one
//! concern; ARCHITECTURE.md has the map and the invariants.

pub mod admin;
pub mod api;
pub mod cli;
pub mod config;
pub mod flags;
/// The HTTP/1.1 client (`crates/client`): the CLI's `play`, the span exporter and the tests use it.
pub use client;
/// The rules live in their own crate (`crates/game`), so the compiler keeps them free of I/O,
/// HTTP and storage; re-exported so the rest of the server names them `crate::game`.
pub use game;
pub mod http;
pub mod protection;
pub mod server;
pub mod store;
pub mod telemetry;

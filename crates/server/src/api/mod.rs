//! The API's shared vocabulary: the route table, the wire formats, and the errors raised above
//! the HTTP surface (by the engines and the admin listener) that it renders.
//!
//! These are the words the HTTP surface shares with the services below it (protection keys
//! limits by route, telemetry labels metrics by route, the store keeps an answer's format).
//! They live here, below all of them, so no service has to import the HTTP surface and the
//! module graph stays free of cycles (`scripts/module-cycles`).

pub mod admin;
pub mod engine;
pub mod format;
pub mod routes;

pub use admin::AdminError;
pub use engine::EngineError;
pub use format::Format;
pub use routes::Route;

//! The API's shared vocabulary: the route table and the wire formats.
//!
//! These are the words the HTTP surface shares with the services below it (protection keys
//! limits by route, telemetry labels metrics by route, the store keeps an answer's format).
//! They live here, below all of them, so no service has to import the HTTP surface and the
//! module graph stays free of cycles (`scripts/module-cycles`).

pub mod format;
pub mod routes;

pub use format::Format;
pub use routes::Route;

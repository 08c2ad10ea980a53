//! Protection of the service from its clients: rate limits (here), connection caps and read
//! deadlines (in `crate::server`).

pub mod rate_limit;

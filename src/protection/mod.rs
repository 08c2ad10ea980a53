//! Protection of the service: rate limits and fault injection (here), connection caps and
//! read deadlines (in `crate::server`).

pub mod faults;
pub mod rate_limit;

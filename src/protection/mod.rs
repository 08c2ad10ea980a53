//! Protection of the service: rate limits, load shedding and fault injection (here),
//! connection caps and read deadlines (in `crate::server`).

pub mod concurrency;
pub mod faults;
pub mod rate_limit;

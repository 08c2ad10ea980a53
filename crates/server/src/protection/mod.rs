//! Protection of the service: who a client is (`client_address`), rate limits, load shedding and fault injection (here),
//! connection caps and read deadlines (in `crate::server`).

pub mod client_address;
pub mod concurrency;
pub mod faults;
pub mod front_door;
pub mod rate_limit;

//! Connection buffers borrowed from a per-worker pool only while bytes move.
//!
//! An idle keep-alive connection needs no buffer at all: it waits for its socket to become
//! readable, and only then borrows a [`Buffers`] to read into, parse from and answer into. Once
//! the answers are written and nothing is left over, the buffers go back to the pool before the
//! next wait. That is how an idle connection costs about a kilobyte instead of its buffers
//! (docs/BENCHMARKS.md, "Idle connections"), the approach of gobwas/ws ("A Million WebSockets
//! and Go"). The pool is a thread-local stack, since each worker's connections run on its own
//! thread: a borrow and a return are a `Vec` pop and push, with no lock or atomic.
//!
//! Bounds: at most [`MAX_POOLED`] spare buffers stay pooled per worker (beyond that a returned
//! one is freed), and a buffer that grew past [`KEEP_CAPACITY`] for one large request is shrunk
//! back before it is pooled, so a burst of large requests does not stay resident.

use std::cell::RefCell;
use std::net::IpAddr;
use std::ops::{Deref, DerefMut};

use super::exchange::Buffers;
use crate::telemetry::metrics;

/// Capacity a fresh input or output buffer gets; enough for dozens of pipelined /play requests.
pub const INITIAL_BUFFER: usize = 4 * 1024;

/// Spare buffers kept per worker: enough for the connections that are busy at one moment on a
/// worker under heavy load (each holds one set only while it has bytes to read or write).
const MAX_POOLED: usize = 512;

/// A pooled buffer larger than this (after a large body or a long pipeline) is shrunk first.
const KEEP_CAPACITY: usize = 16 * 1024;

thread_local! {
    // Boxed: a lent set moves into the connection's task as one pointer, and the task's
    // future stays small (a `Buffers` is four vectors and more).
    #[allow(clippy::vec_box)]
    static SPARE: RefCell<Vec<Box<Buffers>>> = const { RefCell::new(Vec::new()) };
}

/// A set of buffers lent to one connection; dropping it gives them back, however the
/// connection's task ends (answered, failed, or aborted at a drain).
pub struct Lent(Option<Box<Buffers>>);

/// Lends a set of empty buffers for a connection from `peer`.
pub fn borrow(peer: IpAddr) -> Lent {
    let mut buffers = SPARE
        .with_borrow_mut(Vec::pop)
        .unwrap_or_else(|| Box::new(Buffers::with_capacity(INITIAL_BUFFER, peer)));
    buffers.peer = peer;
    metrics::with_shard(|shard| shard.buffers_lent.add(1));
    Lent(Some(buffers))
}

impl Deref for Lent {
    type Target = Buffers;

    fn deref(&self) -> &Buffers {
        // Only `drop` takes the box out.
        self.0.as_deref().unwrap_or_else(|| unreachable!())
    }
}

impl DerefMut for Lent {
    fn deref_mut(&mut self) -> &mut Buffers {
        self.0.as_deref_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        let Some(mut buffers) = self.0.take() else {
            return;
        };
        metrics::with_shard(|shard| shard.buffers_lent.sub(1));
        buffers.reset(KEEP_CAPACITY);
        // `try_with`: a connection dropped while its thread exits must not panic.
        let _ = SPARE.try_with(|spare| {
            let mut spare = spare.borrow_mut();
            if spare.len() < MAX_POOLED {
                spare.push(buffers);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returned_buffers_are_lent_again_and_keep_their_capacity_bound() {
        let peer = IpAddr::from([127, 0, 0, 1]);
        let mut buffers = borrow(peer);
        buffers.input.extend_from_slice(&[b'x'; 100_000]);
        let address = std::ptr::from_ref::<Buffers>(&buffers) as usize;
        drop(buffers);
        let again = borrow(IpAddr::from([10, 0, 0, 1]));
        assert_eq!(std::ptr::from_ref::<Buffers>(&again) as usize, address);
        assert!(again.input.is_empty());
        assert!(again.input.capacity() <= KEEP_CAPACITY);
        assert_eq!(again.peer, IpAddr::from([10, 0, 0, 1]));
    }

    #[test]
    fn the_pool_keeps_at_most_its_bound() {
        let peer = IpAddr::from([127, 0, 0, 1]);
        let lent: Vec<_> = (0..MAX_POOLED + 10).map(|_| borrow(peer)).collect();
        drop(lent);
        assert_eq!(SPARE.with_borrow(Vec::len), MAX_POOLED);
    }
}

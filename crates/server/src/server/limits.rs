//! Limits the server sets for itself: the process's open-file limit, raised at start-up, and
//! the cap on open public connections, enforced at accept.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// File descriptors kept back from the connection cap for listeners, logs, the admin port,
/// outgoing connections and the runtime's own.
const RESERVED_FDS: u64 = 256;
/// Upper bound of the derived default: beyond this, memory per connection (docs/BENCHMARKS.md,
/// "Idle connections") rather than descriptors is the limit worth worrying about.
const MAX_DERIVED_CONNECTIONS: u64 = 200_000;

/// Raises the soft RLIMIT_NOFILE to the hard limit and returns the (possibly raised) soft
/// limit. A server that accepts thousands of connections should not stop at a shell's
/// default of 1024.
pub fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "cannot read the open-file limit");
        return 1024;
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads only the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            tracing::info!(
                from = before,
                to = raised.rlim_cur,
                "raised the open-file limit to the hard limit"
            );
            return raised.rlim_cur;
        }
        tracing::warn!(error = %std::io::Error::last_os_error(), soft = before, "cannot raise the open-file limit");
    }
    before
}

/// The default cap on open connections for an open-file limit of `fd_limit`.
/// Makes the allocator return large blocks to the system when they are freed.
///
/// glibc serves a block of 128 KiB or more with its own `mmap` and unmaps it on free, but after
/// the first such free it raises that threshold to the freed size (up to 32 MiB), and from then
/// on serves such blocks from the calling thread's arena, which keeps them. Each Argon2 hash
/// takes 19 MiB on whichever blocking thread runs it, so arenas kept one each: a storm of 640
/// sign-ins with one hash at a time peaked at 445 MiB resident (`scripts/login-storm`). A fixed
/// threshold keeps the peak at what the hashing semaphore allows. Blocks that large are rare on
/// the request path (none per play), so the extra `mmap`/`munmap` costs nothing there.
pub fn release_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's tuning; any value is valid for this
    // parameter, and it is called before the server's threads start allocating much.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
    }
}

pub fn default_max_connections(fd_limit: u64) -> usize {
    fd_limit
        .saturating_sub(RESERVED_FDS)
        .clamp(16, MAX_DERIVED_CONNECTIONS) as usize
}

/// Counts open public connections across all workers against the cap. Touched once per
/// connection (accept and close), never per request.
#[derive(Debug)]
pub struct ConnectionGate {
    open: AtomicUsize,
    max: usize,
}

/// One admitted connection; leaving frees its place.
#[derive(Debug)]
pub struct ConnectionPermit(Arc<ConnectionGate>);

impl ConnectionGate {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            open: AtomicUsize::new(0),
            max,
        })
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Admits one more connection, or refuses it when the cap is reached.
    pub fn try_enter(self: &Arc<Self>) -> Option<ConnectionPermit> {
        let previous = self.open.fetch_add(1, Ordering::AcqRel);
        if previous >= self.max {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(ConnectionPermit(Arc::clone(self)))
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_admits_up_to_its_cap_and_frees_places_on_leave() {
        let gate = ConnectionGate::new(2);
        let first = gate.try_enter().unwrap();
        let _second = gate.try_enter().unwrap();
        assert!(gate.try_enter().is_none());
        drop(first);
        assert!(gate.try_enter().is_some());
    }

    #[test]
    fn the_default_cap_leaves_room_and_stays_bounded() {
        assert_eq!(default_max_connections(1024), 768);
        assert_eq!(default_max_connections(100), 16);
        assert_eq!(default_max_connections(1 << 20), 200_000);
    }

    #[test]
    fn raising_the_limit_never_lowers_it() {
        let mut before = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as above.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut before) };
        assert!(raise_open_file_limit() >= before.rlim_cur);
    }
}

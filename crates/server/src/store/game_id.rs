//! Game ids in the Snowflake manner: 64 bits, unique across instances, ordered by time.
//!
//! Layout, high bit first: 0 (sign), 41 bits of milliseconds since [`EPOCH_MS`] (about 69
//! years), 10 bits of node id, 12 bits of sequence. Within one node ids come from one atomic
//! "logical clock" `(milliseconds << 12) | sequence` that only moves forward: each id takes
//! `max(last + 1, now << 12)`. So a clock that steps backwards, or more than 4,096 ids in one
//! millisecond, borrows from the next milliseconds instead of repeating an id; the node bits
//! keep two instances apart. Written by hand: it is a dozen lines, and the crates that do this
//! either lock a mutex per id or panic when the clock goes backwards.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// 2026-01-01T00:00:00Z, in milliseconds since the Unix epoch.
pub const EPOCH_MS: u64 = 1_767_225_600_000;
const SEQUENCE_BITS: u32 = 12;
const NODE_BITS: u32 = 10;
/// Node ids are 0 to 1023.
pub const MAX_NODE_ID: u16 = (1 << NODE_BITS) - 1;

/// A game's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GameId(pub u64);

impl GameId {
    /// When the id was made, as time since the Unix epoch.
    pub fn unix_time(self) -> Duration {
        Duration::from_millis((self.0 >> (SEQUENCE_BITS + NODE_BITS)) + EPOCH_MS)
    }

    pub fn node(self) -> u16 {
        ((self.0 >> SEQUENCE_BITS) & u64::from(MAX_NODE_ID)) as u16
    }
}

impl std::fmt::Display for GameId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Makes ids for one node. Shared by every worker thread.
///
/// A node id leased from Redis is held only until the lease may have lapsed: past
/// `lease_until` (Unix ms) no id is issued, because another instance may have claimed the same
/// node id by then and two instances issuing the same ids would count one player's results as
/// another's. The lease keeper moves `lease_until` on every renewal and, if the lease was
/// taken, claims another node id and switches to it.
#[derive(Debug)]
pub struct GameIds {
    node: AtomicU64,
    /// The last logical time handed out: `(milliseconds since EPOCH_MS << 12) | sequence`.
    last: AtomicU64,
    /// Unix ms past which ids are not issued; `u64::MAX` for a node id that is not leased.
    lease_until: AtomicU64,
}

impl GameIds {
    /// Panics if `node` exceeds [`MAX_NODE_ID`]; settings are validated before this.
    pub fn new(node: u16) -> Self {
        assert!(node <= MAX_NODE_ID, "node id {node} > {MAX_NODE_ID}");
        Self {
            node: AtomicU64::new(u64::from(node)),
            last: AtomicU64::new(0),
            lease_until: AtomicU64::new(u64::MAX),
        }
    }

    pub fn node(&self) -> u16 {
        self.node.load(Ordering::Relaxed) as u16
    }

    /// Holds `node` until `until_ms` (Unix ms): ids are issued under it until then.
    pub fn hold(&self, node: u16, until_ms: u64) {
        self.node
            .store(u64::from(node.min(MAX_NODE_ID)), Ordering::Relaxed);
        self.lease_until.store(until_ms, Ordering::Release);
    }

    /// Stops issuing ids: the node id's lease is lost or may have lapsed.
    pub fn release(&self) {
        self.lease_until.store(0, Ordering::Release);
    }

    /// The system clock in Unix ms.
    pub fn now_ms() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64)
    }

    /// The next id from the system clock, or `None` while no node id is held.
    pub fn next(&self) -> Option<GameId> {
        let now = Self::now_ms();
        if now >= self.lease_until.load(Ordering::Acquire) {
            return None;
        }
        Some(self.next_at(now))
    }

    /// The next id when the clock reads `unix_ms`.
    pub fn next_at(&self, unix_ms: u64) -> GameId {
        let floor = unix_ms.saturating_sub(EPOCH_MS) << SEQUENCE_BITS;
        let previous = self
            .last
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
                Some(floor.max(last + 1))
            })
            // The closure always returns Some.
            .unwrap_or_else(|last| last);
        let logical = floor.max(previous + 1);
        let millis = logical >> SEQUENCE_BITS;
        let sequence = logical & ((1 << SEQUENCE_BITS) - 1);
        let node = self.node.load(Ordering::Relaxed);
        GameId((millis << (SEQUENCE_BITS + NODE_BITS)) | (node << SEQUENCE_BITS) | sequence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = EPOCH_MS + 1_000_000;

    #[test]
    fn ids_carry_time_and_node() {
        let ids = GameIds::new(513);
        let id = ids.next_at(NOW);
        assert_eq!(id.node(), 513);
        assert_eq!(id.unix_time(), Duration::from_millis(NOW));
        assert!(id.0 < 1 << 63, "positive as a signed 64-bit integer too");
    }

    #[test]
    fn a_clock_stepping_backwards_never_repeats_an_id() {
        let ids = GameIds::new(1);
        let mut seen = std::collections::HashSet::new();
        let mut last = GameId(0);
        for clock in [
            NOW,
            NOW,
            NOW - 5_000,
            NOW - 5_000,
            NOW + 1,
            NOW - 60_000,
            NOW + 2,
        ] {
            let id = ids.next_at(clock);
            assert!(id > last, "{id:?} after {last:?}");
            assert!(seen.insert(id));
            last = id;
        }
    }

    #[test]
    fn a_full_millisecond_borrows_from_the_next() {
        let ids = GameIds::new(7);
        let mut last = GameId(0);
        for _ in 0..10_000 {
            let id = ids.next_at(NOW);
            assert!(id > last);
            assert_eq!(
                id.node(),
                7,
                "the sequence never carries into the node bits"
            );
            last = id;
        }
        assert_eq!(last.unix_time(), Duration::from_millis(NOW + 2));
    }

    proptest::proptest! {
        /// Any sequence of clock readings, jumping forwards or backwards, yields strictly
        /// increasing ids on the same node.
        #[test]
        fn ids_only_increase_whatever_the_clock_does(
            steps in proptest::collection::vec(-5_000i64..5_000, 1..500),
            node in 0u16..=MAX_NODE_ID,
        ) {
            let ids = GameIds::new(node);
            let mut clock = NOW as i64;
            let mut last = GameId(0);
            for step in steps {
                clock += step;
                let id = ids.next_at(clock as u64);
                proptest::prop_assert!(id > last);
                proptest::prop_assert_eq!(id.node(), node);
                last = id;
            }
        }
    }

    #[test]
    fn nodes_never_collide_and_threads_never_repeat() {
        let a = std::sync::Arc::new(GameIds::new(1));
        let b = GameIds::new(2);
        assert_ne!(a.next_at(NOW), b.next_at(NOW));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let a = std::sync::Arc::clone(&a);
                std::thread::spawn(move || {
                    (0..20_000)
                        .map(|_| a.next().expect("an unleased node id"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<GameId> = handles
            .into_iter()
            .flat_map(|handle| handle.join().unwrap())
            .collect();
        let count = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), count);
    }

    #[test]
    fn no_id_is_issued_past_the_lease_and_a_new_node_takes_over() {
        let ids = GameIds::new(3);
        assert!(ids.next().is_some(), "a configured node id is not leased");
        let now = GameIds::now_ms();
        ids.hold(3, now + 60_000);
        assert_eq!(ids.next().map(GameId::node), Some(3));
        ids.release();
        assert_eq!(ids.next(), None, "a lost lease stops ids at once");
        ids.hold(3, now.saturating_sub(1));
        assert_eq!(ids.next(), None, "a lapsed lease too");
        ids.hold(9, now + 60_000);
        let id = ids.next().unwrap();
        assert_eq!(id.node(), 9);
    }
}

//! Memory: the cgroup's `memory.max` (or the host's memory) against the resident size the
//! server is expected to reach at `max_connections`, and transparent huge pages.

use super::cgroup::CgroupLimits;
use super::{Check, Host, grouped, mebibytes};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// The figures the expected resident size is built from. Measured ones come from
/// docs/BENCHMARKS.md; keep them in step with it.
pub(super) mod figures {
    use super::{KIB, MIB};

    /// The process with no connections: runtimes, worker buffer pools, metric shards, the
    /// realtime hub and caches, with room for what start-up and a first load leave behind. The
    /// login storm measured ~6 MiB at rest ("A storm of sign-ins"); 50 MiB is the figure to
    /// plan with, not a measurement.
    pub const BASE_BYTES: u64 = 50 * MIB;
    /// One idle keep-alive HTTP connection: 1,979 bytes measured by `scripts/idle-connections`
    /// ("Hardening (issue 11)": the task, its registration, the registry entry), rounded up.
    pub const HTTP_CONNECTION_BYTES: u64 = 2 * KIB;
    /// One idle WebSocket connection: the real-time layer's budget of <= 4 KiB once a realistic
    /// message has passed ("WebSocket crates for the real-time layer"; the lazy design measured
    /// ~1.6 KB). Used for every connection, since any of them may upgrade.
    pub const WEBSOCKET_CONNECTION_BYTES: u64 = 4 * KIB;
}

/// A `memory.max` this close to the expected size leaves too little for what the figures do
/// not count (in-memory store contents, bursts of request buffers, the allocator's slack).
const HEADROOM: f64 = 0.8;

/// The resident size expected at full load, and its parts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Footprint {
    pub max_connections: u64,
    pub connections_bytes: u64,
    /// Argon2id: each hash running at once holds `password_hash_memory_kib`.
    pub hashing_bytes: u64,
}

impl Footprint {
    pub fn expected(max_connections: usize, hash_concurrency: usize, hash_memory_kib: u32) -> Self {
        let max_connections = max_connections as u64;
        Footprint {
            max_connections,
            connections_bytes: max_connections.saturating_mul(figures::WEBSOCKET_CONNECTION_BYTES),
            hashing_bytes: (hash_concurrency as u64)
                .saturating_mul(u64::from(hash_memory_kib) * KIB),
        }
    }

    pub fn total(&self) -> u64 {
        figures::BASE_BYTES
            .saturating_add(self.connections_bytes)
            .saturating_add(self.hashing_bytes)
    }

    /// The most connections that fit in `limit` with headroom, for the fix.
    fn connections_fitting(&self, limit: u64) -> u64 {
        let usable = (limit as f64 * HEADROOM) as u64;
        usable.saturating_sub(figures::BASE_BYTES + self.hashing_bytes)
            / figures::WEBSOCKET_CONNECTION_BYTES
    }
}

/// `MemTotal` from `/proc/meminfo`, in bytes.
fn mem_total(host: &Host) -> Option<u64> {
    let text = host.read("/proc/meminfo").ok()?;
    let line = text.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
    let kib: u64 = line.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * KIB)
}

pub(super) fn check_memory_limit(
    host: &Host,
    cgroup: Option<&CgroupLimits>,
    footprint: &Footprint,
) -> Check {
    const NAME: &str = "memory_limit";
    let expected_bytes = footprint.total();
    let advised = (expected_bytes as f64 / HEADROOM) as u64;
    let expected = format!(
        ">= {} ({} expected at {} connections: {} base + {} B each as WebSockets ({} B as \
         HTTP keep-alive) + {} hashing; 20% headroom)",
        mebibytes(advised),
        mebibytes(expected_bytes),
        grouped(footprint.max_connections),
        mebibytes(figures::BASE_BYTES),
        grouped(figures::WEBSOCKET_CONNECTION_BYTES),
        grouped(figures::HTTP_CONNECTION_BYTES),
        mebibytes(footprint.hashing_bytes),
    );
    let (limit, source) = match (cgroup.and_then(|c| c.memory_max), mem_total(host)) {
        (Some(max), _) => (max, "cgroup memory.max"),
        (None, Some(total)) if cgroup.is_some() => (total, "no cgroup limit; host MemTotal"),
        // Without a v2 tree a v1 limit may still apply; say that it was not looked at.
        (None, Some(total)) => (total, "host MemTotal; no cgroup v2 limit could be read"),
        (None, None) => {
            return Check::warn(
                NAME,
                "cannot read memory.max or /proc/meminfo",
                expected,
                "run the doctor on Linux, as the server runs",
            );
        }
    };
    let measured = format!("{} ({source})", mebibytes(limit));
    let fix = format!(
        "systemctl set-property guess-game.service MemoryMax={}M (Kubernetes: \
         resources.limits.memory), or max_connections = {}",
        advised.div_ceil(MIB),
        footprint.connections_fitting(limit)
    );
    if expected_bytes > limit {
        return Check::fail(NAME, measured, expected, fix).with_note(
            "at max_connections the kernel's OOM killer ends the process, and every \
             connection with it",
        );
    }
    if expected_bytes > (limit as f64 * HEADROOM) as u64 {
        return Check::warn(NAME, measured, expected, fix)
            .with_note("the figures leave out the in-memory store's contents and bursts");
    }
    Check::pass(NAME, measured, expected)
}

/// `always` makes the kernel back small, scattered allocations (a connection's task, its pool
/// buffers) with 2 MiB pages: resident size grows well past the figures above, and
/// khugepaged's compaction stalls allocating threads. `madvise` or `never` are right.
pub(super) fn check_transparent_hugepages(host: &Host) -> Check {
    const NAME: &str = "transparent_hugepages";
    const PATH: &str = "/sys/kernel/mm/transparent_hugepage/enabled";
    const EXPECTED: &str = "madvise or never";
    const FIX: &str = "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled (and \
                       transparent_hugepage=madvise on the kernel command line)";
    let text = match host.read(PATH) {
        Ok(text) => text,
        Err(error) => {
            return Check::pass(NAME, error.to_string(), EXPECTED)
                .with_note("no transparent huge pages on this kernel");
        }
    };
    // The active choice is the bracketed one: "always [madvise] never".
    let Some(active) = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix('[')?.strip_suffix(']'))
    else {
        return Check::warn(
            NAME,
            format!("cannot understand {PATH}: {:?}", text.trim()),
            EXPECTED,
            FIX,
        );
    };
    if active == "always" {
        return Check::warn(NAME, active, EXPECTED, FIX);
    }
    Check::pass(NAME, active, EXPECTED)
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::super::cgroup::read_cgroup;
    use super::super::fake::FakeHost;
    use super::*;

    fn check(host: &FakeHost, footprint: &Footprint) -> Check {
        let cgroup = read_cgroup(&host.host()).ok();
        check_memory_limit(&host.host(), cgroup.as_ref(), footprint)
    }

    #[test]
    fn the_expected_size_adds_base_connections_and_hashing() {
        let footprint = Footprint::expected(10_000, 2, 19 * 1024);
        assert_eq!(footprint.connections_bytes, 10_000 * 4096);
        assert_eq!(footprint.hashing_bytes, 38 * MIB);
        assert_eq!(footprint.total(), 50 * MIB + 40_960_000 + 38 * MIB);
    }

    #[test]
    fn a_limit_below_the_expected_size_fails_and_says_what_fits() {
        let host = FakeHost::well_kept();
        host.cgroup_file("memory.max", &(256 * MIB).to_string());
        // 100,000 connections: 50 MiB + 391 MiB + 19 MiB.
        let footprint = Footprint::expected(100_000, 1, 19 * 1024);
        let failed = check(&host, &footprint);
        assert_eq!(failed.status, Status::Fail, "{failed:?}");
        assert_eq!(failed.measured, "256 MiB (cgroup memory.max)");
        let fix = failed.fix.unwrap();
        // (256 MiB * 0.8 - 69 MiB) / 4 KiB = 34,764 connections.
        assert!(fix.contains("max_connections = 34764"), "{fix}");
        assert!(fix.contains("MemoryMax=575M"), "{fix}");
    }

    #[test]
    fn a_limit_with_little_headroom_warns_and_enough_passes() {
        let host = FakeHost::well_kept();
        let footprint = Footprint::expected(10_000, 1, 19 * 1024); // ~108 MiB
        host.cgroup_file("memory.max", &(120 * MIB).to_string());
        assert_eq!(check(&host, &footprint).status, Status::Warn);
        host.cgroup_file("memory.max", &(200 * MIB).to_string());
        assert_eq!(check(&host, &footprint).status, Status::Pass);
    }

    #[test]
    fn without_a_cgroup_limit_the_host_memory_counts() {
        let host = FakeHost::well_kept();
        host.cgroup_file("memory.max", "max\n");
        host.file("/proc/meminfo", "MemTotal:         102400 kB\n");
        let check = check(&host, &Footprint::expected(10_000, 1, 19 * 1024));
        assert_eq!(check.status, Status::Fail, "{check:?}");
        assert_eq!(check.measured, "100 MiB (no cgroup limit; host MemTotal)");
        let unreadable = check_memory_limit(&host.host(), None, &Footprint::expected(1, 1, 1));
        assert_eq!(unreadable.status, Status::Pass, "{unreadable:?}");
        assert!(
            unreadable
                .measured
                .contains("no cgroup v2 limit could be read")
        );
    }

    #[test]
    fn transparent_huge_pages_should_not_be_always() {
        let host = FakeHost::well_kept();
        let path = "/sys/kernel/mm/transparent_hugepage/enabled";
        assert_eq!(
            check_transparent_hugepages(&host.host()).status,
            Status::Pass
        );
        host.file(path, "[always] madvise never\n");
        let always = check_transparent_hugepages(&host.host());
        assert_eq!(
            (always.status, always.measured.as_str()),
            (Status::Warn, "always")
        );
        host.file(path, "always madvise [never]\n");
        assert_eq!(
            check_transparent_hugepages(&host.host()).status,
            Status::Pass
        );
        host.file(path, "garbage\n");
        assert_eq!(
            check_transparent_hugepages(&host.host()).status,
            Status::Warn
        );
        host.remove(path);
        assert_eq!(
            check_transparent_hugepages(&host.host()).status,
            Status::Pass
        );
    }
}

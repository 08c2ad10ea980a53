//! Fake `/proc`, `/sys` and cgroup trees for the doctor's tests: a directory under the system's
//! temporary directory, filled file by file, removed when the test is done.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use super::Host;

/// A fake host root. Files are written with [`FakeHost::file`]; the tree is removed on drop.
pub struct FakeHost {
    root: PathBuf,
}

/// The cgroup this fake process is in, as `/proc/self/cgroup` names it.
pub const SERVICE_CGROUP: &str = "/system.slice/guess-game.service";

impl FakeHost {
    /// An empty root: every file the doctor looks for is missing.
    pub fn empty() -> FakeHost {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let root = std::env::temp_dir().join(format!(
            "guess-game-doctor-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        // A tree left behind by an earlier run with the same pid would mix into this one.
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        FakeHost { root }
    }

    /// A host set up as docs/OPERATIONS.md and deploy/ advise: high descriptor limits, deep
    /// queues, SYN cookies, cgroup v2 with 4 CPUs of quota on 4 CPUs and 4 GiB of memory,
    /// transparent huge pages on madvise.
    pub fn well_kept() -> FakeHost {
        let host = FakeHost::empty();
        host.limits(1_048_576, 1_048_576);
        host.file("/proc/sys/net/core/somaxconn", "4096\n");
        host.file("/proc/sys/net/ipv4/tcp_max_syn_backlog", "8192\n");
        host.file("/proc/sys/net/ipv4/tcp_syncookies", "1\n");
        host.file("/proc/sys/net/ipv4/ip_local_port_range", "32768\t60999\n");
        host.file("/proc/sys/net/ipv4/ip_local_reserved_ports", "\n");
        host.file("/proc/sys/net/ipv4/ip_unprivileged_port_start", "1024\n");
        host.file(
            "/proc/self/status",
            "Name:\tguess-game\nCpus_allowed_list:\t0-3\n",
        );
        host.file(
            "/proc/meminfo",
            "MemTotal:       16384000 kB\nMemFree: 1 kB\n",
        );
        host.file("/sys/devices/system/cpu/online", "0-3\n");
        host.cgroup_v2(SERVICE_CGROUP);
        host.file("/sys/fs/cgroup/system.slice/cpu.max", "max 100000\n");
        host.cgroup_file("cpu.max", "400000 100000\n");
        host.cgroup_file("cpuset.cpus.effective", "0-3\n");
        host.cgroup_file("memory.max", &(4u64 << 30).to_string());
        host.file(
            "/sys/kernel/mm/transparent_hugepage/enabled",
            "always [madvise] never\n",
        );
        host
    }

    pub fn host(&self) -> Host {
        Host::rooted_at(&self.root)
    }

    /// Writes `contents` at `absolute` (e.g. `/proc/sys/net/core/somaxconn`) under the root.
    pub fn file(&self, absolute: &str, contents: &str) {
        let path = self.root.join(absolute.trim_start_matches('/'));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }

    /// Removes `absolute` under the root, as on a host without it.
    pub fn remove(&self, absolute: &str) {
        std::fs::remove_file(self.root.join(absolute.trim_start_matches('/'))).unwrap();
    }

    /// `/proc/self/limits` with the given open-file limits (`u64::MAX` is "unlimited").
    pub fn limits(&self, soft: u64, hard: u64) {
        let shown = |n: u64| {
            if n == u64::MAX {
                "unlimited".to_owned()
            } else {
                n.to_string()
            }
        };
        self.file(
            "/proc/self/limits",
            &format!(
                "Limit                     Soft Limit           Hard Limit           Units     \n\
                 Max cpu time              unlimited            unlimited            seconds   \n\
                 Max open files            {:<20} {:<20} files     \n\
                 Max locked memory         8388608              8388608              bytes     \n",
                shown(soft),
                shown(hard)
            ),
        );
    }

    /// A unified (v2) hierarchy at `/sys/fs/cgroup` with this process in `path`.
    pub fn cgroup_v2(&self, path: &str) {
        self.file("/proc/self/cgroup", &format!("0::{path}\n"));
        self.file(
            "/sys/fs/cgroup/cgroup.controllers",
            "cpuset cpu io memory pids\n",
        );
        self.file(
            &format!("/sys/fs/cgroup{path}/cgroup.controllers"),
            "cpuset cpu memory\n",
        );
    }

    /// A file in this process's cgroup (the one [`FakeHost::well_kept`] puts it in).
    pub fn cgroup_file(&self, name: &str, contents: &str) {
        self.file(&format!("/sys/fs/cgroup{SERVICE_CGROUP}/{name}"), contents);
    }
}

impl Drop for FakeHost {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

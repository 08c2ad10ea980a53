//! The cgroup (v2) limits this process runs under, against `workers`.
//!
//! Each worker is a thread running its own runtime, busy whenever its connections are, so
//! more workers than the CPU quota allows means every busy period ends in CFS throttling (the
//! whole cgroup stops until the next 100 ms period: a latency spike for every request in it),
//! and more workers than CPUs in the cpuset means workers time-share one core.
//!
//! A limit can be set on any ancestor (a slice, a pod), so quotas and `memory.max` are read at
//! every level from this process's cgroup up to the root of the mount, and the lowest wins.

use std::path::{Path, PathBuf};

use super::{Check, Host, HostError, read_file};

/// Where the unified hierarchy is mounted.
const CGROUP_MOUNT: &str = "/sys/fs/cgroup";

/// `cpu.max`: `quota period` in microseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct CpuQuota {
    pub quota_us: u64,
    pub period_us: u64,
}

impl CpuQuota {
    pub fn cpus(self) -> f64 {
        self.quota_us as f64 / self.period_us as f64
    }
}

/// What the cgroup tree says about this process.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct CgroupLimits {
    /// This process's cgroup as `/proc/self/cgroup` names it.
    pub path: String,
    /// The lowest quota on the way up, if any level has one.
    pub cpu_quota: Option<CpuQuota>,
    /// `cpuset.cpus.effective` of this cgroup (or the nearest ancestor that has the file).
    pub cpuset: Option<Vec<u32>>,
    /// The lowest `memory.max` on the way up, if any level has one.
    pub memory_max: Option<u64>,
}

/// Reads the cgroup v2 limits of this process. An error means no unified hierarchy here
/// (cgroup v1, or not Linux).
pub(super) fn read_cgroup(host: &Host) -> Result<CgroupLimits, HostError> {
    let membership = host.read("/proc/self/cgroup")?;
    // v2 is the one line "0::<path>"; a hybrid host lists v1 controllers too.
    let path = membership
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .ok_or_else(|| HostError::Parse {
            path: "/proc/self/cgroup".to_owned(),
            text: "no cgroup v2 (\"0::\") line: cgroup v1 is not checked".to_owned(),
        })?
        .trim()
        .to_owned();
    let mount = host.path(CGROUP_MOUNT);
    // A hybrid host lists "0::" too, but its v2 tree (at /sys/fs/cgroup/unified) holds no
    // controllers: the limits are in v1, which is not read.
    if !mount.join("cgroup.controllers").is_file() {
        return Err(HostError::Parse {
            path: format!("{CGROUP_MOUNT}/cgroup.controllers"),
            text: "missing: cgroup v1 or hybrid hierarchy, whose limits are not checked".to_owned(),
        });
    }
    let mut own = mount.join(path.trim_start_matches('/'));
    // In a container without its own cgroup namespace the path names a cgroup of the host's
    // tree, and the container sees only its own subtree at the mount: its root is ours.
    if !own.is_dir() {
        own = mount.clone();
    }
    let levels = ancestors_within(&own, &mount);
    let cpu_quota = levels
        .iter()
        .filter_map(|level| parse_cpu_max(&read_file(&level.join("cpu.max"), "cpu.max").ok()?))
        .min_by(|a, b| a.cpus().total_cmp(&b.cpus()));
    let memory_max = levels
        .iter()
        .filter_map(|level| {
            let text = read_file(&level.join("memory.max"), "memory.max").ok()?;
            text.trim().parse::<u64>().ok()
        })
        .min();
    let cpuset = levels.iter().find_map(|level| {
        let text = read_file(&level.join("cpuset.cpus.effective"), "cpuset").ok()?;
        parse_cpu_list(&text)
    });
    Ok(CgroupLimits {
        path,
        cpu_quota,
        cpuset,
        memory_max,
    })
}

/// `dir` and its parents up to and including `mount`.
fn ancestors_within(dir: &Path, mount: &Path) -> Vec<PathBuf> {
    dir.ancestors()
        .take_while(|level| level.starts_with(mount))
        .map(Path::to_path_buf)
        .collect()
}

/// `cpu.max`: `max 100000` (no quota) or `200000 100000`.
fn parse_cpu_max(text: &str) -> Option<CpuQuota> {
    let mut fields = text.split_whitespace();
    let quota = fields.next()?;
    let period_us = fields.next().map_or(Some(100_000), |p| p.parse().ok())?;
    if quota == "max" || period_us == 0 {
        return None;
    }
    Some(CpuQuota {
        quota_us: quota.parse().ok()?,
        period_us,
    })
}

/// A kernel CPU list such as `0-3,8,10-11`.
fn parse_cpu_list(text: &str) -> Option<Vec<u32>> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut cpus = Vec::new();
    for item in text.split(',') {
        let (low, high) = item.split_once('-').unwrap_or((item, item));
        let (low, high): (u32, u32) = (low.trim().parse().ok()?, high.trim().parse().ok()?);
        // A list names at most the machine's CPUs; refuse nonsense rather than allocate it.
        if high < low || high - low > 65_536 {
            return None;
        }
        cpus.extend(low..=high);
    }
    Some(cpus)
}

/// CPUs this process may run on: the cpuset, else the affinity mask, else the online CPUs.
fn allowed_cpus(host: &Host, cgroup: Option<&CgroupLimits>) -> Option<usize> {
    if let Some(cpuset) = cgroup.and_then(|c| c.cpuset.as_ref()) {
        return Some(cpuset.len());
    }
    let status = host.read("/proc/self/status").ok();
    let affinity = status.as_deref().and_then(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .and_then(parse_cpu_list)
    });
    affinity
        .or_else(|| parse_cpu_list(&host.read("/sys/devices/system/cpu/online").ok()?))
        .map(|cpus| cpus.len())
}

/// How many CPUs the standard library's `available_parallelism` (what `workers = 0` uses)
/// counts here: the CPUs allowed, capped by the quota rounded down, at least one.
pub(super) fn usable_cpus(host: &Host, cgroup: Option<&CgroupLimits>) -> usize {
    let allowed = allowed_cpus(host, cgroup).unwrap_or(1);
    let by_quota = cgroup
        .and_then(|c| c.cpu_quota)
        .map_or(usize::MAX, |q| (q.quota_us / q.period_us).max(1) as usize);
    allowed.min(by_quota).max(1)
}

fn workers_fix(cpus: usize) -> String {
    format!("workers = {cpus} in the config file (or --workers {cpus}; 0 derives it)")
}

pub(super) fn check_cpu_quota(cgroup: Result<&CgroupLimits, &HostError>, workers: usize) -> Check {
    const NAME: &str = "cpu_quota";
    let cgroup = match cgroup {
        Ok(cgroup) => cgroup,
        Err(error) => {
            return Check::warn(
                NAME,
                error.to_string(),
                "cgroup v2, quota >= workers",
                "boot with the unified hierarchy (systemd.unified_cgroup_hierarchy=1)",
            );
        }
    };
    let Some(quota) = cgroup.cpu_quota else {
        return Check::pass(
            NAME,
            format!("no quota ({})", cgroup.path),
            "quota >= workers, or none",
        );
    };
    let cpus = quota.cpus();
    let measured = format!(
        "{cpus:.2} CPUs ({} / {} us)",
        quota.quota_us, quota.period_us
    );
    if workers == 0 {
        let expected = "quota >= 1 CPU (workers = 0 runs floor(quota) workers)";
        if cpus < 1.0 {
            return Check::warn(
                NAME,
                measured,
                expected,
                "systemctl set-property guess-game.service CPUQuota=100% (Kubernetes: \
                 resources.limits.cpu >= 1)",
            )
            .with_note("below one CPU even a single busy worker is throttled every period");
        }
        return Check::pass(NAME, measured, expected);
    }
    let expected = format!("quota >= {workers} CPUs (workers = {workers})");
    if (workers as f64) > cpus.ceil() {
        let fitting = (cpus.floor() as usize).max(1);
        return Check::warn(NAME, measured, expected, workers_fix(fitting)).with_note(format!(
            "{workers} busy workers use up {cpus:.2} CPUs of quota early in each period and the \
             cgroup is throttled until the next: a latency spike for every request; or raise \
             the quota (CPUQuota={}%, Kubernetes resources.limits.cpu: {workers})",
            workers * 100
        ));
    }
    Check::pass(NAME, measured, expected)
}

pub(super) fn check_cpuset(
    host: &Host,
    cgroup: Result<&CgroupLimits, &HostError>,
    workers: usize,
) -> Check {
    const NAME: &str = "cpuset";
    let Some(allowed) = allowed_cpus(host, cgroup.ok()) else {
        return Check::warn(
            NAME,
            "cannot read the CPUs this process may use",
            "workers <= CPUs allowed",
            "check `taskset -pc $$` and cpuset.cpus.effective",
        );
    };
    let source = if cgroup.is_ok_and(|c| c.cpuset.is_some()) {
        "cpuset.cpus.effective"
    } else {
        "affinity"
    };
    let measured = format!("{allowed} CPUs ({source})");
    if workers == 0 {
        return Check::pass(NAME, measured, "workers = 0: one worker per allowed CPU");
    }
    let expected = format!("workers {workers} <= CPUs allowed");
    if workers > allowed {
        return Check::warn(NAME, measured, expected, workers_fix(allowed)).with_note(
            "more workers than CPUs time-share cores: each connection lives on one worker, so \
             its requests wait whenever that worker is descheduled",
        );
    }
    Check::pass(NAME, measured, expected)
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::super::fake::{FakeHost, SERVICE_CGROUP};
    use super::*;

    #[test]
    fn limits_are_read_at_every_level_and_the_lowest_wins() {
        let host = FakeHost::well_kept();
        // The slice's quota (2 CPUs) is tighter than the service's (4).
        host.file("/sys/fs/cgroup/system.slice/cpu.max", "200000 100000\n");
        host.file("/sys/fs/cgroup/system.slice/memory.max", "1073741824\n");
        let limits = read_cgroup(&host.host()).unwrap();
        assert_eq!(limits.path, SERVICE_CGROUP);
        assert_eq!(limits.cpu_quota.unwrap().cpus(), 2.0);
        assert_eq!(limits.memory_max, Some(1 << 30));
        assert_eq!(limits.cpuset.as_deref(), Some(&[0, 1, 2, 3][..]));
        assert_eq!(usable_cpus(&host.host(), Some(&limits)), 2);
    }

    #[test]
    fn no_quota_and_no_memory_limit_read_as_none() {
        let host = FakeHost::well_kept();
        host.cgroup_file("cpu.max", "max 100000\n");
        host.cgroup_file("memory.max", "max\n");
        let limits = read_cgroup(&host.host()).unwrap();
        assert_eq!((limits.cpu_quota, limits.memory_max), (None, None));
        assert_eq!(usable_cpus(&host.host(), Some(&limits)), 4);
        let check = check_cpu_quota(Ok(&limits), 8);
        assert_eq!(check.status, Status::Pass, "{check:?}");
    }

    #[test]
    fn a_container_sees_its_own_subtree_at_the_mount() {
        let host = FakeHost::empty();
        host.file("/proc/self/cgroup", "0::/kubepods/pod1/abc\n");
        host.file("/sys/fs/cgroup/cgroup.controllers", "cpu memory\n");
        host.file("/sys/fs/cgroup/cpu.max", "150000 100000\n");
        let limits = read_cgroup(&host.host()).unwrap();
        assert_eq!(limits.cpu_quota.unwrap().cpus(), 1.5);
        assert_eq!(usable_cpus(&host.host(), Some(&limits)), 1);
    }

    #[test]
    fn cgroup_v1_is_reported_not_guessed() {
        let host = FakeHost::empty();
        host.file("/proc/self/cgroup", "12:cpu,cpuacct:/user.slice\n");
        let error = read_cgroup(&host.host()).unwrap_err();
        assert!(error.to_string().contains("cgroup v1"), "{error}");
        let check = check_cpu_quota(Err(&error), 4);
        assert_eq!(check.status, Status::Warn);
        // Hybrid: v1 controllers, and an empty v2 tree mounted at .../unified.
        host.file("/proc/self/cgroup", "4:memory:/a\n1:cpu:/\n0::/\n");
        host.file("/sys/fs/cgroup/unified/cgroup.procs", "1\n");
        let error = read_cgroup(&host.host()).unwrap_err();
        assert!(error.to_string().contains("hybrid"), "{error}");
    }

    #[test]
    fn more_workers_than_the_quota_warns_of_throttling() {
        let host = FakeHost::well_kept();
        host.cgroup_file("cpu.max", "250000 100000\n");
        let limits = read_cgroup(&host.host()).unwrap();
        assert_eq!(check_cpu_quota(Ok(&limits), 3).status, Status::Pass);
        let over = check_cpu_quota(Ok(&limits), 4);
        assert_eq!(over.status, Status::Warn, "{over:?}");
        assert_eq!(over.measured, "2.50 CPUs (250000 / 100000 us)");
        assert!(over.fix.unwrap().starts_with("workers = 2"));
        assert_eq!(check_cpu_quota(Ok(&limits), 0).status, Status::Pass);
        host.cgroup_file("cpu.max", "50000 100000\n");
        let limits = read_cgroup(&host.host()).unwrap();
        assert_eq!(check_cpu_quota(Ok(&limits), 0).status, Status::Warn);
    }

    #[test]
    fn more_workers_than_allowed_cpus_warns() {
        let host = FakeHost::well_kept();
        host.cgroup_file("cpuset.cpus.effective", "2,5\n");
        let limits = read_cgroup(&host.host()).unwrap();
        let check = check_cpuset(&host.host(), Ok(&limits), 4);
        assert_eq!(check.status, Status::Warn, "{check:?}");
        assert_eq!(check.measured, "2 CPUs (cpuset.cpus.effective)");
        assert_eq!(
            check_cpuset(&host.host(), Ok(&limits), 2).status,
            Status::Pass
        );
    }

    #[test]
    fn without_a_cpuset_the_affinity_mask_counts() {
        let host = FakeHost::empty();
        host.file("/proc/self/status", "Cpus_allowed_list:\t0-1\n");
        let error = read_cgroup(&host.host()).unwrap_err();
        let check = check_cpuset(&host.host(), Err(&error), 3);
        assert_eq!(check.status, Status::Warn);
        assert_eq!(check.measured, "2 CPUs (affinity)");
    }

    #[test]
    fn cpu_lists_and_cpu_max_parse_the_kernel_formats() {
        assert_eq!(parse_cpu_list("0-2,5,7-8\n"), Some(vec![0, 1, 2, 5, 7, 8]));
        assert_eq!(parse_cpu_list("\n"), None);
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("0-4294967295"), None);
        assert_eq!(parse_cpu_max("max 100000"), None);
        assert_eq!(
            parse_cpu_max("50000 100000\n"),
            Some(CpuQuota {
                quota_us: 50_000,
                period_us: 100_000
            })
        );
        assert_eq!(parse_cpu_max("50000 0"), None);
    }
}

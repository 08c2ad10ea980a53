//! `guess-game doctor`: the go-live checklist as a command.
//!
//! Reads the settings `serve` would run with and checks this host for them: descriptors against
//! `max_connections`, the kernel's accept and SYN queues against `listen_backlog`, the cgroup's
//! CPU and memory limits against `workers` and the expected resident size, transparent huge
//! pages, clock synchronisation, the listeners' addresses, the TLS certificate and the Redis
//! store when there are any. Each [`Check`] says pass, warn or fail, what it measured, what it should be and the
//! command that fixes it; [`Report`] renders them for people or as JSON.
//!
//! Every check reads the host through a [`Host`]: a root directory under which `/proc`, `/sys`
//! and the cgroup tree are looked up. In production that root is `/`; the tests build fake
//! trees under the temporary directory and point a `Host` at them, so each check is exercised
//! against hosts this machine is not. Only the clock (a system call), the bind tests (real
//! sockets) and Redis (a real connection) look past the root.
//!
//! The doctor never changes the host: it reads files, binds and releases sockets, and sends
//! Redis read-only commands (`PING`, `INFO`, `CONFIG GET`).

mod cgroup;
mod clock;
mod descriptors;
#[cfg(test)]
mod fake;
mod listeners;
mod memory;
mod network;
mod probe;
mod redis;
mod report;
mod tls;

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Serialize;

use crate::config::Settings;

pub use probe::{ProbeError, probe_health, probe_health_tls};
pub use report::Report;

/// How a check came out. Ordered from best to worst, so the worst of a report is its `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// As it should be for these settings.
    Pass,
    /// Works, but will hurt under load or in an incident; the fix is advised.
    Warn,
    /// The server will not do what its settings promise on this host.
    Fail,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One finding: what was looked at, what was found, what it should be, and how to fix it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Check {
    /// A stable, machine-readable name (`open_files`, `somaxconn`, `redis_version`, ...).
    pub name: &'static str,
    pub status: Status,
    /// What the host has, with units.
    pub measured: String,
    /// What these settings need.
    pub expected: String,
    /// The exact command (or setting) that fixes it; absent when the check passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// Why it matters, or what the figure assumed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Check {
    fn pass(name: &'static str, measured: impl Into<String>, expected: impl Into<String>) -> Self {
        Check {
            name,
            status: Status::Pass,
            measured: measured.into(),
            expected: expected.into(),
            fix: None,
            note: None,
        }
    }

    fn warn(
        name: &'static str,
        measured: impl Into<String>,
        expected: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Check {
            status: Status::Warn,
            fix: Some(fix.into()),
            ..Check::pass(name, measured, expected)
        }
    }

    fn fail(
        name: &'static str,
        measured: impl Into<String>,
        expected: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Check {
            status: Status::Fail,
            fix: Some(fix.into()),
            ..Check::pass(name, measured, expected)
        }
    }

    fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
}

/// Where the host's `/proc`, `/sys` and cgroup files are read from.
#[derive(Clone, Debug)]
pub struct Host {
    root: PathBuf,
}

/// A host file that could not be read or understood.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot understand {path}: {text:?}")]
    Parse { path: String, text: String },
}

impl Host {
    /// The machine this process runs on.
    pub fn system() -> Host {
        Host::rooted_at("/")
    }

    /// A host whose `/proc`, `/sys` and cgroup tree are under `root` (a fake tree in tests, or
    /// a host's root filesystem mounted elsewhere).
    pub fn rooted_at(root: impl Into<PathBuf>) -> Host {
        Host { root: root.into() }
    }

    /// Where `absolute` (a path such as `/proc/sys/net/core/somaxconn`) is on this host.
    fn path(&self, absolute: &str) -> PathBuf {
        self.root.join(absolute.trim_start_matches('/'))
    }

    fn read(&self, absolute: &str) -> Result<String, HostError> {
        read_file(&self.path(absolute), absolute)
    }

    /// A file holding one number, such as a sysctl.
    fn read_number<T: FromStr>(&self, absolute: &str) -> Result<T, HostError> {
        let text = self.read(absolute)?;
        text.trim().parse().map_err(|_| HostError::Parse {
            path: absolute.to_owned(),
            text: text.trim().to_owned(),
        })
    }
}

fn read_file(path: &Path, shown_as: &str) -> Result<String, HostError> {
    std::fs::read_to_string(path).map_err(|source| HostError::Read {
        path: shown_as.to_owned(),
        source,
    })
}

/// Checks `host` for `settings`. Host files that cannot be read turn into warnings (a check
/// that cannot look is no reason to stop the others); only Redis is waited on, for at most
/// `store_timeout` per step.
pub async fn examine(settings: &Settings, host: &Host) -> Report {
    let mut checks = Vec::new();

    let open_files = descriptors::read_open_file_limit(host);
    checks.push(descriptors::check_open_files(
        open_files.as_ref(),
        settings.server.max_connections,
    ));
    let max_connections = descriptors::effective_max_connections(
        settings.server.max_connections,
        open_files.as_ref().ok(),
    );

    checks.extend(network::check_queues(host, settings.server.listen_backlog));
    checks.push(network::check_syn_cookies(host));
    checks.push(network::check_ephemeral_ports(host, settings));

    let cgroup = cgroup::read_cgroup(host);
    let cpus = cgroup::usable_cpus(host, cgroup.as_ref().ok());
    checks.push(cgroup::check_cpu_quota(
        cgroup.as_ref(),
        settings.server.workers,
    ));
    checks.push(cgroup::check_cpuset(
        host,
        cgroup.as_ref(),
        settings.server.workers,
    ));

    let hash_concurrency = match settings.accounts.password_hash_concurrency {
        0 => (cpus / 2).max(1),
        given => given,
    };
    let footprint = memory::Footprint::expected(
        max_connections,
        hash_concurrency,
        settings.accounts.password_hash_memory_kib,
    );
    checks.push(memory::check_memory_limit(
        host,
        cgroup.as_ref().ok(),
        &footprint,
    ));
    checks.push(memory::check_transparent_hugepages(host));

    checks.push(clock::check_clock(&clock::read_kernel_clock()));

    checks.push(listeners::check_admin_address(&settings.admin));
    checks.push(listeners::check_bind(
        "public_listener",
        settings.server.listen,
        host,
    ));
    checks.push(listeners::check_bind(
        "admin_listener",
        settings.admin.admin_listen,
        host,
    ));

    if let (Some(certificate), Some(key)) =
        (&settings.server.tls_certificate, &settings.server.tls_key)
    {
        checks.push(tls::check_certificate(certificate, key));
    }

    if settings.store.url != "memory" {
        checks.extend(redis::check_redis(&settings.store.url, settings.store.store_timeout).await);
    }
    Report { checks }
}

/// `n` with thousands separators, for figures people read.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Bytes as MiB (or GiB past 10 GiB), for people.
fn mebibytes(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let mib = bytes as f64 / MIB;
    if mib >= 10.0 * 1024.0 {
        format!("{:.1} GiB", mib / 1024.0)
    } else {
        format!("{mib:.0} MiB")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fake::FakeHost;

    #[test]
    fn numbers_are_grouped_and_sizes_rounded_for_people() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(1_048_576), "1,048,576");
        assert_eq!(mebibytes(50 * 1024 * 1024), "50 MiB");
        assert_eq!(mebibytes(24 * 1024 * 1024 * 1024), "24.0 GiB");
    }

    /// The whole examination against a well-kept fake host: every host check passes, so the
    /// exit code would be 0 (the clock is the real kernel's and is left out).
    #[tokio::test]
    async fn a_well_kept_host_passes_every_host_check() {
        let host = FakeHost::well_kept();
        let mut settings = Settings::default();
        settings.server.listen = "127.0.0.1:0".parse().unwrap();
        settings.admin.admin_listen = "127.0.0.1:0".parse().unwrap();
        settings.server.max_connections = 10_000;
        let report = examine(&settings, &host.host()).await;
        let names: Vec<_> = report.checks.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "open_files",
                "somaxconn",
                "tcp_max_syn_backlog",
                "tcp_syncookies",
                "ephemeral_ports",
                "cpu_quota",
                "cpuset",
                "memory_limit",
                "transparent_hugepages",
                "clock",
                "admin_address",
                "public_listener",
                "admin_listener",
            ]
        );
        for check in report.checks.iter().filter(|c| c.name != "clock") {
            assert_eq!(check.status, Status::Pass, "{check:?}");
        }
    }

    /// A host with nothing under its root: every file check says it could not look, as a
    /// warning, and none of them fails or panics.
    #[tokio::test]
    async fn an_empty_host_warns_that_it_cannot_look_and_fails_nothing() {
        let host = FakeHost::empty();
        let mut settings = Settings::default();
        settings.server.listen = "127.0.0.1:0".parse().unwrap();
        settings.admin.admin_listen = "127.0.0.1:0".parse().unwrap();
        let report = examine(&settings, &host.host()).await;
        for check in report.checks.iter().filter(|c| c.name != "clock") {
            assert_ne!(check.status, Status::Fail, "{check:?}");
        }
        let somaxconn = report
            .checks
            .iter()
            .find(|c| c.name == "somaxconn")
            .unwrap();
        assert_eq!(somaxconn.status, Status::Warn);
        assert!(somaxconn.measured.contains("cannot read"), "{somaxconn:?}");
    }
}

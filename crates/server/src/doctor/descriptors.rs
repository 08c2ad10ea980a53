//! The open-file limit against `max_connections`: every public connection is a descriptor, and
//! a server out of descriptors stops accepting (EMFILE) while its listen queue fills.
//!
//! The limit read is this process's (`/proc/self/limits`), which is the server's when the doctor
//! is started the way the server is (the same unit, container or shell). The server raises its
//! soft limit to the hard one at start-up, so the hard limit is the one that counts.

use super::{Check, Host, HostError, grouped};

/// Descriptors the server keeps back from the connection cap for listeners, logs, the admin
/// port, Redis and the runtime. The same figure as `RESERVED_FDS` in `server::limits`, whose
/// derivation [`derived_max_connections`] repeats (that module is private to `server`).
pub(super) const FDS_KEPT_BACK: u64 = 256;
/// The derived cap's upper bound, as in `server::limits`.
const MAX_DERIVED_CONNECTIONS: u64 = 200_000;
/// With `max_connections = 0`, a hard limit below this derives a cap too low for a public
/// server (65,280 connections); distributions' service defaults (systemd: 524,288) are above.
const ADVISED_HARD_LIMIT: u64 = 65_536;
/// What the server assumes when it cannot read its limit.
const FALLBACK_LIMIT: u64 = 1024;

/// `RLIMIT_NOFILE`; `u64::MAX` stands for "unlimited".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct OpenFileLimit {
    pub soft: u64,
    pub hard: u64,
}

pub(super) fn read_open_file_limit(host: &Host) -> Result<OpenFileLimit, HostError> {
    const PATH: &str = "/proc/self/limits";
    let text = host.read(PATH)?;
    parse_limits(&text).ok_or_else(|| HostError::Parse {
        path: PATH.to_owned(),
        text: text
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap_or("no \"Max open files\" line")
            .to_owned(),
    })
}

/// The "Max open files" line of `/proc/<pid>/limits`: `Max open files  1024  1048576  files`.
fn parse_limits(text: &str) -> Option<OpenFileLimit> {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?;
    let mut fields = line.split_whitespace();
    let value = |field: Option<&str>| match field? {
        "unlimited" => Some(u64::MAX),
        number => number.parse().ok(),
    };
    Some(OpenFileLimit {
        soft: value(fields.next())?,
        hard: value(fields.next())?,
    })
}

/// What `server::limits::default_max_connections` derives from a hard limit.
fn derived_max_connections(hard: u64) -> u64 {
    hard.saturating_sub(FDS_KEPT_BACK)
        .clamp(16, MAX_DERIVED_CONNECTIONS)
}

/// The cap the server will run with: the setting, or the one derived from the hard limit.
pub(super) fn effective_max_connections(configured: usize, limit: Option<&OpenFileLimit>) -> usize {
    if configured > 0 {
        return configured;
    }
    let hard = limit.map_or(FALLBACK_LIMIT, |l| l.hard);
    usize::try_from(derived_max_connections(hard)).unwrap_or(usize::MAX)
}

fn shown(limit: u64) -> String {
    if limit == u64::MAX {
        "unlimited".to_owned()
    } else {
        grouped(limit)
    }
}

fn raise_fix(to: u64) -> String {
    format!(
        "LimitNOFILE={to} in the unit (`systemctl edit guess-game`), `ulimit -n {to}` in the \
         shell that starts the server, or `--ulimit nofile={to}:{to}` for a container"
    )
}

pub(super) fn check_open_files(
    limit: Result<&OpenFileLimit, &HostError>,
    max_connections: usize,
) -> Check {
    const NAME: &str = "open_files";
    let limit = match limit {
        Ok(limit) => limit,
        Err(error) => {
            return Check::warn(
                NAME,
                error.to_string(),
                "a readable open-file limit",
                "run the doctor on Linux, as the server runs",
            );
        }
    };
    let measured = format!("soft {}, hard {}", shown(limit.soft), shown(limit.hard));
    let raised = (limit.soft < limit.hard).then(|| {
        format!(
            "the server raises the soft limit to the hard one ({}) at start-up",
            shown(limit.hard)
        )
    });
    let with_raised = |check: Check| match &raised {
        Some(note) => check.with_note(note.clone()),
        None => check,
    };
    if max_connections == 0 {
        let derived = derived_max_connections(limit.hard);
        let expected = format!(
            "hard >= {} (max_connections = 0 derives the cap from it: {} connections now)",
            grouped(ADVISED_HARD_LIMIT),
            grouped(derived)
        );
        if limit.hard < ADVISED_HARD_LIMIT {
            return with_raised(Check::warn(NAME, measured, expected, raise_fix(1_048_576)));
        }
        return with_raised(Check::pass(NAME, measured, expected));
    }
    let needed = max_connections as u64 + FDS_KEPT_BACK;
    let expected = format!(
        "hard >= {} (max_connections {} + {FDS_KEPT_BACK} kept back)",
        grouped(needed),
        grouped(max_connections as u64)
    );
    if limit.hard < needed {
        return Check::fail(
            NAME,
            measured,
            expected,
            raise_fix(needed.next_power_of_two()),
        )
        .with_note(
            "past the limit accept() fails with EMFILE: new connections wait in the listen \
                 queue and time out instead of being answered 503",
        );
    }
    with_raised(Check::pass(NAME, measured, expected))
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::super::fake::FakeHost;
    use super::*;

    fn check(soft: u64, hard: u64, max_connections: usize) -> Check {
        let host = FakeHost::empty();
        host.limits(soft, hard);
        let limit = read_open_file_limit(&host.host());
        check_open_files(limit.as_ref(), max_connections)
    }

    #[test]
    fn the_limits_file_is_parsed_including_unlimited() {
        let host = FakeHost::empty();
        host.limits(1024, u64::MAX);
        assert_eq!(
            read_open_file_limit(&host.host()).unwrap(),
            OpenFileLimit {
                soft: 1024,
                hard: u64::MAX
            }
        );
        host.file(
            "/proc/self/limits",
            "Max cpu time unlimited unlimited seconds\n",
        );
        assert!(matches!(
            read_open_file_limit(&host.host()),
            Err(HostError::Parse { .. })
        ));
    }

    #[test]
    fn a_hard_limit_below_max_connections_plus_the_reserve_fails() {
        let failed = check(1024, 10_255, 10_000);
        assert_eq!(failed.status, Status::Fail, "{failed:?}");
        assert!(failed.expected.contains("10,256"), "{failed:?}");
        assert!(failed.fix.unwrap().contains("LimitNOFILE=16384"));
        let passed = check(1024, 10_256, 10_000);
        assert_eq!(passed.status, Status::Pass, "{passed:?}");
        assert!(passed.note.unwrap().contains("raises the soft limit"));
    }

    #[test]
    fn a_derived_cap_warns_only_when_the_hard_limit_is_low() {
        let low = check(1024, 4096, 0);
        assert_eq!(low.status, Status::Warn, "{low:?}");
        assert!(low.expected.contains("3,840 connections"), "{low:?}");
        assert_eq!(check(1024, 1_048_576, 0).status, Status::Pass);
        assert_eq!(check(u64::MAX, u64::MAX, 0).status, Status::Pass);
    }

    #[test]
    fn an_unreadable_limit_is_a_warning_not_a_failure() {
        let host = FakeHost::empty();
        let limit = read_open_file_limit(&host.host());
        let check = check_open_files(limit.as_ref(), 100);
        assert_eq!(check.status, Status::Warn);
        assert!(check.measured.contains("/proc/self/limits"), "{check:?}");
    }

    #[test]
    fn the_effective_cap_is_the_setting_or_derived_like_the_server_does() {
        let limit = OpenFileLimit {
            soft: 1024,
            hard: 1024,
        };
        assert_eq!(effective_max_connections(500, Some(&limit)), 500);
        // server::limits' own test: 1024 -> 768, 100 -> 16, 1 Mi -> 200,000.
        assert_eq!(effective_max_connections(0, Some(&limit)), 768);
        assert_eq!(derived_max_connections(100), 16);
        assert_eq!(derived_max_connections(1 << 20), 200_000);
        assert_eq!(effective_max_connections(0, None), 768);
    }
}

//! The kernel's TCP settings the server depends on: the accept and SYN queues against
//! `listen_backlog`, SYN cookies, and the ephemeral port range.
//!
//! These sysctls are per network namespace: in a container they are the pod's, set with the
//! pod's `securityContext.sysctls` (or `docker run --sysctl`), not the node's.

use std::net::SocketAddr;

use super::{Check, Host, grouped};
use crate::config::Settings;

/// Fewer ephemeral ports than this and a burst of reconnections to Redis (every instance on
/// the host after a Redis failover, each through its own connection manager, plus whatever else
/// the host runs) can find none free while old ones sit in TIME_WAIT (60 s). The kernel default,
/// 32768-60999, has 28,232.
const MIN_EPHEMERAL_PORTS: u32 = 10_000;

fn sysctl_fix(name: &str, value: impl std::fmt::Display) -> String {
    format!(
        "sysctl -w {name}={value} && echo '{name} = {value}' >> /etc/sysctl.d/60-guess-game.conf"
    )
}

/// `net.core.somaxconn` (the cap on every accept queue) and `net.ipv4.tcp_max_syn_backlog`
/// (half-open connections) against `listen_backlog`.
pub(super) fn check_queues(host: &Host, listen_backlog: u32) -> [Check; 2] {
    let queue = |name: &'static str, sysctl: &str, path: &str, why: &str| {
        let expected = format!(">= {} (listen_backlog)", grouped(listen_backlog.into()));
        match host.read_number::<u32>(path) {
            Err(error) => Check::warn(
                name,
                format!("{error}"),
                expected,
                sysctl_fix(sysctl, listen_backlog),
            ),
            Ok(value) if value < listen_backlog => Check::warn(
                name,
                grouped(value.into()),
                expected,
                sysctl_fix(sysctl, listen_backlog),
            )
            .with_note(why.to_owned()),
            Ok(value) => Check::pass(name, grouped(value.into()), expected),
        }
    };
    [
        queue(
            "somaxconn",
            "net.core.somaxconn",
            "/proc/sys/net/core/somaxconn",
            "the kernel silently caps the listen backlog at somaxconn: a burst of connections \
             beyond it is dropped (clients retry their SYN after 1 s, 3 s, ...)",
        ),
        queue(
            "tcp_max_syn_backlog",
            "net.ipv4.tcp_max_syn_backlog",
            "/proc/sys/net/ipv4/tcp_max_syn_backlog",
            "half-open connections beyond it are dropped, or answered with SYN cookies when \
             those are on",
        ),
    ]
}

/// `net.ipv4.tcp_syncookies`: 1 (cookies once the SYN queue overflows) is the right answer.
pub(super) fn check_syn_cookies(host: &Host) -> Check {
    const NAME: &str = "tcp_syncookies";
    const EXPECTED: &str = "1 (cookies only when the SYN queue overflows)";
    let fix = sysctl_fix("net.ipv4.tcp_syncookies", 1);
    match host.read_number::<u8>("/proc/sys/net/ipv4/tcp_syncookies") {
        Err(error) => Check::warn(NAME, error.to_string(), EXPECTED, fix),
        Ok(1) => Check::pass(NAME, "1", EXPECTED),
        Ok(0) => Check::warn(NAME, "0 (off)", EXPECTED, fix).with_note(
            "without cookies a SYN flood fills the SYN queue and real clients cannot connect",
        ),
        Ok(other) => Check::warn(NAME, format!("{other} (always)"), EXPECTED, fix).with_note(
            "2 answers every SYN with a cookie, even without a flood, which loses TCP options \
             a connection would otherwise negotiate",
        ),
    }
}

/// `net.ipv4.ip_local_port_range`: wide enough for outgoing connections when the store is
/// Redis, and not covering a port the server listens on (an outgoing connection could take the
/// port first, and the server would fail to bind it after a restart).
pub(super) fn check_ephemeral_ports(host: &Host, settings: &Settings) -> Check {
    const NAME: &str = "ephemeral_ports";
    let uses_redis = settings.store.url != "memory";
    let expected = if uses_redis {
        format!(
            ">= {} ports (the store is Redis), not covering ports {} and {}",
            grouped(MIN_EPHEMERAL_PORTS.into()),
            settings.server.listen.port(),
            settings.admin.admin_listen.port()
        )
    } else {
        format!(
            "not covering ports {} and {}",
            settings.server.listen.port(),
            settings.admin.admin_listen.port()
        )
    };
    let range = match read_port_range(host) {
        Ok(range) => range,
        Err(error) => {
            return Check::warn(
                NAME,
                error,
                expected,
                "sysctl net.ipv4.ip_local_port_range (Linux only)",
            );
        }
    };
    let reserved = host
        .read("/proc/sys/net/ipv4/ip_local_reserved_ports")
        .map(|text| parse_port_list(&text))
        .unwrap_or_default();
    let (low, high) = range;
    let span = u32::from(high.saturating_sub(low)) + 1;
    let measured = format!("{low}-{high} ({} ports)", grouped(span.into()));
    let listeners: [SocketAddr; 2] = [settings.server.listen, settings.admin.admin_listen];
    let exposed: Vec<u16> = listeners
        .iter()
        .map(SocketAddr::port)
        .filter(|&port| port != 0 && (low..=high).contains(&port))
        .filter(|port| !reserved.iter().any(|(a, b)| (a..=b).contains(&port)))
        .collect();
    if let Some(&port) = exposed.first() {
        let ports = exposed
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",");
        return Check::warn(
            NAME,
            measured,
            expected,
            sysctl_fix("net.ipv4.ip_local_reserved_ports", ports),
        )
        .with_note(format!(
            "port {port} is in the ephemeral range: an outgoing connection can hold it when the \
             server starts, and the bind fails"
        ));
    }
    if uses_redis && span < MIN_EPHEMERAL_PORTS {
        return Check::warn(
            NAME,
            measured,
            expected,
            sysctl_fix("net.ipv4.ip_local_port_range", "\"32768 60999\""),
        );
    }
    Check::pass(NAME, measured, expected)
}

fn read_port_range(host: &Host) -> Result<(u16, u16), String> {
    const PATH: &str = "/proc/sys/net/ipv4/ip_local_port_range";
    let text = host.read(PATH).map_err(|e| e.to_string())?;
    let mut ports = text.split_whitespace().map(str::parse::<u16>);
    match (ports.next(), ports.next()) {
        (Some(Ok(low)), Some(Ok(high))) if low <= high => Ok((low, high)),
        _ => Err(format!("cannot understand {PATH}: {:?}", text.trim())),
    }
}

/// `ip_local_reserved_ports`: `8080,9000-9100`; what does not parse is left out.
fn parse_port_list(text: &str) -> Vec<(u16, u16)> {
    text.trim()
        .split(',')
        .filter_map(|item| {
            let (low, high) = item.split_once('-').unwrap_or((item, item));
            Some((low.trim().parse().ok()?, high.trim().parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::super::fake::FakeHost;
    use super::*;

    #[test]
    fn queues_shorter_than_the_backlog_warn_with_the_sysctl_that_fixes_them() {
        let host = FakeHost::well_kept();
        host.file("/proc/sys/net/core/somaxconn", "128\n");
        let [somaxconn, syn] = check_queues(&host.host(), 4096);
        assert_eq!(somaxconn.status, Status::Warn);
        assert_eq!(somaxconn.measured, "128");
        assert!(
            somaxconn
                .fix
                .unwrap()
                .starts_with("sysctl -w net.core.somaxconn=4096")
        );
        assert_eq!(syn.status, Status::Pass, "{syn:?}");
        let [somaxconn, syn] = check_queues(&host.host(), 100);
        assert_eq!((somaxconn.status, syn.status), (Status::Pass, Status::Pass));
    }

    #[test]
    fn a_missing_or_garbled_sysctl_is_a_warning() {
        let host = FakeHost::well_kept();
        host.remove("/proc/sys/net/ipv4/tcp_max_syn_backlog");
        host.file("/proc/sys/net/core/somaxconn", "lots\n");
        let [somaxconn, syn] = check_queues(&host.host(), 4096);
        assert_eq!(somaxconn.status, Status::Warn);
        assert!(
            somaxconn.measured.contains("cannot understand"),
            "{somaxconn:?}"
        );
        assert!(syn.measured.contains("cannot read"), "{syn:?}");
    }

    #[test]
    fn syn_cookies_should_be_on_demand() {
        let host = FakeHost::well_kept();
        assert_eq!(check_syn_cookies(&host.host()).status, Status::Pass);
        for value in ["0", "2"] {
            host.file("/proc/sys/net/ipv4/tcp_syncookies", value);
            let check = check_syn_cookies(&host.host());
            assert_eq!(check.status, Status::Warn, "{value}");
            assert!(check.fix.unwrap().contains("tcp_syncookies=1"));
        }
    }

    #[test]
    fn a_listening_port_inside_the_ephemeral_range_warns_unless_reserved() {
        let host = FakeHost::well_kept();
        let mut settings = Settings::default();
        settings.server.listen = "0.0.0.0:40000".parse().unwrap();
        let check = check_ephemeral_ports(&host.host(), &settings);
        assert_eq!(check.status, Status::Warn, "{check:?}");
        assert!(check.fix.unwrap().contains("ip_local_reserved_ports=40000"));
        host.file(
            "/proc/sys/net/ipv4/ip_local_reserved_ports",
            "39000-41000\n",
        );
        assert_eq!(
            check_ephemeral_ports(&host.host(), &settings).status,
            Status::Pass
        );
    }

    #[test]
    fn a_narrow_range_matters_only_with_redis() {
        let host = FakeHost::well_kept();
        host.file("/proc/sys/net/ipv4/ip_local_port_range", "60000 61000\n");
        let mut settings = Settings::default();
        let memory = check_ephemeral_ports(&host.host(), &settings);
        assert_eq!(memory.status, Status::Pass, "{memory:?}");
        assert_eq!(memory.measured, "60000-61000 (1,001 ports)");
        settings.store.url = "redis://127.0.0.1:6379".to_owned();
        let redis = check_ephemeral_ports(&host.host(), &settings);
        assert_eq!(redis.status, Status::Warn, "{redis:?}");
        assert!(redis.expected.contains("10,000"));
    }

    #[test]
    fn port_lists_parse_single_ports_and_ranges() {
        assert_eq!(
            parse_port_list("8080,9000-9100, x\n"),
            [(8080, 8080), (9000, 9100)]
        );
        assert!(parse_port_list("\n").is_empty());
    }
}

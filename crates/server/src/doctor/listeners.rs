//! The listeners: the admin listener's address (it serves metrics and CPU profiles, so it is
//! never public by accident), and whether each address can be bound here now.
//!
//! The bind test binds and at once releases a socket, so it cannot tell "free" from "free for
//! the next millisecond"; what it does catch is an address this host does not have, a port
//! another process holds (this server already running included), and a privileged port.

use std::net::{SocketAddr, TcpListener};

use super::{Check, Host};
use crate::config::Admin;

pub(super) fn check_admin_address(admin: &Admin) -> Check {
    const NAME: &str = "admin_address";
    let address = admin.admin_listen;
    let measured = format!(
        "{address}{}",
        if admin.admin_public {
            " (admin_public = true)"
        } else {
            ""
        }
    );
    const EXPECTED: &str = "a loopback address, or a private network a firewall keeps internal";
    if address.ip().is_loopback() {
        return Check::pass(NAME, measured, EXPECTED);
    }
    let fix = "admin_listen = \"127.0.0.1:6060\" (scrape through a sidecar or an SSH tunnel), or \
               keep port 6060 closed to the outside (NetworkPolicy, security group, nftables)";
    if !admin.admin_public {
        // Configuration validation refuses this; settings built another way could still say it.
        return Check::fail(NAME, measured, EXPECTED, fix);
    }
    Check::warn(NAME, measured, EXPECTED, fix).with_note(
        "the admin listener serves /metrics, CPU profiles and runtime flags to anyone who can \
         reach it: only a network boundary protects it",
    )
}

/// Binds `address` and releases it at once.
pub(super) fn check_bind(name: &'static str, address: SocketAddr, host: &Host) -> Check {
    let result = TcpListener::bind(address).map(drop);
    let unprivileged_start = host
        .read_number::<u16>("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok();
    judge_bind(name, address, &result, unprivileged_start)
}

fn judge_bind(
    name: &'static str,
    address: SocketAddr,
    result: &std::io::Result<()>,
    unprivileged_start: Option<u16>,
) -> Check {
    let expected = format!("{address} free to bind");
    let error = match result {
        Ok(()) => return Check::pass(name, format!("{address} bound and released"), expected),
        Err(error) => error,
    };
    let measured = format!("cannot bind {address}: {error}");
    let port = address.port();
    match error.raw_os_error() {
        Some(libc::EADDRINUSE) => Check::fail(
            name,
            measured,
            expected,
            format!("ss -ltnp 'sport = :{port}' shows who holds it; stop it or choose another port"),
        )
        .with_note("an instance of this server already running here holds it too; `guess-game doctor --probe` checks a running one"),
        Some(libc::EACCES) => {
            let start = unprivileged_start.map_or(String::new(), |s| format!(" (ports below {s})"));
            Check::fail(
                name,
                measured,
                expected,
                format!(
                    "AmbientCapabilities=CAP_NET_BIND_SERVICE in the unit, `setcap \
                     cap_net_bind_service=+ep $(command -v guess-game)`, or \
                     `sysctl -w net.ipv4.ip_unprivileged_port_start={port}`"
                ),
            )
            .with_note(format!("binding privileged ports{start} needs CAP_NET_BIND_SERVICE"))
        }
        Some(libc::EADDRNOTAVAIL) => Check::fail(
            name,
            measured,
            expected,
            "listen on an address this host has (`ip -brief address`), or 0.0.0.0",
        ),
        _ => Check::fail(name, measured, expected, "see the error above"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::super::fake::FakeHost;
    use super::*;

    fn admin(address: &str, public: bool) -> Admin {
        Admin {
            admin_listen: address.parse().unwrap(),
            admin_public: public,
            fault_injection: false,
        }
    }

    #[test]
    fn the_admin_listener_passes_on_loopback_only() {
        assert_eq!(
            check_admin_address(&admin("127.0.0.1:6060", false)).status,
            Status::Pass
        );
        assert_eq!(
            check_admin_address(&admin("[::1]:6060", false)).status,
            Status::Pass
        );
        let public = check_admin_address(&admin("0.0.0.0:6060", true));
        assert_eq!(public.status, Status::Warn, "{public:?}");
        assert!(public.measured.contains("admin_public = true"));
        assert_eq!(
            check_admin_address(&admin("10.0.0.5:6060", false)).status,
            Status::Fail
        );
    }

    #[test]
    fn a_port_held_by_another_listener_fails_and_a_released_one_passes() {
        let host = FakeHost::well_kept();
        let holder = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = holder.local_addr().unwrap();
        let held = check_bind("public_listener", address, &host.host());
        assert_eq!(held.status, Status::Fail, "{held:?}");
        assert!(
            held.fix
                .unwrap()
                .contains(&format!("sport = :{}", address.port()))
        );
        drop(holder);
        let free = check_bind("public_listener", address, &host.host());
        assert_eq!(free.status, Status::Pass, "{free:?}");
        // The check released it: binding again works.
        TcpListener::bind(address).unwrap();
    }

    #[test]
    fn an_address_this_host_lacks_fails() {
        let host = FakeHost::well_kept();
        // TEST-NET-1 (RFC 5737) is on no interface of a test machine.
        let check = check_bind(
            "public_listener",
            "192.0.2.1:8080".parse().unwrap(),
            &host.host(),
        );
        assert_eq!(check.status, Status::Fail, "{check:?}");
        assert!(check.fix.unwrap().contains("ip -brief address"));
    }

    #[test]
    fn a_privileged_port_names_the_capability() {
        let refused = Err(std::io::Error::from_raw_os_error(libc::EACCES));
        let check = judge_bind(
            "public_listener",
            "0.0.0.0:80".parse().unwrap(),
            &refused,
            Some(1024),
        );
        assert_eq!(check.status, Status::Fail);
        assert!(check.fix.unwrap().contains("CAP_NET_BIND_SERVICE"));
        assert!(check.note.unwrap().contains("below 1024"));
    }
}

//! Creating the listening sockets with the options the serving layer relies on.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Binds the listening sockets for `workers` workers: one shared socket, or with `reuse_port`
/// one socket per worker on the same address (SO_REUSEPORT), among which the kernel spreads
/// new connections. With port 0 the first socket picks the port and the others join it.
pub fn bind_all(
    address: SocketAddr,
    workers: usize,
    backlog: u32,
    reuse_port: bool,
) -> io::Result<Vec<std::net::TcpListener>> {
    warn_if_backlog_is_capped(backlog);
    let count = if reuse_port { workers.max(1) } else { 1 };
    let mut listeners = Vec::with_capacity(count);
    let mut address = address;
    for _ in 0..count {
        let listener = bind(address, backlog, reuse_port)?;
        address = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok(listeners)
}

fn bind(address: SocketAddr, backlog: u32, reuse_port: bool) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    // Lets a restarted server bind while old connections sit in TIME_WAIT.
    socket.set_reuse_address(true)?;
    if reuse_port {
        #[cfg(unix)]
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

/// The kernel silently caps the backlog at `net.core.somaxconn`; say so when it does, since
/// a short accept queue drops connections under bursts.
fn warn_if_backlog_is_capped(backlog: u32) {
    let Ok(text) = std::fs::read_to_string("/proc/sys/net/core/somaxconn") else {
        return;
    };
    if let Ok(somaxconn) = text.trim().parse::<u32>()
        && somaxconn < backlog
    {
        tracing::warn!(
            listen_backlog = backlog,
            somaxconn,
            "the kernel caps the listen backlog at net.core.somaxconn; raise it with sysctl for bursts"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuse_port_binds_one_socket_per_worker_on_one_port() {
        let listeners = bind_all("127.0.0.1:0".parse().unwrap(), 3, 128, true).unwrap();
        assert_eq!(listeners.len(), 3);
        let port = listeners[0].local_addr().unwrap().port();
        assert!(
            listeners
                .iter()
                .all(|l| l.local_addr().unwrap().port() == port)
        );
    }

    #[test]
    fn a_shared_listener_is_one_socket() {
        assert_eq!(
            bind_all("127.0.0.1:0".parse().unwrap(), 3, 128, false)
                .unwrap()
                .len(),
            1
        );
    }
}

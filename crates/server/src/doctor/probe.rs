//! The container health check (`guess-game doctor --probe`): asks the instance running on this
//! host whether it is alive. The final image has no shell and no curl, so the binary asks
//! itself; `/healthz` is the liveness probe (it stays 200 while the instance drains).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};

use crate::client::{ClientError, ServerUrl};

/// Why a running instance did not look alive.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Unreachable(#[from] ClientError),
    #[error("GET /healthz on {address} answered {status}")]
    Status {
        address: SocketAddr,
        status: StatusCode,
    },
}

/// Where to reach a listener bound to `listen` from this host: an unspecified address (all
/// interfaces) is reached on loopback.
fn local_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// `GET /healthz` on the public listener, all within `timeout`.
pub async fn probe_health(listen: SocketAddr, timeout: Duration) -> Result<(), ProbeError> {
    let address = local_address(listen);
    let url = ServerUrl::parse(&format!("http://{address}"))?;
    let answer = url
        .send(Method::GET, "/healthz", &[], Bytes::new(), timeout)
        .await?;
    if answer.status != StatusCode::OK {
        return Err(ProbeError::Status {
            address,
            status: answer.status,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A one-shot server answering the first request with `answer`.
    async fn answering(answer: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = vec![0; 1024];
            let _ = stream.read(&mut request).await.unwrap();
            assert!(request.starts_with(b"GET /healthz HTTP/1.1\r\n"));
            stream.write_all(answer.as_bytes()).await.unwrap();
        });
        address
    }

    #[test]
    fn all_interfaces_are_reached_on_loopback() {
        assert_eq!(
            local_address("0.0.0.0:8080".parse().unwrap()),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert_eq!(
            local_address("[::]:8080".parse().unwrap()),
            "[::1]:8080".parse().unwrap()
        );
        assert_eq!(
            local_address("10.1.2.3:80".parse().unwrap()),
            "10.1.2.3:80".parse().unwrap()
        );
    }

    #[tokio::test]
    async fn a_200_is_alive_and_anything_else_is_not() {
        let alive = answering("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
        probe_health(alive, Duration::from_secs(5)).await.unwrap();
        let sick = answering("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n").await;
        let error = probe_health(sick, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            matches!(error, ProbeError::Status { status, .. } if status == 503),
            "{error}"
        );
    }

    /// A process that holds the port but never answers (hung, or stopped with SIGSTOP): the
    /// kernel completes the handshake from the listen queue, and only the deadline ends the
    /// probe. Real time, because the socket is real; the deadline is short.
    #[tokio::test]
    async fn an_instance_that_never_answers_fails_at_the_deadline() {
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let started = std::time::Instant::now();
        let error = probe_health(silent.local_addr().unwrap(), Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(
            matches!(error, ProbeError::Unreachable(ClientError::Timeout(_))),
            "{error}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn nothing_listening_is_not_alive() {
        let address = {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap()
        };
        let error = probe_health(address, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(error, ProbeError::Unreachable(_)), "{error}");
    }
}

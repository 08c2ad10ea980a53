//! One connection's deadlines under paused time, over a real loopback socket: the clock jumps
//! to the next timer whenever both ends are waiting.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use super::super::experiment::Experiment;
use super::super::hub::Hub;
use super::super::{Clock, Codec, RealtimeSettings, Session};
use super::serve;
use crate::accounts::AccountId;

/// A server-side connection task and the client's end of its socket.
async fn connected() -> (TcpStream, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    let experiment = Experiment::new("test", "random:1").unwrap();
    let hub = Arc::new(Hub::new(
        RealtimeSettings::default(),
        Clock::new(),
        experiment,
    ));
    let session = Session {
        account: AccountId::from("player").unwrap(),
        name: "player".to_owned(),
        codec: Codec::Json,
    };
    let task = tokio::spawn(serve(hub, server.into(), Vec::new(), session, 1));
    (client, task)
}

fn masked_text(payload: &[u8]) -> Vec<u8> {
    let mask = [9u8, 8, 7, 6];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Reads one server frame: (opcode, payload). None at end of stream.
async fn frame(client: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    client.read_exact(&mut head).await.ok()?;
    let length = match head[1] & 0x7f {
        126 => {
            let mut extended = [0u8; 2];
            client.read_exact(&mut extended).await.ok()?;
            usize::from(u16::from_be_bytes(extended))
        }
        127 => panic!("no frame here is that long"),
        short => usize::from(short),
    };
    let mut payload = vec![0u8; length];
    client.read_exact(&mut payload).await.ok()?;
    Some((head[0] & 0x0f, payload))
}

#[tokio::test(start_paused = true)]
async fn no_hello_closes_after_the_hello_timeout_with_4002() {
    let (mut client, task) = connected().await;
    let started = Instant::now();
    let (opcode, payload) = frame(&mut client).await.expect("a close frame");
    assert_eq!(opcode, 0x8);
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 4002);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(10) && waited < Duration::from_secs(11),
        "{waited:?}"
    );
    drop(client);
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_silent_peer_is_pinged_every_20_s_and_dropped_after_45_s_without_a_pong() {
    let (mut client, task) = connected().await;
    client
        .write_all(&masked_text(br#"{"type":"hello"}"#))
        .await
        .unwrap();
    let (opcode, welcome) = frame(&mut client).await.unwrap();
    assert_eq!(opcode, 0x1);
    assert!(String::from_utf8(welcome).unwrap().contains("welcome"));
    let started = Instant::now();
    let mut pings = Vec::new();
    let close = loop {
        let (opcode, payload) = frame(&mut client).await.expect("a close frame at the end");
        if opcode == 0x8 {
            break u16::from_be_bytes([payload[0], payload[1]]);
        }
        assert_eq!(opcode, 0x9, "only pings before the close");
        pings.push(started.elapsed());
    };
    assert_eq!(close, protocol::close::HEARTBEAT_TIMEOUT);
    let dropped = started.elapsed();
    assert_eq!(pings.len(), 2, "{pings:?}");
    assert!(pings[0] >= Duration::from_secs(20) && pings[0] < Duration::from_secs(21));
    assert!(
        dropped >= Duration::from_secs(45) && dropped < Duration::from_secs(46),
        "{dropped:?}"
    );
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_answers_pings_stays() {
    let (mut client, task) = connected().await;
    client
        .write_all(&masked_text(br#"{"type":"hello"}"#))
        .await
        .unwrap();
    frame(&mut client).await.unwrap();
    for _ in 0..5 {
        let (opcode, payload) = frame(&mut client).await.unwrap();
        assert_eq!(opcode, 0x9);
        // A masked pong with the ping's (empty) payload.
        let mut pong = vec![0x8a, 0x80 | payload.len() as u8, 1, 2, 3, 4];
        pong.extend(
            payload
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ [1, 2, 3, 4][i % 4]),
        );
        client.write_all(&pong).await.unwrap();
    }
    // 100 s in, still served: a ping answered by a pong.
    client.write_all(&[0x89, 0x80, 0, 0, 0, 0]).await.unwrap();
    let (opcode, _) = frame(&mut client).await.unwrap();
    assert!(opcode == 0xA || opcode == 0x9);
    drop(client);
    task.await.unwrap();
}

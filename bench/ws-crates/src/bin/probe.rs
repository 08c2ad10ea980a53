//! Protocol edge probes against a running server: raw TCP, hand-built frames.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn frame(fin: bool, op: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut v = vec![(if fin { 0x80 } else { 0 }) | op];
    let m = if masked { 0x80 } else { 0 };
    let n = payload.len();
    if n < 126 { v.push(m | n as u8) } else if n < 65536 { v.push(m | 126); v.extend_from_slice(&(n as u16).to_be_bytes()) } else { v.push(m | 127); v.extend_from_slice(&(n as u64).to_be_bytes()) }
    if masked { let k = [1u8, 2, 3, 4]; v.extend_from_slice(&k); v.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i & 3])); } else { v.extend_from_slice(payload) }
    v
}

fn open(port: u16, extra: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(700))).unwrap();
    let mut req = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".to_vec();
    req.extend_from_slice(extra);
    s.write_all(&req).unwrap();
    // read response head
    let mut head = Vec::new(); let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") { if s.read(&mut b).unwrap_or(0) == 0 { break } head.push(b[0]); }
    assert!(head.starts_with(b"HTTP/1.1 101"), "no 101");
    s
}

fn describe(s: &mut TcpStream) -> String {
    let mut out = Vec::new(); let mut buf = [0u8; 65536];
    let mut end = " (open: timeout)";
    loop { match s.read(&mut buf) { Ok(0) => { end = " EOF"; break } Ok(n) => out.extend_from_slice(&buf[..n]),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => { end = " RST"; break } Err(_) => break } }
    let mut d = Vec::new(); let mut p = 0;
    while p + 2 <= out.len() {
        let op = out[p] & 0xf; let mut len = (out[p + 1] & 0x7f) as usize; let mut h = 2;
        if len == 126 { len = u16::from_be_bytes([out[p + 2], out[p + 3]]) as usize; h = 4 } else if len == 127 { len = u64::from_be_bytes(out[p + 2..p + 10].try_into().unwrap()) as usize; h = 10 }
        let pl = &out[(p + h).min(out.len())..(p + h + len).min(out.len())];
        d.push(match op { 1 => format!("text({})", len), 2 => format!("bin({})", len), 8 if len >= 2 => format!("close({})", u16::from_be_bytes([pl[0], pl[1]])), 8 => "close(-)".into(), 9 => "ping".into(), 10 => "pong".into(), o => format!("op{o}") });
        p += h + len;
    }
    format!("[{}]{}", d.join(","), end)
}

fn main() {
    let port: u16 = std::env::args().nth(1).unwrap().parse().unwrap();
    let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        ("text 4096", vec![], frame(true, 1, &[b'a'; 4096], true)),
        ("text 4097", vec![], frame(true, 1, &[b'a'; 4097], true)),
        ("frag 3x2000 (total 6000)", vec![], [frame(false, 1, &[b'a'; 2000], true), frame(false, 0, &[b'a'; 2000], true), frame(true, 0, &[b'a'; 2000], true)].concat()),
        ("frag 2x100", vec![], [frame(false, 2, &[7; 100], true), frame(true, 0, &[7; 100], true)].concat()),
        ("ping", vec![], frame(true, 9, b"hi", true)),
        ("unmasked text", vec![], frame(true, 1, b"hi", false)),
        ("invalid utf8 text", vec![], frame(true, 1, &[0xff, 0xfe], true)),
        ("close 1000", vec![], frame(true, 8, &1000u16.to_be_bytes(), true)),
        ("close empty", vec![], frame(true, 8, &[], true)),
        ("close 1005 (reserved)", vec![], frame(true, 8, &1005u16.to_be_bytes(), true)),
        ("close 999 (invalid)", vec![], frame(true, 8, &999u16.to_be_bytes(), true)),
        ("close 1-byte payload", vec![], frame(true, 8, &[3], true)),
        ("frame pipelined with request", frame(true, 1, b"early", true), vec![]),
        ("len64 huge header (2^40)", vec![], { let mut v = vec![0x81, 0xff]; v.extend_from_slice(&(1u64 << 40).to_be_bytes()); v.extend_from_slice(&[1, 2, 3, 4]); v }),
    ];
    for (name, early, bytes) in cases {
        let mut s = open(port, &early);
        let _ = s.write_all(&bytes);
        println!("  {:32} -> {}", name, describe(&mut s));
    }
}

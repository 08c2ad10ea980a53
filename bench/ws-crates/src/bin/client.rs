use futures_util::{SinkExt, StreamExt};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

fn status_kb(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines().find(|l| l.starts_with(key)).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap()
}
fn rss_kb(pid: u32) -> u64 { status_kb(pid, "VmRSS:") }
fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // after "pid (comm) ", field index 0 is state (field 3); utime=14 -> idx 11, stime=15 -> idx 12
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn connect(i: usize, port: u16, nsrc: usize) -> Ws {
    let src = Ipv4Addr::new(127, 0, 0, 1 + (i % nsrc) as u8);
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(src.into(), 0)).unwrap();
    let s = sock.connect(SocketAddr::from(([127, 0, 0, 1], port))).await.expect("connect");
    s.set_nodelay(true).unwrap();
    let cfg = WebSocketConfig::default().read_buffer_size(512).write_buffer_size(0);
    let (ws, _) = tokio_tungstenite::client_async_with_config(format!("ws://127.0.0.1:{port}/"), s, Some(cfg))
        .await.expect("ws handshake");
    ws
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 5 { eprintln!("usage: client idle|echo PID PORT N [nsrc] [secs]"); std::process::exit(2) }
    let mode = a[1].clone();
    let pid: u32 = a[2].parse().unwrap();
    let port: u16 = a[3].parse().unwrap();
    let n: usize = a[4].parse().unwrap();
    let nsrc: usize = a.get(5).map(|s| s.parse().unwrap()).unwrap_or(4);
    let secs: u64 = a.get(6).map(|s| s.parse().unwrap()).unwrap_or(10);
    let msz: usize = a.get(7).map(|s| s.parse().unwrap()).unwrap_or(5);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if mode == "idle" {
            let before = rss_kb(pid);
            let dbefore = status_kb(pid, "VmData:");
            let payload = "h".repeat(msz);
            let t0 = Instant::now();
            let conns: Vec<Ws> = futures_util::stream::iter(0..n)
                .map(|i| { let payload = payload.clone(); async move {
                    let mut ws = connect(i, port, nsrc).await;
                    ws.send(Message::text(payload.clone())).await.unwrap();
                    match ws.next().await { Some(Ok(Message::Text(t))) if t.as_str() == payload => {}, o => panic!("bad echo {o:?}") }
                    ws
                }})
                .buffer_unordered(64)
                .collect().await;
            let tconn = t0.elapsed();
            tokio::time::sleep(Duration::from_secs(2)).await;
            let after = rss_kb(pid);
            let dafter = status_kb(pid, "VmData:");
            println!("idle n={} msg={}B before_kb={} after_kb={} rss_bytes_per_conn={:.0} vmdata_bytes_per_conn={:.0} connect_time={:.2?}",
                conns.len(), msz, before, after, (after - before) as f64 * 1024.0 / n as f64,
                (dafter as f64 - dbefore as f64) * 1024.0 / n as f64, tconn);
            // Clean close of a sample to exercise close handling
            let mut conns = conns;
            let mut ok = 0;
            for ws in conns.iter_mut().take(10) {
                ws.close(None).await.unwrap();
                while let Some(m) = ws.next().await { if let Ok(Message::Close(c)) = m { let _ = c; ok += 1; break } }
            }
            println!("clean close replies {ok}/10");
        } else {
            let conns: Vec<Ws> = futures_util::stream::iter(0..n).map(|i| connect(i, port, nsrc)).buffer_unordered(32).collect().await;
            let msg = "x".repeat(64);
            let c0 = cpu_ticks(pid);
            let t0 = Instant::now();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
            let mut set = tokio::task::JoinSet::new();
            for mut ws in conns {
                let msg = msg.clone();
                set.spawn(async move {
                    let mut cnt = 0u64;
                    while tokio::time::Instant::now() < deadline {
                        ws.send(Message::text(msg.clone())).await.unwrap();
                        match ws.next().await { Some(Ok(Message::Text(_))) => cnt += 1, o => panic!("bad {o:?}") }
                    }
                    cnt
                });
            }
            let mut total = 0;
            while let Some(r) = set.join_next().await { total += r.unwrap(); }
            let el = t0.elapsed().as_secs_f64();
            let c1 = cpu_ticks(pid);
            let tck = 100.0; // CLK_TCK
            let cpu_s = (c1 - c0) as f64 / tck;
            println!("echo conns={} msgs={} msgs_per_s={:.0} server_cpu_s={:.2} us_cpu_per_msg={:.3}",
                n, total, total as f64 / el, cpu_s, cpu_s * 1e6 / total as f64);
        }
    });
}

use std::cell::RefCell;
use std::io::{self, Cursor};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MAX_MSG: usize = 4096;

#[derive(Clone, Copy, PartialEq)]
enum Mode { Tung, Fast, Lazy, Relay }

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = match args.get(1).map(|s| s.as_str()) {
        Some("tungstenite") => Mode::Tung,
        Some("fastws") => Mode::Fast,
        Some("lazy") => Mode::Lazy,
        Some("relay") => Mode::Relay,
        _ => { eprintln!("usage: server tungstenite|fastws|lazy|relay PORT"); std::process::exit(2) }
    };
    let port: u16 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(9001);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let l = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        if std::env::var_os("WS_SIZES").is_some() {
            fn sz<F: std::future::Future>(_: &F) -> usize { std::mem::size_of::<F>() }
            let mk = || std::net::TcpStream::connect(("127.0.0.1", port)).map(|s| { s.set_nonblocking(true).unwrap(); TcpStream::from_std(s).unwrap() });
            let (a, b, c) = (mk().unwrap(), mk().unwrap(), mk().unwrap());
            let (fa, fb, fc) = (run_tung(a), run_fast(b), run_lazy(c));
            eprintln!("future sizes: tungstenite={} fastws={} lazy={} handshake={}", sz(&fa), sz(&fb), sz(&fc), { let mut d = mk().unwrap(); let h = handshake(&mut d); sz(&h) });
            eprintln!("struct sizes: WebSocketStream<TcpStream>={} fastwebsockets::FragmentCollector<TcpStream>={} TcpStream={}",
                std::mem::size_of::<tokio_tungstenite::WebSocketStream<TcpStream>>(), std::mem::size_of::<fastwebsockets::FragmentCollector<TcpStream>>(), std::mem::size_of::<TcpStream>());
            std::process::exit(0);
        }
        eprintln!("server pid {} mode {} port {}", std::process::id(), args[1], port);
        loop {
            let (s, _) = match l.accept().await { Ok(x) => x, Err(e) => { eprintln!("accept: {e}"); continue } };
            let _ = s.set_nodelay(true);
            let pairing = (mode == Mode::Relay).then(pair);
            tokio::spawn(async move {
                let r = match mode {
                    Mode::Tung => run_tung(s).await,
                    Mode::Fast => run_fast(s).await,
                    Mode::Lazy => run_lazy(s).await,
                    Mode::Relay => match pairing { Some(p) => run_relay(s, p).await, None => Ok(()) },
                };
                if let Err(e) = r { if std::env::var_os("WS_DEBUG").is_some() { eprintln!("conn: {e}") } }
            });
        }
    });
}

fn find_key(head: &[u8]) -> Option<&[u8]> {
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            if line[..colon].eq_ignore_ascii_case(b"sec-websocket-key") {
                let v = &line[colon + 1..];
                let s = v.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(v.len());
                let e = v.iter().rposition(|b| !b.is_ascii_whitespace()).map(|x| x + 1).unwrap_or(s);
                return Some(&v[s..e]);
            }
        }
    }
    None
}

/// Minimal HTTP/1.1 upgrade. Returns bytes read past the request head.
async fn handshake(s: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(1024);
    let end = loop {
        if buf.len() >= 8192 { return Err(io::Error::other("request head too large")) }
        let n = s.read_buf(&mut buf).await?;
        if n == 0 { return Err(io::ErrorKind::UnexpectedEof.into()) }
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") { break p + 4 }
    };
    let key = find_key(&buf[..end]).ok_or_else(|| io::Error::other("no Sec-WebSocket-Key"))?;
    let accept = tungstenite::handshake::derive_accept_key(key);
    let resp = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n");
    s.write_all(resp.as_bytes()).await?;
    Ok(buf[end..].to_vec()) // empty Vec => no allocation
}

// ---------------- tokio-tungstenite ----------------
async fn run_tung(mut s: TcpStream) -> io::Result<()> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
    use tokio_tungstenite::tungstenite::Message;
    let left = handshake(&mut s).await?;
    let rb: usize = std::env::var("WS_READ_BUF").ok().and_then(|v| v.parse().ok()).unwrap_or(4096);
    let cfg = WebSocketConfig::default()
        .read_buffer_size(rb)
        .write_buffer_size(0)
        .max_write_buffer_size(64 * 1024)
        .max_message_size(Some(MAX_MSG))
        .max_frame_size(Some(MAX_MSG));
    let mut ws = tokio_tungstenite::WebSocketStream::from_partially_read(s, left, Role::Server, Some(cfg)).await;
    while let Some(m) = ws.next().await {
        match m {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                if ws.send(m).await.is_err() { break }
            }
            Ok(Message::Close(_)) => { /* tungstenite queued the close reply; keep polling to flush it */ }
            Ok(_) => {}
            Err(e) => return Err(io::Error::other(e)),
        }
    }
    Ok(())
}

// ---------------- tokio-tungstenite relay ----------------
// The least a server relaying a move between two players must do: every frame a connection
// sends is answered to it and forwarded to its partner (connections are paired in accept
// order: the 1st with the 2nd, the 3rd with the 4th...). One frame in, two out, on two
// sockets, the partner's through a channel to its own task: the yardstick of `ws-echo --relay`.
type Relayed = tokio::sync::mpsc::Sender<tungstenite::Message>;

struct Pairing {
    inbox: tokio::sync::mpsc::Receiver<tungstenite::Message>,
    partner: tokio::sync::oneshot::Receiver<Relayed>,
}

thread_local! {
    // The connection accepted last, waiting for its partner: its sender and where to send it
    // the partner's.
    static WAITING: RefCell<Option<(Relayed, tokio::sync::oneshot::Sender<Relayed>)>> = const { RefCell::new(None) };
}

fn pair() -> Pairing {
    let (tx, inbox) = tokio::sync::mpsc::channel(64);
    let (give, partner) = tokio::sync::oneshot::channel();
    WAITING.with_borrow_mut(|waiting| match waiting.take() {
        Some((first, tell_first)) => {
            let _ = tell_first.send(tx);
            let _ = give.send(first);
        }
        None => *waiting = Some((tx, give)),
    });
    Pairing { inbox, partner }
}

async fn run_relay(mut s: TcpStream, mut pairing: Pairing) -> io::Result<()> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
    use tokio_tungstenite::tungstenite::Message;
    let left = handshake(&mut s).await?;
    let cfg = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(64 * 1024)
        .max_message_size(Some(MAX_MSG))
        .max_frame_size(Some(MAX_MSG));
    let mut ws = tokio_tungstenite::WebSocketStream::from_partially_read(s, left, Role::Server, Some(cfg)).await;
    let mut partner: Option<Relayed> = None;
    let mut waiting = true;
    loop {
        tokio::select! {
            m = ws.next() => match m {
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                    if let Some(partner) = &partner {
                        let _ = partner.try_send(m.clone());
                    }
                    if ws.send(m).await.is_err() { break }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(io::Error::other(e)),
                None => break,
            },
            Some(m) = pairing.inbox.recv() => {
                if ws.send(m).await.is_err() { break }
            }
            p = &mut pairing.partner, if waiting => {
                waiting = false;
                partner = p.ok();
            }
        }
    }
    Ok(())
}

// ---------------- fastwebsockets ----------------
async fn run_fast(mut s: TcpStream) -> io::Result<()> {
    use fastwebsockets::{FragmentCollector, OpCode, Role, WebSocket};
    let left = handshake(&mut s).await?;
    if !left.is_empty() {
        // fastwebsockets 0.10 has no "partially read" constructor: these bytes would be lost.
        return Err(io::Error::other("client pipelined frames before 101; fastwebsockets cannot take them"));
    }
    let mut ws = WebSocket::after_handshake(s, Role::Server);
    ws.set_auto_close(true);
    ws.set_auto_pong(true);
    ws.set_writev(false);
    // NB: check is `payload_len >= max`, so +1 to allow exactly 4096.
    ws.set_max_message_size(MAX_MSG + 1);
    let mut ws = FragmentCollector::new(ws);
    loop {
        let f = ws.read_frame().await.map_err(io::Error::other)?;
        match f.opcode {
            OpCode::Text | OpCode::Binary => ws.write_frame(f).await.map_err(io::Error::other)?,
            OpCode::Close => break,
            _ => {}
        }
    }
    Ok(())
}

// ---------------- lazy (gobwas-style) ----------------
thread_local! {
    static RBUF: RefCell<Vec<u8>> = RefCell::new(vec![0u8; 2 * (MAX_MSG + 14)]);
    static WBUF: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(2 * (MAX_MSG + 14)));
}

/// Per-connection state that survives between readiness events. Normally all None.
#[derive(Default)]
struct LazyState {
    partial: Option<Vec<u8>>,      // incomplete frame bytes carried over (rare)
    frag: Option<(u8, Vec<u8>)>,   // fragmented message in progress (rare)
}

enum Step { Again, Close, Write(Vec<u8>, bool) }

/// Wait for read readiness. `TcpStream::readable()` goes through tokio's waiter list (mutex + intrusive list);
/// `poll_read_ready` uses the per-direction waker slot, which is cheaper. Select with WS_READY=list.
async fn wait_readable(s: &TcpStream) -> io::Result<()> {
    thread_local! { static USE_LIST: bool = std::env::var("WS_READY").map(|v| v == "list").unwrap_or(false); }
    if USE_LIST.with(|v| *v) { s.readable().await } else { std::future::poll_fn(|cx| s.poll_read_ready(cx)).await }
}

async fn run_lazy(mut s: TcpStream) -> io::Result<()> {
    // Box the handshake future so its (larger) state doesn't inflate the long-lived task allocation.
    let left = Box::pin(handshake(&mut s)).await?;
    let mut st = LazyState { partial: if left.is_empty() { None } else { Some(left) }, frag: None };
    loop {
        if st.partial.is_none() {
            wait_readable(&s).await?;
        } else {
            // leftover bytes may already be a full frame; process without waiting once
        }
        let step = RBUF.with(|r| WBUF.with(|w| lazy_step(&s, &mut r.borrow_mut(), &mut w.borrow_mut(), &mut st)));
        match step? {
            Step::Again => {
                if st.partial.is_some() { wait_readable(&s).await?; }
            }
            Step::Close => return Ok(()),
            Step::Write(v, close) => {
                s.write_all(&v).await?;
                drop(v);
                if close { let _ = s.shutdown().await; return Ok(()) }
                if st.partial.is_some() { wait_readable(&s).await?; }
            }
        }
    }
}

fn push_frame(out: &mut Vec<u8>, opcode: tungstenite::protocol::frame::coding::OpCode, payload: &[u8]) {
    use tungstenite::protocol::frame::FrameHeader;
    let h = FrameHeader { is_final: true, opcode, mask: None, ..FrameHeader::default() };
    h.format(payload.len() as u64, out).expect("vec write");
    out.extend_from_slice(payload);
}

fn close_payload(code: u16) -> [u8; 2] { code.to_be_bytes() }

fn lazy_step(s: &TcpStream, rb: &mut Vec<u8>, out: &mut Vec<u8>, st: &mut LazyState) -> io::Result<Step> {
    use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
    use tungstenite::protocol::frame::FrameHeader;
    out.clear();
    let mut len = 0;
    if let Some(p) = st.partial.take() { rb[..p.len()].copy_from_slice(&p); len = p.len(); }
    // read whatever is available, without blocking
    let mut eof = false;
    while len < rb.len() {
        match s.try_read(&mut rb[len..]) {
            Ok(0) => { eof = true; break }
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    let mut pos = 0usize;
    let mut close_after = false;
    macro_rules! fail { ($code:expr) => {{ push_frame(out, OpCode::Control(Control::Close), &close_payload($code)); close_after = true; break; }} }
    loop {
        let mut cur = Cursor::new(&rb[pos..len]);
        let (hdr, plen) = match FrameHeader::parse(&mut cur) {
            Ok(Some(x)) => x,
            Ok(None) => break,
            Err(_) => fail!(1002),
        };
        let hlen = cur.position() as usize;
        let plen = plen as usize;
        if hdr.rsv1 || hdr.rsv2 || hdr.rsv3 { fail!(1002) }
        let Some(mask) = hdr.mask else { fail!(1002) };
        if plen > MAX_MSG { fail!(1009) }
        if pos + hlen + plen > len { break } // incomplete; keep bytes
        let p0 = pos + hlen;
        let payload = &mut rb[p0..p0 + plen];
        for (i, b) in payload.iter_mut().enumerate() { *b ^= mask[i & 3]; }
        pos = p0 + plen;
        match hdr.opcode {
            OpCode::Data(d @ (Data::Text | Data::Binary | Data::Continue)) => {
                let (op, done): (u8, Option<Vec<u8>>);
                if d == Data::Continue {
                    let Some((fop, mut acc)) = st.frag.take() else { fail!(1002) };
                    if acc.len() + plen > MAX_MSG { fail!(1009) }
                    acc.extend_from_slice(payload);
                    op = fop;
                    if hdr.is_final { done = Some(acc) } else { st.frag = Some((fop, acc)); continue }
                } else {
                    if st.frag.is_some() { fail!(1002) }
                    op = if d == Data::Text { 1 } else { 2 };
                    if !hdr.is_final { st.frag = Some((op, payload.to_vec())); continue }
                    done = None;
                }
                let data: &[u8] = match &done { Some(v) => v, None => &rb[p0..p0 + plen] };
                if op == 1 && std::str::from_utf8(data).is_err() { fail!(1007) }
                let oc = if op == 1 { OpCode::Data(Data::Text) } else { OpCode::Data(Data::Binary) };
                push_frame(out, oc, data);
            }
            OpCode::Control(c) => {
                if !hdr.is_final || plen > 125 { fail!(1002) }
                match c {
                    Control::Ping => push_frame(out, OpCode::Control(Control::Pong), &rb[p0..p0 + plen]),
                    Control::Pong => {}
                    Control::Close => {
                        let pl = &rb[p0..p0 + plen];
                        if plen == 1 { fail!(1002) }
                        if plen >= 2 {
                            let code = u16::from_be_bytes([pl[0], pl[1]]);
                            let ok = matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999);
                            if !ok || std::str::from_utf8(&pl[2..]).is_err() { fail!(1002) }
                            push_frame(out, OpCode::Control(Control::Close), &pl[..2]);
                        } else {
                            push_frame(out, OpCode::Control(Control::Close), &[]);
                        }
                        close_after = true;
                        break;
                    }
                    _ => fail!(1002),
                }
            }
            _ => fail!(1002),
        }
    }
    if !close_after && pos < len {
        if eof { return Ok(Step::Close) }
        st.partial = Some(rb[pos..len].to_vec());
    }
    // write echo directly; only heap-allocate if the socket can't take it all now
    let mut w = 0;
    while w < out.len() {
        match s.try_write(&out[w..]) {
            Ok(n) => w += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    if w < out.len() { return Ok(Step::Write(out[w..].to_vec(), close_after)) }
    if close_after || eof { return Ok(Step::Close) }
    Ok(Step::Again)
}

//! The byte streams public connections are served over: plain TCP, or TLS over TCP.
//!
//! Both engines and the real-time layer are written against [`Stream`], whose operations are
//! those the connection loops use on a `TcpStream`: readiness without a buffer (an idle
//! connection holds none), reads and writes that do not wait, and the tokio I/O traits for the
//! rest. Over TLS the same operations are made on the rustls session (see [`tls`]): a stream
//! is "read ready" when decrypted bytes are already buffered or the socket is readable, and a
//! write that the socket did not take in full leaves encrypted records in the session, which
//! [`Stream::has_buffered_output`] reports so the caller waits to flush them.
//!
//! An enum rather than a generic parameter: one copy of each connection loop, and a branch
//! per operation that costs nothing next to the system call it wraps.

pub mod tls;

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::BufMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A public connection's stream.
#[derive(Debug)]
pub enum Stream {
    Plain(TcpStream),
    /// Boxed: the session is large and most connections' futures hold a `Stream` inline.
    Tls(Box<tls::TlsStream>),
}

impl From<TcpStream> for Stream {
    fn from(stream: TcpStream) -> Self {
        Stream::Plain(stream)
    }
}

impl Stream {
    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.tcp().peer_addr()
    }

    /// The TCP socket under the stream.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(stream) => stream,
            Stream::Tls(stream) => stream.get_ref().0,
        }
    }

    /// Whether this connection came over TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// Ready when a read would find bytes: in the socket or, over TLS, already decrypted.
    pub fn poll_read_ready(&mut self, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Plain(stream) => stream.poll_read_ready(context),
            Stream::Tls(stream) => {
                if tls::has_buffered_input(stream) {
                    return Poll::Ready(Ok(()));
                }
                stream.get_ref().0.poll_read_ready(context)
            }
        }
    }

    /// Whether a read would find bytes without the socket: decrypted bytes (or the peer's
    /// close) already in the TLS session. Never over plain TCP.
    pub fn has_buffered_input(&mut self) -> bool {
        match self {
            Stream::Plain(_) => false,
            Stream::Tls(stream) => tls::has_buffered_input(stream),
        }
    }

    /// Waits until the socket can take bytes.
    pub async fn writable(&self) -> io::Result<()> {
        self.tcp().writable().await
    }

    /// Reads what is available into `buffer` without waiting: `WouldBlock` when nothing is.
    ///
    /// One poll with a waker that does nothing: the caller goes back to `poll_read_ready` with
    /// its own waker before it sleeps, so no wake-up is lost. Over plain TCP this goes through
    /// tokio's `poll_read` rather than `TcpStream::try_read_buf` on purpose: a read that fills
    /// less than the buffer there marks the socket drained (race-free, by readiness tick), so
    /// the caller's next read answers `WouldBlock` without a system call. `try_read_buf` keeps
    /// the socket marked readable until a `recv` fails, one wasted system call per message
    /// received (docs/BENCHMARKS.md, "A recv per message").
    pub fn try_read_buf<B: BufMut>(&mut self, buffer: &mut B) -> io::Result<usize> {
        let mut context = Context::from_waker(Waker::noop());
        let poll = match self {
            Stream::Plain(stream) => {
                tokio_util::io::poll_read_buf(Pin::new(stream), &mut context, buffer)
            }
            Stream::Tls(stream) => {
                tokio_util::io::poll_read_buf(Pin::new(stream), &mut context, buffer)
            }
        };
        match poll {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Writes what the stream takes of `bytes` without waiting: `WouldBlock` when nothing.
    /// Over TLS the bytes taken may still wait in the session: see [`Self::has_buffered_output`].
    pub fn try_write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(stream) => stream.try_write(bytes),
            Stream::Tls(stream) => {
                let mut context = Context::from_waker(Waker::noop());
                match Pin::new(stream.as_mut()).poll_write(&mut context, bytes) {
                    Poll::Ready(result) => result,
                    Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
                }
            }
        }
    }

    /// Whether bytes already taken by [`Self::try_write`] still wait to reach the socket
    /// (encrypted records the socket would not take). Never over plain TCP.
    pub fn has_buffered_output(&self) -> bool {
        match self {
            Stream::Plain(_) => false,
            Stream::Tls(stream) => stream.get_ref().1.wants_write(),
        }
    }

    /// Hands buffered output to the socket without waiting; `WouldBlock` when some is left.
    pub fn try_flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(_) => Ok(()),
            Stream::Tls(stream) => {
                let mut context = Context::from_waker(Waker::noop());
                match Pin::new(stream.as_mut()).poll_flush(&mut context) {
                    Poll::Ready(result) => result,
                    Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
                }
            }
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_read(context, buffer),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(context, buffer),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_write(context, bytes),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(context, bytes),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_flush(context),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(context),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_shutdown(context),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(context),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_write_vectored(context, buffers),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(context, buffers),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(stream) => stream.is_write_vectored(),
            Stream::Tls(stream) => stream.is_write_vectored(),
        }
    }
}

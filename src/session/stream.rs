//! The client connection: plain TCP or TLS over it (or an in-memory pipe,
//! for the offline harness `wasmtp plugin test`), behind one type so the
//! driver loop does not care which.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::context::TlsInfo;

/// A session's byte stream.
#[derive(Debug)]
pub enum Stream {
    /// Plain TCP (before STARTTLS).
    Plain(TcpStream),
    /// TLS (after STARTTLS, or from the start on smtps).
    Tls(Box<TlsStream<TcpStream>>),
    /// An in-memory pipe (`wasmtp plugin test`, see `crate::harness`): no
    /// socket, no TLS; STARTTLS on it fails like a failed handshake.
    Memory(tokio::io::DuplexStream),
    /// Nothing (a TLS handshake consumed the socket and failed): reads see
    /// the end of the stream, writes fail.
    Closed,
}

impl Stream {
    /// TLS facts, when TLS is active.
    pub fn tls_info(&self) -> Option<TlsInfo> {
        match self {
            Self::Plain(_) | Self::Memory(_) | Self::Closed => None,
            Self::Tls(s) => Some(crate::tls::tls_info(s.get_ref().1)),
        }
    }

    /// Non-blocking check whether the client already sent bytes (early
    /// talker). Only meaningful on plain TCP; `Ok(None)` if nothing arrived,
    /// `Ok(Some(0))` at end of stream.
    pub fn peek_now(&self) -> io::Result<Option<usize>> {
        let Self::Plain(tcp) = self else {
            return Ok(None);
        };
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        match socket2::SockRef::from(tcp).peek(&mut buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Memory(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Self::Closed => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Memory(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Self::Closed => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Memory(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Self::Closed => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Memory(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Self::Closed => Poll::Ready(Ok(())),
        }
    }
}

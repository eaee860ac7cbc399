//! Reading the PROXY protocol header off a fresh connection
//! (`[[listeners]] proxy_protocol = true`), before the session starts.
//!
//! The bytes are peeked first and only the header's own octets are then
//! read from the socket, so whatever follows the header stays in the
//! kernel's buffer for the SMTP session (or the TLS handshake on smtps).
//! Parsing is [`crate::protocol::proxy`]'s.

use std::net::{IpAddr, SocketAddr};

use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::config::Network;
use crate::protocol::proxy::{Progress, ProxyDecoder, ProxyError, ProxyHeader};

/// A listener's PROXY protocol settings.
#[derive(Debug, Clone)]
pub struct ProxyPolicy {
    trusted: Vec<ipnet::IpNet>,
}

impl ProxyPolicy {
    /// The policy for the listener's `proxy_trusted` networks.
    pub fn new(trusted: &[Network]) -> Self {
        Self {
            trusted: trusted.iter().map(|n| n.0).collect(),
        }
    }

    /// Whether `peer` may send a PROXY header (an IPv4-mapped IPv6 peer is
    /// matched as its IPv4 address).
    pub fn trusts(&self, peer: IpAddr) -> bool {
        let ip = peer.to_canonical();
        self.trusted.iter().any(|n| n.contains(&ip))
    }
}

/// Why no header was read.
#[derive(Debug)]
pub enum HeaderFailure {
    /// The peer closed before sending a byte: a TCP health check.
    ClosedEarly,
    /// The peer closed in the middle of the header.
    Truncated,
    /// The deadline passed first.
    Timeout,
    /// Not a valid header.
    Invalid(ProxyError),
    /// A socket error.
    Io(std::io::Error),
}

impl HeaderFailure {
    /// Logs the failure as one line: debug for a health check's
    /// connect-and-close, info for the rest.
    pub fn log(&self, peer: SocketAddr) {
        match self {
            Self::ClosedEarly => {
                tracing::debug!(%peer, "closed before the PROXY header (health check)")
            }
            Self::Truncated => {
                tracing::info!(%peer, "connection closed: PROXY header cut short")
            }
            Self::Timeout => tracing::info!(%peer, "connection closed: no PROXY header in time"),
            Self::Invalid(e) => {
                tracing::info!(%peer, error = %e, "connection closed: bad PROXY header")
            }
            Self::Io(e) => {
                tracing::debug!(%peer, error = %e, "connection closed while reading the PROXY header")
            }
        }
    }
}

/// Reads one PROXY header from `tcp` by `deadline`, consuming exactly its
/// octets.
pub async fn read_header(
    tcp: &mut TcpStream,
    deadline: Instant,
) -> Result<ProxyHeader, HeaderFailure> {
    tokio::time::timeout_at(deadline, read_exact_header(tcp))
        .await
        .unwrap_or(Err(HeaderFailure::Timeout))
}

async fn read_exact_header(tcp: &mut TcpStream) -> Result<ProxyHeader, HeaderFailure> {
    let mut decoder = ProxyDecoder::new();
    // Larger than any v1 header and a common v2 one; a v2 header with many
    // TLVs takes a few rounds.
    let mut peeked = [0u8; 512];
    loop {
        let n = tcp.peek(&mut peeked).await.map_err(HeaderFailure::Io)?;
        if n == 0 {
            return Err(if decoder.taken() == 0 {
                HeaderFailure::ClosedEarly
            } else {
                HeaderFailure::Truncated
            });
        }
        let progress = decoder.feed(&peeked[..n]).map_err(HeaderFailure::Invalid)?;
        // Consume what was the header's: all of it, or up to its end. The
        // octets are in the socket buffer already, so this does not wait.
        let (used, done) = match progress {
            Progress::NeedMore => (n, None),
            Progress::Done { header, used } => (used, Some(header)),
        };
        tcp.read_exact(&mut peeked[..used])
            .await
            .map_err(HeaderFailure::Io)?;
        if let Some(header) = done {
            return Ok(header);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt as _;
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (server, _) = l.accept().await.unwrap();
        (client, server)
    }

    fn soon() -> Instant {
        Instant::now() + std::time::Duration::from_secs(10)
    }

    #[test]
    fn trust_matches_networks_and_mapped_addresses() {
        let p = ProxyPolicy::new(&[
            "127.0.0.1/32".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
            "::1".parse().unwrap(),
        ]);
        assert!(p.trusts("127.0.0.1".parse().unwrap()));
        assert!(p.trusts("10.200.0.3".parse().unwrap()));
        assert!(p.trusts("::ffff:10.1.2.3".parse().unwrap()));
        assert!(p.trusts("::1".parse().unwrap()));
        assert!(!p.trusts("127.0.0.2".parse().unwrap()));
        assert!(!p.trusts("192.0.2.1".parse().unwrap()));
    }

    #[tokio::test]
    async fn header_in_pieces_leaves_the_smtp_bytes() {
        let (mut client, mut server) = pair().await;
        let task = tokio::spawn(async move {
            for piece in [&b"PROXY TCP4 192.0."[..], b"2.9 127.0.0.1 4", b"000 25\r"] {
                client.write_all(piece).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            client.write_all(b"\nQUIT\r\n").await.unwrap();
            client
        });
        let header = read_header(&mut server, soon()).await.unwrap();
        assert_eq!(
            header,
            ProxyHeader::Proxied {
                source: "192.0.2.9:4000".parse().unwrap(),
                destination: "127.0.0.1:25".parse().unwrap(),
            }
        );
        let _client = task.await.unwrap();
        let mut rest = [0u8; 6];
        server.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"QUIT\r\n");
    }

    #[tokio::test]
    async fn failures() {
        // connect and close: a health check
        let (client, mut server) = pair().await;
        drop(client);
        assert!(matches!(
            read_header(&mut server, soon()).await,
            Err(HeaderFailure::ClosedEarly)
        ));
        // cut short
        let (mut client, mut server) = pair().await;
        client.write_all(b"PROXY TCP4 1.2").await.unwrap();
        drop(client);
        assert!(matches!(
            read_header(&mut server, soon()).await,
            Err(HeaderFailure::Truncated)
        ));
        // garbage
        let (mut client, mut server) = pair().await;
        client.write_all(b"EHLO x\r\n").await.unwrap();
        assert!(matches!(
            read_header(&mut server, soon()).await,
            Err(HeaderFailure::Invalid(ProxyError::NotProxy))
        ));
        // silence
        let (_client, mut server) = pair().await;
        let deadline = Instant::now() + std::time::Duration::from_millis(50);
        assert!(matches!(
            read_header(&mut server, deadline).await,
            Err(HeaderFailure::Timeout)
        ));
    }
}

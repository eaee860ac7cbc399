//! The PROXY protocol header (HAProxy, versions 1 and 2), sans-IO.
//!
//! A load balancer in front of the gateway sends one header before the
//! client's first byte, naming the client's real address
//! (<https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>).
//! [`ProxyDecoder`] takes the bytes as they arrive, in chunks of any size,
//! and says how many of the last chunk belonged to the header, so the
//! driver never consumes a byte of SMTP that follows it.
//!
//! - v1: one text line, `PROXY TCP4|TCP6|UNKNOWN ...\r\n`, at most 107
//!   octets with the CRLF (section 2.1).
//! - v2: a 12-octet signature, a version/command and a family/protocol
//!   octet, a 16-bit length and that many octets: the addresses, then TLVs,
//!   which are skipped. The length is bounded by [`MAX_V2_PAYLOAD`].
//! - `LOCAL` (v2) and `UNKNOWN`/`UNSPEC`/`AF_UNIX` families: the header
//!   carries no usable client address and the real peer address stands
//!   ([`ProxyHeader::Local`], [`ProxyHeader::Unknown`]).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The longest v1 header, CRLF included (spec section 2.1).
pub const MAX_V1_LEN: usize = 107;

/// The largest v2 payload (addresses and TLVs) accepted. The format allows
/// 65535; what HAProxy sends (addresses, a few TLVs) is far below this, and
/// a bound keeps a trusted but broken peer from making us buffer 64 KiB.
pub const MAX_V2_PAYLOAD: usize = 4096;

/// The v2 signature (spec section 2.2).
pub const V2_SIGNATURE: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];

const V1_PREFIX: &[u8] = b"PROXY ";
const V2_FIXED: usize = 16;

/// What a complete header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    /// A proxied TCP connection: the client's address and the address it
    /// connected to.
    Proxied {
        /// The client (source) address.
        source: SocketAddr,
        /// The address the client connected to (the proxy's front end).
        destination: SocketAddr,
    },
    /// v2 `LOCAL`: the proxy's own connection (a health check); use the
    /// real peer address.
    Local,
    /// v1 `UNKNOWN`, or a v2 family without a usable address (`UNSPEC`,
    /// `AF_UNIX`, datagrams): use the real peer address.
    Unknown,
}

impl ProxyHeader {
    /// The client and local addresses to use for a connection whose socket
    /// addresses are `peer` and `local`.
    pub fn addresses(&self, peer: SocketAddr, local: SocketAddr) -> (SocketAddr, SocketAddr) {
        match *self {
            Self::Proxied {
                source,
                destination,
            } => (source, destination),
            Self::Local | Self::Unknown => (peer, local),
        }
    }
}

/// Why a header was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyError {
    /// The first octets are neither `PROXY ` nor the v2 signature.
    NotProxy,
    /// A v1 line longer than [`MAX_V1_LEN`] without its CRLF.
    V1TooLong,
    /// A v1 line that does not follow the grammar (the reason).
    V1Syntax(&'static str),
    /// A v2 version other than 2, or a command other than LOCAL/PROXY.
    V2Version(u8),
    /// A v2 length above [`MAX_V2_PAYLOAD`].
    V2TooLong(usize),
    /// A v2 length too short for the addresses of its family.
    V2Short {
        /// The family/protocol octet.
        family: u8,
        /// The length field.
        len: usize,
    },
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotProxy => f.write_str("not a PROXY protocol header"),
            Self::V1TooLong => write!(f, "PROXY v1 line longer than {MAX_V1_LEN} octets"),
            Self::V1Syntax(why) => write!(f, "malformed PROXY v1 line: {why}"),
            Self::V2Version(b) => write!(f, "unsupported PROXY v2 version/command 0x{b:02x}"),
            Self::V2TooLong(n) => {
                write!(f, "PROXY v2 length {n} above the limit of {MAX_V2_PAYLOAD}")
            }
            Self::V2Short { family, len } => write!(
                f,
                "PROXY v2 length {len} too short for family/protocol 0x{family:02x}"
            ),
        }
    }
}

impl std::error::Error for ProxyError {}

/// What [`ProxyDecoder::feed`] made of a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The whole chunk belongs to the header, which goes on.
    NeedMore,
    /// The header ended within the chunk: its first `used` octets were the
    /// header's; the rest (if any) is the client's.
    Done {
        /// The header.
        header: ProxyHeader,
        /// Octets of the chunk that belonged to the header.
        used: usize,
    },
}

/// Decodes one header from bytes arriving in chunks of any size. Only the
/// header's own octets are kept (at most `16 + MAX_V2_PAYLOAD`).
#[derive(Debug, Default)]
pub struct ProxyDecoder {
    buf: Vec<u8>,
}

impl ProxyDecoder {
    /// A decoder at the start of a connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Octets taken so far (all of them the header's).
    pub fn taken(&self) -> usize {
        self.buf.len()
    }

    /// Feeds the next chunk. After [`Progress::Done`] or an error the
    /// decoder is finished and must not be fed again.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Progress, ProxyError> {
        let before = self.buf.len();
        // Take no more than the header can still need, so the buffer stays
        // bounded and nothing after the header is copied.
        let room = (V2_FIXED + MAX_V2_PAYLOAD).saturating_sub(before);
        let take = chunk.len().min(room);
        self.buf.extend_from_slice(&chunk[..take]);
        match parse(&self.buf)? {
            None if take < chunk.len() => {
                // Unreachable by the bounds of both versions; refuse anyway.
                Err(ProxyError::V2TooLong(self.buf.len()))
            }
            None => Ok(Progress::NeedMore),
            Some((header, len)) => {
                let used = len.saturating_sub(before);
                self.buf.truncate(len);
                Ok(Progress::Done { header, used })
            }
        }
    }
}

/// Parses a header at the start of `buf`: `Ok(None)` if `buf` is a proper
/// prefix of a possibly valid header, `Ok(Some((header, length)))` when the
/// header is complete (`length` octets of `buf`), or why it is not one.
pub fn parse(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] == V2_SIGNATURE[..n] {
        if n < V2_SIGNATURE.len() {
            return Ok(None);
        }
        return parse_v2(buf);
    }
    let n = buf.len().min(V1_PREFIX.len());
    if buf[..n] == V1_PREFIX[..n] {
        if n < V1_PREFIX.len() {
            return Ok(None);
        }
        return parse_v1(buf);
    }
    Err(ProxyError::NotProxy)
}

fn parse_v1(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    let window = &buf[..buf.len().min(MAX_V1_LEN)];
    let Some(cr) = window.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() >= MAX_V1_LEN {
            return Err(ProxyError::V1TooLong);
        }
        // A CR or LF alone can only be the start of the CRLF.
        let stray = window[..window.len().saturating_sub(1)]
            .iter()
            .any(|&b| b == b'\r' || b == b'\n')
            || window.last() == Some(&b'\n');
        if stray {
            return Err(ProxyError::V1Syntax("CR or LF inside the line"));
        }
        return Ok(None);
    };
    let line = &buf[V1_PREFIX.len()..cr];
    let line = std::str::from_utf8(line).map_err(|_| ProxyError::V1Syntax("not ASCII"))?;
    if line.bytes().any(|b| !(0x20..0x7f).contains(&b)) {
        return Err(ProxyError::V1Syntax("control characters"));
    }
    let header = v1_fields(line)?;
    Ok(Some((header, cr + 2)))
}

fn v1_fields(line: &str) -> Result<ProxyHeader, ProxyError> {
    let mut parts = line.split(' ');
    let proto = parts.next().unwrap_or("");
    let v6 = match proto {
        // "UNKNOWN": whatever follows until the CRLF is ignored (2.1).
        "UNKNOWN" => return Ok(ProxyHeader::Unknown),
        "TCP4" => false,
        "TCP6" => true,
        _ => {
            return Err(ProxyError::V1Syntax(
                "protocol is not TCP4, TCP6 or UNKNOWN",
            ));
        }
    };
    let fields: Vec<&str> = parts.collect();
    let &[src, dst, sport, dport] = fields.as_slice() else {
        return Err(ProxyError::V1Syntax(
            "expected source, destination and two ports",
        ));
    };
    let ip = |s: &str| -> Result<IpAddr, ProxyError> {
        let parsed = if v6 {
            s.parse::<Ipv6Addr>().map(IpAddr::V6)
        } else {
            s.parse::<Ipv4Addr>().map(IpAddr::V4)
        };
        parsed.map_err(|_| ProxyError::V1Syntax("address does not match the protocol"))
    };
    let port = |s: &str| -> Result<u16, ProxyError> {
        let plain = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let canonical = s == "0" || !s.starts_with('0');
        match s.parse::<u16>() {
            Ok(p) if plain && canonical => Ok(p),
            _ => Err(ProxyError::V1Syntax("invalid port")),
        }
    };
    Ok(ProxyHeader::Proxied {
        source: SocketAddr::new(ip(src)?, port(sport)?),
        destination: SocketAddr::new(ip(dst)?, port(dport)?),
    })
}

fn parse_v2(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    let Some(&ver_cmd) = buf.get(12) else {
        return Ok(None);
    };
    let command = match ver_cmd {
        0x20 => Command::Local,
        0x21 => Command::Proxy,
        other => return Err(ProxyError::V2Version(other)),
    };
    let (Some(&family), Some(&hi), Some(&lo)) = (buf.get(13), buf.get(14), buf.get(15)) else {
        return Ok(None);
    };
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    if len > MAX_V2_PAYLOAD {
        return Err(ProxyError::V2TooLong(len));
    }
    let need = match family >> 4 {
        0x1 => 12,
        0x2 => 36,
        0x3 => 216,
        _ => 0,
    };
    // A LOCAL header's addresses are ignored, so its length is free (2.2).
    if command == Command::Proxy && len < need {
        return Err(ProxyError::V2Short { family, len });
    }
    let total = V2_FIXED + len;
    if buf.len() < total {
        return Ok(None);
    }
    if command == Command::Local {
        return Ok(Some((ProxyHeader::Local, total)));
    }
    // Addresses first; what follows up to `len` is TLVs, skipped.
    let a = &buf[V2_FIXED..total];
    let stream = family & 0x0F == 0x1;
    let header = match family >> 4 {
        0x1 if stream => {
            let ip = |i: usize| Ipv4Addr::new(a[i], a[i + 1], a[i + 2], a[i + 3]);
            ProxyHeader::Proxied {
                source: SocketAddr::new(IpAddr::V4(ip(0)), be16(a, 8)),
                destination: SocketAddr::new(IpAddr::V4(ip(4)), be16(a, 10)),
            }
        }
        0x2 if stream => {
            let ip = |i: usize| {
                let mut o = [0u8; 16];
                o.copy_from_slice(&a[i..i + 16]);
                Ipv6Addr::from(o)
            };
            ProxyHeader::Proxied {
                source: SocketAddr::new(IpAddr::V6(ip(0)), be16(a, 32)),
                destination: SocketAddr::new(IpAddr::V6(ip(16)), be16(a, 34)),
            }
        }
        _ => ProxyHeader::Unknown,
    };
    Ok(Some((header, total)))
}

fn be16(a: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([a[i], a[i + 1]])
}

#[derive(PartialEq, Eq)]
enum Command {
    Local,
    Proxy,
}

#[cfg(test)]
mod tests;

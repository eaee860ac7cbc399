use super::*;

const TRAILER: &[u8] = b"EHLO client\r\n";

fn v4(a: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::from((a, port))
}

/// A v2 header: version/command, family/protocol, then `payload`.
fn v2(ver_cmd: u8, family: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = V2_SIGNATURE.to_vec();
    h.push(ver_cmd);
    h.push(family);
    h.extend_from_slice(&u16::try_from(payload.len()).unwrap().to_be_bytes());
    h.extend_from_slice(payload);
    h
}

fn v2_inet(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, tlvs: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(tlvs);
    v2(0x21, 0x11, &p)
}

/// Feeds `chunks` in order; returns the header and what followed it.
fn feed_chunks(chunks: &[&[u8]]) -> Result<(ProxyHeader, Vec<u8>), ProxyError> {
    let mut d = ProxyDecoder::new();
    for (i, chunk) in chunks.iter().enumerate() {
        match d.feed(chunk)? {
            Progress::NeedMore => {}
            Progress::Done { header, used } => {
                let mut rest = chunk[used..].to_vec();
                for later in &chunks[i + 1..] {
                    rest.extend_from_slice(later);
                }
                return Ok((header, rest));
            }
        }
    }
    panic!("header never completed after {} chunks", chunks.len());
}

/// The header followed by SMTP bytes decodes the same way fed whole, one
/// byte at a time, and at every two-chunk split, and never eats the SMTP.
fn every_split(header: &[u8], expect: ProxyHeader) {
    let mut all = header.to_vec();
    all.extend_from_slice(TRAILER);
    let whole = feed_chunks(&[&all]).unwrap();
    assert_eq!(whole, (expect, TRAILER.to_vec()));
    let bytes: Vec<&[u8]> = all.chunks(1).collect();
    assert_eq!(feed_chunks(&bytes).unwrap(), (expect, TRAILER.to_vec()));
    for cut in 1..all.len() {
        let (a, b) = all.split_at(cut);
        assert_eq!(
            feed_chunks(&[a, b]).unwrap(),
            (expect, TRAILER.to_vec()),
            "split at {cut}"
        );
    }
    // a byte at a time, the decoder says Done exactly at the header's last byte
    let mut d = ProxyDecoder::new();
    for (i, b) in header.iter().enumerate() {
        let p = d.feed(std::slice::from_ref(b)).unwrap();
        if i + 1 < header.len() {
            assert_eq!(p, Progress::NeedMore, "byte {i}");
        } else {
            assert_eq!(
                p,
                Progress::Done {
                    header: expect,
                    used: 1
                }
            );
        }
    }
}

/// The error for `bytes`, fed whole and a byte at a time.
fn refused(bytes: &[u8]) -> ProxyError {
    let mut d = ProxyDecoder::new();
    let whole = d.feed(bytes).unwrap_err();
    let mut d = ProxyDecoder::new();
    let mut one = None;
    for b in bytes {
        match d.feed(std::slice::from_ref(b)) {
            Ok(Progress::NeedMore) => {}
            Ok(done) => panic!("accepted {done:?}"),
            Err(e) => {
                one = Some(e);
                break;
            }
        }
    }
    assert_eq!(one.as_ref(), Some(&whole), "{bytes:?}");
    whole
}

#[test]
fn v1_tcp4_at_every_split() {
    every_split(
        b"PROXY TCP4 192.0.2.10 198.51.100.1 56324 25\r\n",
        ProxyHeader::Proxied {
            source: v4([192, 0, 2, 10], 56324),
            destination: v4([198, 51, 100, 1], 25),
        },
    );
}

#[test]
fn v1_tcp6_at_every_split() {
    every_split(
        b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 587\r\n",
        ProxyHeader::Proxied {
            source: "[2001:db8::7]:40000".parse().unwrap(),
            destination: "[2001:db8::1]:587".parse().unwrap(),
        },
    );
}

#[test]
fn v1_unknown_uses_the_peer() {
    every_split(b"PROXY UNKNOWN\r\n", ProxyHeader::Unknown);
    every_split(
        b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
        ProxyHeader::Unknown,
    );
    let peer = v4([127, 0, 0, 1], 1);
    let local = v4([127, 0, 0, 1], 25);
    assert_eq!(ProxyHeader::Unknown.addresses(peer, local), (peer, local));
}

#[test]
fn v1_longest_header_is_accepted() {
    // the worst case of the spec: 107 octets with the CRLF
    let h = b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_eq!(h.len(), MAX_V1_LEN);
    every_split(h, ProxyHeader::Unknown);
    // the longest TCP6 line
    let h = b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    let ff = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535";
    every_split(
        h,
        ProxyHeader::Proxied {
            source: ff.parse().unwrap(),
            destination: ff.parse().unwrap(),
        },
    );
}

#[test]
fn v1_oversized_is_refused() {
    let mut h = b"PROXY UNKNOWN ".to_vec();
    h.resize(MAX_V1_LEN + 20, b'x');
    h.extend_from_slice(b"\r\n");
    assert_eq!(refused(&h), ProxyError::V1TooLong);
    // the CRLF at octets 108-109: one too many
    let mut h = b"PROXY UNKNOWN ".to_vec();
    h.resize(MAX_V1_LEN - 1, b'x');
    h.extend_from_slice(b"\r\n");
    assert_eq!(refused(&h), ProxyError::V1TooLong);
}

#[test]
fn v1_malformed_is_refused() {
    for bad in [
        &b"PROXY TCP4 192.0.2.10 198.51.100.1 56324\r\n"[..],
        b"PROXY TCP4 192.0.2.10 198.51.100.1 56324 25 9\r\n",
        b"PROXY TCP4 2001:db8::1 198.51.100.1 1 25\r\n",
        b"PROXY TCP6 192.0.2.10 2001:db8::1 1 25\r\n",
        b"PROXY TCP4 192.0.2.10 198.51.100.1 65536 25\r\n",
        b"PROXY TCP4 192.0.2.10 198.51.100.1 +1 25\r\n",
        b"PROXY TCP4 192.0.2.10 198.51.100.1 01 25\r\n",
        b"PROXY TCP4  192.0.2.10 198.51.100.1 1 25\r\n",
        b"PROXY UDP4 192.0.2.10 198.51.100.1 1 25\r\n",
        b"PROXY TCP4 192.0.2.10\t198.51.100.1 1 25\r\n",
        b"PROXY \r\n",
    ] {
        assert!(
            matches!(refused(bad), ProxyError::V1Syntax(_)),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    // a bare LF or a CR not followed by LF is refused as soon as it is seen
    assert!(matches!(refused(b"PROXY TCP4\n"), ProxyError::V1Syntax(_)));
    assert!(matches!(refused(b"PROXY TCP4\rx"), ProxyError::V1Syntax(_)));
}

#[test]
fn not_a_header_is_refused_at_once() {
    assert_eq!(refused(b"EHLO client\r\n"), ProxyError::NotProxy);
    assert_eq!(refused(b"proxy TCP4"), ProxyError::NotProxy);
    assert_eq!(refused(b"\r\n\r\nQUIT\r\n"), ProxyError::NotProxy);
    // a prefix of either version is not yet an error
    let mut d = ProxyDecoder::new();
    assert_eq!(d.feed(b"PROX").unwrap(), Progress::NeedMore);
    let mut d = ProxyDecoder::new();
    assert_eq!(d.feed(&V2_SIGNATURE[..5]).unwrap(), Progress::NeedMore);
    assert_eq!(d.taken(), 5);
}

#[test]
fn v2_inet_at_every_split() {
    every_split(
        &v2_inet([203, 0, 113, 9], [10, 0, 0, 1], 40001, 25, &[]),
        ProxyHeader::Proxied {
            source: v4([203, 0, 113, 9], 40001),
            destination: v4([10, 0, 0, 1], 25),
        },
    );
}

#[test]
fn v2_inet6_at_every_split() {
    let src: Ipv6Addr = "2001:db8::42".parse().unwrap();
    let dst: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let mut p = Vec::new();
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&50000u16.to_be_bytes());
    p.extend_from_slice(&25u16.to_be_bytes());
    every_split(
        &v2(0x21, 0x21, &p),
        ProxyHeader::Proxied {
            source: SocketAddr::new(IpAddr::V6(src), 50000),
            destination: SocketAddr::new(IpAddr::V6(dst), 25),
        },
    );
}

#[test]
fn v2_tlvs_are_skipped() {
    // PP2_TYPE_ALPN, PP2_TYPE_AUTHORITY, a CRC32C and padding (NOOP)
    let mut tlvs = Vec::new();
    tlvs.extend_from_slice(&[0x01, 0x00, 0x04]);
    tlvs.extend_from_slice(b"smtp");
    tlvs.extend_from_slice(&[0x02, 0x00, 0x07]);
    tlvs.extend_from_slice(b"mx.test");
    tlvs.extend_from_slice(&[0x03, 0x00, 0x04, 1, 2, 3, 4]);
    tlvs.extend_from_slice(&[0x04, 0x00, 0x03, 0, 0, 0]);
    every_split(
        &v2_inet([198, 51, 100, 7], [10, 0, 0, 1], 1234, 25, &tlvs),
        ProxyHeader::Proxied {
            source: v4([198, 51, 100, 7], 1234),
            destination: v4([10, 0, 0, 1], 25),
        },
    );
}

#[test]
fn v2_local_uses_the_peer() {
    // HAProxy's health checks: LOCAL with UNSPEC and no payload...
    every_split(&v2(0x20, 0x00, &[]), ProxyHeader::Local);
    // ...or with addresses, which are ignored
    let mut h = v2_inet([1, 2, 3, 4], [5, 6, 7, 8], 1, 2, &[]);
    h[12] = 0x20;
    every_split(&h, ProxyHeader::Local);
    let peer = v4([127, 0, 0, 1], 4000);
    let local = v4([127, 0, 0, 1], 25);
    assert_eq!(ProxyHeader::Local.addresses(peer, local), (peer, local));
}

#[test]
fn v2_unspec_unix_and_dgram_use_the_peer() {
    every_split(&v2(0x21, 0x00, &[]), ProxyHeader::Unknown);
    every_split(&v2(0x21, 0x31, &[0u8; 216]), ProxyHeader::Unknown);
    let mut h = v2_inet([1, 2, 3, 4], [5, 6, 7, 8], 1, 2, &[]);
    h[13] = 0x12;
    every_split(&h, ProxyHeader::Unknown);
}

#[test]
fn v2_oversized_and_malformed_are_refused() {
    let mut h = V2_SIGNATURE.to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0xFF, 0xFF]);
    assert_eq!(refused(&h), ProxyError::V2TooLong(65535));
    let mut h = V2_SIGNATURE.to_vec();
    let over = u16::try_from(MAX_V2_PAYLOAD + 1).unwrap();
    h.extend_from_slice(&[0x21, 0x11]);
    h.extend_from_slice(&over.to_be_bytes());
    assert_eq!(refused(&h), ProxyError::V2TooLong(MAX_V2_PAYLOAD + 1));
    // the largest payload allowed is accepted
    let mut big = vec![0u8; MAX_V2_PAYLOAD];
    big[..4].copy_from_slice(&[192, 0, 2, 1]);
    let h = v2(0x21, 0x11, &big);
    let mut d = ProxyDecoder::new();
    assert!(matches!(d.feed(&h), Ok(Progress::Done { used, .. }) if used == h.len()));
    // version 1 in the v2 format, and an unknown command
    assert_eq!(
        refused(&v2(0x11, 0x11, &[0; 12])),
        ProxyError::V2Version(0x11)
    );
    assert_eq!(
        refused(&v2(0x22, 0x11, &[0; 12])),
        ProxyError::V2Version(0x22)
    );
    // too short for the family's addresses
    assert_eq!(
        refused(&v2(0x21, 0x11, &[0; 11])),
        ProxyError::V2Short {
            family: 0x11,
            len: 11
        }
    );
    assert_eq!(
        refused(&v2(0x21, 0x21, &[0; 12])),
        ProxyError::V2Short {
            family: 0x21,
            len: 12
        }
    );
}

#[test]
fn errors_read_as_one_line() {
    for e in [
        ProxyError::NotProxy,
        ProxyError::V1TooLong,
        ProxyError::V1Syntax("x"),
        ProxyError::V2Version(0x31),
        ProxyError::V2TooLong(9000),
        ProxyError::V2Short {
            family: 0x11,
            len: 3,
        },
    ] {
        let s = e.to_string();
        assert!(!s.is_empty() && !s.contains('\n'), "{s}");
    }
}

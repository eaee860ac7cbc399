//! PROXY protocol on a listener (`proxy_protocol = true`), through the real
//! binary over TCP: v1 and v2 headers from a trusted peer put the client's
//! address in the Received header, the plugins' connection handle and the
//! per-IP caps; an untrusted peer and a garbage header are closed before
//! the greeting; a health check's connect-and-close leaves no error.

use std::io::{Read as _, Write as _};
use std::net::{Ipv6Addr, SocketAddr, TcpStream};
use std::path::Path;

use crate::common::{self, Gateway, LOCAL, Smtp, split_received};
use crate::plugin_support;

const V2_SIGNATURE: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];

/// A gateway whose one `smtp` listener takes PROXY headers from
/// 127.0.0.1 only, with `header-stamp` (it stamps the `remote-ip` plugins
/// see) and `extra` config.
fn proxied_gateway(extra: &str) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/wasmtp-test-cache");
    let text = format!(
        "[server]\nhostname = \"mx.test\"\nshutdown_grace = \"30s\"\n{extra}\n\
[[listeners]]\naddress = \"127.0.0.1:0\"\nmode = \"smtp\"\nproxy_protocol = true\n\
proxy_trusted = [\"127.0.0.1/32\", \"10.0.0.0/8\"]\n\n{}{LOCAL}\n\
[plugin_host]\ncache_dir = {:?}\nmax_connections = 16\n\n\
[[plugins]]\nname = \"header-stamp\"\npath = {:?}\n",
        common::delivery_section(dir.path()),
        cache.display().to_string(),
        plugin_support::wasm("header-stamp").display().to_string(),
    );
    Gateway::start_text(dir, &text, 1)
}

/// Connects from 127.0.0.1, sends `header` and reads the greeting.
fn connect_with(gw: &Gateway, header: &[u8]) -> Smtp {
    let mut tcp = TcpStream::connect(gw.smtp()).unwrap();
    tcp.write_all(header).unwrap();
    Smtp::from_stream(tcp)
}

fn v2_inet6(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16) -> Vec<u8> {
    let mut h = V2_SIGNATURE.to_vec();
    h.extend_from_slice(&[0x21, 0x21]);
    // the addresses, and a TLV (PP2_TYPE_AUTHORITY) that is skipped
    let tlv = [&[0x02, 0x00, 0x07][..], b"mx.test"].concat();
    let len = u16::try_from(36 + tlv.len()).unwrap();
    h.extend_from_slice(&len.to_be_bytes());
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(&tlv);
    h
}

fn v2_local() -> Vec<u8> {
    let mut h = V2_SIGNATURE.to_vec();
    h.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
    h
}

/// Sends one message and returns its Received header and the rest.
fn deliver_one(gw: &Gateway, s: &mut Smtp, subject: &str) -> (String, String) {
    let body = format!("Subject: {subject}\r\n\r\nhello\r\n");
    let r = s.send_mail("a@client.test", &["user@example.test"], body.as_bytes());
    assert_eq!(r.code, 250, "{}", r.text);
    s.expect("QUIT", 221);
    let msg = gw
        .delivered()
        .into_iter()
        .find(|m| String::from_utf8_lossy(m).contains(&format!("Subject: {subject}\r\n")))
        .expect("the message was delivered");
    let (received, rest) = split_received(&msg);
    (received, String::from_utf8_lossy(&rest).into_owned())
}

/// The server closes `tcp` without a byte.
fn closed_silently(mut tcp: TcpStream) {
    tcp.set_read_timeout(Some(common::IO_GUARD)).unwrap();
    let mut buf = [0u8; 64];
    match tcp.read(&mut buf) {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!(
            "expected a close, got {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
    }
}

#[test]
fn v1_header_gives_the_client_address() {
    let gw = proxied_gateway("");
    let local = gw.smtp();
    let header = format!(
        "PROXY TCP4 192.0.2.44 {} 40000 {}\r\n",
        local.ip(),
        local.port()
    );
    let mut s = connect_with(&gw, header.as_bytes());
    assert_eq!(s.greeting.code, 220, "{}", s.greeting.text);
    let (received, rest) = deliver_one(&gw, &mut s, "v1");
    assert!(received.contains("[192.0.2.44]"), "{received}");
    assert!(!received.contains("127.0.0.1"), "{received}");
    // header-stamp writes the connection handle's remote-ip and remote-port
    assert!(
        rest.contains("X-Wasmtp-Client: 192.0.2.44 port=40000 "),
        "{rest}"
    );
    gw.wait_log("\"remote\":\"192.0.2.44:40000\"");
    let connected = gw
        .log_text()
        .lines()
        .find(|l| l.contains("\"remote\":\"192.0.2.44:40000\""))
        .unwrap()
        .to_string();
    assert!(connected.contains("\"proxy\":\"127.0.0.1:"), "{connected}");
}

#[test]
fn v2_header_gives_the_ipv6_client_address() {
    let gw = proxied_gateway("");
    let src: Ipv6Addr = "2001:db8::25".parse().unwrap();
    let dst: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let mut s = connect_with(&gw, &v2_inet6(src, dst, 50000, 25));
    assert_eq!(s.greeting.code, 220, "{}", s.greeting.text);
    let (received, rest) = deliver_one(&gw, &mut s, "v2");
    assert!(received.contains("[IPv6:2001:db8::25]"), "{received}");
    assert!(
        rest.contains("X-Wasmtp-Client: 2001:db8::25 port=50000 "),
        "{rest}"
    );
}

#[test]
fn per_ip_cap_counts_the_forwarded_address() {
    let gw = proxied_gateway("max_connections_per_ip = 1\n");
    let v1 = |ip: &str| format!("PROXY TCP4 {ip} 127.0.0.1 1000 25\r\n");
    // every connection comes from 127.0.0.1; the clients differ
    let mut a = connect_with(&gw, v1("192.0.2.1").as_bytes());
    let mut b = connect_with(&gw, v1("192.0.2.2").as_bytes());
    assert_eq!((a.greeting.code, b.greeting.code), (220, 220));
    let c = connect_with(&gw, v1("192.0.2.1").as_bytes());
    assert_eq!(c.greeting.code, 421, "{}", c.greeting.text);
    a.expect("QUIT", 221);
    b.expect("QUIT", 221);
}

#[test]
fn bytes_after_the_header_stay_for_the_session() {
    let gw = proxied_gateway("");
    // header and a command in one write: the command is not swallowed with
    // the header, so the session sees an early talker
    let mut s = connect_with(
        &gw,
        b"PROXY TCP4 192.0.2.9 127.0.0.1 1000 25\r\nEHLO early.test\r\n",
    );
    assert_eq!(s.greeting.code, 554, "{}", s.greeting.text);
    assert!(s.closed());
}

#[test]
fn untrusted_peer_is_closed_before_the_greeting() {
    let gw = proxied_gateway("");
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let src: SocketAddr = "127.0.0.2:0".parse().unwrap();
    sock.bind(&src.into()).unwrap();
    sock.connect(&gw.smtp().into()).unwrap();
    let mut tcp: TcpStream = sock.into();
    // even with a well-formed header
    tcp.write_all(b"PROXY TCP4 192.0.2.9 127.0.0.1 1000 25\r\n")
        .unwrap();
    closed_silently(tcp);
    gw.wait_log("not a trusted PROXY protocol source");
    assert!(gw.log_text().contains("\"remote\":\"127.0.0.2:"));
    assert!(!gw.log_text().contains("192.0.2.9"));
}

#[test]
fn garbage_and_oversized_headers_are_closed() {
    let gw = proxied_gateway("");
    let mut tcp = TcpStream::connect(gw.smtp()).unwrap();
    tcp.write_all(b"EHLO client.test\r\n").unwrap();
    closed_silently(tcp);
    gw.wait_log("not a PROXY protocol header");

    let mut tcp = TcpStream::connect(gw.smtp()).unwrap();
    let mut long = b"PROXY UNKNOWN ".to_vec();
    long.resize(300, b'x');
    tcp.write_all(&long).unwrap();
    closed_silently(tcp);
    gw.wait_log("longer than 107 octets");

    let mut tcp = TcpStream::connect(gw.smtp()).unwrap();
    let mut h = V2_SIGNATURE.to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0xFF, 0xFF]);
    tcp.write_all(&h).unwrap();
    closed_silently(tcp);
    gw.wait_log("PROXY v2 length 65535 above the limit");
    // refused before any session: no greeting, no "connected"
    assert!(!gw.log_text().contains("\"message\":\"connected\""));
}

#[test]
fn health_checks_leave_no_error() {
    let gw = proxied_gateway("");
    // connect and close, as HAProxy's plain TCP check does
    for _ in 0..3 {
        drop(TcpStream::connect(gw.smtp()).unwrap());
    }
    // a LOCAL header then QUIT (send-proxy-v2 with `option smtpchk`-like checks)
    let mut s = connect_with(&gw, &v2_local());
    assert_eq!(s.greeting.code, 220, "{}", s.greeting.text);
    s.expect("QUIT", 221);
    gw.wait_disconnects(1);
    // the LOCAL connection is the proxy's own: its real address stands
    assert!(gw.log_text().contains("\"remote\":\"127.0.0.1:"));
    // and a session served afterwards proves the closes were handled
    let mut s = connect_with(&gw, b"PROXY TCP4 192.0.2.7 127.0.0.1 1 25\r\n");
    s.expect("QUIT", 221);
    gw.wait_disconnects(2);
    assert_eq!(gw.warnings(), Vec::<String>::new());
    assert!(!gw.log_text().contains("PROXY header"), "{}", gw.log_text());
}

//! A test DNS server: authoritative for the zones a test defines, on
//! 127.0.0.1 (UDP and TCP, one port), in-process on its own thread.
//!
//! Shared by every test that needs DNS (plugin `dns` lookups, dnsbl, SPF,
//! DKIM): `DnsServer::start(Zone::new().a(..).txt(..))`, then point
//! `[dns] resolver` at `server.addr()`. It answers A, AAAA, MX, TXT, PTR,
//! CNAME and NS records; a name it does not know is NXDOMAIN, a known name
//! without the asked type is NOERROR with no records (no-data), both with
//! an SOA so resolvers may cache them; names marked `servfail` get SERVFAIL.
//! `delay` holds every answer back (each query waits on a task of its own,
//! so many queries wait at once). It counts the queries it receives, in
//! total and per name, so a test can tell a cached answer from a fresh one.
//!
//! Written on hickory's own wire types (`hickory_resolver::proto`, the
//! gateway's resolver): the tests need per-name SERVFAIL, a delay and query
//! counts, which is all the server does beyond encoding a message.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_resolver::proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, AAAA, CNAME, MX, NS, PTR, SOA, TXT};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

fn name(s: &str) -> Name {
    let mut n = Name::from_str(s.trim_end_matches('.')).expect("test DNS name");
    n.set_fqdn(true);
    n
}

fn key(n: &Name) -> String {
    n.to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

/// The records a test server answers with.
#[derive(Clone, Default)]
pub struct Zone {
    records: Vec<Record>,
    servfail: HashSet<String>,
    delay: Duration,
    ttl: u32,
}

impl Zone {
    /// An empty zone (every name NXDOMAIN), TTL 300.
    pub fn new() -> Self {
        Self {
            ttl: 300,
            ..Self::default()
        }
    }

    /// TTL of the records added after this call (and of negative answers).
    pub fn ttl(mut self, ttl: u32) -> Self {
        self.ttl = ttl;
        self
    }

    /// Every answer waits this long.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    fn add(mut self, owner: &str, data: RData) -> Self {
        self.records
            .push(Record::from_rdata(name(owner), self.ttl, data));
        self
    }

    /// An A record.
    pub fn a(self, owner: &str, ip: &str) -> Self {
        self.add(owner, RData::A(A(ip.parse().expect("IPv4"))))
    }

    /// An AAAA record.
    pub fn aaaa(self, owner: &str, ip: &str) -> Self {
        self.add(owner, RData::AAAA(AAAA(ip.parse().expect("IPv6"))))
    }

    /// An MX record.
    pub fn mx(self, owner: &str, preference: u16, exchange: &str) -> Self {
        self.add(owner, RData::MX(MX::new(preference, name(exchange))))
    }

    /// A TXT record of these character-strings.
    pub fn txt(self, owner: &str, strings: &[&str]) -> Self {
        let strings = strings.iter().map(|s| s.to_string()).collect();
        self.add(owner, RData::TXT(TXT::new(strings)))
    }

    /// A PTR record for an IP address (the reverse name is built here).
    pub fn ptr(self, ip: &str, target: &str) -> Self {
        let ip: IpAddr = ip.parse().expect("IP");
        let owner = Name::from(ip).to_ascii();
        self.add(&owner, RData::PTR(PTR(name(target))))
    }

    /// A CNAME record.
    pub fn cname(self, owner: &str, target: &str) -> Self {
        self.add(owner, RData::CNAME(CNAME(name(target))))
    }

    /// An NS record.
    pub fn ns(self, owner: &str, target: &str) -> Self {
        self.add(owner, RData::NS(NS(name(target))))
    }

    /// Queries for this name are answered SERVFAIL.
    pub fn servfail(mut self, owner: &str) -> Self {
        self.servfail.insert(key(&name(owner)));
        self
    }

    fn soa(&self, qname: &Name) -> Record {
        let zone = qname.base_name();
        let soa = SOA::new(
            name("ns.test"),
            name("hostmaster.test"),
            1,
            3600,
            600,
            86400,
            self.ttl,
        );
        Record::from_rdata(zone, self.ttl, RData::SOA(soa))
    }

    fn answer(&self, request: &Message) -> Message {
        let mut out = Message::new();
        out.set_id(request.id())
            .set_message_type(MessageType::Response)
            .set_op_code(OpCode::Query)
            .set_authoritative(true)
            .set_recursion_desired(request.recursion_desired())
            .set_recursion_available(true);
        let Some(q) = request.queries().first() else {
            out.set_response_code(ResponseCode::FormErr);
            return out;
        };
        out.add_query(q.clone());
        let qname = q.name().clone();
        if self.servfail.contains(&key(&qname)) {
            out.set_response_code(ResponseCode::ServFail);
            return out;
        }
        let mut current = qname.clone();
        let mut known = false;
        // Follow a CNAME chain (at most 8 steps) for other types.
        for _ in 0..8 {
            let here: Vec<&Record> = self
                .records
                .iter()
                .filter(|r| key(r.name()) == key(&current))
                .collect();
            known |= !here.is_empty();
            let wanted: Vec<&Record> = here
                .iter()
                .copied()
                .filter(|r| r.record_type() == q.query_type())
                .collect();
            if !wanted.is_empty() {
                out.add_answers(wanted.into_iter().cloned());
                break;
            }
            let cname = here.iter().find(|r| r.record_type() == RecordType::CNAME);
            match cname.map(|r| r.data().clone()) {
                Some(RData::CNAME(target)) => {
                    out.add_answer((*cname.expect("found")).clone());
                    current = target.0.clone();
                }
                _ => break,
            }
        }
        if out.answers().is_empty() {
            out.set_response_code(if known {
                ResponseCode::NoError
            } else {
                ResponseCode::NXDomain
            });
            out.add_name_server(self.soa(&qname));
        }
        out
    }
}

/// Counters of what the server received.
#[derive(Default)]
struct Counts {
    total: AtomicUsize,
    by_name: Mutex<HashMap<String, usize>>,
}

impl Counts {
    fn count(&self, m: &Message) {
        self.total.fetch_add(1, Ordering::SeqCst);
        if let Some(q) = m.queries().first() {
            let mut map = self.by_name.lock().unwrap();
            *map.entry(key(q.name())).or_default() += 1;
        }
    }
}

/// A running test DNS server; stops when dropped.
pub struct DnsServer {
    addr: SocketAddr,
    counts: Arc<Counts>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl DnsServer {
    /// Starts a server for `zone` on 127.0.0.1 (a free port, UDP and TCP).
    pub fn start(zone: Zone) -> Self {
        let counts = Arc::new(Counts::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let c = counts.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                // One port for both: bind TCP first, then UDP on its port.
                let (tcp, udp) = loop {
                    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
                    let port = tcp.local_addr().unwrap().port();
                    if let Ok(udp) = UdpSocket::bind(("127.0.0.1", port)).await {
                        break (tcp, udp);
                    }
                };
                tx.send(tcp.local_addr().unwrap()).unwrap();
                let zone = Arc::new(zone);
                let udp = Arc::new(udp);
                tokio::select! {
                    _ = serve_udp(udp, zone.clone(), c.clone()) => {}
                    _ = serve_tcp(tcp, zone, c) => {}
                    _ = stop_rx => {}
                }
            });
        });
        let addr = rx.recv().expect("DNS server started");
        Self {
            addr,
            counts,
            stop: Some(stop_tx),
        }
    }

    /// The address to put in `[dns] resolver`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queries received so far (UDP and TCP).
    pub fn queries(&self) -> usize {
        self.counts.total.load(Ordering::SeqCst)
    }

    /// Queries received so far for `name` (any type).
    pub fn queries_for(&self, name_: &str) -> usize {
        let k = key(&name(name_));
        *self.counts.by_name.lock().unwrap().get(&k).unwrap_or(&0)
    }

    /// `[dns]` config text pointing at this server.
    pub fn config(&self, extra: &str) -> String {
        format!("[dns]\nresolver = \"{}\"\n{extra}\n", self.addr)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

async fn serve_udp(sock: Arc<UdpSocket>, zone: Arc<Zone>, counts: Arc<Counts>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let Ok(request) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        counts.count(&request);
        let (sock, zone) = (sock.clone(), zone.clone());
        tokio::spawn(async move {
            tokio::time::sleep(zone.delay).await;
            if let Ok(bytes) = zone.answer(&request).to_vec() {
                let _ = sock.send_to(&bytes, peer).await;
            }
        });
    }
}

async fn serve_tcp(listener: TcpListener, zone: Arc<Zone>, counts: Arc<Counts>) {
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            continue;
        };
        let (zone, counts) = (zone.clone(), counts.clone());
        tokio::spawn(async move {
            loop {
                let mut len = [0u8; 2];
                if s.read_exact(&mut len).await.is_err() {
                    return;
                }
                let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
                if s.read_exact(&mut buf).await.is_err() {
                    return;
                }
                let Ok(request) = Message::from_vec(&buf) else {
                    return;
                };
                counts.count(&request);
                tokio::time::sleep(zone.delay).await;
                let Ok(bytes) = zone.answer(&request).to_vec() else {
                    return;
                };
                let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(&bytes);
                if s.write_all(&framed).await.is_err() {
                    return;
                }
            }
        });
    }
}

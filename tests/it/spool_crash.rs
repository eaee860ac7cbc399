//! `kill -9` the real `wasmtp` binary (store-and-forward) while clients
//! send a stream of messages, restart it on the same spool, and check the
//! promise of a 250: every message that got one reaches the upstream,
//! byte-exact after the gateway's Received header; none that got an error
//! does. Messages whose reply was lost to the kill are neither, and are only
//! counted.
//!
//! Two shapes of crash:
//! - the upstream is down (a port that never greets) while the gateway
//!   runs, so everything sits in the spool: after the restart each 250'd
//!   message arrives exactly once;
//! - the upstream is up and the gateway is delivering when it is killed:
//!   a message may arrive twice only inside the documented at-least-once
//!   window, i.e. when its first copy had already been accepted by the
//!   upstream before the kill.
//!
//! The kill point is a number of 250s seen by the clients, not a time.

use crate::common;
use crate::delivery_support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{Gateway, IO_GUARD, split_received};
use delivery_support::{Captured, Sink, SinkConfig, SinkState};

/// Concurrent client connections.
const CLIENTS: usize = 3;
/// Messages per client connection before QUIT and a new connection.
const PER_CONNECTION: usize = 4;
/// `[limits] max_message_size` of the gateway, in octets.
const MAX_SIZE: usize = 48 * 1024;

/// What a client saw for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// 250 to the final dot.
    Accepted,
    /// A 4xx/5xx reply (to the final dot, or earlier in the transaction).
    Refused(u16),
    /// The connection went away before the reply to the final dot.
    NoReply,
}

/// One message a client tried to send: its marker, the message as meant
/// (not dot-stuffed) and what happened.
#[derive(Debug, Clone)]
struct Sent {
    marker: String,
    message: Vec<u8>,
    outcome: Outcome,
}

/// The message with `marker`: a dot-leading line (stuffing must be undone
/// byte-exact), some binary-ish but valid text, and a size that depends on
/// `n`. Every fifth message (the second of each client, then every fifth)
/// is larger than the gateway's limit (it is read
/// in full and refused with 552).
fn make_message(marker: &str, n: usize) -> Vec<u8> {
    let mut m = format!(
        "From: <c@example.org>\r\nTo: <r@example.test>\r\nSubject: crash {marker}\r\n\
         X-Marker: {marker}\r\n\r\n.leading dot {marker}\r\n..two dots\r\n"
    )
    .into_bytes();
    let lines = if n % 5 == 1 {
        MAX_SIZE / 16
    } else {
        1 + (n * 37) % 300
    };
    for l in 0..lines {
        m.extend_from_slice(format!("{marker} line {l:05} {}\r\n", "x".repeat(l % 40)).as_bytes());
    }
    m.extend_from_slice(b"end\r\n");
    m
}

fn dot_stuff(m: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(m.len() + 16);
    for line in m.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b".") {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    out
}

/// A raw SMTP client whose every step can fail (the gateway may die).
struct Client {
    r: BufReader<TcpStream>,
}

impl Client {
    /// Connects and checks the greeting names `host`: after the kill the
    /// port may be taken by another test's server, which must not be
    /// mistaken for our gateway.
    fn connect(addr: SocketAddr, host: &str) -> Option<Self> {
        let tcp = TcpStream::connect(addr).ok()?;
        tcp.set_read_timeout(Some(IO_GUARD)).ok()?;
        let mut r = BufReader::new(tcp);
        let mut line = String::new();
        r.read_line(&mut line).ok()?;
        (line.starts_with("220 ") && line.contains(host)).then_some(Self { r })
    }

    /// The code of the next reply; `None` at EOF or on an error.
    fn reply(&mut self) -> Option<u16> {
        loop {
            let mut line = String::new();
            match self.r.read_line(&mut line) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            if !line.ends_with("\r\n") || line.len() < 5 {
                return None;
            }
            if line.as_bytes()[3] == b' ' {
                return line[..3].parse().ok();
            }
        }
    }

    fn send(&mut self, b: &[u8]) -> Option<()> {
        self.r.get_mut().write_all(b).ok()
    }

    fn cmd(&mut self, line: &str) -> Option<u16> {
        self.send(format!("{line}\r\n").as_bytes())?;
        self.reply()
    }

    /// One transaction; the outcome as the client sees it.
    fn transaction(&mut self, message: &[u8]) -> Outcome {
        let step = |c: &mut Self, line: &str, want: u16| -> Result<(), Outcome> {
            match c.cmd(line) {
                Some(code) if code == want => Ok(()),
                Some(code) => Err(Outcome::Refused(code)),
                None => Err(Outcome::NoReply),
            }
        };
        let r = (|| {
            step(self, "MAIL FROM:<c@example.org>", 250)?;
            step(self, "RCPT TO:<r@example.test>", 250)?;
            step(self, "DATA", 354)?;
            let mut wire = dot_stuff(message);
            wire.extend_from_slice(b".\r\n");
            // Written in pieces so that a kill can land mid-DATA too.
            for piece in wire.chunks(8 * 1024) {
                self.send(piece).ok_or(Outcome::NoReply)?;
            }
            match self.reply() {
                Some(250) => Ok(()),
                Some(code) => Err(Outcome::Refused(code)),
                None => Err(Outcome::NoReply),
            }
        })();
        match r {
            Ok(()) => Outcome::Accepted,
            Err(o) => o,
        }
    }
}

/// Sends messages until the gateway is gone (or `stop`, set just before
/// the kill, when between transactions); returns every attempt.
fn client(
    addr: SocketAddr,
    host: &str,
    who: usize,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) -> Vec<Sent> {
    let mut sent = Vec::new();
    let mut n = 0;
    'conn: loop {
        if stop.load(Ordering::SeqCst) {
            return sent;
        }
        let Some(mut c) = Client::connect(addr, host) else {
            return sent;
        };
        if c.cmd("EHLO client.test") != Some(250) {
            return sent;
        }
        for _ in 0..PER_CONNECTION {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let marker = format!("c{who}m{n:04}");
            let message = make_message(&marker, n);
            n += 1;
            let outcome = c.transaction(&message);
            if outcome == Outcome::Accepted {
                accepted.fetch_add(1, Ordering::SeqCst);
            }
            let gone = outcome == Outcome::NoReply;
            sent.push(Sent {
                marker,
                message,
                outcome,
            });
            if gone {
                continue 'conn;
            }
        }
        let _ = c.cmd("QUIT");
    }
}

fn config(host: &str, spool: &Path, upstream: SocketAddr, first_retry: &str) -> String {
    format!(
        "[server]\nhostname = \"{host}\"\nshutdown_grace = \"1s\"\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\nmode = \"smtp\"\n\n\
         [relay]\nlocal_domains = [\"example.test\"]\n\n\
         [limits]\nmax_message_size = {MAX_SIZE}\n\n\
         [delivery]\nmode = \"store-and-forward\"\n\
         [delivery.forward]\nupstreams = [\"{upstream}\"]\ntls = \"none\"\n\
         helo_name = \"gw.test\"\nconnect_timeout = \"2s\"\n\
         [delivery.spool]\ndir = {spool:?}\nworkers = 4\nfirst_retry = \"{first_retry}\"\n\
         max_retry = \"1s\"\n",
        spool = spool.display().to_string(),
    )
}

fn start(host: &str, spool: &Path, upstream: SocketAddr, first_retry: &str) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let text = config(host, spool, upstream, first_retry);
    Gateway::start_text(dir, &text, 1)
}

fn marker_of(data: &[u8]) -> Option<String> {
    let s = String::from_utf8_lossy(data);
    let at = s.find("\r\nX-Marker: ")? + 12;
    let end = s[at..].find("\r\n")? + at;
    Some(s[at..end].to_string())
}

fn spool_len(spool: &Path) -> usize {
    std::fs::read_dir(spool.join("msg"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Waits (hang guard, not a performance bound) until `cond` holds.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1200 {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("gave up waiting: {what}");
}

/// Counts of one run, for the report and the assertions.
#[derive(Debug, Default)]
struct Tally {
    accepted: usize,
    refused: usize,
    no_reply: usize,
    no_reply_arrived: usize,
    duplicates: usize,
}

/// One crash run. `upstream_live`: the sink is the upstream from the start
/// (the gateway is delivering when killed); otherwise the first gateway
/// only sees a black-holed upstream and everything stays spooled. The gateway is
/// killed once `kill_after` messages got a 250.
fn crash_run(
    sink: Arc<SinkState>,
    sink_addr: SocketAddr,
    dead: SocketAddr,
    kill_after: usize,
    upstream_live: bool,
) -> Tally {
    let spool_dir = tempfile::tempdir().unwrap();
    let spool = spool_dir.path().join("spool");
    let first = if upstream_live { sink_addr } else { dead };
    // A retry far away: with the upstream down, nothing is retried before
    // the kill.
    let host = format!("gw{}-{kill_after}.test", std::process::id());
    let mut gw = start(&host, &spool, first, "1h");
    let addr = gw.smtp();
    let accepted = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|who| {
            let (accepted, stop, host) = (accepted.clone(), stop.clone(), host.clone());
            std::thread::spawn(move || client(addr, &host, who, accepted, stop))
        })
        .collect();
    wait_until("enough 250s before the kill", || {
        accepted.load(Ordering::SeqCst) >= kill_after
    });
    stop.store(true, Ordering::SeqCst);
    gw.signal("KILL");
    let status = gw.wait_exit();
    assert!(!status.success(), "killed, not exited: {status:?}");
    let before_kill = sink.messages.lock().unwrap().len();
    // Sessions the killed gateway opened: a copy that arrived in one of
    // them was accepted by the upstream before (or as) the gateway died.
    let sessions_at_kill = sink.sessions.load(Ordering::SeqCst);
    let sent: Vec<Sent> = clients
        .into_iter()
        .flat_map(|h| h.join().expect("client thread"))
        .collect();
    if !upstream_live {
        assert_eq!(before_kill, 0, "the upstream was down: nothing delivered");
    }
    drop(gw);

    // Restart on the same spool with the upstream up.
    let gw = start(&host, &spool, sink_addr, "200ms");
    let by_marker: BTreeMap<&str, &Sent> = sent.iter().map(|s| (s.marker.as_str(), s)).collect();
    let must: BTreeSet<&str> = sent
        .iter()
        .filter(|s| s.outcome == Outcome::Accepted)
        .map(|s| s.marker.as_str())
        .collect();
    let arrived_markers = || -> BTreeSet<String> {
        sink.messages
            .lock()
            .unwrap()
            .iter()
            .filter_map(|m| marker_of(&m.data))
            .collect()
    };
    wait_until("every 250'd message at the upstream", || {
        let got = arrived_markers();
        must.iter().all(|m| got.contains(*m))
    });
    // Everything the spool still held is finished (delivered or dropped):
    // nothing more can arrive from this run.
    wait_until("an empty spool", || spool_len(&spool) == 0);
    if !upstream_live {
        let log = gw.log_text();
        assert!(log.contains("spool recovered"), "{log}");
    }
    drop(gw);

    let captured: Vec<Captured> = sink.messages.lock().unwrap().clone();
    let mut tally = Tally {
        accepted: must.len(),
        ..Default::default()
    };
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, m) in captured.iter().enumerate() {
        let marker =
            marker_of(&m.data).unwrap_or_else(|| panic!("message without a marker: {m:?}"));
        let s = by_marker
            .get(marker.as_str())
            .unwrap_or_else(|| panic!("unknown marker {marker}"));
        assert_eq!(m.mail_from, "c@example.org", "{marker}");
        assert_eq!(m.rcpts, ["r@example.test"], "{marker}");
        let (received, rest) = split_received(&m.data);
        assert!(received.starts_with("Received: from "), "{received}");
        assert!(
            received.contains(&format!("by {host} (wasmtp)")),
            "{received}"
        );
        assert!(
            rest == s.message,
            "{marker}: not byte-exact after the Received header"
        );
        match &s.outcome {
            Outcome::Accepted => {}
            Outcome::NoReply => tally.no_reply_arrived += 1,
            Outcome::Refused(code) => panic!("{marker} got {code} yet reached the upstream"),
        }
        if let Some(first) = seen.insert(marker.clone(), i) {
            tally.duplicates += 1;
            let first_session = captured[first].session;
            assert!(
                upstream_live && first_session <= sessions_at_kill,
                "{marker} delivered twice outside the at-least-once window \
                 (first copy in upstream session {first_session}, \
                 the killed gateway opened {sessions_at_kill})"
            );
        }
    }
    for s in &sent {
        match s.outcome {
            Outcome::Accepted => {}
            Outcome::Refused(code) => {
                tally.refused += 1;
                assert!(code >= 400, "{}: {code}", s.marker);
            }
            Outcome::NoReply => tally.no_reply += 1,
        }
    }
    // The oversized messages are the refused ones: the stream had some
    // before the kill, so the "none that got an error" check bit.
    assert!(
        tally.refused > 0,
        "no refused message in the stream: {tally:?}"
    );
    assert!(tally.accepted >= kill_after, "{tally:?}");
    eprintln!(
        "crash run (upstream live: {upstream_live}, kill after {kill_after} 250s): {tally:?}, \
         {before_kill} delivered before the kill, {} upstream deliveries in all",
        captured.len()
    );
    tally
}

async fn run(kill_after: usize, upstream_live: bool) {
    let sink = Sink::start(SinkConfig::default()).await;
    // The upstream while it is "down": a bound port nobody accepts on. The
    // kernel completes (or, once the backlog is full, drops) connections
    // but no greeting ever comes, so nothing can be delivered to it, and,
    // unlike a released port, no other test can take it over.
    let blackhole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = blackhole.local_addr().unwrap();
    let (state, addr) = (sink.state.clone(), sink.addr);
    tokio::task::spawn_blocking(move || crash_run(state, addr, dead, kill_after, upstream_live))
        .await
        .unwrap();
    drop(blackhole);
    drop(sink);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_early_with_the_upstream_down() {
    run(8, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_late_with_the_upstream_down() {
    run(60, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_while_delivering() {
    run(40, true).await;
}

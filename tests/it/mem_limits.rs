//! Issue 14, memory and message integrity, through the real binary: the
//! header section bound (items 1), the global memory budget for message
//! data under many concurrent large messages (item 2), header edits by a
//! hostile plugin folded or refused within per-message bounds and
//! `add-recipient` within `max_recipients` (item 3), and header edits
//! that leave every other field byte-exact (item 10; the DKIM half is in
//! `mem_dkim.rs`).

use crate::common;
use crate::plugin_support;

use std::path::Path;
use std::sync::{Arc, Barrier};

use common::{Gateway, LOCAL, Smtp, split_received};

/// `[plugin_host]` with a cache shared by the tests.
fn plugin_host() -> String {
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/wasmtp-test-cache");
    format!(
        "[plugin_host]\ncache_dir = {:?}\nmax_connections = 16\n\n",
        cache.display().to_string()
    )
}

fn entry(name: &str, file: &str, extra: &str, config: &str) -> String {
    format!(
        "[[plugins]]\nname = {name:?}\npath = {:?}\n{extra}\n[plugins.config]\n{config}\n\n",
        plugin_support::wasm(file).display().to_string()
    )
}

/// Peak resident memory of a process (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Item 1: 20 MiB of `a:` lines (about five million fields) in one header
/// section get `552 5.3.4`, the session goes on, and the gateway's peak
/// memory stays far below what parsing them would take.
#[test]
fn header_flood_is_refused_with_bounded_memory() {
    let gw = Gateway::start(LOCAL);
    let mut c = gw.connect();
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<a@client.test>", 250);
    c.expect("RCPT TO:<user@example.test>", 250);
    c.expect("DATA", 354);
    let lines = b"a:\r\n".repeat(256 << 10);
    for _ in 0..20 {
        c.send(&lines);
    }
    c.send(b"\r\nbody\r\n.\r\n");
    let r = c.reply();
    assert_eq!(r.code, 552, "{}", r.text);
    assert!(r.text.contains("5.3.4"), "{}", r.text);
    // The session goes on.
    c.expect("NOOP", 250);
    let peak = peak_rss_kib(gw.pid());
    eprintln!("gateway VmHWM after a 20 MiB header flood: {peak} KiB");
    // The received 20 MiB are held once (plus the read buffers); millions
    // of parsed fields would be several times that.
    assert!(peak < 120 << 10, "peak RSS {peak} KiB");
    assert!(gw.delivered().is_empty());
}

/// Item 1: the bounds are `[limits] max_header_fields` and
/// `max_header_bytes`; at the bound the message is accepted.
#[test]
fn header_bounds_are_configurable() {
    let gw = Gateway::start(&format!(
        "{LOCAL}[limits]\nmax_header_fields = 50\nmax_header_bytes = \"4k\"\n"
    ));
    let send = |head: String| {
        let mut c = gw.connect();
        let msg = format!("{head}\r\nbody\r\n");
        c.send_mail("a@client.test", &["user@example.test"], msg.as_bytes())
    };
    let fields = |n: usize| (0..n).map(|i| format!("X-F{i}: v\r\n")).collect::<String>();
    assert_eq!(send(fields(50)).code, 250);
    let r = send(fields(51));
    assert_eq!(r.code, 552, "{}", r.text);
    assert!(r.text.contains("header fields"), "{}", r.text);
    let r = send(format!("Subject: {}\r\n", "x".repeat(5000)));
    // A 5000-octet line is over the 1000-octet text line limit too; fold it.
    assert!(r.code >= 500, "{}", r.text);
    let r = send(format!("Subject: x\r\n{}", " folded line\r\n".repeat(400)));
    assert_eq!(r.code, 552, "{}", r.text);
    assert!(r.text.contains("octets"), "{}", r.text);
    assert_eq!(gw.delivered().len(), 1);
}

/// One client of the budget test: its message, sent in `chunk`-octet
/// writes; returns the DATA reply code and, when DATA was accepted, the
/// final reply code.
fn slow_client(addr: std::net::SocketAddr, id: usize, size: usize, start: &Barrier) -> (u16, u16) {
    let mut c = Smtp::connect(addr);
    c.expect("EHLO client.test", 250);
    c.expect(&format!("MAIL FROM:<c{id}@client.test>"), 250);
    c.expect("RCPT TO:<user@example.test>", 250);
    start.wait();
    let r = c.cmd("DATA");
    if r.code != 354 {
        return (r.code, 0);
    }
    let body = message_of(id, size);
    for chunk in body.chunks(1 << 20) {
        c.send(chunk);
        // Slowly: the other sessions' messages are in flight meanwhile.
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    c.send(b".\r\n");
    (354, c.reply().code)
}

/// The message of client `id`: a Subject naming it and `size` octets of
/// numbered lines.
fn message_of(id: usize, size: usize) -> Vec<u8> {
    let mut m = format!("Subject: client {id}\r\n\r\n").into_bytes();
    let mut n = 0usize;
    while m.len() < size {
        m.extend_from_slice(format!("{id:04} line {n:09} {}\r\n", "z".repeat(60)).as_bytes());
        n += 1;
    }
    m
}

/// Item 2: 18 concurrent sessions each send a 30 MiB message slowly with a
/// 128 MiB budget: every message is accepted intact or gets `452 4.3.1`
/// (at DATA, or at the end of data when the budget ran out while it
/// arrived), and the gateway's peak RSS stays under 400 MiB (without the
/// budget the same run peaks above 2 GiB: see the report of issue 14).
#[test]
fn memory_budget_bounds_concurrent_messages() {
    // Below the default per-IP connection cap of 20.
    const CLIENTS: usize = 18;
    const SIZE: usize = 30 << 20;
    let gw = Gateway::start(&format!(
        "{LOCAL}[limits]\nmax_message_size = \"32M\"\nmemory_budget = \"128M\"\n\
         [timeouts]\nsession = \"30m\"\n"
    ));
    let addr = gw.smtp();
    let start = Arc::new(Barrier::new(CLIENTS));
    let handles: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let start = start.clone();
            std::thread::spawn(move || slow_client(addr, id, SIZE, &start))
        })
        .collect();
    let results: Vec<(u16, u16)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let peak = peak_rss_kib(gw.pid());
    let accepted: Vec<usize> = (0..CLIENTS).filter(|&i| results[i] == (354, 250)).collect();
    let refused = results
        .iter()
        .filter(|r| r.0 == 452 || *r == &(354, 452))
        .count();
    eprintln!(
        "{CLIENTS} clients x {} MiB: {} accepted, {refused} got 452 (at DATA or at the end); gateway VmHWM {peak} KiB",
        SIZE >> 20,
        accepted.len()
    );
    assert_eq!(accepted.len() + refused, CLIENTS, "{results:?}");
    assert!(!accepted.is_empty());
    assert!(refused > 0, "the budget never bound: {results:?}");
    assert!(peak < 400 << 10, "peak RSS {peak} KiB");
    // Every accepted message arrived byte for byte.
    let delivered = gw.delivered();
    assert_eq!(delivered.len(), accepted.len());
    for msg in delivered {
        let (_, rest) = split_received(&msg);
        let id: usize = String::from_utf8_lossy(&rest[..20])
            .trim_start_matches("Subject: client ")
            .split('\r')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(accepted.contains(&id));
        assert!(
            rest == message_of(id, SIZE),
            "message of client {id} altered"
        );
    }
}

/// The budget grows with each message: 19 sessions hold a small message
/// open in DATA at once under a budget that fits only one
/// `max_message_size` (32 MiB), and every one is accepted. (Reserving the
/// worst case at DATA let only one in.)
#[test]
fn small_messages_share_a_budget_sized_for_one_large_one() {
    // Below the default per-IP connection cap of 20.
    const CLIENTS: usize = 19;
    let gw = Gateway::start(&format!(
        "{LOCAL}[limits]\nmax_message_size = \"32M\"\nmemory_budget = \"32M\"\n"
    ));
    let addr = gw.smtp();
    let in_data = Arc::new(Barrier::new(CLIENTS));
    let handles: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let in_data = in_data.clone();
            std::thread::spawn(move || {
                let mut c = Smtp::connect(addr);
                c.expect("EHLO client.test", 250);
                c.expect(&format!("MAIL FROM:<c{id}@client.test>"), 250);
                c.expect("RCPT TO:<user@example.test>", 250);
                let data = c.cmd("DATA").code;
                // Every session is in DATA (or was refused) before any ends.
                in_data.wait();
                if data != 354 {
                    return data;
                }
                c.send(&message_of(id, 100 << 10));
                c.send(b".\r\n");
                c.reply().code
            })
        })
        .collect();
    let codes: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(codes, vec![250; CLIENTS]);
    assert_eq!(gw.delivered().len(), CLIENTS);
}

/// When the budget runs out while a message arrives, nothing more of it
/// is stored, the rest is read, and its end gets `452 4.3.1`; a message
/// whose declared `SIZE=` does not fit gets `452 4.3.1` at DATA. The
/// session goes on, the message that held the budget is delivered intact,
/// and the refused one is accepted when sent again.
#[test]
fn the_budget_running_out_mid_message_refuses_it_at_its_end() {
    let gw = Gateway::start(&format!(
        "{LOCAL}[limits]\nmax_message_size = \"32M\"\nmemory_budget = \"32M\"\n"
    ));
    // A declares 31 MB: its first reservation holds nearly the whole budget.
    let mut a = Smtp::connect(gw.smtp());
    a.expect("EHLO a.test", 250);
    a.expect("MAIL FROM:<a@client.test> SIZE=31000000", 250);
    a.expect("RCPT TO:<user@example.test>", 250);
    a.expect("DATA", 354);

    // D declares 3 MB: that does not fit now, DATA is refused.
    let mut d = Smtp::connect(gw.smtp());
    d.expect("EHLO d.test", 250);
    d.expect("MAIL FROM:<d@client.test> SIZE=3000000", 250);
    d.expect("RCPT TO:<user@example.test>", 250);
    let r = d.cmd("DATA");
    assert_eq!(
        (r.code, r.text.contains(" 4.3.1 ")),
        (452, true),
        "{}",
        r.text
    );

    // B's first MiB fits; its third does not: refused at its end.
    let mut b = Smtp::connect(gw.smtp());
    b.expect("EHLO b.test", 250);
    b.expect("MAIL FROM:<b@client.test>", 250);
    b.expect("RCPT TO:<user@example.test>", 250);
    b.expect("DATA", 354);
    let big = message_of(1, 3 << 20);
    b.send(&big);
    b.send(b".\r\n");
    let r = b.reply();
    assert_eq!(
        (r.code, r.text.contains(" 4.3.1 ")),
        (452, true),
        "{}",
        r.text
    );
    // The session goes on: a new transaction is possible at once.
    b.expect("RSET", 250);
    b.expect("MAIL FROM:<b@client.test>", 250);

    // A ends; its budget is given back and B's message now fits.
    let small = message_of(2, 4 << 10);
    a.send(&small);
    a.send(b".\r\n");
    assert_eq!(a.reply().code, 250);
    b.expect("RCPT TO:<user@example.test>", 250);
    b.expect("DATA", 354);
    b.send(&big);
    b.send(b".\r\n");
    assert_eq!(b.reply().code, 250);
    let delivered = gw.delivered();
    assert_eq!(delivered.len(), 2);
    let bodies: Vec<Vec<u8>> = delivered.iter().map(|m| split_received(m).1).collect();
    assert!(bodies.contains(&small) && bodies.contains(&big));
}

/// Items 3 and 10 through a plugin: `config` for the hostile plugin at
/// data-post, then header-stamp reporting its notes in the message.
fn hostile_chain(config: &str) -> String {
    let mut c = format!("{LOCAL}\n{}", plugin_host());
    c.push_str(&entry(
        "hostile",
        "hostile",
        "memory_mb = 256",
        &format!("hook = 'data-post'\n{config}"),
    ));
    c.push_str(&entry(
        "header-stamp",
        "header-stamp",
        "",
        "notes = ['hostile.header_error', 'hostile.headers_added', 'hostile.rcpt_error']",
    ));
    c
}

/// Every header line of `msg` (up to the empty line).
fn header_lines(msg: &[u8]) -> Vec<&[u8]> {
    let end = memchr_find(msg, b"\r\n\r\n").unwrap();
    msg[..end].split(|&b| b == b'\n').collect()
}

fn memchr_find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Item 3: a plugin adding a 64 KiB header of words gets it folded to
/// lines of at most 78 octets; one unbreakable 64 KiB token is refused with
/// an error the plugin sees, and the message is still delivered.
#[test]
fn plugin_headers_are_folded_or_refused() {
    let gw = Gateway::start(&hostile_chain("mode = 'wide-header'\nsize = 60000"));
    let mut c = gw.connect();
    let r = c.send_mail(
        "a@client.test",
        &["user@example.test"],
        b"Subject: s\r\n\r\nhi\r\n",
    );
    assert_eq!(r.code, 250, "{}", r.text);
    let msg = &gw.delivered()[0];
    let lines = header_lines(msg);
    let first = lines
        .iter()
        .position(|l| l.starts_with(b"X-Hostile-0: word word"))
        .expect("the added field");
    let field: Vec<&&[u8]> = std::iter::once(&lines[first])
        .chain(
            lines[first + 1..]
                .iter()
                .take_while(|l| l.starts_with(b" ")),
        )
        .collect();
    assert!(field.len() > 700, "{} lines", field.len());
    let longest = field.iter().map(|l| l.len()).max().unwrap();
    // 78 octets and the CR.
    assert!(longest <= 79, "a header line of {longest} octets");
    drop(gw);

    // Refused: no white space to fold at.
    let gw = Gateway::start(&hostile_chain("mode = 'huge-header'\nsize = 60000"));
    let mut c = gw.connect();
    let r = c.send_mail(
        "a@client.test",
        &["user@example.test"],
        b"Subject: s\r\n\r\nhi\r\n",
    );
    assert_eq!(r.code, 250, "{}", r.text);
    let text = String::from_utf8_lossy(&gw.delivered()[0]).into_owned();
    assert!(
        text.contains("hostile.header_error=header field has a line longer than 998"),
        "{text}"
    );
    assert!(!text.contains("X-Hostile:"), "{text}");
    assert!(
        header_lines(text.as_bytes())
            .iter()
            .all(|l| l.len() <= 1000)
    );
}

/// Item 3: hundreds of large fields (the attack of the issue: a 36 MB
/// message of 64 KiB header lines) stop at the per-message bound of added
/// header octets (64 KiB); the plugin sees the error and the session goes on.
#[test]
fn plugin_header_edits_are_bounded() {
    let gw = Gateway::start(&hostile_chain(
        "mode = 'many-headers'\nsize = 20000\ncount = 500",
    ));
    let mut c = gw.connect();
    let r = c.send_mail(
        "a@client.test",
        &["user@example.test"],
        b"Subject: s\r\n\r\nhi\r\n",
    );
    assert_eq!(r.code, 250, "{}", r.text);
    c.expect("NOOP", 250);
    let msg = &gw.delivered()[0];
    assert!(msg.len() < 200 << 10, "delivered {} octets", msg.len());
    let text = String::from_utf8_lossy(msg).into_owned();
    assert!(text.contains("hostile.headers_added=3"), "{text}");
    // (header-stamp's field carrying the note is folded.)
    assert!(
        text.contains("at most 65536 octets of added header"),
        "{text}"
    );
    drop(gw);

    // Many small fields stop at the number of edits.
    let gw = Gateway::start(&hostile_chain(
        "mode = 'many-headers'\nsize = 10\ncount = 5000",
    ));
    let mut c = gw.connect();
    let r = c.send_mail(
        "a@client.test",
        &["user@example.test"],
        b"Subject: s\r\n\r\nhi\r\n",
    );
    assert_eq!(r.code, 250, "{}", r.text);
    let text = String::from_utf8_lossy(&gw.delivered()[0]).into_owned();
    // The bound is per message, for every plugin together: header-stamp
    // finds it used up too, so count the fields instead of its notes.
    assert_eq!(text.matches("\r\nX-Hostile-").count(), 100, "{text}");
}

/// Item 3: `add-recipient` honours `[limits] max_recipients`.
#[test]
fn plugin_recipients_honour_max_recipients() {
    let gw = Gateway::start(&format!(
        "{}[limits]\nmax_recipients = 120\n",
        hostile_chain("mode = 'many-rcpts'\ncount = 5000")
    ));
    let mut c = gw.connect();
    let r = c.send_mail(
        "a@client.test",
        &["user@example.test"],
        b"Subject: s\r\n\r\nhi\r\n",
    );
    assert_eq!(r.code, 250, "{}", r.text);
    let text = String::from_utf8_lossy(&gw.delivered()[0]).into_owned();
    assert!(
        text.contains("hostile.rcpt_error=at most 120 recipients"),
        "{text}"
    );
    gw.wait_log("\"recipients\":120");
}

/// Item 10: header-stamp adds its fields; every received field stays byte
/// for byte (8-bit octets, `Name :` spacing, tabs and odd folds).
#[test]
fn header_edits_leave_received_fields_byte_exact() {
    let mut c = format!("{LOCAL}\n{}", plugin_host());
    c.push_str(&entry(
        "header-stamp",
        "header-stamp",
        "",
        "static = { X-Stamped = 'yes' }",
    ));
    let gw = Gateway::start(&c);
    let head: &[u8] = b"From : \xe9t\xe9 <a@client.test>\r\n\
        Subject:\tcaf\xc3\xa9 \xff raw  \r\n\
        X-Folded: one\r\n\t  two   \r\n three\r\n\
        to:user@example.test\r\n";
    let body: &[u8] = b"body \xe9\r\n";
    let msg = [head, b"\r\n", body].concat();
    let mut s = gw.connect();
    let r = s.send_mail("a@client.test", &["user@example.test"], &msg);
    assert_eq!(r.code, 250, "{}", r.text);
    let delivered = &gw.delivered()[0];
    let (_, rest) = split_received(delivered);
    assert!(
        rest.starts_with(head),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
    assert!(rest.ends_with(&[b"\r\n".as_slice(), body].concat()));
    let added = &rest[head.len()..rest.len() - body.len() - 2];
    assert!(
        String::from_utf8_lossy(added).contains("X-Stamped: yes\r\n"),
        "{:?}",
        String::from_utf8_lossy(added)
    );
}

/// The `hostile.calls` note of each of two messages, each on its own
/// connection, through a pooled hostile plugin in mode `grow-once`.
fn pooled_calls(size: usize) -> Vec<String> {
    let mut c = format!("{LOCAL}\n{}", plugin_host());
    c.push_str(&entry(
        "hostile",
        "hostile",
        "instances = \"pooled\"\npool_size = 4\nmemory_mb = 128",
        &format!("hook = 'data-post'\nmode = 'grow-once'\nsize = {size}"),
    ));
    c.push_str(&entry(
        "header-stamp",
        "header-stamp",
        "",
        "notes = ['hostile.calls']",
    ));
    let gw = Gateway::start(&c);
    for n in 1..=2 {
        let mut s = gw.connect();
        let r = s.send_mail(
            "a@client.test",
            &["user@example.test"],
            b"Subject: s\r\n\r\nhi\r\n",
        );
        assert_eq!(r.code, 250, "{}", r.text);
        s.expect("QUIT", 221);
        assert!(s.closed());
        // Its instance is back in the pool (or dropped) before the next.
        gw.wait_disconnects(n);
    }
    gw.delivered()
        .iter()
        .map(|m| {
            let t = String::from_utf8_lossy(m);
            let at = t.find("hostile.calls=").expect("note stamped");
            t[at..].split('\r').next().unwrap().to_string()
        })
        .collect()
}

/// Item 4: a pooled instance that grew past the threshold (16 MiB since
/// init) is dropped, not kept warm: the second connection gets a fresh
/// instance (its call count starts over); one that did not grow is reused.
#[test]
fn grown_pooled_instance_is_dropped() {
    assert_eq!(pooled_calls(0), ["hostile.calls=1", "hostile.calls=2"]);
    assert_eq!(
        pooled_calls(40 << 20),
        ["hostile.calls=1", "hostile.calls=1"]
    );
}

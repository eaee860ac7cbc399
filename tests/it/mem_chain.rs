//! Issue 14 item 5: a 30 MiB multipart message with attachments passes the
//! shipped MIME-aware plugins (attachment-block, content-filter, disclaimer,
//! with the memory caps and CPU budget of `config/gateway.toml`) without
//! tripping their memory caps: delivered with its footer, the attachments
//! byte for byte.

use crate::common;
use crate::plugin_support;

use std::path::Path;

use base64::Engine;
use common::{Gateway, LOCAL, split_received};

fn entry(name: &str, extra: &str, config: &str) -> String {
    format!(
        "[[plugins]]\nname = {name:?}\npath = {:?}\n{extra}\n[plugins.config]\n{config}\n\n",
        plugin_support::wasm(name).display().to_string()
    )
}

/// The plugin part of the shipped chain, caps as shipped.
fn shipped_mime_chain() -> String {
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/wasmtp-test-cache");
    let mut c = format!(
        "{LOCAL}[limits]\nmax_message_size = \"35M\"\n\n\
         [plugin_host]\ncache_dir = {:?}\nmax_memory_mb = 256\n\n",
        cache.display().to_string()
    );
    c.push_str(&entry(
        "attachment-block",
        "cpu_ms = 1000",
        "extensions = ['exe', 'scr', 'bat', 'cmd', 'js', 'vbs', 'jar', 'msi', 'ps1']",
    ));
    c.push_str(&entry(
        "content-filter",
        "instances = \"pooled\"\npool_size = 64\ncpu_ms = 1000\nmemory_mb = 128",
        "subject = ['\\bviagra\\b', 'you have won']\nbody = ['cheap\\s+rolex', 'wire the money']\n\
         action = \"tag\"\nsubject_tag = \"[SPAM]\"",
    ));
    c.push_str(&entry(
        "disclaimer",
        "cpu_ms = 1000\nmemory_mb = 128",
        "text = \"This message passed through wasmtp.\"",
    ));
    c.push_str(&entry(
        "header-stamp",
        "failure_policy = \"skip\"",
        "notes = ['content_filter.result', 'disclaimer.parts']",
    ));
    c
}

/// Base64 in 76-column lines.
fn b64_lines(data: &[u8]) -> Vec<u8> {
    let text = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = Vec::with_capacity(text.len() + text.len() / 38);
    for line in text.as_bytes().chunks(76) {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

// Issue 14 item 5: memory held to the caps, and attachment-block walks
// the MIME structure without decoding the attachments (it used to decode
// every base64 part and run out of its 2 s CPU budget here).
#[test]
fn thirty_mib_multipart_passes_the_shipped_chain() {
    let gw = Gateway::start(&shipped_mime_chain());
    // Two attachments of 10 MiB and 12 MiB (about 30 MiB encoded) and
    // a text part.
    let a: Vec<u8> = (0..10u32 << 20).map(|i| (i * 7 + i / 251) as u8).collect();
    let b: Vec<u8> = (0..(12u32 << 20))
        .map(|i| (i * 13 + i / 97) as u8)
        .collect();
    let mut msg = b"From: a@client.test\r\nTo: user@example.test\r\nSubject: big\r\n\
        MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"BOUND\"\r\n\r\n\
        --BOUND\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n\
        Two files attached.\r\n\
        --BOUND\r\nContent-Type: application/octet-stream\r\n\
        Content-Disposition: attachment; filename=\"a.bin\"\r\n\
        Content-Transfer-Encoding: base64\r\n\r\n"
        .to_vec();
    let a64 = b64_lines(&a);
    msg.extend_from_slice(&a64);
    msg.extend_from_slice(
        b"--BOUND\r\nContent-Type: application/pdf\r\n\
        Content-Disposition: attachment; filename=\"b.pdf\"\r\n\
        Content-Transfer-Encoding: base64\r\n\r\n",
    );
    let b64 = b64_lines(&b);
    msg.extend_from_slice(&b64);
    msg.extend_from_slice(b"--BOUND--\r\n");
    assert!(msg.len() > 30 << 20, "{}", msg.len());

    let mut c = gw.connect();
    let r = c.send_mail("a@client.test", &["user@example.test"], &msg);
    assert_eq!(r.code, 250, "{}\nlog:\n{}", r.text, gw.log_text());
    let delivered = gw.delivered().remove(0);
    let (_, rest) = split_received(&delivered);
    let text = String::from_utf8_lossy(&rest[..8192.min(rest.len())]).into_owned();
    assert!(text.contains("content_filter.result=clean"), "{text}");
    assert!(text.contains("disclaimer.parts=1"), "{text}");
    let find = |needle: &[u8]| memchr::memmem::find(&rest, needle);
    assert!(find(b"Two files attached.\r\n-- \r\nThis message passed through wasmtp.").is_some());
    assert!(find(&a64).is_some(), "attachment a altered");
    assert!(find(&b64).is_some(), "attachment b altered");
}

//! The Rust example plugins (`example-plugins/rust`), each doing its job
//! through the host on real MIME messages.

use crate::plugin_support;

use plugin_support::*;
use wasmtp::context::SessionContext;
use wasmtp::plugin::{Hook, PluginConfig, PluginHost, Verdict};

async fn host(chain: &[PluginConfig]) -> (tempfile::TempDir, std::sync::Arc<PluginHost>) {
    let dir = tempfile::tempdir().unwrap();
    let host = PluginHost::load(&host_config(dir.path()), chain)
        .await
        .unwrap();
    (dir, host)
}

fn reply(v: &Verdict) -> String {
    v.reply().map(|r| r.to_string()).unwrap_or_default()
}

async fn data_post(host: &std::sync::Arc<PluginHost>, msg: &str) -> (Verdict, SessionContext) {
    let mut c = ctx("sess-ex");
    c.conn.hello_host = "client.example.net".into();
    open_txn(&mut c, "a@example.net");
    set_raw_message(&mut c, msg);
    let v = host.session().run(Hook::DataPost, &mut c).await;
    (v, c)
}

#[tokio::test]
async fn rcpt_allowlist() {
    let (_d, h) = host(&[plugin(
        "allow",
        "rcpt-allowlist",
        "domains = ['example.org']\naddresses = ['boss@partner.example']",
    )])
    .await;
    let mut s = h.session();
    let mut c = ctx("s");
    open_txn(&mut c, "a@example.net");
    assert_eq!(
        s.run(Hook::Rcpt("x@EXAMPLE.org", &[]), &mut c).await,
        Verdict::Ok
    );
    assert_eq!(
        s.run(Hook::Rcpt("boss@partner.example", &[]), &mut c).await,
        Verdict::Ok
    );
    let v = s.run(Hook::Rcpt("x@elsewhere.example", &[]), &mut c).await;
    assert_eq!(
        reply(&v),
        "550 5.7.1 <x@elsewhere.example>: recipient not accepted here"
    );
    c.conn.relay_client = true;
    assert_eq!(
        s.run(Hook::Rcpt("x@elsewhere.example", &[]), &mut c).await,
        Verdict::Declined
    );
    assert_eq!(
        c.txn
            .unwrap()
            .notes
            .get("rcpt_allowlist.accepted")
            .map(String::as_str),
        Some("2")
    );
}

#[tokio::test]
async fn helo_check() {
    let (_d, h) = host(&[plugin(
        "helo",
        "helo-check",
        "our_names = ['mx.wasmtp.example']",
    )])
    .await;
    let mut s = h.session();
    let mut c = ctx("s");
    for bad in [
        "192.0.2.7",
        "localhost",
        "mx.wasmtp.example",
        "[198.51.100.1]",
        "bad_label.example",
    ] {
        let v = s.run(Hook::Ehlo(bad), &mut c).await;
        assert!(matches!(v, Verdict::Deny(_)), "{bad}: {v:?}");
        assert!(
            reply(&v).starts_with("550 5.7.1 HELO refused: "),
            "{bad}: {}",
            reply(&v)
        );
    }
    for good in ["client.example.net", "[192.0.2.7]", "mail.example.org."] {
        assert_eq!(
            s.run(Hook::Helo(good), &mut c).await,
            Verdict::Declined,
            "{good}"
        );
    }
}

#[tokio::test]
async fn header_stamp_uses_connection_facts_and_notes_of_earlier_plugins() {
    let chain = [
        plugin("helo", "helo-check", "action = 'note'"),
        plugin(
            "cf",
            "content-filter",
            "subject = ['viagra']\naction = 'tag'",
        ),
        plugin(
            "stamp",
            "header-stamp",
            "notes = ['helo_check.fail', 'content_filter.result']\n[static]\nX-Gateway = 'wasmtp'",
        ),
    ];
    let (_d, h) = host(&chain).await;
    let mut s = h.session();
    let mut c = ctx("sess-st");
    assert_eq!(
        s.run(Hook::Helo("localhost"), &mut c).await,
        Verdict::Declined
    );
    c.conn.hello = wasmtp::context::HelloKind::Helo;
    c.conn.hello_host = "localhost".into();
    open_txn(&mut c, "a@example.net");
    set_raw_message(&mut c, "Subject: hi\r\n\r\nhello\r\n");
    assert_eq!(s.run(Hook::DataPost, &mut c).await, Verdict::Declined);
    let out = delivered(&c);
    assert!(
        out.contains("X-Wasmtp-Session: sess-st txn=txn-1\r\n"),
        "{out}"
    );
    assert!(
        out.contains("X-Wasmtp-Client: 192.0.2.7 port=4567 helo=localhost\r\n"),
        "{out}"
    );
    assert!(
        out.contains(
            "X-Wasmtp-Note: helo_check.fail=localhost is not a fully qualified domain name\r\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("X-Wasmtp-Note: content_filter.result=clean\r\n"),
        "{out}"
    );
    assert!(out.contains("X-Gateway: wasmtp\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\nhello\r\n"), "{out}");
}

const B64_SPAM: &str = "Subject: =?UTF-8?B?Q2hlYXAgd2F0Y2hlcw==?=\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
QnV5IGNoZWFwIHJvbGV4IHdhdGNoZXMgbm93IQ==\r\n\
--b1\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<p>hello</p>\r\n\
--b1--\r\n";

#[tokio::test]
async fn content_filter_decodes_mime() {
    // The body pattern only matches after base64 decoding.
    let (_d, h) = host(&[plugin("cf", "content-filter", "body = ['cheap\\s+rolex']")]).await;
    let (v, c) = data_post(&h, B64_SPAM).await;
    assert_eq!(reply(&v), "554 5.7.1 message content rejected by policy");
    assert_eq!(
        c.txn
            .unwrap()
            .notes
            .get("content_filter.result")
            .map(String::as_str),
        Some("body:cheap\\s+rolex")
    );

    // The subject pattern only matches the decoded encoded-word; tag mode.
    let (_d, h) = host(&[plugin(
        "cf",
        "content-filter",
        "subject = ['^cheap watches$']\naction = 'tag'\nsubject_tag = '[SPAM]'",
    )])
    .await;
    let (v, c) = data_post(&h, B64_SPAM).await;
    assert_eq!(v, Verdict::Declined);
    let out = delivered(&c);
    assert!(
        out.starts_with("Subject: [SPAM] =?UTF-8?B?Q2hlYXAgd2F0Y2hlcw==?=\r\n"),
        "{out}"
    );
    assert!(
        out.contains("X-Content-Filter: matched subject:^cheap watches$\r\n"),
        "{out}"
    );

    let (v, _) = data_post(&h, "Subject: lunch\r\n\r\nsee you\r\n").await;
    assert_eq!(v, Verdict::Declined);
}

fn with_attachment(name: &str, ctype: &str) -> String {
    format!(
        "Subject: files\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"xx\"\r\n\r\n\
--xx\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n\
--xx\r\nContent-Type: {ctype}; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAA\r\n--xx--\r\n"
    )
}

#[tokio::test]
async fn attachment_block() {
    let (_d, h) = host(&[plugin("att", "attachment-block", "")]).await;
    let (v, _) = data_post(
        &h,
        &with_attachment("Invoice.PDF.exe", "application/octet-stream"),
    )
    .await;
    assert_eq!(
        reply(&v),
        "554 5.7.1 attachment \"invoice.pdf.exe\" has a banned extension"
    );
    let (v, _) = data_post(
        &h,
        &with_attachment("setup.bin", "application/x-msdownload"),
    )
    .await;
    assert_eq!(
        reply(&v),
        "554 5.7.1 attachment type application/x-msdownload is not accepted"
    );
    let (v, _) = data_post(&h, &with_attachment("report.pdf", "application/pdf")).await;
    assert_eq!(v, Verdict::Declined);
    // Inside a forwarded message.
    let inner = with_attachment("run.js", "application/javascript");
    let outer = format!(
        "Subject: fwd\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"o\"\r\n\r\n\
--o\r\nContent-Type: text/plain\r\n\r\nfyi\r\n--o\r\nContent-Type: message/rfc822\r\n\r\n{inner}\r\n--o--\r\n"
    );
    let (v, _) = data_post(&h, &outer).await;
    assert_eq!(
        reply(&v),
        "554 5.7.1 attachment \"run.js\" has a banned extension"
    );
}

#[tokio::test]
async fn attachment_block_walks_the_structure() {
    use base64::Engine as _;
    let (_d, h) = host(&[plugin("att", "attachment-block", "max_parts = 20")]).await;
    let banned_ext = "554 5.7.1 attachment \"evil.exe\" has a banned extension";
    // An RFC 2231 name, in a multipart/alternative inside multipart/mixed.
    let nested = "Subject: x\r\nContent-Type: multipart/mixed; boundary=\"a\"\r\n\r\n\
--a\r\nContent-Type: multipart/alternative; boundary=\"ab\"\r\n\r\n\
--ab\r\nContent-Type: text/plain\r\n\r\nhi\r\n--ab\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\r\n--ab--\r\n\
--a\r\nContent-Type: application/octet-stream\r\n\
Content-Disposition: attachment; filename*=UTF-8''evil%2Eexe\r\n\r\nMZ\r\n--a--\r\n";
    let (v, _) = data_post(&h, nested).await;
    assert_eq!(reply(&v), banned_ext);
    // A boundary that is a prefix of another: only whole delimiter lines
    // split, so the attachment is seen as one part with its own headers.
    let prefix = "Subject: x\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\n--bb is not a delimiter\r\n\
--b\r\nContent-Type: application/x-msdownload\r\n\r\nMZ\r\n--b--\r\n";
    let (v, _) = data_post(&h, prefix).await;
    assert_eq!(
        reply(&v),
        "554 5.7.1 attachment type application/x-msdownload is not accepted"
    );
    // A forwarded message sent base64-encoded is decoded and looked into.
    let inner = with_attachment("evil.exe", "application/octet-stream");
    let encoded = base64::engine::general_purpose::STANDARD.encode(inner.as_bytes());
    let forwarded = format!(
        "Subject: fwd\r\nContent-Type: multipart/mixed; boundary=\"o\"\r\n\r\n\
--o\r\nContent-Type: text/plain\r\n\r\nfyi\r\n\
--o\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n--o--\r\n"
    );
    let (v, _) = data_post(&h, &forwarded).await;
    assert_eq!(reply(&v), banned_ext);
    // Harmless parts pass, up to `max_parts` entities in all.
    let many = |n: usize| {
        let mut m =
            String::from("Subject: x\r\nContent-Type: multipart/mixed; boundary=\"m\"\r\n\r\n");
        for i in 0..n {
            m.push_str(&format!(
                "--m\r\nContent-Type: image/png; name=\"p{i}.png\"\r\n\r\niVBOR\r\n"
            ));
        }
        m.push_str("--m--\r\n");
        m
    };
    let (v, _) = data_post(&h, &many(19)).await;
    assert_eq!(v, Verdict::Declined);
    let (v, _) = data_post(&h, &many(20)).await;
    assert_eq!(reply(&v), "554 5.7.1 message has more than 20 MIME parts");
}

#[tokio::test]
async fn disclaimer_appends_to_text_parts_only() {
    let (_d, h) = host(&[plugin(
        "disc",
        "disclaimer",
        "text = \"Sent through wasmtp.\\nCheck = twice.\"",
    )])
    .await;

    let (_, c) = data_post(&h, "Subject: plain\r\n\r\nHello\r\n").await;
    assert_eq!(
        delivered(&c),
        "Subject: plain\r\n\r\nHello\r\n-- \r\nSent through wasmtp.\r\nCheck = twice.\r\n"
    );

    let multi = "Subject: multi\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"zz\"\r\n\r\n\
--zz\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nHi=20there\r\n\
--zz\r\nContent-Type: text/html\r\n\r\n<p>Hi</p>\r\n\
--zz\r\nContent-Type: text/plain; name=\"notes.txt\"\r\nContent-Disposition: attachment; filename=\"notes.txt\"\r\n\r\nattached text\r\n\
--zz--\r\n";
    let (_, c) = data_post(&h, multi).await;
    let out = delivered(&c);
    assert!(
        out.contains("Hi=20there\r\n--=20\r\nSent through wasmtp.\r\nCheck =3D twice.\r\n--zz\r\n"),
        "{out}"
    );
    assert!(
        out.contains("<p>Hi</p>\r\n--zz\r\n"),
        "html untouched: {out}"
    );
    assert!(
        out.contains("attached text\r\n--zz--"),
        "attachment untouched: {out}"
    );
    assert_eq!(
        c.txn
            .as_ref()
            .unwrap()
            .notes
            .get("disclaimer.parts")
            .map(String::as_str),
        Some("1")
    );

    // Idempotent: a message that already carries the footer is left alone.
    let once = delivered(&c);
    let (_, c2) = data_post(&h, &once).await;
    assert_eq!(delivered(&c2), once);
}

// The three MIME-aware plugins skip the whole-message parse when the body is
// one plain-text part needing no decoding (example-plugins/rust/plain-text).
// These messages sit on both sides of that line: the answers must be the
// same as a full parse gives.

#[tokio::test]
async fn content_filter_single_part_bodies() {
    let (_d, h) = host(&[plugin(
        "cf",
        "content-filter",
        "subject = ['^free money$']\nbody = ['cheap\\s+rolex', 'caf\u{e9} cr\u{e8}me']",
    )])
    .await;
    let rule = |c: &SessionContext| {
        c.txn
            .as_ref()
            .unwrap()
            .notes
            .get("content_filter.result")
            .cloned()
            .unwrap_or_default()
    };
    let cases = [
        // No MIME headers at all: the body is the text.
        (
            "Subject: hi\r\n\r\nbuy CHEAP\r\n  Rolex today\r\n",
            "body:cheap\\s+rolex",
        ),
        // Subject from the header block alone, folded and encoded.
        (
            "Subject: =?utf-8?q?free?=\r\n money\r\n\r\nnothing here\r\n",
            "subject:^free money$",
        ),
        // UTF-8 declared, 8-bit body.
        (
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nun caf\u{e9} cr\u{e8}me\r\n",
            "body:caf\u{e9} cr\u{e8}me",
        ),
        // The same UTF-8 octets declared as Latin-1 decode to other text
        // ("cafÃ©"): the full parse decides, and nothing matches.
        (
            "Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\nun caf\u{e9} cr\u{e8}me\r\n",
            "clean",
        ),
        // Single part, quoted-printable: decoded before matching.
        (
            "Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncheap=20=\r\nrolex\r\n",
            "body:cheap\\s+rolex",
        ),
        ("Subject: hi\r\n\r\nplain and clean\r\n", "clean"),
    ];
    for (msg, want) in cases {
        let (v, c) = data_post(&h, msg).await;
        assert_eq!(rule(&c), want, "{msg:?}");
        if want == "clean" {
            assert_eq!(v, Verdict::Declined);
        } else {
            assert_eq!(reply(&v), "554 5.7.1 message content rejected by policy");
        }
    }
}

#[tokio::test]
async fn attachment_block_single_part_messages() {
    let (_d, h) = host(&[plugin("att", "attachment-block", "")]).await;
    // A whole message that is the attachment.
    let (v, _) = data_post(
        &h,
        "Subject: x\r\nContent-Type: application/x-msdownload\r\nContent-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA\r\n",
    )
    .await;
    assert_eq!(
        reply(&v),
        "554 5.7.1 attachment type application/x-msdownload is not accepted"
    );
    // Plain text, but sent as an attachment with a banned name.
    let (v, _) = data_post(
        &h,
        "Subject: x\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=\"run.bat\"\r\n\r\n@echo off\r\n",
    )
    .await;
    assert_eq!(
        reply(&v),
        "554 5.7.1 attachment \"run.bat\" has a banned extension"
    );
    // Plain text inline: nothing to block.
    let (v, _) = data_post(&h, "Subject: x\r\n\r\nsee run.bat\r\n").await;
    assert_eq!(v, Verdict::Declined);
}

#[tokio::test]
async fn disclaimer_single_part_bodies() {
    let (_d, h) = host(&[plugin(
        "disc",
        "disclaimer",
        "text = \"Sent through wasmtp.\\nCheck = twice.\"",
    )])
    .await;
    let footer = "-- \r\nSent through wasmtp.\r\nCheck = twice.\r\n";
    let parts = |c: &SessionContext| {
        c.txn
            .as_ref()
            .unwrap()
            .notes
            .get("disclaimer.parts")
            .cloned()
    };

    // Empty body.
    let (_, c) = data_post(&h, "Subject: e\r\n\r\n").await;
    assert_eq!(delivered(&c), format!("Subject: e\r\n\r\n{footer}"));
    assert_eq!(parts(&c).as_deref(), Some("1"));

    // 8-bit UTF-8 body; passing twice adds nothing.
    let msg = "Content-Type: text/plain; charset=utf-8\r\n\r\nna\u{ef}ve\r\n";
    let (_, c) = data_post(&h, msg).await;
    let once = delivered(&c);
    assert_eq!(once, format!("{msg}{footer}"));
    let (_, c2) = data_post(&h, &once).await;
    assert_eq!(delivered(&c2), once);
    assert_eq!(parts(&c2), None);

    // Quoted-printable single part: the footer is encoded like the part.
    let (_, c) = data_post(
        &h,
        "Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nHi=20there\r\n",
    )
    .await;
    assert!(
        delivered(&c)
            .ends_with("Hi=20there\r\n--=20\r\nSent through wasmtp.\r\nCheck =3D twice.\r\n"),
        "{}",
        delivered(&c)
    );

    // HTML single part and attachments are left alone.
    for msg in [
        "Content-Type: text/html\r\n\r\n<p>hi</p>\r\n",
        "Content-Type: text/plain\r\nContent-Disposition: attachment; filename=a.txt\r\n\r\ndata\r\n",
    ] {
        let (_, c) = data_post(&h, msg).await;
        assert_eq!(delivered(&c), msg);
        assert_eq!(parts(&c), None, "{msg}");
    }
}

//! The host-parsed MIME view (`mime` WIT interface, `src/plugin/host_mime.rs`)
//! as plugins see it: the probe fixture prints the part tree and decoded
//! text, the ported example plugins (disclaimer, attachment-block) use it,
//! on real MIME messages, nested, encoded and hostile.

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

async fn data_post(host: &std::sync::Arc<PluginHost>, msg: &str) -> (Verdict, SessionContext) {
    let mut c = ctx("sess-mime");
    open_txn(&mut c, "a@example.net");
    set_raw_message(&mut c, msg);
    let v = host.session().run(Hook::DataPost, &mut c).await;
    (v, c)
}

/// A probe running `actions` at data-post.
fn probe(name: &str, actions: &[&str]) -> PluginConfig {
    let list: Vec<String> = actions.iter().map(|a| format!("{a:?}")).collect();
    plugin(
        name,
        "probe",
        &format!(
            "name = '{name}'\nhooks = ['data-post']\n[actions]\ndata-post = [{}]",
            list.join(", ")
        ),
    )
}

const NESTED: &str = "From: a@example.net\r\nSubject: x\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n\
--outer\r\nContent-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n\
--inner\r\nContent-Type: text/plain; charset=ISO-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9 cr=E8me\r\n\
--inner\r\nContent-Type: text/html; charset=koi8-r\r\nContent-Transfer-Encoding: base64\r\n\r\n\
8NLJ18XU\r\n--inner--\r\n\
--outer\r\nContent-Type: application/octet-stream\r\n\
Content-Disposition: attachment; filename*=iso-8859-1''r%E9sum%E9.pdf\r\n\
Content-Transfer-Encoding: base64\r\n\r\nJVBERg==\r\n\
--outer\r\nContent-Type: image/png; name=\"=?UTF-8?B?w6l0w6kucG5n?=\"\r\n\
Content-Disposition: inline\r\n\r\nPNG\r\n\
--outer\r\nContent-Type: message/rfc822\r\n\r\n\
Subject: inner\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nforwarded\r\n\
--outer--\r\n";

#[tokio::test]
async fn nested_multipart_names_and_charsets() {
    let (_d, h) = host(&[probe(
        "p",
        &[
            "mime",
            "mime-text:2",
            "mime-text:3",
            "mime-content:2",
            "mime-text:4",
        ],
    )])
    .await;
    let (v, c) = data_post(&h, NESTED).await;
    assert_eq!(v, Verdict::Declined);
    let log = probe_log(&c, "p");
    let parts = log
        .lines()
        .find_map(|l| l.strip_prefix("  mime -> "))
        .unwrap_or_else(|| panic!("{log}"));
    let parts: Vec<&str> = parts.split(" | ").collect();
    assert_eq!(
        parts,
        [
            "0<-/0 multipart multipart/mixed - - \"-\" 7bit 687/0",
            "1<0/1 multipart multipart/alternative - - \"-\" 7bit 224/0",
            "2<1/2 text text/plain iso-8859-1 - \"-\" quoted-printable 14/10",
            "3<1/2 text text/html koi8-r - \"-\" base64 8/6",
            "4<0/1 binary application/octet-stream - attachment \"résumé.pdf\" base64 8/4",
            "5<0/1 binary image/png - inline \"été.png\" 7bit 3/3",
            "6<0/1 message message/rfc822 - - \"-\" 7bit 71/71",
            // Known gap: inside an unencoded nested message the last
            // part's sizes come out 0 (mail-parser's offsets); its text is
            // right (mime-text:7 below).
            "7<6/2 text text/plain us-ascii - \"-\" 7bit 0/0",
        ],
        "{log}"
    );
    assert!(log.contains("  mime-text -> café crème\n"), "{log}");
    assert!(log.contains("  mime-text -> Привет\n"), "{log}");
    // The octets in their own charset (ISO-8859-1 é is 0xE9).
    assert!(
        log.contains("  mime-content -> [99, 97, 102, 233, 32, 99, 114, 232, 109, 101]\n"),
        "{log}"
    );
    assert!(
        log.contains("  mime-text error: MIME part 4 is not text\n"),
        "{log}"
    );
}

#[tokio::test]
async fn a_body_replaced_by_the_disclaimer_is_parsed_again() {
    let (_d, h) = host(&[
        probe("before", &["mime-text:1"]),
        plugin(
            "disclaimer",
            "disclaimer",
            "text = 'Sent through the gateway'",
        ),
        probe("after", &["mime-text:1", "mime"]),
    ])
    .await;
    let msg = "Subject: x\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\n\
Content-Type: application/pdf; name=a.pdf\r\n\r\n%PDF\r\n--b--\r\n";
    let (_, c) = data_post(&h, msg).await;
    let before = probe_log(&c, "before");
    assert!(before.ends_with("\n  mime-text -> hello\n"), "{before}");
    let after = probe_log(&c, "after");
    assert!(
        after.contains("  mime-text -> hello\r\n-- \r\nSent through the gateway\n"),
        "{after}"
    );
    assert!(after.contains("application/pdf"), "{after}");
    // Editing Content-Type changes the view too.
    let (_d, h) = host(&[
        probe("a", &["mime"]),
        probe(
            "b",
            &["replace-header:Content-Type:application/zip", "mime"],
        ),
    ])
    .await;
    let (_, c) = data_post(&h, "Subject: x\r\n\r\nbody\r\n").await;
    assert!(probe_log(&c, "a").contains("0<-/0 text text/plain"));
    assert!(
        probe_log(&c, "b").contains("0<-/0 binary application/zip"),
        "{}",
        probe_log(&c, "b")
    );
    let m = c.txn.as_ref().unwrap().message.as_ref().unwrap();
    assert!(m.mime_cached());
}

fn many_parts(n: usize) -> String {
    let mut m = String::from("Subject: x\r\nContent-Type: multipart/mixed; boundary=\"m\"\r\n\r\n");
    for i in 0..n {
        m.push_str(&format!(
            "--m\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n"
        ));
    }
    m.push_str("--m--\r\n");
    m
}

fn deep(levels: usize) -> String {
    let mut m = String::from("Subject: x\r\n");
    for i in 0..levels {
        m.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"d{i}\"\r\n\r\n--d{i}\r\n"
        ));
    }
    m.push_str("Content-Type: application/x-msdownload\r\n\r\nMZ\r\n");
    m
}

#[tokio::test]
async fn hostile_mime_gets_an_answer_or_a_clear_error() {
    let (_d, h) = host(&[probe("p", &["mime"])]).await;
    let first = |c: &SessionContext| {
        probe_log(c, "p")
            .lines()
            .nth(1)
            .unwrap_or_default()
            .to_string()
    };
    let (_, c) = data_post(&h, &many_parts(10_000)).await;
    assert_eq!(
        first(&c),
        "  mime error: the message has more than 1000 MIME parts"
    );
    let (_, c) = data_post(&h, &many_parts(998)).await;
    assert!(
        first(&c).contains("998<0/1 text text/plain"),
        "{}",
        first(&c)
    );
    let (_, c) = data_post(&h, &deep(5000)).await;
    assert_eq!(
        first(&c),
        "  mime error: the message has more than 1000 MIME parts"
    );
    let (_, c) = data_post(&h, &deep(40)).await;
    assert_eq!(
        first(&c),
        "  mime error: the message nests MIME parts deeper than 32"
    );
    // A boundary that never comes, bad base64, an unknown charset, bad
    // quoted-printable: an answer each.
    let (_, c) = data_post(
        &h,
        "Subject: x\r\nContent-Type: multipart/mixed; boundary=\"never\"\r\n\r\n--other\r\n\r\ntext\r\n",
    )
    .await;
    assert!(first(&c).starts_with("  mime -> 0<-/0 "), "{}", first(&c));
    let (_, c) = data_post(
        &h,
        "Subject: x\r\nContent-Type: text/plain; charset=x-unknown-charset\r\n\
Content-Transfer-Encoding: base64\r\n\r\n!!!! not base64 ****\r\n",
    )
    .await;
    assert!(
        first(&c).starts_with("  mime -> 0<-/0 text text/plain x-unknown-charset - \"-\" base64"),
        "{}",
        first(&c)
    );
    let (_, c) = data_post(
        &h,
        "Subject: x\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=ZZ=\r\n=4\r\n",
    )
    .await;
    assert!(
        first(&c).starts_with("  mime -> 0<-/0 text text/plain"),
        "{}",
        first(&c)
    );
    // attachment-block refuses what cannot be examined.
    let (_d, h) = host(&[plugin("att", "attachment-block", "")]).await;
    let (v, _) = data_post(&h, &deep(40)).await;
    assert_eq!(
        v.reply().map(|r| r.to_string()).unwrap_or_default(),
        "554 5.7.1 the message nests MIME parts deeper than 32"
    );
}

/// A `[[plugins]]` entry of a gateway config for a built plugin.
fn gateway_plugin(name: &str, crate_name: &str, config: &str) -> String {
    format!(
        "[[plugins]]\nname = {name:?}\npath = {:?}\n[plugins.config]\n{config}\n\n",
        wasm(crate_name)
    )
}

#[test]
fn the_content_plugins_read_the_view_through_the_gateway() {
    let extra = format!(
        "{}{}{}{}",
        crate::common::LOCAL,
        gateway_plugin("attachment-block", "attachment-block", ""),
        gateway_plugin(
            "content-filter",
            "content-filter",
            "body = ['wire transfer now']\naction = 'tag'"
        ),
        gateway_plugin(
            "disclaimer",
            "disclaimer",
            "text = 'Scanned by the gateway'"
        ),
    );
    let gw = crate::common::Gateway::start(&extra);
    let mut c = gw.connect();
    // An RFC 2231 name hiding an executable, in a nested multipart.
    let exe = b"Subject: x\r\nContent-Type: multipart/mixed; boundary=\"a\"\r\n\r\n\
--a\r\nContent-Type: multipart/alternative; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b--\r\n\
--a\r\nContent-Type: application/octet-stream\r\n\
Content-Disposition: attachment; filename*=utf-8''invoice%2Epdf%2Eexe\r\n\r\nMZ\r\n--a--\r\n";
    let r = c.send_mail("a@client.test", &["user@example.test"], exe);
    assert_eq!(
        (r.code, r.text.as_str()),
        (
            554,
            "554 5.7.1 attachment \"invoice.pdf.exe\" has a banned extension"
        )
    );
    // Base64 KOI8-R text (decoded for content-filter) beside a
    // quoted-printable Latin-1 part (the footer goes in, QP-encoded).
    let clean = "Subject: y\r\nContent-Type: multipart/mixed; boundary=\"c\"\r\n\r\n\
--c\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9\r\n\
--c\r\nContent-Type: text/plain; charset=koi8-r\r\nContent-Transfer-Encoding: base64\r\n\r\n\
d2lyZSB0cmFuc2ZlciBub3cg8NLJ18XU\r\n--c--\r\n";
    let r = c.send_mail("a@client.test", &["user@example.test"], clean.as_bytes());
    assert_eq!(r.code, 250, "{}", r.text);
    c.expect("QUIT", 221);
    let msgs = gw.delivered();
    assert_eq!(msgs.len(), 1);
    let (_, msg) = crate::common::split_received(&msgs[0]);
    let msg = String::from_utf8_lossy(&msg);
    assert!(
        msg.contains("X-Content-Filter: matched body:wire transfer now\r\n"),
        "{msg}"
    );
    assert!(
        msg.contains("caf=E9\r\n--=20\r\nScanned by the gateway\r\n--c\r\n"),
        "{msg}"
    );
    // base64 text parts are left alone.
    assert!(
        msg.contains("d2lyZSB0cmFuc2ZlciBub3cg8NLJ18XU\r\n--c--\r\n"),
        "{msg}"
    );
}

#[tokio::test]
async fn every_sdk_reads_the_same_view() {
    let msg = "Subject: x\r\nContent-Type: multipart/mixed; boundary=\"o\"\r\n\r\n\
--o\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
caf=E9\r\n--o\r\nContent-Type: text/html; charset=koi8-r\r\nContent-Transfer-Encoding: base64\r\n\r\n\
8NLJ18XU\r\n--o\r\nContent-Type: application/octet-stream\r\n\
Content-Disposition: attachment; filename=\"=?utf-8?q?r=C3=A9sum=C3=A9=2Ebin?=\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nAAEC/w==\r\n--o--\r\n";
    for fixture in ["js-mime", "py-mime", "c-mime"] {
        let (_d, h) = host(&[entry(fixture, &format!("fixtures/{fixture}"), "")]).await;
        let (v, c) = data_post(&h, msg).await;
        assert_eq!(v, Verdict::Declined, "{fixture}");
        assert_eq!(
            header(&c, "X-Mime-Parts"),
            [
                "0:multipart/mixed:-:0, 1:text/plain:-:4, 2:text/html:-:6, 3:application/octet-stream:résumé.bin:4*"
            ],
            "{fixture}"
        );
        assert_eq!(header(&c, "X-Mime-Text"), ["café / Привет"], "{fixture}");
        assert_eq!(header(&c, "X-Mime-Content"), ["0 1 2 255"], "{fixture}");
        if fixture == "c-mime" {
            assert_eq!(
                header(&c, "X-Mime-Part-Headers"),
                ["Content-Type,Content-Disposition,Content-Transfer-Encoding"]
            );
        }
        // Hostile: a clear error, in each language's own shape.
        let (_, c) = data_post(&h, &deep(40)).await;
        assert_eq!(
            header(&c, "X-Mime-Error"),
            ["too-complex the message nests MIME parts deeper than 32"],
            "{fixture}"
        );
    }
}

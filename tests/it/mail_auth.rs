//! Issue 16: mail authentication as plugins, through the real binary with
//! `[dns]` pointing at the test's DNS server, checked against independent
//! implementations in the venv `target/venv-tests` (xtask/src/pytools.rs):
//! `pyspf` (SPF), `dkimpy` (DKIM, with PyNaCl for ed25519) and
//! `authheaders` (DMARC). The Python side asks the same DNS server
//! (dnspython pointed at 127.0.0.1:port, never the system resolver).
//!
//! Client addresses other than 127.0.0.1 come from a PROXY v1 header
//! (the listener trusts 127.0.0.1), so SPF sees 192.0.2.x and 2001:db8::x.

use crate::common;
use crate::dns_support;
use crate::plugin_support;

use std::io::Write as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Gateway, Smtp};
use dns_support::{DnsServer, Zone};

const TOOL: &str = r#"
import sys, json, base64
import dns.resolver, dns.exception
port = int(sys.argv[1]); mode = sys.argv[2]; args = sys.argv[3:]
res = dns.resolver.Resolver(configure=False)
res.nameservers = ["127.0.0.1"]; res.port = port; res.lifetime = 5

def txt(name, timeout=5):
    if isinstance(name, bytes):
        name = name.decode()
    try:
        a = res.resolve(name, "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return None
    return b"".join(a[0].strings)

import spf
def spf_lookup(name, qtype, tcpfallback=True, timeout=30):
    out = []
    try:
        answers = res.resolve(name, qtype, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        return out
    except (dns.exception.Timeout, dns.resolver.NoNameservers) as x:
        raise spf.TempError("DNS " + str(x))
    for r in answers:
        if qtype in ("A", "AAAA"):
            out.append(((name, qtype), r.address))
        elif qtype == "MX":
            out.append(((name, qtype), (r.preference, r.exchange)))
        elif qtype == "PTR":
            out.append(((name, qtype), r.target.to_text(True)))
        elif qtype in ("TXT", "SPF"):
            out.append(((name, qtype), r.strings))
    return out
spf.DNSLookup = spf_lookup

import dkim
if mode == "spf":
    cases = json.load(sys.stdin)
    print(json.dumps([spf.check2(i=ip, s=s, h=h)[0] for ip, s, h in cases]))
elif mode == "sign":
    alg, canon, key, domain, selector, path = args
    msg = open(path, "rb").read()
    c = canon.encode().split(b"/")
    if alg == "ed25519":
        sig = dkim.sign(msg, selector.encode(), domain.encode(), open(key, "rb").read().strip(),
                        canonicalize=(c[0], c[1]), signature_algorithm=b"ed25519-sha256",
                        include_headers=[b"From", b"To", b"Subject", b"Date"])
    else:
        sig = dkim.sign(msg, selector.encode(), domain.encode(), open(key, "rb").read(),
                        canonicalize=(c[0], c[1]), include_headers=[b"From", b"To", b"Subject", b"Date"])
    sys.stdout.buffer.write(sig + msg)
elif mode == "verify":
    msg = open(args[0], "rb").read()
    d = dkim.DKIM(msg)
    n = sum(1 for k, v in d.headers if k.lower() == b"dkim-signature")
    def ok(i):
        try:
            return bool(d.verify(idx=i, dnsfunc=txt))
        except dkim.DKIMException:
            return False
    print(json.dumps([ok(i) for i in range(n)]))
elif mode == "auth":
    import authheaders
    path, ip, mail_from, helo = args
    msg = open(path, "rb").read()
    # dkimpy wants bytes, authheaders' DMARC lookup a str.
    def txt_for(name, timeout=5):
        r = txt(name, timeout)
        shown = name.decode() if isinstance(name, bytes) else name
        return r.decode() if r is not None and shown.startswith("_dmarc.") else r
    print(authheaders.authenticate_message(msg, "py.test", spf=True, ip=ip, mail_from=mail_from,
                                           helo=helo, dnsfunc=txt_for))
"#;

use crate::common::{run_ok as run, venv_python as python};

/// Runs the Python tool against the DNS server on `port`.
fn tool(dir: &Path, port: u16, args: &[&str], stdin: Option<&str>) -> String {
    let script = dir.join("auth_tool.py");
    if !script.exists() {
        std::fs::write(&script, TOOL).unwrap();
    }
    let mut cmd = Command::new(python());
    cmd.arg(&script).arg(port.to_string()).args(args);
    let out = match stdin {
        Some(input) => {
            let mut child = cmd
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{cmd:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        }
        None => run(&mut cmd),
    };
    String::from_utf8(out).unwrap()
}

fn b64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// The test's key pairs, made with `openssl`.
struct Keys {
    /// RSA 2048, PKCS#8 PEM (the plugin's format).
    rsa_pkcs8: String,
    /// The same key, PKCS#1 PEM file (dkimpy's format).
    rsa_pkcs1: PathBuf,
    /// `p=` of the RSA key record.
    rsa_pub: String,
    /// Ed25519, PKCS#8 PEM.
    ed_pkcs8: String,
    /// The raw Ed25519 seed, base64, in a file (dkimpy's format).
    ed_raw: PathBuf,
    /// `p=` of the Ed25519 key record (the raw 32-byte key, RFC 8463).
    ed_pub: String,
}

fn keys(d: &Path) -> Keys {
    let rsa8 = d.join("rsa8.pem");
    run(Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&rsa8));
    let rsa1 = d.join("rsa1.pem");
    run(Command::new("openssl")
        .args(["rsa", "-traditional", "-in"])
        .arg(&rsa8)
        .arg("-out")
        .arg(&rsa1));
    let rsa_der = run(Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(&rsa8));
    let ed8 = d.join("ed8.pem");
    run(Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&ed8));
    let ed_pub_der = run(Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(&ed8));
    let ed_priv_der = run(Command::new("openssl")
        .args(["pkey", "-outform", "DER", "-in"])
        .arg(&ed8));
    let ed_raw = d.join("ed.raw");
    std::fs::write(&ed_raw, b64(&ed_priv_der[ed_priv_der.len() - 32..])).unwrap();
    Keys {
        rsa_pkcs8: std::fs::read_to_string(&rsa8).unwrap(),
        rsa_pkcs1: rsa1,
        rsa_pub: b64(&rsa_der),
        ed_pkcs8: std::fs::read_to_string(&ed8).unwrap(),
        ed_raw,
        ed_pub: b64(&ed_pub_der[ed_pub_der.len() - 32..]),
    }
}

/// A TXT record split into character-strings of at most 200 octets.
fn long_txt(zone: Zone, owner: &str, text: &str) -> Zone {
    let parts: Vec<&str> = text
        .as_bytes()
        .chunks(200)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    zone.txt(owner, &parts)
}

/// The zone of the end-to-end tests: example.org (p=reject) and
/// example.net (p=quarantine), both authorising 192.0.2.10, with an RSA
/// (`rsa`) and an Ed25519 (`ed`) key each; other.test has no SPF record.
fn auth_zone(k: &Keys) -> Zone {
    let mut z = Zone::new();
    for domain in ["example.org", "example.net"] {
        z = z.txt(domain, &["v=spf1 ip4:192.0.2.10 -all"]);
        z = long_txt(
            z,
            &format!("rsa._domainkey.{domain}"),
            &format!("v=DKIM1; k=rsa; p={}", k.rsa_pub),
        );
        z = z.txt(
            &format!("ed._domainkey.{domain}"),
            &[&format!("v=DKIM1; k=ed25519; p={}", k.ed_pub)],
        );
    }
    z.txt("_dmarc.example.org", &["v=DMARC1; p=reject"])
        .txt("_dmarc.example.net", &["v=DMARC1; p=quarantine"])
        .a("other.test", "192.0.2.200")
        .servfail("broken._domainkey.example.net")
}

fn plugin_host() -> String {
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/wasmtp-test-cache");
    format!(
        "[plugin_host]\ncache_dir = {:?}\nmax_connections = 32\n\n",
        cache.display().to_string()
    )
}

/// A gateway with a PROXY-protocol listener trusting 127.0.0.1, the test
/// DNS server, user alice, and `plugins` (TOML `[[plugins]]` entries).
fn gateway(dns: &DnsServer, plugins: &str) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[server]\nhostname = \"mx.test\"\nshutdown_grace = \"30s\"\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\nmode = \"smtp\"\nproxy_protocol = true\n\
         proxy_trusted = [\"127.0.0.1/32\"]\n\n{}{}\n{}\n{}{}{plugins}",
        common::delivery_section(dir.path()),
        common::LOCAL,
        common::alice_auth(true),
        dns.config(""),
        plugin_host(),
    );
    Gateway::start_text(dir, &text, 1)
}

fn mail_auth_entry(extra: &str) -> String {
    format!(
        "[[plugins]]\nname = \"mail-auth\"\npath = {:?}\ndns = true\n\
         [plugins.config]\nauthserv_id = \"mx.test\"\n{extra}\n\n",
        plugin_support::wasm("mail-auth").display().to_string()
    )
}

fn dkim_sign_entry(k: &Keys) -> String {
    format!(
        "[[plugins]]\nname = \"dkim-sign\"\npath = {:?}\ncpu_ms = 2000\n\
         [plugins.config]\n\
         [[plugins.config.keys]]\ndomain = \"example.org\"\nselector = \"rsa\"\nprivate_key = {:?}\n\
         [[plugins.config.keys]]\ndomain = \"example.net\"\nselector = \"ed\"\nprivate_key = {:?}\n\n",
        plugin_support::wasm("dkim-sign").display().to_string(),
        k.rsa_pkcs8,
        k.ed_pkcs8,
    )
}

/// Connects as client `ip` (PROXY v1) and reads the greeting.
fn connect_as(gw: &Gateway, ip: &str) -> Smtp {
    let mut tcp = TcpStream::connect(gw.smtp()).unwrap();
    tcp.set_read_timeout(Some(common::IO_GUARD)).unwrap();
    let header = if ip.contains(':') {
        format!("PROXY TCP6 {ip} ::1 40000 25\r\n")
    } else {
        format!("PROXY TCP4 {ip} 127.0.0.1 40000 25\r\n")
    };
    tcp.write_all(header.as_bytes()).unwrap();
    Smtp::from_stream(tcp)
}

/// One transaction from `ip`: EHLO `helo`, MAIL, RCPT user@example.test,
/// DATA `msg`. Returns the MAIL reply if refused, else the final reply.
fn send(gw: &Gateway, ip: &str, helo: &str, from: &str, msg: &[u8]) -> common::Reply {
    let mut s = connect_as(gw, ip);
    s.expect(&format!("EHLO {helo}"), 250);
    let r = s.cmd(&format!("MAIL FROM:<{from}>"));
    if r.code != 250 {
        return r;
    }
    s.expect("RCPT TO:<user@example.test>", 250);
    s.expect("DATA", 354);
    s.send(msg);
    s.send(b".\r\n");
    s.reply()
}

/// A message with a unique Subject, `body_lines` lines of body.
fn message(from: &str, subject: &str, body_lines: usize) -> Vec<u8> {
    let mut m = format!(
        "From: Alice <{from}>\r\nTo: user@example.test\r\nSubject: {subject}\r\n\
         \tfolded part\r\nDate: Thu, 03 Dec 2026 12:00:00 +0000\r\n\
         Message-ID: <{subject}@example.org>\r\n\r\n"
    )
    .into_bytes();
    for i in 0..body_lines {
        m.extend_from_slice(format!("line {i} of the body, some text to sign.\r\n").as_bytes());
    }
    m
}

/// The delivered message whose Subject starts with `subject`.
fn delivered(gw: &Gateway, subject: &str) -> Vec<u8> {
    let needle = format!("Subject: {subject}\r\n");
    gw.delivered()
        .into_iter()
        .find(|m| m.windows(needle.len()).any(|w| w == needle.as_bytes()))
        .unwrap_or_else(|| panic!("no delivered message {subject}"))
}

/// Unfolded values of every header field `name` of a message.
fn fields(msg: &[u8], name: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(msg);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", "\t");
    let prefix = format!("{}:", name.to_ascii_lowercase());
    unfolded
        .split("\r\n")
        .filter(|l| l.to_ascii_lowercase().starts_with(&prefix))
        .map(|l| l[prefix.len()..].trim().to_string())
        .collect()
}

/// The method's result word (`pass`) in an Authentication-Results value.
fn ar_result(ar: &str, method: &str) -> Vec<String> {
    ar.split(';')
        .filter_map(|r| r.trim().strip_prefix(&format!("{method}=")))
        .map(|r| r.split_whitespace().next().unwrap_or_default().to_string())
        .collect()
}

/// Signs `msg` with dkimpy.
fn dkimpy_sign(
    d: &Path,
    port: u16,
    k: &Keys,
    alg: &str,
    canon: &str,
    domain: &str,
    msg: &[u8],
) -> Vec<u8> {
    let path = d.join("to-sign.eml");
    std::fs::write(&path, msg).unwrap();
    let (key, selector) = match alg {
        "ed25519" => (&k.ed_raw, "ed"),
        _ => (&k.rsa_pkcs1, "rsa"),
    };
    let out = Command::new(python())
        .arg(d.join("auth_tool.py"))
        .arg(port.to_string())
        .args(["sign", alg, canon])
        .arg(key)
        .args([domain, selector])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// dkimpy's verdict on every signature of `msg`.
fn dkimpy_verify(d: &Path, port: u16, msg: &[u8]) -> Vec<bool> {
    let path = d.join("to-verify.eml");
    std::fs::write(&path, msg).unwrap();
    let out = tool(d, port, &["verify", path.to_str().unwrap()], None);
    serde_json::from_str(out.trim()).unwrap()
}

#[test]
fn spf_dkim_dmarc_end_to_end() {
    plugin_support::plugins_built();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let k = keys(d);
    let dns = DnsServer::start(auth_zone(&k));
    let port = dns.addr().port();
    std::fs::write(d.join("auth_tool.py"), TOOL).unwrap();
    let gw = gateway(
        &dns,
        &format!(
            "{}{}",
            mail_auth_entry("spf_refuse = [\"fail\"]"),
            dkim_sign_entry(&k)
        ),
    );

    // 1. Authorised IP, valid aligned signature: all pass. A forged A-R with
    // our authserv-id is removed, another server's is kept.
    let mut msg = b"Authentication-Results: mx.test; dkim=pass header.d=evil.test\r\n\
        Authentication-Results: other.example; spf=fail\r\n"
        .to_vec();
    msg.extend(message("alice@example.org", "good", 20));
    let signed = dkimpy_sign(d, port, &k, "rsa", "relaxed/relaxed", "example.org", &msg);
    let r = send(
        &gw,
        "192.0.2.10",
        "mail.example.org",
        "alice@example.org",
        &signed,
    );
    assert_eq!(r.code, 250, "{}", r.text);
    let m = delivered(&gw, "good");
    let ars = fields(&m, "Authentication-Results");
    assert_eq!(ars.len(), 2, "{ars:?}");
    let ours = ars.iter().find(|a| a.starts_with("mx.test;")).unwrap();
    assert!(
        ars.iter().any(|a| a.starts_with("other.example;")),
        "{ars:?}"
    );
    assert_eq!(ar_result(ours, "spf"), ["pass"], "{ours}");
    assert_eq!(ar_result(ours, "dkim"), ["pass"], "{ours}");
    assert_eq!(ar_result(ours, "dmarc"), ["pass"], "{ours}");
    assert!(ours.contains("header.d=example.org"), "{ours}");
    assert!(ours.contains("smtp.mailfrom=alice@example.org"), "{ours}");
    assert!(!ours.contains("evil.test"), "{ours}");
    let spf = fields(&m, "Received-SPF");
    assert_eq!(spf.len(), 1, "{spf:?}");
    assert!(spf[0].starts_with("pass ("), "{}", spf[0]);
    for want in [
        "client-ip=192.0.2.10;",
        "envelope-from=\"alice@example.org\";",
        "helo=mail.example.org;",
    ] {
        assert!(spf[0].contains(want), "{want} in {}", spf[0]);
    }
    // authheaders (pyspf + dkimpy + its DMARC) agrees on the delivered copy.
    let path = d.join("good.eml");
    std::fs::write(&path, &m).unwrap();
    let py = tool(
        d,
        port,
        &[
            "auth",
            path.to_str().unwrap(),
            "192.0.2.10",
            "alice@example.org",
            "mail.example.org",
        ],
        None,
    );
    for method in ["spf", "dkim", "dmarc"] {
        assert_eq!(ar_result(&py, method), ["pass"], "authheaders: {py}");
    }

    // 2. SPF fail: refused at MAIL with 5.7.23 (spf_refuse = ["fail"]).
    let r = send(&gw, "192.0.2.99", "x.test", "alice@example.org", b"");
    assert_eq!(r.code, 550, "{}", r.text);
    assert!(
        r.text.contains("5.7.23") && r.text.contains("SPF fail"),
        "{}",
        r.text
    );

    // 3. p=reject, unaligned SPF (other.test: none) and a broken signature:
    // DMARC fail, refused with 5.7.1.
    let signed = dkimpy_sign(
        d,
        port,
        &k,
        "rsa",
        "relaxed/relaxed",
        "example.org",
        &message("alice@example.org", "forged", 5),
    );
    let mut forged = signed.clone();
    let n = forged.len();
    forged[n - 4] = b'X'; // one body byte
    let r = send(&gw, "192.0.2.99", "x.test", "bounce@other.test", &forged);
    assert_eq!(r.code, 550, "{}", r.text);
    assert!(
        r.text.contains("5.7.1") && r.text.contains("DMARC"),
        "{}",
        r.text
    );

    // 4. p=quarantine, unsigned: delivered with the quarantine tag.
    let r = send(
        &gw,
        "192.0.2.99",
        "x.test",
        "bounce@other.test",
        &message("bob@example.net", "quarantined", 5),
    );
    assert_eq!(r.code, 250, "{}", r.text);
    let m = delivered(&gw, "quarantined");
    let ours = &fields(&m, "Authentication-Results")[0];
    assert_eq!(ar_result(ours, "spf"), ["none"], "{ours}");
    assert_eq!(ar_result(ours, "dkim"), ["none"], "{ours}");
    assert_eq!(ar_result(ours, "dmarc"), ["fail"], "{ours}");
    assert_eq!(
        fields(&m, "X-Quarantine"),
        ["dmarc=fail header.from=example.net"]
    );
    let path = d.join("quarantined.eml");
    std::fs::write(&path, &m).unwrap();
    let py = tool(
        d,
        port,
        &[
            "auth",
            path.to_str().unwrap(),
            "192.0.2.99",
            "bounce@other.test",
            "x.test",
        ],
        None,
    );
    assert_eq!(ar_result(&py, "dmarc"), ["fail"], "authheaders: {py}");
    assert!(py.contains("policy.dmarc=quarantine"), "authheaders: {py}");

    // 5. Submitted with AUTH: mail-auth stays out, dkim-sign signs (RSA for
    // example.org, Ed25519 for example.net), and dkimpy verifies both,
    // a 4 KiB and a 1 MiB message each.
    for (from, lines) in [
        ("alice@example.org", 60),
        ("alice@example.net", 60),
        ("alice@example.org", 24_000),
        ("alice@example.net", 24_000),
    ] {
        let subject = format!("signed-{}-{lines}", from.replace('@', "-at-"));
        let mut s = connect_as(&gw, "198.51.100.7");
        s.expect("EHLO laptop.example.org", 250);
        s.expect(
            &format!("AUTH PLAIN {}", common::plain_auth("alice", "s3cret")),
            235,
        );
        s.expect(&format!("MAIL FROM:<{from}>"), 250);
        s.expect("RCPT TO:<user@example.test>", 250);
        s.expect("DATA", 354);
        s.send(&message(from, &subject, lines));
        s.send(b".\r\n");
        let r = s.reply();
        assert_eq!(r.code, 250, "{}", r.text);
        let m = delivered(&gw, &subject);
        assert!(m.len() > lines * 30, "{subject}: {} octets", m.len());
        let sigs = fields(&m, "DKIM-Signature");
        assert_eq!(sigs.len(), 1, "{subject}: {sigs:?}");
        let alg = if from.ends_with(".net") {
            "a=ed25519-sha256"
        } else {
            "a=rsa-sha256"
        };
        assert!(
            sigs[0].contains(alg) && sigs[0].contains("c=relaxed/relaxed"),
            "{}",
            sigs[0]
        );
        assert!(fields(&m, "Authentication-Results").is_empty());
        assert_eq!(
            dkimpy_verify(d, port, &m),
            [true],
            "{subject}: dkimpy rejects our signature"
        );
        // And our own verifier accepts it, through the gateway (4 KiB only).
        if lines == 60 {
            let sub2 = format!("re-{subject}");
            let text = String::from_utf8_lossy(&m).replace(&subject, &sub2);
            let (_, rest) = common::split_received(text.as_bytes());
            let r = send(&gw, "192.0.2.99", "x.test", "bounce@other.test", &rest);
            // The Subject is signed: changed, the signature fails (p=quarantine
            // for .net delivers it, p=reject for .org refuses it).
            if from.ends_with(".org") {
                assert_eq!(r.code, 550, "{}", r.text);
            } else {
                assert_eq!(r.code, 250, "{}", r.text);
                let ours = &fields(&delivered(&gw, &sub2), "Authentication-Results")[0];
                assert_eq!(ar_result(ours, "dkim"), ["fail"], "{ours}");
            }
            let r = send(
                &gw,
                "192.0.2.99",
                "x.test",
                "bounce@other.test",
                &common::split_received(&m).1,
            );
            assert_eq!(r.code, 250, "{}", r.text);
        }
    }
}

#[test]
fn dkim_interop_with_dkimpy() {
    plugin_support::plugins_built();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let k = keys(d);
    let dns = DnsServer::start(auth_zone(&k));
    let port = dns.addr().port();
    std::fs::write(d.join("auth_tool.py"), TOOL).unwrap();
    // example.net is p=quarantine: failures are delivered, so every result
    // can be read from the Authentication-Results field.
    let gw = gateway(&dns, &mail_auth_entry(""));
    let mut agree = 0;
    let mut total = 0;
    let mut n = 0;
    for alg in ["rsa", "ed25519"] {
        for canon in [
            "relaxed/relaxed",
            "simple/simple",
            "relaxed/simple",
            "simple/relaxed",
        ] {
            let sizes: &[usize] = if canon == "relaxed/relaxed" {
                &[60, 24_000]
            } else {
                &[60]
            };
            for &lines in sizes {
                for tamper in [false, true] {
                    n += 1;
                    let subject = format!("interop-{n}");
                    let signed = dkimpy_sign(
                        d,
                        port,
                        &k,
                        alg,
                        canon,
                        "example.net",
                        &message("a@example.net", &subject, lines),
                    );
                    let mut msg = signed.clone();
                    if tamper {
                        let len = msg.len();
                        msg[len - 5] ^= 0x01;
                    }
                    let r = send(&gw, "192.0.2.99", "x.test", "bounce@other.test", &msg);
                    assert_eq!(r.code, 250, "{}", r.text);
                    let m = delivered(&gw, &subject);
                    let ours = &fields(&m, "Authentication-Results")[0];
                    let got = ar_result(ours, "dkim");
                    let py = dkimpy_verify(d, port, &msg);
                    let want = if tamper { "fail" } else { "pass" };
                    assert_eq!(got, [want], "{alg} {canon} {lines} tamper={tamper}: {ours}");
                    assert_eq!(py, [!tamper], "dkimpy {alg} {canon} tamper={tamper}");
                    assert_eq!(
                        ar_result(ours, "dmarc"),
                        [if tamper { "fail" } else { "pass" }],
                        "{ours}"
                    );
                    total += 1;
                    if (got[0] == "pass") == py[0] {
                        agree += 1;
                    }
                }
            }
        }
    }
    eprintln!("dkim interop: {agree}/{total} agree with dkimpy");
    assert_eq!(agree, total);

    // Bad input: a malformed signature, a key lookup SERVFAIL, an l= that
    // leaves content unsigned; each gets its result, never a failure.
    let cases: [(&str, &[u8], &str); 2] = [
        ("bad-sig", b"DKIM-Signature: v=1; a=rsa-sha256; d=example.net; b=!!!; bh=\r\n", "neutral|permerror"),
        (
            "servfail",
            b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.net; s=broken; h=from; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA\r\n",
            "temperror",
        ),
    ];
    for (subject, sig, want) in cases {
        let mut msg = sig.to_vec();
        msg.extend(message("a@example.net", subject, 3));
        let r = send(&gw, "192.0.2.99", "x.test", "bounce@other.test", &msg);
        assert_eq!(r.code, 250, "{}", r.text);
        let ours = &fields(&delivered(&gw, subject), "Authentication-Results")[0];
        let got = ar_result(ours, "dkim");
        assert!(
            got.len() == 1 && want.split('|').any(|w| w == got[0]),
            "{subject}: {ours}"
        );
    }
}

#[test]
fn spf_results_agree_with_pyspf() {
    plugin_support::plugins_built();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let zone = Zone::new()
        .txt("ip4.spf.test", &["v=spf1 ip4:192.0.2.10 ip4:198.51.100.0/24 -all"])
        .txt("inc.spf.test", &["v=spf1 include:ip4.spf.test ~all"])
        .txt("red.spf.test", &["v=spf1 redirect=ip4.spf.test"])
        .txt("a.spf.test", &["v=spf1 a a:host.a.spf.test/24 -all"])
        .a("a.spf.test", "192.0.2.20")
        .a("host.a.spf.test", "203.0.113.1")
        .txt("mx.spf.test", &["v=spf1 mx -all"])
        .mx("mx.spf.test", 10, "mail.mx.spf.test")
        .a("mail.mx.spf.test", "192.0.2.30")
        .txt("ptr.spf.test", &["v=spf1 ptr -all"])
        .ptr("192.0.2.40", "host.ptr.spf.test")
        .a("host.ptr.spf.test", "192.0.2.40")
        .ptr("192.0.2.41", "host.ptr.spf.test")
        .txt("ex.spf.test", &["v=spf1 exists:%{i}._spf.ex.spf.test -all"])
        .a("192.0.2.50._spf.ex.spf.test", "127.0.0.2")
        .txt("lp.spf.test", &["v=spf1 exists:%{l}.users.%{d} -all"])
        .a("alice.users.lp.spf.test", "127.0.0.2")
        .txt("void.spf.test", &["v=spf1 a:nx1.void.spf.test a:nx2.void.spf.test a:nx3.void.spf.test -all"])
        .txt(
            "many.spf.test",
            &["v=spf1 a:h1.spf.test a:h2.spf.test a:h3.spf.test a:h4.spf.test a:h5.spf.test a:h6.spf.test a:h7.spf.test a:h8.spf.test a:h9.spf.test a:h10.spf.test a:h11.spf.test -all"],
        )
        .txt("v6.spf.test", &["v=spf1 ip6:2001:db8::/48 a:host6.spf.test -all"])
        .aaaa("host6.spf.test", "2001:db8:ff::20")
        .txt("neu.spf.test", &["v=spf1 ?all"])
        .txt("bad.spf.test", &["v=spf1 ip4:999.1.1.1 -all"])
        .txt("two.spf.test", &["v=spf1 -all"])
        .txt("two.spf.test", &["v=spf1 +all"])
        .txt("helo.spf.test", &["v=spf1 ip4:192.0.2.60 -all"])
        .txt("exp.spf.test", &["v=spf1 -all exp=why.exp.spf.test"])
        .txt("why.exp.spf.test", &["%{i} is not one of %{d}'s servers"])
        .txt("nospf.spf.test", &["just text"])
        .servfail("tmp.spf.test");
    let zone = (1..=11).fold(zone, |z, i| z.a(&format!("h{i}.spf.test"), "203.0.113.9"));
    let dns = DnsServer::start(zone);
    let port = dns.addr().port();
    // Every result but pass refused at MAIL, so the reply tells the result.
    let gw = gateway(
        &dns,
        &mail_auth_entry(
            "spf_refuse = [\"none\", \"neutral\", \"fail\", \"softfail\", \"temperror\", \"permerror\"]",
        ),
    );
    // (client ip, MAIL FROM, HELO, expected)
    let cases: &[(&str, &str, &str, &str)] = &[
        ("192.0.2.10", "a@ip4.spf.test", "c.test", "pass"),
        ("198.51.100.77", "a@ip4.spf.test", "c.test", "pass"),
        ("192.0.2.99", "a@ip4.spf.test", "c.test", "fail"),
        ("192.0.2.10", "a@inc.spf.test", "c.test", "pass"),
        ("192.0.2.99", "a@inc.spf.test", "c.test", "softfail"),
        ("192.0.2.99", "a@red.spf.test", "c.test", "fail"),
        ("198.51.100.1", "a@red.spf.test", "c.test", "pass"),
        ("192.0.2.20", "a@a.spf.test", "c.test", "pass"),
        ("203.0.113.200", "a@a.spf.test", "c.test", "pass"),
        ("192.0.2.21", "a@a.spf.test", "c.test", "fail"),
        ("192.0.2.30", "a@mx.spf.test", "c.test", "pass"),
        ("192.0.2.31", "a@mx.spf.test", "c.test", "fail"),
        ("192.0.2.40", "a@ptr.spf.test", "c.test", "pass"),
        ("192.0.2.41", "a@ptr.spf.test", "c.test", "fail"),
        ("192.0.2.50", "a@ex.spf.test", "c.test", "pass"),
        ("192.0.2.51", "a@ex.spf.test", "c.test", "fail"),
        ("192.0.2.1", "alice@lp.spf.test", "c.test", "pass"),
        ("192.0.2.1", "bob@lp.spf.test", "c.test", "fail"),
        ("192.0.2.1", "a@void.spf.test", "c.test", "permerror"),
        ("192.0.2.1", "a@many.spf.test", "c.test", "permerror"),
        ("2001:db8::10", "a@v6.spf.test", "c.test", "pass"),
        ("2001:db8:ff::20", "a@v6.spf.test", "c.test", "pass"),
        ("2001:db8:1::10", "a@v6.spf.test", "c.test", "fail"),
        ("192.0.2.10", "a@v6.spf.test", "c.test", "fail"),
        ("2001:db8::10", "a@ip4.spf.test", "c.test", "fail"),
        ("192.0.2.1", "a@neu.spf.test", "c.test", "neutral"),
        ("192.0.2.1", "a@bad.spf.test", "c.test", "permerror"),
        ("192.0.2.1", "a@two.spf.test", "c.test", "permerror"),
        ("192.0.2.1", "a@nospf.spf.test", "c.test", "none"),
        ("192.0.2.1", "a@nx.spf.test", "c.test", "none"),
        ("192.0.2.1", "a@tmp.spf.test", "c.test", "temperror"),
        ("192.0.2.60", "", "helo.spf.test", "pass"),
        ("192.0.2.61", "", "helo.spf.test", "fail"),
        ("192.0.2.1", "a@exp.spf.test", "c.test", "fail"),
    ];
    let input = serde_json::to_string(
        &cases
            .iter()
            .map(|(ip, s, h, _)| [*ip, *s, *h])
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let py: Vec<String> =
        serde_json::from_str(tool(d, port, &["spf"], Some(&input)).trim()).unwrap();
    let mut agree = 0;
    for (i, (ip, sender, helo, want)) in cases.iter().enumerate() {
        let r = send(&gw, ip, helo, sender, b"");
        let got = if r.code == 250 {
            "pass".to_string()
        } else {
            let after = r.text.split("SPF ").nth(1).unwrap_or_default();
            after
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(got, *want, "case {i}: {ip} {sender:?} {helo}: {}", r.text);
        if *sender == "a@exp.spf.test" {
            assert!(
                r.text
                    .contains("192.0.2.1 is not one of exp.spf.test's servers"),
                "{}",
                r.text
            );
            assert!(r.text.contains("5.7.23"), "{}", r.text);
        }
        if *want == "temperror" {
            assert_eq!(r.code, 451, "{}", r.text);
        }
        if got == py[i] {
            agree += 1;
        } else {
            eprintln!("case {i}: ours {got}, pyspf {}", py[i]);
        }
    }
    eprintln!("spf interop: {agree}/{} agree with pyspf", cases.len());
    assert_eq!(agree, cases.len());
}

/// One DMARC case: name, client ip, MAIL FROM, From, DKIM signing domain,
/// the expected result.
type DmarcCase = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static str,
);

/// DMARC results for aligned and unaligned cases, ours against
/// authheaders' on the same delivered copy: relaxed and strict SPF and
/// DKIM alignment, a subdomain under `sp=`, `p=none`, and a domain without
/// a DMARC record. Dispositions are tagged only (`dmarc_reject = "tag"`),
/// so every message is delivered and both verdicts can be read. The
/// domains are under suffixes the Public Suffix List names (`com`, `net`,
/// `org`, `edu`), so both sides find the same organizational domain (for
/// an unlisted TLD such as `.test`, authheaders' list finds none where the
/// PSL's default rule `*` gives one). All lookups go to the test's server.
#[test]
fn dmarc_results_agree_with_authheaders() {
    plugin_support::plugins_built();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let k = keys(d);
    let mut z = Zone::new();
    for domain in [
        "example.com",
        "mail.example.com",
        "example.net",
        "mail.example.net",
        "example.org",
        "example.edu",
    ] {
        z = z.txt(domain, &["v=spf1 ip4:192.0.2.10 -all"]);
    }
    for domain in ["example.com", "example.net"] {
        z = long_txt(
            z,
            &format!("rsa._domainkey.{domain}"),
            &format!("v=DKIM1; k=rsa; p={}", k.rsa_pub),
        );
    }
    let z = z
        .txt("_dmarc.example.com", &["v=DMARC1; p=reject; sp=quarantine"])
        .txt(
            "_dmarc.example.net",
            &["v=DMARC1; p=reject; aspf=s; adkim=s"],
        )
        .txt("_dmarc.example.edu", &["v=DMARC1; p=none"]);
    let dns = DnsServer::start(z);
    let port = dns.addr().port();
    std::fs::write(d.join("auth_tool.py"), TOOL).unwrap();
    let gw = gateway(
        &dns,
        &mail_auth_entry("dmarc_reject = \"tag\"\ndmarc_quarantine = \"tag\""),
    );

    // (name, client ip, MAIL FROM, From, DKIM signing domain, expected)
    let cases: [DmarcCase; 8] = [
        (
            "spf-relaxed",
            "192.0.2.10",
            "b@mail.example.com",
            "a@example.com",
            None,
            "pass",
        ),
        (
            "spf-strict",
            "192.0.2.10",
            "b@mail.example.net",
            "a@example.net",
            None,
            "fail",
        ),
        (
            "spf-exact-strict",
            "192.0.2.10",
            "b@example.net",
            "a@example.net",
            None,
            "pass",
        ),
        (
            "dkim-relaxed",
            "192.0.2.99",
            "b@other.test",
            "a@sub.example.com",
            Some("example.com"),
            "pass",
        ),
        (
            "dkim-strict",
            "192.0.2.99",
            "b@other.test",
            "a@sub.example.net",
            Some("example.net"),
            "fail",
        ),
        (
            "sub-unaligned",
            "192.0.2.99",
            "b@other.test",
            "a@sub.example.com",
            None,
            "fail",
        ),
        (
            "monitor",
            "192.0.2.99",
            "b@other.test",
            "a@example.edu",
            None,
            "fail",
        ),
        (
            "no-record",
            "192.0.2.99",
            "b@other.test",
            "a@example.org",
            None,
            "none",
        ),
    ];
    let mut agree = 0;
    for (name, ip, mail_from, from, signer, expected) in cases {
        let msg = message(from, name, 5);
        let msg = match signer {
            Some(domain) => dkimpy_sign(d, port, &k, "rsa", "relaxed/relaxed", domain, &msg),
            None => msg,
        };
        let r = send(&gw, ip, "client.test", mail_from, &msg);
        assert_eq!(r.code, 250, "{name}: {}", r.text);
        let m = delivered(&gw, name);
        let ours = fields(&m, "Authentication-Results")
            .into_iter()
            .find(|a| a.starts_with("mx.test;"))
            .unwrap_or_else(|| panic!("{name}: no Authentication-Results"));
        let path = d.join(format!("{name}.eml"));
        std::fs::write(&path, &m).unwrap();
        let py = tool(
            d,
            port,
            &["auth", path.to_str().unwrap(), ip, mail_from, "client.test"],
            None,
        );
        assert_eq!(ar_result(&ours, "dmarc"), [expected], "{name}: {ours}");
        assert_eq!(
            ar_result(&py, "dmarc"),
            ar_result(&ours, "dmarc"),
            "{name}: authheaders {py} vs ours {ours}"
        );
        agree += 1;
    }
    eprintln!(
        "dmarc interop: {agree}/{} agree with authheaders",
        cases.len()
    );
}

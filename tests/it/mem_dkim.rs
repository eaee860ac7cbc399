//! Issue 14 item 10 with a real DKIM verifier: a message signed with
//! `simple/simple` canonicalization (any octet changed in a signed field
//! breaks it) passes through the gateway while header-stamp adds its
//! fields, and Python's `dkimpy` still verifies the delivered copy.
//!
//! dkimpy lives in the venv `target/venv-tests` that `cargo xtask test`
//! installs (xtask/src/pytools.rs); the key pair comes from `openssl`.
//! The public key is handed to dkimpy's verifier directly: no DNS.
//! (dkimpy refuses `Name :` spacing, so that case is in `mem_limits.rs`.)

use crate::common;
use crate::plugin_support;

use std::path::Path;
use std::process::Command;

use common::{Gateway, LOCAL, split_received};

const SCRIPT: &str = r#"
import sys, dkim
mode, key, path = sys.argv[1], sys.argv[2], sys.argv[3]
msg = open(path, "rb").read()
if mode == "sign":
    sig = dkim.sign(msg, b"sel", b"example.test", open(key, "rb").read(),
                    canonicalize=(b"simple", b"simple"),
                    include_headers=[b"From", b"To", b"Subject", b"Date", b"X-Folded"])
    sys.stdout.buffer.write(sig + msg)
else:
    pub = open(key).read().strip()
    def dns(name, timeout=5):
        return ("v=DKIM1; k=rsa; p=" + pub).encode()
    ok = dkim.verify(msg, dnsfunc=dns)
    print("dkim verify:", ok)
    sys.exit(0 if ok else 1)
"#;

use crate::common::{run_ok as run, venv_python as python};

#[test]
fn dkim_signature_survives_header_stamp() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = d.join("key.pem");
    run(Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(&key)
        .arg("2048"));
    let der = run(Command::new("openssl")
        .args(["rsa", "-pubout", "-outform", "DER", "-in"])
        .arg(&key));
    let pubkey = d.join("pub.b64");
    std::fs::write(&pubkey, base64_encode(&der)).unwrap();
    let script = d.join("dkim_tool.py");
    std::fs::write(&script, SCRIPT).unwrap();

    let unsigned = b"From: Alice <alice@example.test>\r\n\
        To: user@example.test\r\n\
        Subject:  two  spaces,\ttab and a fold\r\n\t continued   \r\n\
        Date: Wed, 02 Dec 2026 12:00:00 +0000\r\n\
        X-Folded: a\r\n  b\r\n\tc\r\n\
        \r\n\
        Hello,\r\n\r\nsigned body.\r\n";
    let unsigned_path = d.join("unsigned.eml");
    std::fs::write(&unsigned_path, unsigned).unwrap();
    let signed = run(Command::new(python())
        .arg(&script)
        .arg("sign")
        .arg(&key)
        .arg(&unsigned_path));
    let signed_path = d.join("signed.eml");
    std::fs::write(&signed_path, &signed).unwrap();
    // The signature verifies before the gateway, as a control.
    run(Command::new(python())
        .arg(&script)
        .arg("verify")
        .arg(&pubkey)
        .arg(&signed_path));

    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/wasmtp-test-cache");
    let config = format!(
        "{LOCAL}\n[plugin_host]\ncache_dir = {:?}\n\n\
         [[plugins]]\nname = \"header-stamp\"\npath = {:?}\n\
         [plugins.config]\nstatic = {{ X-Stamped = 'yes', Subject-Copy = 'no' }}\n",
        cache.display().to_string(),
        plugin_support::wasm("header-stamp").display().to_string()
    );
    let gw = Gateway::start(&config);
    let mut c = gw.connect();
    let r = c.send_mail("alice@example.test", &["user@example.test"], &signed);
    assert_eq!(r.code, 250, "{}", r.text);
    let delivered = gw.delivered().remove(0);
    let (_, rest) = split_received(&delivered);
    let text = String::from_utf8_lossy(&rest).into_owned();
    assert!(text.contains("X-Stamped: yes\r\n"), "{text}");
    let delivered_path = d.join("delivered.eml");
    std::fs::write(&delivered_path, &delivered).unwrap();
    let out = run(Command::new(python())
        .arg(&script)
        .arg("verify")
        .arg(&pubkey)
        .arg(&delivered_path));
    assert!(String::from_utf8_lossy(&out).contains("dkim verify: True"));
}

fn base64_encode(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

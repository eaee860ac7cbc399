//! The command line of the real binary: check-config and hash-password.

use crate::common;

use std::process::Command;

fn check(text: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wasmtp"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn shipped_config_is_valid() {
    let out = Command::new(env!("CARGO_BIN_EXE_wasmtp"))
        .args(["check-config", "--config", "config/gateway.toml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}

#[test]
fn minimal_config_is_valid() {
    let (ok, stdout, stderr) = check("[relay]\nlocal_domains = [\"example.test\"]\n");
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), "ok");
}

#[test]
fn errors_name_key_and_line_column() {
    let cases: &[(&str, &str)] = &[
        (
            "[server]\nhostname = \"mx\"\nhostnme = \"x\"\n",
            ":3:1: key `server.hostnme`: unknown field",
        ),
        (
            "[limits]\nmax_recipients = 50\n",
            ":2:18: key `limits.max_recipients`: 50 is below the RFC 5321 minimum of 100",
        ),
        (
            "[relay]\nrelay_networks = [\"10.0.0.0/8\", \"300.1.2.3/8\"]\n",
            ":2:18: key `relay.relay_networks`: invalid network \"300.1.2.3/8\"",
        ),
        (
            "[[listeners]]\naddress = \"127.0.0.1:2525\"\n[[listeners]]\naddress = \"127.0.0.1:2525\"\n",
            ":4:11: key `listeners[1].address`: duplicate listener",
        ),
        (
            "[tls]\ncert = \"/nonexistent/c.pem\"\nkey = \"/nonexistent/k.pem\"\n",
            ":2:8: key `tls.cert`: cannot read certificate /nonexistent/c.pem",
        ),
        (
            "[[auth.users]]\nusername = \"a\"\npassword_hash = \"plain\"\n",
            ":3:17: key `auth.users[0].password_hash`: invalid argon2 PHC hash",
        ),
        (
            "[timeouts]\ncommand = \"soon\"\n",
            ":2:11: key `timeouts.command`: invalid duration",
        ),
    ];
    for (text, expected) in cases {
        let (ok, _, stderr) = check(text);
        assert!(!ok, "accepted: {text}");
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in {stderr:?}"
        );
        assert!(stderr.contains("gw.toml:"), "{stderr}");
    }
}

#[test]
fn hash_password_makes_a_usable_hash() {
    let hash = common::hash_password("correct horse");
    assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
    let (ok, _, stderr) = check(&format!(
        "[[auth.users]]\nusername = \"alice\"\npassword_hash = \"{hash}\"\n"
    ));
    assert!(ok, "{stderr}");
}

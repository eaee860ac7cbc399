//! The command line of the real binary: check-config (which loads every
//! plugin), relative paths in a config, and hash-password.

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
    // check-config loads its plugins: build them if missing.
    crate::plugin_support::plugin_path("helo-check");
    let root = env!("CARGO_MANIFEST_DIR");
    // From the repository root (as `cargo xtask run` starts it) and from
    // elsewhere: its paths are relative to config/.
    for (config, cwd) in [
        ("config/gateway.toml".to_string(), root.to_string()),
        (format!("{root}/config/gateway.toml"), "/".to_string()),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_wasmtp"))
            .args(["check-config", "--config", &config])
            .current_dir(&cwd)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    }
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

/// `check-config` on `text` written to `dir/gw.toml`, run from `cwd`.
fn check_in(dir: &std::path::Path, text: &str, cwd: &std::path::Path) -> (bool, String, String) {
    let path = dir.join("gw.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wasmtp"))
        .args(["check-config", "--config"])
        .arg(&path)
        .current_dir(cwd)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `[plugin_host]` with the shared compile cache, then `entries`.
fn with_plugins(entries: &str) -> String {
    format!(
        "{}\n[plugin_host]\ncache_dir = {:?}\n\n{entries}",
        common::LOCAL,
        crate::plugin_support::root().join("target/wasmtp-cache")
    )
}

fn allowlist_entry(name: &str, path: &std::path::Path, config: &str) -> String {
    format!("[[plugins]]\nname = {name:?}\npath = {path:?}\n[plugins.config]\n{config}\n\n")
}

#[test]
fn check_config_loads_every_plugin_and_names_each_failure() {
    let allowlist = crate::plugin_support::plugin_path("rcpt-allowlist");
    let junk = crate::plugin_support::plugin_path("fixtures/not-a-plugin");
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.wasm");
    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"not wasm at all").unwrap();
    let text = with_plugins(
        &[
            allowlist_entry("good", &allowlist, "domains = [\"example.test\"]"),
            allowlist_entry("ghost", &missing, ""),
            allowlist_entry("junk", &junk, ""),
            allowlist_entry("garbage", &garbage, ""),
            allowlist_entry("picky", &allowlist, "on_match = \"ok\""),
        ]
        .concat(),
    );
    let (ok, stdout, stderr) = check_in(dir.path(), &text, dir.path());
    assert!(!ok, "accepted:\n{stdout}{stderr}");
    assert!(!stdout.contains("ok"), "{stdout}");
    let line = |name: &str| {
        stderr
            .lines()
            .find(|l| l.contains(&format!("plugin {name:?}")))
            .unwrap_or_else(|| panic!("no line for {name}:\n{stderr}"))
            .to_string()
    };
    let ghost = line("ghost");
    assert!(ghost.contains(&missing.display().to_string()), "{ghost}");
    assert!(ghost.contains("cannot read the component"), "{ghost}");
    // A component, but not a plugin.
    assert!(
        line("junk").contains("does not export the wasmtp:plugin/hooks interface"),
        "{stderr}"
    );
    assert!(
        line("garbage").contains("not a valid component"),
        "{stderr}"
    );
    let picky = line("picky");
    assert!(picky.contains("init refused"), "{picky}");
    assert!(
        picky.contains("rcpt-allowlist needs `domains` or `addresses`"),
        "{picky}"
    );
    assert!(!stderr.contains("plugin \"good\""), "{stderr}");
    assert_eq!(stderr.lines().count(), 4, "{stderr}");
}

#[test]
fn check_config_says_ok_for_a_loadable_chain() {
    let allowlist = crate::plugin_support::plugin_path("rcpt-allowlist");
    let dir = tempfile::tempdir().unwrap();
    let text = with_plugins(&allowlist_entry(
        "good",
        &allowlist,
        "domains = [\"example.test\"]",
    ));
    let (ok, stdout, stderr) = check_in(dir.path(), &text, dir.path());
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), "ok");
}

#[test]
fn relative_plugin_paths_are_relative_to_the_config_file() {
    let allowlist = crate::plugin_support::plugin_path("rcpt-allowlist");
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf");
    std::fs::create_dir_all(conf.join("plugins")).unwrap();
    std::fs::copy(&allowlist, conf.join("plugins/allow.wasm")).unwrap();
    let text = with_plugins(
        "[[plugins]]\nname = \"allow\"\npath = \"plugins/allow.wasm\"\n\
         [plugins.config]\ndomains = [\"example.test\"]\n",
    );
    // Started from another directory: the path still resolves.
    let elsewhere = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = check_in(&conf, &text, elsewhere.path());
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), "ok");
    // And `run` loads it too, from that other directory.
    let config = wasmtp::config::Config::load(&conf.join("gw.toml")).unwrap();
    assert_eq!(config.plugins[0].path, conf.join("plugins/allow.wasm"));
    assert_eq!(config.delivery.maildir, conf.join("var/maildir"));
}

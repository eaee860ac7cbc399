//! The systemd service: `wasmtp run` under a `NOTIFY_SOCKET` the test
//! creates sends `READY=1` once it serves (listeners bound, plugin chain
//! loaded), `RELOADING=1`/`READY=1` around SIGHUP and `STOPPING=1` on
//! SIGTERM; and `dist/wasmtp.service` is a valid unit with the keys a
//! deployment relies on.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::{self, Gateway, LOCAL, Smtp};
use crate::plugin_support;

/// The next notification (hang guard: the gateway's start may compile a
/// plugin).
fn next(rx: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = rx.recv(&mut buf).expect("a notification before the guard");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn ready_reload_and_stopping_are_notified() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("notify.sock");
    let rx = UnixDatagram::bind(&socket).unwrap();
    rx.set_read_timeout(Some(common::START_GUARD)).unwrap();
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/wasmtp-test-cache");
    let extra = format!(
        "{LOCAL}[plugin_host]\ncache_dir = {:?}\nmax_connections = 16\n\n\
[[plugins]]\nname = \"header-stamp\"\npath = {:?}\n",
        cache.display().to_string(),
        plugin_support::wasm("header-stamp").display().to_string(),
    );
    let text = common::test_config(dir.path(), &["smtp", "submission"], &extra);
    let mut gw = Gateway::start_text_env(dir, &text, 2, &[("NOTIFY_SOCKET", socket.as_os_str())]);

    assert_eq!(next(&rx), "READY=1");
    // ready means serving: every listener answers at once
    for (_, addr) in &gw.listeners {
        let mut s = Smtp::connect(*addr);
        assert_eq!(s.greeting.code, 220, "{}", s.greeting.text);
        s.expect("QUIT", 221);
    }
    let log = gw.log_text();
    assert!(log.contains("\"message\":\"listening\""), "{log}");

    gw.signal("HUP");
    assert_eq!(next(&rx), "RELOADING=1");
    assert_eq!(next(&rx), "READY=1");
    gw.wait_log("plugin chain reloaded");

    gw.signal("TERM");
    assert_eq!(next(&rx), "STOPPING=1");
    assert!(gw.wait_exit().success());
    // nothing after STOPPING
    rx.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(rx.recv(&mut buf).is_err());
}

#[test]
fn without_notify_socket_nothing_changes() {
    let mut gw = Gateway::start(LOCAL);
    let mut s = gw.connect();
    s.expect("QUIT", 221);
    gw.signal("TERM");
    assert!(gw.wait_exit().success());
    assert!(!gw.log_text().contains("sd_notify"), "{}", gw.log_text());
}

const UNIT: &str = include_str!("../../dist/wasmtp.service");

/// `[Section] Key=value` pairs of the unit (comments and blanks skipped).
fn unit_keys() -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut keys = Vec::new();
    for line in UNIT.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            continue;
        }
        let (k, v) = line.split_once('=').expect("Key=value");
        keys.push((section.clone(), k.to_string(), v.to_string()));
    }
    keys
}

#[test]
fn unit_file_has_the_deployment_keys() {
    let keys = unit_keys();
    let has = |section: &str, key: &str, value: &str| {
        keys.iter()
            .any(|(s, k, v)| s == section && k == key && v == value)
    };
    for (key, value) in [
        ("Type", "notify"),
        (
            "ExecStart",
            "/opt/wasmtp/bin/wasmtp run --config /opt/wasmtp/config/gateway.toml",
        ),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("ProtectHome", "yes"),
        ("StateDirectory", "wasmtp"),
        // the shipped config's ../var is the state directory
        ("BindPaths", "/var/lib/wasmtp:/opt/wasmtp/var"),
        ("AmbientCapabilities", "CAP_NET_BIND_SERVICE"),
        ("User", "wasmtp"),
    ] {
        assert!(
            has("Service", key, value),
            "[Service] {key}={value} missing"
        );
    }
    assert!(has("Install", "WantedBy", "multi-user.target"));
    // wasmtime writes machine code at run time
    assert!(!keys.iter().any(|(_, k, _)| k == "MemoryDenyWriteExecute"));
    // the stop timeout covers the default grace period (30s) and the 30s after it
    assert!(has("Service", "TimeoutStopSec", "75s"));
}

#[test]
fn unit_file_verifies() {
    if !common::have("systemd-analyze") {
        eprintln!("systemd-analyze not installed: only the keys are checked");
        return;
    }
    // verify checks that the commands exist: point them at the built binary
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("wasmtp.service");
    let text = UNIT.replace("/opt/wasmtp/bin/wasmtp", env!("CARGO_BIN_EXE_wasmtp"));
    std::fs::write(&unit, text).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // unknown keys and bad values are only warnings: there must be none
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("wasmtp.service"))
        .collect();
    assert!(complaints.is_empty(), "{stderr}");
}

//! `wasmtp plugin new` and `wasmtp plugin build` from an empty folder
//! outside the repository, for each language: the project builds offline
//! with the toolchains `cargo xtask test` installed (the Rust one sharing
//! `target/plugins-build`, so the SDK's dependencies are not compiled
//! again), passes the dialog it ships in `wasmtp plugin test`, is added to
//! a running gateway's config and swapped in with `wasmtp reload`, and
//! behaves over SMTP as its template says: 550 5.7.1 for the configured
//! recipient, its header in the delivered mail. Then the refusals: a missing toolchain names its
//! install command, `new` into a non-empty folder, a `.wasm` that is not a
//! plugin.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{Gateway, LOCAL};
use crate::plugin_support::root;

fn wasmtp() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wasmtp"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `wasmtp plugin new NAME --lang LANG --dir DIR`, which must succeed.
fn plugin_new(name: &str, lang: &str, dir: &Path) {
    let out = wasmtp()
        .args(["plugin", "new", name, "--lang", lang, "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "plugin new: {}", text(&out));
}

/// `wasmtp plugin build` in `dir`, offline, with the toolchains of
/// `cargo xtask test`; the compiled component goes into the compile
/// cache the gateways of the tests share.
fn plugin_build(dir: &Path) -> Output {
    let root = root();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![root.join("target/venv-plugins/bin")];
    paths.extend(std::env::split_paths(&path));
    wasmtp()
        .args(["plugin", "build", "--cache-dir"])
        .arg(root.join("target/wasmtp-cache"))
        .current_dir(dir)
        .env("PATH", std::env::join_paths(paths).unwrap())
        .env("CARGO_NET_OFFLINE", "true")
        .env("CARGO_TARGET_DIR", root.join("target/plugins-build"))
        .env(
            "WASMTP_COMPONENTIZE_JS",
            root.join("plugins-sdk/js/node_modules/@bytecodealliance/componentize-js"),
        )
        .output()
        .unwrap()
}

/// The component a successful build reports (`built PATH (...)`).
fn built_component(out: &Output) -> PathBuf {
    assert!(out.status.success(), "plugin build: {}", text(out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("built "))
        .unwrap_or_else(|| panic!("no `built` line: {}", text(out)));
    PathBuf::from(line.split(" (").next().unwrap())
}

/// New, build, load in a gateway, SMTP: what every language must do.
fn new_build_and_serve(lang: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let name = format!("kit-{lang}");
    let dir = tmp.path().join(&name);
    plugin_new(&name, lang, &dir);
    let out = plugin_build(&dir);
    let wasm = built_component(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("exports wasmtp:plugin/hooks"), "{stdout}");

    // The dialog the project ships passes in the offline harness.
    let out = wasmtp()
        .args(["plugin", "test"])
        .arg(&wasm)
        .arg("dialogs/basic.dialog")
        .args(["--cache-dir"])
        .arg(root().join("target/wasmtp-cache"))
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "plugin test: {}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 dialogs, ")
            && text(&out).contains(": all passed"),
        "{}",
        text(&out)
    );

    // A running gateway without it: the recipient is accepted.
    let gw_dir = tempfile::tempdir().unwrap();
    let base = format!(
        "{}{LOCAL}\n[plugin_host]\ncache_dir = {:?}\n\n",
        crate::common::test_config(gw_dir.path(), &["smtp"], ""),
        root().join("target/wasmtp-cache"),
    );
    let gw = Gateway::start_text(gw_dir, &base, 1);
    gw.wait_log("control socket open");
    let mut c = gw.connect();
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<alice@example.org>", 250);
    c.expect("RCPT TO:<Blocked@example.test>", 250);
    c.expect("QUIT", 221);

    // Added to its config and swapped in with `wasmtp reload`.
    let with_plugin = format!(
        "{base}[[plugins]]\nname = {name:?}\npath = {:?}\n\
         [plugins.config]\nrefuse = \"blocked@example.test\"\n",
        wasm
    );
    std::fs::write(&gw.config_path, with_plugin).unwrap();
    let (ok, stdout, stderr) = gw.reload_command();
    assert!(ok, "{stderr}\n{}", gw.log_text());
    assert!(
        stdout.contains(&format!("ok: plugin chain reloaded ({name})")),
        "{stdout}"
    );
    let mut c = gw.connect();
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<alice@example.org>", 250);
    let refused = c.cmd("RCPT TO:<Blocked@example.test>");
    assert_eq!(refused.code, 550, "{refused:?}");
    assert!(
        refused.text.starts_with("550 5.7.1 ") && refused.text.contains("refused by"),
        "{refused:?}"
    );
    c.expect("RCPT TO:<bob@example.test>", 250);
    c.expect("DATA", 354);
    c.send(b"From: alice@example.org\r\nSubject: hi\r\n\r\nHello Bob.\r\n.\r\n");
    assert_eq!(c.reply().code, 250);
    c.expect("QUIT", 221);
    let mail = gw.delivered();
    assert_eq!(mail.len(), 1);
    let mail = String::from_utf8_lossy(&mail[0]);
    assert!(
        mail.contains(&format!("\r\nX-Checked-By: {name}\r\n")),
        "{mail}"
    );
}

#[test]
fn rust_project_builds_and_serves() {
    new_build_and_serve("rust");
}

#[test]
fn js_project_builds_and_serves() {
    new_build_and_serve("js");
}

#[test]
fn python_project_builds_and_serves() {
    new_build_and_serve("python");
}

#[test]
fn c_project_builds_and_serves() {
    new_build_and_serve("c");
}

#[test]
fn a_missing_toolchain_names_its_install_command() {
    let tmp = tempfile::tempdir().unwrap();
    for (lang, install) in [
        ("rust", "rustup target add wasm32-wasip2"),
        ("js", "npm install"),
        ("python", "pip install componentize-py==0.25.1"),
        (
            "c",
            "apt-get install clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32",
        ),
    ] {
        let dir = tmp.path().join(lang);
        plugin_new("bare", lang, &dir);
        // Nothing on PATH, no componentize-js given: no toolchain at all.
        let out = wasmtp()
            .args(["plugin", "build"])
            .arg(&dir)
            .env("PATH", tmp.path().join("empty"))
            .env_remove("CARGO")
            .env_remove("WASMTP_COMPONENTIZE_JS")
            .output()
            .unwrap();
        let said = text(&out);
        assert!(!out.status.success(), "{lang}: {said}");
        assert!(
            said.contains("is not installed: run `") && said.contains(install),
            "{lang}: {said}"
        );
    }
}

#[test]
fn new_refuses_a_folder_that_is_not_empty() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("notes.txt"), "mine").unwrap();
    let out = wasmtp()
        .args(["plugin", "new", "p", "--lang", "c", "--dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("is not empty"), "{}", text(&out));
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
}

#[test]
fn build_refuses_a_wasm_that_is_not_a_plugin() {
    let not_plugin = crate::plugin_support::plugin_path("fixtures/not-a-plugin");
    let tmp = tempfile::tempdir().unwrap();
    let garbage = tmp.path().join("garbage.wasm");
    std::fs::write(&garbage, b"\0asm but not really").unwrap();
    for (source, why) in [
        (
            &not_plugin,
            "does not export the wasmtp:plugin/hooks interface",
        ),
        (&garbage, "not a valid component"),
    ] {
        // A project whose "build" copies the file into place.
        let manifest = format!(
            "name = \"copied\"\nlanguage = \"c\"\ncontract = \"wasmtp:plugin@0.1.0\"\n\
             build = [[\"cp\", {:?}, \"out.wasm\"]]\noutput = \"out.wasm\"\n",
            source.display().to_string()
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("wasmtp-plugin.toml"), manifest).unwrap();
        let out = wasmtp()
            .args(["plugin", "build"])
            .arg(dir.path())
            .output()
            .unwrap();
        let said = text(&out);
        assert!(!out.status.success(), "{said}");
        assert!(
            said.contains("is not a plugin this gateway can load") && said.contains(why),
            "{said}"
        );
    }
}

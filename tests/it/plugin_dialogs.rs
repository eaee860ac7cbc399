//! `wasmtp plugin test` and `wasmtp plugin inspect`, the real binary: every
//! example plugin passes its dialogs (`example-plugins/*/*/dialogs/`), a
//! failing step prints FAIL with what was expected and what came and exits
//! 1, a malformed dialog is named by file and line, DNS and key-value
//! fixtures are what a plugin sees, and one dialog gives the same output
//! for the JavaScript, Python and C builds of the same plugin.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::plugin_support::{plugin_path, root};

/// `wasmtp plugin <args>` with the tests' compile cache.
fn wasmtp_plugin(args: &[&std::ffi::OsStr]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmtp"));
    cmd.arg("plugin")
        .args(args)
        .arg("--cache-dir")
        .arg(root().join("target/wasmtp-cache"));
    cmd
}

/// Runs `wasmtp plugin test PLUGIN DIALOGS...`.
fn test(plugin: &Path, dialogs: &[PathBuf]) -> Output {
    let mut args = vec![std::ffi::OsStr::new("test"), plugin.as_os_str()];
    args.extend(dialogs.iter().map(|d| d.as_os_str()));
    wasmtp_plugin(&args).output().unwrap()
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// A dialog written to a temp dir.
fn dialog(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path
}

#[test]
fn every_example_plugin_passes_its_dialogs() {
    // example-plugins/<lang>/<plugin>/dialogs/*.dialog, by plugin.
    let mut by_plugin: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let mut plugins = Vec::new();
    for lang in std::fs::read_dir(root().join("example-plugins")).unwrap() {
        let lang = lang.unwrap().path();
        if !lang.is_dir() {
            continue;
        }
        for plugin in std::fs::read_dir(&lang).unwrap() {
            let plugin = plugin.unwrap().path();
            let name = plugin.file_name().unwrap().to_string_lossy().into_owned();
            // A plugin has a README; the rest (a shared crate) is not one.
            if !plugin.join("README.md").exists() {
                continue;
            }
            plugins.push(name.clone());
            let Ok(entries) = std::fs::read_dir(plugin.join("dialogs")) else {
                continue;
            };
            let mut dialogs: Vec<PathBuf> = entries
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "dialog"))
                .collect();
            dialogs.sort();
            by_plugin.insert(name, dialogs);
        }
    }
    let missing: Vec<&String> = plugins
        .iter()
        .filter(|p| by_plugin.get(*p).is_none_or(Vec::is_empty))
        .collect();
    assert!(missing.is_empty(), "plugins without dialogs: {missing:?}");
    // One harness process per plugin, all at once.
    let children: Vec<_> = by_plugin
        .iter()
        .map(|(name, dialogs)| {
            let wasm = plugin_path(name);
            let mut args = vec![std::ffi::OsStr::new("test"), wasm.as_os_str()];
            args.extend(dialogs.iter().map(|d| d.as_os_str()));
            let child = wasmtp_plugin(&args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            (name, dialogs.len(), child)
        })
        .collect();
    let mut failures = Vec::new();
    for (name, n, child) in children {
        let out = child.wait_with_output().unwrap();
        let stdout = text(&out.stdout);
        let summary = stdout.lines().last().unwrap_or("").to_string();
        let want = format!("{n} dialogs, ");
        if !out.status.success()
            || !summary.starts_with(&want)
            || !summary.ends_with("steps: all passed")
        {
            failures.push(format!(
                "{name}: {}\n{stdout}\n{}",
                out.status,
                text(&out.stderr)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_failing_step_prints_what_was_expected_and_what_came() {
    let dir = tempfile::tempdir().unwrap();
    let d = dialog(
        dir.path(),
        "wrong.dialog",
        "# expects the bare IP to pass\n> EHLO 192.0.2.1\n< 250\n> EHLO client.example.org\n< 250\n",
    );
    let out = test(&plugin_path("helo-check"), &[d]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL    3  < 250"), "{stdout}");
    assert!(stdout.contains("expected: 250"), "{stdout}");
    assert!(
        stdout.contains("got:      550 5.7.1 HELO refused"),
        "{stdout}"
    );
    // The steps after it still run.
    assert!(stdout.contains("ok      5  < 250"), "{stdout}");
    assert_eq!(
        stdout.lines().last(),
        Some("1 dialogs, 5 steps: 1 failed"),
        "{stdout}"
    );
}

#[test]
fn a_malformed_dialog_is_named_by_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dialog(
        dir.path(),
        "bad.dialog",
        "> EHLO client.example.org\n< 250\nEHLO again\n",
    );
    let front = dialog(
        dir.path(),
        "front.dialog",
        "+++\n[client]\nip = \"not an address\"\n+++\n> EHLO x.example\n",
    );
    let out = test(&plugin_path("helo-check"), &[bad.clone(), front.clone()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("{}:3: a line must start with", bad.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{}:3: front matter:", front.display())),
        "{stdout}"
    );
}

/// One dialog for the `*-services` fixtures (JavaScript, Python, C): DNS
/// answers from fixtures, key-value contents from fixtures.
const SERVICES_DIALOG: &str = r#"+++
[kv.probe]
k = "hello"
n = 5
[[dns]]
name = "host.test"
type = "A"
answer = ["192.0.2.1"]
[[dns]]
name = "mail.test"
type = "MX"
answer = ["10 mx1.mail.test"]
[[dns]]
name = "broken.test"
type = "A"
error = "servfail"
+++
> EHLO client.test
< 250
> XDNS A host.test
< 250 * 192.0.2.1
> XDNS MX mail.test
< 250 *10*mx1.mail.test*
> XDNS A nowhere.test
< 450 *nx-domain*
> XDNS MX host.test
< 450 *no-data*
> XDNS A broken.test
< 450 *server-failure*
> XKV GET probe k
< 250 *hello
> XKV INCR probe n 2
< 250 *7
> XKV GET other k
< 450 *not-granted*
"#;

#[test]
fn fixtures_are_what_plugins_see_the_same_in_every_language() {
    let dir = tempfile::tempdir().unwrap();
    let d = dialog(dir.path(), "services.dialog", SERVICES_DIALOG);
    let mut outputs = Vec::new();
    for fixture in ["c-services", "js-services", "py-services"] {
        let out = test(
            &plugin_path(&format!("fixtures/{fixture}")),
            std::slice::from_ref(&d),
        );
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "{fixture}:\n{stdout}\n{}",
            text(&out.stderr)
        );
        assert!(
            stdout.ends_with("1 dialogs, 19 steps: all passed\n"),
            "{fixture}:\n{stdout}"
        );
        outputs.push((fixture, stdout));
    }
    for (fixture, out) in &outputs[1..] {
        assert_eq!(out, &outputs[0].1, "{fixture} differs from c-services");
    }
}

#[test]
fn inspect_shows_version_imports_and_hooks() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dnsbl.toml");
    std::fs::write(&config, "zones = [\"zen.example\"]\nhook = \"connect\"\n").unwrap();
    let cases: [(&str, Option<&Path>, &[&str]); 3] = [
        (
            "dnsbl",
            Some(&config),
            &[
                "wasmtp:plugin/dns@0.1.0    [dns:",
                "hooks (from init): connect",
            ],
        ),
        (
            "header-rules",
            None,
            &[
                "hooks (from init): data-post",
                "wasmtp:plugin/hooks@0.1.0: init",
            ],
        ),
        (
            "fast-guard",
            None,
            &["hooks (from init): helo, ehlo, mail, rcpt, data-post"],
        ),
    ];
    for (name, config, wants) in cases {
        let wasm = plugin_path(name);
        let mut args = vec![std::ffi::OsStr::new("inspect"), wasm.as_os_str()];
        if let Some(c) = config {
            args.push("--config".as_ref());
            args.push(c.as_os_str());
        }
        let out = wasmtp_plugin(&args).output().unwrap();
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "{name}:\n{stdout}\n{}",
            text(&out.stderr)
        );
        assert!(
            stdout.contains("wasmtp:plugin version: 0.1.0"),
            "{name}:\n{stdout}"
        );
        assert!(stdout.contains("compile:   "), "{name}:\n{stdout}");
        let size = std::fs::metadata(&wasm).unwrap().len();
        assert!(
            stdout.contains(&format!("size:      {size} octets")),
            "{name}:\n{stdout}"
        );
        for want in wants {
            assert!(stdout.contains(want), "{name}: {want:?} in\n{stdout}");
        }
    }
}

#[test]
fn a_plugin_failure_is_shown_with_the_guests_error_text() {
    let dir = tempfile::tempdir().unwrap();
    let d = dialog(
        dir.path(),
        "trap.dialog",
        "+++\n[gateway]\nlocal_domains = [\"example.test\"]\n+++\n\
         > EHLO client.example\n< 250\n> MAIL FROM:<a@example.org>\n< 250\n\
         > RCPT TO:<trap@example.test>\n< 451 4.3.0 *\n",
    );
    let out = test(&plugin_path("fixtures/js-trap"), &[d]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    // The default failure policy answers; the log names the exception.
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("plugin failed"), "{stderr}");
    assert!(
        stderr.contains("js-trap: refusing to run for trap@example.test"),
        "{stderr}"
    );
}

#[test]
fn with_plugins_run_first_in_the_chain() {
    // The JavaScript header-rules leaves `rule-score`; the Python
    // spam-score after it adds it to its own total.
    let dir = tempfile::tempdir().unwrap();
    let d = dialog(dir.path(), "with.dialog", WITH_DIALOG);
    let spam = plugin_path("spam-score");
    let rules = plugin_path("header-rules");
    let out = wasmtp_plugin(&[
        "test".as_ref(),
        spam.as_os_str(),
        d.as_os_str(),
        "--with".as_ref(),
        rules.as_os_str(),
    ])
    .output()
    .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.ends_with("1 dialogs, 14 steps: all passed\n"),
        "{stdout}"
    );
}

const WITH_DIALOG: &str = r#"+++
[config]
threshold = 5
[with.header-rules]
[[with.header-rules.rules]]
name = "no-message-id"
header = "Message-ID"
absent = true
score = 3
[gateway]
local_domains = ["example.net"]
+++
> EHLO client.example.org
< 250
> MAIL FROM:<alice@example.org>
< 250
> RCPT TO:<bob@example.net>
< 250
> DATA
< 354
| Subject: hi
|
| casino
< 250
? note rule-score = 3*
? header X-Spam-Score: 3*
? header X-Rule-Score: 3*
"#;

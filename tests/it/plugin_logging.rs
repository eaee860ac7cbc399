//! What the operator sees in the log at the default level: a plugin's
//! refusal (which plugin, hook, code, reply and address) and, when a JS or
//! Python plugin throws, the guest's own exception text.

use crate::common;
use crate::plugin_support;

use common::{Gateway, LOCAL};

fn host_section() -> String {
    format!(
        "{LOCAL}\n[plugin_host]\ncache_dir = {:?}\nmax_connections = 8\n\n",
        plugin_support::root().join("target/wasmtp-cache")
    )
}

/// The JSON log lines whose message is `message`.
fn lines_with(gw: &Gateway, message: &str) -> Vec<serde_json::Value> {
    gw.log_text()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"].as_str() == Some(message))
        .collect()
}

#[test]
fn a_refusal_is_logged_at_info_with_plugin_hook_code_and_reply() {
    let text = format!(
        "{}[[plugins]]\nname = \"allow\"\npath = {:?}\n[plugins.config]\ndomains = [\"localhost\"]\n",
        host_section(),
        plugin_support::plugin_path("rcpt-allowlist")
    );
    let gw = Gateway::start(&text);
    let mut c = gw.connect();
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<alice@example.org>", 250);
    c.expect("RCPT TO:<bob@example.test>", 550);
    c.expect("QUIT", 221);
    gw.wait_log("plugin refused");
    let lines = lines_with(&gw, "plugin refused");
    assert_eq!(lines.len(), 1, "{}", gw.log_text());
    let f = &lines[0]["fields"];
    assert_eq!(lines[0]["level"], "INFO");
    assert_eq!(f["plugin"], "allow");
    assert_eq!(f["hook"], "rcpt");
    assert_eq!(f["code"], 550);
    assert_eq!(f["recipient"], "bob@example.test");
    assert_eq!(f["sender"], "alice@example.org");
    let reply = f["reply"].as_str().unwrap_or_default();
    assert!(
        reply.contains("<bob@example.test>: recipient not accepted here"),
        "{reply}"
    );
}

#[test]
fn a_js_or_python_exception_text_is_in_the_failure_line() {
    let text = format!(
        "{}[[plugins]]\nname = \"py-trap\"\npath = {:?}\nfailure_policy = \"skip\"\n\n\
         [[plugins]]\nname = \"js-trap\"\npath = {:?}\nfailure_policy = \"skip\"\n",
        host_section(),
        plugin_support::plugin_path("fixtures/py-trap"),
        plugin_support::plugin_path("fixtures/js-trap"),
    );
    let gw = Gateway::start(&text);
    let mut c = gw.connect();
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<alice@example.org>", 250);
    // Both fail and are skipped: the core's policy accepts.
    c.expect("RCPT TO:<trap@example.test>", 250);
    c.expect("QUIT", 221);
    gw.wait_log("js-trap: refusing to run for");
    let guest = |plugin: &str| {
        gw.log_text()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["fields"]["plugin"] == plugin && v["fields"]["guest_error"].is_string())
            .and_then(|v| v["fields"]["guest_error"].as_str().map(str::to_string))
            .unwrap_or_else(|| panic!("no guest_error for {plugin}:\n{}", gw.log_text()))
    };
    let py = guest("py-trap");
    assert!(
        py.contains("py-trap: refusing to run for trap@example.test"),
        "{py}"
    );
    let js = guest("js-trap");
    assert!(
        js.contains("js-trap: refusing to run for trap@example.test"),
        "{js}"
    );
}

#[test]
fn compiling_and_ready_are_logged_once_and_a_reload_once() {
    // A cache of its own, so the first load compiles.
    let cache = tempfile::tempdir().unwrap();
    let text = format!(
        "{LOCAL}\n[plugin_host]\ncache_dir = {:?}\nmax_connections = 8\n\n\
         [[plugins]]\nname = \"allow\"\npath = {:?}\n[plugins.config]\ndomains = [\"localhost\"]\n",
        cache.path(),
        plugin_support::plugin_path("rcpt-allowlist")
    );
    let gw = Gateway::start(&text);
    let count = |needle: &str| gw.log_text().matches(needle).count();
    assert_eq!(count("compiling allow…"), 1, "{}", gw.log_text());
    assert_eq!(count("allow ready ("), 1, "{}", gw.log_text());
    // A reload of the unchanged file maps the cached artefact: no compile.
    gw.signal("HUP");
    gw.wait_log("plugin chain reloaded");
    assert_eq!(count("compiling allow…"), 1, "{}", gw.log_text());
    assert_eq!(count("allow ready ("), 2, "{}", gw.log_text());
    assert_eq!(count("plugin chain reloaded"), 1, "{}", gw.log_text());
}

//! `plugins-sdk/REFERENCE.md`, the contract in each SDK, against the
//! sources: every function of `wit/plugin.wit` has its row, and every C
//! function, C hook field, Rust trait method and JavaScript/Python SDK
//! helper the file names exists in that SDK's source.

use std::collections::BTreeSet;
use std::fs;

use crate::plugin_support::root;

fn read(path: &str) -> String {
    fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Identifiers in backticks matching `prefix` + [a-z_]+ (e.g. `wasmtp_`).
fn idents(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices(prefix) {
        let rest = &text[i + prefix.len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end > 0 {
            out.insert(format!("{prefix}{}", &rest[..end]));
        }
    }
    out
}

#[test]
fn every_wit_function_has_a_row() {
    let wit = read("wit/plugin.wit");
    let reference = read("plugins-sdk/REFERENCE.md");
    let mut names = BTreeSet::new();
    for line in wit.lines() {
        let line = line.trim();
        if line.starts_with("///") {
            continue;
        }
        if let Some((name, rest)) = line.split_once(": func(")
            && !name.contains(' ')
            && !rest.is_empty()
        {
            names.insert(name.to_string());
        }
    }
    assert!(
        names.len() > 50,
        "parsed only {} WIT functions",
        names.len()
    );
    let missing: Vec<_> = names
        .iter()
        .filter(|n| !reference.contains(&format!("| `{n}(")))
        .collect();
    assert!(
        missing.is_empty(),
        "REFERENCE.md has no row for {missing:?}"
    );
}

#[test]
fn every_name_in_the_reference_exists_in_its_sdk() {
    let reference = read("plugins-sdk/REFERENCE.md");

    let header = read("plugins-sdk/c/src/wasmtp.h");
    let mut c_fns = idents(&reference, "wasmtp_");
    c_fns.remove("wasmtp_plugin_sdk"); // the Rust crate's name
    assert!(c_fns.len() > 40, "{c_fns:?}");
    for f in &c_fns {
        assert!(
            header.contains(&format!("{f}(")) || header.contains(&format!("{f} ")),
            "REFERENCE.md names {f}, which wasmtp.h does not declare"
        );
    }
    let start = header
        .find("const char *(*init)")
        .expect("wasmtp_plugin_t in wasmtp.h");
    let end = header
        .find("} wasmtp_plugin_t;")
        .expect("wasmtp_plugin_t in wasmtp.h");
    let hook_struct = &header[start..end];
    let rust = read("plugins-sdk/rust/src/lib.rs");
    let js = read("plugins-sdk/js/src/wasmtp.js");
    let mut rows = 0;
    for line in reference
        .lines()
        .filter(|l| l.starts_with("| `") && l.contains("| `Plugin::"))
    {
        rows += 1;
        let cells: Vec<&str> = line.split(" | ").collect();
        let rust_fn = idents(cells[1], "Plugin::");
        for f in rust_fn {
            let name = f.trim_start_matches("Plugin::");
            assert!(rust.contains(&format!("fn {name}(")), "Rust SDK has no {f}");
        }
        let c_field = cells[4].trim_matches(|c| c == '`' || c == '.');
        assert!(
            hook_struct.contains(&format!("(*{c_field})")),
            "wasmtp_plugin_t has no .{c_field}"
        );
    }
    assert_eq!(rows, 22, "one row per hook, init and transaction-ended");

    for helper in [
        "readBody",
        "bodyText",
        "firstHeader",
        "configGet",
        "exportLifecycle",
        "getText",
        "compareAndSet",
        "addresses",
        "reverse",
        "denySoftDisconnect",
    ] {
        assert!(js.contains(helper), "wasmtp.js has no {helper}");
    }
    let python = ["__init__.py", "dns.py", "kv.py"]
        .iter()
        .map(|f| read(&format!("plugins-sdk/python/src/wasmtp/{f}")))
        .collect::<String>();
    for helper in [
        "def read_body",
        "def body_text",
        "def first_header",
        "def config_get",
        "def export_lifecycle",
        "def get_text",
        "def compare_and_set",
        "def addresses",
        "def reverse",
        "def deny_soft_disconnect",
        "class Bucket",
    ] {
        assert!(python.contains(helper), "the Python SDK has no `{helper}`");
    }
}

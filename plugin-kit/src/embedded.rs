//! The WIT contract and each language's SDK, as compiled into this crate.
//!
//! These are the repository's own files (`wit/`, `plugins-sdk/`), read at
//! compile time: `wasmtp plugin new` writes them into a project, so a plugin
//! built outside the repository uses exactly the contract and SDK of the
//! `wasmtp` binary that created it. A test checks that every SDK file is
//! listed here.

/// One embedded file: its path inside its SDK folder and its text.
#[derive(Debug, Clone, Copy)]
pub struct File {
    /// Path relative to the SDK folder (`src/lib.rs`, `wasmtp/__init__.py`).
    pub path: &'static str,
    /// Its contents.
    pub text: &'static str,
}

macro_rules! files {
    ($base:literal: $($path:literal),* $(,)?) => {
        &[$(File { path: $path, text: include_str!(concat!("../../", $base, $path)) }),*]
    };
}

/// `wit/plugin.wit`, the plugin contract.
pub const WIT: &str = include_str!("../../wit/plugin.wit");

/// The Rust SDK crate (`plugins-sdk/rust`): manifest, lock file and sources.
pub const RUST_SDK: &[File] = files!("plugins-sdk/rust/":
    "Cargo.toml",
    "Cargo.lock",
    "README.md",
    "src/config.rs",
    "src/dns.rs",
    "src/helpers.rs",
    "src/kv.rs",
    "src/lib.rs",
    "src/log.rs",
    "src/mime.rs",
    "src/verdict.rs",
);

/// The JavaScript SDK module (`plugins-sdk/js/src`).
pub const JS_SDK: &[File] = files!("plugins-sdk/js/src/": "wasmtp.js");

/// `plugins-sdk/js/package.json`: pins componentize-js.
pub const JS_PACKAGE: &str = include_str!("../../plugins-sdk/js/package.json");

/// The Python SDK package (`plugins-sdk/python/src`).
pub const PYTHON_SDK: &[File] = files!("plugins-sdk/python/src/":
    "wasmtp/__init__.py",
    "wasmtp/dns.py",
    "wasmtp/kv.py",
    "wasmtp/mime.py",
);

/// The C SDK (`plugins-sdk/c/src`).
pub const C_SDK: &[File] = files!("plugins-sdk/c/src/": "wasmtp.h", "wasmtp.c");

/// The contract's package version, from the WIT's `package` line
/// (`wasmtp:plugin@0.1.0` gives `0.1.0`).
pub fn contract_version() -> &'static str {
    WIT.lines()
        .find_map(|l| l.trim().strip_prefix("package wasmtp:plugin@"))
        .map(|v| v.trim_end_matches(';').trim())
        .unwrap_or("0.0.0")
}

/// The contract's full name, `wasmtp:plugin@<version>`.
pub fn contract() -> String {
    format!("wasmtp:plugin@{}", contract_version())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn listed(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_str().unwrap();
            if name.starts_with('.') || name == "__pycache__" || name == "target" {
                continue;
            }
            if p.is_dir() {
                listed(&p, base, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().to_str().unwrap().to_string());
            }
        }
    }

    #[test]
    fn every_sdk_file_is_embedded() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for (dir, files) in [
            ("plugins-sdk/rust", RUST_SDK),
            ("plugins-sdk/js/src", JS_SDK),
            ("plugins-sdk/python/src", PYTHON_SDK),
            ("plugins-sdk/c/src", C_SDK),
        ] {
            let base = root.join(dir);
            let mut on_disk = Vec::new();
            listed(&base, &base, &mut on_disk);
            on_disk.sort();
            let mut embedded: Vec<String> = files.iter().map(|f| f.path.to_string()).collect();
            embedded.sort();
            assert_eq!(on_disk, embedded, "{dir}: list every file in embedded.rs");
        }
    }

    #[test]
    fn the_contract_version_comes_from_the_wit() {
        assert!(
            contract_version().starts_with("0."),
            "{}",
            contract_version()
        );
        assert_eq!(contract(), format!("wasmtp:plugin@{}", contract_version()));
    }
}

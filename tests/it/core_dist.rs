//! Issue 17 item 6: the archive of `cargo xtask dist` deploys by itself.
//! It is unpacked in an empty directory; its binary must be stripped, with
//! the debug info in the `.debug` file beside the archive; and the shipped
//! config inside it must serve mail through the shipped plugin chain with
//! nothing from this checkout (started from another directory, listeners
//! moved to free ports).
//!
//! The archive packs this test build's own binary (`cargo xtask dist
//! --binary=...`, the same packing code as the release archive): a second,
//! static build of the gateway would cost CI many minutes. That the release
//! binary is static is checked by `cargo xtask dist` itself (it refuses a
//! binary with a dynamic loader; its ELF check has unit tests).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{Gateway, maildir_messages};

/// The archive and its debug file, packed once per test process into a
/// temporary directory.
struct Packed {
    _dir: tempfile::TempDir,
    archive: PathBuf,
    debug: PathBuf,
}

fn packed() -> &'static Packed {
    static PACKED: OnceLock<Packed> = OnceLock::new();
    PACKED.get_or_init(|| {
        crate::plugin_support::plugins_built();
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO"))
            .args(["run", "--quiet", "--package", "xtask", "--", "dist"])
            .arg(format!("--binary={}", env!("CARGO_BIN_EXE_wasmtp")))
            .arg(format!("--out={}", dir.path().display()))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("running cargo xtask dist");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "cargo xtask dist failed: {said}");
        let mut archive = None;
        let mut debug = None;
        for entry in std::fs::read_dir(dir.path()).unwrap().flatten() {
            let path = entry.path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".tar.gz") {
                archive = Some(path);
            } else if name.ends_with(".debug") {
                debug = Some(path);
            }
        }
        Packed {
            archive: archive.unwrap_or_else(|| panic!("no archive; xtask said: {said}")),
            debug: debug.unwrap_or_else(|| panic!("no debug file; xtask said: {said}")),
            _dir: dir,
        }
    })
}

fn archive() -> &'static Path {
    &packed().archive
}

/// Unpacks the archive into a fresh directory; returns it and the tree.
fn unpack() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(archive())
        .arg("-C")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let name = archive()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_end_matches(".tar.gz")
        .to_string();
    let tree = dir.path().join(name);
    assert!(tree.is_dir(), "the archive holds no {}", tree.display());
    (dir, tree)
}

#[test]
fn the_binary_is_stripped_and_its_debug_info_is_split_off() {
    let (_dir, tree) = unpack();
    let bin = tree.join("bin/wasmtp");
    // section headers (the code itself holds the string ".debug_info")
    let sections = |file: &Path| {
        let out = Command::new("readelf")
            .args(["--section-headers", "--wide"])
            .arg(file)
            .output()
            .unwrap();
        assert!(out.status.success(), "readelf {}", file.display());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let stripped = sections(&bin);
    assert!(!stripped.contains(" .debug_info "), "{stripped}");
    assert!(stripped.contains(" .gnu_debuglink "), "{stripped}");
    assert!(sections(&packed().debug).contains(" .debug_info "));
    let size = |p: &Path| std::fs::metadata(p).unwrap().len();
    assert!(
        size(&bin) < size(Path::new(env!("CARGO_BIN_EXE_wasmtp"))),
        "stripping made the binary no smaller"
    );

    // the rest of what an operator needs is in the tree
    for part in [
        "systemd/wasmtp.service",
        "wit/plugin.wit",
        "plugins-sdk/rust/Cargo.toml",
        "plugins-sdk/c/src/wasmtp.h",
        "plugins-sdk/python/src/wasmtp/kv.py",
        "plugins-sdk/js/src/wasmtp.js",
        "README.md",
        "plugins/helo-check.wasm",
    ] {
        assert!(tree.join(part).is_file(), "the archive lacks {part}");
    }
    // GPL-licensed plugins are not shipped as binaries without their source
    for gpl in ["mail-auth.wasm", "dkim-sign.wasm"] {
        assert!(!tree.join("plugins").join(gpl).exists(), "{gpl} packed");
    }
    assert!(
        !tree.join("plugins-sdk/js/node_modules").exists(),
        "installed packages must not be packed"
    );
    let out = Command::new(&bin).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("wasmtp"));
}

#[test]
fn the_unpacked_tree_serves_mail_with_the_shipped_chain() {
    let (dir, tree) = unpack();
    let config = tree.join("config/gateway.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let code = text.lines().map(|l| l.split('#').next().unwrap_or(""));
    assert!(
        !code.clone().any(|l| l.contains("../target")),
        "the config points out of the tree"
    );
    assert!(
        code.clone()
            .any(|l| l.contains("\"../plugins/helo-check.wasm\""))
    );
    let mut moved = text.clone();
    for port in ["2525", "5870", "4650"] {
        let addr = format!("\"127.0.0.1:{port}\"");
        assert!(moved.contains(&addr), "the shipped listener {addr} is gone");
        moved = moved.replace(&addr, "\"127.0.0.1:0\"");
    }
    std::fs::write(&config, moved).unwrap();
    let bin = tree.join("bin/wasmtp");

    // relative paths resolve from the config file, not the current directory
    let cwd = tempfile::tempdir().unwrap();
    let out = Command::new(&bin)
        .args(["check-config", "--config"])
        .arg(&config)
        .current_dir(cwd.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "check-config: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let gw = Gateway::spawn(&bin, cwd, config, 3, &[]);
    let mut smtp = gw.connect();
    let reply = smtp.send_mail(
        "sender@example.org",
        &["postmaster@example.test"],
        b"Subject: from the archive\r\n\r\nHello.\r\n",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    smtp.expect("QUIT", 221);

    let delivered = maildir_messages(&tree.join("var/maildir"));
    assert_eq!(delivered.len(), 1, "one message in the tree's Maildir");
    let msg = String::from_utf8_lossy(&delivered[0]);
    assert!(msg.contains("Subject: from the archive"), "{msg}");
    // the shipped chain ran: the disclaimer's footer and header-stamp's fields
    assert!(msg.contains("This message passed through wasmtp."), "{msg}");
    assert!(msg.contains("X-Wasmtp-Session: "), "{msg}");
    // compiled plugins are cached inside the tree too
    assert!(tree.join("var/wasmtp-cache").is_dir());
    drop(gw);
    drop(dir);
}

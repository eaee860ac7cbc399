//! `cargo xtask plugins`: builds every plugin into `target/plugins/`.
//!
//! Plugins live in cargo workspaces of their own (outside the root workspace,
//! because they build for `wasm32-wasip2`). Each Rust workspace is built in
//! release into `target/plugins-build/` (shared, so the SDK compiles once) and
//! every `.wasm` it produces is copied to its output folder under the crate's
//! name (`rcpt_allowlist.wasm` becomes `rcpt-allowlist.wasm`); the other
//! languages are built by `langs.rs`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};

use crate::install::{self, WASM_TARGET};
use crate::sh;

/// A cargo workspace of plugins and where its components go.
#[derive(Debug, Clone, Copy)]
pub struct RustWorkspace {
    /// Manifest path relative to the repository root.
    pub manifest: &'static str,
    /// Output folder relative to the repository root.
    pub out_dir: &'static str,
}

/// The Rust plugin workspaces: the example plugins (with the SDK) and the
/// hostile test fixtures.
pub const RUST_WORKSPACES: &[RustWorkspace] = &[
    RustWorkspace {
        manifest: "example-plugins/rust/Cargo.toml",
        out_dir: "target/plugins",
    },
    RustWorkspace {
        manifest: "tests/fixtures/Cargo.toml",
        out_dir: "target/plugins/fixtures",
    },
];

/// Cargo's target folder of every plugin build (relative to the root).
pub const BUILD_DIR: &str = "target/plugins-build";

/// Other manifests with a `[workspace]` of their own that fmt and clippy
/// should cover (built as dependencies of the workspaces above otherwise).
const LINT_ONLY_MANIFESTS: &[&str] = &["plugins-sdk/rust/Cargo.toml"];

/// The plugin workspaces present in this checkout, for fmt and clippy.
pub fn lint_manifests(root: &Path) -> Vec<PathBuf> {
    let mut manifests: Vec<PathBuf> = RUST_WORKSPACES
        .iter()
        .map(|ws| root.join(ws.manifest))
        .filter(|m| m.is_file())
        .collect();
    for manifest in LINT_ONLY_MANIFESTS {
        let path = root.join(manifest);
        let own_workspace = std::fs::read_to_string(&path)
            .map(|text| text.lines().any(|l| l.trim() == "[workspace]"))
            .unwrap_or(false);
        if own_workspace {
            manifests.push(path);
        }
    }
    manifests
}

/// `cargo xtask plugins`: toolchains, then every plugin.
pub fn plugins() -> Result<()> {
    install_toolchains()?;
    build_all()
}

/// Installs the Rust wasm target.
///
/// The JavaScript, Python and C toolchains are installed by `langs::build_all`
/// when it finds a plugin that needs them.
pub fn install_toolchains() -> Result<()> {
    sh::step("plugin toolchains");
    install::ensure_wasm_target()
}

/// Builds every plugin workspace present; missing ones are reported, not
/// fatal. A failing build does not stop the others: the error lists them all.
pub fn build_all() -> Result<()> {
    let root = sh::root();
    let mut failed = Vec::new();
    for ws in RUST_WORKSPACES {
        let manifest = root.join(ws.manifest);
        if !manifest.is_file() {
            sh::step(&format!(
                "plugins: {} not present yet, skipped",
                ws.manifest
            ));
            continue;
        }
        sh::step(&format!("plugins: {}", ws.manifest));
        if let Err(err) = build_rust_workspace(&root, ws) {
            sh::error(&format!("{err:#}"));
            failed.push(ws.manifest.to_string());
        }
    }
    sh::step("plugins: JavaScript, Python, C");
    if let Err(err) = build_other_languages(&root) {
        sh::error(&format!("{err:#}"));
        failed.push("JavaScript/Python/C plugins".to_string());
    }
    sh::step("plugins built");
    let mut built = Vec::new();
    for ws in RUST_WORKSPACES {
        list_wasm(&root.join(ws.out_dir), &mut built);
    }
    built.sort();
    built.dedup();
    for path in &built {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let shown = path.strip_prefix(&root).unwrap_or(path);
        eprintln!("  {} ({} KiB)", shown.display(), size / 1024);
    }
    if built.is_empty() {
        eprintln!("  (none: no plugin in this checkout yet)");
    }
    if !failed.is_empty() {
        bail!("plugin builds failed: {}", failed.join(", "));
    }
    Ok(())
}

fn list_wasm(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    out.extend(
        entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "wasm")),
    );
}

/// `cargo build --release --target wasm32-wasip2` of one workspace, then the
/// `.wasm` artifacts cargo reports are copied into the output folder.
fn build_rust_workspace(root: &Path, ws: &RustWorkspace) -> Result<()> {
    let mut cmd = sh::cargo();
    cmd.args([
        "build",
        "--release",
        "--target",
        WASM_TARGET,
        "--manifest-path",
        ws.manifest,
        "--target-dir",
        BUILD_DIR,
    ])
    .arg("--message-format=json-render-diagnostics")
    .stdout(Stdio::piped());
    sh::announce(&cmd);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start `{}`", sh::display(&cmd)))?;
    let mut artifacts = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            match wasm_artifacts(&line) {
                Some(files) => artifacts.extend(files),
                // Not a cargo JSON message (a build script's output): show it.
                None if !line.starts_with('{') => println!("{line}"),
                None => {}
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("`{}` failed ({status})", sh::display(&cmd));
    }
    let out_dir = root.join(ws.out_dir);
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    for artifact in artifacts {
        let Some(name) = artifact.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let dest = out_dir.join(component_name(name));
        std::fs::copy(&artifact, &dest)
            .with_context(|| format!("cannot copy {} to {}", artifact.display(), dest.display()))?;
    }
    Ok(())
}

/// The published name of a cargo artifact: cargo writes the crate name with
/// `_` (`rcpt_allowlist.wasm`), configs use the package name (`rcpt-allowlist.wasm`).
fn component_name(artifact: &str) -> String {
    artifact.replace('_', "-")
}

/// The `.wasm` files of one `compiler-artifact` message, or `None` for any
/// other line.
fn wasm_artifacts(line: &str) -> Option<Vec<PathBuf>> {
    let msg: serde_json::Value = serde_json::from_str(line).ok()?;
    if msg.get("reason")?.as_str()? != "compiler-artifact" {
        return None;
    }
    let files = msg.get("filenames")?.as_array()?;
    Some(
        files
            .iter()
            .filter_map(|f| f.as_str())
            .filter(|f| f.ends_with(".wasm"))
            .map(PathBuf::from)
            .collect(),
    )
}

fn build_other_languages(root: &Path) -> Result<()> {
    crate::langs::build_all(&root.join("target/plugins"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasm_artifacts_are_taken_from_compiler_artifact_messages() {
        let line = r#"{"reason":"compiler-artifact","package_id":"x","target":{"kind":["cdylib"]},"filenames":["/t/wasm32-wasip2/release/deps/x.d","/t/wasm32-wasip2/release/spf_check.wasm"]}"#;
        assert_eq!(
            wasm_artifacts(line),
            Some(vec![PathBuf::from(
                "/t/wasm32-wasip2/release/spf_check.wasm"
            )])
        );
    }

    #[test]
    fn components_are_named_after_the_package() {
        assert_eq!(component_name("rcpt_allowlist.wasm"), "rcpt-allowlist.wasm");
        assert_eq!(component_name("probe.wasm"), "probe.wasm");
    }

    #[test]
    fn other_lines_carry_no_artifacts() {
        assert_eq!(
            wasm_artifacts(r#"{"reason":"build-finished","success":true}"#),
            None
        );
        assert_eq!(wasm_artifacts("warning: something"), None);
        let rlib = r#"{"reason":"compiler-artifact","filenames":["/t/libsdk.rlib"]}"#;
        assert_eq!(wasm_artifacts(rlib), Some(vec![]));
    }

    #[test]
    fn lint_manifests_lists_only_present_workspaces() {
        let dir = std::env::temp_dir().join(format!("xtask-lint-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("plugins-sdk/rust")).unwrap();
        std::fs::create_dir_all(dir.join("example-plugins/rust")).unwrap();
        std::fs::write(dir.join("example-plugins/rust/Cargo.toml"), "[workspace]\n").unwrap();
        std::fs::write(
            dir.join("plugins-sdk/rust/Cargo.toml"),
            "[package]\nname = \"sdk\"\n",
        )
        .unwrap();
        assert_eq!(
            lint_manifests(&dir),
            vec![dir.join("example-plugins/rust/Cargo.toml")]
        );
        std::fs::write(
            dir.join("plugins-sdk/rust/Cargo.toml"),
            "[workspace]\n\n[package]\n",
        )
        .unwrap();
        assert_eq!(lint_manifests(&dir).len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! `cargo xtask dist`: one archive to deploy.
//!
//! Builds the gateway as a static binary (`x86_64-unknown-linux-musl`, with
//! mimalloc as its allocator: musl's malloc takes one lock for every
//! thread), splits the debug info into a file of its own, and packs
//! the binary with the shipped config, the example plugins, the systemd
//! unit, the WIT contract and the plugin SDKs:
//!
//! ```text
//! target/dist/wasmtp-VERSION-x86_64-linux-musl.tar.gz
//!   wasmtp-VERSION-x86_64-linux-musl/
//!     bin/wasmtp                 static, stripped (debug link to the .debug file)
//!     config/gateway.toml        the shipped config, paths inside this tree
//!     plugins/*.wasm             the example plugins (not the GPL ones)
//!     var/                       state: Maildir, KV store, compiled-plugin cache
//!     systemd/wasmtp.service     the unit (expects the tree at /opt/wasmtp)
//!     wit/  plugins-sdk/  README.md
//! target/dist/wasmtp-VERSION-x86_64-linux-musl.debug   the split-off debug info
//! ```
//!
//! `--binary PATH` packs a binary built already instead (the test of the
//! archive, `tests/it/core_dist.rs`, packs the test build's own binary: a
//! second, static build would cost CI many minutes); `--out DIR` writes
//! the archive and the debug file there.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::{Options, install, plugins, sh};

/// The static target.
pub const TARGET: &str = "x86_64-unknown-linux-musl";

/// Installs what is missing, builds the plugins and the static gateway,
/// and packs them; or, with `--binary PATH`, packs that binary and the
/// plugins already built, building nothing. `--out DIR` puts the archive
/// there instead of `target/dist/`. Prints the archive's path and sizes.
pub fn dist(opts: &Options) -> Result<()> {
    let out = match opts.value("--out") {
        Some(dir) => PathBuf::from(dir),
        None => sh::target_dir().join("dist"),
    };
    if let Some(binary) = opts.value("--binary") {
        let binary = PathBuf::from(binary);
        let triple = match has_interpreter(&binary)? {
            true => "x86_64-linux-gnu",
            false => "x86_64-linux-musl",
        };
        return pack(&binary, triple, &out);
    }
    if !opts.has("--no-install") {
        install::ensure_target(TARGET)?;
        install::ensure_tools(&[install::MUSL_GCC])?;
    }
    plugins::plugins()?;

    sh::step(&format!("gateway for {TARGET}"));
    sh::run(sh::cargo().args([
        "build",
        "--release",
        "--package",
        "wasmtp",
        "--bin",
        "wasmtp",
        "--features",
        "mimalloc",
        "--target",
        TARGET,
    ]))?;
    let binary = sh::target_dir().join(TARGET).join("release/wasmtp");
    if has_interpreter(&binary)? {
        bail!(
            "{} asks for a dynamic loader (PT_INTERP): not a static binary",
            binary.display()
        );
    }
    pack(&binary, "x86_64-linux-musl", &out)
}

/// Packs `binary` (debug info split off) with the plugins built into
/// `target/plugins/` and the repository's config, unit, WIT and SDKs.
fn pack(binary: &Path, triple: &str, out: &Path) -> Result<()> {
    let root = sh::root();
    let name = format!("wasmtp-{}-{triple}", version(&root)?);
    mkdir(out)?;
    let tree = out.join(&name);
    if tree.exists() {
        std::fs::remove_dir_all(&tree).with_context(|| format!("removing {}", tree.display()))?;
    }
    sh::step(&format!("packing {}", tree.display()));
    for dir in ["bin", "config", "plugins", "var", "systemd"] {
        mkdir(&tree.join(dir))?;
    }

    let bin = tree.join("bin/wasmtp");
    let debug = out.join(format!("{name}.debug"));
    split_debug_info(binary, &bin, &debug)?;

    let config = std::fs::read_to_string(root.join("config/gateway.toml"))
        .context("reading config/gateway.toml")?;
    write(&tree.join("config/gateway.toml"), &relocate(&config)?)?;
    let plugins = copy_plugins(&sh::target_dir().join("plugins"), &tree.join("plugins"))?;
    copy(
        &root.join("dist/wasmtp.service"),
        &tree.join("systemd/wasmtp.service"),
    )?;
    copy(&root.join("README.md"), &tree.join("README.md"))?;
    copy_tree(&root.join("wit"), &tree.join("wit"))?;
    copy_tree(&root.join("plugins-sdk"), &tree.join("plugins-sdk"))?;

    let archive = out.join(format!("{name}.tar.gz"));
    sh::run(sh::cmd("tar").args([
        "--owner=0",
        "--group=0",
        "--numeric-owner",
        "-C",
        &out.to_string_lossy(),
        "-czf",
        &archive.to_string_lossy(),
        &name,
    ]))?;
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "\n{}\n  archive {} MiB; bin/wasmtp {} MiB (static, stripped); {} plugins\n{}\n  debug info {} MiB",
        archive.display(),
        size(&archive) >> 20,
        size(&bin) >> 20,
        plugins,
        debug.display(),
        size(&debug) >> 20,
    );
    Ok(())
}

/// The root package's `version` (the first `version =` line of Cargo.toml,
/// which is in `[package]`).
fn version(root: &Path) -> Result<String> {
    let manifest =
        std::fs::read_to_string(root.join("Cargo.toml")).context("reading Cargo.toml")?;
    manifest
        .lines()
        .find_map(|l| {
            let value = l.trim().strip_prefix("version")?.trim_start();
            let value = value.strip_prefix('=')?.trim();
            Some(value.trim_matches('"').to_string())
        })
        .context("Cargo.toml has no `version` in [package]")
}

/// The shipped config with its paths moved into the archive's tree: the
/// plugins from `../target/plugins/` to `../plugins/`, the compiled-plugin
/// cache from `../target/` to `../var/`. Any other `../target` left is an
/// error (the archive has no `target/`).
fn relocate(config: &str) -> Result<String> {
    let out = config
        .replace("\"../target/plugins/", "\"../plugins/")
        .replace("\"../target/wasmtp-cache\"", "\"../var/wasmtp-cache\"");
    if let Some(line) = out.lines().find(|l| {
        let code = l.split('#').next().unwrap_or("");
        code.contains("../target")
    }) {
        bail!("config/gateway.toml: a path the archive does not hold: {line}");
    }
    Ok(out)
}

/// Copies `binary` to `bin` without its debug sections, and those sections
/// to `debug` (linked from `bin` with .gnu_debuglink, so gdb finds them
/// when they sit beside it or in the debug directory).
fn split_debug_info(binary: &Path, bin: &Path, debug: &Path) -> Result<()> {
    sh::run(
        sh::cmd("objcopy")
            .arg("--only-keep-debug")
            .arg(binary)
            .arg(debug),
    )?;
    sh::run(
        sh::cmd("objcopy")
            .arg("--strip-debug")
            .arg("--strip-unneeded")
            .arg(format!("--add-gnu-debuglink={}", debug.display()))
            .arg(binary)
            .arg(bin),
    )
}

/// Whether the ELF file has a PT_INTERP program header (asks for ld.so).
pub fn has_interpreter(path: &Path) -> Result<bool> {
    let elf = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let bad = || anyhow::anyhow!("{} is not a 64-bit little-endian ELF file", path.display());
    if elf.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        return Err(bad());
    }
    let u16_at = |o: usize| -> Result<usize> {
        let b = elf.get(o..o + 2).ok_or_else(bad)?;
        Ok(usize::from(u16::from_le_bytes([b[0], b[1]])))
    };
    let phoff = elf
        .get(0x20..0x28)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
        .ok_or_else(bad)?;
    let phoff = usize::try_from(phoff)?;
    let (size, count) = (u16_at(0x36)?, u16_at(0x38)?);
    for i in 0..count {
        let at = phoff + i * size;
        let kind = elf.get(at..at + 4).ok_or_else(bad)?;
        if kind == 3u32.to_le_bytes() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether the Rust example plugin `name` has a licence of its own that
/// is a GPL (`license = "GPL-..."` in its Cargo.toml): mail-auth and
/// dkim-sign, built on GPL libraries. The archive (Apache-2.0) leaves them
/// out rather than ship GPL binaries without their corresponding source;
/// `cargo xtask plugins` builds them.
fn gpl_plugin(root: &Path, name: &str) -> bool {
    let manifest = root
        .join("example-plugins/rust")
        .join(name)
        .join("Cargo.toml");
    std::fs::read_to_string(manifest).is_ok_and(|text| {
        text.lines()
            .any(|l| l.trim_start().starts_with("license = \"GPL"))
    })
}

/// Copies every `*.wasm` directly in `from` (not the test fixtures, not the
/// GPL plugins: [`gpl_plugin`]).
fn copy_plugins(from: &Path, to: &Path) -> Result<usize> {
    let root = sh::root();
    let mut n = 0;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let path = entry?.path();
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        if stem.is_some_and(|s| gpl_plugin(&root, &s)) {
            continue;
        }
        if path.extension().is_some_and(|e| e == "wasm") {
            let name = path.file_name().context("a plugin without a file name")?;
            copy(&path, &to.join(name))?;
            n += 1;
        }
    }
    if n == 0 {
        bail!("no plugins in {} (cargo xtask plugins)", from.display());
    }
    Ok(n)
}

/// Copies a source tree, leaving out build output and installed packages.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    const SKIP: [&str; 6] = [
        "target",
        "node_modules",
        "__pycache__",
        ".venv",
        "venv",
        "dist",
    ];
    mkdir(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        if SKIP.iter().any(|s| name == *s) {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&path, &to.join(&name))?;
        } else if kind.is_file() {
            copy(&path, &to.join(&name))?;
        }
    }
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .map(drop)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))
}

fn mkdir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relocation_moves_plugins_and_cache_into_the_tree() {
        let config = "[plugin_host]\ncache_dir = \"../target/wasmtp-cache\"\n\
                      [[plugins]]\npath = \"../target/plugins/helo-check.wasm\" # ../target in a comment\n";
        let out = relocate(config).unwrap();
        assert!(out.contains("cache_dir = \"../var/wasmtp-cache\""));
        assert!(out.contains("path = \"../plugins/helo-check.wasm\""));
    }

    #[test]
    fn gpl_plugins_are_recognised_by_their_manifest() {
        let root = sh::root();
        assert!(gpl_plugin(&root, "mail-auth"));
        assert!(gpl_plugin(&root, "dkim-sign"));
        assert!(!gpl_plugin(&root, "helo-check"));
        assert!(!gpl_plugin(&root, "greylist"));
    }

    #[test]
    fn a_path_left_in_target_is_refused() {
        let err = relocate("[tls]\ncert = \"../target/cert.pem\"\n").unwrap_err();
        assert!(format!("{err}").contains("../target/cert.pem"), "{err}");
    }

    #[test]
    fn the_running_xtask_is_dynamic_and_not_an_elf_is_an_error() {
        let me = std::env::current_exe().unwrap();
        assert!(has_interpreter(&me).unwrap());
        let text = std::env::temp_dir().join("xtask-dist-not-elf");
        std::fs::write(&text, b"#!/bin/sh\n").unwrap();
        assert!(has_interpreter(&text).is_err());
    }
}

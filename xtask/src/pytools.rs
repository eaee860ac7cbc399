//! Python packages the tests use, installed with pip into the venv
//! `target/venv-tests` (never into the system Python): `dkimpy`, the DKIM
//! signer and verifier of the byte-exact header edit test
//! (`tests/it/mem_dkim.rs`), and for the mail authentication interop tests
//! (`tests/it/mail_auth.rs`) `PyNaCl` (dkimpy's ed25519), `pyspf` (SPF,
//! on dnspython) and `authheaders` (DMARC). Each is checked by importing
//! it the way the tests do; a second run costs one `python -c`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Every package installed into the venv, pinned.
pub const PACKAGES: &[&str] = &[
    "dkimpy==1.1.8",
    "pynacl==1.6.2",
    "pyspf==2.0.14",
    "dnspython==2.9.2",
    "authheaders==0.16.3",
];

/// The venv's python.
pub fn python(root: &Path) -> PathBuf {
    root.join("target/venv-tests/bin/python")
}

/// Whether dkimpy imports and signs in the venv (what the test does).
pub fn check(root: &Path) -> Result<()> {
    let out = Command::new(python(root))
        .args([
            "-c",
            "import dkim, dkim.crypto, nacl, spf, authheaders; \
             print('dkimpy', dkim.__name__, 'sign' in dir(dkim))",
        ])
        .output()
        .context("running target/venv-tests/bin/python")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !text.contains("dkimpy dkim True") {
        bail!(
            "dkimpy does not import in target/venv-tests ({}{}); \
             run `cargo xtask test` without --no-install",
            text.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Creates the venv and installs dkimpy when the check fails.
pub fn ensure(root: &Path) -> Result<()> {
    if check(root).is_ok() {
        return Ok(());
    }
    let venv = root.join("target/venv-tests");
    eprintln!(
        "pytools: installing {} into target/venv-tests",
        PACKAGES.join(" ")
    );
    // A venv whose pip no longer runs (the tree was moved, its python
    // removed) is rebuilt from scratch.
    let usable = Command::new(venv.join("bin/pip"))
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !usable {
        crate::sh::run(
            Command::new("python3")
                .args(["-m", "venv", "--clear"])
                .arg(&venv),
        )
        .context("python3 -m venv (is python3 with venv installed?)")?;
    }
    crate::sh::run(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(PACKAGES),
    )?;
    check(root)
}

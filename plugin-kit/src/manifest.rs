//! `wasmtp-plugin.toml`: what a plugin project is and how it is built.
//!
//! ```toml
//! name = "my-plugin"
//! language = "rust"
//! contract = "wasmtp:plugin@0.1.0"
//! build = [["cargo", "build", "--release", "--target", "wasm32-wasip2"]]
//! output = "target/wasm32-wasip2/release/my_plugin.wasm"
//!
//! [config]          # the plugin's default [plugins.config] table
//! refuse = "blocked@example.test"
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::Lang;

/// The manifest's file name in a project folder.
pub const FILE: &str = "wasmtp-plugin.toml";

/// A plugin project's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The plugin's name (its `[[plugins]] name` in a gateway config).
    pub name: String,
    /// Its language.
    pub language: Lang,
    /// The WIT contract it is written against, `wasmtp:plugin@X.Y.Z`.
    pub contract: String,
    /// The build steps, run in order in the project folder: each a program
    /// (a tool name of [`crate::toolchain`] or any program on `PATH`) and
    /// its arguments.
    pub build: Vec<Vec<String>>,
    /// C: the core module the steps produce; `wasmtp plugin build` turns it
    /// into the component `output` (wasi preview1 reactor adapter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core_module: Option<PathBuf>,
    /// The component the build produces, relative to the project folder.
    pub output: PathBuf,
    /// The plugin's default config (`[plugins.config]`), given to `init`
    /// by the check after the build.
    #[serde(default)]
    pub config: toml::Table,
}

impl Manifest {
    /// Reads `dir/wasmtp-plugin.toml`; errors name the file and the line.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {} (a plugin project folder holds one: `wasmtp plugin new` writes it)",
                path.display()
            )
        })?;
        let manifest: Manifest = toml::from_str(&text)
            .with_context(|| format!("{}: invalid manifest", path.display()))?;
        if manifest.build.iter().any(|step| step.is_empty()) {
            bail!("{}: build: a step is an empty list", path.display());
        }
        manifest
            .check_contract(crate::embedded::contract_version())
            .with_context(|| format!("{}: contract", path.display()))?;
        Ok(manifest)
    }

    /// Whether this gateway's contract version `host` links a plugin
    /// written against `self.contract`: the same `wasmtp:plugin` major and
    /// minor version, and not newer than the host's.
    pub fn check_contract(&self, host: &str) -> Result<()> {
        let Some(version) = self.contract.strip_prefix("wasmtp:plugin@") else {
            bail!(
                "{:?} is not a wasmtp:plugin contract (expected wasmtp:plugin@X.Y.Z)",
                self.contract
            );
        };
        let (Some(want), Some(have)) = (parse_version(version), parse_version(host)) else {
            bail!("{:?}: the version is not X.Y.Z", self.contract);
        };
        if want.0 != have.0 || want.1 != have.1 || want.2 > have.2 {
            bail!(
                "the project is written against wasmtp:plugin@{version}; this wasmtp links \
                 wasmtp:plugin@{}.{}.x up to {host}",
                have.0,
                have.1
            );
        }
        Ok(())
    }

    /// The component the build produced. A cargo build writes into
    /// `$CARGO_TARGET_DIR` when it is set: an `output` under `target/` is
    /// then looked for there.
    pub fn output_path(&self, dir: &Path) -> PathBuf {
        let cargo_built = self
            .build
            .iter()
            .any(|s| s.first().map(String::as_str) == Some(crate::toolchain::CARGO));
        if let (true, Ok(rest), Some(target)) = (
            cargo_built,
            self.output.strip_prefix("target"),
            std::env::var_os("CARGO_TARGET_DIR"),
        ) {
            return dir.join(target).join(rest);
        }
        dir.join(&self.output)
    }
}

fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let mut parts = v.split('.').map(|p| p.parse::<u64>().ok());
    let version = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(contract: &str) -> Manifest {
        Manifest {
            name: "p".into(),
            language: Lang::Rust,
            contract: contract.into(),
            build: vec![crate::lang::rust_args()],
            core_module: None,
            output: "target/wasm32-wasip2/release/p.wasm".into(),
            config: toml::Table::new(),
        }
    }

    #[test]
    fn contracts_link_within_the_same_minor_version() {
        assert!(
            manifest("wasmtp:plugin@0.1.0")
                .check_contract("0.1.0")
                .is_ok()
        );
        assert!(
            manifest("wasmtp:plugin@0.1.0")
                .check_contract("0.1.4")
                .is_ok()
        );
        let newer = manifest("wasmtp:plugin@0.1.5").check_contract("0.1.4");
        assert!(format!("{:#}", newer.unwrap_err()).contains("up to 0.1.4"));
        assert!(
            manifest("wasmtp:plugin@0.2.0")
                .check_contract("0.1.4")
                .is_err()
        );
        assert!(
            manifest("other:plugin@0.1.0")
                .check_contract("0.1.0")
                .is_err()
        );
        assert!(
            manifest("wasmtp:plugin@0.1")
                .check_contract("0.1.0")
                .is_err()
        );
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), "name = \"p\"\nlanguage = \"go\"\n").unwrap();
        let err = format!("{:#}", Manifest::load(dir.path()).unwrap_err());
        assert!(err.contains(FILE) && err.contains("line 2"), "{err}");
        let err = format!(
            "{:#}",
            Manifest::load(&dir.path().join("none")).unwrap_err()
        );
        assert!(err.contains("plugin new"), "{err}");
    }

    #[test]
    fn a_manifest_reads_back_what_was_written() {
        let m = manifest("wasmtp:plugin@0.1.0");
        let text = toml::to_string(&m).unwrap();
        assert_eq!(toml::from_str::<Manifest>(&text).unwrap(), m);
    }
}

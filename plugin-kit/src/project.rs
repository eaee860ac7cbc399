//! `wasmtp plugin build`: run a project's build steps and produce its
//! component. (Checking the component links against the gateway needs the
//! gateway's host: `wasmtp` does that after [`build`].)

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::manifest::Manifest;
use crate::toolchain;

/// A finished build.
#[derive(Debug, Clone)]
pub struct Built {
    /// The project's manifest.
    pub manifest: Manifest,
    /// The component.
    pub output: PathBuf,
    /// How long the steps took.
    pub elapsed: Duration,
}

/// Builds the project in `dir`: every step of its manifest in order (their
/// output goes to this process's stderr), then, for a C project, the core
/// module into a component. Every tool is looked up before the first step
/// runs, so a missing one is reported (with its install command, a
/// [`crate::MissingTool`] in the chain) before anything is built.
pub fn build(dir: &Path) -> Result<Built> {
    // Absolute, so the reported `output` is usable from anywhere.
    let dir = &std::path::absolute(dir).with_context(|| format!("{}", dir.display()))?;
    let manifest = Manifest::load(dir)?;
    let started = Instant::now();
    let mut commands = Vec::new();
    for step in &manifest.build {
        let (program, args) = step.split_first().context("empty build step")?;
        let mut cmd = toolchain::resolve(program, dir)?;
        cmd.args(args).current_dir(dir).stdin(Stdio::null());
        // A step's output is progress for the user, never ours to parse.
        cmd.stdout(std::io::stderr());
        commands.push((step.join(" "), cmd));
    }
    for (line, mut cmd) in commands {
        eprintln!("$ {line}");
        let status = cmd
            .status()
            .with_context(|| format!("cannot start `{line}`"))?;
        if !status.success() {
            bail!("build step `{line}` failed ({status})");
        }
    }
    let output = manifest.output_path(dir);
    if let Some(core) = &manifest.core_module {
        let core = dir.join(core);
        let bytes = std::fs::read(&core)
            .with_context(|| format!("the build did not produce {}", core.display()))?;
        let component = crate::c::componentize(&bytes)
            .with_context(|| format!("componentizing {}", core.display()))?;
        std::fs::write(&output, component)
            .with_context(|| format!("writing {}", output.display()))?;
    }
    if !output.is_file() {
        bail!(
            "the build finished but {} is missing (`output` in {})",
            output.display(),
            crate::manifest::FILE
        );
    }
    Ok(Built {
        manifest,
        output,
        elapsed: started.elapsed(),
    })
}

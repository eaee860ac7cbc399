//! Builds the JavaScript, Python and C plugins into components.
//!
//! Entry point: [`build_all`], which installs the toolchains when missing
//! (npm, pip in a venv, apt) and builds every plugin under
//! `example-plugins/{js,python,c}/<name>` (plus the SDKs' test fixtures under
//! `plugins-sdk/{js,python}/fixtures/<name>`) into `<out_dir>/<name>.wasm`
//! (fixtures: `<out_dir>/fixtures/<name>.wasm`).
//!
//! A plugin is rebuilt only when its inputs changed: the hash of its sources,
//! its language's SDK, the WIT contract and the toolchain version is kept in
//! `<out_dir>/.langs/<name>.sha256`.
//!
//! A JavaScript plugin that defines `transactionEnded`, or a Python plugin
//! module that defines `Lifecycle` (`Lifecycle = wasmtp.export_lifecycle(..)`),
//! or a C plugin that sets `.transaction_ended`, is built against the world
//! `plugin-with-lifecycle` and exports the
//! optional `lifecycle` interface; every other plugin against `plugin`.
//!
//! Toolchains:
//! - JavaScript: `@bytecodealliance/componentize-js` (pinned by
//!   `plugins-sdk/js/package-lock.json`, installed with `npm ci` into
//!   `plugins-sdk/js/node_modules`).
//! - Python: `componentize-py` from pip in `target/venv-plugins`.
//! - C: Debian's clang-14 / lld-14 / wasi-libc; bindings from the
//!   `wit-bindgen-c` crate and componentization by the `wit-component` crate
//!   with wasmtime's preview1 reactor adapter, all linked into this xtask (no
//!   separate CLI install).
//!
//! The recipes themselves (command lines, the JS entry, the C bindings and
//! componentization, toolchain checks) are the `wasmtp-plugin-kit` crate's,
//! shared with `wasmtp plugin build`; this file discovers, stages, caches
//! and installs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use wasmtp_plugin_kit::toolchain::{
    self as kit_tool, C_PACKAGES, COMPONENTIZE_PY_VERSION as COMPONENTIZE_PY,
};
use wasmtp_plugin_kit::{Lang, lang as recipe};

/// Bumped when the build recipe changes, to invalidate every stamp.
const RECIPE: &str = "langs-recipe-3";

/// The languages built here (Rust plugins are built by `plugins.rs`), in
/// build order.
pub const LANGS: [Lang; 3] = [Lang::C, Lang::Js, Lang::Python];

/// One plugin to build.
#[derive(Debug, Clone)]
pub struct PluginSrc {
    /// Its language.
    pub lang: Lang,
    /// Output name: `<out_dir>/<name>.wasm` (`<out_dir>/fixtures/<name>.wasm`
    /// for a test fixture).
    pub name: String,
    /// A test fixture of an SDK rather than an example plugin.
    pub fixture: bool,
    /// Its source folder.
    pub dir: PathBuf,
}

/// The repository root (the parent of the xtask crate).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Installs the toolchains if needed and builds every JS, Python and C plugin
/// into `<out_dir>/<name>.wasm`, skipping those whose inputs did not change.
pub fn build_all(out_dir: &Path) -> Result<()> {
    build_langs(out_dir, &LANGS)
}

/// Like [`build_all`], restricted to some languages.
pub fn build_langs(out_dir: &Path, langs: &[Lang]) -> Result<()> {
    let root = root();
    fs::create_dir_all(out_dir.join(".langs"))
        .with_context(|| format!("creating {}", out_dir.display()))?;
    let plugins = discover(&root)?;
    for &lang in langs {
        let mine: Vec<_> = plugins.iter().filter(|p| p.lang == lang).collect();
        if mine.is_empty() {
            continue;
        }
        let tool = ensure_toolchain(&root, lang)?;
        for p in mine {
            build_one(&root, out_dir, p, &tool)?;
        }
    }
    Ok(())
}

/// Every plugin source folder of the three languages.
pub fn discover(root: &Path) -> Result<Vec<PluginSrc>> {
    let mut out = Vec::new();
    for lang in LANGS {
        for (parent, fixture) in [
            (root.join("example-plugins").join(lang.name()), false),
            (
                root.join("plugins-sdk").join(lang.name()).join("fixtures"),
                true,
            ),
        ] {
            let Ok(entries) = fs::read_dir(&parent) else {
                continue;
            };
            let mut dirs: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect();
            dirs.sort();
            for dir in dirs {
                let name = dir
                    .file_name()
                    .and_then(|n| n.to_str())
                    .context("plugin folder name is not UTF-8")?
                    .to_string();
                out.push(PluginSrc {
                    lang,
                    name,
                    fixture,
                    dir,
                });
            }
        }
    }
    let mut names: Vec<&str> = out.iter().map(|p| p.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        bail!(
            "two plugins are named {:?}: plugin folder names must be unique across languages",
            w[0]
        );
    }
    Ok(out)
}

/// What a language's build needs once its toolchain is there.
#[derive(Debug, Clone)]
struct Toolchain {
    /// Version text, part of the cache key.
    version: String,
    /// The program to run (node, componentize-py or clang).
    program: PathBuf,
    /// JS: the componentize-js CLI script.
    script: Option<PathBuf>,
}

fn ensure_toolchain(root: &Path, lang: Lang) -> Result<Toolchain> {
    match lang {
        Lang::Js => ensure_js(root),
        Lang::Python => ensure_python(root),
        Lang::C => ensure_c(),
        Lang::Rust => bail!("Rust plugins are built by plugins.rs"),
    }
}

fn ensure_js(root: &Path) -> Result<Toolchain> {
    let sdk = root.join("plugins-sdk/js");
    let pkg = sdk.join(kit_tool::COMPONENTIZE_JS_PACKAGE);
    if kit_tool::componentize_js_cli(&sdk).is_err() {
        eprintln!("langs: installing componentize-js (npm ci in plugins-sdk/js)");
        // `npm ci` refuses the lock here: the registry lacks optional platform
        // packages it lists. `npm install` follows the lock and skips them.
        run(Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&sdk))
        .context("npm ci in plugins-sdk/js (is Node.js >= 18 with npm installed?)")?;
    }
    let version = fs::read_to_string(pkg.join("package.json"))
        .context("reading componentize-js package.json")?;
    let version = version
        .lines()
        .find(|l| l.trim_start().starts_with("\"version\""))
        .unwrap_or("unknown")
        .trim()
        .to_string();
    Ok(Toolchain {
        version: format!("componentize-js {version}"),
        program: PathBuf::from("node"),
        script: Some(kit_tool::componentize_js_cli(&sdk)?),
    })
}

fn ensure_python(root: &Path) -> Result<Toolchain> {
    let venv = root.join("target/venv-plugins");
    let program = venv.join("bin/componentize-py");
    let installed = Command::new(&program)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let version = match installed {
        Some(v) if v.contains(COMPONENTIZE_PY) => v,
        _ => {
            eprintln!(
                "langs: installing componentize-py {COMPONENTIZE_PY} into target/venv-plugins"
            );
            // A venv whose interpreter no longer runs (its directory was
            // moved or its python removed) is rebuilt from scratch.
            let usable = Command::new(venv.join("bin/pip"))
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success());
            if !usable {
                run(Command::new("python3")
                    .args(["-m", "venv", "--clear"])
                    .arg(&venv))
                .context("python3 -m venv (is python3 with venv installed?)")?;
            }
            run(Command::new(venv.join("bin/pip")).args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                &format!("componentize-py=={COMPONENTIZE_PY}"),
            ]))?;
            let out = Command::new(&program).arg("--version").output()?;
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        }
    };
    Ok(Toolchain {
        version,
        program,
        script: None,
    })
}

fn ensure_c() -> Result<Toolchain> {
    if !kit_tool::c_toolchain_present() {
        eprintln!("langs: installing {} with apt-get", C_PACKAGES.join(" "));
        let install = |update: bool| -> Result<()> {
            if update {
                run(Command::new("apt-get").args(["update", "-q"]))?;
            }
            run(Command::new("apt-get")
                .args(["install", "-y", "-q", "--no-install-recommends"])
                .args(C_PACKAGES)
                .env("DEBIAN_FRONTEND", "noninteractive"))
        };
        if install(false).is_err() {
            install(true).context(
                "apt-get install of the C toolchain failed (root and Debian's archive are needed)",
            )?;
        }
        if !kit_tool::c_toolchain_present() {
            bail!("C toolchain still missing after apt-get install");
        }
    }
    let out = Command::new("clang-14").arg("--version").output()?;
    let version = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("clang-14")
        .to_string();
    Ok(Toolchain {
        version,
        program: PathBuf::from("clang-14"),
        script: None,
    })
}

/// Hash of everything a plugin's build depends on.
fn input_hash(root: &Path, p: &PluginSrc, tool: &Toolchain) -> Result<String> {
    let mut h = Sha256::new();
    h.update(RECIPE);
    h.update(&tool.version);
    for (dir, exts) in [
        (root.join("wit"), &["wit"][..]),
        (p.dir.clone(), p.lang.sources()),
        (
            root.join("plugins-sdk").join(p.lang.name()).join("src"),
            p.lang.sources(),
        ),
    ] {
        let mut files = Vec::new();
        list_files(&dir, &mut files)?;
        files.retain(|f| {
            f.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| exts.contains(&e))
        });
        files.sort();
        for f in files {
            h.update(
                f.strip_prefix(root)
                    .unwrap_or(&f)
                    .to_string_lossy()
                    .as_bytes(),
            );
            h.update([0]);
            h.update(fs::read(&f).with_context(|| format!("reading {}", f.display()))?);
            h.update([0]);
        }
    }
    Ok(hex(&h.finalize()))
}

fn list_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries {
        let path = e?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || name == "__pycache__" || name == "node_modules" {
            continue;
        }
        if path.is_dir() {
            list_files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn build_one(root: &Path, out_dir: &Path, p: &PluginSrc, tool: &Toolchain) -> Result<()> {
    let dest = if p.fixture {
        out_dir.join("fixtures")
    } else {
        out_dir.to_path_buf()
    };
    fs::create_dir_all(&dest)?;
    let out = dest.join(format!("{}.wasm", p.name));
    let stamp = out_dir.join(".langs").join(format!("{}.sha256", p.name));
    let hash = input_hash(root, p, tool)?;
    if out.exists() && fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == hash) {
        return Ok(());
    }
    let work = root.join("target/langs-build").join(&p.name);
    if work.exists() {
        fs::remove_dir_all(&work).with_context(|| format!("cleaning {}", work.display()))?;
    }
    fs::create_dir_all(&work)?;
    let started = Instant::now();
    let tmp = dest.join(format!(".{}.wasm.tmp", p.name));
    match p.lang {
        Lang::Js => build_js(root, p, tool, &work, &tmp),
        Lang::Python => build_python(root, p, tool, &tmp),
        Lang::C => build_c(root, p, tool, &work, &tmp),
        Lang::Rust => bail!("Rust plugins are built by plugins.rs"),
    }
    .with_context(|| format!("building {} plugin {}", p.lang, p.dir.display()))?;
    fs::rename(&tmp, &out)?;
    fs::write(&stamp, &hash)?;
    let size = fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "langs: built {} ({}) in {:.1}s, {:.1} MiB",
        out.display(),
        p.lang,
        started.elapsed().as_secs_f64(),
        size as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}

/// A path as a recipe argument.
fn arg(path: &Path) -> Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

/// Runs a recipe (its first word is the tool, `program` here).
fn run_recipe(program: &mut Command, recipe: &[String]) -> Result<()> {
    run(program.args(recipe.iter().skip(1)))
}

fn build_js(root: &Path, p: &PluginSrc, tool: &Toolchain, work: &Path, out: &Path) -> Result<()> {
    // Stage the plugin's files beside the SDK module and a generated entry
    // point that exports the `hooks` interface.
    copy_tree(&p.dir, work)?;
    copy_tree(&root.join("plugins-sdk/js/src"), work)?;
    let lifecycle = wants_lifecycle(p)?;
    fs::write(work.join("wasmtp-entry.js"), recipe::js_entry(lifecycle))?;
    let script = tool.script.as_ref().context("componentize-js path")?;
    let wit = root.join("wit");
    let args = recipe::js_args(
        "wasmtp-entry.js",
        arg(&wit)?,
        recipe::world(lifecycle),
        arg(out)?,
    );
    run_recipe(
        Command::new(&tool.program).arg(script).current_dir(work),
        &args,
    )
}

fn build_python(root: &Path, p: &PluginSrc, tool: &Toolchain, out: &Path) -> Result<()> {
    let world = recipe::world(wants_lifecycle(p)?);
    let (wit, sdk) = (root.join("wit"), root.join("plugins-sdk/python/src"));
    let args = recipe::python_args(arg(&wit)?, world, &[arg(&p.dir)?, arg(&sdk)?], arg(out)?);
    run_recipe(&mut Command::new(&tool.program), &args)
}

/// Whether a plugin exports the optional `lifecycle` interface: a JS source
/// that mentions `transactionEnded`, a Python module that assigns `Lifecycle`
/// at top level, a C source that sets `.transaction_ended` (compiled with
/// `-DWASMTP_LIFECYCLE`).
fn wants_lifecycle(p: &PluginSrc) -> Result<bool> {
    let mut files = Vec::new();
    list_files(&p.dir, &mut files)?;
    files.retain(|f| {
        f.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| p.lang.sources().contains(&e))
    });
    for f in files {
        let text = fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
        if p.lang.wants_lifecycle(&text) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn build_c(root: &Path, p: &PluginSrc, tool: &Toolchain, work: &Path, out: &Path) -> Result<()> {
    let gen_dir = work.join("gen");
    let lifecycle = wants_lifecycle(p)?;
    let wit = fs::read_to_string(root.join("wit/plugin.wit")).context("reading wit/plugin.wit")?;
    wasmtp_plugin_kit::c::bindings(&wit, recipe::world(lifecycle), &gen_dir)?;
    let sdk = root.join("plugins-sdk/c/src");
    let mut sources: Vec<PathBuf> = vec![
        gen_dir.join("plugin.c"),
        gen_dir.join("plugin_component_type.o"),
    ];
    for dir in [sdk.clone(), p.dir.clone()] {
        let mut files = Vec::new();
        list_files(&dir, &mut files)?;
        files.retain(|f| f.extension().is_some_and(|e| e == "c"));
        files.sort();
        sources.extend(files);
    }
    let sources = sources.iter().map(|s| arg(s)).collect::<Result<Vec<_>>>()?;
    let core = work.join("core.wasm");
    let args = recipe::c_args(
        lifecycle,
        &[arg(&gen_dir)?, arg(&sdk)?],
        &sources,
        arg(&core)?,
    );
    run_recipe(&mut Command::new(&tool.program), &args)?;
    let component = wasmtp_plugin_kit::c::componentize(&fs::read(&core)?)?;
    fs::write(out, component)?;
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let mut files = Vec::new();
    list_files(from, &mut files)?;
    for f in files {
        let rel = f.strip_prefix(from)?;
        let dest = to.join(rel);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::copy(&f, &dest).with_context(|| format!("copying {}", f.display()))?;
    }
    Ok(())
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("running {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{:?} failed: {status}", cmd);
    }
    Ok(())
}

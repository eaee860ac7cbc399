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

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// componentize-py version installed into the venv.
const COMPONENTIZE_PY: &str = "0.25.1";
/// Debian packages of the C toolchain.
const C_PACKAGES: &[&str] = &[
    "clang-14",
    "lld-14",
    "wasi-libc",
    "libclang-rt-14-dev-wasm32",
];
/// Bumped when the build recipe changes, to invalidate every stamp.
const RECIPE: &str = "langs-recipe-3";
/// The WIT world every plugin is built against.
const WORLD: &str = "plugin";
/// The world of a plugin that also exports the optional `lifecycle` interface.
const WORLD_LIFECYCLE: &str = "plugin-with-lifecycle";

/// A plugin language other than Rust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// JavaScript via ComponentizeJS.
    Js,
    /// Python via componentize-py.
    Python,
    /// C via clang + wit-bindgen-c + wit-component.
    C,
}

impl Lang {
    /// Every language, in build order.
    pub const ALL: [Lang; 3] = [Lang::C, Lang::Js, Lang::Python];

    /// File extensions that are build inputs (READMEs are not).
    fn sources(self) -> &'static [&'static str] {
        match self {
            Lang::Js => &["js", "mjs", "json"],
            Lang::Python => &["py"],
            Lang::C => &["c", "h"],
        }
    }

    /// Folder name under `example-plugins/` and `plugins-sdk/`.
    pub fn dir(self) -> &'static str {
        match self {
            Lang::Js => "js",
            Lang::Python => "python",
            Lang::C => "c",
        }
    }
}

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
    build_langs(out_dir, &Lang::ALL)
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
    for lang in Lang::ALL {
        for (parent, fixture) in [
            (root.join("example-plugins").join(lang.dir()), false),
            (
                root.join("plugins-sdk").join(lang.dir()).join("fixtures"),
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
    }
}

fn ensure_js(root: &Path) -> Result<Toolchain> {
    let sdk = root.join("plugins-sdk/js");
    let pkg = sdk.join("node_modules/@bytecodealliance/componentize-js");
    let script = pkg.join("src/cli.js");
    if !script.exists() {
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
        script: Some(script),
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

/// Paths of Debian's C-to-wasm toolchain.
fn c_toolchain_present() -> bool {
    Path::new("/usr/bin/clang-14").exists()
        && Path::new("/usr/lib/llvm-14/bin/wasm-ld").exists()
        && Path::new("/usr/lib/wasm32-wasi/libc.a").exists()
        && clang_rt_present()
}

fn clang_rt_present() -> bool {
    let Ok(entries) = fs::read_dir("/usr/lib/llvm-14/lib/clang") else {
        return false;
    };
    entries.filter_map(|e| e.ok()).any(|e| {
        e.path()
            .join("lib/wasi/libclang_rt.builtins-wasm32.a")
            .exists()
    })
}

fn ensure_c() -> Result<Toolchain> {
    if !c_toolchain_present() {
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
        if !c_toolchain_present() {
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
            root.join("plugins-sdk").join(p.lang.dir()).join("src"),
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
    }
    .with_context(|| format!("building {} plugin {}", p.lang.dir(), p.dir.display()))?;
    fs::rename(&tmp, &out)?;
    fs::write(&stamp, &hash)?;
    let size = fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "langs: built {} ({}) in {:.1}s, {:.1} MiB",
        out.display(),
        p.lang.dir(),
        started.elapsed().as_secs_f64(),
        size as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}

fn build_js(root: &Path, p: &PluginSrc, tool: &Toolchain, work: &Path, out: &Path) -> Result<()> {
    // Stage the plugin's files beside the SDK module and a generated entry
    // point that exports the `hooks` interface.
    copy_tree(&p.dir, work)?;
    copy_tree(&root.join("plugins-sdk/js/src"), work)?;
    let lifecycle = wants_lifecycle(p)?;
    let mut entry = String::from(
        "// Generated by xtask (langs.rs): exports the plugin through the SDK.\n\
         import plugin from \"./plugin.js\";\n\
         import { exportHooks, exportLifecycle } from \"./wasmtp.js\";\n\
         export const hooks = exportHooks(plugin);\n",
    );
    if lifecycle {
        entry.push_str("export const lifecycle = exportLifecycle(plugin);\n");
    }
    fs::write(work.join("wasmtp-entry.js"), entry)?;
    let script = tool.script.as_ref().context("componentize-js path")?;
    run(Command::new(&tool.program)
        .arg(script)
        .arg("wasmtp-entry.js")
        .arg("--wit")
        .arg(root.join("wit"))
        .arg("--world-name")
        .arg(if lifecycle { WORLD_LIFECYCLE } else { WORLD })
        // `fetch` stays (outgoing wasi:http, limited by the plugin's
        // `http` grant); a plugin is not an HTTP server.
        .args(["--disable", "fetch-event", "-o"])
        .arg(out)
        .current_dir(work))
}

fn build_python(root: &Path, p: &PluginSrc, tool: &Toolchain, out: &Path) -> Result<()> {
    let world = if wants_lifecycle(p)? {
        WORLD_LIFECYCLE
    } else {
        WORLD
    };
    run(Command::new(&tool.program)
        .arg("-d")
        .arg(root.join("wit"))
        .args(["-w", world, "componentize", "plugin", "-p"])
        .arg(&p.dir)
        .arg("-p")
        .arg(root.join("plugins-sdk/python/src"))
        .arg("-o")
        .arg(out))
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
        let found = match p.lang {
            Lang::Js => text.contains("transactionEnded"),
            Lang::Python => text.lines().any(|l| {
                l.strip_prefix("Lifecycle")
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            }),
            Lang::C => text.contains(".transaction_ended"),
        };
        if found {
            return Ok(true);
        }
    }
    Ok(false)
}

fn build_c(root: &Path, p: &PluginSrc, tool: &Toolchain, work: &Path, out: &Path) -> Result<()> {
    let gen_dir = work.join("gen");
    fs::create_dir_all(&gen_dir)?;
    let lifecycle = wants_lifecycle(p)?;
    c_bindings(
        &root.join("wit"),
        if lifecycle { WORLD_LIFECYCLE } else { WORLD },
        &gen_dir,
    )?;
    let mut sources: Vec<PathBuf> = Vec::new();
    for dir in [root.join("plugins-sdk/c/src"), p.dir.clone()] {
        let mut files = Vec::new();
        list_files(&dir, &mut files)?;
        files.retain(|f| f.extension().is_some_and(|e| e == "c"));
        files.sort();
        sources.extend(files);
    }
    let core = work.join("core.wasm");
    run(Command::new(&tool.program)
        .args([
            "--target=wasm32-wasi",
            "--sysroot=/usr",
            "-mexec-model=reactor",
            "-O2",
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Wno-unused-parameter",
            "-Werror=incompatible-pointer-types",
            "-fuse-ld=lld",
            "-Wl,--strip-debug",
        ])
        .args(lifecycle.then_some("-DWASMTP_LIFECYCLE"))
        .arg("-I")
        .arg(&gen_dir)
        .arg("-I")
        .arg(root.join("plugins-sdk/c/src"))
        .arg(gen_dir.join("plugin.c"))
        .arg(gen_dir.join("plugin_component_type.o"))
        .args(&sources)
        .arg("-o")
        .arg(&core))?;
    let module = fs::read(&core)?;
    let component = wit_component::ComponentEncoder::default()
        .module(&module)?
        .adapter(
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?
        .validate(true)
        .encode()
        .context("wit-component: turning the core module into a component")?;
    fs::write(out, component)?;
    Ok(())
}

/// Generates the C bindings of `world` (what `wit-bindgen c` does), named
/// as for world `plugin` whatever the world (so the SDK compiles against
/// both): `plugin.h`, `plugin.c` and `plugin_component_type.o`.
pub fn c_bindings(wit: &Path, world: &str, out: &Path) -> Result<()> {
    use wit_bindgen_core::wit_parser::Resolve;
    let mut resolve = Resolve::default();
    let (pkg, _) = resolve.push_dir(wit).context("parsing wit/")?;
    let world = resolve.select_world(&[pkg], Some(world))?;
    let opts = wit_bindgen_c::Opts {
        autodrop_borrows: wit_bindgen_c::Enabled::Yes,
        rename_world: Some(WORLD.to_string()),
        ..Default::default()
    };
    let mut files = wit_bindgen_core::Files::default();
    opts.build().generate(&mut resolve, world, &mut files)?;
    fs::create_dir_all(out)?;
    for (name, contents) in files.iter() {
        fs::write(out.join(name), contents)?;
    }
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

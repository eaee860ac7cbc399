//! Finding the program of each build step, and the exact command that
//! installs it when it is missing.
//!
//! A build step names its program by a tool name ([`CARGO`],
//! [`COMPONENTIZE_JS`], [`COMPONENTIZE_PY`], [`CLANG`]) or any program on
//! `PATH`. Where each tool is looked for:
//! - `cargo`: on `PATH` (or `$CARGO`), with the `wasm32-wasip2` target
//!   installed for the `rustc` the project uses.
//! - `componentize-js`: `$WASMTP_COMPONENTIZE_JS` (an installed
//!   `@bytecodealliance/componentize-js` package folder, or its
//!   `src/cli.js`), else the project's `node_modules`; run with `node`.
//! - `componentize-py`: the project's `.venv/bin`, else `PATH`.
//! - `clang-14`: on `PATH`, with Debian's wasi-libc, lld and the wasm32
//!   compiler runtime.

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The Rust target plugins are built for.
pub const WASM_TARGET: &str = "wasm32-wasip2";
/// Tool name of the Rust build.
pub const CARGO: &str = "cargo";
/// Tool name of ComponentizeJS.
pub const COMPONENTIZE_JS: &str = "componentize-js";
/// Tool name of componentize-py.
pub const COMPONENTIZE_PY: &str = "componentize-py";
/// Tool name of the C compiler.
pub const CLANG: &str = "clang-14";
/// The componentize-py version the Python SDK is built and tested with.
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";
/// Debian packages of the C toolchain.
pub const C_PACKAGES: &[&str] = &[
    "clang-14",
    "lld-14",
    "wasi-libc",
    "libclang-rt-14-dev-wasm32",
];
/// Environment variable pointing at an installed componentize-js.
pub const COMPONENTIZE_JS_ENV: &str = "WASMTP_COMPONENTIZE_JS";
/// componentize-js's CLI script inside its package folder.
const COMPONENTIZE_JS_CLI: &str = "src/cli.js";
/// componentize-js's package folder inside `node_modules`.
pub const COMPONENTIZE_JS_PACKAGE: &str = "node_modules/@bytecodealliance/componentize-js";

/// A build program that is not installed, and the command that installs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingTool {
    /// What is missing (`the Rust target wasm32-wasip2`, `componentize-py`).
    pub what: String,
    /// The command (or commands) that install it.
    pub install: String,
}

impl fmt::Display for MissingTool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is not installed: run `{}`", self.what, self.install)
    }
}

impl std::error::Error for MissingTool {}

/// The install command of componentize-py into a project's `.venv`.
pub fn componentize_py_install() -> String {
    format!(
        "python3 -m venv .venv && .venv/bin/pip install componentize-py=={COMPONENTIZE_PY_VERSION}"
    )
}

/// The apt command installing the C toolchain.
pub fn c_install() -> String {
    format!("apt-get install {}", C_PACKAGES.join(" "))
}

/// The command running build tool `program` from the project `project`
/// (the step's arguments are added by the caller), or what is missing.
pub fn resolve(program: &str, project: &Path) -> Result<Command, MissingTool> {
    match program {
        CARGO => cargo(project),
        COMPONENTIZE_JS => componentize_js(project),
        COMPONENTIZE_PY => componentize_py(project),
        CLANG => clang(),
        other if on_path(other) || Path::new(other).is_file() => Ok(Command::new(other)),
        other => Err(MissingTool {
            what: format!("the program `{other}`"),
            install: format!("install `{other}` and put it on PATH"),
        }),
    }
}

fn cargo(project: &Path) -> Result<Command, MissingTool> {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let found = Path::new(&program).is_file() || on_path(&program.to_string_lossy());
    if !found {
        return Err(MissingTool {
            what: "cargo (Rust)".into(),
            install: format!(
                "curl https://sh.rustup.rs -sSf | sh && rustup target add {WASM_TARGET}"
            ),
        });
    }
    if !rust_target_installed(WASM_TARGET, project) {
        return Err(MissingTool {
            what: format!("the Rust target {WASM_TARGET}"),
            install: format!("rustup target add {WASM_TARGET}"),
        });
    }
    Ok(Command::new(program))
}

/// Whether the standard library of `target` is installed for the `rustc`
/// used in `dir` (`$RUSTC`, else `rustc`).
pub fn rust_target_installed(target: &str, dir: &Path) -> bool {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", target])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    let Some(libdir) = out
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    else {
        return false;
    };
    fs::read_dir(libdir)
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("libstd-"))
        })
        .unwrap_or(false)
}

/// The componentize-js CLI script: `$WASMTP_COMPONENTIZE_JS` or the
/// project's `node_modules`.
pub fn componentize_js_cli(project: &Path) -> Result<PathBuf, MissingTool> {
    if let Some(given) = std::env::var_os(COMPONENTIZE_JS_ENV) {
        let given = PathBuf::from(given);
        let cli = if given.is_dir() {
            given.join(COMPONENTIZE_JS_CLI)
        } else {
            given.clone()
        };
        if cli.is_file() {
            return Ok(cli);
        }
        return Err(MissingTool {
            what: format!(
                "componentize-js at {COMPONENTIZE_JS_ENV}={} (no {})",
                given.display(),
                cli.display()
            ),
            install: format!("unset {COMPONENTIZE_JS_ENV} && npm install"),
        });
    }
    let cli = project
        .join(COMPONENTIZE_JS_PACKAGE)
        .join(COMPONENTIZE_JS_CLI);
    if cli.is_file() {
        Ok(cli)
    } else {
        Err(MissingTool {
            what: format!("componentize-js (in {}/node_modules)", project.display()),
            install: format!("cd {} && npm install", project.display()),
        })
    }
}

fn componentize_js(project: &Path) -> Result<Command, MissingTool> {
    let cli = componentize_js_cli(project)?;
    if !on_path("node") {
        return Err(MissingTool {
            what: "Node.js (node, >= 18)".into(),
            install: "apt-get install nodejs npm".into(),
        });
    }
    let mut cmd = Command::new("node");
    cmd.arg(cli);
    Ok(cmd)
}

fn componentize_py(project: &Path) -> Result<Command, MissingTool> {
    let venv = project.join(".venv/bin").join(COMPONENTIZE_PY);
    if venv.is_file() {
        return Ok(Command::new(venv));
    }
    if on_path(COMPONENTIZE_PY) {
        return Ok(Command::new(COMPONENTIZE_PY));
    }
    Err(MissingTool {
        what: format!(
            "componentize-py (on PATH or in {}/.venv)",
            project.display()
        ),
        install: componentize_py_install(),
    })
}

/// Whether Debian's C-to-wasm toolchain is complete: clang-14, wasm-ld,
/// wasi-libc and the wasm32 compiler runtime.
pub fn c_toolchain_present() -> bool {
    on_path(CLANG)
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

fn clang() -> Result<Command, MissingTool> {
    if c_toolchain_present() {
        Ok(Command::new(CLANG))
    } else {
        Err(MissingTool {
            what: "the C toolchain for wasm (clang-14, lld-14, wasi-libc, the wasm32 compiler-rt)"
                .into(),
            install: c_install(),
        })
    }
}

/// Whether `program` is an executable file in a `PATH` folder (or, when it
/// holds a `/`, an executable file at that path).
pub fn on_path(program: &str) -> bool {
    if program.contains('/') {
        return is_executable(Path::new(program));
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| is_executable(&dir.join(program))))
        .unwrap_or(false)
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_names_its_install_command() {
        let e = MissingTool {
            what: "componentize-py".into(),
            install: componentize_py_install(),
        };
        assert_eq!(
            e.to_string(),
            "componentize-py is not installed: run `python3 -m venv .venv && \
             .venv/bin/pip install componentize-py==0.25.1`"
        );
        assert_eq!(
            c_install(),
            "apt-get install clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32"
        );
    }

    #[test]
    fn js_without_node_modules_asks_for_npm_install() {
        if std::env::var_os(COMPONENTIZE_JS_ENV).is_some() {
            return; // the environment points at an install: nothing to show
        }
        let dir = tempfile::tempdir().unwrap();
        let e = componentize_js_cli(dir.path()).unwrap_err();
        assert!(e.install.ends_with("&& npm install"), "{e}");
    }

    #[test]
    fn unknown_programs_must_be_on_path() {
        assert!(resolve("sh", Path::new(".")).is_ok());
        let e = resolve("surely-no-such-program", Path::new(".")).unwrap_err();
        assert!(e.to_string().contains("surely-no-such-program"), "{e}");
    }
}

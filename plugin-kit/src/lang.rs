//! The plugin languages and their build recipes.
//!
//! A recipe is a command line (program and arguments, no shell). The same
//! functions build the repository's example plugins (xtask) and write the
//! `build` steps of a new project's manifest, so the two never drift apart.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The WIT world every plugin is built against.
pub const WORLD: &str = "plugin";
/// The world of a plugin that also exports the optional `lifecycle` interface.
pub const WORLD_LIFECYCLE: &str = "plugin-with-lifecycle";

/// The WIT world of a plugin with or without the `lifecycle` export.
pub fn world(lifecycle: bool) -> &'static str {
    if lifecycle { WORLD_LIFECYCLE } else { WORLD }
}

/// A plugin language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Rust, with the `wasmtp-plugin-sdk` crate, for `wasm32-wasip2`.
    Rust,
    /// JavaScript via ComponentizeJS.
    Js,
    /// Python via componentize-py.
    Python,
    /// C via clang + wit-bindgen-c + wit-component.
    C,
}

impl Lang {
    /// Every language.
    pub const ALL: [Lang; 4] = [Lang::Rust, Lang::Js, Lang::Python, Lang::C];

    /// The name used on the command line, in manifests and as the folder
    /// under `example-plugins/` and `plugins-sdk/`.
    pub fn name(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Js => "js",
            Lang::Python => "python",
            Lang::C => "c",
        }
    }

    /// File extensions that are build inputs (READMEs are not).
    pub fn sources(self) -> &'static [&'static str] {
        match self {
            Lang::Rust => &["rs", "toml", "lock"],
            Lang::Js => &["js", "mjs", "json"],
            Lang::Python => &["py"],
            Lang::C => &["c", "h"],
        }
    }

    /// Whether a source file's `text` asks for the optional `lifecycle`
    /// export: JavaScript that mentions `transactionEnded`, a Python module
    /// that assigns `Lifecycle` at top level, C that sets
    /// `.transaction_ended` (compiled with `-DWASMTP_LIFECYCLE`). Rust
    /// plugins choose through the SDK's `export_plugin!`.
    pub fn wants_lifecycle(self, text: &str) -> bool {
        match self {
            Lang::Rust => false,
            Lang::Js => text.contains("transactionEnded"),
            Lang::Python => text.lines().any(|l| {
                l.strip_prefix("Lifecycle")
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            }),
            Lang::C => text.contains(".transaction_ended"),
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Lang {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "rust" | "rs" => Ok(Lang::Rust),
            "js" | "javascript" => Ok(Lang::Js),
            "python" | "py" => Ok(Lang::Python),
            "c" => Ok(Lang::C),
            other => Err(format!(
                "unknown plugin language {other:?} (one of: rust, js, python, c)"
            )),
        }
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// The Rust build: a release `cdylib` for `wasm32-wasip2` (a component).
pub fn rust_args() -> Vec<String> {
    strings(&[
        "cargo",
        "build",
        "--release",
        "--target",
        crate::toolchain::WASM_TARGET,
    ])
}

/// The JavaScript entry module: imports `./plugin.js` and exports it
/// through the SDK (`./wasmtp.js`), with the `lifecycle` export if asked.
pub fn js_entry(lifecycle: bool) -> String {
    let mut entry = String::from(
        "// Exports the plugin through the SDK (written by the wasmtp plugin kit).\n\
         import plugin from \"./plugin.js\";\n\
         import { exportHooks, exportLifecycle } from \"./wasmtp.js\";\n\
         export const hooks = exportHooks(plugin);\n",
    );
    if lifecycle {
        entry.push_str("export const lifecycle = exportLifecycle(plugin);\n");
    }
    entry
}

/// The componentize-js command (its program is resolved by
/// [`crate::toolchain`]): `entry` exported against world `world` of the WIT
/// folder `wit`, into `out`.
pub fn js_args(entry: &str, wit: &str, world: &str, out: &str) -> Vec<String> {
    strings(&[
        crate::toolchain::COMPONENTIZE_JS,
        entry,
        "--wit",
        wit,
        "--world-name",
        world,
        // `fetch` stays (outgoing wasi:http, limited by the plugin's `http`
        // grant); a plugin is not an HTTP server.
        "--disable",
        "fetch-event",
        "-o",
        out,
    ])
}

/// The componentize-py command: module `plugin` found on `paths` (the
/// plugin's folder and the SDK's), against world `world` of `wit`, into `out`.
pub fn python_args(wit: &str, world: &str, paths: &[&str], out: &str) -> Vec<String> {
    let mut args = strings(&[
        crate::toolchain::COMPONENTIZE_PY,
        "-d",
        wit,
        "-w",
        world,
        "componentize",
        "plugin",
    ]);
    for p in paths {
        args.push("-p".into());
        args.push(p.to_string());
    }
    args.push("-o".into());
    args.push(out.into());
    args
}

/// The clang command compiling a C plugin into a core module (a wasi
/// preview1 reactor, componentized afterwards by [`crate::c::componentize`]):
/// `includes` are `-I` folders (the bindings' and the SDK's), `sources`
/// the `.c` files and the bindings' `plugin_component_type.o`.
pub fn c_args(lifecycle: bool, includes: &[&str], sources: &[&str], out: &str) -> Vec<String> {
    let mut args = strings(&[
        crate::toolchain::CLANG,
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
    ]);
    if lifecycle {
        args.push("-DWASMTP_LIFECYCLE".into());
    }
    for dir in includes {
        args.push("-I".into());
        args.push(dir.to_string());
    }
    args.extend(sources.iter().map(|s| s.to_string()));
    args.push("-o".into());
    args.push(out.into());
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_parse_by_name_and_alias() {
        for lang in Lang::ALL {
            assert_eq!(lang.name().parse::<Lang>(), Ok(lang));
        }
        assert_eq!("JavaScript".parse::<Lang>(), Ok(Lang::Js));
        let err = "go".parse::<Lang>().unwrap_err();
        assert!(err.contains("rust, js, python, c"), "{err}");
    }

    #[test]
    fn lifecycle_is_detected_per_language() {
        assert!(Lang::Js.wants_lifecycle("  transactionEnded(conn, why) {}"));
        assert!(Lang::Python.wants_lifecycle("Lifecycle = wasmtp.export_lifecycle(P)"));
        assert!(!Lang::Python.wants_lifecycle("    Lifecycle = 1"));
        assert!(Lang::C.wants_lifecycle("WASMTP_PLUGIN(.transaction_ended = f);"));
        assert!(!Lang::C.wants_lifecycle("WASMTP_PLUGIN(.rcpt = f);"));
    }

    #[test]
    fn recipes_name_their_tool_first() {
        assert_eq!(rust_args()[0], "cargo");
        assert_eq!(
            js_args("e.js", "wit", WORLD, "o.wasm")[0],
            "componentize-js"
        );
        let py = python_args("wit", WORLD, &["src", "sdk"], "o.wasm");
        assert_eq!(py[0], "componentize-py");
        assert_eq!(py[7..11], ["-p", "src", "-p", "sdk"]);
        let c = c_args(true, &["gen"], &["a.c"], "core.wasm");
        assert_eq!(c[0], "clang-14");
        assert!(c.contains(&"-DWASMTP_LIFECYCLE".to_string()));
        assert_eq!(c[c.len() - 2..], ["-o", "core.wasm"]);
    }
}

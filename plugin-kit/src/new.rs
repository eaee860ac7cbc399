//! `wasmtp plugin new`: a standalone plugin project.
//!
//! The project holds everything its build needs but the toolchain: the
//! manifest (`wasmtp-plugin.toml`), the WIT contract and the language's SDK
//! as compiled into this binary ([`crate::embedded`]), a small working
//! plugin (the same behaviour in every language: RCPT to the address in
//! config `refuse` gets 550 5.7.1; data-post adds a header), a README and
//! `dialogs/basic.dialog`, one passing dialog test. A Rust project also
//! gets a `Cargo.lock` pinning the SDK's dependencies (so it builds
//! `--offline` from a filled cargo cache); a C project gets the generated
//! bindings, so it needs only clang.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::embedded::{self, File};
use crate::lang::{self, Lang, WORLD};
use crate::manifest::{self, Manifest};
use crate::toolchain;

/// Longest plugin name accepted.
const MAX_NAME: usize = 64;

/// Where the Rust SDK crate goes inside a Rust project.
const RUST_SDK_DIR: &str = "wasmtp-sdk";

/// Writes a new `lang` plugin project named `name` into `dir` (created if
/// missing; refused unless empty). Returns the files written, relative to
/// `dir`, in writing order.
pub fn create(name: &str, lang: Lang, dir: &Path) -> Result<Vec<PathBuf>> {
    check_name(name)?;
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir)
            .with_context(|| format!("{} is not a readable folder", dir.display()))?;
        if entries.next().is_some() {
            bail!(
                "{} is not empty: `wasmtp plugin new` writes a project into an empty or new folder",
                dir.display()
            );
        }
    }
    let project = plan(name, lang)?;
    let mut written = Vec::new();
    for (path, bytes) in &project.files {
        let dest = dir.join(path);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&dest, bytes).with_context(|| format!("writing {}", dest.display()))?;
        written.push(PathBuf::from(path));
    }
    if lang == Lang::C {
        crate::c::bindings(embedded::WIT, WORLD, &dir.join("bindings"))?;
        written.extend(
            crate::c::BINDING_FILES
                .iter()
                .map(|f| Path::new("bindings").join(f)),
        );
    }
    Ok(written)
}

/// A plugin name: a lowercase letter, then lowercase letters, digits and
/// `-` (it names the crate, the npm package and the component file).
pub fn check_name(name: &str) -> Result<()> {
    let ok = name.len() <= MAX_NAME
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        bail!(
            "invalid plugin name {name:?}: a lowercase letter, then lowercase letters, digits \
             and `-` (at most {MAX_NAME}, not ending in `-`)"
        );
    }
    Ok(())
}

/// What a new project is made of.
struct Plan {
    /// Files to write: path relative to the project, contents.
    files: Vec<(String, Vec<u8>)>,
}

/// The parts of the README and manifest that differ per language.
struct Parts {
    /// Build steps.
    build: Vec<Vec<String>>,
    /// The component, relative to the project.
    output: String,
    /// C: the core module the steps produce.
    core_module: Option<String>,
    /// Commands installing the toolchain.
    toolchain: String,
    /// The plugin's source file.
    source: &'static str,
    /// Where the SDK is in the project.
    sdk: String,
    /// Entries of `.gitignore`.
    ignore: &'static str,
}

fn plan(name: &str, lang: Lang) -> Result<Plan> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let text = |files: &mut Vec<(String, Vec<u8>)>, path: &str, body: String| {
        files.push((path.to_string(), body.into_bytes()));
    };
    let sdk = |files: &mut Vec<(String, Vec<u8>)>, prefix: &str, sdk: &[File]| {
        for f in sdk {
            files.push((format!("{prefix}{}", f.path), f.text.as_bytes().to_vec()));
        }
    };
    let crate_name = name.replace('-', "_");
    let parts = match lang {
        Lang::Rust => {
            text(
                &mut files,
                "Cargo.toml",
                render(include_str!("../templates/rust/Cargo.toml"), name),
            );
            text(&mut files, "Cargo.lock", rust_lock(name)?);
            text(
                &mut files,
                "src/lib.rs",
                render(include_str!("../templates/rust/lib.rs"), name),
            );
            for f in rust_sdk()? {
                files.push((format!("{RUST_SDK_DIR}/{}", f.0), f.1.into_bytes()));
            }
            Parts {
                build: vec![lang::rust_args()],
                output: format!(
                    "target/{}/release/{crate_name}.wasm",
                    toolchain::WASM_TARGET
                ),
                core_module: None,
                toolchain: format!(
                    "# Rust from https://rustup.rs, then:\nrustup target add {}",
                    toolchain::WASM_TARGET
                ),
                source: "src/lib.rs",
                sdk: format!("the `wasmtp-plugin-sdk` crate in `{RUST_SDK_DIR}/`"),
                ignore: "target/\n",
            }
        }
        Lang::Js => {
            text(&mut files, "package.json", js_package(name)?);
            text(
                &mut files,
                "plugin.js",
                render(include_str!("../templates/js/plugin.js"), name),
            );
            sdk(&mut files, "", embedded::JS_SDK);
            text(&mut files, "wasmtp-entry.js", lang::js_entry(false));
            let output = format!("{name}.wasm");
            Parts {
                build: vec![lang::js_args("wasmtp-entry.js", "wit", WORLD, &output)],
                output,
                core_module: None,
                toolchain: "# Node.js >= 18 with npm (Debian: apt-get install nodejs npm), then:\n\
                            npm install"
                    .to_string(),
                source: "plugin.js",
                sdk: "`wasmtp.js`".to_string(),
                ignore: "node_modules/\n*.wasm\n",
            }
        }
        Lang::Python => {
            text(
                &mut files,
                "src/plugin.py",
                render(include_str!("../templates/python/plugin.py"), name),
            );
            sdk(&mut files, "src/", embedded::PYTHON_SDK);
            let output = format!("{name}.wasm");
            Parts {
                build: vec![lang::python_args("wit", WORLD, &["src"], &output)],
                output,
                core_module: None,
                toolchain: format!(
                    "# python3 (>= 3.10) with venv, then:\n{}",
                    toolchain::componentize_py_install()
                ),
                source: "src/plugin.py",
                sdk: "the `wasmtp` package in `src/wasmtp/`".to_string(),
                ignore: ".venv/\n__pycache__/\n*.wasm\n",
            }
        }
        Lang::C => {
            text(
                &mut files,
                "src/plugin.c",
                render(include_str!("../templates/c/plugin.c"), name),
            );
            sdk(&mut files, "sdk/", embedded::C_SDK);
            let core = format!("{name}.core.wasm");
            Parts {
                build: vec![lang::c_args(
                    false,
                    &["bindings", "sdk"],
                    &[
                        "bindings/plugin.c",
                        "bindings/plugin_component_type.o",
                        "sdk/wasmtp.c",
                        "src/plugin.c",
                    ],
                    &core,
                )],
                output: format!("{name}.wasm"),
                core_module: Some(core),
                toolchain: format!("# Debian or Ubuntu:\n{}", toolchain::c_install()),
                source: "src/plugin.c",
                sdk: "`sdk/wasmtp.h` and `sdk/wasmtp.c`, with the generated bindings in \
                      `bindings/`"
                    .to_string(),
                ignore: "*.wasm\n",
            }
        }
    };
    let mut config = toml::Table::new();
    config.insert("refuse".into(), "blocked@example.test".into());
    config.insert("header".into(), "X-Checked-By".into());
    config.insert("value".into(), name.into());
    let manifest = Manifest {
        name: name.to_string(),
        language: lang,
        contract: embedded::contract(),
        build: parts.build.clone(),
        core_module: parts.core_module.as_ref().map(PathBuf::from),
        output: PathBuf::from(&parts.output),
        config,
    };
    text(&mut files, manifest::FILE, manifest_text(&manifest)?);
    text(&mut files, "wit/plugin.wit", embedded::WIT.to_string());
    let fill = |template: &str| {
        render(template, name)
            .replace("{{language}}", language_name(lang))
            .replace("{{contract}}", &embedded::contract())
            .replace("{{output}}", &parts.output)
            .replace("{{source}}", parts.source)
            .replace("{{sdk}}", &parts.sdk)
            .replace("{{toolchain}}", &parts.toolchain)
            .replace("{{compile}}", compile_time(lang))
    };
    text(
        &mut files,
        "README.md",
        fill(include_str!("../templates/README.md")),
    );
    text(
        &mut files,
        "dialogs/basic.dialog",
        fill(include_str!("../templates/basic.dialog")),
    );
    text(&mut files, ".gitignore", parts.ignore.to_string());
    Ok(Plan { files })
}

fn render(template: &str, name: &str) -> String {
    template
        .replace("{{name}}", name)
        .replace("{{contract}}", &embedded::contract())
}

fn language_name(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => "Rust",
        Lang::Js => "JavaScript",
        Lang::Python => "Python",
        Lang::C => "C",
    }
}

fn compile_time(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust | Lang::C => "well under a second",
        Lang::Js | Lang::Python => {
            "10 to 20 s (the log says `compiling <name>…`, then `<name> ready`; \
             until then the old chain answers)"
        }
    }
}

/// The manifest with a comment saying what each key is.
fn manifest_text(m: &Manifest) -> Result<String> {
    let body = toml::to_string_pretty(m).context("writing the manifest")?;
    let core = match m.core_module {
        Some(_) => "# turns `core_module` into the component `output`, then checks",
        None => "# then checks",
    };
    Ok(format!(
        "# A wasmtp plugin project (written by `wasmtp plugin new`).\n\
         #\n\
         # `wasmtp plugin build` runs each `build` step in this folder (the first\n\
         # word is the program: cargo, componentize-js, componentize-py, clang-14\n\
         # or any program on PATH),\n\
         {core} that `output` is a component this\n\
         # gateway links and that its init accepts `[config]`. `contract` is the\n\
         # WIT contract of `wit/plugin.wit`.\n\n{body}"
    ))
}

/// The Rust SDK's files as they go into a project: no `[workspace]` of
/// its own (it is a member of the project's), the WIT read from the
/// project's `wit/`, no lock file of its own.
fn rust_sdk() -> Result<Vec<(&'static str, String)>> {
    const WIT_PATH: &str = "path: \"../../wit\"";
    let mut out = Vec::new();
    for f in embedded::RUST_SDK {
        let text = match f.path {
            "Cargo.lock" => continue,
            "Cargo.toml" => f
                .text
                .lines()
                .filter(|l| l.trim() != "[workspace]" && !l.starts_with("# Not part of"))
                .map(|l| format!("{l}\n"))
                .collect(),
            "src/lib.rs" if f.text.contains(WIT_PATH) => {
                f.text.replace(WIT_PATH, "path: \"../wit\"")
            }
            "src/lib.rs" => bail!("the Rust SDK's lib.rs no longer reads the WIT from {WIT_PATH}"),
            _ => f.text.to_string(),
        };
        out.push((f.path, text));
    }
    Ok(out)
}

/// The SDK's `Cargo.lock` with the plugin's own package added in cargo's
/// order (by name), so the project builds with the SDK's pinned versions.
fn rust_lock(name: &str) -> Result<String> {
    let lock = embedded::RUST_SDK
        .iter()
        .find(|f| f.path == "Cargo.lock")
        .context("the Rust SDK's Cargo.lock is not embedded")?
        .text;
    const BLOCK: &str = "[[package]]\nname = \"";
    let names: Vec<(usize, &str)> = lock
        .match_indices(BLOCK)
        .filter_map(|(at, _)| {
            let rest = &lock[at + BLOCK.len()..];
            rest.find('"').map(|end| (at, &rest[..end]))
        })
        .collect();
    if names.iter().any(|(_, n)| *n == name) {
        bail!("the name {name:?} is taken by a crate the Rust SDK uses: choose another");
    }
    let entry = format!(
        "{BLOCK}{name}\"\nversion = \"0.1.0\"\ndependencies = [\n \"wasmtp-plugin-sdk\",\n]\n"
    );
    let mut out = lock.to_string();
    match names.iter().find(|(_, n)| *n > name) {
        Some((at, _)) => out.insert_str(*at, &format!("{entry}\n")),
        None => {
            out.push('\n');
            out.push_str(&entry);
        }
    }
    Ok(out)
}

/// The SDK's `package.json` (componentize-js pinned) named after the plugin.
fn js_package(name: &str) -> Result<String> {
    let mut pkg: serde_json::Value =
        serde_json::from_str(embedded::JS_PACKAGE).context("the JS SDK's package.json")?;
    let obj = pkg
        .as_object_mut()
        .context("the JS SDK's package.json is not an object")?;
    obj.insert("name".into(), name.into());
    obj.insert(
        "description".into(),
        format!("{name}: a wasmtp plugin (build: wasmtp plugin build)").into(),
    );
    Ok(serde_json::to_string_pretty(&pkg)? + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["a", "my-plugin", "p2"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "My", "1x", "a_b", "a-", "a b", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_lock_gets_the_plugin_in_name_order() {
        let lock = rust_lock("my-plugin").unwrap();
        let at = lock.find("name = \"my-plugin\"").unwrap();
        let names: Vec<&str> = lock
            .lines()
            .filter_map(|l| l.strip_prefix("name = \""))
            .map(|n| n.trim_end_matches('"'))
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert!(lock[at..].contains("\"wasmtp-plugin-sdk\""));
        assert!(rust_lock("serde").is_err());
        let last = rust_lock("zzz").unwrap();
        assert!(last.ends_with("\n\n[[package]]\nname = \"zzz\"\nversion = \"0.1.0\"\ndependencies = [\n \"wasmtp-plugin-sdk\",\n]\n"));
    }

    #[test]
    fn the_rust_sdk_is_rewritten_for_the_project() {
        let files = rust_sdk().unwrap();
        let manifest = &files.iter().find(|f| f.0 == "Cargo.toml").unwrap().1;
        assert!(!manifest.contains("[workspace]"), "{manifest}");
        let lib = &files.iter().find(|f| f.0 == "src/lib.rs").unwrap().1;
        assert!(lib.contains("path: \"../wit\""));
        assert!(!files.iter().any(|f| f.0 == "Cargo.lock"));
    }

    #[test]
    fn every_language_writes_a_manifest_that_loads() {
        for lang in Lang::ALL {
            let dir = tempfile::tempdir().unwrap();
            let files = create("my-plugin", lang, dir.path()).unwrap();
            assert!(
                files.contains(&PathBuf::from("dialogs/basic.dialog")),
                "{lang}"
            );
            let m = Manifest::load(dir.path()).unwrap();
            assert_eq!((m.name.as_str(), m.language), ("my-plugin", lang));
            assert_eq!(m.config["refuse"].as_str(), Some("blocked@example.test"));
            let readme = std::fs::read_to_string(dir.path().join("README.md")).unwrap();
            assert!(!readme.contains("{{"), "{lang}: {readme}");
            let dialog = std::fs::read_to_string(dir.path().join("dialogs/basic.dialog")).unwrap();
            assert!(
                dialog.contains("? header X-Checked-By: my-plugin"),
                "{dialog}"
            );
        }
    }

    #[test]
    fn a_non_empty_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
        let err = create("p", Lang::Js, dir.path()).unwrap_err();
        assert!(err.to_string().contains("is not empty"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

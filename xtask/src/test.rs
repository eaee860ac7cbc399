//! `cargo xtask test`: install, build the plugins, check formatting and
//! lints, run every test. `.ci/run` runs exactly this.
//!
//! Every step runs even when an earlier one failed (so one CI run shows all
//! problems); the exit code is non-zero if any failed. The test runner goes
//! last so its closing summary is the last thing printed on success.

use anyhow::{Result, bail};

use crate::install::{self, TEST_TOOLS, WASM_TARGET};
use crate::sh;
use crate::{Options, plugins};

/// Runs the whole suite.
pub fn test(opts: &Options) -> Result<()> {
    let root = sh::root();
    let mut failed: Vec<String> = Vec::new();
    let mut record = |name: &str, result: Result<()>| {
        if let Err(err) = result {
            sh::error(&format!("xtask test: step `{name}` failed: {err:#}"));
            failed.push(name.to_string());
        }
    };

    let mut tools = TEST_TOOLS.to_vec();
    tools.extend(install::optional_test_tools(&root));
    if opts.has("--no-install") {
        // Nothing is installed, but a missing tool is still named now, not
        // by a failing test half an hour later.
        sh::step("test tools (preflight)");
        record("preflight", install::preflight(&tools));
        record("python test packages", crate::pytools::check(&root));
    } else {
        sh::step("test tools (apt, then preflight)");
        record("install", install::ensure_tools(&tools));
        record("python test packages", crate::pytools::ensure(&root));
        record("toolchains", plugins::install_toolchains());
    }
    record("plugins", plugins::build_all());

    if !opts.has("--no-lint") {
        sh::step("cargo fmt --check");
        record(
            "fmt",
            sh::run(sh::cargo().args(["fmt", "--all", "--", "--check"])),
        );
        for manifest in plugins::lint_manifests(&root) {
            let manifest = manifest.to_string_lossy().into_owned();
            record(
                &format!("fmt {manifest}"),
                sh::run(sh::cargo().args([
                    "fmt",
                    "--manifest-path",
                    &manifest,
                    "--all",
                    "--",
                    "--check",
                ])),
            );
        }
        sh::step("cargo clippy");
        record(
            "clippy",
            sh::run(sh::cargo().args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ])),
        );
        for manifest in plugins::lint_manifests(&root) {
            let manifest = manifest.to_string_lossy().into_owned();
            record(
                &format!("clippy {manifest}"),
                sh::run(sh::cargo().args([
                    "clippy",
                    "--manifest-path",
                    &manifest,
                    "--target",
                    WASM_TARGET,
                    "--target-dir",
                    plugins::BUILD_DIR,
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ])),
            );
        }
    }

    if !opts.has("--no-fuzz") {
        sh::step("fuzz smoke");
        record("fuzz", crate::fuzz::smoke());
    }

    sh::step("tests");
    // Host-side unit tests of the plugins whose logic has unit tests (the
    // DNSBL label, the spamd reply parser, DMARC records and alignment); the
    // host calls compile to stubs there.
    record(
        "plugin helper unit tests",
        sh::run(sh::cargo().args([
            "test",
            "--manifest-path",
            "example-plugins/rust/Cargo.toml",
            "--package",
            "dnsbl",
            "--package",
            "spam-scanner",
            "--package",
            "mail-auth",
            "--package",
            "wasmtp-plugin-sdk",
            "--target-dir",
            "target/plugins-build-host",
        ])),
    );
    // `--workspace`, like the runner below: the same packages give the same
    // feature unification, so both steps share one build of the
    // dependencies. (`--package wasmtp` alone resolved other features and
    // made the runner rebuild wasmtime and its dependencies a second time:
    // 11.5 minutes on a fresh 2-core machine.)
    record(
        "doc tests",
        sh::run(sh::cargo().args(["test", "--workspace", "--doc"])),
    );
    let mut runner = sh::cargo();
    if nextest_available() {
        runner.args([
            "nextest",
            "run",
            "--workspace",
            "--all-targets",
            "--no-fail-fast",
        ]);
    } else {
        runner.args(["test", "--workspace", "--all-targets", "--no-fail-fast"]);
    }
    // Filters and runner options, as the runner in use spells them.
    runner.args(&opts.passthrough);
    record("tests", sh::run(&mut runner));

    if !failed.is_empty() {
        bail!("failed steps: {}", failed.join(", "));
    }
    Ok(())
}

/// `cargo nextest` is used when installed (its summary line is what CI reads).
fn nextest_available() -> bool {
    sh::probe(sh::cargo().args(["nextest", "--version"])).is_some()
}
